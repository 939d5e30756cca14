//! A phase's components built from the config: the evaluation, optimizer
//! and SSL-augmentation settings, the epoch's batch order and the training
//! step's inputs.

use std::borrow::Cow;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use twotower_data::{Dataset, Interactions};

use crate::augment::{AugmentConfig, Augmenter, MaskingPattern};
use crate::config::{Config, LogqFrequency, MaskAs, MiWeighting};
use crate::eval::EvalConfig;
use crate::frequency::{CountFrequency, StreamingFrequency};
use crate::history::{recency_weights, UserHistory};
use crate::model::LossConfig;
use crate::optim::{OptimConfig, SparseOptimizerKind};
use crate::step::{Frequency, StepInputs};
use twotower_model::inference::{columns, history_feature, mix};

use super::{TrainError, STREAM_SHUFFLE};

/// Evaluation settings from `[eval]`.
pub fn eval_config(cfg: &Config) -> EvalConfig {
    EvalConfig {
        ks: cfg.raw.eval.ks.clone(),
        block_users: cfg.raw.eval.block_users,
        ..EvalConfig::default()
    }
}

/// The optimizer settings of a config's `[train]` section.
pub fn optim_config(cfg: &Config) -> OptimConfig {
    let t = &cfg.raw.train;
    OptimConfig {
        sparse: SparseOptimizerKind::from(t.sparse_optimizer),
        sparse_lr: t.lr_sparse,
        dense_lr: t.lr_dense,
        weight_decay: t.weight_decay,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        adagrad_initial_accumulator: 0.0,
        clip_grad_norm: if t.clip_grad_norm > 0.0 {
            Some(t.clip_grad_norm)
        } else {
            None
        },
    }
}

/// Builds the SSL augmenter, or `None` when SSL is off.
///
/// # Errors
/// [`TrainError::Augment`] if the item features cannot be augmented as configured.
pub fn augmenter(
    cfg: &Config,
    ds: &Dataset,
    train: &Interactions,
) -> Result<Option<Augmenter>, TrainError> {
    let s = &cfg.raw.ssl;
    if !s.enabled {
        return Ok(None);
    }
    let feats = &ds.items.features;
    let is_multi: Vec<bool> = feats
        .iter()
        .map(|f| matches!(f.kind, twotower_data::FeatureKind::MultiCategorical))
        .collect();
    let is_id: Vec<bool> = feats.iter().map(|f| f.is_id).collect();
    let pattern = s.masking;
    let mi = if pattern == MaskingPattern::Correlated {
        let cols = columns(feats);
        let weights = if s.mi_weighting == MiWeighting::Clicks {
            Some(train_item_counts(ds, train))
        } else {
            None
        };
        Some(crate::augment::mutual_information(
            &cols,
            weights.as_deref(),
        )?)
    } else {
        None
    };
    let acfg = AugmentConfig {
        pattern,
        mask_rate: s.mask_rate,
        dropout_rate: s.dropout_rate,
        seed_scope: s.seed_scope,
        mask_id_feature: s.mask_id,
        cfm_id_partner: s.cfm_id_partner,
        mask_as_unknown: s.mask_as == MaskAs::Unknown,
    };
    Ok(Some(Augmenter::new(acfg, is_multi, is_id, mi.as_deref())?))
}

/// Train interactions per item of a phase's train data `fit`; for a
/// streamed train split (`fit` empty), the counts its load computed.
///
/// # Shapes
/// Returns `[n_items]`.
pub fn train_item_counts(ds: &Dataset, fit: &Interactions) -> Vec<u32> {
    match &ds.train_stream {
        Some(s) if fit.is_empty() => s.item_counts.clone(),
        _ => fit.item_counts(ds.items.ids.len()),
    }
}

/// The order in which epoch `epoch` (0-based) of a phase visits the rows of
/// its interactions: a permutation of `0..order.len()` that depends only on
/// `(seed, phase_tag, epoch)`, never on the previous epoch's, so a resumed
/// process reproduces it. The epoch's batches are its consecutive
/// `train.batch_size` slices.
pub fn epoch_order(seed: u64, phase_tag: u64, epoch: usize, order: &mut [u32]) {
    let mut shuffle_rng =
        ChaCha8Rng::seed_from_u64(mix(seed, phase_tag, STREAM_SHUFFLE, epoch as u64));
    for (i, o) in order.iter_mut().enumerate() {
        *o = i as u32;
    }
    order.shuffle(&mut shuffle_rng);
}

/// The inputs of the training [`Step`](crate::step::Step) of one phase: `fit` is the phase's
/// train interactions (the logQ counts, false-negative masks, recency
/// weights and history bags all come from it), `phase_tag` the phase's
/// random stream. `twotower bench` builds its config cases' step here too,
/// so it measures the step training runs.
///
/// # Errors
/// [`TrainError`] if the SSL augmenter or the logQ estimator cannot be
/// built from the config.
pub fn step_inputs<'a>(
    cfg: &Config,
    ds: &'a Dataset,
    fit: &'a Interactions,
    phase_tag: u64,
) -> Result<StepInputs<'a>, TrainError> {
    let t = &cfg.raw.train;
    let l = &cfg.raw.loss;
    let n_items = ds.items.ids.len();
    let seed = t.seed;
    // sampling probabilities of the logQ correction, from this phase's train data only
    let counts = train_item_counts(ds, fit);
    let freq = match (l.logq, l.frequency) {
        (false, _) => Frequency::Off,
        (true, LogqFrequency::Streaming) => {
            Frequency::Streaming(Box::new(StreamingFrequency::new(
                l.streaming_alpha,
                l.streaming_buckets,
                l.streaming_hashes,
                seed,
            )?))
        }
        (true, LogqFrequency::BatchInclusion) => {
            Frequency::Counts(CountFrequency::batch_inclusion(&counts, t.batch_size)?)
        }
        (true, LogqFrequency::Counts) => {
            Frequency::Counts(CountFrequency::from_train_counts(&counts)?)
        }
    };
    let logq_weight = l.logq_weight as f32;
    let aug = augmenter(cfg, ds, fit)?;
    let m_ssl = if cfg.raw.ssl.batch_size > 0 {
        cfg.raw.ssl.batch_size
    } else {
        t.batch_size
    };
    let loss_cfg = LossConfig {
        temperature: cfg.raw.loss.temperature as f32,
        mask_accidental_hits: l.mask_accidental_hits,
        ssl_temperature: cfg.raw.ssl.temperature as f32,
        ssl_weight: cfg.raw.ssl.weight as f32,
        ssl_stop_gradient: cfg.raw.ssl.stop_gradient,
        ssl_symmetric: cfg.raw.ssl.symmetric,
    };
    // per-example loss weights: the data's weight column and/or recency
    let data_weights = if l.use_weights {
        fit.weight.as_ref()
    } else {
        None
    };
    let combined: Option<Vec<f32>> = (t.recency_decay > 0.0).then(|| {
        let mut w = recency_weights(fit, &ds.items.id_rank, t.recency_decay);
        if let Some(d) = data_weights {
            for (a, &b) in w.iter_mut().zip(d) {
                *a *= b;
            }
        }
        w
    });

    Ok(StepInputs {
        user_columns: columns(&ds.users.features),
        item_columns: columns(&ds.items.features),
        n_items,
        fit,
        frequency: freq,
        logq_weight,
        mixed_negatives: l.mixed_negatives,
        weights: match combined {
            Some(w) => Some(Cow::Owned(w)),
            None => data_weights.map(|w| Cow::Borrowed(w.as_slice())),
        },
        // false-negative masking: each user's items in this phase's train data
        user_history: l
            .mask_false_negatives
            .then(|| UserHistory::from_pairs(ds.users.ids.len(), &fit.user, &fit.item)),
        // the history feature: each example's earlier items of this phase's data
        history: history_feature(cfg, ds, fit),
        // item-id dropout acts on the item tower's id feature
        id_dropout: (t.item_id_dropout > 0.0)
            .then(|| ds.items.features.iter().position(|f| f.is_id))
            .flatten()
            .map(|f| (f, t.item_id_dropout)),
        ssl: aug.map(|a| (a, m_ssl)),
        loss: loss_cfg,
        seed,
        phase_tag,
    })
}
