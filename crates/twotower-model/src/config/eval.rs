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
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            ks: vec![10, 50, 100],
            block_users: 256,
            max_users: 0,
            sample_seed: 0,
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
