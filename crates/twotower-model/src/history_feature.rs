//! The **history feature** of the user tower: a bag of the items the user
//! interacted with before, pooled like any multi-valued feature (YouTube DNN,
//! Covington et al. 2016, §3: "a user's watch history is represented by a
//! variable-length sequence of sparse video IDs … averaged"; Yi et al. 2019
//! feed the same history to the query tower of a two-tower model).
//!
//! # No leakage, by construction (EVALUATION.md "History features")
//! Built from one set of training interactions `fit` (the phase's train
//! split: for the search phase the part of train before the validation cut,
//! for the refit and the final model the whole train split):
//! - a **training example** (an interaction `r` of `fit`) reads the items of
//!   its user that come strictly before `r` in the split's order — by
//!   `(timestamp, item id rank)`, exact duplicates in file order, the order of
//!   [`twotower_data::user_time_order`] — the most recent `max_len` of them,
//!   with every occurrence of `r`'s own item removed;
//! - an **evaluated user** reads their `fit` interactions, the most recent
//!   `max_len` ([`HistoryFeature::user_column`]).
//!
//! So no validation or test interaction ever enters a bag: nothing outside
//! `fit` is stored here.
//!
//! # Values
//! A bag holds **table rows of the item-id vocabulary** (the item tower's id
//! feature: row of item `i` = that feature's value for `i`; row 0 for an item
//! below its `min_count`), so the history table can be the item tower's own
//! id table (`share_item_table`) or a separate table of the same size. A
//! dataset without an item-id feature uses the catalog index + 1.
//!
//! # Pooling
//! `mean` (the YouTube DNN's average) or `recency`: weight of the item `a`
//! steps back from the newest (a = 0 newest) is `exp(−λ · a / max_len)`,
//! λ = `recency_decay` ([`crate::embedding::weighted_bag_forward`]).
//!
//! # Cost
//! O(training interactions) memory, built once per phase; gathering a bag
//! copies at most `max_len` ids: nothing is O(catalog) per step.

use twotower_data::{user_time_order, Interactions};

use crate::tower::BatchFeature;

/// The name of the history feature in the user tower (tensor `user.emb.history`).
pub const HISTORY_FEATURE: &str = "history";

/// How a history bag is pooled.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum HistoryPooling {
    /// Plain mean of the bag's embeddings.
    #[default]
    Mean,
    /// Weighted mean with weight `exp(−λ · age / max_len)`, age 0 = newest.
    Recency {
        /// λ ≥ 0.
        decay: f64,
    },
}

/// Each user's training items in the split's order, and each training
/// interaction's position among them.
///
/// # Shapes
/// `offsets`: `n_users + 1`; user u's table rows, oldest first, are
/// `rows[offsets[u]..offsets[u+1]]` (their catalog items in `items`, same
/// positions); `pos`: one entry per interaction of `fit` (its index within
/// its user's list).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryFeature {
    offsets: Vec<usize>,
    rows: Vec<u32>,
    items: Vec<u32>,
    pos: Vec<u32>,
    max_len: usize,
    pooling: HistoryPooling,
}

impl HistoryFeature {
    /// Builds the histories of `n_users` users from `fit`.
    ///
    /// `item_rank`: the catalog's id rank (ties of the split order);
    /// `item_row`: table row of each catalog item (`[n_items]`).
    ///
    /// # Panics
    /// If `max_len` is 0, or an index of `fit` is outside `n_users`,
    /// `item_rank` or `item_row`.
    pub fn new(
        n_users: usize,
        fit: &Interactions,
        item_rank: &[u32],
        item_row: &[u32],
        max_len: usize,
        pooling: HistoryPooling,
    ) -> Self {
        assert!(max_len > 0, "history: max_len must be >= 1");
        let (off, order) = user_time_order(fit, item_rank);
        let mut offsets = vec![0usize; n_users + 1];
        let mut rows = Vec::with_capacity(order.len());
        let mut items = Vec::with_capacity(order.len());
        let mut pos = vec![0u32; fit.len()];
        for u in 0..n_users {
            if u + 1 < off.len() {
                for (k, &r) in order[off[u]..off[u + 1]].iter().enumerate() {
                    let it = fit.item[r as usize];
                    rows.push(item_row[it as usize]);
                    items.push(it);
                    pos[r as usize] = k as u32;
                }
            }
            offsets[u + 1] = rows.len();
        }
        assert!(
            off.len() <= n_users + 1,
            "history: a user index of fit is >= n_users ({n_users})"
        );
        Self {
            offsets,
            rows,
            items,
            pos,
            max_len,
            pooling,
        }
    }

    /// The most recent `max_len` items a bag keeps.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// How bags are pooled.
    pub fn pooling(&self) -> HistoryPooling {
        self.pooling
    }

    /// Pushes the pooling weights of a bag of `n` items (oldest first) onto
    /// `out`; nothing for mean pooling.
    fn push_weights(&self, n: usize, out: &mut Vec<f32>) {
        if let HistoryPooling::Recency { decay } = self.pooling() {
            let l = self.max_len as f64;
            for k in 0..n {
                let age = (n - 1 - k) as f64;
                out.push((-decay * age / l).exp() as f32);
            }
        }
    }

    /// Fills `out` with the bags of training examples `examples` (interaction
    /// indices into the `fit` this was built from): each one's user's
    /// earlier items, the last `max_len`, without the example's own item.
    ///
    /// # Panics
    /// If an example index is outside `fit`.
    pub fn gather_examples(&self, fit: &Interactions, examples: &[u32], out: &mut BatchFeature) {
        out.offsets.clear();
        out.values.clear();
        out.masked.clear();
        out.weights.clear();
        out.offsets.push(0);
        for &r in examples {
            let r = r as usize;
            let u = fit.user[r] as usize;
            let own = fit.item[r];
            let start = self.offsets[u];
            let p = self.pos[r] as usize;
            // walk back from just before the example, skipping its own item,
            // until max_len items are kept
            let mut lo = start + p;
            let mut kept = 0usize;
            while lo > start && kept < self.max_len {
                lo -= 1;
                if self.items[lo] != own {
                    kept += 1;
                }
            }
            let before = out.values.len();
            for k in lo..start + p {
                if self.items[k] != own {
                    out.values.push(self.rows[k]);
                }
            }
            let n = out.values.len() - before;
            self.push_weights(n, &mut out.weights);
            out.offsets
                .push(u32::try_from(out.values.len()).expect("batch holds > u32::MAX ids"));
        }
    }

    /// The history column over every user, for evaluation and serving: user
    /// u's bag is their last `max_len` items of `fit`.
    ///
    /// Returns `(offsets [n_users + 1], values, weights)`; `weights` is empty
    /// for mean pooling, else one per value.
    pub fn user_column(&self) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
        let n_users = self.offsets.len().saturating_sub(1);
        let mut offsets = Vec::with_capacity(n_users + 1);
        let mut values = Vec::new();
        let mut weights = Vec::new();
        offsets.push(0u32);
        for u in 0..n_users {
            let (a, z) = (self.offsets[u], self.offsets[u + 1]);
            let a = a.max(z.saturating_sub(self.max_len));
            values.extend_from_slice(&self.rows[a..z]);
            self.push_weights(z - a, &mut weights);
            offsets.push(u32::try_from(values.len()).expect("history column > u32::MAX ids"));
        }
        (offsets, values, weights)
    }

    /// User u's whole `fit` history as table rows, oldest first (a bag built
    /// from it keeps the last `max_len`).
    ///
    /// # Panics
    /// If `u` is not a user index.
    pub fn user_rows(&self, u: u32) -> &[u32] {
        let u = u as usize;
        &self.rows[self.offsets[u]..self.offsets[u + 1]]
    }

    /// One bag from an explicit list of table rows, oldest first (serving a
    /// user from the items they name): the last `max_len`, pooled like
    /// training. Fills `out` as a one-row batch feature.
    pub fn bag_of(&self, rows: &[u32], out: &mut BatchFeature) {
        let rows = &rows[rows.len().saturating_sub(self.max_len)..];
        out.offsets.clear();
        out.values.clear();
        out.masked.clear();
        out.weights.clear();
        out.offsets.push(0);
        out.values.extend_from_slice(rows);
        self.push_weights(rows.len(), &mut out.weights);
        out.offsets.push(rows.len() as u32);
    }
}

/// The item-id table row of each catalog item: the item tower's id feature
/// (single-valued) if there is one, else the catalog index + 1. Returns
/// `(rows [n_items], vocabulary size)`.
pub fn item_rows(items: &twotower_data::EntityTable) -> (Vec<u32>, usize) {
    if let Some(f) = items.features.iter().find(|f| f.is_id) {
        let rows = (0..items.ids.len())
            .map(|e| f.row(e).first().copied().unwrap_or(0))
            .collect();
        (rows, f.vocab.len())
    } else {
        ((1..=items.ids.len() as u32).collect(), items.ids.len() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit() -> Interactions {
        // user 0: (item 5, t 3), (item 7, t 1), (item 5, t 9), (item 2, t 3)
        //   split order by (t, item rank = item index here): 7@1, 2@3, 5@3, 5@9
        // user 1: (item 4, t 0)
        // user 2: none
        Interactions {
            user: vec![0, 0, 1, 0, 0],
            item: vec![5, 7, 4, 5, 2],
            timestamp: vec![3, 1, 0, 9, 3],
            weight: None,
        }
    }

    fn rank() -> Vec<u32> {
        (0..10).collect()
    }

    fn bags(h: &HistoryFeature, f: &Interactions, ex: &[u32]) -> Vec<Vec<u32>> {
        let mut b = BatchFeature::default();
        h.gather_examples(f, ex, &mut b);
        (0..ex.len())
            .map(|i| b.values[b.offsets[i] as usize..b.offsets[i + 1] as usize].to_vec())
            .collect()
    }

    #[test]
    fn examples_see_only_strictly_earlier_items_never_their_own() {
        let f = fit();
        let row: Vec<u32> = (0..10).map(|i| 100 + i).collect();
        let h = HistoryFeature::new(3, &f, &rank(), &row, 10, HistoryPooling::Mean);
        // row 0 (5@3): before it 7@1, 2@3 (tie at t 3 broken by item rank: 2 < 5)
        // row 1 (7@1): first → empty
        // row 2 (user 1, 4@0): empty
        // row 3 (5@9): 7, 2, 5 → its own item 5 removed → 7, 2
        // row 4 (2@3): 7
        assert_eq!(
            bags(&h, &f, &[0, 1, 2, 3, 4]),
            vec![vec![107, 102], vec![], vec![], vec![107, 102], vec![107]]
        );
        // evaluation: every fit item, oldest first; user 2 has none
        let (off, val, w) = h.user_column();
        assert_eq!(off, vec![0, 4, 5, 5]);
        assert_eq!(val, vec![107, 102, 105, 105, 104]);
        assert!(w.is_empty());
    }

    #[test]
    fn max_len_keeps_the_most_recent_and_recency_weights_decay() {
        let f = fit();
        let row: Vec<u32> = (0..10).collect();
        let h = HistoryFeature::new(
            3,
            &f,
            &rank(),
            &row,
            2,
            HistoryPooling::Recency {
                decay: 2.0f64.ln() * 2.0,
            },
        );
        // row 3 (5@9): earlier 7, 2, 5; own item dropped first → 7, 2 (2 kept)
        assert_eq!(bags(&h, &f, &[3]), vec![vec![7, 2]]);
        let (off, val, w) = h.user_column();
        // user 0's last 2: 5@3, 5@9; weights exp(−ln2·2·a/2) = 2^−a: [0.5, 1]
        assert_eq!(&val[off[0] as usize..off[1] as usize], &[5, 5]);
        assert!((w[0] - 0.5).abs() < 1e-7 && (w[1] - 1.0).abs() < 1e-7);
        let mut b = BatchFeature::default();
        h.bag_of(&[1, 2, 3], &mut b);
        assert_eq!((b.offsets, b.values), (vec![0, 2], vec![2, 3]));
    }
}
