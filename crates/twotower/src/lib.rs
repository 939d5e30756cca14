//! # twotower
//!
//! Two-tower retrieval models for recommendation, with hand-written forward
//! and backward passes (see `shared/DESIGN.md` and `shared/GRADIENTS.md`).
//!
//! A (user, item) pair is scored as the cosine of a user vector (user tower)
//! and an item vector (item tower); each tower is an MLP over embedding bags
//! of that side's features, its output L2-normalized.
//!
//! Modules:
//! - [`real`]: the scalar trait the math is generic over (f32 for training, f64 for gradient checks).
//! - [`embedding`]: embedding tables, embedding bags (mean pooling) and sparse gradients.
//! - [`layers`]: linear, ReLU, L2 normalization.
//! - [`linalg`]: matrix products, on one thread or split by rows over rayon.
//! - [`tower`]: a tower = embedding bags → concat → MLP → L2 norm.
//! - [`loss`]: in-batch sampled softmax with logQ correction, accidental-hit masking, mixed negatives; InfoNCE.
//! - [`optim`]: sparse row-wise optimizers (Adagrad, lazy Adam) and dense Adam/AdamW.
//! - [`frequency`]: item sampling-probability estimators (train counts; streaming, Yi et al. 2019).
//! - [`history`]: users' training histories, for masking false negatives in the in-batch softmax.
//! - [`model`]: the two-tower model, its joint loss and gradients.
//! - [`eval`]: the evaluation protocol (EVALUATION.md), exact top-K.
//! - [`index`]: exact and approximate nearest-neighbour indexes behind one trait.
//! - [`export`]: vectors out (.npy, safetensors, ids, manifest).
//! - [`augment`]: SSL views (feature masking, feature dropout) and mutual information.
//! - [`config`]: the TOML config sections and their checks.
//! - [`train`]: the training loop (early stopping, checkpoints, resume).
//! - [`checkpoint`]: resumable training checkpoints.
//! - [`run`]: finished run directories: final model, metrics.
//! - [`bench`]: the measurement harness of `twotower bench` (step phases, allocations, memory, eval vs GEMM).
//! - [`util`]: atomic file writes.

pub mod artifact;
pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod embedding;
pub mod eval;
pub mod export;
pub mod frequency;
pub mod history;
pub mod history_feature;
pub mod index;
pub mod layers;
pub mod linalg;
pub mod loss;
pub mod model;
pub mod optim;
pub mod real;
pub mod report;
pub mod run;
pub mod tower;
pub mod train;
pub mod util;
