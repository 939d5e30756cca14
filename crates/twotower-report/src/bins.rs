//! Recall by item-popularity bin: [`popularity_bins`],
//! [`popularity_bin_counts`], [`recall_by_popularity_decile`], and what a
//! run directory keeps of it ([`RunBins`] in
//! [`BINS_FILE`], [`write_run_bins`]).

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use twotower::eval::{top_k, EvalError, EvalSet, Scorer};

use crate::json::write_json_file;
use crate::{ReportError, BINS_FILE};

/// Popularity bin of every catalog item: items ordered by train popularity
/// descending, ties by item id rank ascending (EVALUATION.md "Popularity
/// slices"); the item at position `p` of that order goes to bin
/// `⌊p · n_bins / n_items⌋`, so bin 0 holds the most popular items and bin
/// sizes differ by at most one (ML-100K, 10 bins: 169 or 168 items).
///
/// # Shapes
/// Returns `[n_items]`, values in `0..n_bins`.
///
/// # Errors
/// [`ReportError::InvalidArgument`] when `n_bins` is 0.
pub fn popularity_bins(set: &EvalSet, n_bins: usize) -> Result<Vec<u32>, ReportError> {
    if n_bins == 0 {
        return Err(ReportError::InvalidArgument {
            name: "n_bins",
            got: "0".into(),
            expected: "at least 1".into(),
        });
    }
    let pop = set.item_popularity();
    let rank = set.item_id_rank();
    let n = set.n_items();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        pop[b as usize]
            .cmp(&pop[a as usize])
            .then(rank[a as usize].cmp(&rank[b as usize]))
    });
    let mut bins = vec![0u32; n];
    for (p, &i) in order.iter().enumerate() {
        bins[i as usize] = (p as u128 * n_bins as u128 / n as u128) as u32;
    }
    Ok(bins)
}

/// Hits and test pairs per popularity bin (see [`popularity_bin_counts`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinCounts {
    /// Distinct (user, item) test pairs per bin whose item is in the user's top-K.
    pub hits: Vec<u64>,
    /// Distinct (user, item) test pairs per bin.
    pub pairs: Vec<u64>,
    /// Catalog items per bin.
    pub items: Vec<u64>,
}

impl BinCounts {
    /// `hits / pairs` per bin; `None` for a bin with no test pair.
    pub fn recall(&self) -> Vec<Option<f64>> {
        self.hits
            .iter()
            .zip(&self.pairs)
            .map(|(&h, &p)| {
                if p == 0 {
                    None
                } else {
                    Some(h as f64 / p as f64)
                }
            })
            .collect()
    }
}

/// For each popularity bin ([`popularity_bins`]): over all distinct
/// (user, item) test pairs whose item is in the bin, how many have the item
/// in that user's top-`k`, ranked exactly as EVALUATION.md prescribes (whole
/// catalog, the user's train items removed, ties by item id rank; a test
/// item also in train is removed from the candidates but still counted).
/// With `n_bins` = 5 and a catalog of a multiple of 5 items, bin 0 is exactly
/// the head slice, so its ratio equals `head_recall@k`.
///
/// Users are scored in blocks of at most 256 users whose score scratch
/// (`block × n_items` f32) stays under 4 MiB, in parallel on rayon's pool;
/// counts are integers, so the result does not depend on threads.
///
/// # Errors
/// [`ReportError::InvalidArgument`] (`k` or `n_bins` 0),
/// [`ReportError::Eval`] (`ScorerItems`, `ScorerUsers`, the scorer's own
/// check, `NanScore` with the user).
pub fn popularity_bin_counts(
    set: &EvalSet,
    scorer: &dyn Scorer,
    k: usize,
    n_bins: usize,
) -> Result<BinCounts, ReportError> {
    if k == 0 {
        return Err(ReportError::InvalidArgument {
            name: "k",
            got: "0".into(),
            expected: "at least 1".into(),
        });
    }
    let bins = popularity_bins(set, n_bins)?;
    scorer.check()?;
    let n = set.n_items();
    if scorer.n_items() != n {
        return Err(EvalError::ScorerItems {
            expected: n,
            got: scorer.n_items(),
        }
        .into());
    }
    if let Some(nu) = scorer.n_users() {
        if nu < set.n_users() {
            return Err(EvalError::ScorerUsers {
                expected: set.n_users(),
                got: nu,
            }
            .into());
        }
    }
    let block = ((1usize << 20) / n).clamp(1, 256);
    type HitsPairs = (Vec<u64>, Vec<u64>);
    let per_block: Vec<Result<HitsPairs, EvalError>> = set
        .test_users()
        .par_chunks(block)
        .map(|users| {
            let mut scores = vec![0f32; users.len() * n];
            scorer.score_block(users, 0..n, &mut scores);
            let mut hits = vec![0u64; n_bins];
            let mut pairs = vec![0u64; n_bins];
            let mut top = Vec::with_capacity(k);
            let mut top_items: Vec<u32> = Vec::with_capacity(k);
            for (r, &u) in users.iter().enumerate() {
                top_k(
                    &scores[r * n..(r + 1) * n],
                    k,
                    set.train_items(u),
                    set.item_id_rank(),
                    &mut top,
                )
                .map_err(|e| match e {
                    EvalError::NanScore { item, .. } => EvalError::NanScore {
                        user: Some(u),
                        item,
                    },
                    e => e,
                })?;
                top_items.clear();
                top_items.extend(top.iter().map(|&(i, _)| i));
                top_items.sort_unstable();
                for &i in set.test_items(u) {
                    let b = bins[i as usize] as usize;
                    pairs[b] += 1;
                    if top_items.binary_search(&i).is_ok() {
                        hits[b] += 1;
                    }
                }
            }
            Ok((hits, pairs))
        })
        .collect();
    let mut hits = vec![0u64; n_bins];
    let mut pairs = vec![0u64; n_bins];
    for r in per_block {
        let (h, p) = r?;
        for b in 0..n_bins {
            hits[b] += h[b];
            pairs[b] += p[b];
        }
    }
    let mut items = vec![0u64; n_bins];
    for &b in &bins {
        items[b as usize] += 1;
    }
    Ok(BinCounts { hits, pairs, items })
}

/// Recall@`k` by item-popularity bin: element `b` is the fraction of the
/// distinct (user, item) test pairs whose item is in popularity bin `b`
/// (bin 0 = most popular; see [`popularity_bins`]) that have the item in
/// the user's top-`k`; `None` for a bin with no test pair. With `n_bins` =
/// 10 these are the popularity deciles of the catalog.
///
/// # Shapes
/// Returns `[n_bins]`.
///
/// # Errors
/// As [`popularity_bin_counts`].
pub fn recall_by_popularity_decile(
    set: &EvalSet,
    scorer: &dyn Scorer,
    k: usize,
    n_bins: usize,
) -> Result<Vec<Option<f64>>, ReportError> {
    Ok(popularity_bin_counts(set, scorer, k, n_bins)?.recall())
}

/// Contents of [`BINS_FILE`] in a run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunBins {
    /// [`REPORT_FORMAT_VERSION`](crate::REPORT_FORMAT_VERSION).
    pub format_version: u32,
    /// The cut-off K.
    pub k: usize,
    /// Number of popularity bins.
    pub n_bins: usize,
    /// The run's model.
    pub model: BinCounts,
    /// The most-popular baseline on the same data.
    pub most_popular: BinCounts,
}

/// Writes [`RunBins`] into `dir/`[`BINS_FILE`] atomically.
///
/// # Errors
/// [`ReportError::Io`].
pub fn write_run_bins(dir: &Path, bins: &RunBins) -> Result<(), ReportError> {
    let path = dir.join(BINS_FILE);
    write_json_file(&path, bins)
}
