//! `[model]`: the towers' embedding and MLP sizes, and `[model.history]`,
//! the user tower's history feature.

use serde::{Deserialize, Serialize};

pub use crate::tower::MaskEmbedding;

/// `[model]`: the two towers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Embedding dimension of every feature without its own `dim` (default 32).
    pub embedding_dim: usize,
    /// Hidden layer sizes of each tower's MLP, ReLU after each (default `[128]`).
    pub hidden: Vec<usize>,
    /// Output dimension of both towers; outputs are L2-normalized (default 64).
    pub out_dim: usize,
    /// Default embedding of a masked feature in SSL views: `"zero"` (default) or `"learned"`.
    pub mask_embedding: MaskEmbedding,
    /// Standard deviation of the N(0, σ²) initialisation of embedding rows
    /// (default 0 = `1/√dim` per feature).
    pub embedding_init_std: f64,
    /// `[model.history]`: the user tower's history feature (off by default).
    pub history: HistoryConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            embedding_dim: 32,
            hidden: vec![128],
            out_dim: 64,
            mask_embedding: MaskEmbedding::Zero,
            embedding_init_std: 0.0,
            history: HistoryConfig::default(),
        }
    }
}

/// Pooling of the history bag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryPoolingKind {
    /// The mean of the items' embeddings (YouTube DNN).
    #[default]
    Mean,
    /// Weighted mean, the item `a` steps back from the newest weighing
    /// `exp(−recency_decay · a / max_len)`.
    Recency,
}

/// `[model.history]`: a user-tower feature whose values are the items the
/// user interacted with before (see [`crate::history_feature`] for what a
/// bag holds and why nothing leaks).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Add the history feature to the user tower (default false).
    pub enabled: bool,
    /// The most recent `max_len` items form the bag (default 50, 1..=10000).
    pub max_len: usize,
    /// `"mean"` (default) or `"recency"`.
    pub pooling: HistoryPoolingKind,
    /// λ of `recency` pooling, ≥ 0 (default 2.0: the oldest of a full bag
    /// weighs e^−2 of the newest).
    pub recency_decay: f64,
    /// Read the item tower's item-id embedding table instead of a table of
    /// its own (default false): one row per item trained by both towers, so
    /// an item's history embedding starts from what the item tower learned.
    /// Needs an item-id feature of the same dim.
    pub share_item_table: bool,
    /// Embedding dimension (default 0 = `model.embedding_dim`; with
    /// `share_item_table` it is the item-id feature's).
    pub dim: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_len: 50,
            pooling: HistoryPoolingKind::Mean,
            recency_decay: 2.0,
            share_item_table: false,
            dim: 0,
        }
    }
}
