//! # twotower-report
//!
//! Comparison reports: several config variants × several seeds, summarised
//! as mean ± sample standard deviation per metric (EVALUATION.md
//! "Reporting"), beside the most-popular baseline, with recall by
//! item-popularity decile and training-loss curves as plots.
//!
//! This crate holds the plotting of the workspace, so the training library
//! (`twotower`) builds without a plotting stack: it depends on `twotower`,
//! never the reverse.
//!
//! The CLI (`twotower compare`) trains the runs; this crate holds the
//! computations and writers, so a report can be rebuilt from run directories:
//! - [`recall_by_popularity_decile`] / [`popularity_bin_counts`]: recall@K
//!   of the test pairs of each popularity bin of the catalog;
//! - [`mean_std`], [`Summary`]: mean and sample standard deviation (n − 1);
//! - [`read_run`]: one run directory (`metrics.json`, `epochs.jsonl`,
//!   [`BINS_FILE`]) → [`RunResult`];
//! - [`build_report`] → [`Report`]; [`render_markdown`], [`write_report`]
//!   (`report.md`, `report.json`, the plots);
//! - [`plot_recall_by_decile`], [`plot_loss_curves`]: PNG + SVG line charts,
//!   written atomically. PNG text is drawn with DejaVu Sans embedded in the
//!   binary (crate `dejavu`, plotters' `ab_glyph` backend), never a system font.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use twotower::eval::{top_k, EvalError, EvalSet, Scorer};
use twotower::util::{atomic_write, atomic_write_bytes};

/// Version of `report.json` and of [`BINS_FILE`].
pub const REPORT_FORMAT_VERSION: u32 = 1;
/// Per-run file with the popularity-bin recall of the model and the baseline.
pub const BINS_FILE: &str = "recall_by_popularity.json";
/// The report in Markdown.
pub const REPORT_MD: &str = "report.md";
/// The report as JSON.
pub const REPORT_JSON: &str = "report.json";
/// Plot of recall@K by popularity decile (PNG; the SVG has the same stem).
pub const DECILE_PLOT: &str = "recall_by_popularity_decile.png";
/// Plot of the training loss per epoch (PNG; the SVG has the same stem).
pub const LOSS_PLOT: &str = "training_loss.png";
/// Metric families of EVALUATION.md, in report order.
pub const METRIC_PREFIXES: [&str; 6] = [
    "recall",
    "ndcg",
    "head_recall",
    "tail_recall",
    "cold_recall",
    "coverage",
];
/// Wording of the spread used everywhere in reports.
pub const STD_NOTE: &str = "sample standard deviation over seeds (n − 1 denominator)";

/// Errors of report building and writing.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A parameter is out of its valid range.
    #[error("invalid {name} = {got}: expected {expected}")]
    InvalidArgument {
        /// The parameter.
        name: &'static str,
        /// The value given.
        got: String,
        /// What is accepted.
        expected: String,
    },
    /// A `NAME=KEY=VALUE[,KEY=VALUE...]` variant does not parse.
    #[error("variant `{spec}`: {message}")]
    Variant {
        /// The variant as given.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// Evaluation (scorer size, NaN score).
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON file (or a line of a JSON-lines file) does not parse.
    #[error("{path}:{line}:{column}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde's message.
        message: String,
    },
    /// A field of a run file is missing or has the wrong type.
    #[error("{path}{}: field `{field}`: expected {expected}, got {got}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
    Field {
        /// The file.
        path: PathBuf,
        /// 1-based line (JSON-lines files).
        line: Option<usize>,
        /// The field.
        field: String,
        /// What is accepted.
        expected: &'static str,
        /// What was found.
        got: String,
    },
    /// The inputs cannot be reported together.
    #[error("{0}")]
    Inconsistent(String),
    /// plotters failed.
    #[error("plot {path}: {message}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// plotters' message.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------- statistics

/// Mean and sample standard deviation of `xs`:
/// `mean = Σx / n`, `std = sqrt(Σ(x − mean)² / (n − 1))` (two passes).
///
/// A single value has no spread to estimate: `(x, 0.0)` (reports print `n`
/// beside it). An empty slice gives `(NaN, NaN)`; [`Summary::of`] is the
/// NaN-free entry point. A NaN or infinite input propagates.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    (mean, (ss / (n - 1) as f64).sqrt())
}

/// Mean ± sample standard deviation ([`mean_std`]) of the values present.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 when `n` = 1.
    pub std: f64,
    /// Number of values summarised.
    pub n: usize,
}

impl Summary {
    /// Summarises the `Some` values; `None` when there is none (a metric
    /// with no denominator in every seed stays undefined, never 0 or NaN).
    pub fn of(values: &[Option<f64>]) -> Option<Summary> {
        let xs: Vec<f64> = values.iter().flatten().copied().collect();
        if xs.is_empty() {
            return None;
        }
        let (mean, std) = mean_std(&xs);
        Some(Summary {
            mean,
            std,
            n: xs.len(),
        })
    }
}

// ---------------------------------------------------------- popularity bins

/// Popularity bin of every catalog item: items ordered by train popularity
/// descending, ties by item id rank ascending (EVALUATION.md "Popularity
/// slices"); the item at position `p` of that order goes to bin
/// `⌊p · n_bins / n_items⌋`, so bin 0 holds the most popular items and bin
/// sizes differ by at most one (ML-100K, 10 bins: 169 or 168 items).
///
/// # Shapes
/// Returns `[n_items]`, values in `0..n_bins`.
///
/// # Errors
/// [`ReportError::InvalidArgument`] when `n_bins` is 0.
pub fn popularity_bins(set: &EvalSet, n_bins: usize) -> Result<Vec<u32>, ReportError> {
    if n_bins == 0 {
        return Err(ReportError::InvalidArgument {
            name: "n_bins",
            got: "0".into(),
            expected: "at least 1".into(),
        });
    }
    let pop = set.item_popularity();
    let rank = set.item_id_rank();
    let n = set.n_items();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        pop[b as usize]
            .cmp(&pop[a as usize])
            .then(rank[a as usize].cmp(&rank[b as usize]))
    });
    let mut bins = vec![0u32; n];
    for (p, &i) in order.iter().enumerate() {
        bins[i as usize] = (p as u128 * n_bins as u128 / n as u128) as u32;
    }
    Ok(bins)
}

/// Hits and test pairs per popularity bin (see [`popularity_bin_counts`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinCounts {
    /// Distinct (user, item) test pairs per bin whose item is in the user's top-K.
    pub hits: Vec<u64>,
    /// Distinct (user, item) test pairs per bin.
    pub pairs: Vec<u64>,
    /// Catalog items per bin.
    pub items: Vec<u64>,
}

impl BinCounts {
    /// `hits / pairs` per bin; `None` for a bin with no test pair.
    pub fn recall(&self) -> Vec<Option<f64>> {
        self.hits
            .iter()
            .zip(&self.pairs)
            .map(|(&h, &p)| {
                if p == 0 {
                    None
                } else {
                    Some(h as f64 / p as f64)
                }
            })
            .collect()
    }
}

/// For each popularity bin ([`popularity_bins`]): over all distinct
/// (user, item) test pairs whose item is in the bin, how many have the item
/// in that user's top-`k`, ranked exactly as EVALUATION.md prescribes (whole
/// catalog, the user's train items removed, ties by item id rank; a test
/// item also in train is removed from the candidates but still counted).
/// With `n_bins` = 5 and a catalog of a multiple of 5 items, bin 0 is exactly
/// the head slice, so its ratio equals `head_recall@k`.
///
/// Users are scored in blocks of at most 256 users whose score scratch
/// (`block × n_items` f32) stays under 4 MiB, in parallel on rayon's pool;
/// counts are integers, so the result does not depend on threads.
///
/// # Errors
/// [`ReportError::InvalidArgument`] (`k` or `n_bins` 0),
/// [`ReportError::Eval`] (`ScorerItems`, `ScorerUsers`, the scorer's own
/// check, `NanScore` with the user).
pub fn popularity_bin_counts(
    set: &EvalSet,
    scorer: &dyn Scorer,
    k: usize,
    n_bins: usize,
) -> Result<BinCounts, ReportError> {
    if k == 0 {
        return Err(ReportError::InvalidArgument {
            name: "k",
            got: "0".into(),
            expected: "at least 1".into(),
        });
    }
    let bins = popularity_bins(set, n_bins)?;
    scorer.check()?;
    let n = set.n_items();
    if scorer.n_items() != n {
        return Err(EvalError::ScorerItems {
            expected: n,
            got: scorer.n_items(),
        }
        .into());
    }
    if let Some(nu) = scorer.n_users() {
        if nu < set.n_users() {
            return Err(EvalError::ScorerUsers {
                expected: set.n_users(),
                got: nu,
            }
            .into());
        }
    }
    let block = ((1usize << 20) / n).clamp(1, 256);
    type HitsPairs = (Vec<u64>, Vec<u64>);
    let per_block: Vec<Result<HitsPairs, EvalError>> = set
        .test_users()
        .par_chunks(block)
        .map(|users| {
            let mut scores = vec![0f32; users.len() * n];
            scorer.score_block(users, 0..n, &mut scores);
            let mut hits = vec![0u64; n_bins];
            let mut pairs = vec![0u64; n_bins];
            let mut top = Vec::with_capacity(k);
            let mut top_items: Vec<u32> = Vec::with_capacity(k);
            for (r, &u) in users.iter().enumerate() {
                top_k(
                    &scores[r * n..(r + 1) * n],
                    k,
                    set.train_items(u),
                    set.item_id_rank(),
                    &mut top,
                )
                .map_err(|e| match e {
                    EvalError::NanScore { item, .. } => EvalError::NanScore {
                        user: Some(u),
                        item,
                    },
                    e => e,
                })?;
                top_items.clear();
                top_items.extend(top.iter().map(|&(i, _)| i));
                top_items.sort_unstable();
                for &i in set.test_items(u) {
                    let b = bins[i as usize] as usize;
                    pairs[b] += 1;
                    if top_items.binary_search(&i).is_ok() {
                        hits[b] += 1;
                    }
                }
            }
            Ok((hits, pairs))
        })
        .collect();
    let mut hits = vec![0u64; n_bins];
    let mut pairs = vec![0u64; n_bins];
    for r in per_block {
        let (h, p) = r?;
        for b in 0..n_bins {
            hits[b] += h[b];
            pairs[b] += p[b];
        }
    }
    let mut items = vec![0u64; n_bins];
    for &b in &bins {
        items[b as usize] += 1;
    }
    Ok(BinCounts { hits, pairs, items })
}

/// Recall@`k` by item-popularity bin: element `b` is the fraction of the
/// distinct (user, item) test pairs whose item is in popularity bin `b`
/// (bin 0 = most popular; see [`popularity_bins`]) that have the item in
/// the user's top-`k`; `None` for a bin with no test pair. With `n_bins` =
/// 10 these are the popularity deciles of the catalog.
///
/// # Shapes
/// Returns `[n_bins]`.
///
/// # Errors
/// As [`popularity_bin_counts`].
pub fn recall_by_popularity_decile(
    set: &EvalSet,
    scorer: &dyn Scorer,
    k: usize,
    n_bins: usize,
) -> Result<Vec<Option<f64>>, ReportError> {
    Ok(popularity_bin_counts(set, scorer, k, n_bins)?.recall())
}

/// Contents of [`BINS_FILE`] in a run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunBins {
    /// [`REPORT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The cut-off K.
    pub k: usize,
    /// Number of popularity bins.
    pub n_bins: usize,
    /// The run's model.
    pub model: BinCounts,
    /// The most-popular baseline on the same data.
    pub most_popular: BinCounts,
}

/// Writes [`RunBins`] into `dir/`[`BINS_FILE`] atomically.
///
/// # Errors
/// [`ReportError::Io`].
pub fn write_run_bins(dir: &Path, bins: &RunBins) -> Result<(), ReportError> {
    let path = dir.join(BINS_FILE);
    write_json_file(&path, bins)
}

fn write_json_file<T: Serialize>(path: &Path, value: &T) -> Result<(), ReportError> {
    atomic_write(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, b"\n")
    })
    .map_err(io_err(path))
}

fn read_json_file<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ReportError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|e| ReportError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

// ------------------------------------------------------------------ run dirs

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

// ------------------------------------------------------------------ variants

/// A named list of `--set` overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantSpec {
    /// Name (also the run sub-directory): ASCII letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// `key=value` overrides, applied after the global ones.
    pub overrides: Vec<String>,
}

/// Parses `NAME=KEY=VALUE[,KEY=VALUE...]` (or `NAME=` for no override).
/// Commas inside brackets, braces or quotes do not split
/// (`big=model.hidden=[256,128],loss.temperature=0.1` is two overrides).
///
/// # Errors
/// [`ReportError::Variant`]: no `=`, an empty or non-portable name, an
/// override without `=` or with an empty key, unbalanced brackets/quotes.
pub fn parse_variant(spec: &str) -> Result<VariantSpec, ReportError> {
    let bad = |m: &str| ReportError::Variant {
        spec: spec.to_string(),
        message: m.to_string(),
    };
    let (name, rest) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=KEY=VALUE[,KEY=VALUE...]"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("empty variant name"));
    }
    if name == "."
        || name == ".."
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return Err(bad(
            "a variant name may only hold ASCII letters, digits, '_', '-' and '.' (it names a directory)",
        ));
    }
    let mut overrides = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut cur = String::new();
    for c in rest.chars() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                cur.push(c);
            }
            None => match c {
                '"' | '\'' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '[' | '{' => {
                    depth += 1;
                    cur.push(c);
                }
                ']' | '}' => {
                    depth -= 1;
                    if depth < 0 {
                        return Err(bad("unbalanced closing bracket"));
                    }
                    cur.push(c);
                }
                ',' if depth == 0 => {
                    overrides.push(std::mem::take(&mut cur));
                }
                _ => cur.push(c),
            },
        }
    }
    if quote.is_some() {
        return Err(bad("unterminated quote"));
    }
    if depth != 0 {
        return Err(bad("unbalanced brackets"));
    }
    overrides.push(cur);
    let overrides: Vec<String> = overrides
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut keys: Vec<&str> = Vec::new();
    for o in &overrides {
        match o.split_once('=') {
            Some((k, _)) if !k.trim().is_empty() => {
                let k = k.trim();
                if keys.contains(&k) {
                    return Err(bad(&format!("key `{k}` is set twice; give each key once")));
                }
                keys.push(k);
            }
            _ => return Err(bad(&format!("override `{o}` is not KEY=VALUE"))),
        }
    }
    Ok(VariantSpec {
        name: name.to_string(),
        overrides,
    })
}

/// The config document with every default filled in for the sections this
/// crate owns (`[model]`, `[loss]`, `[ssl]`, `[train]`, `[eval]`); `[data]`
/// and `[features]` stay as written (a preset or generator fills the rest
/// when the data loads). This is the "full configuration" a report shows.
pub fn resolved_config(cfg: &twotower::config::Config) -> toml::Value {
    let mut doc = cfg.doc.clone();
    let r = &cfg.raw;
    if let Some(t) = doc.as_table_mut() {
        let sections: [(&str, Result<toml::Value, toml::ser::Error>); 5] = [
            ("model", toml::Value::try_from(&r.model)),
            ("loss", toml::Value::try_from(&r.loss)),
            ("ssl", toml::Value::try_from(&r.ssl)),
            ("train", toml::Value::try_from(&r.train)),
            ("eval", toml::Value::try_from(&r.eval)),
        ];
        for (name, v) in sections {
            if let Ok(v) = v {
                t.insert(name.to_string(), v);
            }
        }
    }
    doc
}

/// The dotted key of a `key=value` override, trimmed.
pub fn override_key(o: &str) -> &str {
    o.split_once('=').map(|(k, _)| k.trim()).unwrap_or(o.trim())
}

// -------------------------------------------------------------------- report

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
        notes,
    })
}

/// `mean ± std` with `decimals` digits; `–` when undefined; ` (n=…)` when
/// fewer values than `expected_n` went into it.
pub fn format_summary(s: Option<&Summary>, decimals: usize, expected_n: usize) -> String {
    match s {
        None => "–".to_string(),
        Some(s) => {
            let mut t = format!("{:.*} ± {:.*}", decimals, s.mean, decimals, s.std);
            if s.n < expected_n {
                t.push_str(&format!(" (n={})", s.n));
            }
            t
        }
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The report as Markdown: the variants and their overrides; one table per
/// K with a row per variant (mean ± sample std over seeds) and a row per
/// baseline (std 0); training cost; recall by popularity bin; the plots;
/// the base config as TOML; notes.
pub fn render_markdown(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let n_seeds = r.seeds.len();
    let _ = writeln!(s, "# twotower compare\n");
    let cfg = r
        .config_file
        .as_ref()
        .map(|p| format!("`{}`", p.display()))
        .unwrap_or_else(|| "built-in synthetic default".into());
    let glob = if r.global_overrides.is_empty() {
        "none".to_string()
    } else {
        r.global_overrides
            .iter()
            .map(|o| format!("`{}`", md_escape(o)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        s,
        "- Config: {cfg}; overrides applied to every variant first: {glob}."
    );
    let _ = writeln!(
        s,
        "- Seeds (`train.seed`): {} ({} runs per variant). Every value is **mean ± {}**; the most-popular baseline is deterministic (one value, std 0).",
        r.seeds.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "),
        n_seeds,
        STD_NOTE
    );
    let _ = writeln!(
        s,
        "- Protocol: EVALUATION.md (temporal split, full-catalog exact ranking, train items removed, ties by item id). Total wall time {:.1} s.\n",
        r.total_seconds
    );

    let _ = writeln!(s, "## Variants\n");
    let _ = writeln!(s, "| variant | overrides (after the global ones) | runs |");
    let _ = writeln!(s, "|---|---|---|");
    for v in &r.variants {
        let o = if v.overrides.is_empty() {
            "(none)".to_string()
        } else {
            v.overrides
                .iter()
                .map(|o| format!("`{}`", md_escape(o)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let runs = v
            .runs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            md_escape(&v.name),
            o,
            md_escape(&runs)
        );
    }
    let _ = writeln!(s);

    for &k in &r.ks {
        let names: Vec<&String> = r
            .metric_names
            .iter()
            .filter(|n| {
                n.rsplit_once('@')
                    .map(|(_, kk)| kk == k.to_string())
                    .unwrap_or(false)
            })
            .collect();
        if names.is_empty() {
            continue;
        }
        let _ = writeln!(s, "## Metrics at K = {k}\n");
        let _ = writeln!(
            s,
            "| variant | {} |",
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(s, "|---|{}", "---|".repeat(names.len()));
        for v in &r.variants {
            let cells: Vec<String> = names
                .iter()
                .map(|n| {
                    format_summary(v.metrics.get(*n).and_then(|x| x.as_ref()), 4, v.runs.len())
                })
                .collect();
            let _ = writeln!(s, "| {} | {} |", md_escape(&v.name), cells.join(" | "));
        }
        for b in &r.baselines {
            let cells: Vec<String> = names
                .iter()
                .map(|n| format_summary(b.metrics.get(*n).and_then(|x| x.as_ref()), 4, 1))
                .collect();
            let _ = writeln!(s, "| {} | {} |", md_escape(&b.name), cells.join(" | "));
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Training cost\n");
    let _ = writeln!(s, "| variant | train wall time (s) | examples/s | epochs of the final-model phase, per seed |");
    let _ = writeln!(s, "|---|---|---|---|");
    for v in &r.variants {
        let phase = v
            .loss
            .as_ref()
            .map(|l| format!(" ({})", l.phase))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {}{} |",
            md_escape(&v.name),
            format_summary(v.train_seconds.as_ref(), 1, v.runs.len()),
            format_summary(v.examples_per_second.as_ref(), 0, v.runs.len()),
            v.final_epochs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            phase
        );
    }
    let _ = writeln!(
        s,
        "\nWall time: training of one run (both phases: validation search and refit), seconds; examples/s: main-batch training examples per second over the same time.\n"
    );

    if let Some(k) = r.bins_k {
        let nb = r.n_bins;
        let _ = writeln!(s, "## recall@{k} by item-popularity bin\n");
        let _ = writeln!(
            s,
            "Bin 1 holds the most popular 1/{nb} of the catalog, bin {nb} the least popular (train popularity descending, ties by item id). Each cell: the fraction of the distinct (user, item) test pairs whose item is in the bin that have the item in the user's top-{k}; mean ± std over seeds.\n"
        );
        let _ = writeln!(
            s,
            "| variant | {} |",
            (1..=nb)
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(s, "|---|{}", "---|".repeat(nb));
        for v in &r.variants {
            let cells: Vec<String> = (0..nb)
                .map(|b| {
                    format_summary(
                        v.recall_by_bin.get(b).and_then(|x| x.as_ref()),
                        4,
                        v.runs.len(),
                    )
                })
                .collect();
            let _ = writeln!(s, "| {} | {} |", md_escape(&v.name), cells.join(" | "));
        }
        for b in &r.baselines {
            if b.recall_by_bin.is_empty() {
                continue;
            }
            let cells: Vec<String> = (0..nb)
                .map(|i| format_summary(b.recall_by_bin.get(i).and_then(|x| x.as_ref()), 4, 1))
                .collect();
            let _ = writeln!(s, "| {} | {} |", md_escape(&b.name), cells.join(" | "));
            let _ = writeln!(
                s,
                "| test pairs{} | {} |",
                if r.baselines.len() > 1 {
                    format!(" ({})", b.variants.join(", "))
                } else {
                    String::new()
                },
                b.pairs_by_bin
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(
                s,
                "| catalog items{} | {} |",
                if r.baselines.len() > 1 {
                    format!(" ({})", b.variants.join(", "))
                } else {
                    String::new()
                },
                b.items_by_bin
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Plots\n");
    if r.bins_k.is_some() {
        let stem = DECILE_PLOT.trim_end_matches(".png");
        let _ = writeln!(
            s,
            "![recall by popularity bin]({DECILE_PLOT}) ({stem}.svg)\n"
        );
    }
    let stem = LOSS_PLOT.trim_end_matches(".png");
    let _ = writeln!(
        s,
        "![training loss]({LOSS_PLOT}) ({stem}.svg): mean total loss per epoch over seeds, from the phase that produced the final model (`refit` when it ran, else `search`).\n"
    );

    let _ = writeln!(s, "## Full configuration\n");
    let _ = writeln!(
        s,
        "Each variant's config is this document plus its overrides above (defaults filled in for `[model]`, `[loss]`, `[ssl]`, `[train]` and `[eval]`; `[data]` and `[features]` as written); `train.seed` is set per run. Every run's exact config is in its `run.json`, and each variant's in `report.json`.\n"
    );
    let toml_text = serde_json::from_value::<toml::Value>(r.base_config.clone())
        .ok()
        .and_then(|v| toml::to_string(&v).ok())
        .unwrap_or_else(|| r.base_config.to_string());
    let _ = writeln!(s, "```toml\n{}```\n", ensure_newline(&toml_text));

    if !r.notes.is_empty() {
        let _ = writeln!(s, "## Notes\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
        let _ = writeln!(s);
    }
    s
}

fn ensure_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

/// Writes `report.md`, `report.json` and the plots (recall by popularity
/// bin — when the runs have bins — and training loss, PNG + SVG each) into
/// `dir`, every file atomically.
///
/// # Errors
/// [`ReportError::Io`], [`ReportError::Plot`].
pub fn write_report(dir: &Path, r: &Report) -> Result<(), ReportError> {
    let md = dir.join(REPORT_MD);
    atomic_write_bytes(&md, render_markdown(r).as_bytes()).map_err(io_err(&md))?;
    write_json_file(&dir.join(REPORT_JSON), r)?;
    if let Some(k) = r.bins_k {
        let series: Vec<(String, Vec<Option<f64>>)> = r
            .variants
            .iter()
            .map(|v| {
                (
                    v.name.clone(),
                    v.recall_by_bin.iter().map(|s| s.map(|s| s.mean)).collect(),
                )
            })
            .collect();
        let base: Vec<(String, Vec<Option<f64>>)> = r
            .baselines
            .iter()
            .filter(|b| !b.recall_by_bin.is_empty())
            .map(|b| {
                (
                    b.name.clone(),
                    b.recall_by_bin.iter().map(|s| s.map(|s| s.mean)).collect(),
                )
            })
            .collect();
        plot_recall_by_decile(&dir.join(DECILE_PLOT), k, &series, &base)?;
    }
    let phases: std::collections::BTreeSet<&str> = r
        .variants
        .iter()
        .filter_map(|v| v.loss.as_ref().map(|l| l.phase.as_str()))
        .collect();
    let curves: Vec<(String, Vec<(usize, f64)>)> = r
        .variants
        .iter()
        .filter_map(|v| {
            v.loss.as_ref().map(|l| {
                let name = if phases.len() > 1 {
                    format!("{} ({})", v.name, l.phase)
                } else {
                    v.name.clone()
                };
                (
                    name,
                    l.epochs.iter().map(|e| (e.epoch, e.loss.mean)).collect(),
                )
            })
        })
        .collect();
    let phase_label = if phases.len() == 1 {
        phases.iter().next().copied().unwrap_or("final").to_string()
    } else {
        "final-model".to_string()
    };
    plot_loss_curves(&dir.join(LOSS_PLOT), &phase_label, &curves)?;
    Ok(())
}

// --------------------------------------------------------------------- plots

/// One line of a [`LineChart`]: `(x, y)` points, `None` y = gap.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSeries {
    /// Legend label.
    pub name: String,
    /// Points in x order.
    pub points: Vec<(f64, Option<f64>)>,
    /// Draw dashed, in grey tones (baselines).
    pub dashed: bool,
}

/// A line chart with a title, axis labels, integer x ticks and a legend.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title line.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// X range (inclusive).
    pub x_range: (f64, f64),
    /// Start the y axis at 0.
    pub y_from_zero: bool,
    /// The lines.
    pub series: Vec<ChartSeries>,
}

/// PNG size of every chart, pixels.
pub const CHART_SIZE: (u32, u32) = (960, 600);

const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
    (188, 189, 34),
    (127, 127, 127),
];
const BASE_COLORS: [(u8, u8, u8); 3] = [(0, 0, 0), (90, 90, 90), (150, 150, 150)];

/// The font family every chart uses; registered from the embedded DejaVu Sans.
const FONT: &str = "sans-serif";

fn register_font() -> Result<(), String> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        use plotters::style::FontStyle;
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the embedded DejaVu Sans font was rejected by plotters".into())
    }
}

fn y_range(c: &LineChart) -> (f64, f64) {
    let ys: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1))
        .filter(|y| y.is_finite())
        .collect();
    if ys.is_empty() {
        return (0.0, 1.0);
    }
    let mut lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let mut hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if c.y_from_zero {
        lo = lo.min(0.0);
    }
    let span = if hi > lo {
        hi - lo
    } else {
        0.1 * hi.abs().max(1e-3)
    };
    if !c.y_from_zero || lo < 0.0 {
        lo -= 0.05 * span;
    }
    // headroom for the legend box in the upper right corner
    hi += span * (0.08 + 0.055 * c.series.len() as f64);
    (lo, hi)
}

fn draw_chart<DB: plotters::prelude::DrawingBackend>(
    root: plotters::drawing::DrawingArea<DB, plotters::coord::Shift>,
    c: &LineChart,
) -> Result<(), String> {
    use plotters::prelude::*;
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (y0, y1) = y_range(c);
    let (x0, x1) = c.x_range;
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, (FONT, 24))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(84)
        .build_cartesian_2d((x0 - 0.3)..(x1 + 0.3), y0..y1)
        .map_err(|x| e(&x))?;
    let n_x = (x1 - x0).round().max(0.0) as usize + 1;
    chart
        .configure_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .x_labels(n_x.min(20) + 1)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .y_labels(10)
        .y_label_formatter(&|y| {
            if y1 - y0 < 0.5 {
                format!("{y:.3}")
            } else {
                format!("{y:.2}")
            }
        })
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|x| e(&x))?;
    let (mut vi, mut bi) = (0usize, 0usize);
    for s in &c.series {
        let (r, g, b) = if s.dashed {
            bi += 1;
            BASE_COLORS[(bi - 1) % BASE_COLORS.len()]
        } else {
            vi += 1;
            PALETTE[(vi - 1) % PALETTE.len()]
        };
        let color = RGBColor(r, g, b);
        let style = color.stroke_width(3);
        // contiguous runs of defined points
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &(x, y) in &s.points {
            match y {
                Some(y) if y.is_finite() => segments.last_mut().expect("non-empty").push((x, y)),
                _ => {
                    if !segments.last().expect("non-empty").is_empty() {
                        segments.push(Vec::new());
                    }
                }
            }
        }
        for seg in segments.iter().filter(|s| !s.is_empty()) {
            if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(seg.clone(), 10, 6, style))
                    .map_err(|x| e(&x))?;
            } else {
                chart
                    .draw_series(LineSeries::new(seg.clone(), style))
                    .map_err(|x| e(&x))?;
            }
            chart
                .draw_series(seg.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|x| e(&x))?;
        }
        let dashed = s.dashed;
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(|x| e(&x))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                // two segments: a gap between them for a dashed line
                let (a, b) = if dashed { (9, 15) } else { (24, 0) };
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (a, 0)], color.stroke_width(3))
                    + PathElement::new(vec![(b, 0), (24, 0)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(120, 120, 120))
        .label_font((FONT, 16))
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// Writes `chart` as a PNG at `path_png` (RGB, [`CHART_SIZE`], text in the
/// embedded DejaVu Sans) and as an SVG beside it (same stem, `.svg`; text
/// as `<text>` elements in `sans-serif`). Both atomically.
///
/// # Errors
/// [`ReportError::Plot`] (plotters, font), [`ReportError::Io`].
pub fn write_line_chart(path_png: &Path, chart: &LineChart) -> Result<(), ReportError> {
    use plotters::prelude::*;
    let perr = |p: &Path, m: String| ReportError::Plot {
        path: p.to_path_buf(),
        message: m,
    };
    register_font().map_err(|m| perr(path_png, m))?;
    let (w, h) = CHART_SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw_chart(root, chart).map_err(|m| perr(path_png, m))?;
    }
    twotower::util::atomic_write_rgb_png(path_png, w, h, &buf).map_err(io_err(path_png))?;
    let svg_path = path_png.with_extension("svg");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        draw_chart(root, chart).map_err(|m| perr(&svg_path, m))?;
    }
    atomic_write_bytes(&svg_path, svg.as_bytes()).map_err(io_err(&svg_path))?;
    Ok(())
}

/// Plot (1): recall@`k` by item-popularity bin, one line per variant (mean
/// over seeds) and a dashed line per baseline; x = bin 1 (most popular) …
/// n (least popular). Writes `path_png` and its `.svg` twin.
///
/// # Shapes
/// Each series: `[n_bins]`, `None` = bin without test pairs (a gap).
///
/// # Errors
/// As [`write_line_chart`]; [`ReportError::InvalidArgument`] when the
/// series lengths differ or there is none.
pub fn plot_recall_by_decile(
    path_png: &Path,
    k: usize,
    variants: &[(String, Vec<Option<f64>>)],
    baselines: &[(String, Vec<Option<f64>>)],
) -> Result<(), ReportError> {
    let n = variants
        .first()
        .or(baselines.first())
        .map(|s| s.1.len())
        .unwrap_or(0);
    if n == 0 || variants.iter().chain(baselines).any(|s| s.1.len() != n) {
        return Err(ReportError::InvalidArgument {
            name: "series",
            got: format!(
                "lengths {:?}",
                variants
                    .iter()
                    .chain(baselines)
                    .map(|s| s.1.len())
                    .collect::<Vec<_>>()
            ),
            expected: "at least one series, all of the same non-zero length".into(),
        });
    }
    let bin_word = if n == 10 { "decile" } else { "bin" };
    let mk = |(name, ys): &(String, Vec<Option<f64>>), dashed| ChartSeries {
        name: name.clone(),
        points: ys
            .iter()
            .enumerate()
            .map(|(i, &y)| ((i + 1) as f64, y))
            .collect(),
        dashed,
    };
    let chart = LineChart {
        title: format!("recall@{k} by item-popularity {bin_word} (mean over seeds)"),
        x_label: format!(
            "item-popularity {bin_word}: 1 = most popular … {n} = least popular (train)"
        ),
        y_label: format!("recall@{k} of the test pairs in the {bin_word}"),
        x_range: (1.0, n as f64),
        y_from_zero: true,
        series: variants
            .iter()
            .map(|s| mk(s, false))
            .chain(baselines.iter().map(|s| mk(s, true)))
            .collect(),
    };
    write_line_chart(path_png, &chart)
}

/// Plot (2): training loss per epoch, one line per variant (mean over
/// seeds), from the `phase` that produced the final model. Writes
/// `path_png` and its `.svg` twin.
///
/// # Errors
/// As [`write_line_chart`].
pub fn plot_loss_curves(
    path_png: &Path,
    phase: &str,
    variants: &[(String, Vec<(usize, f64)>)],
) -> Result<(), ReportError> {
    let max_epoch = variants
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(1);
    let chart = LineChart {
        title: format!("training loss per epoch ({phase} phase, mean over seeds)"),
        x_label: "epoch".into(),
        y_label: "mean loss per batch".into(),
        x_range: (1.0, max_epoch as f64),
        y_from_zero: false,
        series: variants
            .iter()
            .map(|(name, pts)| ChartSeries {
                name: name.clone(),
                points: pts.iter().map(|&(e, y)| (e as f64, Some(y))).collect(),
                dashed: false,
            })
            .collect(),
    };
    write_line_chart(path_png, &chart)
}
