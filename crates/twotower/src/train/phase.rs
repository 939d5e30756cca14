//! One training phase: its epochs of steps over a batch order, the epoch's
//! loss and speed, the weight average, validation and early stopping, the
//! epoch log (`epochs.jsonl`) and a checkpoint after every epoch and on an
//! interrupt.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use twotower_data::{Dataset, Interactions};

use crate::checkpoint::{self, CheckpointMeta};
use crate::config::Config;
use crate::eval::EvalSet;
use crate::memory::MemoryPlan;
use crate::progress::{Progress, ProgressMode};
use crate::step::StepOutcome;

use super::average::copy_into;
use super::batches::Batches;
use super::state::{CheckpointTarget, TrainState};
use super::{
    evaluate_model, new_model, optim_config, tower_spec, user_tower_spec, TrainError, TrainOptions,
};

/// Never set: stands in for a Ctrl-C flag when `stop_after_steps` fires.
static STOP: AtomicBool = AtomicBool::new(false);

/// What training has cost so far, across processes: a resumed run starts
/// from the checkpoint's figures, so `run.json` reports the whole run.
pub(super) struct Cost {
    pub start: Instant,
    pub prior_seconds: f64,
    pub examples: u64,
    /// Steps run by this process (for `stop_after_steps`).
    pub steps_this_process: u64,
}

impl Cost {
    /// Wall seconds of training so far (earlier processes included).
    pub fn seconds(&self) -> f64 {
        self.prior_seconds + self.start.elapsed().as_secs_f64()
    }
}

/// What a phase produced.
pub(super) struct PhaseResult {
    pub model: crate::model::TwoTower<f32>,
    pub best: Option<(f64, usize)>,
}

/// A phase: which one, on what, for how long.
pub(super) struct Phase<'a> {
    /// Its name (`search`, `refit`), in logs and checkpoints.
    pub name: &'a str,
    /// Its tag in the random streams.
    pub tag: u64,
    /// The data (the search phase's has later ids out of vocabulary).
    pub ds: &'a Dataset,
    /// The interactions it trains on.
    pub fit: &'a Interactions,
    /// The validation set judged after every epoch (search phase).
    pub valid: Option<&'a EvalSet>,
    /// Epochs to run (at most).
    pub epochs: usize,
    /// The best validation value carried in (refit).
    pub initial_best: Option<(f64, usize)>,
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

/// Sums of an epoch's step losses.
#[derive(Default)]
struct EpochLoss {
    main: f64,
    ssl: f64,
    total: f64,
    steps: usize,
}

/// Runs `phase` to its end (or early stop), continuing from `resume` if
/// given; appends its epoch records to `history`.
///
/// # Errors
/// [`TrainError`]: memory that cannot hold the run (before allocating), a
/// non-finite loss, an interrupt (checkpoint saved), I/O.
pub(super) fn run_phase(
    cfg: &Config,
    phase: &Phase<'_>,
    resume: Option<(CheckpointMeta, BTreeMap<String, checkpoint::Tensor>)>,
    history: &mut Vec<serde_json::Value>,
    opts: &TrainOptions<'_>,
    cost: &mut Cost,
    data_fingerprint: &str,
) -> Result<PhaseResult, TrainError> {
    let t = &cfg.raw.train;
    let (ds, fit, valid, epochs) = (phase.ds, phase.fit, phase.valid, phase.epochs);
    let n = match &ds.train_stream {
        Some(s) if fit.is_empty() => s.n_rows as usize,
        _ => fit.len(),
    };
    // a batch never exceeds the data (an absurd batch_size must not allocate it)
    let bsz = t.batch_size.min(n).max(1);
    let available = crate::memory::available_bytes();
    if t.check_memory {
        // from the specs, before anything is allocated: an absurd size is
        // a message, not an abort in the allocator
        crate::memory::check_before_allocating(
            &user_tower_spec(cfg, ds),
            &tower_spec(cfg, &ds.items.features),
            cfg,
            bsz,
            valid.is_some(),
            available,
        )
        .map_err(TrainError::OutOfMemory)?;
    }
    let model = new_model(cfg, ds, phase.tag).map_err(|e| TrainError::Data(e.to_string()))?;
    // say what the run holds, and refuse before allocating the optimizer
    // state when it cannot fit (an OOM kill mid-run loses the work)
    let plan = MemoryPlan::new(&model, &optim_config(cfg), cfg, ds, valid.is_some());
    if opts.verbose {
        eprintln!("{}: {}", phase.name, plan.line(available));
    }
    if t.check_memory {
        plan.check(available).map_err(TrainError::OutOfMemory)?;
    }
    let mut st = TrainState::from_model(model, cfg, ds, fit, phase.tag, bsz, phase.initial_best)?;
    if let Some((meta, tensors)) = resume {
        st.restore(&meta, &tensors, &opts.run_dir)?;
    }
    let mut batches = Batches::new(ds, fit, t.stream_window, cfg.raw.loss.use_weights);
    let n_batches = n.div_ceil(bsz);
    let target = CheckpointTarget {
        cfg,
        phase: phase.name,
        run_dir: &opts.run_dir,
        data_fingerprint,
    };
    let progress_mode = ProgressMode::for_stderr(t.progress, t.progress_seconds);
    while !st.position.finished && st.position.epoch < epochs {
        let epoch = st.position.epoch;
        let ep_start = Instant::now();
        let decay = t.lr_decay.powi(epoch as i32);
        st.opt.config.sparse_lr = t.lr_sparse * decay;
        st.opt.config.dense_lr = t.lr_dense * decay;
        let batch_start = st.position.batch_in_epoch;
        let mut pb = Progress::new(
            progress_mode,
            format!("{} epoch {}/{}", phase.name, epoch + 1, epochs),
            n_batches as u64,
            batch_start as u64,
        );
        let mut loss = EpochLoss::default();
        let mut ep_examples = 0u64;
        // why the epoch's batches stopped early
        let mut stop: Option<TrainError> = None;
        batches.for_epoch((t.seed, phase.tag, epoch), bsz, batch_start, |b, batch| {
            let bn = batch.len();
            match st.run_step(&batch)? {
                StepOutcome::Updated(parts) => {
                    loss.main += parts.main;
                    loss.ssl += parts.ssl;
                    loss.total += parts.total;
                    loss.steps += 1;
                }
                StepOutcome::Skipped => {}
                StepOutcome::NonFinite(value) => {
                    pb.abandon();
                    stop = Some(if !checkpoint::exists(&opts.run_dir) {
                        TrainError::NonFiniteLossNoCheckpoint {
                            value,
                            epoch: epoch + 1,
                            batch: b + 1,
                            phase: phase.name.to_string(),
                        }
                    } else {
                        TrainError::NonFiniteLoss {
                            value,
                            epoch: epoch + 1,
                            step: st.position.step,
                            phase: phase.name.to_string(),
                            run_dir: opts.run_dir.clone(),
                        }
                    });
                    return Ok(false);
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
                    loss.total / loss.steps.max(1) as f64,
                );
            }
            cost.steps_this_process += 1;
            let stop_now = opts
                .stop_after_steps
                .is_some_and(|n| cost.steps_this_process >= n);
            if let Some(flag) = opts.interrupt.or(if stop_now { Some(&STOP) } else { None }) {
                if stop_now || flag.load(Ordering::SeqCst) {
                    pb.abandon();
                    st.position.batch_in_epoch = b + 1;
                    st.save(&target, history, cost.seconds(), cost.examples)?;
                    stop = Some(TrainError::Interrupted {
                        run_dir: opts.run_dir.clone(),
                    });
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if let Some(e) = stop {
            return Err(e);
        }
        pb.finish();
        st.position.batch_in_epoch = 0;
        st.position.epoch += 1;
        let epoch = st.position.epoch;
        let secs = ep_start.elapsed().as_secs_f64();
        let eps = ep_examples as f64 / secs.max(1e-9);
        let k = loss.steps.max(1) as f64;
        let mut validation = None;
        let mut improved_line = String::new();
        // the weights this epoch ends with: raw, or their epoch-level average
        let averaged = st.average.update(&st.model);
        let current = averaged.as_ref().unwrap_or(&st.model);
        if let Some(vset) = valid {
            let m = evaluate_model(current, ds, vset, cfg, st.step.inputs.history.as_ref())?;
            let v = m
                .values
                .get(&t.monitor)
                .copied()
                .flatten()
                .unwrap_or(f64::NEG_INFINITY);
            if st.early.observe(v, epoch, current) {
                improved_line = " (best)".into();
            }
            improved_line = format!(" val {} {:.4}{}", t.monitor, v, improved_line);
            validation = Some(m.values.clone());
            if st.early.should_stop() {
                st.position.finished = true;
            }
        }
        if epoch >= epochs {
            st.position.finished = true;
        }
        let rec = EpochRecord {
            phase: phase.name,
            epoch,
            loss: loss.total / k,
            loss_main: loss.main / k,
            loss_ssl: loss.ssl / k,
            examples_per_second: eps,
            seconds: secs,
            validation,
        };
        history.push(serde_json::to_value(&rec).expect("serializable"));
        if opts.verbose {
            eprintln!(
                "{} epoch {epoch}/{epochs}: loss {:.4} (main {:.4}, ssl {:.4}) {:.0} ex/s{}",
                phase.name, rec.loss, rec.loss_main, rec.loss_ssl, eps, improved_line
            );
        }
        write_history(&opts.run_dir, history)?;
        if let (Some(f), Some(rec)) = (opts.on_epoch, history.last()) {
            f(rec);
        }
        st.save(&target, history, cost.seconds(), cost.examples)?;
    }
    // the search phase returns its best model; the refit phase its last
    // (averaged, with train.epoch_average) weights
    let TrainState {
        mut model,
        early,
        average,
        ..
    } = st;
    let keep = if valid.is_some() {
        early.best_tensors
    } else {
        average.tensors
    };
    if let Some(bt) = keep {
        copy_into(&mut model, &bt);
    }
    Ok(PhaseResult {
        model,
        best: early.best,
    })
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
