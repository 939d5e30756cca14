//! One training step, written once: batch assembly, loss and backward,
//! update. The trainer ([`crate::train`]), the `twotower bench` harness
//! ([`crate::bench::run_steps`]), the criterion step bench and the
//! no-allocation test all run this [`Step`], so what is measured and tested
//! is the step training runs.
//!
//! A step over the rows `r_1..r_B` of the phase's interactions:
//! 1. candidates: the rows' items, then `M` mixed negatives drawn uniformly
//!    from the catalog (Yang et al. 2020);
//! 2. both towers' embedding-bag inputs gathered side by side
//!    ([`crate::tower::TowerBatch::gather`]); with the history feature, each
//!    row's bag of the user's earlier items;
//! 3. item-id dropout (`train.item_id_dropout`): a candidate's id replaced by
//!    the out-of-vocabulary row with probability `p`;
//! 4. `log q_j` of the logQ correction ([`fill_log_q`]; Yi et al. 2019), the
//!    streaming estimator observing the batch first; false-negative masks;
//!    per-example loss weights;
//! 5. SSL (Yao et al. 2021): `m` items sampled uniformly, their two augmented
//!    views;
//! 6. [`TwoTower::loss_and_grads`], then, if the loss is finite,
//!    [`Optimizer::step`].
//!
//! Randomness is drawn from streams keyed by `(seed, phase, step)` only, so a
//! resumed process draws what the uninterrupted one did.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twotower_data::Interactions;

use crate::augment::{AugmentError, Augmenter};
use crate::frequency::{CountFrequency, FrequencyEstimator, StreamingFrequency, P_FLOOR};
use crate::history::{MaskScratch, UserHistory};
use crate::history_feature::HistoryFeature;
use crate::model::{LossConfig, LossParts, MainBatch, ModelGrads, SslBatch, TwoTower, Workspace};
use crate::optim::Optimizer;
use crate::tower::{BatchFeature, FeatureColumn};
use twotower_model::inference::mix;

/// Random stream of a step's mixed negatives and SSL draws.
pub const STREAM_STEP: u64 = 2;
/// Random stream of a step's item-id dropout (its own, so the other draws
/// stay as they are when it is switched on).
pub const STREAM_ID_DROPOUT: u64 = 3;

/// The sampling-probability estimator of the logQ correction.
pub enum Frequency {
    /// No correction (`loss.logq = false`).
    Off,
    /// Fixed probabilities from train counts.
    Counts(CountFrequency),
    /// The streaming estimator (Yi et al. 2019, Algorithm 2), updated by
    /// every batch before it is read.
    Streaming(Box<StreamingFrequency>),
}

/// The fixed parts of a step: what it reads and how it is configured.
pub struct StepInputs<'a> {
    /// User feature columns over all users.
    pub user_columns: Vec<FeatureColumn<'a>>,
    /// Item feature columns over the catalog.
    pub item_columns: Vec<FeatureColumn<'a>>,
    /// Catalog size.
    pub n_items: usize,
    /// The interactions a step's rows index.
    pub fit: &'a Interactions,
    /// The logQ correction's estimator.
    pub frequency: Frequency,
    /// Strength β of the correction (`loss.logq_weight`).
    pub logq_weight: f32,
    /// Mixed negatives `M` per batch (`loss.mixed_negatives`).
    pub mixed_negatives: usize,
    /// Per-row loss weights of `fit` (data weights and/or recency), if any.
    pub weights: Option<Cow<'a, [f32]>>,
    /// Each user's items in `fit`, for false-negative masking.
    pub user_history: Option<UserHistory>,
    /// The user tower's history feature over `fit`.
    pub history: Option<HistoryFeature>,
    /// Item-id dropout: the item tower's id feature index and `p`.
    pub id_dropout: Option<(usize, f64)>,
    /// The SSL augmenter and `m`, the items sampled per step.
    pub ssl: Option<(Augmenter, usize)>,
    /// Loss hyper-parameters.
    pub loss: LossConfig<f32>,
    /// `train.seed`.
    pub seed: u64,
    /// The phase's tag in the random streams.
    pub phase_tag: u64,
}

/// Wall time spent in the step's own phases (the model's and optimizer's
/// phases are in [`Workspace::times`] and [`Optimizer::times`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct StepTimes {
    /// Candidates, both towers' input gather, history bags, id dropout,
    /// `log q`, masks and weights.
    pub gather: Duration,
    /// SSL item sampling and both views.
    pub augment: Duration,
    /// The whole step.
    pub total: Duration,
}

/// What a step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepOutcome {
    /// The update was applied; the losses of the batch.
    Updated(LossParts),
    /// Every loss weight of the batch was 0: nothing to learn, no update.
    Skipped,
    /// The loss was NaN or infinite; no update was applied.
    NonFinite(f64),
}

/// One training step with its reusable buffers (no allocation once warm).
pub struct Step<'a> {
    /// What the step reads.
    pub inputs: StepInputs<'a>,
    /// Accumulated wall time of the step's phases.
    pub times: StepTimes,
    users_idx: Vec<u32>,
    items_idx: Vec<u32>,
    main: MainBatch<f32>,
    mask_scratch: MaskScratch,
    hist_bags: BatchFeature,
    ssl: SslBatch,
    ssl_items: Vec<u32>,
    ws: Workspace<f32>,
    grads: ModelGrads<f32>,
}

impl<'a> Step<'a> {
    /// A step over `inputs` for `model` (gradient buffers shaped like it).
    pub fn new(inputs: StepInputs<'a>, model: &TwoTower<f32>, batch_size: usize) -> Self {
        let m_ssl = inputs.ssl.as_ref().map_or(0, |(_, m)| *m);
        Step {
            users_idx: Vec::with_capacity(batch_size),
            items_idx: Vec::with_capacity(batch_size + inputs.mixed_negatives),
            main: MainBatch::default(),
            mask_scratch: MaskScratch::default(),
            hist_bags: BatchFeature::default(),
            ssl: SslBatch::default(),
            ssl_items: Vec::with_capacity(m_ssl),
            ws: Workspace::default(),
            grads: ModelGrads::new(model),
            inputs,
            times: StepTimes::default(),
        }
    }

    /// The model's phase times of the steps run so far (forward, loss,
    /// backward, SSL).
    pub fn workspace(&mut self) -> &mut Workspace<f32> {
        &mut self.ws
    }

    /// Runs one step on `rows` (indices into `inputs.fit`) as global step
    /// `step` of the phase: assembles the batch, computes the loss and its
    /// gradients and, when the loss is finite, updates `model` with `opt`.
    ///
    /// # Shapes
    /// `rows`: `[B]`; the batch has `B` rows and `B + M` candidate columns.
    ///
    /// # Errors
    /// [`AugmentError`] if the SSL views cannot be built.
    pub fn run(
        &mut self,
        model: &mut TwoTower<f32>,
        opt: &mut Optimizer<f32>,
        rows: &[u32],
        step: u64,
    ) -> Result<StepOutcome, AugmentError> {
        let t0 = Instant::now();
        let fit = self.inputs.fit;
        self.users_idx.clear();
        self.items_idx.clear();
        for &r in rows {
            self.users_idx.push(fit.user[r as usize]);
            self.items_idx.push(fit.item[r as usize]);
        }
        self.run_batch(model, opt, Rows::Fit(rows), step, t0)
    }

    /// Runs one step on a batch given as its (user, item) pairs and, if the
    /// data has a weight column, their loss weights — the rows of a
    /// streamed train split ([`crate::train`]'s streaming batches), which
    /// are not in `inputs.fit`. Everything else is [`Step::run`]'s.
    ///
    /// # Shapes
    /// `users`, `items` (and `weights`): `[B]`.
    ///
    /// # Errors
    /// [`AugmentError`] if the SSL views cannot be built.
    ///
    /// # Panics
    /// If the inputs hold the history feature (its bags need each row's
    /// place in `fit`; the trainer refuses it before it streams) or the
    /// lengths differ.
    pub fn run_pairs(
        &mut self,
        model: &mut TwoTower<f32>,
        opt: &mut Optimizer<f32>,
        users: &[u32],
        items: &[u32],
        weights: Option<&[f32]>,
        step: u64,
    ) -> Result<StepOutcome, AugmentError> {
        let t0 = Instant::now();
        assert_eq!(users.len(), items.len(), "one item per user");
        assert!(
            self.inputs.history.is_none(),
            "the history feature needs the rows of the in-memory train split"
        );
        self.users_idx.clear();
        self.items_idx.clear();
        self.users_idx.extend_from_slice(users);
        self.items_idx.extend_from_slice(items);
        self.run_batch(model, opt, Rows::Given(weights), step, t0)
    }

    fn run_batch(
        &mut self,
        model: &mut TwoTower<f32>,
        opt: &mut Optimizer<f32>,
        rows: Rows<'_>,
        step: u64,
        t0: Instant,
    ) -> Result<StepOutcome, AugmentError> {
        let inp = &mut self.inputs;
        let fit = inp.fit;
        let main = &mut self.main;
        let mut step_rng =
            ChaCha8Rng::seed_from_u64(mix(inp.seed, inp.phase_tag, STREAM_STEP, step));
        for _ in 0..inp.mixed_negatives {
            self.items_idx
                .push(step_rng.gen_range(0..inp.n_items as u32));
        }
        // the two towers' inputs are independent: gather them side by side
        let (users_idx, items_idx) = (&self.users_idx, &self.items_idx);
        let (ucols, icols) = (&inp.user_columns, &inp.item_columns);
        let (users, items) = (&mut main.users, &mut main.items);
        rayon::join(
            || users.gather(ucols, users_idx),
            || items.gather(icols, items_idx),
        );
        if let (Some(h), Rows::Fit(rows)) = (&inp.history, rows) {
            h.gather_examples(fit, rows, &mut self.hist_bags);
            main.users
                .features
                .push(std::mem::take(&mut self.hist_bags));
        }
        if let Some((f, p)) = inp.id_dropout {
            // a candidate's id → row 0 (unknown), from its own stream so the
            // other draws stay as they were
            let mut rng =
                ChaCha8Rng::seed_from_u64(mix(inp.seed, inp.phase_tag, STREAM_ID_DROPOUT, step));
            item_id_dropout(&mut main.items.features[f], p, &mut rng);
        }
        main.item_ids.clear();
        main.item_ids.extend_from_slice(items_idx);
        main.log_q.clear();
        let bn = self.users_idx.len();
        let estimator: Option<&dyn FrequencyEstimator> = match &mut inp.frequency {
            Frequency::Off => None,
            Frequency::Counts(c) => Some(c),
            Frequency::Streaming(s) => {
                s.observe_batch(&items_idx[..bn]);
                Some(&**s)
            }
        };
        if let Some(f) = estimator {
            fill_log_q(
                &mut main.log_q,
                items_idx,
                bn,
                inp.mixed_negatives,
                inp.n_items,
                inp.logq_weight,
                |j| f.prob(j),
            );
        }
        if let Some(h) = &inp.user_history {
            h.fill_mask(
                users_idx,
                items_idx,
                &mut main.mask_offsets,
                &mut main.mask_cols,
                &mut self.mask_scratch,
            );
        }
        main.weights.clear();
        match rows {
            Rows::Fit(rows) => {
                if let Some(w) = &inp.weights {
                    main.weights.extend(rows.iter().map(|&r| w[r as usize]));
                }
            }
            Rows::Given(w) => {
                if let Some(w) = w {
                    assert_eq!(w.len(), bn, "one weight per pair");
                    main.weights.extend_from_slice(w);
                }
            }
        }
        // every loss weight of the batch 0 (weight column, or recency
        // weights underflowing): nothing to learn from it, skip the update
        let skip = !main.weights.is_empty() && main.weights.iter().all(|&w| w <= 0.0);
        let t1 = Instant::now();
        let ssl_ref = if skip {
            None
        } else if let Some((a, m)) = &inp.ssl {
            a.sample_items(inp.n_items, *m, &mut step_rng, &mut self.ssl_items);
            a.build_views(icols, &self.ssl_items, &mut step_rng, &mut self.ssl)?;
            Some(&self.ssl)
        } else {
            None
        };
        let t2 = Instant::now();
        let outcome = if skip {
            StepOutcome::Skipped
        } else {
            let parts =
                model.loss_and_grads(main, ssl_ref, &inp.loss, &mut self.ws, &mut self.grads);
            if parts.total.is_finite() {
                opt.step(model, &self.grads);
                StepOutcome::Updated(parts)
            } else {
                StepOutcome::NonFinite(parts.total)
            }
        };
        if inp.history.is_some() {
            // keep the history bags' buffers for the next step
            self.hist_bags = main.users.features.pop().expect("pushed above");
        }
        self.times.gather += t1 - t0;
        self.times.augment += t2 - t1;
        self.times.total += t0.elapsed();
        Ok(outcome)
    }
}

/// Where a batch's rows come from.
#[derive(Clone, Copy)]
enum Rows<'r> {
    /// Indices into `inputs.fit` (its weights apply).
    Fit(&'r [u32]),
    /// Pairs given by the caller, with their weights if any.
    Given(Option<&'r [f32]>),
}

/// Item-id dropout (`train.item_id_dropout`): each row's bag of the id
/// feature becomes row 0 — the out-of-vocabulary row a cold item reads —
/// with probability `p`, one Bernoulli draw per row in row order.
///
/// # Panics
/// If `p` is not in [0, 1].
pub fn item_id_dropout(feat: &mut BatchFeature, p: f64, rng: &mut impl Rng) {
    for row in 0..feat.offsets.len().saturating_sub(1) {
        if rng.gen_bool(p) {
            let (a, z) = (feat.offsets[row] as usize, feat.offsets[row + 1] as usize);
            feat.values[a..z].fill(0);
        }
    }
}

/// `log q_j` of every candidate column. In-batch columns are sampled by the
/// click distribution p_j; the M mixed negatives uniformly (1/|I|). The
/// combined per-column probability used for every column is
/// `q_j = p_j + M / (B · |I|)`: the expected number of times j is a candidate
/// in a batch, divided by B (which reduces to p_j when M = 0; a constant
/// factor would not change the softmax). Clamped to [`P_FLOOR`], then
/// multiplied by the correction strength β (`loss.logq_weight`).
///
/// # Shapes
/// `items`: `[B + M]` candidate item indices; appends `B + M` values to `out`.
pub fn fill_log_q(
    out: &mut Vec<f32>,
    items: &[u32],
    b: usize,
    m: usize,
    n_items: usize,
    beta: f32,
    prob: impl Fn(u32) -> f64,
) {
    let uniform = if m > 0 {
        m as f64 / (b as f64 * n_items as f64)
    } else {
        0.0
    };
    out.extend(
        items
            .iter()
            .map(|&j| beta * (prob(j) + uniform).clamp(P_FLOOR, 1.0).ln() as f32),
    );
}

#[cfg(test)]
mod id_dropout_tests {
    use super::*;

    #[test]
    fn id_dropout_zeroes_whole_rows_at_rate_p() {
        // 20,000 rows of ids 1..: about p of them become 0, the rest keep
        // their own id; p = 0 changes nothing, and the draws are seeded
        let n = 20_000u32;
        let fresh = || crate::tower::BatchFeature {
            offsets: (0..=n).collect(),
            values: (1..=n).collect(),
            ..Default::default()
        };
        let mut f = fresh();
        item_id_dropout(&mut f, 0.3, &mut ChaCha8Rng::seed_from_u64(5));
        let dropped = f.values.iter().filter(|&&v| v == 0).count() as f64 / n as f64;
        assert!((dropped - 0.3).abs() < 0.015, "{dropped}");
        assert!(f
            .values
            .iter()
            .enumerate()
            .all(|(i, &v)| v == 0 || v == i as u32 + 1));
        let mut g = fresh();
        item_id_dropout(&mut g, 0.3, &mut ChaCha8Rng::seed_from_u64(5));
        assert_eq!(f, g);
        let mut h = fresh();
        item_id_dropout(&mut h, 0.0, &mut ChaCha8Rng::seed_from_u64(5));
        assert_eq!(h, fresh());
    }
}
