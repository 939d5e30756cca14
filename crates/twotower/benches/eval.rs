//! Evaluation throughput (user-item scores per second) of the exact
//! full-catalog protocol next to a plain GEMM producing the same scores,
//! plus the top-K scan alone.
//!
//! ```text
//! cargo bench -p twotower --bench eval
//! # the large case (100k users × 1M items × d 64), one timed run, printed:
//! TWOTOWER_BENCH_LARGE=1 cargo bench -p twotower --bench eval -- large
//! # fewer users for a quicker estimate of the same per-score rate:
//! TWOTOWER_BENCH_LARGE=1 TWOTOWER_BENCH_LARGE_USERS=4096 cargo bench -p twotower --bench eval -- large
//! ```

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twotower::bench::{gemm_only, synthetic_eval_set, unit_rows};
use twotower::eval::{evaluate, top_k, DotScorer, EvalConfig, EvalSet};

const DIM: usize = 64;

fn eval_set(n_users: usize, n_items: usize) -> EvalSet {
    synthetic_eval_set(n_users, n_items).unwrap()
}

fn bench_eval(c: &mut Criterion) {
    let mut g = c.benchmark_group("eval_throughput");
    g.sample_size(10);
    for &(n_users, n_items) in &[(2048usize, 20_000usize), (2048, 100_000)] {
        let users = unit_rows(n_users, DIM, 1);
        let items = unit_rows(n_items, DIM, 2);
        let set = eval_set(n_users, n_items);
        let cfg = EvalConfig::default();
        let scorer = DotScorer::new(users.view(), items.view()).unwrap();
        g.throughput(Throughput::Elements((n_users * n_items) as u64));
        let label = format!("{n_users}x{n_items}x{DIM}");
        g.bench_with_input(
            BenchmarkId::new("evaluate_exact_topk", &label),
            &(),
            |b, _| b.iter(|| black_box(evaluate(&scorer, &set, &cfg).unwrap())),
        );
        g.bench_with_input(BenchmarkId::new("gemm_only", &label), &(), |b, _| {
            b.iter(|| black_box(gemm_only(&users, &items, &cfg)))
        });
    }
    g.finish();
}

fn bench_top_k(c: &mut Criterion) {
    let mut g = c.benchmark_group("top_k");
    let n = 1_000_000;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let scores: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let rank: Vec<u32> = (0..n as u32).collect();
    let mut exclude: Vec<u32> = (0..50).map(|_| rng.gen_range(0..n as u32)).collect();
    exclude.sort_unstable();
    g.throughput(Throughput::Elements(n as u64));
    for k in [10usize, 100] {
        g.bench_with_input(BenchmarkId::new("scan_1M", k), &k, |b, &k| {
            let mut out = Vec::new();
            b.iter(|| {
                top_k(black_box(&scores), k, &exclude, &rank, &mut out).unwrap();
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// Peak resident memory of this process (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    twotower::bench::peak_rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0))
}

/// 100k users × 1M items × d 64: one timed run, printed (too long for
/// criterion's repeated sampling). Runs only with TWOTOWER_BENCH_LARGE=1.
fn bench_large(c: &mut Criterion) {
    let _ = c;
    if std::env::var("TWOTOWER_BENCH_LARGE").ok().as_deref() != Some("1") {
        return;
    }
    let n_users: usize = std::env::var("TWOTOWER_BENCH_LARGE_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let n_items = 1_000_000;
    let t = Instant::now();
    let users = unit_rows(n_users, DIM, 1);
    let items = unit_rows(n_items, DIM, 2);
    let set = eval_set(n_users, n_items);
    println!(
        "large: data built in {:.1}s, peak RSS {:.0} MiB",
        t.elapsed().as_secs_f64(),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    let cfg = EvalConfig::default();
    let scorer = DotScorer::new(users.view(), items.view()).unwrap();
    let t = Instant::now();
    let m = evaluate(&scorer, &set, &cfg).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let scores = (n_users * n_items) as f64;
    println!(
        "large: evaluate {n_users} users x {n_items} items x {DIM}: {secs:.1}s, {:.3e} scores/s, recall@10 {:?}, peak RSS {:.0} MiB, threads {}",
        scores / secs,
        m.get("recall@10"),
        peak_rss_mib().unwrap_or(f64::NAN),
        rayon::current_num_threads()
    );
    let t = Instant::now();
    black_box(gemm_only(&users, &items, &cfg));
    let secs = t.elapsed().as_secs_f64();
    println!(
        "large: gemm_only same shape: {secs:.1}s, {:.3e} scores/s",
        scores / secs
    );
}

criterion_group!(benches, bench_eval, bench_top_k, bench_large);
criterion_main!(benches);
