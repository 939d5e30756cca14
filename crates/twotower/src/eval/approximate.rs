//! Evaluation through a nearest-neighbour index (`eval.retrieval =
//! "hnsw"`): the same exclusion, tie rule and metrics as exact ranking,
//! labelled approximate, with the index's recall against exact top-K on a
//! seeded sample of users (EVALUATION.md).

use std::collections::BTreeMap;

use ndarray::ArrayView2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use twotower_model::index::VectorIndex;
pub use twotower_model::topk::EvalError;

use super::*;

/// Checks that `index` and `users` fit `set` for [`evaluate_index`] and
/// [`ann_recall`].
pub(super) fn check_index(
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
pub(super) fn search_user(
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
