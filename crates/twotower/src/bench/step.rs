//! The training-step measurement: a [`TrainState`] stepped over a row
//! order, examples/s per window, the per-phase time split and the
//! allocations of the steady state.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::step::{StepOutcome, StepTimes};
use crate::train::{Batch, TrainError, TrainState};

use super::*;

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
