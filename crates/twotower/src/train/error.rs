//! What can stop training: [`TrainError`].

use std::path::PathBuf;

use crate::checkpoint;

/// Errors that stop training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    #[error(
        "the loss became {value} at epoch {epoch}, global step {step} (phase {phase}); training stopped and the \
         last good checkpoint in {run_dir} was kept. Try a lower learning rate (train.lr_sparse, \
         train.lr_dense), a higher loss.temperature, or train.clip_grad_norm"
    )]
    NonFiniteLoss {
        /// The value (NaN or ±inf).
        value: f64,
        /// Epoch (1-based).
        epoch: usize,
        /// Global step within the phase.
        step: u64,
        /// Phase name.
        phase: String,
        /// Run directory.
        run_dir: PathBuf,
    },
    /// The loss became NaN or infinite before any checkpoint was written.
    #[error(
        "the loss became {value} at epoch {epoch}, batch {batch} (phase {phase}), before the first \
         checkpoint; nothing was saved. Try a lower learning rate (train.lr_sparse, train.lr_dense), a \
         higher loss.temperature, or train.clip_grad_norm"
    )]
    NonFiniteLossNoCheckpoint {
        /// The value (NaN or ±inf).
        value: f64,
        /// Epoch (1-based).
        epoch: usize,
        /// Batch within the epoch (1-based).
        batch: usize,
        /// Phase name.
        phase: String,
    },
    /// Ctrl-C: a checkpoint was saved; `--resume` continues.
    #[error("interrupted: checkpoint saved in {run_dir}; continue with --resume (resume=True from Python)")]
    Interrupted {
        /// Run directory.
        run_dir: PathBuf,
    },
    /// Checkpoint I/O.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// A resume that does not fit this config or data.
    #[error("cannot resume from {run_dir}: {message}")]
    Resume {
        /// Run directory.
        run_dir: PathBuf,
        /// Why.
        message: String,
    },
    /// The data cannot be trained on.
    #[error("{0}")]
    Data(String),

    /// The model would not fit in memory (see [`crate::memory`]).
    #[error("{0}")]
    OutOfMemory(String),
    /// Evaluation failed (e.g. a NaN score).
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    /// The logQ frequency estimator could not be set up.
    #[error(transparent)]
    Frequency(#[from] crate::frequency::FrequencyError),
    /// SSL augmentation could not be set up.
    #[error(transparent)]
    Augment(#[from] crate::augment::AugmentError),
    /// Writing an output file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}
