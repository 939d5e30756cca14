//! Aggregating runs into a [`Report`]: [`build_report`] summarises a
//! [`ReportInput`] (variants × seeds of [`RunResult`]s) as mean ± sample std
//! per metric, beside the most-popular baseline(s), with popularity-bin
//! recall and the loss curve of the final-model phase.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{
    final_phase, BinCounts, EpochLoss, ReportError, RunBins, RunResult, Summary, VariantSpec,
    BINS_FILE, METRIC_PREFIXES, REPORT_FORMAT_VERSION, STD_NOTE,
};

/// Everything [`build_report`] needs.
#[derive(Debug, Clone)]
pub struct ReportInput {
    /// The config file, if any.
    pub config_file: Option<PathBuf>,
    /// `--set` overrides applied to every variant, first.
    pub global_overrides: Vec<String>,
    /// The config document after the global overrides (seed set per run).
    pub base_config: toml::Value,
    /// The seeds (`train.seed`) of each variant's runs.
    pub seeds: Vec<u64>,
    /// The variants, each with its full config (first seed) and its runs in seed order.
    pub variants: Vec<(VariantSpec, toml::Value, Vec<RunResult>)>,
    /// Wall time of the whole comparison, seconds (training, evaluation, I/O).
    pub total_seconds: f64,
    /// The split the runs were evaluated on: `"test"` or `"validation"`.
    pub split: String,
}

/// Loss per epoch of one variant, mean over seeds, final-model phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossCurve {
    /// The phase the curve comes from (`"refit"` or `"search"`).
    pub phase: String,
    /// Per epoch (1-based `epoch`): total loss and main loss over the
    /// seeds that ran that epoch.
    pub epochs: Vec<EpochSummary>,
}

/// One point of a [`LossCurve`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// 1-based epoch.
    pub epoch: usize,
    /// Total loss over seeds.
    pub loss: Summary,
    /// Main loss over seeds.
    pub loss_main: Summary,
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantReport {
    /// Variant name.
    pub name: String,
    /// Its overrides (after the global ones).
    pub overrides: Vec<String>,
    /// Its full config document (first seed; `train.seed` differs per run).
    pub config: serde_json::Value,
    /// Run directories, in seed order.
    pub runs: Vec<PathBuf>,
    /// Metric → summary over seeds (`None`: undefined in every seed).
    pub metrics: BTreeMap<String, Option<Summary>>,
    /// Training wall time, seconds.
    pub train_seconds: Option<Summary>,
    /// Training throughput, examples per second.
    pub examples_per_second: Option<Summary>,
    /// Number of epochs of the final-model phase, per run.
    pub final_epochs: Vec<usize>,
    /// Recall@K per popularity bin, over seeds.
    pub recall_by_bin: Vec<Option<Summary>>,
    /// Training loss per epoch.
    pub loss: Option<LossCurve>,
}

/// The most-popular baseline on the data of some variants (one row per
/// distinct dataset; a single row when every variant shares the data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineReport {
    /// Row label.
    pub name: String,
    /// The variants whose data this is.
    pub variants: Vec<String>,
    /// Metric → value (std 0, n 1: the baseline is deterministic).
    pub metrics: BTreeMap<String, Option<Summary>>,
    /// Recall@K per popularity bin.
    pub recall_by_bin: Vec<Option<Summary>>,
    /// Distinct test pairs per bin.
    pub pairs_by_bin: Vec<u64>,
    /// Catalog items per bin.
    pub items_by_bin: Vec<u64>,
}

/// A comparison report (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_FORMAT_VERSION`].
    pub format_version: u32,
    /// twotower version.
    pub twotower_version: String,
    /// What `std` means ([`STD_NOTE`]).
    pub std: String,
    /// The config file.
    pub config_file: Option<PathBuf>,
    /// Overrides applied to every variant.
    pub global_overrides: Vec<String>,
    /// Config after the global overrides.
    pub base_config: serde_json::Value,
    /// Seeds of every variant.
    pub seeds: Vec<u64>,
    /// Metric names, in report order.
    pub metric_names: Vec<String>,
    /// The cut-offs K, ascending.
    pub ks: Vec<usize>,
    /// K of the popularity-bin recall (`None` when no run has bins).
    pub bins_k: Option<usize>,
    /// Number of popularity bins.
    pub n_bins: usize,
    /// One entry per variant.
    pub variants: Vec<VariantReport>,
    /// The most-popular baseline(s).
    pub baselines: Vec<BaselineReport>,
    /// Wall time of the whole comparison, seconds.
    pub total_seconds: f64,
    /// The split the runs were evaluated on: `"test"` (the default of
    /// reports written before the field) or `"validation"`.
    #[serde(default = "test_split")]
    pub split: String,
    /// Caveats found while building (e.g. a seed without a metric).
    pub notes: Vec<String>,
}

fn metric_order(names: impl IntoIterator<Item = String>) -> (Vec<String>, Vec<usize>) {
    let mut ks: Vec<usize> = Vec::new();
    let mut set = std::collections::BTreeSet::new();
    for n in names {
        if let Some((_, k)) = n.split_once('@') {
            if let Ok(k) = k.parse::<usize>() {
                ks.push(k);
            }
        }
        set.insert(n);
    }
    ks.sort_unstable();
    ks.dedup();
    let mut out = Vec::new();
    for &k in &ks {
        for p in METRIC_PREFIXES {
            let name = format!("{p}@{k}");
            if set.contains(&name) {
                out.push(name);
            }
        }
    }
    (out, ks)
}

/// Builds the report: per variant and metric the mean ± sample std over
/// its runs ([`Summary::of`]; a seed where the metric is undefined is left
/// out and `n` says so), wall time and throughput likewise, popularity-bin
/// recall per bin over seeds, and the loss curve of the final-model phase
/// ([`final_phase`]) per epoch over the seeds that ran it. The baseline
/// rows take each distinct baseline (one per dataset) once.
///
/// # Errors
/// [`ReportError::Inconsistent`] when there is no variant, a variant has no
/// run, or runs disagree on the popularity-bin K or bin count.
pub fn build_report(input: &ReportInput) -> Result<Report, ReportError> {
    if input.variants.is_empty() {
        return Err(ReportError::Inconsistent("no variant to report".into()));
    }
    let mut notes = Vec::new();
    let mut all_names = Vec::new();
    let mut bins_shape: Option<(usize, usize)> = None;
    for (v, _, runs) in &input.variants {
        if runs.is_empty() {
            return Err(ReportError::Inconsistent(format!(
                "variant {} has no run",
                v.name
            )));
        }
        for r in runs {
            all_names.extend(r.metrics.keys().cloned());
            all_names.extend(r.baseline.keys().cloned());
            match (&r.bins, bins_shape) {
                (Some(b), None) => bins_shape = Some((b.k, b.n_bins)),
                (Some(b), Some((k, n))) if (b.k, b.n_bins) != (k, n) => {
                    return Err(ReportError::Inconsistent(format!(
                        "{}: popularity bins at K={} with {} bins, other runs K={k} with {n} bins",
                        r.dir.display(),
                        b.k,
                        b.n_bins
                    )))
                }
                _ => {}
            }
        }
    }
    let (metric_names, ks) = metric_order(all_names);
    let n_bins = bins_shape.map(|(_, n)| n).unwrap_or(0);

    let mut variants = Vec::new();
    for (spec, config, runs) in &input.variants {
        let mut metrics = BTreeMap::new();
        for m in &metric_names {
            let vals: Vec<Option<f64>> = runs
                .iter()
                .map(|r| r.metrics.get(m).copied().flatten())
                .collect();
            let s = Summary::of(&vals);
            if let Some(s) = s {
                if s.n < runs.len() {
                    notes.push(format!(
                        "{}: {m} is undefined (no test pair in its slice) in {} of {} runs; the mean is over the other {}",
                        spec.name,
                        runs.len() - s.n,
                        runs.len(),
                        s.n
                    ));
                }
            }
            metrics.insert(m.clone(), s);
        }
        let secs: Vec<Option<f64>> = runs.iter().map(|r| Some(r.train_seconds)).collect();
        let eps: Vec<Option<f64>> = runs.iter().map(|r| Some(r.examples_per_second)).collect();
        let mut recall_by_bin = Vec::new();
        if n_bins > 0 {
            let with: Vec<&RunBins> = runs.iter().filter_map(|r| r.bins.as_ref()).collect();
            if with.len() < runs.len() {
                notes.push(format!(
                    "{}: {} of {} runs have no {BINS_FILE}; popularity bins are over the others",
                    spec.name,
                    runs.len() - with.len(),
                    runs.len()
                ));
            }
            for b in 0..n_bins {
                let vals: Vec<Option<f64>> = with.iter().map(|rb| rb.model.recall()[b]).collect();
                recall_by_bin.push(Summary::of(&vals));
            }
        }
        // loss curve of the final-model phase
        let phases: Vec<Option<&str>> = runs.iter().map(|r| final_phase(&r.epochs)).collect();
        let phase = phases.iter().flatten().next().copied();
        let loss = phase.map(|ph| {
            let max_epoch = runs
                .iter()
                .flat_map(|r| r.epochs.iter().filter(|e| e.phase == ph).map(|e| e.epoch))
                .max()
                .unwrap_or(0);
            let mut epochs = Vec::new();
            for ep in 1..=max_epoch {
                let pick = |f: fn(&EpochLoss) -> f64| -> Vec<Option<f64>> {
                    runs.iter()
                        .map(|r| {
                            r.epochs
                                .iter()
                                .rev()
                                .find(|e| e.phase == ph && e.epoch == ep)
                                .map(f)
                        })
                        .collect()
                };
                if let (Some(loss), Some(loss_main)) = (
                    Summary::of(&pick(|e| e.loss)),
                    Summary::of(&pick(|e| e.loss_main)),
                ) {
                    epochs.push(EpochSummary {
                        epoch: ep,
                        loss,
                        loss_main,
                    });
                }
            }
            LossCurve {
                phase: ph.to_string(),
                epochs,
            }
        });
        let final_epochs: Vec<usize> = runs
            .iter()
            .zip(&phases)
            .map(|(r, ph)| match ph {
                Some(ph) => r
                    .epochs
                    .iter()
                    .filter(|e| e.phase == *ph)
                    .map(|e| e.epoch)
                    .max()
                    .unwrap_or(0),
                None => 0,
            })
            .collect();
        if final_epochs.iter().any(|&e| e != final_epochs[0]) {
            notes.push(format!(
                "{}: the final-model phase ran {:?} epochs in its {} runs; later epochs of the loss curve average fewer seeds",
                spec.name,
                final_epochs,
                runs.len()
            ));
        }
        variants.push(VariantReport {
            name: spec.name.clone(),
            overrides: spec.overrides.clone(),
            config: serde_json::to_value(config).expect("a toml value serializes"),
            runs: runs.iter().map(|r| r.dir.clone()).collect(),
            metrics,
            train_seconds: Summary::of(&secs),
            examples_per_second: Summary::of(&eps),
            final_epochs,
            recall_by_bin,
            loss,
        });
    }

    // baselines: one per distinct (metrics, bins) of the first run of each variant
    let mut baselines: Vec<BaselineReport> = Vec::new();
    type BaselineKey = (BTreeMap<String, Option<f64>>, Option<BinCounts>);
    let mut keys: Vec<BaselineKey> = Vec::new();
    for (spec, _, runs) in &input.variants {
        let first = &runs[0];
        for r in &runs[1..] {
            if r.baseline != first.baseline {
                notes.push(format!(
                    "{}: the most-popular baseline differs between {} and {} (the data should not depend on train.seed); the first run's is reported",
                    spec.name,
                    first.dir.display(),
                    r.dir.display()
                ));
                break;
            }
        }
        let key = (
            first.baseline.clone(),
            first.bins.as_ref().map(|b| b.most_popular.clone()),
        );
        if let Some(pos) = keys.iter().position(|k| *k == key) {
            baselines[pos].variants.push(spec.name.clone());
            continue;
        }
        let metrics = metric_names
            .iter()
            .map(|m| {
                let v = key.0.get(m).copied().flatten();
                (
                    m.clone(),
                    v.map(|mean| Summary {
                        mean,
                        std: 0.0,
                        n: 1,
                    }),
                )
            })
            .collect();
        let (recall_by_bin, pairs_by_bin, items_by_bin) = match &key.1 {
            Some(b) => (
                b.recall()
                    .into_iter()
                    .map(|v| {
                        v.map(|mean| Summary {
                            mean,
                            std: 0.0,
                            n: 1,
                        })
                    })
                    .collect(),
                b.pairs.clone(),
                b.items.clone(),
            ),
            None => (Vec::new(), Vec::new(), Vec::new()),
        };
        baselines.push(BaselineReport {
            name: "most_popular".into(),
            variants: vec![spec.name.clone()],
            metrics,
            recall_by_bin,
            pairs_by_bin,
            items_by_bin,
        });
        keys.push(key);
    }
    if baselines.len() > 1 {
        for b in &mut baselines {
            b.name = format!("most_popular ({})", b.variants.join(", "));
        }
    }
    Ok(Report {
        format_version: REPORT_FORMAT_VERSION,
        // every crate of the workspace carries the workspace version, so
        // this crate's is the twotower version
        twotower_version: env!("CARGO_PKG_VERSION").to_string(),
        std: STD_NOTE.to_string(),
        config_file: input.config_file.clone(),
        global_overrides: input.global_overrides.clone(),
        base_config: serde_json::to_value(&input.base_config).expect("a toml value serializes"),
        seeds: input.seeds.clone(),
        metric_names,
        ks,
        bins_k: bins_shape.map(|(k, _)| k),
        n_bins,
        variants,
        baselines,
        total_seconds: input.total_seconds,
        split: input.split.clone(),
        notes,
    })
}

fn test_split() -> String {
    "test".into()
}
