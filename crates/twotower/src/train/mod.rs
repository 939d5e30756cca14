//! The training loop: epochs of in-batch softmax (with logQ correction,
//! accidental-hit masking and optional mixed negatives) plus optional SSL on
//! the item tower, sparse embedding updates, validation-based early stopping,
//! checkpoints, resume and the final evaluation per EVALUATION.md.
//!
//! # Phases
//! 1. `search`: a temporal validation split is carved from train exactly as
//!    the test split is carved from all data (EVALUATION.md); the model trains
//!    on the rest and is evaluated on the validation split after every epoch;
//!    training stops after `train.patience` epochs without a better
//!    `train.monitor` (recall@50). The test split is never looked at.
//! 2. `refit` (if `train.refit`): a fresh model with the same seed trains on
//!    the full train split for the best epoch count found in 1, so that the
//!    final model also sees each user's most recent train interactions.
//!    Without refit the best search-phase model is kept.
//!
//! # Determinism
//! Every random choice derives from `train.seed`: model initialisation from
//! `(seed, phase)`, the shuffle of epoch e from `(seed, phase, e)`, the mixed
//! negatives and SSL batch of step t from `(seed, phase, t)`. So the same seed,
//! config and thread count give the same model bit for bit, and a resumed run
//! (which restarts at the saved step) equals an uninterrupted one.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use twotower_data::{Dataset, EntityTable, Interactions};

use crate::augment::{AugmentConfig, Augmenter, MaskingPattern};
use crate::checkpoint::{self, CheckpointMeta};
use crate::config::{Config, LogqFrequency, MaskAs, MiWeighting};
use crate::eval::{evaluate, DotScorer, EvalConfig, EvalSet, Metrics, PopularityScorer};
use crate::frequency::{CountFrequency, StreamingFrequency};
use crate::history::{recency_weights, UserHistory};
use crate::history_feature::HistoryFeature;
use crate::memory::MemoryPlan;
use crate::model::{LossConfig, TwoTower};
use crate::optim::{OptimConfig, Optimizer, SparseOptimizerKind};
use crate::progress::{Progress, ProgressMode};
use crate::step::{Frequency, Step, StepInputs, StepOutcome};

mod state;
use state::{
    restore, restore_streaming, saved_set, CheckpointTarget, NamedTensors, Position, Snapshot,
};
use twotower_model::inference::{mix, shared_item_feature};

// Building a model from a config and encoding with it moved to the model
// crate (serving needs them without training code); re-exported here under
// their old paths.
pub use crate::step::{fill_log_q, item_id_dropout};
pub use twotower_model::inference::{
    columns, encode_all, encode_items, encode_user_table, history_feature, new_model, tower_spec,
    user_columns, user_tower_spec, HistoryColumn,
};

/// Errors that stop training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    #[error(
        "the loss became {value} at epoch {epoch}, global step {step} (phase {phase}); training stopped and the \
         last good checkpoint in {run_dir} was kept. Try a lower learning rate (train.lr_sparse, \
         train.lr_dense), a higher loss.temperature, or train.clip_grad_norm"
    )]
    NonFiniteLoss {
        /// The value (NaN or ±inf).
        value: f64,
        /// Epoch (1-based).
        epoch: usize,
        /// Global step within the phase.
        step: u64,
        /// Phase name.
        phase: String,
        /// Run directory.
        run_dir: PathBuf,
    },
    /// The loss became NaN or infinite before any checkpoint was written.
    #[error(
        "the loss became {value} at epoch {epoch}, batch {batch} (phase {phase}), before the first \
         checkpoint; nothing was saved. Try a lower learning rate (train.lr_sparse, train.lr_dense), a \
         higher loss.temperature, or train.clip_grad_norm"
    )]
    NonFiniteLossNoCheckpoint {
        /// The value (NaN or ±inf).
        value: f64,
        /// Epoch (1-based).
        epoch: usize,
        /// Batch within the epoch (1-based).
        batch: usize,
        /// Phase name.
        phase: String,
    },
    /// Ctrl-C: a checkpoint was saved; `--resume` continues.
    #[error("interrupted: checkpoint saved in {run_dir}; continue with --resume (resume=True from Python)")]
    Interrupted {
        /// Run directory.
        run_dir: PathBuf,
    },
    /// Checkpoint I/O.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// A resume that does not fit this config or data.
    #[error("cannot resume from {run_dir}: {message}")]
    Resume {
        /// Run directory.
        run_dir: PathBuf,
        /// Why.
        message: String,
    },
    /// The data cannot be trained on.
    #[error("{0}")]
    Data(String),

    /// The model would not fit in memory (see [`crate::memory`]).
    #[error("{0}")]
    OutOfMemory(String),
    /// Evaluation failed (e.g. a NaN score).
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    /// The logQ frequency estimator could not be set up.
    #[error(transparent)]
    Frequency(#[from] crate::frequency::FrequencyError),
    /// SSL augmentation could not be set up.
    #[error(transparent)]
    Augment(#[from] crate::augment::AugmentError),
    /// Writing an output file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Options of one training run that are not part of the model config.
pub struct TrainOptions<'a> {
    /// The run directory (checkpoint, logs, metrics).
    pub run_dir: PathBuf,
    /// Continue from the checkpoint in `run_dir`.
    pub resume: bool,
    /// Set by a Ctrl-C handler; checked after every step.
    pub interrupt: Option<&'a AtomicBool>,
    /// Print one line per epoch to stderr.
    pub verbose: bool,
    /// Stop as if interrupted after this many optimizer steps of the current
    /// process (checkpoint saved, [`TrainError::Interrupted`]); for testing
    /// that `resume` reproduces an uninterrupted run. `None` in normal use.
    pub stop_after_steps: Option<u64>,
    /// Called with each epoch's record (the line `epochs.jsonl` gains)
    /// once it is written; the Python package reports progress through it.
    pub on_epoch: Option<&'a (dyn Fn(&serde_json::Value) + Sync)>,
}

/// What training produced.
pub struct TrainOutcome {
    /// The final model (refit, or best of the search phase).
    pub model: TwoTower<f32>,
    /// Per-epoch records (both phases).
    pub history: Vec<serde_json::Value>,
    /// Best validation value and its epoch, if validation ran.
    pub best: Option<(f64, usize)>,
    /// Training examples processed per second (main batch rows), over all phases.
    pub examples_per_second: f64,
    /// Wall time of training, seconds.
    pub train_seconds: f64,
    /// `Dataset::fingerprint` of the data trained on.
    pub data_fingerprint: String,
}

impl twotower_model::run::TrainSummary for TrainOutcome {
    fn best_validation(&self) -> Option<(f64, usize)> {
        self.best
    }
    fn examples_per_second(&self) -> f64 {
        self.examples_per_second
    }
    fn train_seconds(&self) -> f64 {
        self.train_seconds
    }
    fn data_fingerprint(&self) -> &str {
        &self.data_fingerprint
    }
}

/// Checks that the history feature can be built on this data.
///
/// # Errors
/// [`TrainError::Data`] when a tower would have no feature, `share_item_table`
/// is set but the item tower has no item-id feature (or `dim` is set beside
/// it), or `train.item_id_dropout` has no item-id feature to act on.
pub fn check_history(cfg: &Config, ds: &Dataset) -> Result<(), TrainError> {
    let h = &cfg.raw.model.history;
    if ds.users.features.is_empty() && !h.enabled {
        return Err(TrainError::Data(
            "the user tower has no feature: add a user feature ([features.NAME] with side = \"user\") \
             or the history feature (model.history.enabled = true)"
                .into(),
        ));
    }
    if ds.items.features.is_empty() {
        return Err(TrainError::Data(
            "the item tower has no feature: add an item feature ([features.NAME] with side = \"item\")"
                .into(),
        ));
    }
    if cfg.raw.train.item_id_dropout > 0.0 && !ds.items.features.iter().any(|f| f.is_id) {
        return Err(TrainError::Data(
            "train.item_id_dropout needs an item-id feature (a categorical item feature on the item key column)"
                .into(),
        ));
    }
    if h.enabled && h.share_item_table && h.dim != 0 {
        return Err(TrainError::Data(format!(
            "model.history.dim = {} with share_item_table = true: a shared table has the item-id feature's dim; \
             leave model.history.dim at 0 (or set features.<item id>.dim)",
            h.dim
        )));
    }
    if h.enabled && h.share_item_table && shared_item_feature(cfg, ds).is_none() {
        return Err(TrainError::Data(
            "model.history.share_item_table = true needs an item-id feature (a categorical \
             item feature on the item key column) whose table the history can share"
                .into(),
        ));
    }
    Ok(())
}

/// Never set: stands in for a Ctrl-C flag when `stop_after_steps` fires.
static STOP: AtomicBool = AtomicBool::new(false);

/// The search phase's tag in the random streams (validation + early stopping).
pub const PHASE_SEARCH: u64 = 1;
/// The refit phase's tag (all of train; also the only phase without validation).
pub const PHASE_REFIT: u64 = 2;
const STREAM_SHUFFLE: u64 = 1;

/// A config document with its `[model]`, `[loss]`, `[ssl]`, `[train]` and
/// `[eval]` sections replaced by their resolved values (every default filled
/// in), so that an unset key and its default compare equal. A document that
/// does not parse is returned as it is.
fn resolved_doc(doc: &toml::Value) -> toml::Value {
    let mut v = doc.clone();
    let Ok(c) = Config::from_doc(doc.clone(), PathBuf::new(), "checkpoint") else {
        return v;
    };
    if let toml::Value::Table(t) = &mut v {
        let sections = [
            ("model", toml::Value::try_from(&c.raw.model)),
            ("loss", toml::Value::try_from(&c.raw.loss)),
            ("ssl", toml::Value::try_from(&c.raw.ssl)),
            ("train", toml::Value::try_from(&c.raw.train)),
            ("eval", toml::Value::try_from(&c.raw.eval)),
        ];
        for (k, s) in sections {
            if let Ok(s) = s {
                t.insert(k.to_string(), s);
            }
        }
    }
    v
}

/// Every dotted key where two config documents differ, with both values
/// (`checkpoint` = `a`, `now` = `b`), appended to `out` in key order.
fn differences(a: &toml::Value, b: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    use toml::Value;
    match (a, b) {
        (Value::Table(x), Value::Table(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => differences(va, vb, &path, out),
                    (Some(va), None) => {
                        out.push(format!("{path} = {va} in the checkpoint, unset now"))
                    }
                    (None, Some(vb)) => {
                        out.push(format!("{path} unset in the checkpoint, {vb} now"))
                    }
                    (None, None) => {}
                }
            }
        }
        // an integer and a float of the same value are the same setting
        (Value::Integer(i), Value::Float(f)) | (Value::Float(f), Value::Integer(i))
            if *i as f64 == *f => {}
        _ if a != b => out.push(format!("{prefix} = {a} in the checkpoint, {b} now")),
        _ => {}
    }
}

/// (user, item) index pairs of interactions.
pub fn pairs(x: &Interactions) -> Vec<(u32, u32)> {
    x.user.iter().copied().zip(x.item.iter().copied()).collect()
}

/// `items` with the id feature(s) of every item that has no interaction
/// in `seen` set to row 0, the out-of-vocabulary row: the item table of the
/// search phase, whose train split (`seen`) is the part of train before the
/// validation cut. The vocabulary (and so the model's shapes) is unchanged;
/// an item first seen in validation then reaches the tower as a cold item
/// does at test time, so validation's `cold_recall@K` measures the cold path.
///
/// # Shapes
/// `seen`: item indices `< items.len()`.
pub fn unseen_ids_as_oov(items: &EntityTable, seen: &[u32]) -> EntityTable {
    let mut has = vec![false; items.len()];
    for &i in seen {
        has[i as usize] = true;
    }
    let mut out = items.clone();
    for f in out.features.iter_mut().filter(|f| f.is_id) {
        for (e, _) in has.iter().enumerate().filter(|(_, &h)| !h) {
            let (a, b) = (f.offsets[e] as usize, f.offsets[e + 1] as usize);
            f.values[a..b].fill(0);
        }
    }
    out
}

/// The entity tables the search phase trains and validates on: `ds`'s,
/// with [`unseen_ids_as_oov`] applied to the items for `fit` (the part of
/// train before the validation cut). Its `train` and `test` are empty: the
/// search phase reads `fit` and the validation set, never `ds`'s splits.
pub fn search_dataset(ds: &Dataset, fit: &Interactions) -> Dataset {
    Dataset {
        users: ds.users.clone(),
        items: unseen_ids_as_oov(&ds.items, &fit.item),
        train: Interactions::default(),
        test: Interactions::default(),
        report: ds.report.clone(),
    }
}

/// The evaluator's view of a (train, test) pair of splits.
pub fn eval_set(
    ds: &Dataset,
    train: &Interactions,
    test: &Interactions,
) -> Result<EvalSet, TrainError> {
    EvalSet::new(
        ds.users.ids.len(),
        ds.items.ids.len(),
        &pairs(train),
        &pairs(test),
        &ds.items.id_rank,
    )
    .map_err(|e| TrainError::Data(e.to_string()))
}

/// [`eval_set`] with the config's user sample (`eval.max_users`,
/// `eval.sample_seed`; see [`EvalSet::sample_users`]): the set every
/// validation and test evaluation of a run uses.
pub fn eval_set_sampled(
    cfg: &Config,
    ds: &Dataset,
    train: &Interactions,
    test: &Interactions,
) -> Result<EvalSet, TrainError> {
    let mut set = eval_set(ds, train, test)?;
    set.sample_users(cfg.raw.eval.max_users, cfg.raw.eval.sample_seed);
    Ok(set)
}

/// Evaluates a model on `set` per EVALUATION.md; `history` (built from the
/// set's train side) feeds the history feature, if the model has one.
///
/// # Errors
/// [`TrainError::Eval`] (e.g. NaN scores from a diverged model).
pub fn evaluate_model(
    model: &TwoTower<f32>,
    ds: &Dataset,
    set: &EvalSet,
    cfg: &Config,
    history: Option<&HistoryFeature>,
) -> Result<Metrics, TrainError> {
    let (uv, iv) = encode_all(model, ds, history);
    let scorer = DotScorer::new(uv.view(), iv.view())?;
    Ok(evaluate(&scorer, set, &eval_config(cfg))?)
}

/// The most-popular baseline on `set`.
///
/// # Errors
/// [`TrainError::Eval`].
pub fn evaluate_most_popular(set: &EvalSet, cfg: &Config) -> Result<Metrics, TrainError> {
    let scorer = PopularityScorer::from_set(set);
    Ok(evaluate(&scorer, set, &eval_config(cfg))?)
}

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
            let mut c = vec![0u32; ds.items.ids.len()];
            for &i in &train.item {
                c[i as usize] += 1;
            }
            Some(c)
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

/// Trains per `cfg` on `ds`, writing checkpoints and logs into `opts.run_dir`.
///
/// # Errors
/// [`TrainError`]: a NaN/inf loss (last good checkpoint kept), Ctrl-C
/// (checkpoint saved), checkpoint I/O, or a resume that does not match.
pub fn train(
    cfg: &Config,
    ds: &Dataset,
    opts: &TrainOptions<'_>,
) -> Result<TrainOutcome, TrainError> {
    if ds.train.user.is_empty() {
        return Err(TrainError::Data(
            "the train split has no interactions".into(),
        ));
    }
    if ds.items.ids.is_empty() {
        return Err(TrainError::Data("the catalog has no items".into()));
    }
    check_history(cfg, ds)?;
    let t = &cfg.raw.train;
    let mut cost = Cost {
        start: Instant::now(),
        prior_seconds: 0.0,
        examples: 0,
    };
    let mut steps_this_process = 0u64;

    // once per run (a sort of every interaction row): the resume check,
    // every checkpoint and the outcome share it
    let data_fingerprint = ds.fingerprint();
    let mut resume_meta: Option<(CheckpointMeta, BTreeMap<String, checkpoint::Tensor>)> = None;
    if opts.resume {
        if !checkpoint::exists(&opts.run_dir) {
            return Err(TrainError::Resume {
                run_dir: opts.run_dir.clone(),
                message: "no checkpoint there".into(),
            });
        }
        let (meta, tensors) = checkpoint::load(&opts.run_dir)?;
        // compare what the configs mean: defaults filled in, 3 = 3.0
        let mut diffs = Vec::new();
        differences(
            &resolved_doc(&meta.config),
            &resolved_doc(&cfg.doc),
            "",
            &mut diffs,
        );
        if !diffs.is_empty() {
            let what = diffs.join("; ");
            return Err(TrainError::Resume {
                run_dir: opts.run_dir.clone(),
                message: format!(
                    "the config differs from the checkpoint's: {what} (resume with the same --config and --set)"
                ),
            });
        }
        if let Some(fp) = &meta.data_fingerprint {
            let now = &data_fingerprint;
            if twotower_data::fingerprints_differ(fp, now) {
                return Err(TrainError::Resume {
                    run_dir: opts.run_dir.clone(),
                    message: format!(
                        "the data changed since the checkpoint (data fingerprint {fp} then, {now} now): \
                         a model trained partly on each would match neither; restore the data or retrain"
                    ),
                });
            }
        }
        if !(meta.train_seconds.is_finite() && meta.train_seconds >= 0.0) {
            return Err(TrainError::Resume {
                run_dir: opts.run_dir.clone(),
                message: format!(
                    "checkpoint train_seconds = {} is not a finite number >= 0 (a corrupt checkpoint?)",
                    meta.train_seconds
                ),
            });
        }
        cost.prior_seconds = meta.train_seconds;
        cost.examples = meta.examples;
        resume_meta = Some((meta, tensors));
    }

    let mut history: Vec<serde_json::Value> = resume_meta
        .as_ref()
        .map(|(m, _)| m.history.clone())
        .unwrap_or_default();

    let mut best = None;
    let resume_phase = resume_meta.as_ref().map(|(m, _)| m.phase.clone());
    let mut final_model = None;

    // ---- search phase: validation split + early stopping
    let search_needed = t.validation && resume_phase.as_deref() != Some("refit");
    let mut best_epochs = t.epochs;
    if search_needed {
        let split = &cfg.data().split;
        let (fit, valid) = twotower_data::temporal_split(
            &ds.train,
            &ds.items.id_rank,
            split.test_fraction,
            split.min_interactions,
        );
        if valid.user.is_empty() {
            return Err(TrainError::Data(
                "the validation split carved from train is empty (too few interactions per user); \
                 set train.validation=false"
                    .into(),
            ));
        }
        let vset = eval_set_sampled(cfg, ds, &fit, &valid)?;
        // EVALUATION.md: an id first seen after the train cut is out of
        // vocabulary; the search phase's cut is the validation cut
        let search_ds = search_dataset(ds, &fit);
        let r = run_phase(
            cfg,
            &search_ds,
            &fit,
            Some(&vset),
            t.epochs,
            PHASE_SEARCH,
            "search",
            resume_meta.take(),
            &mut history,
            opts,
            &mut cost,
            &data_fingerprint,
            &mut steps_this_process,
            None,
        )?;
        best = r.best;
        best_epochs = r.best.map(|(_, e)| e).unwrap_or(t.epochs).max(1);
        if opts.verbose {
            if let Some((v, e)) = r.best {
                eprintln!(
                    "validation: best {} {v:.4} at epoch {e}{}",
                    t.monitor,
                    if t.refit {
                        format!("; refitting on the full train split for {e} epochs")
                    } else {
                        String::new()
                    }
                );
            }
        }
        if !t.refit {
            final_model = Some(r.model);
        }
    }
    if final_model.is_none() {
        let resume = if resume_phase.as_deref() == Some("refit") {
            resume_meta.take()
        } else {
            None
        };
        if let Some((m, _)) = &resume {
            best = m.best;
            if let Some((_, e)) = m.best {
                best_epochs = e;
            }
        }
        let r = run_phase(
            cfg,
            ds,
            &ds.train,
            None,
            best_epochs,
            PHASE_REFIT,
            "refit",
            resume,
            &mut history,
            opts,
            &mut cost,
            &data_fingerprint,
            &mut steps_this_process,
            best,
        )
        .map(|mut r| {
            r.best = best;
            r
        })?;
        final_model = Some(r.model);
    }
    let secs = cost.seconds();
    Ok(TrainOutcome {
        model: final_model.expect("set above"),
        history,
        best,
        examples_per_second: cost.examples as f64 / secs.max(1e-9),
        train_seconds: secs,
        data_fingerprint,
    })
}

/// What training has cost so far, across processes: a resumed run starts
/// from the checkpoint's figures, so `run.json` reports the whole run.
struct Cost {
    start: Instant,
    prior_seconds: f64,
    examples: u64,
}

impl Cost {
    /// Wall seconds of training so far (earlier processes included).
    fn seconds(&self) -> f64 {
        self.prior_seconds + self.start.elapsed().as_secs_f64()
    }
}

struct PhaseResult {
    model: TwoTower<f32>,
    best: Option<(f64, usize)>,
}

#[derive(Serialize)]
struct EpochRecord<'a> {
    phase: &'a str,
    epoch: usize,
    loss: f64,
    loss_main: f64,
    loss_ssl: f64,
    examples_per_second: f64,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    validation: Option<BTreeMap<String, Option<f64>>>,
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

/// The inputs of the training [`Step`] of one phase: `fit` is the phase's
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
    let mut counts = vec![0u32; n_items];
    for &i in &fit.item {
        counts[i as usize] += 1;
    }
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

#[allow(clippy::too_many_arguments)]
fn run_phase(
    cfg: &Config,
    ds: &Dataset,
    fit: &Interactions,
    valid: Option<&EvalSet>,
    epochs: usize,
    phase_tag: u64,
    phase: &str,
    resume: Option<(CheckpointMeta, BTreeMap<String, checkpoint::Tensor>)>,
    history: &mut Vec<serde_json::Value>,
    opts: &TrainOptions<'_>,
    cost: &mut Cost,
    data_fingerprint: &str,
    steps_this_process: &mut u64,
    initial_best: Option<(f64, usize)>,
) -> Result<PhaseResult, TrainError> {
    let t = &cfg.raw.train;
    let seed = t.seed;
    let available = crate::memory::available_bytes();
    if t.check_memory {
        // from the specs, before anything is allocated: an absurd size is
        // a message, not an abort in the allocator
        crate::memory::check_before_allocating(
            &user_tower_spec(cfg, ds),
            &tower_spec(cfg, &ds.items.features),
            cfg,
            t.batch_size.min(fit.user.len()).max(1),
            valid.is_some(),
            available,
        )
        .map_err(TrainError::OutOfMemory)?;
    }
    let mut model = new_model(cfg, ds, phase_tag).map_err(|e| TrainError::Data(e.to_string()))?;
    // say what the run holds, and refuse before allocating the optimizer
    // state when it cannot fit (an OOM kill mid-run loses the work)
    let plan = MemoryPlan::new(&model, &optim_config(cfg), cfg, ds, valid.is_some());
    if opts.verbose {
        eprintln!("{phase}: {}", plan.line(available));
    }
    if t.check_memory {
        plan.check(available).map_err(TrainError::OutOfMemory)?;
    }
    let mut opt = Optimizer::new(&model, &optim_config(cfg));
    let mut inputs = step_inputs(cfg, ds, fit, phase_tag)?;
    // training position
    let mut epoch = 0usize;
    let mut batch_start = 0usize;
    let mut step = 0u64;
    // the refit phase carries the search phase's best (saved in its checkpoints)
    let mut best: Option<(f64, usize)> = initial_best;
    let mut since_best = 0usize;
    let mut best_tensors: Option<NamedTensors> = None;
    // epoch-level moving average of the weights (train.epoch_average)
    let mut ema: Option<NamedTensors> = None;
    let mut finished = false;
    if let Some((meta, tensors)) = resume {
        restore(&mut model, &mut opt, &tensors, &opts.run_dir)?;
        if let Frequency::Streaming(s) = &mut inputs.frequency {
            restore_streaming(s, &tensors, &opts.run_dir)?;
        }
        epoch = meta.epoch;
        batch_start = meta.batch_in_epoch;
        step = meta.global_step;
        opt.set_step_count(step);
        best = meta.best;
        since_best = meta.epochs_without_improvement;
        finished = meta.finished;
        let saved_set = |prefix: &str| saved_set(&model, &tensors, prefix, &opts.run_dir);
        if let Some(bt) = saved_set("best.")? {
            best_tensors = Some(bt);
        }
        if let Some(et) = saved_set("ema.")? {
            ema = Some(et);
        }
    }

    let n = fit.user.len();
    // a batch never exceeds the data (an absurd batch_size must not allocate it)
    let bsz = t.batch_size.min(n).max(1);
    let n_batches = n.div_ceil(bsz);
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut one_step = Step::new(inputs, &model, bsz);

    let target = CheckpointTarget {
        cfg,
        phase,
        run_dir: &opts.run_dir,
        data_fingerprint,
    };

    let progress_mode = ProgressMode::for_stderr(t.progress, t.progress_seconds);
    while !finished && epoch < epochs {
        let ep_start = Instant::now();
        let decay = t.lr_decay.powi(epoch as i32);
        opt.config.sparse_lr = t.lr_sparse * decay;
        opt.config.dense_lr = t.lr_dense * decay;
        epoch_order(seed, phase_tag, epoch, &mut order);
        let mut pb = Progress::new(
            progress_mode,
            format!("{phase} epoch {}/{}", epoch + 1, epochs),
            n_batches as u64,
            batch_start as u64,
        );
        let (mut sum_main, mut sum_ssl, mut sum_total, mut n_steps) =
            (0.0f64, 0.0f64, 0.0f64, 0usize);
        let mut ep_examples = 0u64;
        for b in batch_start..n_batches {
            let rows = &order[b * bsz..((b + 1) * bsz).min(n)];
            let bn = rows.len();
            match one_step.run(&mut model, &mut opt, rows, step)? {
                StepOutcome::Updated(parts) => {
                    step += 1;
                    sum_main += parts.main;
                    sum_ssl += parts.ssl;
                    sum_total += parts.total;
                    n_steps += 1;
                }
                StepOutcome::Skipped => {}
                StepOutcome::NonFinite(value) => {
                    pb.abandon();
                    if !checkpoint::exists(&opts.run_dir) {
                        return Err(TrainError::NonFiniteLossNoCheckpoint {
                            value,
                            epoch: epoch + 1,
                            batch: b + 1,
                            phase: phase.to_string(),
                        });
                    }
                    return Err(TrainError::NonFiniteLoss {
                        value,
                        epoch: epoch + 1,
                        step,
                        phase: phase.to_string(),
                        run_dir: opts.run_dir.clone(),
                    });
                }
            }
            ep_examples += bn as u64;
            cost.examples += bn as u64;
            if b % 16 == 0 || b + 1 == n_batches {
                let eps = ep_examples as f64 / ep_start.elapsed().as_secs_f64().max(1e-9);
                pb.update(
                    b as u64 + 1,
                    ep_examples,
                    eps,
                    sum_total / n_steps.max(1) as f64,
                );
            }
            *steps_this_process += 1;
            let stop_now = opts
                .stop_after_steps
                .is_some_and(|n| *steps_this_process >= n);
            if let Some(flag) = opts.interrupt.or(if stop_now { Some(&STOP) } else { None }) {
                if stop_now || flag.load(Ordering::SeqCst) {
                    pb.abandon();
                    state::save(
                        &target,
                        &Snapshot {
                            model: &model,
                            opt: &opt,
                            freq: &one_step.inputs.frequency,
                            best_tensors: &best_tensors,
                            ema: &ema,
                            position: Position {
                                epoch,
                                batch_in_epoch: b + 1,
                                step,
                                best,
                                since_best,
                                finished: false,
                            },
                            history,
                            train_seconds: cost.seconds(),
                            examples: cost.examples,
                        },
                    )?;
                    return Err(TrainError::Interrupted {
                        run_dir: opts.run_dir.clone(),
                    });
                }
            }
        }
        pb.finish();
        batch_start = 0;
        epoch += 1;
        let secs = ep_start.elapsed().as_secs_f64();
        let eps = ep_examples as f64 / secs.max(1e-9);
        let k = n_steps.max(1) as f64;
        let mut validation = None;
        let mut improved_line = String::new();
        // the weights this epoch ends with: raw, or their epoch-level average
        let averaged = if t.epoch_average > 0.0 {
            let g = t.epoch_average as f32;
            match &mut ema {
                None => {
                    ema = Some(
                        model
                            .named_tensors()
                            .into_iter()
                            .map(|(n, s, d)| (n, s, d.to_vec()))
                            .collect(),
                    )
                }
                Some(e) => {
                    for ((an, _, avg), (cn, _, cur)) in e.iter_mut().zip(model.named_tensors()) {
                        assert_eq!(*an, cn, "weight average out of order");
                        for (a, c) in avg.iter_mut().zip(cur) {
                            *a = g * *a + (1.0 - g) * c;
                        }
                    }
                }
            }
            let mut m = model.clone();
            for (name, _, data) in ema.as_ref().expect("set above") {
                m.tensor_mut(name)
                    .expect("named tensor")
                    .copy_from_slice(data);
            }
            Some(m)
        } else {
            None
        };
        let current = averaged.as_ref().unwrap_or(&model);
        if let Some(vset) = valid {
            let m = evaluate_model(current, ds, vset, cfg, one_step.inputs.history.as_ref())?;
            let v = m
                .values
                .get(&t.monitor)
                .copied()
                .flatten()
                .unwrap_or(f64::NEG_INFINITY);
            if best.is_none_or(|(b, _)| v > b) {
                best = Some((v, epoch));
                since_best = 0;
                best_tensors = Some(
                    current
                        .named_tensors()
                        .into_iter()
                        .map(|(n, s, d)| (n, s, d.to_vec()))
                        .collect(),
                );
                improved_line = " (best)".into();
            } else {
                since_best += 1;
            }
            improved_line = format!(" val {} {:.4}{}", t.monitor, v, improved_line);
            validation = Some(m.values.clone());
            if t.patience > 0 && since_best >= t.patience {
                finished = true;
            }
        }
        if epoch >= epochs {
            finished = true;
        }
        let rec = EpochRecord {
            phase,
            epoch,
            loss: sum_total / k,
            loss_main: sum_main / k,
            loss_ssl: sum_ssl / k,
            examples_per_second: eps,
            seconds: secs,
            validation,
        };
        history.push(serde_json::to_value(&rec).expect("serializable"));
        if opts.verbose {
            eprintln!(
                "{phase} epoch {epoch}/{epochs}: loss {:.4} (main {:.4}, ssl {:.4}) {:.0} ex/s{}",
                rec.loss, rec.loss_main, rec.loss_ssl, eps, improved_line
            );
        }
        write_history(&opts.run_dir, history)?;
        if let (Some(f), Some(rec)) = (opts.on_epoch, history.last()) {
            f(rec);
        }
        state::save(
            &target,
            &Snapshot {
                model: &model,
                opt: &opt,
                freq: &one_step.inputs.frequency,
                best_tensors: &best_tensors,
                ema: &ema,
                position: Position {
                    epoch,
                    batch_in_epoch: 0,
                    step,
                    best,
                    since_best,
                    finished,
                },
                history,
                train_seconds: cost.seconds(),
                examples: cost.examples,
            },
        )?;
    }
    // the search phase returns its best model; the refit phase its last
    // (averaged, with train.epoch_average) weights
    let keep = if valid.is_some() { best_tensors } else { ema };
    if let Some(bt) = keep {
        for (name, _, data) in bt {
            if let Some(dst) = model.tensor_mut(&name) {
                dst.copy_from_slice(&data);
            }
        }
    }
    Ok(PhaseResult { model, best })
}

fn write_history(dir: &Path, history: &[serde_json::Value]) -> Result<(), TrainError> {
    let path = dir.join("epochs.jsonl");
    crate::util::atomic_write(&path, |w| {
        for h in history {
            serde_json::to_writer(&mut *w, h).map_err(std::io::Error::other)?;
            std::io::Write::write_all(w, b"\n")?;
        }
        Ok(())
    })
    .map_err(|source| TrainError::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_every_key_and_both_values() {
        let diff = |a: &str, b: &str| {
            let (a, b): (toml::Value, toml::Value) =
                (toml::from_str(a).unwrap(), toml::from_str(b).unwrap());
            let mut out = Vec::new();
            differences(&a, &b, "", &mut out);
            out
        };
        let a = "[loss]\ntemperature = 0.1\n[train]\nseed = 1\n";
        assert!(diff(a, a).is_empty());
        assert_eq!(
            diff(
                a,
                "[loss]\ntemperature = 0.2\n[train]\nseed = 1\nepochs = 3\n"
            ),
            vec![
                "loss.temperature = 0.1 in the checkpoint, 0.2 now".to_string(),
                "train.epochs unset in the checkpoint, 3 now".to_string(),
            ]
        );
        // resolved: 3 and 3.0 are the same setting, an unset key equals its
        // default, a real change is still named
        let resolved = |a: &str, b: &str| {
            let (a, b): (toml::Value, toml::Value) =
                (toml::from_str(a).unwrap(), toml::from_str(b).unwrap());
            let mut out = Vec::new();
            differences(&resolved_doc(&a), &resolved_doc(&b), "", &mut out);
            out
        };
        let a = "[train]\nrecency_decay = 3.0\n";
        assert!(resolved(a, "[train]\nrecency_decay = 3\n").is_empty());
        assert!(resolved(
            a,
            "[train]\nrecency_decay = 3\n[loss]\nmask_false_negatives = false\n"
        )
        .is_empty());
        assert_eq!(
            resolved(a, "[train]\nrecency_decay = 1\n"),
            vec!["train.recency_decay = 3.0 in the checkpoint, 1.0 now".to_string()]
        );
    }
}

#[cfg(test)]
mod search_phase_tests {
    use super::*;

    #[test]
    fn items_unseen_before_the_validation_cut_read_the_oov_id_row() {
        let ds = twotower_data::generate_dataset(&twotower_data::SyntheticConfig {
            users: 60,
            items: 80,
            interactions: 400,
            ..Default::default()
        })
        .unwrap();
        let fit = ds
            .train
            .select(&(0..ds.train.len() as u32 / 2).collect::<Vec<_>>());
        let seen: std::collections::HashSet<u32> = fit.item.iter().copied().collect();
        let out = search_dataset(&ds, &fit);
        assert!(out.train.is_empty() && out.test.is_empty());
        assert_eq!(out.users, ds.users);
        let (mut oov, mut kept) = (0, 0);
        for (f, g) in ds.items.features.iter().zip(&out.items.features) {
            assert_eq!((&f.vocab, &f.offsets), (&g.vocab, &g.offsets), "{}", f.name);
            for e in 0..ds.items.len() {
                if f.is_id && !seen.contains(&(e as u32)) {
                    assert_eq!(g.row(e), &[0], "item {e} unseen in fit: id row 0");
                    oov += 1;
                } else {
                    assert_eq!(g.row(e), f.row(e), "{} item {e}", f.name);
                    kept += f.is_id as usize;
                }
            }
        }
        assert!(oov > 0 && kept > 0, "both kinds occur: {oov} {kept}");
        assert!(ds.items.features.iter().any(|f| f.is_id));
    }
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
