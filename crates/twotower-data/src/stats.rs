//! Dataset statistics of the train split (`twotower stats`).

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::report::IngestReport;

/// One bucket of the log-scale popularity histogram: catalog items whose
/// train interaction count lies in `[lo, hi]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistBucket {
    /// Smallest count of the bucket.
    pub lo: u64,
    /// Largest count of the bucket.
    pub hi: u64,
    /// Number of catalog items in it.
    pub items: usize,
}

/// Statistics of a dataset; popularity figures are over the **train** split
/// and the whole catalog (items with no train interaction count as 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of users.
    pub users: usize,
    /// Number of catalog items.
    pub items: usize,
    /// All interactions (train + test).
    pub interactions: usize,
    /// Train interactions.
    pub train_interactions: usize,
    /// Test interactions.
    pub test_interactions: usize,
    /// Users with at least one test interaction.
    pub test_users: usize,
    /// Catalog items with no train interaction.
    pub cold_items: usize,
    /// Test interactions whose item has no train interaction.
    pub cold_test_interactions: usize,
    /// train interactions / (users × items).
    pub density: f64,
    /// floor(0.01 · items), at least 1.
    pub top1pct_items: usize,
    /// Share of train interactions on the `top1pct_items` most popular items.
    pub top1pct_share: f64,
    /// floor(0.2 · items), at least 1 (EVALUATION.md's `head` size).
    pub top20pct_items: usize,
    /// Share of train interactions on the `top20pct_items` most popular items.
    pub top20pct_share: f64,
    /// Gini coefficient of train counts over the catalog:
    /// `G = 2·Σ_i i·x_(i) / (n·Σx) − (n+1)/n` with `x_(i)` ascending, `i = 1..n`.
    pub gini: f64,
    /// Items per train-count bucket: `0`, `1`, `2-3`, `4-7`, … (up to the maximum count).
    pub popularity_histogram: Vec<HistBucket>,
    /// The ingest report (missing feature rows, skipped rows, per-feature figures).
    pub report: IngestReport,
}

/// Computes [`Stats`] of a dataset.
pub fn stats(ds: &Dataset) -> Stats {
    let n_items = ds.items.len();
    let n_users = ds.users.len();
    let counts = ds.train.item_counts(n_items);
    let total: u64 = counts.iter().map(|&c| c as u64).sum();
    let mut sorted: Vec<u32> = counts.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let top = |k: usize| -> f64 {
        if total == 0 {
            return 0.0;
        }
        sorted.iter().take(k).map(|&c| c as u64).sum::<u64>() as f64 / total as f64
    };
    let k1 = ((n_items as f64 * 0.01).floor() as usize)
        .max(1)
        .min(n_items.max(1));
    let k20 = n_items / 5;
    let k20 = k20.max(1).min(n_items.max(1));
    let gini = if total == 0 || n_items == 0 {
        0.0
    } else {
        // Ascending: sorted is descending, so x_(i) = sorted[n - i].
        let n = n_items as f64;
        let s: f64 = sorted
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &x)| (i as f64 + 1.0) * x as f64)
            .sum();
        2.0 * s / (n * total as f64) - (n + 1.0) / n
    };
    let maxc = sorted.first().copied().unwrap_or(0) as u64;
    let mut hist = vec![HistBucket {
        lo: 0,
        hi: 0,
        items: 0,
    }];
    let mut lo = 1u64;
    while lo <= maxc.max(1) {
        hist.push(HistBucket {
            lo,
            hi: 2 * lo - 1,
            items: 0,
        });
        lo *= 2;
    }
    for &c in &counts {
        let b = if c == 0 {
            0
        } else {
            32 - c.leading_zeros() as usize
        };
        hist[b].items += 1;
    }
    let test_users = {
        let mut seen = vec![false; n_users];
        for &u in &ds.test.user {
            seen[u as usize] = true;
        }
        seen.iter().filter(|&&s| s).count()
    };
    Stats {
        users: n_users,
        items: n_items,
        interactions: ds.train.len() + ds.test.len(),
        train_interactions: ds.train.len(),
        test_interactions: ds.test.len(),
        test_users,
        cold_items: counts.iter().filter(|&&c| c == 0).count(),
        cold_test_interactions: ds
            .test
            .item
            .iter()
            .filter(|&&i| counts[i as usize] == 0)
            .count(),
        density: if n_users == 0 || n_items == 0 {
            0.0
        } else {
            ds.train.len() as f64 / (n_users as f64 * n_items as f64)
        },
        top1pct_items: k1,
        top1pct_share: top(k1),
        top20pct_items: k20,
        top20pct_share: top(k20),
        gini,
        popularity_histogram: hist,
        report: ds.report.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::EntityTable;
    use crate::split::Interactions;

    fn table(n: usize) -> EntityTable {
        let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        EntityTable {
            ids: ids.into(),
            id_rank: (0..n as u32).collect(),
            features: vec![],
            missing_feature_rows: 0,
            labels: None,
        }
    }

    #[test]
    fn hand_computed_stats() {
        // 4 items; train counts [3, 1, 0, 0] (item 0 three times, item 1 once); 2 users.
        // sorted asc x = [0,0,1,3], Σx = 4, Σ i·x_(i) = 3·1 + 4·3 = 15;
        // G = 2·15/(4·4) − 5/4 = 1.875 − 1.25 = 0.625.
        // top1%: k = max(1, floor(0.04)) = 1 → 3/4; top20%: k = max(1, floor(0.8)) = 1 → 3/4.
        // Histogram: 0 → items 2,3 (2); 1 → item 1; [2,3] → item 0.
        let ds = Dataset {
            users: table(2),
            items: table(4),
            train: Interactions {
                user: vec![0, 0, 1, 1],
                item: vec![0, 0, 0, 1],
                timestamp: vec![0; 4],
                weight: None,
            },
            test: Interactions {
                user: vec![1],
                item: vec![3],
                timestamp: vec![9],
                weight: None,
            },
            report: IngestReport::default(),
            train_stream: None,
        };
        let s = stats(&ds);
        assert_eq!(s.interactions, 5);
        assert_eq!(s.cold_items, 2);
        assert_eq!(s.cold_test_interactions, 1);
        assert_eq!(s.test_users, 1);
        assert!((s.gini - 0.625).abs() < 1e-12);
        assert!((s.top1pct_share - 0.75).abs() < 1e-12);
        assert!((s.density - 4.0 / 8.0).abs() < 1e-12);
        let h: Vec<(u64, u64, usize)> = s
            .popularity_histogram
            .iter()
            .map(|b| (b.lo, b.hi, b.items))
            .collect();
        assert_eq!(h, vec![(0, 0, 2), (1, 1, 1), (2, 3, 1)]);
    }
}
