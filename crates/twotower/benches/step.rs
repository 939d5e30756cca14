//! One training step — the trainer's own [`twotower::step::Step`]: batch
//! assembly (both towers' gather, `log q`), SSL views, loss, backward and
//! update, f32 — over uniformly drawn (user, item) pairs.
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
//! Each iteration is one whole step on the next `B` rows. Run with
//! `cargo bench -p twotower --bench step -- --quick`.

use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use twotower::augment::{AugmentConfig, Augmenter, MaskingPattern, SeedScope};
use twotower::bench::uniform_pairs;
use twotower::frequency::CountFrequency;
use twotower::model::{LossConfig, TwoTower};
use twotower::optim::{OptimConfig, Optimizer, SparseOptimizerKind};
use twotower::step::{Frequency, Step, StepInputs, StepOutcome};
use twotower::tower::{FeatureColumn, FeatureSpec, MaskEmbedding, TowerSpec};
use twotower_data::Interactions;

/// A synthetic feature over `n` entities: `bag` ids per entity drawn from
/// `vocab` (or the entity's own id + 1 when `vocab` is `None`).
struct Col {
    name: &'static str,
    bag: usize,
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
        bag,
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

/// A synthetic setup: the features of both sides, the pairs, `B`, SSL on/off.
struct Setup {
    users: Vec<Col>,
    items: Vec<Col>,
    fit: Interactions,
    n_items: usize,
    b: usize,
    ssl: bool,
}

fn setup(
    users: Vec<Col>,
    items: Vec<Col>,
    n_users: usize,
    n_items: usize,
    b: usize,
    ssl: bool,
) -> Setup {
    let fit = uniform_pairs(n_users, n_items, 64 * b, 3);
    Setup {
        users,
        items,
        fit,
        n_items,
        b,
        ssl,
    }
}

/// The model, its optimizer and the step over a setup.
type State = (TwoTower<f32>, Optimizer<f32>, Step<'static>);

fn build(s: &'static Setup) -> State {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let model = TwoTower::new(
        spec(&s.users, vec![128]),
        spec(&s.items, vec![128]),
        &mut rng,
    )
    .unwrap();
    let opt = Optimizer::new(
        &model,
        &OptimConfig {
            sparse: SparseOptimizerKind::Adam,
            sparse_lr: 0.01,
            ..OptimConfig::default()
        },
    );
    let k = s.items.len();
    let aug = s.ssl.then(|| {
        let a = Augmenter::new(
            AugmentConfig {
                pattern: MaskingPattern::Complementary,
                mask_rate: 0.5,
                dropout_rate: 0.0,
                seed_scope: SeedScope::PerExample,
                mask_id_feature: true,
                cfm_id_partner: true,
                mask_as_unknown: true,
            },
            s.items.iter().map(|c| c.bag > 1).collect(),
            (0..k).map(|f| f == 0).collect(),
            None,
        )
        .unwrap();
        (a, s.b)
    });
    let mut counts = vec![0u32; s.n_items];
    for &i in &s.fit.item {
        counts[i as usize] += 1;
    }
    let inputs = StepInputs {
        user_columns: views(&s.users),
        item_columns: views(&s.items),
        n_items: s.n_items,
        fit: &s.fit,
        frequency: Frequency::Counts(CountFrequency::from_train_counts(&counts).unwrap()),
        logq_weight: 1.0,
        mixed_negatives: 0,
        weights: None,
        user_history: None,
        history: None,
        id_dropout: None,
        ssl: aug,
        loss: LossConfig {
            temperature: 0.05f32,
            mask_accidental_hits: true,
            ssl_temperature: 0.1,
            ssl_weight: 0.1,
            ssl_stop_gradient: false,
            ssl_symmetric: false,
        },
        seed: 7,
        phase_tag: 0,
    };
    let step = Step::new(inputs, &model, s.b);
    (model, opt, step)
}

fn run(c: &mut Criterion, name: &str, make: impl FnOnce() -> Setup) {
    // Built lazily so that a filtered-out benchmark costs nothing; leaked
    // (once per benchmark run) so the step can borrow it.
    let mut make = Some(make);
    let mut state: Option<(&'static Setup, State)> = None;
    let mut n = 0usize;
    c.bench_function(name, |bch| {
        let (s, (model, opt, step)) = state.get_or_insert_with(|| {
            let s: &'static Setup = Box::leak(Box::new((make.take().expect("built once"))()));
            (s, build(s))
        });
        let b = s.b;
        let rows_total = s.fit.len() as u32;
        bch.iter(|| {
            let start = ((n * b) as u32) % (rows_total - b as u32);
            n += 1;
            let rows: Vec<u32> = (start..start + b as u32).collect();
            match step.run(model, opt, &rows, n as u64).unwrap() {
                StepOutcome::Updated(p) => p.total,
                other => panic!("{other:?}"),
            }
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
