//! Train/test splits (EVALUATION.md "Split: temporal, per user").

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Interactions as parallel columns of entity indices.
///
/// # Shapes
/// `user`, `item`, `timestamp` (and `weight` when present) all have length
/// `len()`. `user[k]` indexes `Dataset::users`, `item[k]` `Dataset::items`.
/// `timestamp` is in the file's unit (row number when the file has none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interactions {
    /// User entity index per interaction.
    pub user: Vec<u32>,
    /// Item entity index per interaction.
    pub item: Vec<u32>,
    /// Timestamp per interaction.
    pub timestamp: Vec<i64>,
    /// Optional weight per interaction (not used by the split).
    pub weight: Option<Vec<f32>>,
}

impl Interactions {
    /// Number of interactions.
    pub fn len(&self) -> usize {
        self.user.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }

    /// The subset at `rows` (in that order).
    pub fn select(&self, rows: &[u32]) -> Interactions {
        fn pick<T: Copy + Send + Sync>(col: &[T], rows: &[u32]) -> Vec<T> {
            rows.par_iter().map(|&r| col[r as usize]).collect()
        }
        let ((user, item), (timestamp, weight)) = rayon::join(
            || rayon::join(|| pick(&self.user, rows), || pick(&self.item, rows)),
            || {
                rayon::join(
                    || pick(&self.timestamp, rows),
                    || self.weight.as_ref().map(|w| pick(w, rows)),
                )
            },
        );
        Interactions {
            user,
            item,
            timestamp,
            weight,
        }
    }

    /// Interactions per item.
    ///
    /// # Shapes
    /// Returns `[n_items]`; items not seen count 0. Item indices must be `< n_items`.
    pub fn item_counts(&self, n_items: usize) -> Vec<u32> {
        let mut c = vec![0u32; n_items];
        for &i in &self.item {
            c[i as usize] += 1;
        }
        c
    }

    /// Interactions per user, `[n_users]`.
    pub fn user_counts(&self, n_users: usize) -> Vec<u32> {
        let mut c = vec![0u32; n_users];
        for &u in &self.user {
            c[u as usize] += 1;
        }
        c
    }
}

/// Number of test interactions of a user with `n` interactions:
/// `ceil(test_fraction · n)` when `n ≥ min_interactions`, else 0.
///
/// The product is computed with a 1e-9 tolerance so that floating-point
/// noise does not round up an exact integer (`0.2 · 15` is
/// `3.0000000000000004` in f64; the protocol means 3). Capped at `n`.
pub fn n_test(n: usize, test_fraction: f64, min_interactions: usize) -> usize {
    if n < min_interactions || n == 0 {
        return 0;
    }
    let x = test_fraction * n as f64;
    let t = (x - 1e-9).ceil().max(0.0) as usize;
    t.min(n)
}

/// Groups interaction rows by user: returns CSR `(offsets, rows)` with the
/// rows of user `u` at `rows[offsets[u]..offsets[u+1]]`, in file order.
fn by_user(all: &Interactions) -> (Vec<usize>, Vec<u32>) {
    let n_users = all.user.iter().map(|&u| u as usize + 1).max().unwrap_or(0);
    let mut offsets = vec![0usize; n_users + 1];
    for &u in &all.user {
        offsets[u as usize + 1] += 1;
    }
    for i in 0..n_users {
        offsets[i + 1] += offsets[i];
    }
    let mut fill = offsets.clone();
    let mut rows = vec![0u32; all.len()];
    for (r, &u) in all.user.iter().enumerate() {
        rows[fill[u as usize]] = r as u32;
        fill[u as usize] += 1;
    }
    (offsets, rows)
}

/// Each user's interactions in time order, the order of EVALUATION.md's
/// temporal split: by `(timestamp, item_rank[item])`, stable (exact
/// duplicates keep file order).
///
/// # Shapes
/// Returns `(offsets, rows)`: user u's row indices into `all`, oldest first,
/// are `rows[offsets[u] .. offsets[u + 1]]`; `offsets` has one entry per user
/// index up to the largest one seen, plus one.
pub fn user_time_order(all: &Interactions, item_rank: &[u32]) -> (Vec<usize>, Vec<u32>) {
    let (offsets, mut rows) = by_user(all);
    // each user's rows on their own (a stable sort), users in parallel: the
    // result does not depend on the thread count
    // (the keys are gathered next to the row index first, so that the sort
    // compares in cache; the row index breaks ties, as a stable sort would)
    user_segments(&mut rows, &offsets)
        .into_par_iter()
        .for_each_init(Vec::new, |keyed: &mut Vec<(i64, u32, u32)>, seg| {
            if seg.len() < 2 {
                return;
            }
            keyed.clear();
            keyed.extend(seg.iter().map(|&r| {
                (
                    all.timestamp[r as usize],
                    item_rank[all.item[r as usize] as usize],
                    r,
                )
            }));
            keyed.sort_unstable();
            for (s, k) in seg.iter_mut().zip(keyed.iter()) {
                *s = k.2;
            }
        });
    (offsets, rows)
}

/// `v` cut at CSR `offsets` (`offsets[0] == 0`, non-decreasing, last
/// `== v.len()`): segment `u` is `v[offsets[u]..offsets[u + 1]]`.
pub(crate) fn user_segments<'a, T>(mut v: &'a mut [T], offsets: &[usize]) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(offsets.len().saturating_sub(1));
    for w in offsets.windows(2) {
        let (seg, rest) = v.split_at_mut(w[1] - w[0]);
        out.push(seg);
        v = rest;
    }
    out
}

/// The temporal per-user split of EVALUATION.md.
///
/// For each user, sort their interactions by `(timestamp, item_rank[item])`
/// (stable: exact duplicates keep file order); the last
/// [`n_test`]`(n_u, test_fraction, min_interactions)` go to test, the rest
/// to train. Both outputs keep the original row order of `all`.
///
/// # Shapes
/// `item_rank`: `[n_items]`, the position of each item in "by item id"
/// order ([`crate::EntityTable::id_rank`]).
pub fn temporal_split(
    all: &Interactions,
    item_rank: &[u32],
    test_fraction: f64,
    min_interactions: usize,
) -> (Interactions, Interactions) {
    // A user's test rows are the last `t` of its time order: the `t`
    // largest keys (timestamp, item rank, row), unique with the row in
    // them, so the same rows whatever the order among them. Each user's
    // keys are only partitioned around its `t`-th largest (no sort), and a
    // user without test rows is not looked at; users in parallel, the
    // result independent of the thread count.
    let (offsets, rows) = by_user(all);
    let segs: Vec<&[u32]> = offsets.windows(2).map(|w| &rows[w[0]..w[1]]).collect();
    let test: Vec<Vec<u32>> = segs
        .par_chunks(1024)
        .map_init(Vec::new, |keyed: &mut Vec<(i64, u32, u32)>, chunk| {
            let mut out = Vec::new();
            for seg in chunk {
                let t = n_test(seg.len(), test_fraction, min_interactions);
                if t == 0 {
                    continue;
                }
                keyed.clear();
                keyed.extend(seg.iter().map(|&r| {
                    (
                        all.timestamp[r as usize],
                        item_rank[all.item[r as usize] as usize],
                        r,
                    )
                }));
                let k = keyed.len() - t;
                if k > 0 {
                    keyed.select_nth_unstable(k);
                }
                out.extend(keyed[k..].iter().map(|x| x.2));
            }
            out
        })
        .collect();
    let mut is_test = vec![false; all.len()];
    for r in test.iter().flatten() {
        is_test[*r as usize] = true;
    }
    apply(all, &is_test)
}

/// A seeded random per-user split with the same per-user test sizes as
/// [`temporal_split`]: each user's interactions are shuffled with
/// ChaCha8(`seed`) (users in index order) and the last `n_test` go to test.
pub fn random_split(
    all: &Interactions,
    test_fraction: f64,
    min_interactions: usize,
    seed: u64,
) -> (Interactions, Interactions) {
    let (offsets, mut rows) = by_user(all);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut is_test = vec![false; all.len()];
    for u in 0..offsets.len().saturating_sub(1) {
        let seg = &mut rows[offsets[u]..offsets[u + 1]];
        let t = n_test(seg.len(), test_fraction, min_interactions);
        if t == 0 {
            continue;
        }
        seg.shuffle(&mut rng);
        for &r in &seg[seg.len() - t..] {
            is_test[r as usize] = true;
        }
    }
    apply(all, &is_test)
}

fn apply(all: &Interactions, is_test: &[bool]) -> (Interactions, Interactions) {
    let mut tr = Vec::with_capacity(all.len());
    let mut te = Vec::new();
    for (r, &t) in is_test.iter().enumerate() {
        if t {
            te.push(r as u32)
        } else {
            tr.push(r as u32)
        }
    }
    rayon::join(|| all.select(&tr), || all.select(&te))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_test_is_exact_ceiling() {
        // ceil(0.2·n): n=5→1, 6→2, 10→2, 11→3, 15→3 (not 4 from fp noise), 4→0 (<5).
        let got: Vec<usize> = [4, 5, 6, 10, 11, 15]
            .iter()
            .map(|&n| n_test(n, 0.2, 5))
            .collect();
        assert_eq!(got, vec![0, 1, 2, 2, 3, 3]);
        for n in 5..10_000 {
            assert_eq!(n_test(n, 0.2, 5), n.div_ceil(5), "n={n}");
        }
    }

    #[test]
    fn temporal_split_by_time_then_item_rank() {
        // User 0: 5 interactions; the latest timestamp 9 is shared by items 2 and 1.
        // Items ranked by id as rank = [2, 0, 1] (item 1 first, then 2, then 0).
        // Sorted by (ts, rank): (1,i0),(2,i0),(3,i0),(9,i1 rank0),(9,i2 rank1) → test = last 1 = row with i2.
        // User 1: 4 interactions → all train.
        let all = Interactions {
            user: vec![0, 0, 1, 0, 0, 1, 1, 0, 1],
            item: vec![2, 0, 0, 1, 0, 0, 1, 0, 2],
            timestamp: vec![9, 1, 5, 9, 2, 6, 7, 3, 8],
            weight: None,
        };
        let rank = vec![2, 0, 1];
        let (tr, te) = temporal_split(&all, &rank, 0.2, 5);
        assert_eq!(te.user, vec![0]);
        assert_eq!(te.item, vec![2]);
        assert_eq!(te.timestamp, vec![9]);
        assert_eq!(tr.len(), 8);
        // Train keeps file order.
        assert_eq!(tr.timestamp, vec![1, 5, 9, 2, 6, 7, 3, 8]);
    }

    #[test]
    fn random_split_sizes_and_determinism() {
        let all = Interactions {
            user: vec![0; 10],
            item: (0..10).collect(),
            timestamp: (0..10).collect(),
            weight: Some(vec![1.0; 10]),
        };
        let (tr, te) = random_split(&all, 0.2, 5, 7);
        assert_eq!((tr.len(), te.len()), (8, 2));
        let (_, te2) = random_split(&all, 0.2, 5, 7);
        assert_eq!(te, te2);
        assert_eq!(te.weight.as_ref().map(|w| w.len()), Some(2));
    }
}
