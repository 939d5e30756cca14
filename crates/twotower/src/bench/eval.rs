//! Evaluation throughput: the protocol's exact top-K over a synthetic
//! user × item problem, next to a plain GEMM of the same shape.

use std::time::Instant;

use ndarray::{s, Array2, ArrayViewMut2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::eval::{evaluate, DotScorer, EvalConfig, EvalError, EvalSet};

use super::*;

/// Random unit rows `[n × d]`, deterministic in `seed`.
pub fn unit_rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = Array2::from_shape_fn((n, d), |_| rng.gen_range(-1.0f32..1.0));
    m.rows_mut().into_iter().for_each(|mut r| {
        let n = r.dot(&r).sqrt().max(f32::MIN_POSITIVE);
        r /= n;
    });
    m
}

/// An evaluation set of `n_users` users with 20 train and 5 test items
/// each, drawn uniformly from `n_items` (item id rank = index).
///
/// # Errors
/// [`EvalError`] from [`EvalSet::new`] (e.g. `n_items == 0`).
pub fn synthetic_eval_set(n_users: usize, n_items: usize) -> Result<EvalSet, EvalError> {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut train = Vec::with_capacity(n_users * 20);
    let mut test = Vec::with_capacity(n_users * 5);
    for u in 0..n_users as u32 {
        for _ in 0..20 {
            train.push((u, rng.gen_range(0..n_items as u32)));
        }
        for _ in 0..5 {
            test.push((u, rng.gen_range(0..n_items as u32)));
        }
    }
    let rank: Vec<u32> = (0..n_items as u32).collect();
    EvalSet::new(n_users, n_items, &train, &test, &rank)
}

/// The same tiled GEMM as [`evaluate`] (blocks of `cfg.block_users` users ×
/// tiles of `cfg.item_tile` items, rayon over user blocks) producing every
/// user-item score, without top-K or metrics: the practical floor of exact
/// evaluation. Returns a checksum so the work cannot be optimized away.
pub fn gemm_only(users: &Array2<f32>, items: &Array2<f32>, cfg: &EvalConfig) -> f32 {
    let n_items = items.nrows();
    let d = users.ncols();
    let tile = cfg.item_tile.min(n_items).max(1);
    let idx: Vec<u32> = (0..users.nrows() as u32).collect();
    idx.par_chunks(cfg.block_users.max(1))
        .map(|blk| {
            let mut ub = Array2::<f32>::zeros((blk.len(), d));
            for (mut r, &u) in ub.rows_mut().into_iter().zip(blk) {
                r.assign(&users.row(u as usize));
            }
            let mut scratch = vec![0f32; blk.len() * tile];
            let mut acc = 0f32;
            let mut start = 0;
            while start < n_items {
                let end = (start + tile).min(n_items);
                let buf = &mut scratch[..blk.len() * (end - start)];
                let mut o = ArrayViewMut2::from_shape((blk.len(), end - start), buf)
                    .expect("scratch holds the tile");
                crate::linalg::gemm(1.0, &ub, &items.slice(s![start..end, ..]).t(), 0.0, &mut o);
                acc += o[[0, 0]];
                start = end;
            }
            acc
        })
        .sum()
}

/// Exact top-K evaluation throughput next to the plain GEMM of the same shape.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Users scored.
    pub users: usize,
    /// Catalog size.
    pub items: usize,
    /// Vector dimension.
    pub dim: usize,
    /// Seconds of [`evaluate`] (exact scores, seen-item exclusion, top-K, metrics).
    pub evaluate_seconds: f64,
    /// Seconds of [`gemm_only`].
    pub gemm_seconds: f64,
    /// `users × items / evaluate_seconds`.
    pub evaluate_scores_per_second: f64,
    /// `users × items / gemm_seconds`.
    pub gemm_scores_per_second: f64,
    /// `evaluate_scores_per_second / gemm_scores_per_second`.
    pub ratio_to_gemm: f64,
}

/// Times [`evaluate`] and [`gemm_only`] on random unit vectors (best of
/// `repeats` runs each).
///
/// # Errors
/// [`BenchError::Eval`] from the evaluator.
pub fn eval_throughput(
    n_users: usize,
    n_items: usize,
    dim: usize,
    repeats: usize,
) -> Result<EvalReport, BenchError> {
    let users = unit_rows(n_users, dim, 1);
    let items = unit_rows(n_items, dim, 2);
    let set = synthetic_eval_set(n_users, n_items)?;
    let cfg = EvalConfig::default();
    let scorer = DotScorer::new(users.view(), items.view())?;
    let mut best_eval = f64::INFINITY;
    let mut best_gemm = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        std::hint::black_box(evaluate(&scorer, &set, &cfg)?);
        best_eval = best_eval.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(gemm_only(&users, &items, &cfg));
        best_gemm = best_gemm.min(t.elapsed().as_secs_f64());
    }
    let scores = (n_users * n_items) as f64;
    Ok(EvalReport {
        users: n_users,
        items: n_items,
        dim,
        evaluate_seconds: best_eval,
        gemm_seconds: best_gemm,
        evaluate_scores_per_second: scores / best_eval,
        gemm_scores_per_second: scores / best_gemm,
        ratio_to_gemm: best_gemm / best_eval,
    })
}
