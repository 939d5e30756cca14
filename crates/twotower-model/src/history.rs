//! Users' training histories, for masking **false negatives** in the
//! in-batch softmax.
//!
//! With in-batch negatives, row i's negatives are the other rows' positives.
//! When one of them is an item that row i's user has also interacted with
//! (another of that user's clicks in the same batch, or any item of the
//! user's training history), it is a *false negative*: the loss pushes the
//! user away from an item the user chose. On dense data this is common — on
//! ML-100K a random in-batch item is in the user's history about one time in
//! twelve. Masking those cells (−∞ before the softmax, like accidental hits)
//! is the usual remedy (e.g. Zhou et al. 2021, "Contrastive learning for
//! debiased candidate generation"; the "remove false negatives" step of
//! contrastive recommenders). At evaluation the user's train items are
//! removed from the ranking anyway (EVALUATION.md), so nothing is lost by
//! not pushing them down.
//!
//! Memory is O(training interactions), built once; a step sorts its C
//! candidates once and intersects each row's history (h items) with them by
//! merge or binary search, whichever is cheaper, rows in parallel — at most
//! O(B · min(h + C, min(h, C) · log max(h, C))) — and touches nothing
//! O(vocabulary).
//!
//! [`recency_weights`] gives each training interaction a weight that decays
//! with its age within its user's history (time-decayed sample weights).

use rayon::prelude::*;
use twotower_data::{user_time_order, Interactions};

/// Each user's distinct training items, sorted (CSR).
///
/// # Shapes
/// `offsets`: `users + 1`; `items`: the distinct items of user u at
/// `items[offsets[u] .. offsets[u + 1]]`, ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserHistory {
    offsets: Vec<u64>,
    items: Vec<u32>,
}

impl UserHistory {
    /// Builds the histories of `n_users` users from interaction pairs
    /// (`users[k]`, `items[k]`); duplicates are kept once.
    ///
    /// # Panics
    /// If `users` and `items` differ in length or a user index is `≥ n_users`.
    pub fn from_pairs(n_users: usize, users: &[u32], items: &[u32]) -> Self {
        assert_eq!(users.len(), items.len(), "history: users/items lengths");
        let mut counts = vec![0u64; n_users + 1];
        for &u in users {
            assert!((u as usize) < n_users, "history: user {u} ≥ {n_users}");
            counts[u as usize + 1] += 1;
        }
        for k in 1..=n_users {
            counts[k] += counts[k - 1];
        }
        let mut fill = counts.clone();
        let mut raw = vec![0u32; users.len()];
        for (&u, &i) in users.iter().zip(items) {
            let at = &mut fill[u as usize];
            raw[*at as usize] = i;
            *at += 1;
        }
        // sort and deduplicate each user's slice, compacting as we go
        let mut offsets = Vec::with_capacity(n_users + 1);
        offsets.push(0u64);
        let mut out = Vec::with_capacity(raw.len());
        for u in 0..n_users {
            let s = &mut raw[counts[u] as usize..counts[u + 1] as usize];
            s.sort_unstable();
            let start = out.len();
            for &i in s.iter() {
                if out.len() == start || *out.last().expect("non-empty") != i {
                    out.push(i);
                }
            }
            offsets.push(out.len() as u64);
        }
        out.shrink_to_fit();
        Self {
            offsets,
            items: out,
        }
    }

    /// Number of users.
    pub fn users(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// User `u`'s distinct training items, ascending (empty for an unknown user).
    pub fn of(&self, u: u32) -> &[u32] {
        let u = u as usize;
        if u + 1 >= self.offsets.len() {
            return &[];
        }
        &self.items[self.offsets[u] as usize..self.offsets[u + 1] as usize]
    }

    /// Whether user `u` has item `i` in its training history.
    pub fn contains(&self, u: u32, i: u32) -> bool {
        self.of(u).binary_search(&i).is_ok()
    }

    /// The false-negative mask of a batch, in the CSR form of
    /// [`crate::loss::CellMask`]: row i lists, ascending, every candidate
    /// column `j ≠ i` whose item is in the history of row i's user.
    /// Overwrites `offsets` (`B + 1`) and `cols`; `scratch` is reused across
    /// calls: nothing is allocated once the buffers have grown to the largest
    /// batch.
    ///
    /// Cost: the candidates are sorted by item once (`C log C`); then each
    /// row intersects its user's history (h items, sorted) with them by the
    /// cheaper of a linear merge, `O(h + C)`, and binary searches of the
    /// shorter list in the longer, `O(min(h, C) · log max(h, C))`. Rows are
    /// split into blocks of [`MASK_ROWS_PER_TASK`] run on rayon's pool and
    /// joined in row order, so the result does not depend on the threads.
    ///
    /// # Shapes
    /// `users`: `B` (row i's user); `items`: `C ≥ B` (candidate j's item,
    /// the B positives first).
    pub fn fill_mask(
        &self,
        users: &[u32],
        items: &[u32],
        offsets: &mut Vec<u32>,
        cols: &mut Vec<u32>,
        scratch: &mut MaskScratch,
    ) {
        let MaskScratch { sorted, parts } = scratch;
        sorted.clear();
        sorted.extend(items.iter().enumerate().map(|(j, &it)| (it, j as u32)));
        sorted.sort_unstable();
        let n_parts = users.len().div_ceil(MASK_ROWS_PER_TASK);
        if parts.len() < n_parts {
            parts.resize_with(n_parts, MaskPart::default);
        }
        let sorted = &*sorted;
        users
            .par_chunks(MASK_ROWS_PER_TASK)
            .zip(parts[..n_parts].par_iter_mut())
            .enumerate()
            .for_each(|(p, (rows, part))| {
                part.lens.clear();
                part.cols.clear();
                for (k, &u) in rows.iter().enumerate() {
                    let before = part.cols.len();
                    self.row_mask(p * MASK_ROWS_PER_TASK + k, u, items, sorted, &mut part.cols);
                    part.lens.push((part.cols.len() - before) as u32);
                }
            });
        offsets.clear();
        cols.clear();
        offsets.push(0);
        for part in &parts[..n_parts] {
            let mut end = cols.len() as u32;
            for &n in &part.lens {
                end += n;
                offsets.push(end);
            }
            cols.extend_from_slice(&part.cols);
        }
    }

    /// Appends row `i`'s masked columns (ascending) to `out`: the
    /// candidates `j ≠ i` whose item (`sorted` = (item, j) ascending) is in
    /// user `u`'s history.
    fn row_mask(&self, i: usize, u: u32, items: &[u32], sorted: &[(u32, u32)], out: &mut Vec<u32>) {
        let h = self.of(u);
        let c = items.len();
        let start = out.len();
        let (short, long) = (h.len().min(c), h.len().max(c));
        let log_long = (usize::BITS - long.leading_zeros()) as usize;
        if short * log_long < h.len() + c {
            if h.len() <= c {
                // few history items: find each one's run of candidates
                for &it in h {
                    let lo = sorted.partition_point(|&(x, _)| x < it);
                    for &(x, j) in &sorted[lo..] {
                        if x != it {
                            break;
                        }
                        if j as usize != i {
                            out.push(j);
                        }
                    }
                }
            } else {
                // a long history: look each candidate up in it
                for (j, it) in items.iter().enumerate() {
                    if j != i && h.binary_search(it).is_ok() {
                        out.push(j as u32);
                    }
                }
            }
        } else {
            // comparable lengths: one merge of the two sorted lists
            let mut k = 0;
            for &(x, j) in sorted.iter() {
                while k < h.len() && h[k] < x {
                    k += 1;
                }
                if k == h.len() {
                    break;
                }
                if h[k] == x && j as usize != i {
                    out.push(j);
                }
            }
        }
        out[start..].sort_unstable();
    }
}

/// Rows of a batch per rayon task in [`UserHistory::fill_mask`].
pub const MASK_ROWS_PER_TASK: usize = 64;

/// Reusable buffers of [`UserHistory::fill_mask`]: the candidates sorted by
/// item and one partial mask per block of rows.
#[derive(Debug, Default)]
pub struct MaskScratch {
    sorted: Vec<(u32, u32)>,
    parts: Vec<MaskPart>,
}

/// The masked columns of one block of rows: per row its count, then all
/// columns in row order.
#[derive(Debug, Default)]
struct MaskPart {
    lens: Vec<u32>,
    cols: Vec<u32>,
}

/// Recency weights (time-decayed sample weights): each user's interactions
/// are put in time order — by (timestamp, item id rank), ties kept in input
/// order, the order of EVALUATION.md's temporal split — and the k-th of the
/// user's n (k = 0 the oldest) gets
///
/// `w = exp(−λ · (n − 1 − k) / (n − 1))`
///
/// so the user's newest interaction weighs 1 and the oldest `e^−λ`
/// whatever the history length (a user with one interaction: 1). The age is
/// relative to the user's own history, not to the clock: in data where a
/// user rates many items in one sitting, timestamps barely differ but the
/// order still says what came last. With a temporal test split, the recent
/// part of a history predicts the next interactions best; λ is chosen on
/// the validation split (`train.recency_decay`). The weights multiply the
/// per-row loss of the in-batch softmax (and any weight column of the
/// data); batches are still sampled uniformly, so logQ's `p_j` is unchanged.
///
/// # Shapes
/// Returns one weight per interaction of `x`, in `x`'s order; `item_rank`:
/// the catalog's id rank ([`twotower_data::EntityTable::id_rank`]).
///
/// # Panics
/// If an item index of `x` is outside `item_rank`, or `lambda` is negative
/// or not finite.
pub fn recency_weights(x: &Interactions, item_rank: &[u32], lambda: f64) -> Vec<f32> {
    assert!(
        lambda.is_finite() && lambda >= 0.0,
        "recency_weights: lambda {lambda} must be finite and >= 0"
    );
    let (offsets, order) = user_time_order(x, item_rank);
    let mut w = vec![1.0f32; x.user.len()];
    for u in 0..offsets.len().saturating_sub(1) {
        let seg = &order[offsets[u]..offsets[u + 1]];
        let m = seg.len();
        if m > 1 {
            let span = (m - 1) as f64;
            for (k, &r) in seg.iter().enumerate() {
                let age = (m - 1 - k) as f64 / span;
                w[r as usize] = (-lambda * age).exp() as f32;
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recency_weights_by_hand() {
        // λ = ln 4. User 0: timestamps 10, 30, 20 → order rows 0, 2, 1 →
        // ages 1, ½, 0 → weights 4^−1 = 0.25, 4^−½ = 0.5, 1 → row 0: 0.25,
        // row 1 (t 30): 1, row 2 (t 20): 0.5.
        // User 1: a single interaction → 1.
        // User 2: rows 4, 5 both at t 7 — tie broken by item id rank: item 9
        // has rank 0, item 3 rank 1 → row 5 (item 9) older (0.25), row 4
        // (item 3) newest (1).
        let mut item_rank = vec![0u32; 10];
        item_rank[9] = 0;
        item_rank[3] = 1;
        let x = Interactions {
            user: vec![0, 0, 0, 1, 2, 2],
            item: vec![1, 2, 3, 4, 3, 9],
            timestamp: vec![10, 30, 20, 5, 7, 7],
            weight: None,
        };
        let w = recency_weights(&x, &item_rank, 4f64.ln());
        let want = [0.25f32, 1.0, 0.5, 1.0, 1.0, 0.25];
        for (g, e) in w.iter().zip(want) {
            assert!((g - e).abs() < 1e-6, "{w:?} vs {want:?}");
        }
        // λ = 0: every weight 1
        assert!(recency_weights(&x, &item_rank, 0.0)
            .iter()
            .all(|&v| v == 1.0));
    }

    #[test]
    fn histories_are_sorted_distinct_per_user() {
        // user 0: items 5, 2, 5 → [2, 5]; user 1: none; user 2: 7, 1 → [1, 7]
        let h = UserHistory::from_pairs(3, &[0, 2, 0, 0, 2], &[5, 7, 2, 5, 1]);
        assert_eq!(h.users(), 3);
        assert_eq!(h.of(0), &[2, 5]);
        assert_eq!(h.of(1), &[] as &[u32]);
        assert_eq!(h.of(2), &[1, 7]);
        assert_eq!(h.of(9), &[] as &[u32]);
        assert!(h.contains(0, 5) && !h.contains(0, 7) && h.contains(2, 7));
    }

    #[test]
    fn mask_lists_history_items_of_other_columns() {
        // user 0 has {2, 5}, user 1 has {3}.
        let h = UserHistory::from_pairs(2, &[0, 0, 1], &[2, 5, 3]);
        // batch rows: (u0, 2), (u1, 3), (u0, 5); one extra negative, item 3.
        let users = [0, 1, 0];
        let items = [2, 3, 5, 3];
        let (mut off, mut cols, mut scratch) = (Vec::new(), Vec::new(), MaskScratch::default());
        h.fill_mask(&users, &items, &mut off, &mut cols, &mut scratch);
        // row 0 (u0): column 2 (item 5) is u0's → masked; columns 1, 3 (item 3) are not.
        // row 1 (u1): column 3 (item 3, a duplicate of its positive) → masked.
        // row 2 (u0): column 0 (item 2) → masked.
        assert_eq!(off, vec![0, 1, 2, 3]);
        assert_eq!(cols, vec![2, 3, 0]);
    }

    /// The mask by definition: every (i, j ≠ i) whose item is in row i's
    /// user's history, as (offsets, cols).
    fn brute_force_mask(h: &UserHistory, users: &[u32], items: &[u32]) -> (Vec<u32>, Vec<u32>) {
        let (mut off, mut cols) = (vec![0u32], Vec::new());
        for (i, &u) in users.iter().enumerate() {
            for (j, &it) in items.iter().enumerate() {
                if j != i && h.contains(u, it) {
                    cols.push(j as u32);
                }
            }
            off.push(cols.len() as u32);
        }
        (off, cols)
    }

    #[test]
    fn mask_matches_brute_force_for_short_and_long_histories() {
        // C = 12 candidates (with duplicates). User 0: 3 items (binary
        // searches of its history in the candidates), user 1: 400 items
        // (candidates searched in the history), user 2: 12 items (merge).
        let (mut us, mut its) = (vec![0u32, 0, 0], vec![4u32, 9, 17]);
        for k in 0..400 {
            us.push(1);
            its.push(k * 2);
        }
        for k in 0..12 {
            us.push(2);
            its.push(k * 7);
        }
        let h = UserHistory::from_pairs(3, &us, &its);
        let users = [0u32, 1, 2, 1, 1, 0, 2, 0];
        let items = [4u32, 6, 9, 9, 81, 17, 2, 3, 4, 40, 14, 77];
        let (mut off, mut cols, mut scratch) = (Vec::new(), Vec::new(), MaskScratch::default());
        h.fill_mask(&users, &items, &mut off, &mut cols, &mut scratch);
        assert_eq!((off, cols), brute_force_mask(&h, &users, &items));
    }

    #[test]
    fn blocked_mask_matches_brute_force_and_reuses_scratch() {
        // B = 200 rows = 4 blocks of 64 (the last partial), C = 260 candidates;
        // then a smaller batch through the same scratch (stale blocks ignored).
        let n_users = 30u32;
        let (mut us, mut its) = (Vec::new(), Vec::new());
        for u in 0..n_users {
            for k in 0..(u * 3 + 1) {
                us.push(u);
                its.push((k * 7 + u * 13) % 97);
            }
        }
        let h = UserHistory::from_pairs(n_users as usize, &us, &its);
        let mut scratch = MaskScratch::default();
        for (b, c) in [(200usize, 260usize), (70, 90)] {
            let users: Vec<u32> = (0..b as u32).map(|i| (i * 11) % n_users).collect();
            let items: Vec<u32> = (0..c as u32).map(|j| (j * 31 + 5) % 97).collect();
            let (mut off, mut cols) = (Vec::new(), Vec::new());
            h.fill_mask(&users, &items, &mut off, &mut cols, &mut scratch);
            let want = brute_force_mask(&h, &users, &items);
            assert!(want.1.len() > b, "the case must mask many cells");
            assert_eq!((off, cols), want, "B = {b}");
        }
    }
}
