//! `[loss]`: the in-batch softmax — temperature, the logQ correction and
//! its frequency estimate, accidental hits, mixed negatives.

use serde::{Deserialize, Serialize};

/// `loss.frequency`: where the logQ correction's sampling probability
/// `p_j` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogqFrequency {
    /// Train counts: `p_j = c_j / N` (the default).
    #[default]
    Counts,
    /// Train counts as the probability of appearing in a batch of
    /// `train.batch_size`, brought to per-example scale:
    /// `(1 − (1 − c_j/N)^B) / B`.
    BatchInclusion,
    /// The streaming estimator of Yi et al. 2019, Algorithm 2 (multi-hash).
    Streaming,
}

/// `[loss]`: in-batch sampled softmax (Yi et al. 2019) with logQ correction.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossSection {
    /// Softmax temperature τ: logits are `cos/τ` (default 0.05).
    pub temperature: f64,
    /// Subtract `log p_j` from every logit (default true).
    pub logq: bool,
    /// Where `p_j` comes from: `"counts"` (train counts `c_j/N`, default),
    /// `"batch_inclusion"` (train counts, probability of appearing in a batch
    /// of `train.batch_size`, brought to per-example scale:
    /// `(1 − (1 − c_j/N)^B)/B`) or `"streaming"` (Yi et al. 2019,
    /// Algorithm 2, multi-hash).
    pub frequency: LogqFrequency,
    /// Strength β of the correction: logits are `cos/τ − β·log p_j` (default
    /// 1.0, the unbiased correction; 0 is the same as `logq = false`).
    pub logq_weight: f64,
    /// Streaming estimator: learning rate α of the gap estimate (default 0.01).
    pub streaming_alpha: f64,
    /// Streaming estimator: buckets per hash array (default 1_048_576).
    pub streaming_buckets: usize,
    /// Streaming estimator: number of hash functions (default 2).
    pub streaming_hashes: usize,
    /// Mask accidental hits (the same item at another column of the row) (default true).
    pub mask_accidental_hits: bool,
    /// Mask false negatives: in-batch candidates that the row's user has
    /// interacted with in the training data (another of the user's clicks in
    /// the batch, or any item of the user's history) are set to −∞ before
    /// the softmax, like accidental hits (default false). Costs one sorted
    /// intersection of history and candidates per row (rows in parallel): on
    /// ML-100K at batch 256 on 2 cores training runs at ~0.75× the
    /// examples/s. See [`crate::history`].
    pub mask_false_negatives: bool,
    /// Mixed negative sampling (Yang et al. 2020): extra uniformly sampled items
    /// per batch, shared by all rows (default 0 = off; at most 65,536).
    pub mixed_negatives: usize,
    /// Multiply each row's loss by the interaction's weight column, if the data has one (default true).
    pub use_weights: bool,
}

impl Default for LossSection {
    fn default() -> Self {
        Self {
            temperature: 0.05,
            logq: true,
            frequency: LogqFrequency::Counts,
            logq_weight: 1.0,
            streaming_alpha: 0.01,
            streaming_buckets: 1 << 20,
            streaming_hashes: 2,
            mask_accidental_hits: true,
            mask_false_negatives: false,
            mixed_negatives: 0,
            use_weights: true,
        }
    }
}

/// Largest `loss.mixed_negatives`: the scores of a step are `B × (B + M)`.
pub const MAX_MIXED_NEGATIVES: usize = 65_536;
