//! Writing a finished run directory, and its test evaluation: the
//! training side of runs. The run format, its record and loading it
//! ([`load_run`], [`load_run_with_data`], [`RunError`], the file names) are
//! in the model crate (`twotower_model::run`), re-exported here under
//! their old paths.

use std::path::Path;

use twotower_data::Dataset;

pub use twotower_model::run::*;

use crate::config::Config;
use crate::model::TwoTower;
use crate::train::{
    encode_all, eval_set_sampled, evaluate_model, evaluate_most_popular, history_feature,
    TrainError,
};
use crate::util::atomic_write;
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
    let set = eval_set_sampled(cfg, ds, &ds.train, &ds.test)?;
    // an evaluated user's history is their train interactions (EVALUATION.md)
    let history = history_feature(cfg, ds, &ds.train);
    let m = evaluate_model(model, ds, &set, cfg, history.as_ref())?;
    let pop = evaluate_most_popular(&set, cfg)?;
    let mut out = serde_json::Map::new();
    for (k, v) in &m.values {
        out.insert(k.clone(), serde_json::json!(v));
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
