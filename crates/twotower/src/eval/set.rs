//! The evaluation set of a (train, test) split: each test user's distinct
//! test items and train items to exclude, item popularity, the head/tail
//! slices and the cold items, and the seeded user sample (`eval.max_users`).

use serde::{Deserialize, Serialize};

use twotower_model::topk::EvalError;

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
    pub(super) n_users: usize,
    pub(super) n_items: usize,
    pub(super) item_id_rank: Vec<u32>,
    pub(super) popularity: Vec<u32>,
    pub(super) head_items: Vec<u32>,
    pub(super) is_head: Vec<bool>,
    pub(super) train_offsets: Vec<usize>,
    pub(super) train_items: Vec<u32>,
    pub(super) test_offsets: Vec<usize>,
    pub(super) test_items: Vec<u32>,
    pub(super) test_users: Vec<u32>,
    pub(super) n_test_pairs: usize,
    pub(super) n_head_pairs: usize,
    pub(super) n_tail_pairs: usize,
    pub(super) n_cold_pairs: usize,
    pub(super) sampled_from: Option<usize>,
}

/// Builds a CSR (offsets, sorted distinct items) from (user, item) pairs.
pub(super) fn csr_distinct(n_users: usize, pairs: &[(u32, u32)]) -> (Vec<usize>, Vec<u32>) {
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

pub(super) fn check_pairs(
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
pub(super) fn check_catalog(n_items: usize, item_id_rank: &[u32]) -> Result<(), EvalError> {
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
