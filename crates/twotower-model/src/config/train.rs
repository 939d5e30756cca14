//! `[train]`: the optimizers, batches, epochs, early stopping, averaging,
//! id dropout, checkpoints and progress.

use serde::{Deserialize, Serialize};

/// `train.sparse_optimizer`: the optimizer of the embedding tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SparseOptimizer {
    /// Lazy row-wise Adam: moments of the touched rows only, bias correction
    /// from the global step (the default).
    #[default]
    Adam,
    /// Adagrad, one accumulator per element.
    Adagrad,
    /// Adagrad with one accumulator per row (`G_r += mean(g²)`).
    AdagradRowwise,
}

/// `[train]`: the optimisation loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Maximum number of epochs (default 30).
    pub epochs: usize,
    /// Main batch size N (default 256).
    pub batch_size: usize,
    /// Sparse optimizer of the embedding tables: `"adam"` (lazy row-wise moments, default),
    /// `"adagrad"` or `"adagrad_rowwise"`.
    pub sparse_optimizer: SparseOptimizer,
    /// Learning rate of the embedding tables (default 0.01).
    pub lr_sparse: f64,
    /// Learning rate of the dense MLP weights (Adam/AdamW) (default 0.001).
    pub lr_dense: f64,
    /// Decoupled (AdamW) weight decay of the dense weights (default 0.0).
    pub weight_decay: f64,
    /// Recency weighting λ of each user's training interactions (time-decayed
    /// sample weights): the k-th of a user's n interactions in time order
    /// weighs `exp(−λ·(n−1−k)/(n−1))` in the loss — newest 1, oldest `e^−λ`;
    /// λ in [0, 50] (default 0.0 = off, every interaction 1). See
    /// [`crate::history::recency_weights`].
    pub recency_decay: f64,
    /// Epoch-level weight averaging: after each epoch the evaluated (and
    /// final) weights are `avg ← γ·avg + (1 − γ)·w` with γ = `epoch_average`
    /// in [0, 0.999], starting from the weights after epoch 1 (default 0.0 =
    /// off, the raw weights). O(parameters) once per epoch,
    /// never per step.
    pub epoch_average: f64,
    /// Learning-rate decay per epoch: both learning rates of epoch e (0-based)
    /// are `lr · lr_decay^e` (default 1.0 = constant).
    pub lr_decay: f64,
    /// Clip the global gradient norm to this value (default 0 = off).
    pub clip_grad_norm: f64,
    /// Worker threads (default 2; 0 = all cores).
    pub threads: usize,
    /// Seed of every random choice (default 42).
    pub seed: u64,
    /// Early stopping: epochs without a better validation recall@50 before stopping (default 3; 0 = off).
    pub patience: usize,
    /// Carve a temporal validation split from train for early stopping (default true).
    pub validation: bool,
    /// After early stopping, retrain from scratch on the full train split for the
    /// best number of epochs (default true), so the final model sees the most
    /// recent interactions too. The test split is never used.
    pub refit: bool,
    /// Validation metric that drives early stopping (default `"recall@50"`).
    pub monitor: String,
    /// Show training progress (default true): a bar when stderr is a
    /// terminal, otherwise a line every `progress_seconds`.
    pub progress: bool,
    /// Seconds between two progress lines when stderr is not a terminal
    /// (a log file or a pipe) (default 30; 0 = no lines).
    pub progress_seconds: f64,
    /// Refuse to start when the optimizer state and weight copies cannot
    /// fit in the memory available (default true; see `twotower::memory`).
    pub check_memory: bool,
    /// Item-id dropout of the main task: each candidate row's item-id value
    /// is replaced by row 0 (out of vocabulary, what a cold item reads) with
    /// this probability, in [0, 1) (default 0 = off). It trains the
    /// cold-start path from the item's other features; the baseline SSL
    /// must beat.
    pub item_id_dropout: f64,
    /// Memory budget of the interaction data, in GiB (default 0 = none).
    /// When the interactions would take more in memory (16 B a row, 20 with
    /// weights), the train split is streamed from its file every epoch
    /// instead of loaded (`twotower_data::stream`): only the test split and
    /// the counts stay in memory, batches are drawn through a shuffle
    /// window of `stream_window` rows. Streaming needs `validation = false`
    /// and no history feature, recency weights or false-negative masks.
    pub max_memory_gb: f64,
    /// Rows of the shuffle window a streamed train split is drawn through
    /// (default 1,000,000 = 16 MB): each batch row is a uniform draw from
    /// the window, refilled from the file (as tf.data's `shuffle`).
    pub stream_window: usize,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 256,
            sparse_optimizer: SparseOptimizer::Adam,
            lr_sparse: 0.01,
            lr_dense: 0.001,
            weight_decay: 0.0,
            recency_decay: 0.0,
            lr_decay: 1.0,
            epoch_average: 0.0,
            clip_grad_norm: 0.0,
            threads: 2,
            seed: 42,
            patience: 3,
            validation: true,
            refit: true,
            monitor: "recall@50".into(),
            progress: true,
            progress_seconds: 30.0,
            check_memory: true,
            item_id_dropout: 0.0,
            max_memory_gb: 0.0,
            stream_window: 1_000_000,
        }
    }
}
