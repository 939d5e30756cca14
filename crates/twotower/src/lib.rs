//! # twotower
//!
//! Two-tower retrieval models for recommendation: training and evaluation.
//! The model itself (ops with hand-written forward and backward passes,
//! towers, the config schema, run loading, the artifact, indexes) is the
//! `twotower-model` crate; its modules are re-exported here under their old
//! paths (`twotower::tower`, `twotower::run`, …), so code written against
//! this crate keeps compiling. See `shared/DESIGN.md` and
//! `shared/GRADIENTS.md`.
//!
//! A (user, item) pair is scored as the cosine of a user vector (user tower)
//! and an item vector (item tower); each tower is an MLP over embedding bags
//! of that side's features, its output L2-normalized.
//!
//! The comparison report of several runs and every plot (its charts, the
//! mutual-information heatmap) are the `twotower-report` crate, which
//! depends on this one: the training library builds without a plotting
//! stack.
//!
//! Modules of this crate:
//! - [`optim`]: sparse row-wise optimizers (Adagrad, lazy Adam) and dense Adam/AdamW.
//! - [`frequency`]: item sampling-probability estimators (train counts; streaming, Yi et al. 2019).
//! - [`eval`]: the evaluation protocol (EVALUATION.md), exact top-K.
//! - [`augment`]: SSL views (feature masking, feature dropout) and mutual information (the heatmap is drawn by `twotower-report`).
//! - [`memory`]: what a training run holds in memory, printed and checked before it starts.
//! - [`progress`]: training progress (a bar on a terminal, a line every N seconds in a log).
//! - [`step`]: one training step (batch assembly, loss and backward, update), run by the trainer, the bench and the no-allocation test.
//! - [`train`]: the training loop (early stopping, checkpoints, resume).
//! - [`checkpoint`]: resumable training checkpoints.
//! - [`pipeline`]: the `train` job as one function (run directory checks, load, train, save, evaluate), shared by the CLI and the Python package.
//! - [`run`]: finished run directories: writing them and their test metrics (loading re-exported from the model crate).
//! - [`bench`](mod@bench): the measurement harness of `twotower bench` (step phases, allocations, memory, eval vs GEMM).
//! - [`util`]: atomic file writes (re-exported) and the thread pool's size.
//!
//! Re-exported from `twotower-model`: [`real`], [`embedding`], [`layers`],
//! [`linalg`], [`tower`], [`loss`], [`history`], [`history_feature`],
//! [`model`], [`config`], [`inference`], [`topk`], [`index`], [`export`],
//! [`artifact`].

#![warn(missing_docs)]

pub use twotower_model::{
    ann, artifact, config, embedding, export, history, history_feature, index, inference, layers,
    linalg, loss, model, real, topk, tower,
};

pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod eval;
pub mod frequency;
pub mod memory;
pub mod optim;
pub mod pipeline;
pub mod progress;
pub mod run;
pub mod step;
pub mod train;
pub mod util;
