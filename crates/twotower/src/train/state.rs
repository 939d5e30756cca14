//! A training phase's state ([`TrainState`]) as a checkpoint holds it — the
//! model, the optimizer state, the training step with the streaming logQ
//! estimator, the early-stopping record with the best weights, the epoch
//! average and the position (epoch, batch, global step) — with its save and
//! restore.

use std::collections::BTreeMap;
use std::path::Path;

use crate::checkpoint::{self, CheckpointMeta, CHECKPOINT_FORMAT_VERSION};
use crate::config::Config;
use crate::frequency::StreamingFrequency;
use crate::model::TwoTower;
use crate::optim::Optimizer;
use crate::step::{Frequency, Step, StepOutcome};
use twotower_data::{Dataset, Interactions};

use super::average::EpochAverage;
pub use super::batches::Batch;
use super::early_stop::EarlyStopping;
use super::{new_model, optim_config, step_inputs, TrainError};

/// Owned named tensors, (name, shape, values): the weight sets kept beside
/// the model (the best, the epoch average).
pub type NamedTensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Where a phase is: what a checkpoint records besides tensors and the
/// early-stopping record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Position {
    /// Epochs finished (0-based index of the current one).
    pub epoch: usize,
    /// Batches of the current epoch done (0 at an epoch boundary).
    pub batch_in_epoch: usize,
    /// Optimizer steps of the phase so far.
    pub step: u64,
    /// The phase has finished.
    pub finished: bool,
}

/// The run a phase checkpoints into.
pub(crate) struct CheckpointTarget<'a> {
    /// The run's config (stored, and compared on resume).
    pub cfg: &'a Config,
    /// The phase's name.
    pub phase: &'a str,
    /// The run directory.
    pub run_dir: &'a Path,
    /// The data's fingerprint (compared on resume).
    pub data_fingerprint: &'a str,
}

/// A training phase's state: the model, its optimizer, the training step
/// (its inputs hold the logQ frequency estimator), the early-stopping
/// record with the best weights, the epoch average and the position. It is
/// what a checkpoint holds (its `save`, and [`TrainState::restore`]);
/// the trainer's epoch loop drives it one [`TrainState::run_step`] at a time.
pub struct TrainState<'a> {
    /// The model being trained.
    pub model: TwoTower<f32>,
    /// Its optimizer (and the optimizer state).
    pub opt: Optimizer<f32>,
    /// The training step with its inputs and buffers.
    pub step: Step<'a>,
    /// The best validation value, its weights, epochs since.
    pub early: EarlyStopping,
    /// The epoch-level weight average.
    pub average: EpochAverage,
    /// Epoch, batch and step.
    pub position: Position,
}

impl<'a> TrainState<'a> {
    /// A fresh state for phase `phase_tag` over the interactions `fit`: the
    /// model initialised from `(seed, phase)`, its optimizer and the
    /// phase's step ([`super::step_inputs`]); `best` is carried in from an
    /// earlier phase.
    ///
    /// # Errors
    /// [`TrainError`] if the model or the step cannot be built.
    pub fn new(
        cfg: &Config,
        ds: &'a Dataset,
        fit: &'a Interactions,
        phase_tag: u64,
        batch_size: usize,
        best: Option<(f64, usize)>,
    ) -> Result<Self, TrainError> {
        let model = new_model(cfg, ds, phase_tag).map_err(|e| TrainError::Data(e.to_string()))?;
        Self::from_model(model, cfg, ds, fit, phase_tag, batch_size, best)
    }

    /// [`TrainState::new`] around a model already built for the phase
    /// (the trainer sizes its memory plan from it before the optimizer
    /// state is allocated).
    ///
    /// # Errors
    /// [`TrainError`] if the step cannot be built.
    pub fn from_model(
        model: TwoTower<f32>,
        cfg: &Config,
        ds: &'a Dataset,
        fit: &'a Interactions,
        phase_tag: u64,
        batch_size: usize,
        best: Option<(f64, usize)>,
    ) -> Result<Self, TrainError> {
        let opt = Optimizer::new(&model, &optim_config(cfg));
        let inputs = step_inputs(cfg, ds, fit, phase_tag)?;
        let step = Step::new(inputs, &model, batch_size);
        let t = &cfg.raw.train;
        let mut st = Self::from_step(model, opt, step);
        st.early = EarlyStopping::new(t.patience, best);
        st.average = EpochAverage::new(t.epoch_average);
        Ok(st)
    }

    /// A state around a model, optimizer and step built by hand (the
    /// bench's synthetic catalogs): no early stopping, no weight average,
    /// at step 0.
    pub fn from_step(model: TwoTower<f32>, opt: Optimizer<f32>, step: Step<'a>) -> Self {
        Self {
            model,
            opt,
            step,
            early: EarlyStopping::new(0, None),
            average: EpochAverage::new(0.0),
            position: Position::default(),
        }
    }

    /// Runs the training step on a batch — rows of the in-memory split, or
    /// pairs of a streamed one — at the current global step, which advances
    /// when the update was applied.
    ///
    /// # Errors
    /// [`TrainError::Augment`] if the SSL views cannot be built.
    pub fn run_step(&mut self, batch: &Batch<'_>) -> Result<StepOutcome, TrainError> {
        let (model, opt, step) = (&mut self.model, &mut self.opt, self.position.step);
        let outcome = match batch {
            Batch::Rows(rows) => self.step.run(model, opt, rows, step)?,
            Batch::Pairs {
                users,
                items,
                weights,
            } => self
                .step
                .run_pairs(model, opt, users, items, *weights, step)?,
        };
        if matches!(outcome, StepOutcome::Updated(_)) {
            self.position.step += 1;
        }
        Ok(outcome)
    }

    /// Restores a checkpoint's tensors (model, optimizer state, streaming
    /// estimator, best and averaged weights) and position into this state,
    /// built fresh from the same config and data.
    ///
    /// # Errors
    /// [`TrainError::Resume`] naming a missing or mis-sized tensor.
    pub fn restore(
        &mut self,
        meta: &CheckpointMeta,
        tensors: &BTreeMap<String, checkpoint::Tensor>,
        run_dir: &Path,
    ) -> Result<(), TrainError> {
        restore(&mut self.model, &mut self.opt, tensors, run_dir)?;
        if let Frequency::Streaming(s) = &mut self.step.inputs.frequency {
            restore_streaming(s, tensors, run_dir)?;
        }
        self.position = Position {
            epoch: meta.epoch,
            batch_in_epoch: meta.batch_in_epoch,
            step: meta.global_step,
            finished: meta.finished,
        };
        self.opt.set_step_count(meta.global_step);
        self.early.best = meta.best;
        self.early.since_best = meta.epochs_without_improvement;
        if let Some(bt) = saved_set(&self.model, tensors, "best.", run_dir)? {
            self.early.best_tensors = Some(bt);
        }
        if let Some(et) = saved_set(&self.model, tensors, "ema.", run_dir)? {
            self.average.tensors = Some(et);
        }
        Ok(())
    }

    /// Writes the checkpoint of this state into the target's run directory
    /// (atomically: [`checkpoint::save`]), with the epoch log `history` and
    /// the run's cost so far (seconds and examples, across processes).
    ///
    /// # Errors
    /// [`TrainError`] if the checkpoint cannot be written.
    pub(crate) fn save(
        &self,
        target: &CheckpointTarget<'_>,
        history: &[serde_json::Value],
        train_seconds: f64,
        examples: u64,
    ) -> Result<(), TrainError> {
        let mut tensors: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
        for (name, shape, data) in self.model.named_tensors() {
            tensors.push((format!("model.{name}"), shape, data));
        }
        for (name, shape, data) in self.opt.named_state() {
            tensors.push((format!("optim.{name}"), shape, data));
        }
        if let Frequency::Streaming(s) = &self.step.inputs.frequency {
            for (name, shape, data) in s.named_state() {
                tensors.push((format!("freq.{name}"), shape, data));
            }
        }
        for (prefix, set) in [
            ("best", &self.early.best_tensors),
            ("ema", &self.average.tensors),
        ] {
            if let Some(bt) = set {
                for (name, shape, data) in bt {
                    tensors.push((format!("{prefix}.{name}"), shape.clone(), data.as_slice()));
                }
            }
        }
        let mut table_rows = BTreeMap::new();
        for (side, tower) in [("user", &self.model.user), ("item", &self.model.item)] {
            for (f, tab) in tower.spec.features.iter().zip(&tower.tables) {
                table_rows.insert(format!("{side}.{}", f.name), tab.rows);
            }
        }
        let p = self.position;
        let mut meta = CheckpointMeta {
            format_version: CHECKPOINT_FORMAT_VERSION,
            twotower_version: env!("CARGO_PKG_VERSION").to_string(),
            config: target.cfg.doc.clone(),
            base_dir: target.cfg.base_dir.clone(),
            phase: target.phase.to_string(),
            epoch: p.epoch,
            batch_in_epoch: p.batch_in_epoch,
            global_step: p.step,
            best: self.early.best,
            epochs_without_improvement: self.early.since_best,
            finished: p.finished,
            history: history.to_vec(),
            table_rows,
            tensors_hash: String::new(),
            train_seconds,
            examples,
            data_fingerprint: Some(target.data_fingerprint.to_string()),
        };
        checkpoint::save(target.run_dir, &tensors, &mut meta)?;
        Ok(())
    }
}

/// Copies the checkpoint tensors `<prefix>.<name>` for every (name, length)
/// of `names` through `copy(name, values)`, checking presence and size.
fn copy_named(
    names: Vec<(String, usize)>,
    prefix: &str,
    tensors: &BTreeMap<String, checkpoint::Tensor>,
    run_dir: &Path,
    mut copy: impl FnMut(&str, &[f32]) -> bool,
) -> Result<(), TrainError> {
    let err = |message: String| TrainError::Resume {
        run_dir: run_dir.to_path_buf(),
        message,
    };
    for (name, len) in names {
        let key = format!("{prefix}.{name}");
        let src = tensors
            .get(&key)
            .ok_or_else(|| err(format!("tensor {key} missing")))?;
        if src.data.len() != len {
            return Err(err(format!(
                "tensor {key} has {} values, expected {len} (did the data or config change?)",
                src.data.len()
            )));
        }
        if !copy(&name, &src.data) {
            return Err(err(format!("tensor {key} has no destination")));
        }
    }
    Ok(())
}

fn names_of(v: Vec<(String, Vec<usize>, &[f32])>) -> Vec<(String, usize)> {
    v.into_iter().map(|(n, _, d)| (n, d.len())).collect()
}

fn restore(
    model: &mut TwoTower<f32>,
    opt: &mut Optimizer<f32>,
    tensors: &BTreeMap<String, checkpoint::Tensor>,
    run_dir: &Path,
) -> Result<(), TrainError> {
    let names = names_of(model.named_tensors());
    copy_named(names, "model", tensors, run_dir, |n, v| {
        model.tensor_mut(n).map(|t| t.copy_from_slice(v)).is_some()
    })?;
    let names = names_of(opt.named_state());
    copy_named(names, "optim", tensors, run_dir, |n, v| {
        opt.state_mut(n).map(|t| t.copy_from_slice(v)).is_some()
    })
}

fn restore_streaming(
    s: &mut StreamingFrequency,
    tensors: &BTreeMap<String, checkpoint::Tensor>,
    run_dir: &Path,
) -> Result<(), TrainError> {
    let names = names_of(s.named_state());
    copy_named(names, "freq", tensors, run_dir, |n, v| {
        s.state_mut(n).map(|t| t.copy_from_slice(v)).is_some()
    })
}

/// The saved weight set `<prefix><name>` (the best or the averaged
/// weights), in the model's tensor order — the averaging pairs them with
/// `model.named_tensors()` by position; the checkpoint's map is sorted by
/// name, which is not that order. `None` when the checkpoint holds none.
fn saved_set(
    model: &TwoTower<f32>,
    tensors: &BTreeMap<String, checkpoint::Tensor>,
    prefix: &str,
    run_dir: &Path,
) -> Result<Option<NamedTensors>, TrainError> {
    if !tensors.keys().any(|k| k.starts_with(prefix)) {
        return Ok(None);
    }
    let order: Vec<(String, usize)> = names_of(model.named_tensors());
    let mut set = NamedTensors::with_capacity(order.len());
    for (name, len) in &order {
        let key = format!("{prefix}{name}");
        match tensors.get(&key) {
            Some(v) if v.data.len() == *len => {
                set.push((name.clone(), v.shape.clone(), v.data.clone()))
            }
            _ => {
                return Err(TrainError::Resume {
                    run_dir: run_dir.to_path_buf(),
                    message: format!("tensor {key} missing or of the wrong size"),
                })
            }
        }
    }
    Ok(Some(set))
}
