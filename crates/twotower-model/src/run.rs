//! A finished run directory: the final model, how it was made, and its
//! metrics — its file names, its record ([`RunInfo`]) and loading it.
//! Serving commands (`export`, `recommend`, `similar`, `serve`) read runs
//! through [`load_run`] (the self-contained artifact, no data files);
//! `eval` through [`load_run_with_data`]. Writing a run (`save_run`,
//! `save_model`) and its test evaluation are training code, in
//! `twotower::run`.
//!
//! Files (all written atomically; `run.json` last, it marks a finished run):
//! - `model.safetensors`: the final model's tensors (f32), names as
//!   [`TwoTower::named_tensors`];
//! - `artifact.json`, `artifact.safetensors`: the serving artifact
//!   ([`crate::artifact`]: vocabularies, entity tables, train split,
//!   vectors), from run format 2 on;
//! - `run.json`: [`RunInfo`] (format version, config document, base dir,
//!   training summary);
//! - `metrics.json`: the model's metrics at top level under EVALUATION.md's
//!   names, the most-popular baseline under `"most_popular"`, and context.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use twotower_data::Dataset;

use crate::config::{Config, ConfigError};
use crate::inference::new_model;
use crate::model::TwoTower;
use crate::util::atomic_write;

/// Version of the run-directory format: 2 = with the self-contained
/// artifact; 1 = without (loads through the data files; `twotower artifact`
/// upgrades it).
pub const RUN_FORMAT_VERSION: u32 = 2;
/// The final model's tensors.
pub const MODEL_FILE: &str = "model.safetensors";
/// [`RunInfo`] as JSON.
pub const RUN_FILE: &str = "run.json";
/// Metrics as JSON.
pub const METRICS_FILE: &str = "metrics.json";
/// A training checkpoint's tensor file (`twotower::checkpoint`).
pub const CHECKPOINT_TENSORS_FILE: &str = "checkpoint.safetensors";
/// A training checkpoint's metadata file (`twotower::checkpoint`).
pub const CHECKPOINT_META_FILE: &str = "checkpoint.json";

/// Whether `dir` holds a training checkpoint (both of its files).
pub fn checkpoint_exists(dir: &Path) -> bool {
    dir.join(CHECKPOINT_META_FILE).is_file() && dir.join(CHECKPOINT_TENSORS_FILE).is_file()
}

/// Errors reading or writing a run directory.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a valid run directory.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The stored config no longer loads.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data the run was trained on no longer loads (boxed: keeps
    /// `RunError` small).
    #[error(transparent)]
    Data(Box<twotower_data::DataError>),
    /// Evaluation setup: a training-crate error (`twotower::train::TrainError`,
    /// converted by `From` there).
    #[error(transparent)]
    Train(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl From<crate::artifact::ArtifactError> for RunError {
    fn from(e: crate::artifact::ArtifactError) -> Self {
        use crate::artifact::ArtifactError as A;
        match e {
            A::Io { path, source } => RunError::Io { path, source },
            A::Format { path, message } => RunError::Format { path, message },
        }
    }
}

impl From<twotower_data::DataError> for RunError {
    fn from(e: twotower_data::DataError) -> Self {
        RunError::Data(Box::new(e))
    }
}

/// How a run was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// [`RUN_FORMAT_VERSION`].
    pub format_version: u32,
    /// twotower version that wrote it.
    pub twotower_version: String,
    /// The config document after overrides.
    pub config: toml::Value,
    /// Directory the config's relative paths resolve against.
    pub base_dir: PathBuf,
    /// Best validation value of `train.monitor` and its epoch.
    pub best_validation: Option<(f64, usize)>,
    /// Training throughput, main-batch examples per second.
    pub examples_per_second: f64,
    /// Training wall time, seconds.
    pub train_seconds: f64,
    /// [`Dataset::fingerprint`] of the data trained on (absent in runs
    /// written before it existed). [`load_run`] refuses a run whose data
    /// files now encode to a different dataset.
    #[serde(default)]
    pub data_fingerprint: Option<String>,
}

/// What training reports about a run, recorded in its [`RunInfo`];
/// implemented by the training crate's outcome (`twotower::train::TrainOutcome`).
pub trait TrainSummary {
    /// Best validation value of `train.monitor` and its epoch.
    fn best_validation(&self) -> Option<(f64, usize)>;
    /// Training throughput, main-batch examples per second.
    fn examples_per_second(&self) -> f64;
    /// Training wall time, seconds.
    fn train_seconds(&self) -> f64;
    /// [`Dataset::fingerprint`] of the data trained on.
    fn data_fingerprint(&self) -> &str;
}

impl RunInfo {
    /// The record of a run just trained with `cfg` (this version, this format).
    pub fn new(cfg: &Config, outcome: &impl TrainSummary) -> Self {
        Self {
            format_version: RUN_FORMAT_VERSION,
            twotower_version: env!("CARGO_PKG_VERSION").to_string(),
            config: cfg.doc.clone(),
            base_dir: cfg.base_dir.clone(),
            best_validation: outcome.best_validation(),
            examples_per_second: outcome.examples_per_second(),
            train_seconds: outcome.train_seconds(),
            data_fingerprint: Some(outcome.data_fingerprint().to_string()),
        }
    }
}

/// Writes any serializable value as pretty JSON, atomically.
///
/// # Errors
/// [`RunError::Io`].
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RunError> {
    atomic_write(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, b"\n")
    })
    .map_err(|source| RunError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A loaded run: its config, its data, the model.
pub struct LoadedRun {
    /// The config the run was trained with.
    pub config: Config,
    /// The dataset: from the artifact (tables and train split; the test
    /// split empty), or re-read and re-encoded from the data files
    /// (deterministic).
    pub dataset: Dataset,
    /// The final model.
    pub model: TwoTower<f32>,
    /// How it was made.
    pub info: RunInfo,
    /// The artifact's `(user_vectors, item_vectors)`, when loaded from one.
    pub vectors: Option<(Array2<f32>, Array2<f32>)>,
}

impl LoadedRun {
    /// Whether the run was loaded from its artifact (no data files read).
    pub fn self_contained(&self) -> bool {
        self.vectors.is_some()
    }
}

/// Loads a run directory written by `twotower train`.
///
/// # Errors
/// [`RunError`] if a file is missing or malformed, the data no longer loads,
/// its content changed since training (data fingerprint), or its
/// vocabularies no longer match the model's tables.
pub fn load_run(dir: &Path) -> Result<LoadedRun, RunError> {
    let (info, config, rpath) = read_info(dir)?;
    if !crate::artifact::exists(dir) {
        return load_with_data(dir, info, config, rpath);
    }
    let a = crate::artifact::read(dir)?;
    if let Some(want) = &info.data_fingerprint {
        if twotower_data::fingerprints_differ(want, &a.data_fingerprint) {
            return Err(RunError::Format {
                path: dir.join(crate::artifact::ARTIFACT_FILE),
                message: format!(
                    "the artifact was written for other data (fingerprint {}) than run.json's \
                     model ({want}): files of two runs mixed?",
                    a.data_fingerprint
                ),
            });
        }
    }
    let model = read_model(dir, &config, &a.dataset)?;
    Ok(LoadedRun {
        config,
        dataset: a.dataset,
        model,
        info,
        vectors: Some((a.user_vectors, a.item_vectors)),
    })
}

/// Loads a run through the data files its config names (re-read,
/// re-encoded, checked against the data fingerprint stored at training),
/// with both splits: what evaluation and `twotower artifact` need.
///
/// # Errors
/// As [`load_run`], and [`RunError::Data`] if the data no longer loads.
pub fn load_run_with_data(dir: &Path) -> Result<LoadedRun, RunError> {
    let (info, config, rpath) = read_info(dir)?;
    load_with_data(dir, info, config, rpath)
}

fn read_info(dir: &Path) -> Result<(RunInfo, Config, PathBuf), RunError> {
    let rpath = dir.join(RUN_FILE);
    if !rpath.exists() && checkpoint_exists(dir) {
        return Err(RunError::Format {
            path: dir.to_path_buf(),
            message: "an unfinished run (a checkpoint, no run.json): finish it with \
                      `twotower train --resume` and the same --config/--set"
                .into(),
        });
    }
    let text = std::fs::read_to_string(&rpath).map_err(|source| RunError::Io {
        path: rpath.clone(),
        source,
    })?;
    let info: RunInfo = serde_json::from_str(&text).map_err(|e| RunError::Format {
        path: rpath.clone(),
        message: format!("not a twotower run file: {e}"),
    })?;
    if !(1..=RUN_FORMAT_VERSION).contains(&info.format_version) {
        return Err(RunError::Format {
            path: rpath,
            message: format!(
                "run format version {} is not supported (this build reads 1 to {RUN_FORMAT_VERSION})",
                info.format_version
            ),
        });
    }
    let config = Config::from_doc(
        info.config.clone(),
        info.base_dir.clone(),
        &rpath.display().to_string(),
    )?;
    Ok((info, config, rpath))
}

fn load_with_data(
    dir: &Path,
    info: RunInfo,
    config: Config,
    rpath: PathBuf,
) -> Result<LoadedRun, RunError> {
    // a run trained on a streamed train split streams it again
    let (data, base) = (config.data(), &config.base_dir);
    let dataset = match twotower_data::stream_reason(&data, base, config.raw.train.max_memory_gb)? {
        Some(_) => twotower_data::load_dataset_streamed(&data, &config.raw.features, base)?,
        None => twotower_data::load_dataset(&data, &config.raw.features, base)?,
    };
    if let Some(want) = &info.data_fingerprint {
        let now = dataset.fingerprint();
        if twotower_data::fingerprints_differ(want, &now) {
            return Err(RunError::Format {
                path: rpath,
                message: format!(
                    "the data this run was trained on has changed since training (data \
                     fingerprint {want} at training, {now} now): its metrics and \
                     recommendations would not match; restore the data files the config \
                     names (base dir {}) or retrain",
                    info.base_dir.display()
                ),
            });
        }
    }
    let model = read_model(dir, &config, &dataset)?;
    Ok(LoadedRun {
        config,
        dataset,
        model,
        info,
        vectors: None,
    })
}

/// The weights in `dir`'s model file, into the model the config and the
/// data's vocabularies describe.
fn read_model(dir: &Path, config: &Config, dataset: &Dataset) -> Result<TwoTower<f32>, RunError> {
    let mpath = dir.join(MODEL_FILE);
    let mut model = new_model(config, dataset, 0).map_err(|e| RunError::Format {
        path: dir.join(RUN_FILE),
        message: format!("the model it describes is invalid: {e}"),
    })?;
    let bytes = std::fs::read(&mpath).map_err(|source| RunError::Io {
        path: mpath.clone(),
        source,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| RunError::Format {
        path: mpath.clone(),
        message: format!("not a readable safetensors file (truncated or corrupt?): {e}"),
    })?;
    let names: Vec<(String, Vec<usize>)> = model
        .named_tensors()
        .into_iter()
        .map(|(n, shape, _)| (n, shape))
        .collect();
    for (name, shape) in names {
        let view = st.tensor(&name).map_err(|_| RunError::Format {
            path: mpath.clone(),
            message: format!("tensor {name} missing"),
        })?;
        if view.dtype() != Dtype::F32 {
            return Err(RunError::Format {
                path: mpath.clone(),
                message: format!("tensor {name} has dtype {:?}, expected F32", view.dtype()),
            });
        }
        if view.shape() != shape.as_slice() {
            return Err(RunError::Format {
                path: mpath.clone(),
                message: format!(
                    "tensor {name} has shape {:?}, the model built from the config and data needs {shape:?}: a model of another run, or did the data change?",
                    view.shape()
                ),
            });
        }
        let dst = model.tensor_mut(&name).expect("named tensor exists");
        for (d, c) in dst.iter_mut().zip(view.data().chunks_exact(4)) {
            *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        if let Some(k) = dst.iter().position(|v| !v.is_finite()) {
            return Err(RunError::Format {
                path: mpath.clone(),
                message: format!(
                    "tensor {name} holds a non-finite value (element {k} = {}): a diverged or corrupt model",
                    dst[k]
                ),
            });
        }
    }
    Ok(model)
}
