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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use twotower_data::Dataset;

use crate::checkpoint::{self, CheckpointMeta};
use crate::config::Config;
use crate::model::TwoTower;

mod average;
mod batches;
mod components;
mod config_diff;
mod early_stop;
mod error;
mod phase;
mod state;
mod validation;

pub use average::EpochAverage;
pub use components::{
    augmenter, epoch_order, eval_config, optim_config, step_inputs, train_item_counts,
};
use config_diff::{differences, resolved_doc};
pub use early_stop::EarlyStopping;
pub use error::TrainError;
use phase::{run_phase, Cost, Phase};
pub use state::{Batch, NamedTensors, Position, TrainState};
use twotower_model::inference::shared_item_feature;
pub use validation::{
    eval_set, eval_set_sampled, evaluate_model, evaluate_most_popular, pairs, search_dataset,
    unseen_ids_as_oov, validation_split,
};

// Building a model from a config and encoding with it moved to the model
// crate (serving needs them without training code); re-exported here under
// their old paths.
pub use crate::step::{fill_log_q, item_id_dropout};
pub use twotower_model::inference::{
    columns, encode_all, encode_items, encode_user_table, history_feature, new_model, tower_spec,
    user_columns, user_tower_spec, HistoryColumn,
};

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

/// Checks that a config can train on a streamed train split
/// ([`twotower_data::stream`]) of `rows` interaction rows (train and
/// test): every option that needs the whole train split in memory is
/// refused in one message that names each key and the budget that would
/// avoid streaming.
///
/// # Errors
/// [`TrainError::Data`] naming the keys to change.
pub fn check_streaming(cfg: &Config, rows: u64) -> Result<(), TrainError> {
    let r = &cfg.raw;
    let mut refused = Vec::new();
    if r.train.validation {
        refused.push("train.validation = false (the validation split is carved from each user's train interactions)");
    }
    if r.model.history.enabled {
        refused.push("model.history.enabled = false (each example's history is the user's earlier train interactions)");
    }
    if r.loss.mask_false_negatives {
        refused.push(
            "loss.mask_false_negatives = false (each user's train items are held for the masks)",
        );
    }
    if r.train.recency_decay > 0.0 {
        refused.push(
            "train.recency_decay = 0 (a row's weight depends on its place among the user's rows)",
        );
    }
    if refused.is_empty() {
        return Ok(());
    }
    let gib =
        rows as f64 * twotower_data::stream::INTERACTION_ROW_BYTES as f64 / (1u64 << 30) as f64;
    Err(TrainError::Data(format!(
        "the train split is streamed ({rows} interaction rows need {gib:.2} GiB > train.max_memory_gb = {}), \
         and these options need it in memory: set {}; or raise train.max_memory_gb above {gib:.2} to load it",
        r.train.max_memory_gb,
        refused.join("; ")
    )))
}

/// The search phase's tag in the random streams (validation + early stopping).
pub const PHASE_SEARCH: u64 = 1;
/// The refit phase's tag (all of train; also the only phase without validation).
pub const PHASE_REFIT: u64 = 2;
/// The random stream of the epochs' batch orders.
const STREAM_SHUFFLE: u64 = 1;

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
    let streamed = ds.train_stream.as_ref().map(|s| s.n_rows);
    if ds.train.user.is_empty() && streamed.unwrap_or(0) == 0 {
        return Err(TrainError::Data(
            "the train split has no interactions".into(),
        ));
    }
    if let Some(n) = streamed {
        check_streaming(cfg, n + ds.test.len() as u64)?;
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
        steps_this_process: 0,
    };

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
        let (fit, valid) = validation_split(cfg, ds, &ds.train)?;
        let vset = eval_set_sampled(cfg, ds, &fit, &valid)?;
        // EVALUATION.md: an id first seen after the train cut is out of
        // vocabulary; the search phase's cut is the validation cut
        let search_ds = search_dataset(ds, &fit);
        let phase = Phase {
            name: "search",
            tag: PHASE_SEARCH,
            ds: &search_ds,
            fit: &fit,
            valid: Some(&vset),
            epochs: t.epochs,
            initial_best: None,
        };
        let r = run_phase(
            cfg,
            &phase,
            resume_meta.take(),
            &mut history,
            opts,
            &mut cost,
            &data_fingerprint,
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
        let phase = Phase {
            name: "refit",
            tag: PHASE_REFIT,
            ds,
            fit: &ds.train,
            valid: None,
            epochs: best_epochs,
            initial_best: best,
        };
        let r = run_phase(
            cfg,
            &phase,
            resume,
            &mut history,
            opts,
            &mut cost,
            &data_fingerprint,
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
