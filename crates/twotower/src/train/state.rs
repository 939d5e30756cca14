//! A training phase's state as a checkpoint holds it — the model, the
//! optimizer state, the streaming logQ estimator, the best and averaged
//! weight sets, the position (epoch, batch, global step, early-stopping
//! record) and the epoch log — and its save and restore.

use std::collections::BTreeMap;
use std::path::Path;

use crate::checkpoint::{self, CheckpointMeta, CHECKPOINT_FORMAT_VERSION};
use crate::config::Config;
use crate::frequency::StreamingFrequency;
use crate::model::TwoTower;
use crate::optim::Optimizer;
use crate::step::Frequency;

use super::TrainError;

/// Owned named tensors, (name, shape, values): the weight sets kept beside
/// the model (the best, the epoch average).
pub(crate) type NamedTensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Where a phase is: what a checkpoint records besides tensors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Position {
    /// Epochs finished (0-based index of the current one).
    pub epoch: usize,
    /// Batches of the current epoch done (0 at an epoch boundary).
    pub batch_in_epoch: usize,
    /// Optimizer steps of the phase so far.
    pub step: u64,
    /// Best validation value and its epoch.
    pub best: Option<(f64, usize)>,
    /// Epochs since the best (early stopping).
    pub since_best: usize,
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

/// Everything a checkpoint of a phase holds.
pub(crate) struct Snapshot<'a> {
    pub model: &'a TwoTower<f32>,
    pub opt: &'a Optimizer<f32>,
    pub freq: &'a Frequency,
    pub best_tensors: &'a Option<NamedTensors>,
    pub ema: &'a Option<NamedTensors>,
    pub position: Position,
    pub history: &'a [serde_json::Value],
    /// Training seconds so far, across processes.
    pub train_seconds: f64,
    /// Training examples so far, across processes.
    pub examples: u64,
}

/// Writes the checkpoint of `snap` into the target's run directory
/// (atomically: [`checkpoint::save`]).
pub(super) fn save(target: &CheckpointTarget<'_>, snap: &Snapshot<'_>) -> Result<(), TrainError> {
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
    for (name, shape, data) in snap.model.named_tensors() {
        tensors.push((format!("model.{name}"), shape, data));
    }
    for (name, shape, data) in snap.opt.named_state() {
        tensors.push((format!("optim.{name}"), shape, data));
    }
    if let Frequency::Streaming(s) = snap.freq {
        for (name, shape, data) in s.named_state() {
            tensors.push((format!("freq.{name}"), shape, data));
        }
    }
    for (prefix, set) in [("best", snap.best_tensors), ("ema", snap.ema)] {
        if let Some(bt) = set {
            for (name, shape, data) in bt {
                tensors.push((format!("{prefix}.{name}"), shape.clone(), data.as_slice()));
            }
        }
    }
    let mut table_rows = BTreeMap::new();
    for (side, tower) in [("user", &snap.model.user), ("item", &snap.model.item)] {
        for (f, tab) in tower.spec.features.iter().zip(&tower.tables) {
            table_rows.insert(format!("{side}.{}", f.name), tab.rows);
        }
    }
    let p = snap.position;
    let mut meta = CheckpointMeta {
        format_version: CHECKPOINT_FORMAT_VERSION,
        twotower_version: env!("CARGO_PKG_VERSION").to_string(),
        config: target.cfg.doc.clone(),
        base_dir: target.cfg.base_dir.clone(),
        phase: target.phase.to_string(),
        epoch: p.epoch,
        batch_in_epoch: p.batch_in_epoch,
        global_step: p.step,
        best: p.best,
        epochs_without_improvement: p.since_best,
        finished: p.finished,
        history: snap.history.to_vec(),
        table_rows,
        tensors_hash: String::new(),
        train_seconds: snap.train_seconds,
        examples: snap.examples,
        data_fingerprint: Some(target.data_fingerprint.to_string()),
    };
    checkpoint::save(target.run_dir, &tensors, &mut meta)?;
    Ok(())
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

pub(super) fn restore(
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

pub(super) fn restore_streaming(
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
pub(super) fn saved_set(
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
