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

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use twotower_model::index::VectorIndex;
use twotower_model::topk::TopK;
pub use twotower_model::topk::{top_k, EvalError};

/// Share of the catalog in the `head` popularity slice (EVALUATION.md).
pub const HEAD_FRACTION: f64 = 0.2;

/// Popularity slice of an item (EVALUATION.md "Popularity slices").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Slice {
    /// Among the first ⌊0.2 · n_items⌋ items by (popularity desc, id rank asc).
    Head,
    /// Every other item.
    Tail,
}

/// Everything the protocol needs about one dataset split, built once:
/// per-user train items (to exclude), distinct test items, item popularity,
/// the head/tail slices and the cold items.
#[derive(Debug, Clone)]
pub struct EvalSet {
    n_users: usize,
    n_items: usize,
    item_id_rank: Vec<u32>,
    popularity: Vec<u32>,
    head_items: Vec<u32>,
    is_head: Vec<bool>,
    train_offsets: Vec<usize>,
    train_items: Vec<u32>,
    test_offsets: Vec<usize>,
    test_items: Vec<u32>,
    test_users: Vec<u32>,
    n_test_pairs: usize,
    n_head_pairs: usize,
    n_tail_pairs: usize,
    n_cold_pairs: usize,
    sampled_from: Option<usize>,
}

/// Builds a CSR (offsets, sorted distinct items) from (user, item) pairs.
fn csr_distinct(n_users: usize, pairs: &[(u32, u32)]) -> (Vec<usize>, Vec<u32>) {
    let mut counts = vec![0usize; n_users + 1];
    for &(u, _) in pairs {
        counts[u as usize + 1] += 1;
    }
    for i in 0..n_users {
        counts[i + 1] += counts[i];
    }
    let mut items = vec![0u32; pairs.len()];
    let mut cursor = counts.clone();
    for &(u, i) in pairs {
        items[cursor[u as usize]] = i;
        cursor[u as usize] += 1;
    }
    // Sort and dedup each user's run, compacting in place.
    let mut offsets = Vec::with_capacity(n_users + 1);
    offsets.push(0usize);
    let mut write = 0usize;
    for u in 0..n_users {
        let run = &mut items[counts[u]..counts[u + 1]];
        run.sort_unstable();
        let mut last: Option<u32> = None;
        for r in counts[u]..counts[u + 1] {
            let it = items[r];
            if last != Some(it) {
                items[write] = it;
                write += 1;
                last = Some(it);
            }
        }
        offsets.push(write);
    }
    items.truncate(write);
    items.shrink_to_fit();
    (offsets, items)
}

fn check_pairs(
    split: &'static str,
    pairs: &[(u32, u32)],
    n_users: usize,
    n_items: usize,
) -> Result<(), EvalError> {
    for (index, &(u, i)) in pairs.iter().enumerate() {
        if u as usize >= n_users {
            return Err(EvalError::PairOutOfRange {
                split,
                index,
                field: "user",
                got: u,
                expected: n_users,
            });
        }
        if i as usize >= n_items {
            return Err(EvalError::PairOutOfRange {
                split,
                index,
                field: "item",
                got: i,
                expected: n_items,
            });
        }
    }
    Ok(())
}

/// A catalog of `n_items > 0` items whose `item_id_rank` is a permutation
/// of `0..n_items`.
fn check_catalog(n_items: usize, item_id_rank: &[u32]) -> Result<(), EvalError> {
    if n_items == 0 {
        return Err(EvalError::EmptyCatalog);
    }
    if item_id_rank.len() != n_items {
        return Err(EvalError::RankLength {
            expected: n_items,
            got: item_id_rank.len(),
        });
    }
    let mut seen = vec![false; n_items];
    for (item, &rank) in item_id_rank.iter().enumerate() {
        let r = rank as usize;
        if r >= n_items || seen[r] {
            return Err(EvalError::RankNotPermutation {
                n_items,
                item,
                rank,
            });
        }
        seen[r] = true;
    }
    Ok(())
}

impl EvalSet {
    /// Builds the evaluation set.
    ///
    /// - `n_users`, `n_items`: sizes of the user index space and of the
    ///   catalog (every item `0..n_items` is a candidate).
    /// - `train`, `test`: (user, item) index pairs. Duplicates are allowed:
    ///   popularity counts every train row; test items are de-duplicated per
    ///   user.
    /// - `item_id_rank[i]`: position of item `i` in "by item id" order
    ///   (EVALUATION.md "Ids and ties"); must be a permutation of
    ///   `0..n_items`. Ties in any ranking go to the lower id rank.
    ///
    /// # Errors
    /// [`EvalError::EmptyCatalog`], [`EvalError::PairOutOfRange`],
    /// [`EvalError::RankLength`], [`EvalError::RankNotPermutation`].
    pub fn new(
        n_users: usize,
        n_items: usize,
        train: &[(u32, u32)],
        test: &[(u32, u32)],
        item_id_rank: &[u32],
    ) -> Result<Self, EvalError> {
        check_catalog(n_items, item_id_rank)?;
        check_pairs("train", train, n_users, n_items)?;
        let mut popularity = vec![0u32; n_items];
        for &(_, i) in train {
            popularity[i as usize] = popularity[i as usize].saturating_add(1);
        }
        Self::with_popularity(n_users, n_items, popularity, train, test, item_id_rank)
    }

    /// [`EvalSet::new`] with the items' train popularity given rather than
    /// counted from `train`: for a streamed train split, whose counts the
    /// load computed and whose `train` pairs are only those of the users
    /// evaluated (what their rankings exclude).
    ///
    /// # Shapes
    /// `popularity`: `[n_items]`, train interactions per item.
    ///
    /// # Errors
    /// As [`EvalSet::new`], and [`EvalError::RankLength`] when `popularity`
    /// is not `n_items` long.
    pub fn with_popularity(
        n_users: usize,
        n_items: usize,
        popularity: Vec<u32>,
        train: &[(u32, u32)],
        test: &[(u32, u32)],
        item_id_rank: &[u32],
    ) -> Result<Self, EvalError> {
        check_catalog(n_items, item_id_rank)?;
        if popularity.len() != n_items {
            return Err(EvalError::RankLength {
                expected: n_items,
                got: popularity.len(),
            });
        }
        check_pairs("train", train, n_users, n_items)?;
        check_pairs("test", test, n_users, n_items)?;
        let mut order: Vec<u32> = (0..n_items as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            popularity[b as usize]
                .cmp(&popularity[a as usize])
                .then(item_id_rank[a as usize].cmp(&item_id_rank[b as usize]))
        });
        let head_size = (HEAD_FRACTION * n_items as f64).floor() as usize;
        let head_items = order[..head_size].to_vec();
        let mut is_head = vec![false; n_items];
        for &i in &head_items {
            is_head[i as usize] = true;
        }

        let (train_offsets, train_items) = csr_distinct(n_users, train);
        let (test_offsets, test_items) = csr_distinct(n_users, test);
        let test_users: Vec<u32> = (0..n_users)
            .filter(|&u| test_offsets[u + 1] > test_offsets[u])
            .map(|u| u as u32)
            .collect();
        let n_head_pairs = test_items.iter().filter(|&&i| is_head[i as usize]).count();
        let n_cold_pairs = test_items
            .iter()
            .filter(|&&i| popularity[i as usize] == 0)
            .count();
        Ok(Self {
            n_users,
            n_items,
            item_id_rank: item_id_rank.to_vec(),
            popularity,
            head_items,
            is_head,
            train_offsets,
            train_items,
            n_test_pairs: test_items.len(),
            n_tail_pairs: test_items.len() - n_head_pairs,
            test_offsets,
            test_items,
            test_users,
            n_head_pairs,
            n_cold_pairs,
            sampled_from: None,
        })
    }

    /// Keeps at most `max_users` of the test users (`eval.max_users`;
    /// 0 = all): the first `max_users` of the ascending test users after a
    /// Fisher–Yates shuffle by `ChaCha8Rng::seed_from_u64(seed)`, i.e. a
    /// uniform sample without replacement that depends only on the test
    /// users and `seed`, kept in ascending order. The pair counts (test,
    /// head, tail, cold) are recounted over the sample, so every metric is
    /// the sample's; coverage@K is the share of the catalog reaching a
    /// sampled user's top K. Nothing changes when `max_users` is 0 or at
    /// least the number of test users.
    pub fn sample_users(&mut self, max_users: usize, seed: u64) {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        if max_users == 0 || max_users >= self.test_users.len() {
            return;
        }
        let all = self.test_users.len();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut users = std::mem::take(&mut self.test_users);
        users.shuffle(&mut rng);
        users.truncate(max_users);
        users.sort_unstable();
        let (mut pairs, mut head, mut cold) = (0usize, 0usize, 0usize);
        for &u in &users {
            for &i in self.test_items(u) {
                pairs += 1;
                head += usize::from(self.is_head[i as usize]);
                cold += usize::from(self.popularity[i as usize] == 0);
            }
        }
        self.test_users = users;
        self.n_test_pairs = pairs;
        self.n_head_pairs = head;
        self.n_tail_pairs = pairs - head;
        self.n_cold_pairs = cold;
        self.sampled_from = Some(all);
    }

    /// The number of test users before [`EvalSet::sample_users`] drew a
    /// sample, or `None` when every test user is evaluated.
    pub fn sampled_from(&self) -> Option<usize> {
        self.sampled_from
    }

    /// Number of users (the user index space, not only test users).
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// Catalog size.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// `item_id_rank[i]`: position of item `i` in "by item id" order.
    pub fn item_id_rank(&self) -> &[u32] {
        &self.item_id_rank
    }

    /// Train popularity of each item (number of train rows), `[n_items]`.
    pub fn item_popularity(&self) -> &[u32] {
        &self.popularity
    }

    /// The head slice, in order (popularity desc, id rank asc), length
    /// ⌊0.2 · n_items⌋.
    pub fn head_items(&self) -> &[u32] {
        &self.head_items
    }

    /// Popularity slice of `item`.
    ///
    /// # Panics
    /// If `item >= n_items`.
    pub fn slice_of(&self, item: u32) -> Slice {
        if self.is_head[item as usize] {
            Slice::Head
        } else {
            Slice::Tail
        }
    }

    /// Whether `item` has no train interaction.
    ///
    /// # Panics
    /// If `item >= n_items`.
    pub fn is_cold(&self, item: u32) -> bool {
        self.popularity[item as usize] == 0
    }

    /// Users with at least one test pair, ascending.
    pub fn test_users(&self) -> &[u32] {
        &self.test_users
    }

    /// Distinct train items of `user`, ascending (the items removed from the
    /// user's candidates).
    ///
    /// # Panics
    /// If `user >= n_users`.
    pub fn train_items(&self, user: u32) -> &[u32] {
        let u = user as usize;
        &self.train_items[self.train_offsets[u]..self.train_offsets[u + 1]]
    }

    /// Distinct test items of `user`, ascending.
    ///
    /// # Panics
    /// If `user >= n_users`.
    pub fn test_items(&self, user: u32) -> &[u32] {
        let u = user as usize;
        &self.test_items[self.test_offsets[u]..self.test_offsets[u + 1]]
    }

    /// Number of distinct (user, item) test pairs.
    pub fn n_test_pairs(&self) -> usize {
        self.n_test_pairs
    }
}

/// Something that scores (user, item) pairs: a higher score ranks higher.
pub trait Scorer: Sync {
    /// Catalog size the scorer covers (must equal [`EvalSet::n_items`]).
    fn n_items(&self) -> usize;

    /// Number of users the scorer has vectors for, or `None` when any user
    /// index is accepted (e.g. the popularity baseline).
    fn n_users(&self) -> Option<usize> {
        None
    }

    /// Checks the scorer's own invariants before [`evaluate`] uses it
    /// (e.g. matching vector dimensions); the default accepts.
    ///
    /// # Errors
    /// Any [`EvalError`] describing the problem.
    fn check(&self) -> Result<(), EvalError> {
        Ok(())
    }

    /// Scores of the items `items` for each user of `users`.
    ///
    /// # Shapes
    /// `out`: `[users.len() × items.len()]`, row-major; `out[r * items.len() + c]`
    /// is the score of item `items.start + c` for user `users[r]`.
    ///
    /// # Panics
    /// May panic if a user or item is out of range or `out` has the wrong
    /// length ([`evaluate`] checks both before calling).
    fn score_block(&self, users: &[u32], items: Range<usize>, out: &mut [f32]);
}

/// Dot-product scorer: `score(u, i) = ⟨users[u], items[i]⟩` — the cosine when
/// the rows are unit-norm (the towers' output). Scores a block with one GEMM
/// (`ndarray::linalg::general_mat_mul`).
///
/// # Shapes
/// `users`: `[n_users × d]`, `items`: `[n_items × d]` (any strides). The
/// fields are public; [`evaluate`] checks that the two `d` agree
/// ([`Scorer::check`]), and [`DotScorer::new`] checks it up front.
#[derive(Debug, Clone)]
pub struct DotScorer<'a> {
    /// User vectors `[n_users × d]`, row = user index.
    pub users: ArrayView2<'a, f32>,
    /// Item vectors `[n_items × d]`, row = item index.
    pub items: ArrayView2<'a, f32>,
}

impl<'a> DotScorer<'a> {
    /// # Errors
    /// [`EvalError::DimMismatch`] when the column counts differ.
    pub fn new(users: ArrayView2<'a, f32>, items: ArrayView2<'a, f32>) -> Result<Self, EvalError> {
        let s = Self { users, items };
        s.check()?;
        Ok(s)
    }
}

impl Scorer for DotScorer<'_> {
    fn n_items(&self) -> usize {
        self.items.nrows()
    }

    fn n_users(&self) -> Option<usize> {
        Some(self.users.nrows())
    }

    fn check(&self) -> Result<(), EvalError> {
        if self.users.ncols() != self.items.ncols() {
            return Err(EvalError::DimMismatch {
                user_dim: self.users.ncols(),
                item_dim: self.items.ncols(),
            });
        }
        Ok(())
    }

    fn score_block(&self, users: &[u32], items: Range<usize>, out: &mut [f32]) {
        let d = self.users.ncols();
        let mut ub = Array2::<f32>::zeros((users.len(), d));
        for (mut row, &u) in ub.rows_mut().into_iter().zip(users) {
            row.assign(&self.users.row(u as usize));
        }
        let n = items.len();
        let it = self.items.slice(s![items, ..]);
        let mut o = ArrayViewMut2::from_shape((users.len(), n), out)
            .expect("score_block: out must have users.len() * items.len() entries");
        crate::linalg::gemm(1.0, &ub, &it.t(), 0.0, &mut o);
    }
}

/// The most-popular baseline: score(u, i) = train popularity of `i` (the
/// same for every user), so the ranking is popularity desc, id rank asc,
/// minus the user's train items. Counts above 2^24 lose precision in f32.
#[derive(Debug, Clone)]
pub struct PopularityScorer {
    scores: Vec<f32>,
}

impl PopularityScorer {
    /// From the evaluation set's train popularity
    /// ([`EvalSet::item_popularity`]).
    pub fn from_set(set: &EvalSet) -> Self {
        Self::new(set.item_popularity())
    }

    /// From per-item train counts, `[n_items]`.
    pub fn new(counts: &[u32]) -> Self {
        Self {
            scores: counts.iter().map(|&c| c as f32).collect(),
        }
    }
}

impl Scorer for PopularityScorer {
    fn n_items(&self) -> usize {
        self.scores.len()
    }

    fn score_block(&self, users: &[u32], items: Range<usize>, out: &mut [f32]) {
        let n = items.len();
        let src = &self.scores[items];
        for r in 0..users.len() {
            out[r * n..(r + 1) * n].copy_from_slice(src);
        }
    }
}

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

/// 1 / log2(r + 1) for the 1-based rank r = pos + 1.
#[inline]
fn discount(pos: usize) -> f64 {
    1.0 / ((pos + 2) as f64).log2()
}

/// Per-block output: per test user and per K, (recall, ndcg); slice hits per K.
struct BlockOut {
    per_user: Vec<f64>, // [users × nk × 2]
    head_hits: Vec<u64>,
    tail_hits: Vec<u64>,
    cold_hits: Vec<u64>,
}

impl BlockOut {
    fn new(users: usize, nk: usize) -> Self {
        Self {
            per_user: Vec::with_capacity(users * nk * 2),
            head_hits: vec![0; nk],
            tail_hits: vec![0; nk],
            cold_hits: vec![0; nk],
        }
    }

    /// Adds user `u`'s metrics from its ranked list (best first, at most
    /// max(K) items, seen items already removed).
    fn add_user(
        &mut self,
        set: &EvalSet,
        u: u32,
        list: &[(u32, f32)],
        ks: &[usize],
        idcg: &[f64],
        min_pos: &[AtomicU32],
    ) {
        let test = set.test_items(u);
        let mut hits_at: Vec<usize> = Vec::new();
        for (pos, &(item, _)) in list.iter().enumerate() {
            min_pos[item as usize].fetch_min(pos as u32, Ordering::Relaxed);
            if test.binary_search(&item).is_ok() {
                hits_at.push(pos);
                for (ki, &k) in ks.iter().enumerate() {
                    if pos < k {
                        if set.is_head[item as usize] {
                            self.head_hits[ki] += 1;
                        } else {
                            self.tail_hits[ki] += 1;
                        }
                        if set.popularity[item as usize] == 0 {
                            self.cold_hits[ki] += 1;
                        }
                    }
                }
            }
        }
        for &k in ks {
            let hits = hits_at.iter().filter(|&&p| p < k).count();
            let dcg: f64 = hits_at
                .iter()
                .filter(|&&p| p < k)
                .map(|&p| discount(p))
                .sum();
            let ideal = idcg[k.min(test.len())];
            self.per_user.push(hits as f64 / test.len() as f64);
            self.per_user.push(dcg / ideal);
        }
    }
}

/// The exact top-`kmax` heaps of a block of users: every catalog item
/// scored by `scorer`, tile by tile, the user's train items skipped.
fn rank_block(
    scorer: &dyn Scorer,
    set: &EvalSet,
    users: &[u32],
    kmax: usize,
    item_tile: usize,
) -> Result<Vec<TopK>, EvalError> {
    let n_items = set.n_items;
    let tile = item_tile.min(n_items);
    let mut scratch = vec![0f32; users.len() * tile];
    let mut heaps: Vec<TopK> = users.iter().map(|_| TopK::new(kmax.min(n_items))).collect();
    let mut start = 0usize;
    while start < n_items {
        let end = (start + tile).min(n_items);
        let len = end - start;
        let buf = &mut scratch[..users.len() * len];
        scorer.score_block(users, start..end, buf);
        for (r, (&u, heap)) in users.iter().zip(heaps.iter_mut()).enumerate() {
            let row = &buf[r * len..(r + 1) * len];
            let train = set.train_items(u);
            let lo = train.partition_point(|&i| (i as usize) < start);
            heap.scan_excluding(row, start, &train[lo..], &set.item_id_rank)
                .map_err(|item| EvalError::NanScore {
                    user: Some(u),
                    item,
                })?;
        }
        start = end;
    }
    Ok(heaps)
}

#[allow(clippy::too_many_arguments)]
fn eval_block(
    scorer: &dyn Scorer,
    set: &EvalSet,
    users: &[u32],
    ks: &[usize],
    item_tile: usize,
    idcg: &[f64],
    min_pos: &[AtomicU32],
) -> Result<BlockOut, EvalError> {
    let kmax = *ks.last().expect("ks checked non-empty");
    let mut heaps = rank_block(scorer, set, users, kmax, item_tile)?;
    let mut out = BlockOut::new(users.len(), ks.len());
    let mut list = Vec::with_capacity(kmax);
    for (&u, heap) in users.iter().zip(heaps.iter_mut()) {
        heap.drain_sorted(&mut list);
        out.add_user(set, u, &list, ks, idcg, min_pos);
    }
    Ok(out)
}

/// The sorted, de-duplicated cut-offs and the ideal DCG table up to max(K).
fn ks_and_idcg(cfg: &EvalConfig) -> (Vec<usize>, Vec<f64>) {
    let mut ks = cfg.ks.clone();
    ks.sort_unstable();
    ks.dedup();
    let kmax = *ks.last().expect("checked non-empty");
    let mut idcg = vec![0f64; kmax + 1];
    for n in 1..=kmax {
        idcg[n] = idcg[n - 1] + discount(n - 1);
    }
    (ks, idcg)
}

/// Runs `f` on rayon's global pool, or on a pool of `cfg.threads`.
fn in_pool<T: Send>(
    cfg: &EvalConfig,
    f: impl FnOnce() -> Result<T, EvalError> + Send,
) -> Result<T, EvalError> {
    match cfg.threads {
        Some(t) => rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map_err(|e| EvalError::InvalidConfig {
                field: "threads",
                problem: e.to_string(),
            })?
            .install(f),
        None => f(),
    }
}

/// Runs the protocol: ranks the whole catalog for every test user of `set`
/// with `scorer` and returns every metric for every K of `cfg.ks`.
///
/// Memory is bounded by `threads × block_users × item_tile` scratch f32 plus
/// per-user heaps of max(K) entries; see the module docs. The result does
/// not depend on the number of threads.
///
/// # Errors
/// [`EvalError::InvalidConfig`], [`EvalError::ScorerItems`],
/// [`EvalError::ScorerUsers`], [`EvalError::NanScore`].
pub fn evaluate(
    scorer: &dyn Scorer,
    set: &EvalSet,
    cfg: &EvalConfig,
) -> Result<Metrics, EvalError> {
    cfg.check()?;
    scorer.check()?;
    if scorer.n_items() != set.n_items {
        return Err(EvalError::ScorerItems {
            expected: set.n_items,
            got: scorer.n_items(),
        });
    }
    if let Some(n) = scorer.n_users() {
        if n < set.n_users {
            return Err(EvalError::ScorerUsers {
                expected: set.n_users,
                got: n,
            });
        }
    }
    let (ks, idcg) = ks_and_idcg(cfg);
    let min_pos: Vec<AtomicU32> = (0..set.n_items).map(|_| AtomicU32::new(u32::MAX)).collect();

    // Collect every block's result, then report the first error in user
    // order, so that the error itself does not depend on scheduling.
    let run = || -> Result<Vec<BlockOut>, EvalError> {
        let results: Vec<Result<BlockOut, EvalError>> = set
            .test_users
            .par_chunks(cfg.block_users)
            .map(|users| eval_block(scorer, set, users, &ks, cfg.item_tile, &idcg, &min_pos))
            .collect();
        results.into_iter().collect()
    };
    let blocks = in_pool(cfg, run)?;
    Ok(reduce(set, &ks, &blocks, &min_pos))
}

/// The metrics of the per-block results, summed sequentially in user
/// order: independent of threads and blocks.
fn reduce(set: &EvalSet, ks: &[usize], blocks: &[BlockOut], min_pos: &[AtomicU32]) -> Metrics {
    let nk = ks.len();
    let mut recall_sum = vec![0f64; nk];
    let mut ndcg_sum = vec![0f64; nk];
    let mut head = vec![0u64; nk];
    let mut tail = vec![0u64; nk];
    let mut cold = vec![0u64; nk];
    for b in blocks {
        for user_vals in b.per_user.chunks(2 * nk) {
            for ki in 0..nk {
                recall_sum[ki] += user_vals[2 * ki];
                ndcg_sum[ki] += user_vals[2 * ki + 1];
            }
        }
        for ki in 0..nk {
            head[ki] += b.head_hits[ki];
            tail[ki] += b.tail_hits[ki];
            cold[ki] += b.cold_hits[ki];
        }
    }
    let n_users = set.test_users.len();
    let ratio = |num: f64, den: usize| {
        if den == 0 {
            None
        } else {
            Some(num / den as f64)
        }
    };
    let mut values = BTreeMap::new();
    for (ki, &k) in ks.iter().enumerate() {
        values.insert(format!("recall@{k}"), ratio(recall_sum[ki], n_users));
        values.insert(format!("ndcg@{k}"), ratio(ndcg_sum[ki], n_users));
        values.insert(
            format!("head_recall@{k}"),
            ratio(head[ki] as f64, set.n_head_pairs),
        );
        values.insert(
            format!("tail_recall@{k}"),
            ratio(tail[ki] as f64, set.n_tail_pairs),
        );
        values.insert(
            format!("cold_recall@{k}"),
            ratio(cold[ki] as f64, set.n_cold_pairs),
        );
        let covered = min_pos
            .iter()
            .filter(|p| (p.load(Ordering::Relaxed) as usize) < k)
            .count();
        let coverage = if n_users == 0 {
            None
        } else {
            Some(covered as f64 / set.n_items as f64)
        };
        values.insert(format!("coverage@{k}"), coverage);
    }
    Metrics {
        values,
        ks: ks.to_vec(),
        n_test_users: n_users,
        n_test_pairs: set.n_test_pairs,
        n_head_pairs: set.n_head_pairs,
        n_tail_pairs: set.n_tail_pairs,
        n_cold_pairs: set.n_cold_pairs,
        n_items: set.n_items,
        head_size: set.head_items.len(),
        sampled_from: set.sampled_from,
    }
}

/// A per-user ranking: `(user, k, out)` writes the user's best `k`
/// candidates into `out`, best first.
type RankUser<'a> = dyn Fn(u32, usize, &mut Vec<(u32, f32)>) -> Result<(), EvalError> + Sync + 'a;

/// Runs the protocol with a per-user ranking given by `rank_user`: for a
/// test user, its best `max(K)` candidates, best first, the user's train
/// items already left out (the metrics, the reduction and the thread
/// independence are [`evaluate`]'s). Errors are reported in user order.
fn evaluate_ranked(
    set: &EvalSet,
    cfg: &EvalConfig,
    rank_user: &RankUser<'_>,
) -> Result<Metrics, EvalError> {
    cfg.check()?;
    let (ks, idcg) = ks_and_idcg(cfg);
    let kmax = *ks.last().expect("checked non-empty");
    let min_pos: Vec<AtomicU32> = (0..set.n_items).map(|_| AtomicU32::new(u32::MAX)).collect();
    let run = || -> Result<Vec<BlockOut>, EvalError> {
        let results: Vec<Result<BlockOut, EvalError>> = set
            .test_users
            .par_chunks(cfg.block_users)
            .map(|users| {
                let mut out = BlockOut::new(users.len(), ks.len());
                let mut list = Vec::with_capacity(kmax);
                for &u in users {
                    rank_user(u, kmax, &mut list)?;
                    out.add_user(set, u, &list, &ks, &idcg, &min_pos);
                }
                Ok(out)
            })
            .collect();
        results.into_iter().collect()
    };
    let blocks = in_pool(cfg, run)?;
    Ok(reduce(set, &ks, &blocks, &min_pos))
}

/// [`evaluate`] with the [`PopularityScorer`] of `set`, the same metrics
/// (`tests/eval_protocol.rs` checks equality), without scanning the catalog
/// per user: the score is the same for every user, so the catalog is
/// sorted once by (popularity desc, id rank asc) and a user's top K is
/// the first K items of that order that are not among their train items —
/// O(K + |train items|) per user instead of O(n_items). The approximate
/// evaluation uses it for its baseline, whose catalog scan would otherwise
/// cost as much as the exact ranking it replaces.
///
/// # Errors
/// [`EvalError::InvalidConfig`].
pub fn evaluate_popularity(set: &EvalSet, cfg: &EvalConfig) -> Result<Metrics, EvalError> {
    let scores = PopularityScorer::from_set(set).scores;
    let mut order: Vec<u32> = (0..set.n_items as u32).collect();
    // the order of `TopK`: higher score, then lower id rank (counts are never NaN)
    order.sort_unstable_by(|&a, &b| {
        scores[b as usize]
            .total_cmp(&scores[a as usize])
            .then(set.item_id_rank[a as usize].cmp(&set.item_id_rank[b as usize]))
    });
    evaluate_ranked(set, cfg, &|u, kmax, list| {
        let train = set.train_items(u);
        list.clear();
        for &i in &order {
            if list.len() == kmax {
                break;
            }
            if train.binary_search(&i).is_err() {
                list.push((i, scores[i as usize]));
            }
        }
        Ok(())
    })
}

/// Checks that `index` and `users` fit `set` for [`evaluate_index`] and
/// [`ann_recall`].
fn check_index(
    index: &dyn VectorIndex,
    users: ArrayView2<f32>,
    set: &EvalSet,
) -> Result<(), EvalError> {
    if index.len() != set.n_items {
        return Err(EvalError::ScorerItems {
            expected: set.n_items,
            got: index.len(),
        });
    }
    if users.nrows() < set.n_users {
        return Err(EvalError::ScorerUsers {
            expected: set.n_users,
            got: users.nrows(),
        });
    }
    if users.ncols() != index.dim() {
        return Err(EvalError::DimMismatch {
            user_dim: users.ncols(),
            item_dim: index.dim(),
        });
    }
    Ok(())
}

/// User `u`'s top `k` through `index`, its train items excluded inside
/// the search (the index's filtered search).
fn search_user(
    index: &dyn VectorIndex,
    users: ArrayView2<f32>,
    set: &EvalSet,
    u: u32,
    k: usize,
) -> Result<Vec<(u32, f32)>, EvalError> {
    let row = users.row(u as usize);
    let q: std::borrow::Cow<[f32]> = match row.as_slice() {
        Some(q) => q.into(),
        None => row.to_vec().into(),
    };
    index
        .search(&q, k, set.train_items(u))
        .map_err(|e| EvalError::Index {
            user: u,
            message: e.to_string(),
        })
}

/// The protocol with each test user's ranking taken from an approximate
/// index (`eval.retrieval = "hnsw"`): the top max(K) items `index.search`
/// returns for the user's vector, the user's train items excluded inside
/// the search; ties by the index's tie rank (build it with the set's
/// [`EvalSet::item_id_rank`]). Every metric is computed as in
/// [`evaluate`] over that ranking, so the result equals `evaluate`'s when
/// the index finds the exact top K (an exact index always does); with an
/// approximate index the figures are approximate and must be reported
/// with [`ann_recall`] (EVALUATION.md).
///
/// # Shapes
/// `users`: `[n_users × d]`, row = user index; `index`: `n_items` rows of
/// dimension `d`.
///
/// # Errors
/// [`EvalError::InvalidConfig`], [`EvalError::ScorerItems`],
/// [`EvalError::ScorerUsers`], [`EvalError::DimMismatch`],
/// [`EvalError::Index`].
pub fn evaluate_index(
    index: &dyn VectorIndex,
    users: ArrayView2<f32>,
    set: &EvalSet,
    cfg: &EvalConfig,
) -> Result<Metrics, EvalError> {
    check_index(index, users, set)?;
    evaluate_ranked(set, cfg, &|u, kmax, list| {
        *list = search_user(index, users, set, u, kmax)?;
        Ok(())
    })
}

/// Recall of an approximate index against exact top-K (EVALUATION.md:
/// "an approximate index must report its recall against exact top-K
/// separately").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnRecall {
    /// `"recall@K"` for each K: mean over the probed users of
    /// |approximate top-K ∩ exact top-K| / |exact top-K| (item sets; the
    /// exact list is shorter than K only when fewer candidates remain).
    pub values: BTreeMap<String, f64>,
    /// Users probed (a seeded sample of the evaluated test users).
    pub n_users: usize,
}

/// [`AnnRecall`] of `index` on at most `max_users` of the set's test users
/// (a uniform sample without replacement by `ChaCha8Rng::seed_from_u64(seed)`,
/// as [`EvalSet::sample_users`] draws, so it is deterministic): each
/// user's exact top max(K) (scored by `exact`, the reference, with
/// [`evaluate`]'s seen-item exclusion and tie rule) against the index's.
///
/// # Shapes
/// `users`: `[n_users × d]`; `exact` scores the same vectors as `index`.
///
/// # Errors
/// [`EvalError::InvalidConfig`] (also for `max_users` = 0), the scorer's and
/// the index's errors.
pub fn ann_recall(
    index: &dyn VectorIndex,
    users: ArrayView2<f32>,
    exact: &dyn Scorer,
    set: &EvalSet,
    cfg: &EvalConfig,
    max_users: usize,
    seed: u64,
) -> Result<AnnRecall, EvalError> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    cfg.check()?;
    exact.check()?;
    check_index(index, users, set)?;
    if max_users == 0 {
        return Err(EvalError::InvalidConfig {
            field: "ann_recall_users",
            problem: "must be at least 1".into(),
        });
    }
    if exact.n_items() != set.n_items {
        return Err(EvalError::ScorerItems {
            expected: set.n_items,
            got: exact.n_items(),
        });
    }
    let (ks, _) = ks_and_idcg(cfg);
    let kmax = *ks.last().expect("checked non-empty");
    let mut probe = set.test_users.clone();
    if probe.len() > max_users {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        probe.shuffle(&mut rng);
        probe.truncate(max_users);
        probe.sort_unstable();
    }
    let run = || -> Result<Vec<Vec<f64>>, EvalError> {
        let results: Vec<Result<Vec<f64>, EvalError>> = probe
            .par_chunks(cfg.block_users)
            .map(|block| {
                let mut heaps = rank_block(exact, set, block, kmax, cfg.item_tile)?;
                let mut want = Vec::with_capacity(kmax);
                let mut sums = vec![0f64; ks.len() + 1];
                for (&u, heap) in block.iter().zip(heaps.iter_mut()) {
                    heap.drain_sorted(&mut want);
                    if want.is_empty() {
                        continue; // every item seen: nothing to find
                    }
                    let got = search_user(index, users, set, u, kmax)?;
                    for (ki, &k) in ks.iter().enumerate() {
                        let mut w: Vec<u32> = want.iter().take(k).map(|e| e.0).collect();
                        w.sort_unstable();
                        let found = got
                            .iter()
                            .take(k)
                            .filter(|e| w.binary_search(&e.0).is_ok())
                            .count();
                        sums[ki] += found as f64 / w.len() as f64;
                    }
                    sums[ks.len()] += 1.0;
                }
                Ok(sums)
            })
            .collect();
        results.into_iter().collect()
    };
    let blocks = in_pool(cfg, run)?;
    let mut sums = vec![0f64; ks.len() + 1];
    for b in &blocks {
        for (s, x) in sums.iter_mut().zip(b) {
            *s += x;
        }
    }
    let n = sums[ks.len()];
    let values = ks
        .iter()
        .enumerate()
        .map(|(ki, &k)| {
            let r = if n > 0.0 { sums[ki] / n } else { 1.0 };
            (format!("recall@{k}"), r)
        })
        .collect();
    Ok(AnnRecall {
        values,
        n_users: n as usize,
    })
}
