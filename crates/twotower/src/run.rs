//! Writing a finished run directory, and its test evaluation: the
//! training side of runs. The run format, its record and loading it
//! ([`load_run`], [`load_run_with_data`], [`RunError`], the file names) are
//! in the model crate (`twotower_model::run`), re-exported here under
//! their old paths.

use std::path::Path;

use twotower_data::Dataset;

pub use twotower_model::run::*;

use crate::config::{Config, Retrieval};
use crate::eval::{ann_recall, evaluate_index, evaluate_popularity, DotScorer, EvalSet, Metrics};
use crate::history_feature::HistoryFeature;
use crate::model::TwoTower;
use crate::train::{
    encode_all, eval_config, eval_set_sampled, evaluate_model, evaluate_most_popular,
    history_feature, TrainError,
};
use crate::util::atomic_write;
use twotower_model::ann::{AnnConfig, UsearchIndex, INDEX_FILE};
use twotower_model::tensor_file;

impl From<TrainError> for RunError {
    fn from(e: TrainError) -> Self {
        RunError::Train(Box::new(e))
    }
}

/// Writes the final model and its [`RunInfo`].
///
/// # Errors
/// [`RunError::Io`] on file-system failure.
pub fn save_model(dir: &Path, model: &TwoTower<f32>, info: &RunInfo) -> Result<(), RunError> {
    let path = dir.join(MODEL_FILE);
    // streamed: the weights are not copied (crate::checkpoint::save's way)
    let tensors = model.named_tensors();
    let named = crate::checkpoint::named_f32(&tensors);
    atomic_write(&path, |w| tensor_file::write(w, &named, None).map(|_| ())).map_err(|source| {
        match source.kind() {
            std::io::ErrorKind::InvalidInput => RunError::Format {
                path: path.clone(),
                message: source.to_string(),
            },
            _ => RunError::Io {
                path: path.clone(),
                source,
            },
        }
    })?;
    write_json(&dir.join(RUN_FILE), info)
}

/// Writes a finished run: the self-contained artifact of `model` trained
/// on `ds` (vectors of every user and item, the tables, the train split),
/// then [`save_model`] (the weights and `run.json`, which marks the run
/// finished).
///
/// # Errors
/// [`RunError::Io`] / [`RunError::Format`] on write failure.
pub fn save_run(
    dir: &Path,
    cfg: &Config,
    ds: &Dataset,
    model: &TwoTower<f32>,
    info: &RunInfo,
) -> Result<(), RunError> {
    let history = history_feature(cfg, ds, &ds.train);
    let (users, items) = encode_all(model, ds, history.as_ref());
    crate::artifact::write(dir, ds, &users, &items)?;
    let mut info = info.clone();
    info.format_version = RUN_FORMAT_VERSION;
    save_model(dir, model, &info)
}

/// Evaluates `model` on the test split per EVALUATION.md, with the
/// most-popular baseline, and returns the metrics.json document.
///
/// # Errors
/// [`RunError::Train`] if the evaluation set cannot be built.
pub fn evaluate_test(
    cfg: &Config,
    ds: &Dataset,
    model: &TwoTower<f32>,
    info: &RunInfo,
) -> Result<serde_json::Value, RunError> {
    evaluate_test_with(None, cfg, ds, model, info)
}

/// [`evaluate_test`] of the finished run in `dir` (`twotower eval --run
/// DIR`): with `eval.retrieval = "hnsw"`, the run's saved graph
/// (`index.usearch`, written by `twotower index`) is searched when it holds
/// this model's item vectors, instead of building one — the build is most
/// of the approximate evaluation's time (BENCHMARKS.md). A saved graph that
/// does not fit (another model's) is reported on stderr and a new one
/// built. The `"ann"` record says which (`"graph"`).
///
/// # Errors
/// As [`evaluate_test`].
pub fn evaluate_run_dir(
    dir: &Path,
    cfg: &Config,
    ds: &Dataset,
    model: &TwoTower<f32>,
    info: &RunInfo,
) -> Result<serde_json::Value, RunError> {
    evaluate_test_with(Some(dir), cfg, ds, model, info)
}

fn evaluate_test_with(
    dir: Option<&Path>,
    cfg: &Config,
    ds: &Dataset,
    model: &TwoTower<f32>,
    info: &RunInfo,
) -> Result<serde_json::Value, RunError> {
    let set = eval_set_sampled(cfg, ds, &ds.train, &ds.test)?;
    // an evaluated user's history is their train interactions (EVALUATION.md)
    let history = history_feature(cfg, ds, &ds.train);
    let (m, pop, ann) = match cfg.raw.eval.retrieval {
        Retrieval::Exact => {
            let m = evaluate_model(model, ds, &set, cfg, history.as_ref())?;
            let pop = evaluate_most_popular(&set, cfg)?;
            (m, pop, None)
        }
        Retrieval::Hnsw => {
            let (m, pop, ann) = evaluate_hnsw(dir, cfg, ds, model, &set, history.as_ref())?;
            (m, pop, Some(ann))
        }
    };
    let mut out = serde_json::Map::new();
    for (k, v) in &m.values {
        out.insert(k.clone(), serde_json::json!(v));
    }
    if let Some(ann) = ann {
        // approximate figures: labelled, with the index's recall beside them
        out.insert("retrieval".into(), serde_json::json!("hnsw"));
        out.insert("approximate".into(), serde_json::json!(true));
        out.insert("ann".into(), ann);
    }
    out.insert(
        "most_popular".into(),
        serde_json::to_value(&pop.values).expect("serializable"),
    );
    out.insert("n_test_users".into(), serde_json::json!(m.n_test_users));
    if let Some(all) = m.sampled_from {
        // eval.max_users: the metrics are a sample's, say so beside them
        out.insert("eval_sampled_from_users".into(), serde_json::json!(all));
    }
    out.insert("n_users".into(), serde_json::json!(ds.users.ids.len()));
    out.insert("n_items".into(), serde_json::json!(ds.items.ids.len()));
    let n_train = ds
        .train_stream
        .as_ref()
        .map_or(ds.train.user.len() as u64, |s| s.n_rows);
    out.insert("n_train".into(), serde_json::json!(n_train));
    if ds.train_stream.is_some() {
        out.insert("train_streamed".into(), serde_json::json!(true));
    }
    out.insert("n_test".into(), serde_json::json!(ds.test.user.len()));
    out.insert(
        "train_seconds".into(),
        serde_json::json!(info.train_seconds),
    );
    out.insert(
        "examples_per_second".into(),
        serde_json::json!(info.examples_per_second),
    );
    out.insert(
        "best_validation".into(),
        serde_json::json!(info.best_validation),
    );
    out.insert(
        "config".into(),
        serde_json::to_value(&cfg.doc).expect("toml value serializes"),
    );
    Ok(serde_json::Value::Object(out))
}

/// The test evaluation through an HNSW index (`eval.retrieval = "hnsw"`):
/// the usearch index of the serving side ([`UsearchIndex`], built in
/// row order so that the figures are reproducible: centred
/// distinct item vectors, filtered search skipping each user's train
/// items, ties by item id rank) built over the model's item vectors and
/// searched with `eval.ann_ef`; the metrics of that ranking
/// ([`evaluate_index`]), the most-popular baseline ([`evaluate_popularity`],
/// exact and without a catalog scan per user) and the `"ann"` record of
/// metrics.json: the index settings, where the graph came from (built, or
/// the run's saved one: [`evaluate_run_dir`]), build (or load) and search
/// seconds, and the
/// index's recall@K against exact top-K on `eval.ann_recall_users` users
/// ([`ann_recall`], EVALUATION.md).
fn evaluate_hnsw(
    dir: Option<&Path>,
    cfg: &Config,
    ds: &Dataset,
    model: &TwoTower<f32>,
    set: &EvalSet,
    history: Option<&HistoryFeature>,
) -> Result<(Metrics, Metrics, serde_json::Value), RunError> {
    let e = &cfg.raw.eval;
    let ecfg = eval_config(cfg);
    let (uv, iv) = encode_all(model, ds, history);
    let acfg = AnnConfig {
        expansion_search: e.ann_ef,
        ..AnnConfig::default()
    };
    let t = std::time::Instant::now();
    // in row order on one thread: the same model gives the same graph, so
    // the same approximate metrics (the parallel build's graph varies)
    let build = || {
        UsearchIndex::build_in_order(iv.view(), ds.items.id_rank.clone(), &acfg)
            .map_err(|e| RunError::Train(Box::new(e)))
    };
    let built = "built in row order".to_string();
    let saved = dir.map(|d| d.join(INDEX_FILE)).filter(|p| p.is_file());
    let (index, graph) = match saved {
        Some(path) => match UsearchIndex::load(&path, iv.view(), ds.items.id_rank.clone(), &acfg) {
            Ok(index) => (index, format!("loaded from {}", path.display())),
            Err(e) => {
                eprintln!("warning: {e}; the evaluation builds its own graph");
                (build()?, built)
            }
        },
        None => (build()?, built),
    };
    let build_seconds = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let m = evaluate_index(&index, uv.view(), set, &ecfg).map_err(TrainError::from)?;
    let search_seconds = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let exact = DotScorer::new(uv.view(), iv.view()).map_err(TrainError::from)?;
    let recall = ann_recall(
        &index,
        uv.view(),
        &exact,
        set,
        &ecfg,
        e.ann_recall_users,
        e.sample_seed,
    )
    .map_err(TrainError::from)?;
    let recall_seconds = t.elapsed().as_secs_f64();
    let pop = evaluate_popularity(set, &ecfg).map_err(TrainError::from)?;
    let ann = serde_json::json!({
        "index": "usearch HNSW (inner product, centred distinct item vectors)",
        "graph": graph,
        "ef": e.ann_ef,
        "connectivity": acfg.connectivity,
        "expansion_add": acfg.expansion_add,
        "distinct_vectors": index.n_distinct(),
        "build_seconds": build_seconds,
        "search_seconds": search_seconds,
        "recall_users": recall.n_users,
        "recall_seconds": recall_seconds,
        "recall_vs_exact": recall.values,
    });
    Ok((m, pop, ann))
}
