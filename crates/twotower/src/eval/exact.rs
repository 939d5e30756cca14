//! Exact evaluation: users in blocks against item tiles, a bounded top-K
//! heap per user, the per-user hits reduced in user order into the
//! metrics (independent of threads, block and tile sizes), and the
//! most-popular baseline from one sorted order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;

pub use twotower_model::topk::EvalError;
use twotower_model::topk::TopK;

use super::*;

/// 1 / log2(r + 1) for the 1-based rank r = pos + 1.
#[inline]
pub(super) fn discount(pos: usize) -> f64 {
    1.0 / ((pos + 2) as f64).log2()
}

/// Per-block output: per test user and per K, (recall, ndcg); slice hits per K.
pub(super) struct BlockOut {
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
pub(super) fn rank_block(
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
pub(super) fn eval_block(
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
pub(super) fn ks_and_idcg(cfg: &EvalConfig) -> (Vec<usize>, Vec<f64>) {
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
pub(super) fn in_pool<T: Send>(
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
pub(super) fn reduce(
    set: &EvalSet,
    ks: &[usize],
    blocks: &[BlockOut],
    min_pos: &[AtomicU32],
) -> Metrics {
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
pub(super) type RankUser<'a> =
    dyn Fn(u32, usize, &mut Vec<(u32, f32)>) -> Result<(), EvalError> + Sync + 'a;

/// Runs the protocol with a per-user ranking given by `rank_user`: for a
/// test user, its best `max(K)` candidates, best first, the user's train
/// items already left out (the metrics, the reduction and the thread
/// independence are [`evaluate`]'s). Errors are reported in user order.
pub(super) fn evaluate_ranked(
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
