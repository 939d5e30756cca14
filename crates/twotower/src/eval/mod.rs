//! The evaluation protocol of `shared/EVALUATION.md`: full-catalog exact
//! ranking, exact top-K, and the metrics `recall@K`, `ndcg@K`,
//! `head_recall@K`, `tail_recall@K`, `cold_recall@K` and `coverage@K`.
//!
//! # Protocol, as implemented
//! - Candidates are every catalog item `0..n_items`, including items with no
//!   train interaction.
//! - Each *test user* (a user with at least one test pair) gets every
//!   candidate ranked by the scorer, after removing the items that user has
//!   in train. Ties break by item id: the item with the lower
//!   `item_id_rank` comes first (see [`EvalSet::new`]).
//! - A test item that is also in the user's train set is removed from the
//!   candidates (so it cannot be hit) but still counts in every denominator.
//! - `recall@K` = mean over test users of |top-K ∩ T_u| / |T_u|, with `T_u`
//!   the user's *distinct* test items.
//! - `ndcg@K` = mean over test users of DCG/IDCG with
//!   DCG = Σ_{r=1..K} hit(r) / log2(r + 1) and
//!   IDCG = Σ_{r=1..min(K, |T_u|)} 1 / log2(r + 1).
//! - Item popularity = number of train rows of the item (duplicate rows
//!   count). `head` = the first ⌊0.2 · n_items⌋ items ordered by
//!   (popularity descending, id rank ascending); `tail` = the rest.
//!   `head_recall@K` / `tail_recall@K` = over all distinct (user, item) test
//!   pairs whose item is in the slice, the fraction whose item is in that
//!   user's top-K (pooled, not averaged per user).
//! - `cold_recall@K` = the same over test pairs whose item has popularity 0.
//! - `coverage@K` = fraction of catalog items in at least one test user's
//!   top-K.
//! - A metric with an empty denominator (a slice with no test pairs; no test
//!   users at all) is `None` (serialized `null`), never 0 and never NaN.
//!
//! # Approximate ranking
//! [`evaluate_index`] ranks through a nearest-neighbour index instead
//! (`eval.retrieval = "hnsw"`) with the same exclusion, tie rule and
//! metrics; its figures are approximate and come with [`ann_recall`], the
//! index's recall against exact top-K on a seeded sample of the users.
//! [`evaluate_popularity`] is the most-popular baseline without a catalog
//! scan per user (the same figures as [`evaluate`] with a
//! [`PopularityScorer`]).
//!
//! # Memory and threads
//! Users are scored in blocks of `block_users` users against tiles of
//! `item_tile` items; each rayon task keeps one `[block_users × item_tile]`
//! f32 scratch and one bounded heap of `max(K)` entries per user, so memory is
//! O(threads · block_users · item_tile + n_items), never `n_users × n_items`.
//! Per-user values are summed sequentially in user order after the parallel
//! part, so results do not depend on the number of threads (nor on the block
//! or tile sizes).

//!
//! Files: `set` (the evaluation set), `scorer` (what ranks), `exact` (the
//! exact protocol and its metric reduction), `approximate` (ranking through
//! an index, with its recall against exact); this file holds the settings
//! and the metrics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use twotower_model::topk::{top_k, EvalError};

mod approximate;
mod exact;
mod scorer;
mod set;

pub use approximate::*;
pub use exact::*;
pub use scorer::*;
pub use set::*;

/// Evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Cut-offs K (default `[10, 50, 100]`); each ≥ 1; duplicates are merged.
    pub ks: Vec<usize>,
    /// Users scored together in one block (default 256).
    pub block_users: usize,
    /// Items scored together in one tile (default 2048); the scratch per
    /// thread is `block_users × item_tile` f32 (2 MiB by default, small
    /// enough to stay in cache between the GEMM that writes it and the top-K
    /// scan that reads it: measured 1.3× faster than 16384-item tiles, see
    /// `benches/eval.rs`).
    pub item_tile: usize,
    /// Worker threads; `None` = rayon's global pool. Results do not depend
    /// on it.
    pub threads: Option<usize>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            ks: vec![10, 50, 100],
            block_users: 256,
            item_tile: 2048,
            threads: None,
        }
    }
}

impl EvalConfig {
    /// Checks the fields.
    ///
    /// # Errors
    /// [`EvalError::InvalidConfig`] naming the field.
    pub fn check(&self) -> Result<(), EvalError> {
        let bad = |field, problem: &str| {
            Err(EvalError::InvalidConfig {
                field,
                problem: problem.to_string(),
            })
        };
        if self.ks.is_empty() {
            return bad("ks", "at least one cut-off K is needed");
        }
        if self.ks.contains(&0) {
            return bad("ks", "every K must be at least 1");
        }
        if self.block_users == 0 {
            return bad("block_users", "must be at least 1");
        }
        if self.item_tile == 0 {
            return bad("item_tile", "must be at least 1");
        }
        if self.threads == Some(0) {
            return bad("threads", "must be at least 1 when set");
        }
        Ok(())
    }
}

/// Evaluation result: metric name → value (`None` = no denominator), plus
/// the counts behind them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// `"recall@K"`, `"ndcg@K"`, `"head_recall@K"`, `"tail_recall@K"`,
    /// `"cold_recall@K"`, `"coverage@K"` for each K.
    pub values: BTreeMap<String, Option<f64>>,
    /// The cut-offs, ascending.
    pub ks: Vec<usize>,
    /// Users with at least one test pair.
    pub n_test_users: usize,
    /// Distinct (user, item) test pairs.
    pub n_test_pairs: usize,
    /// Distinct test pairs whose item is in the head slice.
    pub n_head_pairs: usize,
    /// Distinct test pairs whose item is in the tail slice.
    pub n_tail_pairs: usize,
    /// Distinct test pairs whose item has no train interaction.
    pub n_cold_pairs: usize,
    /// Catalog size.
    pub n_items: usize,
    /// Size of the head slice, ⌊0.2 · n_items⌋.
    pub head_size: usize,
    /// When the users were sampled (`eval.max_users`): the number of users
    /// with a test pair the sample of `n_test_users` was drawn from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_from: Option<usize>,
}

impl Metrics {
    /// The value of a metric; `None` when absent or undefined.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied().flatten()
    }
}
