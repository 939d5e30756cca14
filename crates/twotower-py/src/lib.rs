//! Python bindings of twotower (`twotower._native`; the public API is the
//! pure-Python package `twotower` over it, `python/twotower/__init__.py`).
//!
//! Every function calls the same library functions as the CLI's commands
//! (`twotower train`, `recommend`, `similar`, `export`), so a run trained
//! here is bit-identical to the CLI's for the same config. Library errors
//! become `twotower.TwoTowerError` with the CLI's message (the error chain
//! joined by ": "); the GIL is released while training, evaluating and
//! searching. Vectors cross as little-endian f32 bytes, turned into numpy
//! arrays by the Python layer (no copy beyond the one into `bytes`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use twotower::config::Config;
use twotower::index::VectorIndex;
use twotower::pipeline::{train_to_dir, PipelineError, TrainJob};
use twotower::run;
use twotower_serve::{Catalog, Served};

create_exception!(
    _native,
    TwoTowerError,
    PyException,
    "A twotower library error; the message is the CLI's."
);
create_exception!(
    _native,
    Interrupted,
    TwoTowerError,
    "Training stopped by Ctrl-C (KeyboardInterrupt); a checkpoint was saved."
);

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".into()
    }
}

/// The error and its causes joined by ": ", skipping a cause whose text the
/// message already ends with — the CLI's `error_chain`.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let m = cause.to_string();
        if out.ends_with(&m) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&m);
    }
    out
}

fn err(e: anyhow::Error) -> PyErr {
    let interrupted = e
        .downcast_ref::<PipelineError>()
        .is_some_and(PipelineError::is_interrupted);
    if interrupted {
        Interrupted::new_err(chain(&e))
    } else {
        TwoTowerError::new_err(chain(&e))
    }
}

/// Trains as `twotower train --config CONFIG --set K=V... --out OUT [--force]`
/// (the same [`twotower::pipeline::train_to_dir`]) and writes the run
/// directory (model, artifact, metrics.json). Returns metrics.json's text.
///
/// `on_epoch`, when given, is called on this (the calling) thread with each
/// epoch record's JSON text as training writes it to `epochs.jsonl`; an
/// exception it raises stops training (a checkpoint is saved) and is
/// re-raised. Ctrl-C (SIGINT seen by Python) stops training at the next
/// step, saves a checkpoint and raises `Interrupted`.
#[pyfunction]
#[pyo3(signature = (config, overrides, out, force=false, resume=false, verbose=false, on_epoch=None))]
#[allow(clippy::too_many_arguments)]
fn train_run(
    py: Python<'_>,
    config: Option<PathBuf>,
    overrides: Vec<String>,
    out: PathBuf,
    force: bool,
    resume: bool,
    verbose: bool,
    on_epoch: Option<PyObject>,
) -> PyResult<String> {
    let cfg = Config::load(config.as_deref(), &overrides).map_err(|e| err(e.into()))?;
    twotower::util::set_threads(cfg.raw.train.threads);
    let flag = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx = std::sync::Mutex::new(tx);
    let send = |rec: &serde_json::Value| {
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(rec.to_string());
        }
    };
    let mut callback_error: Option<PyErr> = None;
    // a KeyboardInterrupt seen while the worker ran (re-raised if training
    // finished anyway)
    let mut signal: Option<PyErr> = None;
    let result: anyhow::Result<serde_json::Value> = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let job = TrainJob {
                config: &cfg,
                out: out.clone(),
                resume,
                force,
                interrupt: Some(&flag),
                verbose,
                on_epoch: Some(&send),
            };
            train_to_dir(&job).map_err(anyhow::Error::from)
        });
        // the GIL is held only for signal checks and callbacks, every 50 ms
        loop {
            let done = worker.is_finished();
            for line in rx.try_iter() {
                if let (Some(cb), None) = (&on_epoch, &callback_error) {
                    if let Err(e) = cb.call1(py, (line,)) {
                        callback_error = Some(e);
                        flag.store(true, Ordering::SeqCst);
                    }
                }
            }
            if done {
                break;
            }
            py.allow_threads(|| std::thread::sleep(std::time::Duration::from_millis(50)));
            if let Err(e) = py.check_signals() {
                flag.store(true, Ordering::SeqCst);
                signal.get_or_insert(e);
            }
        }
        match worker.join() {
            Ok(r) => r,
            Err(payload) => Err(anyhow::anyhow!(
                "training panicked: {} (a bug: please report it with the config)",
                panic_message(payload.as_ref())
            )),
        }
    });
    if let Some(e) = callback_error {
        return Err(e);
    }
    let metrics = result.map_err(err)?;
    if let Some(e) = signal {
        // Ctrl-C arrived while the run was being saved or evaluated: the
        // run is complete on disk, and the KeyboardInterrupt is not lost
        return Err(e);
    }
    Ok(metrics.to_string())
}

/// Checks a run directory as `train` does before any work (the message
/// names `--force` / `force=True`), so `fit` can refuse before writing
/// its data files there.
#[pyfunction]
#[pyo3(signature = (out, resume=false, force=false))]
fn check_run_dir(out: PathBuf, resume: bool, force: bool) -> PyResult<()> {
    twotower::pipeline::check_run_dir(&out, resume, force).map_err(|e| err(e.into()))
}

/// A loaded run ready for queries (`twotower recommend/similar/export`).
#[pyclass(frozen)]
struct NativeRun {
    served: Served,
    catalog: Catalog,
    index: Box<dyn VectorIndex>,
    users: ndarray::Array2<f32>,
    ann_recall: Option<f64>,
}

fn f32_bytes<'py>(py: Python<'py>, a: &[f32]) -> Bound<'py, PyBytes> {
    let mut b = Vec::with_capacity(a.len() * 4);
    for x in a {
        b.extend_from_slice(&x.to_le_bytes());
    }
    PyBytes::new(py, &b)
}

impl NativeRun {
    /// `k` in `1..=catalog size` (a row of `k` results is allocated per query).
    fn check_k(&self, k: usize) -> PyResult<()> {
        if k == 0 {
            return Err(TwoTowerError::new_err("k must be at least 1"));
        }
        let n = self.catalog.len();
        if k > n {
            return Err(TwoTowerError::new_err(format!(
                "k = {k} is larger than the catalog ({n} items)"
            )));
        }
        Ok(())
    }
}

#[pymethods]
impl NativeRun {
    /// Loads the run directory `dir` as the serving commands do: the
    /// catalog is the run's items, or the item table in `catalog` (laid out
    /// like `[data.items]`; items the model never saw are scored from their
    /// features, as `--catalog`); the index is exact, or with `ann` the
    /// HNSW index (usearch; the run's saved `index.usearch` when there is
    /// one and the catalog is the run's) searched with breadth `ef`, its
    /// recall@10 against exact measured on up to 200 of the run's users.
    #[new]
    #[pyo3(signature = (dir, catalog=None, ann=false, ef=128))]
    fn new(
        py: Python<'_>,
        dir: PathBuf,
        catalog: Option<PathBuf>,
        ann: bool,
        ef: usize,
    ) -> PyResult<Self> {
        if ef == 0 {
            return Err(TwoTowerError::new_err("ef must be at least 1"));
        }
        py.allow_threads(|| -> anyhow::Result<Self> {
            let r = run::load_run(&dir)?;
            twotower::util::set_threads(r.config.raw.train.threads);
            let served = Served::new(r);
            let catalog = match &catalog {
                Some(file) => Catalog::from_file(&served, file).map_err(|e| {
                    anyhow::Error::from(e).context(format!("catalog {}", file.display()))
                })?,
                None => Catalog::of_run(&served),
            };
            let users = served.user_vectors();
            let probe = users
                .slice(ndarray::s![..users.nrows().min(200), ..])
                .to_owned();
            let cfg = twotower_serve::ann::AnnConfig {
                expansion_search: ef,
                ..Default::default()
            };
            let saved = dir.join(twotower_serve::ann::INDEX_FILE);
            let (index, ann_recall) = twotower_serve::build_index(
                &catalog,
                &served,
                ann,
                &probe,
                10,
                Some(&saved),
                &cfg,
            )?;
            Ok(NativeRun {
                served,
                catalog,
                index,
                users,
                ann_recall,
            })
        })
        .map_err(err)
    }

    /// HNSW recall@10 against exact search on the probe users (`None`
    /// for an exact index).
    #[getter]
    fn ann_recall(&self) -> Option<f64> {
        self.ann_recall
    }

    /// Items of the catalog the model never saw (scored from their features).
    #[getter]
    fn n_new_items(&self) -> usize {
        if self.catalog.is_grown() {
            self.catalog.n_new
        } else {
            0
        }
    }

    /// `(ids, f32 bytes, rows, dim)` of the item vectors (the export's).
    fn item_vectors<'py>(
        &self,
        py: Python<'py>,
    ) -> (Vec<String>, Bound<'py, PyBytes>, usize, usize) {
        let v = &self.catalog.vectors;
        let flat: Vec<f32> = v.iter().copied().collect();
        (
            self.catalog.table(&self.served).ids.to_vec(),
            f32_bytes(py, &flat),
            v.nrows(),
            v.ncols(),
        )
    }

    /// `(ids, f32 bytes, rows, dim)` of the user vectors (the export's).
    fn user_vectors<'py>(
        &self,
        py: Python<'py>,
    ) -> (Vec<String>, Bound<'py, PyBytes>, usize, usize) {
        let v = &self.users;
        let flat: Vec<f32> = v.iter().copied().collect();
        (
            self.served.run.dataset.users.ids.to_vec(),
            f32_bytes(py, &flat),
            v.nrows(),
            v.ncols(),
        )
    }

    /// Top-`k` items for each user id (a known user; an unknown id gets
    /// the out-of-vocabulary user, as `recommend --user`): `(ids, f32 score
    /// bytes)`, row-major `[n_users × k]`, short rows padded with `None`/NaN.
    #[pyo3(signature = (users, k, exclude_seen=true, features=Vec::new()))]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        users: Vec<String>,
        k: usize,
        exclude_seen: bool,
        features: Vec<Vec<(String, String)>>,
    ) -> PyResult<(Vec<Option<String>>, Bound<'py, PyBytes>)> {
        self.check_k(k)?;
        if !features.is_empty() && features.len() != users.len() {
            return Err(TwoTowerError::new_err(format!(
                "features: {} entries for {} users",
                features.len(),
                users.len()
            )));
        }
        let (ids, scores) = py
            .allow_threads(|| -> anyhow::Result<_> {
                let table = self.catalog.table(&self.served);
                let mut ids = Vec::with_capacity(users.len() * k);
                let mut scores = Vec::with_capacity(users.len() * k);
                for (n, u) in users.iter().enumerate() {
                    let f: &[(String, String)] = features.get(n).map_or(&[], |f| f);
                    if f.is_empty() && self.served.user_index(u).is_none() {
                        anyhow::bail!(
                            "user {u:?} is not in the data; give its features with \
                             features=[{{NAME: VALUE}}, ...] (one dict per user; user features: {})",
                            self.served.user_feature_names()
                        );
                    }
                    let q = self.served.user_vector(u, f, None, "features")?;
                    let seen: &[u32] = match (q.user, exclude_seen) {
                        (Some(i), true) => self.served.seen(i),
                        _ => &[],
                    };
                    let exclude = self.catalog.map_run_items(seen);
                    let hits = self.index.search(&q.vector, k, &exclude)?;
                    for j in 0..k {
                        match hits.get(j) {
                            Some(&(i, s)) => {
                                ids.push(Some(table.ids[i as usize].to_string()));
                                scores.push(s);
                            }
                            None => {
                                ids.push(None);
                                scores.push(f32::NAN);
                            }
                        }
                    }
                }
                Ok((ids, scores))
            })
            .map_err(err)?;
        Ok((ids, f32_bytes(py, &scores)))
    }

    /// Nearest `k` items of each item id (itself excluded), as `similar`.
    fn similar_items<'py>(
        &self,
        py: Python<'py>,
        items: Vec<String>,
        k: usize,
    ) -> PyResult<(Vec<Option<String>>, Bound<'py, PyBytes>)> {
        self.check_k(k)?;
        let (ids, scores) = py
            .allow_threads(|| -> anyhow::Result<_> {
                let table = self.catalog.table(&self.served);
                let mut ids = Vec::with_capacity(items.len() * k);
                let mut scores = Vec::with_capacity(items.len() * k);
                for it in &items {
                    let i = table
                        .index_of(it)
                        .ok_or_else(|| anyhow::anyhow!("item {it:?} is not in the catalog"))?;
                    let q = self.catalog.vectors.row(i as usize).to_vec();
                    let hits = self.index.search(&q, k, &[i])?;
                    for j in 0..k {
                        match hits.get(j) {
                            Some(&(i, s)) => {
                                ids.push(Some(table.ids[i as usize].to_string()));
                                scores.push(s);
                            }
                            None => {
                                ids.push(None);
                                scores.push(f32::NAN);
                            }
                        }
                    }
                }
                Ok((ids, scores))
            })
            .map_err(err)?;
        Ok((ids, f32_bytes(py, &scores)))
    }

    /// Vectors of users given by raw features (`[{name: value}]`, users the
    /// model has not seen): f32 bytes `[n × d]`.
    fn encode_users<'py>(
        &self,
        py: Python<'py>,
        features: Vec<Vec<(String, String)>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let flat = py
            .allow_threads(|| -> anyhow::Result<Vec<f32>> {
                let mut flat = Vec::new();
                for (n, f) in features.iter().enumerate() {
                    if f.is_empty() {
                        anyhow::bail!(
                            "features[{n}] is empty: a user the model has not seen needs at least one \
                             user feature (the ones left out use the out-of-vocabulary embedding)"
                        );
                    }
                    // an id no run holds: only the features count
                    let q = self.served.user_vector("\u{0}new", f, None, "features")?;
                    flat.extend_from_slice(&q.vector);
                }
                Ok(flat)
            })
            .map_err(err)?;
        Ok(f32_bytes(py, &flat))
    }

    /// The vector dimension.
    #[getter]
    fn dim(&self) -> usize {
        self.catalog.vectors.ncols()
    }
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TwoTowerError", m.py().get_type::<TwoTowerError>())?;
    m.add("Interrupted", m.py().get_type::<Interrupted>())?;
    m.add_function(wrap_pyfunction!(train_run, m)?)?;
    m.add_function(wrap_pyfunction!(check_run_dir, m)?)?;
    m.add_class::<NativeRun>()?;
    Ok(())
}
