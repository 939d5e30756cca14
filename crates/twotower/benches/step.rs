//! One training step = `TwoTower::loss_and_grads` + `Optimizer::step`, f32.
//!
//! - `b1024_items10k` / `b1024_items1m`: B = 1024, three 64-d features per
//!   tower (id, a 1k-vocab feature, a 3-valued bag over 100 tags), MLP
//!   192 → 128 → 64, in-batch softmax with logQ and accidental-hit masking,
//!   sparse lazy Adam + dense Adam; catalog (and user base) of 10k or 1M.
//! - `b1024_items1m_ssl`: the same plus an SSL batch of 1024 items (two masked
//!   views, α = 0.1).
//! - `b256_ml100k`: ML-100K sizes (943 users with 5 features, 1682 items with
//!   id + genres bag + decade, all 32-d), MLP → 128 → 64, B = 256.
//!
//! Batches are pre-gathered (8, cycled) so the step alone is timed. Run with
//! `cargo bench -p twotower --bench step -- --quick`.

use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use twotower::model::{LossConfig, MainBatch, ModelGrads, SslBatch, TwoTower, Workspace};
use twotower::optim::{OptimConfig, Optimizer, SparseOptimizerKind};
use twotower::tower::{FeatureColumn, FeatureSpec, MaskEmbedding, TowerBatch, TowerSpec};

/// A synthetic feature over `n` entities: `bag` ids per entity drawn from
/// `vocab` (or the entity's own id + 1 when `vocab` is `None`).
struct Col {
    name: &'static str,
    vocab: usize,
    dim: usize,
    offsets: Vec<u32>,
    values: Vec<u32>,
}

fn col(
    name: &'static str,
    n: usize,
    vocab: Option<usize>,
    bag: usize,
    dim: usize,
    rng: &mut ChaCha8Rng,
) -> Col {
    let mut offsets = vec![0u32];
    let mut values = Vec::with_capacity(n * bag);
    for e in 0..n {
        match vocab {
            None => values.push(e as u32 + 1),
            Some(v) => {
                let k = if bag > 1 { rng.gen_range(1..=bag) } else { 1 };
                for _ in 0..k {
                    values.push(rng.gen_range(0..v as u32));
                }
            }
        }
        offsets.push(values.len() as u32);
    }
    Col {
        name,
        vocab: vocab.unwrap_or(n + 1),
        dim,
        offsets,
        values,
    }
}

fn spec(cols: &[Col], hidden: Vec<usize>) -> TowerSpec {
    TowerSpec {
        features: cols
            .iter()
            .map(|c| FeatureSpec {
                name: c.name.into(),
                vocab_size: c.vocab,
                dim: c.dim,
            })
            .collect(),
        hidden,
        out_dim: 64,
        mask_embedding: MaskEmbedding::Zero,
    }
}

fn views(cols: &[Col]) -> Vec<FeatureColumn<'_>> {
    cols.iter()
        .map(|c| FeatureColumn {
            offsets: &c.offsets,
            values: &c.values,
            weights: &[],
        })
        .collect()
}

struct Setup {
    model: TwoTower<f32>,
    opt: Optimizer<f32>,
    batches: Vec<(MainBatch<f32>, Option<SslBatch>)>,
}

fn setup(
    users: Vec<Col>,
    items: Vec<Col>,
    n_users: usize,
    n_items: usize,
    b: usize,
    ssl: bool,
) -> Setup {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let model = TwoTower::new(spec(&users, vec![128]), spec(&items, vec![128]), &mut rng).unwrap();
    let cfg = OptimConfig {
        sparse: SparseOptimizerKind::Adam,
        sparse_lr: 0.01,
        ..OptimConfig::default()
    };
    let opt = Optimizer::new(&model, &cfg);
    let (uc, ic) = (views(&users), views(&items));
    let batches = (0..8)
        .map(|_| {
            let u: Vec<u32> = (0..b).map(|_| rng.gen_range(0..n_users as u32)).collect();
            let i: Vec<u32> = (0..b).map(|_| rng.gen_range(0..n_items as u32)).collect();
            let mut m = MainBatch::<f32>::default();
            m.users.gather(&uc, &u);
            m.items.gather(&ic, &i);
            m.log_q = i
                .iter()
                .map(|_| rng.gen_range(1e-6f32..1e-3).ln())
                .collect();
            m.item_ids = i;
            let s = ssl.then(|| {
                let items: Vec<u32> = (0..b).map(|_| rng.gen_range(0..n_items as u32)).collect();
                let mut v1 = TowerBatch::default();
                let mut v2 = TowerBatch::default();
                v1.gather(&ic, &items);
                v2.gather(&ic, &items);
                for (f, (a, c)) in v1
                    .features
                    .iter_mut()
                    .zip(v2.features.iter_mut())
                    .enumerate()
                {
                    a.masked = (0..b).map(|r| (r + f) % 2 == 0).collect();
                    c.masked = a.masked.iter().map(|&x| !x).collect();
                }
                SslBatch {
                    view1: v1,
                    view2: v2,
                }
            });
            (m, s)
        })
        .collect();
    Setup {
        model,
        opt,
        batches,
    }
}

fn run(c: &mut Criterion, name: &str, make: impl FnOnce() -> Setup) {
    let cfg = LossConfig {
        temperature: 0.05f32,
        mask_accidental_hits: true,
        ssl_temperature: 0.1,
        ssl_weight: 0.1,
    };
    // Built lazily so that a filtered-out benchmark costs nothing.
    let mut make = Some(make);
    let mut state: Option<(Setup, Workspace<f32>, ModelGrads<f32>)> = None;
    let mut k = 0usize;
    c.bench_function(name, |bch| {
        let (s, ws, grads) = state.get_or_insert_with(|| {
            let s = (make.take().expect("built once"))();
            let g = ModelGrads::new(&s.model);
            (s, Workspace::default(), g)
        });
        bch.iter(|| {
            let (m, ssl) = &s.batches[k % s.batches.len()];
            k += 1;
            let parts = s.model.loss_and_grads(m, ssl.as_ref(), &cfg, ws, grads);
            s.opt.step(&mut s.model, grads);
            parts.total
        })
    });
}

fn big(n: usize, ssl: bool) -> Setup {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let users = vec![
        col("user_id", n, None, 1, 64, &mut rng),
        col("segment", n, Some(1000), 1, 64, &mut rng),
        col("tags", n, Some(100), 3, 64, &mut rng),
    ];
    let items = vec![
        col("item_id", n, None, 1, 64, &mut rng),
        col("brand", n, Some(1000), 1, 64, &mut rng),
        col("genres", n, Some(100), 3, 64, &mut rng),
    ];
    setup(users, items, n, n, 1024, ssl)
}

fn ml100k() -> Setup {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (nu, ni) = (943, 1682);
    let users = vec![
        col("age", nu, Some(8), 1, 32, &mut rng),
        col("gender", nu, Some(3), 1, 32, &mut rng),
        col("occupation", nu, Some(22), 1, 32, &mut rng),
        col("user_id", nu, None, 1, 32, &mut rng),
        col("zip1", nu, Some(11), 1, 32, &mut rng),
    ];
    let items = vec![
        col("decade", ni, Some(11), 1, 32, &mut rng),
        col("genres", ni, Some(20), 3, 32, &mut rng),
        col("item_id", ni, None, 1, 32, &mut rng),
    ];
    setup(users, items, nu, ni, 256, false)
}

fn steps(c: &mut Criterion) {
    run(c, "step/b256_ml100k", ml100k);
    run(c, "step/b1024_items10k", || big(10_000, false));
    run(c, "step/b1024_items1m", || big(1_000_000, false));
    run(c, "step/b1024_items1m_ssl", || big(1_000_000, true));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = steps
}
criterion_main!(benches);
