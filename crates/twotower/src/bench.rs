//! The measurement harness behind `twotower bench` and the criterion
//! benches: training-step throughput with a per-phase time split, the
//! allocation count of the steady state, resident memory, and evaluation
//! throughput next to a plain GEMM of the same shape.
//!
//! A training step here is the training loop's own [`Step`](crate::step::Step)
//! ([`crate::step`]): batch assembly (candidates and mixed negatives, both
//! towers' inputs, history bags, id dropout, `log q`, false-negative masks,
//! weights), the SSL views, loss and backward, update. For a config, its
//! inputs are the trainer's ([`crate::train::step_inputs`]); only the row
//! order is the harness's. Synthetic catalogs step over pairs drawn
//! uniformly at random ([`uniform_pairs`]: the worst case for caches, every
//! touched embedding row a random row of its table).
//!
//! Memory and allocation figures come from the process: [`CountingAlloc`]
//! (install it as the `#[global_allocator]` to count heap allocations) and
//! `/proc/self/status` (Linux; `None` elsewhere).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ndarray::{s, Array2, ArrayViewMut2};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use twotower_data::Interactions;

use crate::augment::AugmentError;
use crate::eval::{evaluate, DotScorer, EvalConfig, EvalError, EvalSet};
use crate::frequency::FrequencyError;
use crate::model::TwoTower;
use crate::optim::SparseOptimizerKind;
use crate::step::{StepOutcome, StepTimes};
use crate::tower::{FeatureColumn, FeatureSpec, MaskEmbedding, TowerSpec};
use crate::train::{Batch, TrainError, TrainState};

// ---------------------------------------------------------------- allocations

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// A global allocator that forwards to [`System`] and counts every
/// allocation (`alloc`, `alloc_zeroed`, `realloc`). Install it in a binary
/// with `#[global_allocator] static A: CountingAlloc = CountingAlloc;` and
/// read the count with [`allocations`]. One relaxed atomic add per
/// allocation.
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments,
// which upholds GlobalAlloc's contract; the counter has no effect on memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

/// Whether [`CountingAlloc`] is this process's global allocator (an
/// allocation moves the count).
pub fn counting_allocations() -> bool {
    let before = allocations();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(16)));
    allocations() > before
}

/// Heap allocations counted by [`CountingAlloc`] so far in this process
/// (0 forever when it is not the global allocator).
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

// --------------------------------------------------------------------- memory

fn proc_status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident set size of this process in bytes (`VmHWM`), Linux only.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|k| k * 1024)
}

/// Current resident set size of this process in bytes (`VmRSS`), Linux only.
pub fn rss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|k| k * 1024)
}

/// Resets the peak resident set size to the current one (writes `5` to
/// `/proc/self/clear_refs`, Linux ≥ 4.0). Returns whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Bytes of the embedding tables and their sparse-optimizer state:
/// `4 × Σ rows × dim × (1 + slots)` with 2 slots for lazy Adam (m, v),
/// 1 for Adagrad, and `1/dim` (one accumulator per row) for row-wise Adagrad.
pub fn embedding_state_bytes(model: &TwoTower<f32>, kind: SparseOptimizerKind) -> u64 {
    let mut total = 0u64;
    for tower in [&model.user, &model.item] {
        for t in &tower.tables {
            let values = (t.rows * t.dim) as u64;
            let state = match kind {
                SparseOptimizerKind::Adam => 2 * values,
                SparseOptimizerKind::Adagrad { row_wise: false } => values,
                SparseOptimizerKind::Adagrad { row_wise: true } => t.rows as u64,
            };
            total += 4 * (values + state);
        }
    }
    total
}

// ------------------------------------------------------------ synthetic data

/// One synthetic categorical feature over `n` entities in CSR form.
#[derive(Clone, Debug)]
pub struct SyntheticColumn {
    /// Feature name.
    pub name: String,
    /// Vocabulary size (rows of its embedding table, index 0 = OOV).
    pub vocab: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// `n + 1` offsets.
    pub offsets: Vec<u32>,
    /// Vocabulary indices.
    pub values: Vec<u32>,
}

impl SyntheticColumn {
    /// Borrowed CSR view.
    pub fn column(&self) -> FeatureColumn<'_> {
        FeatureColumn {
            offsets: &self.offsets,
            values: &self.values,
            weights: &[],
        }
    }
}

/// The synthetic features of one side with `n` entities, each `dim`-wide:
/// `id` (vocabulary n + 1, entity e → row e + 1), `category` (one of 1,000
/// values) and `tags` (a bag of 1–3 of 100 values). Deterministic in `seed`.
pub fn synthetic_side(n: usize, dim: usize, seed: u64) -> Vec<SyntheticColumn> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut id = SyntheticColumn {
        name: "id".into(),
        vocab: n + 1,
        dim,
        offsets: (0..=n as u32).collect(),
        values: (1..=n as u32).collect(),
    };
    id.offsets.shrink_to_fit();
    let category = SyntheticColumn {
        name: "category".into(),
        vocab: 1001,
        dim,
        offsets: (0..=n as u32).collect(),
        values: (0..n).map(|_| rng.gen_range(1..=1000u32)).collect(),
    };
    let mut offsets = Vec::with_capacity(n + 1);
    let mut values = Vec::with_capacity(2 * n);
    offsets.push(0u32);
    for _ in 0..n {
        let k = rng.gen_range(1..=3);
        for _ in 0..k {
            values.push(rng.gen_range(1..=100u32));
        }
        offsets.push(values.len() as u32);
    }
    let tags = SyntheticColumn {
        name: "tags".into(),
        vocab: 101,
        dim,
        offsets,
        values,
    };
    vec![id, category, tags]
}

/// The tower specification of synthetic columns: MLP `hidden` → `out_dim`,
/// zero mask embedding.
pub fn synthetic_spec(cols: &[SyntheticColumn], hidden: Vec<usize>, out_dim: usize) -> TowerSpec {
    TowerSpec {
        features: cols
            .iter()
            .map(|c| FeatureSpec {
                name: c.name.clone(),
                vocab_size: c.vocab,
                dim: c.dim,
            })
            .collect(),
        hidden,
        out_dim,
        mask_embedding: MaskEmbedding::Zero,
    }
}

// --------------------------------------------------------------- step harness

/// Everything one training-step measurement needs.
pub struct StepSetup<'a> {
    /// The training state — model, optimizer and step — as the trainer
    /// holds it: for a config, the trainer's own
    /// ([`TrainState::new`](crate::train::TrainState::new)); for a
    /// synthetic catalog, one over [`uniform_pairs`]
    /// ([`TrainState::from_step`](crate::train::TrainState::from_step)).
    pub state: TrainState<'a>,
    /// Number of users.
    pub n_users: usize,
    /// Main batch size `B`.
    pub batch_size: usize,
    /// The order the steps visit the rows in.
    pub order: RowOrder,
}

/// The order in which [`run_steps`] visits the rows of the step's
/// interactions, `B` consecutive entries a step.
#[derive(Clone, Debug)]
pub enum RowOrder {
    /// A permutation drawn from this seed, redrawn when used up (as epochs are).
    Shuffled(u64),
    /// These rows, in this order, cycled when used up (e.g. an epoch of the
    /// trainer, [`crate::train::epoch_order`]).
    Given(Vec<u32>),
}

/// `n` (user, item) pairs drawn uniformly at random — the worst case for
/// caches: every touched embedding row is a random row of its table —
/// as interactions (timestamps = row numbers), deterministic in `seed`.
pub fn uniform_pairs(n_users: usize, n_items: usize, n: usize, seed: u64) -> Interactions {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Interactions::default();
    for r in 0..n {
        x.user.push(rng.gen_range(0..n_users as u32));
        x.item.push(rng.gen_range(0..n_items as u32));
        x.timestamp.push(r as i64);
    }
    x
}

/// Milliseconds per step of each phase (means over the measured steps).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PhaseMs {
    /// Pair selection, embedding-bag input gather of both towers, `log p` lookup.
    pub gather: f64,
    /// Tower forward passes of the main batch.
    pub forward: f64,
    /// In-batch softmax with logQ (scores, log-sum-exp, score gradients).
    pub loss: f64,
    /// Tower backward passes of the main batch.
    pub backward: f64,
    /// SSL: uniform item sampling and building both augmented views.
    pub ssl_augment: f64,
    /// SSL: both views forward, InfoNCE, both views backward.
    pub ssl_compute: f64,
    /// Sparse row-wise updates of the touched embedding rows.
    pub sparse_update: f64,
    /// Adam/AdamW updates of the dense tensors.
    pub dense_update: f64,
    /// The whole step (≥ the sum of the phases; the rest is bookkeeping).
    pub total: f64,
}

/// The result of [`run_steps`].
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    /// Main batch size `B`.
    pub batch_size: usize,
    /// Warm-up steps (not measured).
    pub warmup_steps: usize,
    /// Steps per measured repeat.
    pub steps: usize,
    /// Examples per second of each repeat (`B × steps / wall time`).
    pub repeats_examples_per_second: Vec<f64>,
    /// Median of the repeats.
    pub examples_per_second: f64,
    /// `B / examples_per_second`, in milliseconds.
    pub ms_per_step: f64,
    /// Mean per-phase milliseconds over every measured step.
    pub phases_ms: PhaseMs,
    /// Heap allocations per measured step ([`CountingAlloc`]; `None` when
    /// it is not the global allocator).
    pub allocations_per_step: Option<f64>,
    /// Mean training loss over the measured steps (a sanity check: finite).
    pub mean_loss: f64,
}

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The SSL views could not be built.
    #[error("building the SSL views: {0}")]
    Augment(#[from] AugmentError),
    /// The logQ probabilities could not be computed.
    #[error("logQ sampling probabilities: {0}")]
    Frequency(#[from] FrequencyError),
    /// The evaluation failed.
    #[error("evaluation: {0}")]
    Eval(#[from] EvalError),
    /// A setup that cannot produce a batch.
    #[error("{0}")]
    Setup(String),
    /// The loss became NaN or infinite.
    #[error("the loss became {0} during the benchmark")]
    NonFinite(f64),
}

fn ms(d: Duration, steps: usize) -> f64 {
    d.as_secs_f64() * 1e3 / steps.max(1) as f64
}

/// Runs `warmup` unmeasured steps, then `repeats` windows of `steps` steps
/// each; reports the median examples/s over the windows, the per-phase split
/// and the allocations per step over all measured steps.
///
/// # Errors
/// [`BenchError`] when the setup is empty, the SSL views fail, or the loss
/// becomes non-finite.
pub fn run_steps(
    setup: &mut StepSetup<'_>,
    warmup: usize,
    steps: usize,
    repeats: usize,
) -> Result<StepReport, BenchError> {
    let b = setup.batch_size;
    let n = setup.state.step.inputs.fit.len();
    if b == 0
        || setup.state.step.inputs.n_items == 0
        || setup.n_users == 0
        || steps == 0
        || repeats == 0
    {
        return Err(BenchError::Setup(
            "batch size, users, items, steps and repeats must all be > 0".into(),
        ));
    }
    if n < b {
        return Err(BenchError::Setup(format!(
            "{n} pairs cannot fill a batch of {b}"
        )));
    }
    // the rows in a shuffled order, reshuffled per pass (as epochs are),
    // or the order given
    let (mut rng, reshuffle) = match &setup.order {
        RowOrder::Shuffled(seed) => (ChaCha8Rng::seed_from_u64(*seed), true),
        RowOrder::Given(_) => (ChaCha8Rng::seed_from_u64(0), false),
    };
    let mut order: Vec<u32> = match &setup.order {
        RowOrder::Shuffled(_) => (0..n as u32).collect(),
        RowOrder::Given(o) => o.clone(),
    };
    if order.len() < b || order.iter().any(|&r| r as usize >= n) {
        return Err(BenchError::Setup(format!(
            "the row order has {} rows (of {n}): fewer than a batch of {b}, or out of range",
            order.len()
        )));
    }
    if reshuffle {
        order.shuffle(&mut rng);
    }
    let mut cursor = 0usize;
    let mut loss_sum = 0.0;
    let mut eps = Vec::with_capacity(repeats);
    let mut allocs = 0u64;
    for window in 0..=repeats {
        // window 0 is the warm-up
        let n_steps = if window == 0 { warmup } else { steps };
        if window == 1 {
            setup.state.step.workspace().times.reset();
            setup.state.step.times = StepTimes::default();
            setup.state.opt.times = Default::default();
            loss_sum = 0.0;
        }
        let a0 = allocations();
        let w0 = Instant::now();
        for _ in 0..n_steps {
            if cursor + b > order.len() {
                if reshuffle {
                    order.shuffle(&mut rng);
                }
                cursor = 0;
            }
            let rows = &order[cursor..cursor + b];
            cursor += b;
            match setup
                .state
                .run_step(&Batch::Rows(rows))
                .map_err(|e| match e {
                    TrainError::Augment(a) => BenchError::Augment(a),
                    other => BenchError::Setup(other.to_string()),
                })? {
                StepOutcome::Updated(parts) => loss_sum += parts.total,
                StepOutcome::Skipped => {}
                StepOutcome::NonFinite(v) => return Err(BenchError::NonFinite(v)),
            }
        }
        let wall = w0.elapsed().as_secs_f64();
        if window > 0 {
            allocs += allocations() - a0;
            eps.push((b * n_steps) as f64 / wall.max(1e-12));
        }
    }
    let measured = steps * repeats;
    let mut sorted = eps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        0.5 * (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2])
    };
    let t = setup.state.step.workspace().times;
    let st = setup.state.step.times;
    let o = setup.state.opt.times;
    Ok(StepReport {
        batch_size: b,
        warmup_steps: warmup,
        steps,
        repeats_examples_per_second: eps,
        examples_per_second: median,
        ms_per_step: b as f64 / median * 1e3,
        phases_ms: PhaseMs {
            gather: ms(st.gather, measured),
            forward: ms(t.forward, measured),
            loss: ms(t.loss, measured),
            backward: ms(t.backward, measured),
            ssl_augment: ms(st.augment, measured),
            ssl_compute: ms(t.ssl, measured),
            sparse_update: ms(o.sparse, measured),
            dense_update: ms(o.dense, measured),
            total: ms(st.total, measured),
        },
        allocations_per_step: counting_allocations().then(|| allocs as f64 / measured as f64),
        mean_loss: loss_sum / measured as f64,
    })
}

// ------------------------------------------------------------------ evaluation

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_side_shapes() {
        let cols = synthetic_side(10, 8, 1);
        assert_eq!(cols.len(), 3);
        assert_eq!(cols[0].values, (1..=10).collect::<Vec<u32>>());
        assert_eq!(cols[1].offsets.len(), 11);
        let tags = &cols[2];
        for w in tags.offsets.windows(2) {
            assert!((1..=3).contains(&(w[1] - w[0])));
        }
        assert!(tags.values.iter().all(|&v| (1..=100).contains(&v)));
        // deterministic in the seed
        assert_eq!(synthetic_side(10, 8, 1)[2].values, tags.values);
    }

    #[test]
    fn embedding_state_bytes_by_hand() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let u = synthetic_side(10, 4, 1);
        let i = synthetic_side(20, 4, 2);
        let model = TwoTower::<f32>::new(
            synthetic_spec(&u, vec![8], 4),
            synthetic_spec(&i, vec![8], 4),
            &mut rng,
        )
        .unwrap();
        // rows: user 11 + 1001 + 101, item 21 + 1001 + 101 = 2236; × dim 4
        let values = 2236u64 * 4;
        assert_eq!(
            embedding_state_bytes(&model, SparseOptimizerKind::Adam),
            4 * 3 * values
        );
        assert_eq!(
            embedding_state_bytes(&model, SparseOptimizerKind::Adagrad { row_wise: true }),
            4 * (values + 2236)
        );
    }

    #[test]
    fn run_steps_reports_every_phase_and_learns() {
        use crate::frequency::CountFrequency;
        use crate::model::LossConfig;
        use crate::optim::Optimizer;
        use crate::step::{Frequency, Step, StepInputs};
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let u = synthetic_side(50, 8, 1);
        let i = synthetic_side(40, 8, 2);
        let model = TwoTower::<f32>::new(
            synthetic_spec(&u, vec![16], 8),
            synthetic_spec(&i, vec![16], 8),
            &mut rng,
        )
        .unwrap();
        let opt = Optimizer::new(&model, &Default::default());
        let mut fit = Interactions::default();
        for k in 0..200u32 {
            fit.user.push(k % 50);
            fit.item.push((k * 7) % 40);
            fit.timestamp.push(k as i64);
        }
        let inputs = StepInputs {
            user_columns: u.iter().map(SyntheticColumn::column).collect(),
            item_columns: i.iter().map(SyntheticColumn::column).collect(),
            n_items: 40,
            fit: &fit,
            frequency: Frequency::Counts(CountFrequency::from_train_counts(&[5; 40]).unwrap()),
            logq_weight: 1.0,
            mixed_negatives: 0,
            weights: None,
            user_history: None,
            history: None,
            id_dropout: None,
            ssl: None,
            loss: LossConfig {
                temperature: 0.1,
                mask_accidental_hits: true,
                ssl_temperature: 0.1,
                ssl_weight: 0.1,
            },
            seed: 1,
            phase_tag: 0,
        };
        let step = Step::new(inputs, &model, 16);
        let mut setup = StepSetup {
            state: TrainState::from_step(model, opt, step),
            n_users: 50,
            batch_size: 16,
            order: RowOrder::Shuffled(1),
        };
        let first = run_steps(&mut setup, 0, 5, 1).unwrap();
        let r = run_steps(&mut setup, 2, 50, 3).unwrap();
        assert_eq!(r.repeats_examples_per_second.len(), 3);
        assert!(r.examples_per_second > 0.0);
        let p = r.phases_ms;
        assert!(p.forward > 0.0 && p.backward > 0.0 && p.loss > 0.0 && p.sparse_update > 0.0);
        assert_eq!(p.ssl_compute, 0.0);
        let parts = p.gather + p.forward + p.loss + p.backward + p.sparse_update + p.dense_update;
        assert!(parts <= p.total * 1.0001, "{parts} > {}", p.total);
        // training on a fixed pairing lowers the in-batch loss
        assert!(
            r.mean_loss < first.mean_loss,
            "{} !< {}",
            r.mean_loss,
            first.mean_loss
        );
        // an impossible batch is an error, not a panic
        setup.batch_size = 1000;
        assert!(run_steps(&mut setup, 0, 1, 1).is_err());
    }

    #[test]
    fn gemm_only_checksum_and_eval_report() {
        // one user block and one item tile: the checksum is score(0, 0)
        let users = unit_rows(3, 8, 1);
        let items = unit_rows(5, 8, 2);
        let norms: Vec<f32> = users.rows().into_iter().map(|r| r.dot(&r)).collect();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
        let got = gemm_only(&users, &items, &EvalConfig::default());
        let want = users.row(0).dot(&items.row(0));
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");

        let r = eval_throughput(64, 500, 16, 1).unwrap();
        assert_eq!((r.users, r.items, r.dim), (64, 500, 16));
        let scores = 64.0 * 500.0;
        assert!((r.evaluate_scores_per_second * r.evaluate_seconds - scores).abs() < 1e-6 * scores);
        assert!((r.ratio_to_gemm * r.evaluate_seconds - r.gemm_seconds).abs() < 1e-12);
    }
}
