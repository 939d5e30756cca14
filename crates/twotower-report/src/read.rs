//! Reading finished run directories: [`read_run`] (`metrics.json`,
//! `epochs.jsonl`, [`BINS_FILE`]) → [`RunResult`];
//! [`read_epochs`], [`final_phase`], [`is_metric_name`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::io_err;
use crate::json::read_json_file;
use crate::{ReportError, RunBins, BINS_FILE, METRIC_PREFIXES, REPORT_FORMAT_VERSION};

/// One epoch record of `epochs.jsonl` (the fields a report uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLoss {
    /// `"search"` or `"refit"`.
    pub phase: String,
    /// 1-based epoch within the phase.
    pub epoch: usize,
    /// Mean total loss of the epoch (`L_main + α·L_self`).
    pub loss: f64,
    /// Mean main (in-batch softmax) loss.
    pub loss_main: f64,
    /// Mean SSL loss (0 without SSL).
    pub loss_ssl: f64,
}

/// Reads the epoch records of an `epochs.jsonl` file (blank lines skipped).
///
/// # Errors
/// [`ReportError::Io`]; [`ReportError::Json`] naming the line of a record
/// that does not parse or lacks a field.
pub fn read_epochs(path: &Path) -> Result<Vec<EpochLoss>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: EpochLoss = serde_json::from_str(line).map_err(|e| ReportError::Json {
            path: path.to_path_buf(),
            line: i + 1,
            column: e.column(),
            message: e.to_string(),
        })?;
        out.push(rec);
    }
    Ok(out)
}

/// The phase whose epochs produced the final model: `"refit"` when any
/// record has it, else `"search"`; `None` without records.
pub fn final_phase(records: &[EpochLoss]) -> Option<&'static str> {
    if records.is_empty() {
        None
    } else if records.iter().any(|r| r.phase == "refit") {
        Some("refit")
    } else {
        Some("search")
    }
}

/// What one run contributes to a report.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// The run directory.
    pub dir: PathBuf,
    /// The model's metrics (EVALUATION.md names; `None` = undefined).
    pub metrics: BTreeMap<String, Option<f64>>,
    /// The most-popular baseline's metrics on the same data.
    pub baseline: BTreeMap<String, Option<f64>>,
    /// Training wall time, seconds.
    pub train_seconds: f64,
    /// Training throughput, examples per second.
    pub examples_per_second: f64,
    /// Popularity-bin counts, if the run has a [`BINS_FILE`].
    pub bins: Option<RunBins>,
    /// All epoch records of `epochs.jsonl`.
    pub epochs: Vec<EpochLoss>,
}

/// Whether `name` is an EVALUATION.md metric name (`family@K`).
pub fn is_metric_name(name: &str) -> bool {
    match name.split_once('@') {
        Some((fam, k)) => {
            METRIC_PREFIXES.contains(&fam) && !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

fn metric_map(
    path: &Path,
    field_prefix: &str,
    obj: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, Option<f64>>, ReportError> {
    let mut out = BTreeMap::new();
    for (k, v) in obj {
        if !is_metric_name(k) {
            continue;
        }
        let val = match v {
            serde_json::Value::Null => None,
            // every EVALUATION.md metric is a fraction
            serde_json::Value::Number(x) => Some(
                x.as_f64()
                    .filter(|v| (0.0..=1.0).contains(v))
                    .ok_or_else(|| ReportError::Field {
                        path: path.to_path_buf(),
                        line: None,
                        field: format!("{field_prefix}{k}"),
                        expected: "a number in [0, 1] or null",
                        got: x.to_string(),
                    })?,
            ),
            other => {
                return Err(ReportError::Field {
                    path: path.to_path_buf(),
                    line: None,
                    field: format!("{field_prefix}{k}"),
                    expected: "a number in [0, 1] or null",
                    got: other.to_string(),
                })
            }
        };
        out.insert(k.clone(), val);
    }
    Ok(out)
}

/// Reads a finished run directory: `metrics.json` (required), `epochs.jsonl`
/// (optional: no epochs), [`BINS_FILE`] (optional).
///
/// # Errors
/// [`ReportError::Io`], [`ReportError::Json`], [`ReportError::Field`] naming
/// the file and field (e.g. `most_popular` missing, a metric that is a string).
pub fn read_run(dir: &Path) -> Result<RunResult, ReportError> {
    let mpath = dir.join(twotower::run::METRICS_FILE);
    let doc: serde_json::Value = read_json_file(&mpath)?;
    let obj = doc.as_object().ok_or_else(|| ReportError::Field {
        path: mpath.clone(),
        line: None,
        field: "(top level)".into(),
        expected: "a JSON object",
        got: short(&doc),
    })?;
    let metrics = metric_map(&mpath, "", obj)?;
    if metrics.is_empty() {
        return Err(ReportError::Field {
            path: mpath.clone(),
            line: None,
            field: "recall@K".into(),
            expected: "EVALUATION.md metrics at top level",
            got: "none".into(),
        });
    }
    let pop = obj
        .get("most_popular")
        .and_then(|v| v.as_object())
        .ok_or_else(|| ReportError::Field {
            path: mpath.clone(),
            line: None,
            field: "most_popular".into(),
            expected: "an object of baseline metrics",
            got: obj
                .get("most_popular")
                .map(short)
                .unwrap_or_else(|| "nothing".into()),
        })?;
    let baseline = metric_map(&mpath, "most_popular.", pop)?;
    let num = |field: &str| -> Result<f64, ReportError> {
        obj.get(field)
            .and_then(|v| v.as_f64())
            .ok_or_else(|| ReportError::Field {
                path: mpath.clone(),
                line: None,
                field: field.into(),
                expected: "a number",
                got: obj
                    .get(field)
                    .map(short)
                    .unwrap_or_else(|| "nothing".into()),
            })
    };
    let train_seconds = num("train_seconds")?;
    let examples_per_second = num("examples_per_second")?;
    for (field, v) in [
        ("train_seconds", train_seconds),
        ("examples_per_second", examples_per_second),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(ReportError::Field {
                path: mpath.clone(),
                line: None,
                field: field.into(),
                expected: "a finite number >= 0",
                got: v.to_string(),
            });
        }
    }
    let epath = dir.join("epochs.jsonl");
    let epochs = if epath.exists() {
        read_epochs(&epath)?
    } else {
        Vec::new()
    };
    let bpath = dir.join(BINS_FILE);
    let bins = if bpath.exists() {
        let b: RunBins = read_json_file(&bpath)?;
        if b.format_version != REPORT_FORMAT_VERSION {
            return Err(ReportError::Field {
                path: bpath,
                line: None,
                field: "format_version".into(),
                expected: "1",
                got: b.format_version.to_string(),
            });
        }
        Some(b)
    } else {
        None
    };
    Ok(RunResult {
        dir: dir.to_path_buf(),
        metrics,
        baseline,
        train_seconds,
        examples_per_second,
        bins,
        epochs,
    })
}

fn short(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}
