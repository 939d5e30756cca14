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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use twotower::config::Config;
use twotower::index::VectorIndex;
use twotower::run::{self, RunInfo};
use twotower::train::{train, TrainError, TrainOptions};
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
    let interrupted = matches!(
        e.downcast_ref::<TrainError>(),
        Some(TrainError::Interrupted { .. })
    );
    if interrupted {
        Interrupted::new_err(chain(&e))
    } else {
        TwoTowerError::new_err(chain(&e))
    }
}

/// Trains as `twotower train --config CONFIG --set K=V... --out OUT [--force]`
/// and writes the run directory (model, artifact, metrics.json). Returns
/// metrics.json's text. Ctrl-C (SIGINT seen by Python) stops training at
/// the next step, saves a checkpoint and raises `Interrupted`.
#[pyfunction]
#[pyo3(signature = (config, overrides, out, force=false, resume=false, verbose=false))]
fn train_run(
    py: Python<'_>,
    config: Option<PathBuf>,
    overrides: Vec<String>,
    out: PathBuf,
    force: bool,
    resume: bool,
    verbose: bool,
) -> PyResult<String> {
    let cfg = Config::load(config.as_deref(), &overrides).map_err(|e| err(e.into()))?;
    twotower::util::set_threads(cfg.raw.train.threads);
    check_out(&out, force, resume).map_err(err)?;
    let flag = AtomicBool::new(false);
    let result: anyhow::Result<String> = std::thread::scope(|s| {
        let worker = s.spawn(|| -> anyhow::Result<String> {
            std::fs::create_dir_all(&out)?;
            let ds = twotower_data::load_dataset(&cfg.data(), &cfg.raw.features, &cfg.base_dir)?;
            let mut cfg_run = cfg.clone();
            cfg_run.raw.train.progress = cfg_run.raw.train.progress && verbose;
            let opts = TrainOptions {
                run_dir: out.clone(),
                resume,
                interrupt: Some(&flag),
                verbose,
                stop_after_steps: None,
            };
            let outcome = train(&cfg_run, &ds, &opts)?;
            let info = RunInfo::new(&cfg, &outcome);
            run::save_run(&out, &cfg, &ds, &outcome.model, &info)?;
            let metrics = run::evaluate_test(&cfg, &ds, &outcome.model, &info)?;
            run::write_json(&out.join(run::METRICS_FILE), &metrics)?;
            Ok(serde_json::to_string(&metrics)?)
        });
        // the GIL is held only for these signal checks, every 50 ms
        while !worker.is_finished() {
            py.allow_threads(|| std::thread::sleep(std::time::Duration::from_millis(50)));
            if py.check_signals().is_err() {
                flag.store(true, Ordering::SeqCst);
            }
        }
        match worker.join() {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("training panicked")),
        }
    });
    result.map_err(err)
}

/// The CLI's checks of `--out` before training.
fn check_out(out: &Path, force: bool, resume: bool) -> anyhow::Result<()> {
    if let Some(p) = out.ancestors().find(|p| p.exists()) {
        if !p.is_dir() {
            anyhow::bail!(
                "out {}: {} is a file, expected a directory",
                out.display(),
                p.display()
            );
        }
    }
    let finished = out.join(run::RUN_FILE).exists();
    let ckpt = out.join(twotower::checkpoint::META_FILE).exists();
    if !resume && finished && !force {
        anyhow::bail!(
            "{} already holds a finished run (see its metrics.json); use force=True to replace it, or another out",
            out.display()
        );
    }
    if !resume && ckpt && !force {
        anyhow::bail!(
            "{} already holds a run; use resume=True to continue it, force=True to replace it, or another out",
            out.display()
        );
    }
    if resume && !ckpt {
        anyhow::bail!("resume: {} holds no checkpoint", out.display());
    }
    Ok(())
}

/// A loaded run ready for queries (`twotower recommend/similar/export`).
#[pyclass(frozen)]
struct NativeRun {
    served: Served,
    catalog: Catalog,
    index: Box<dyn VectorIndex>,
    users: ndarray::Array2<f32>,
}

fn f32_bytes<'py>(py: Python<'py>, a: &[f32]) -> Bound<'py, PyBytes> {
    let mut b = Vec::with_capacity(a.len() * 4);
    for x in a {
        b.extend_from_slice(&x.to_le_bytes());
    }
    PyBytes::new(py, &b)
}

#[pymethods]
impl NativeRun {
    /// Loads the run directory `dir` as the serving commands do.
    #[new]
    fn new(py: Python<'_>, dir: PathBuf) -> PyResult<Self> {
        py.allow_threads(|| -> anyhow::Result<Self> {
            let r = run::load_run(&dir)?;
            twotower::util::set_threads(r.config.raw.train.threads);
            let served = Served::new(r);
            let catalog = Catalog::of_run(&served);
            let (index, _) = twotower_serve::build_index(
                &catalog,
                &served,
                false,
                &ndarray::Array2::zeros((0, 0)),
                1,
                None,
                &Default::default(),
            )?;
            let users = match &served.run.vectors {
                Some((u, _)) => u.clone(),
                None => twotower::train::encode_user_table(
                    &served.run.model,
                    &served.run.dataset,
                    served.history.as_ref(),
                ),
            };
            Ok(NativeRun {
                served,
                catalog,
                index,
                users,
            })
        })
        .map_err(err)
    }

    /// `(ids, f32 bytes, rows, dim)` of the item vectors (the export's).
    fn item_vectors<'py>(
        &self,
        py: Python<'py>,
    ) -> (Vec<String>, Bound<'py, PyBytes>, usize, usize) {
        let v = &self.catalog.vectors;
        let flat: Vec<f32> = v.iter().copied().collect();
        (
            self.catalog.table(&self.served).ids.clone(),
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
            self.served.run.dataset.users.ids.clone(),
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
        if k == 0 {
            return Err(TwoTowerError::new_err("k must be at least 1"));
        }
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
                                ids.push(Some(table.ids[i as usize].clone()));
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
        if k == 0 {
            return Err(TwoTowerError::new_err("k must be at least 1"));
        }
        let (ids, scores) = py
            .allow_threads(|| -> anyhow::Result<_> {
                let table = self.catalog.table(&self.served);
                let mut ids = Vec::with_capacity(items.len() * k);
                let mut scores = Vec::with_capacity(items.len() * k);
                for it in &items {
                    let i = *table
                        .index
                        .get(it)
                        .ok_or_else(|| anyhow::anyhow!("item {it:?} is not in the catalog"))?;
                    let q = self.catalog.vectors.row(i as usize).to_vec();
                    let hits = self.index.search(&q, k, &[i])?;
                    for j in 0..k {
                        match hits.get(j) {
                            Some(&(i, s)) => {
                                ids.push(Some(table.ids[i as usize].clone()));
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
                for f in &features {
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
    m.add_class::<NativeRun>()?;
    Ok(())
}
