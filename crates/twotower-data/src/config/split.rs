//! `[data.split]`: [`SplitConfig`], how the interactions are split into
//! train and test ([`SplitKind`]: temporal or random, per user).

use serde::{Deserialize, Serialize};

/// Split kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitKind {
    /// Per user, the last interactions by (timestamp, item id) go to test (EVALUATION.md; default).
    #[default]
    Temporal,
    /// Per user, a seeded random subset goes to test (same sizes as temporal).
    Random,
}

/// `[data.split]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// `"temporal"` (default) or `"random"`.
    #[serde(default)]
    pub kind: SplitKind,
    /// Per-user test share: `ceil(test_fraction · n_u)` go to test. Default 0.2.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Users with fewer interactions go to train entirely. Default 5.
    #[serde(default = "default_min_interactions")]
    pub min_interactions: usize,
    /// Seed of the random split. Default 0.
    #[serde(default)]
    pub seed: u64,
}

fn default_test_fraction() -> f64 {
    0.2
}
fn default_min_interactions() -> usize {
    5
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            kind: SplitKind::Temporal,
            test_fraction: 0.2,
            min_interactions: 5,
            seed: 0,
        }
    }
}
