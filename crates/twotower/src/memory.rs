//! What a training run holds in memory, printed before it starts, and a
//! clear refusal when the machine cannot hold it.
//!
//! The big parts of a run (f32, 4 bytes a value):
//! - **parameters**: every embedding table and MLP tensor of the model;
//! - **optimizer state** ([`crate::optim::state_bytes`]): lazy Adam keeps
//!   two moments per embedding value (2× the tables), Adagrad one, row-wise
//!   Adagrad one per row; dense Adam two per MLP value;
//! - **weight snapshots**: with validation, the best model so far (1×
//!   parameters); with `train.epoch_average`, the running average and the
//!   averaged model evaluated at each epoch's end (2×);
//! - **interactions**: train and test rows (user and item u32, timestamp
//!   i64, weight f32 when there is a weight column);
//! - **entity tables**: both sides' ids (each held once), their encoded
//!   features (vocabularies and CSR arrays) and labels, as loaded.
//!
//! Everything else (batches, the SSL views, the evaluator's tiles) is small
//! and does not grow with the catalog. Checkpoints, model files and
//! artifacts are written as streams ([`twotower_model::tensor_file`]), so
//! saving needs no copy of the parameters or the optimizer state.

use twotower_data::Dataset;

use crate::config::Config;
use crate::model::TwoTower;
use crate::optim::{state_bytes, OptimConfig};
use crate::tower::TowerSpec;

const GIB: f64 = (1u64 << 30) as f64;

/// The memory of a training phase, in bytes (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Model parameters.
    pub parameters: u64,
    /// Optimizer state.
    pub optimizer: u64,
    /// Copies of the weights kept for early stopping / weight averaging.
    pub snapshots: u64,
    /// Train and test interaction rows.
    pub interactions: u64,
    /// The users' and items' ids, encoded features and labels.
    pub entities: u64,
}

impl MemoryPlan {
    /// The plan of training `model` (already allocated) with `optim` under
    /// `cfg` on `ds`; `validation` = whether this phase validates (and so
    /// keeps the best weights).
    pub fn new(
        model: &TwoTower<f32>,
        optim: &OptimConfig,
        cfg: &Config,
        ds: &Dataset,
        validation: bool,
    ) -> Self {
        let parameters: u64 = model
            .named_tensors()
            .iter()
            .map(|(_, _, d)| 4 * d.len() as u64)
            .sum();
        let copies = u64::from(validation) + 2 * u64::from(cfg.raw.train.epoch_average > 0.0);
        let row = |with_weight: bool| 4 + 4 + 8 + if with_weight { 4 } else { 0 };
        let mut interactions = ds.train.user.len() as u64 * row(ds.train.weight.is_some())
            + ds.test.user.len() as u64 * row(ds.test.weight.is_some());
        if let Some(s) = &ds.train_stream {
            // a streamed train split: its shuffle window and the chunks in
            // flight, and the split cut per user
            let window = (cfg.raw.train.stream_window as u64).min(s.n_rows);
            interactions += (window + 4 * 65_536) * row(s.weighted) + 24 * s.cut.len() as u64;
        }
        Self {
            parameters,
            optimizer: state_bytes(model, optim),
            snapshots: copies * parameters,
            interactions,
            entities: ds.users.heap_bytes() + ds.items.heap_bytes(),
        }
    }

    /// The sum of the parts.
    pub fn total(&self) -> u64 {
        self.parameters + self.optimizer + self.snapshots + self.interactions + self.entities
    }

    /// What is still to be allocated once the model and the data are in
    /// memory: the optimizer state and the snapshots.
    pub fn to_allocate(&self) -> u64 {
        self.optimizer + self.snapshots
    }

    /// The line printed at the start of training, e.g. `memory: parameters
    /// 3.05 GiB, optimizer state 6.10 GiB, weight snapshots 0.00 GiB,
    /// interactions 1.49 GiB, entity tables 0.52 GiB; 11.16 GiB in all (21.80 GiB available);
    /// resident now 6.20 GiB` (the process's resident memory, model and
    /// data included, where the OS tells it).
    pub fn line(&self, available: Option<u64>) -> String {
        let g = |b: u64| b as f64 / GIB;
        let avail = available
            .map(|a| format!(" ({:.2} GiB available)", g(a)))
            .unwrap_or_default();
        let resident = resident_bytes()
            .map(|r| format!("; resident now {:.2} GiB", g(r)))
            .unwrap_or_default();
        format!(
            "memory: parameters {:.2} GiB, optimizer state {:.2} GiB, weight snapshots {:.2} GiB, \
             interactions {:.2} GiB, entity tables {:.2} GiB; {:.2} GiB in all{avail}{resident}",
            g(self.parameters),
            g(self.optimizer),
            g(self.snapshots),
            g(self.interactions),
            g(self.entities),
            g(self.total())
        )
    }

    /// `Err(message)` when what is still to allocate exceeds `available`
    /// bytes (the process would be killed by the out-of-memory killer
    /// mid-training); the message says what to change.
    pub fn check(&self, available: Option<u64>) -> Result<(), String> {
        let Some(avail) = available else {
            return Ok(());
        };
        if self.to_allocate() <= avail {
            return Ok(());
        }
        let g = |b: u64| b as f64 / GIB;
        Err(format!(
            "the configured model does not fit in memory: its optimizer state and weight snapshots \
             need {:.2} GiB more, and the machine has {:.2} GiB available (parameters {:.2} GiB and \
             interactions {:.2} GiB already loaded). Use a smaller model.embedding_dim or vocabulary \
             (hash_buckets), train.sparse_optimizer = \"adagrad_rowwise\" (one value per row instead \
             of two per value), train.validation = false or train.epoch_average = 0 (no weight \
             copies), or train.check_memory = false to try anyway",
            g(self.to_allocate()),
            g(avail),
            g(self.parameters),
            g(self.interactions)
        ))
    }
}

/// Memory the OS can give this process now without swapping, in bytes:
/// `MemAvailable` of `/proc/meminfo` (Linux); `None` where unknown.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

/// This process's resident memory now, in bytes: `VmRSS` of
/// `/proc/self/status` (Linux); `None` where unknown.
pub fn resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_kib_field(&text, "VmRSS:")
}

/// Bytes as `3.25 GiB`.
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / GIB)
}

fn parse_kib_field(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    parse_kib_field(meminfo, "MemAvailable:")
}

/// A check made before the model is allocated, from the towers' specs
/// alone: parameters ([`TowerSpec::parameter_bytes`]), optimizer state
/// (at most 2× the parameters, Adam's), the weight snapshots, and the
/// batch's score matrices (`B × (B + M)` logits and their gradient, and
/// the SSL batch's `m × m`, 3 f32 copies each). An absurd setting (a
/// dimension of 10⁹, a batch of 10⁶ rows) is refused here with a message
/// instead of aborting the process in the allocator.
///
/// # Errors
/// The message of [`MemoryPlan::check`]'s kind, naming the sizes.
pub fn check_before_allocating(
    user: &TowerSpec,
    item: &TowerSpec,
    cfg: &Config,
    batch_rows: usize,
    validation: bool,
    available: Option<u64>,
) -> Result<(), String> {
    let Some(avail) = available else {
        return Ok(());
    };
    let params = user
        .parameter_bytes()
        .saturating_add(item.parameter_bytes());
    let copies = u64::from(validation) + 2 * u64::from(cfg.raw.train.epoch_average > 0.0);
    let b = batch_rows as u64;
    let m = if cfg.raw.ssl.enabled {
        (if cfg.raw.ssl.batch_size > 0 {
            cfg.raw.ssl.batch_size
        } else {
            batch_rows
        }) as u64
    } else {
        0
    };
    let cols = b.saturating_add(cfg.raw.loss.mixed_negatives as u64);
    let scores = b
        .saturating_mul(cols)
        .saturating_add(m.saturating_mul(m))
        .saturating_mul(12);
    let need = params.saturating_mul(3 + copies).saturating_add(scores);
    if need <= avail {
        return Ok(());
    }
    let g = |x: u64| x as f64 / GIB;
    Err(format!(
        "the configured model does not fit in memory: parameters {:.2} GiB (with optimizer state and \
         weight snapshots {:.2} GiB) and the batch's score matrices {:.2} GiB ({b} rows × {cols} \
         candidates{}), against {:.2} GiB available. Use a smaller model.embedding_dim, \
         model.hidden, model.out_dim, features.<name>.dim or vocabulary (hash_buckets), or a smaller \
         train.batch_size / ssl.batch_size; train.check_memory = false tries anyway",
        g(params),
        g(params.saturating_mul(3 + copies)),
        g(scores),
        if m > 0 { format!(", SSL {m} × {m}") } else { String::new() },
        g(avail)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> MemoryPlan {
        MemoryPlan {
            parameters: 3 << 30,
            optimizer: 6 << 30,
            snapshots: 0,
            interactions: 3 << 29,
            entities: 1 << 29,
        }
    }

    #[test]
    fn line_and_check() {
        let p = plan();
        assert_eq!(p.total(), (22u64 << 29));
        // the resident readout is the test process's own: cut it off
        let line = p.line(Some(20 << 30));
        let line = line.split("; resident now").next().unwrap();
        assert_eq!(
            line,
            "memory: parameters 3.00 GiB, optimizer state 6.00 GiB, weight snapshots 0.00 GiB, \
             interactions 1.50 GiB, entity tables 0.50 GiB; 11.00 GiB in all (20.00 GiB available)"
        );
        assert!(p.line(None).contains("11.00 GiB in all"));
        assert_eq!(p.check(Some(6 << 30)), Ok(()));
        assert_eq!(p.check(None), Ok(()));
        let e = p.check(Some((6 << 30) - 1)).unwrap_err();
        assert!(e.contains("need 6.00 GiB more"), "{e}");
        assert!(e.contains("train.check_memory = false"), "{e}");
    }

    #[test]
    fn meminfo_parses() {
        let text = "MemTotal:       24589604 kB\nMemFree:        20000000 kB\nMemAvailable:   22859604 kB\n";
        assert_eq!(parse_mem_available(text), Some(22_859_604 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        let status = "Name:\ttwotower\nVmPeak:\t  900 kB\nVmRSS:\t  812 kB\n";
        assert_eq!(parse_kib_field(status, "VmRSS:"), Some(812 * 1024));
        assert_eq!(gib(3 << 29), "1.50 GiB");
    }
}
