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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use twotower_data::{Dataset, Interactions};

use crate::checkpoint::{self, CheckpointMeta};
use crate::config::Config;
use crate::eval::EvalSet;
use crate::memory::MemoryPlan;
use crate::model::TwoTower;
use crate::optim::Optimizer;
use crate::progress::{Progress, ProgressMode};
use crate::step::{Frequency, Step, StepOutcome};

mod components;
mod config_diff;
mod error;
mod state;
mod validation;

pub use components::{augmenter, epoch_order, eval_config, optim_config, step_inputs};
use config_diff::{differences, resolved_doc};
pub use error::TrainError;
use state::{
    restore, restore_streaming, saved_set, CheckpointTarget, NamedTensors, Position, Snapshot,
};
use twotower_model::inference::shared_item_feature;
pub use validation::{
    eval_set, eval_set_sampled, evaluate_model, evaluate_most_popular, pairs, search_dataset,
    unseen_ids_as_oov,
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

/// Never set: stands in for a Ctrl-C flag when `stop_after_steps` fires.
static STOP: AtomicBool = AtomicBool::new(false);

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
