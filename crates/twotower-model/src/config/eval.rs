//! `[eval]`: the cut-offs K, the user sample and the blocks of exact
//! evaluation, and the metric families of EVALUATION.md.

use serde::{Deserialize, Serialize};

/// `[eval]`: the evaluation protocol (EVALUATION.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Cut-offs K (default `[10, 50, 100]`).
    pub ks: Vec<usize>,
    /// Users scored per block (memory = block × catalog × 4 bytes per thread) (default 256).
    pub block_users: usize,
    /// Evaluate on at most this many users with a held-out pair, drawn
    /// uniformly without replacement by a seeded shuffle (`sample_seed`);
    /// 0 = every such user (default 0, the protocol's full evaluation).
    /// Applies to the validation and the test split; the metrics record
    /// the sample (`n_test_users` of `sampled_from`).
    pub max_users: usize,
    /// Seed of the user sample of `max_users` (default 0). Independent of
    /// `train.seed`, so runs with different training seeds are evaluated
    /// on the same users.
    pub sample_seed: u64,
    /// How the test evaluation (`twotower train`'s final one and `twotower
    /// eval`) ranks the catalog: `"exact"` (brute force, EVALUATION.md's
    /// reference; the default) or `"hnsw"` (through the usearch HNSW index
    /// of [`crate::ann`]; the metrics are labelled approximate and the
    /// index's recall against exact top-K is reported beside them).
    /// Validation during training is always exact.
    pub retrieval: Retrieval,
    /// Search breadth `ef` of the HNSW index when `retrieval = "hnsw"`
    /// (default 256; at least 1 and at most 100000; usearch searches with
    /// `max(ef, K)`).
    pub ann_ef: usize,
    /// Users (a seeded sample of the evaluated ones, `sample_seed`) on which
    /// the HNSW ranking is compared with the exact one when `retrieval =
    /// "hnsw"`: its recall@K against exact top-K (default 1000; at least 1).
    pub ann_recall_users: usize,
}

/// `eval.retrieval`: how the test evaluation ranks the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retrieval {
    /// Brute-force scores of every item (the reference of EVALUATION.md).
    #[default]
    Exact,
    /// The HNSW graph of Malkov & Yashunin 2018 ("Efficient and robust
    /// approximate nearest neighbor search using Hierarchical Navigable
    /// Small World graphs"), usearch's implementation, over the centred
    /// distinct item vectors ([`crate::ann::UsearchIndex`]); seen items are
    /// skipped inside the graph walk.
    Hnsw,
}

impl Retrieval {
    /// The config value (`"exact"`, `"hnsw"`).
    pub fn name(self) -> &'static str {
        match self {
            Retrieval::Exact => "exact",
            Retrieval::Hnsw => "hnsw",
        }
    }
}

/// Largest `eval.ann_ef`.
pub const MAX_ANN_EF: usize = 100_000;

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            ks: vec![10, 50, 100],
            block_users: 256,
            max_users: 0,
            sample_seed: 0,
            retrieval: Retrieval::Exact,
            ann_ef: 256,
            ann_recall_users: 1000,
        }
    }
}

/// Metric families of EVALUATION.md (`<family>@K` for every K of
/// `eval.ks`), in report order: what `train.monitor` may name and what the
/// reports and the CLI print.
pub const METRIC_PREFIXES: [&str; 6] = [
    "recall",
    "ndcg",
    "head_recall",
    "tail_recall",
    "cold_recall",
    "coverage",
];

/// The largest K of `eval.ks` (a top-K list per user is allocated).
pub const MAX_EVAL_K: usize = 1_000_000;

/// Whether `monitor` names a metric the evaluation computes for `ks`.
pub(super) fn monitor_is_computed(monitor: &str, ks: &[usize]) -> bool {
    let Some((name, k)) = monitor.split_once('@') else {
        return false;
    };
    METRIC_PREFIXES.contains(&name) && k.parse::<usize>().is_ok_and(|k| ks.contains(&k))
}
