//! # twotower-model
//!
//! The two-tower model as training and serving share it, with no training
//! code: the ops with their hand-written forward and backward passes (see
//! `shared/DESIGN.md` and `shared/GRADIENTS.md`), the towers and the model,
//! the experiment config a model is built from, loading a finished run,
//! the serving artifact, encoding users and items, and vector indexes.
//! The training loop, optimizers, SSL augmentation, checkpoints and
//! evaluation live in the `twotower` crate; serving (`twotower-serve`)
//! depends on this crate only, so the compiler keeps it free of training
//! code.
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
//! - [`history`]: users' training histories, for masking false negatives in the in-batch softmax.
//! - [`history_feature`]: the user-history bag (the items a user interacted with) as a user-tower feature.
//! - [`model`]: the two-tower model, its joint loss and gradients.
//! - [`config`]: the TOML config sections and their checks.
//! - [`inference`]: a model built from a config and data; user and item vectors.
//! - [`topk`]: exact top-K of a score vector.
//! - [`index`]: exact and approximate nearest-neighbour indexes behind one trait.
//! - [`ann`]: the persisted HNSW index (usearch: search-time ef, filtered search, centred
//!   vectors, duplicate groups) that serving and the approximate evaluation share.
//! - [`export`]: vectors out (.npy, safetensors, ids, manifest).
//! - [`run`]: loading finished run directories (the model, its config, its data).
//! - [`artifact`]: the self-contained serving part of a run directory.
//! - [`tensor_file`]: safetensors files written as a stream (no copy of the tensors).
//! - [`util`]: atomic file writes.

#![warn(missing_docs)]

pub mod ann;
pub mod artifact;
pub mod config;
pub mod embedding;
pub mod export;
pub mod history;
pub mod history_feature;
pub mod index;
pub mod inference;
pub mod layers;
pub mod linalg;
pub mod loss;
pub mod model;
pub mod real;
pub mod run;
pub mod tensor_file;
pub mod topk;
pub mod tower;
pub mod util;
