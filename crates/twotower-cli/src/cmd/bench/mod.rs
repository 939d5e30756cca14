//! `twotower bench`: training throughput (real config and synthetic catalogs
//! of growing size, with and without SSL) with a per-phase time split, peak
//! memory, allocations per step, evaluation throughput against a plain GEMM,
//! ingestion rows/s (raw reading) and the whole load path (load → encode →
//! split → fingerprint, rows/s and seconds per stage). Prints a table and
//! writes everything as JSON.
//!
//! This module holds the arguments, `run` (settings, the evaluation case and
//! the report) and the report types; `train` the training-step cases,
//! `ingest` the ingestion and load-path cases.

mod ingest;
mod train;

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::Serialize;
use twotower::bench::{eval_throughput, synthetic_side, EvalReport};

use ingest::{ingest, load_case, IngestCase, LoadCase};
use train::{print_case, real_case, synthetic_case, TrainCase};

/// Arguments of `twotower bench`. Options left out take the full run's
/// defaults, or with `--quick` the quick run's (shown as full / quick).
#[derive(clap::Args)]
pub struct Args {
    /// Real-data config whose training throughput is measured (batch size,
    /// features and model from the config). Default `configs/ml-100k.toml`,
    /// skipped with a note when that default is missing; a path given here
    /// must exist.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Skip the real-data config.
    #[arg(long, conflicts_with = "config")]
    pub no_config: bool,
    /// Synthetic catalog sizes, comma-separated (suffixes k and M allowed).
    /// Default 10k,100k,1M,4M / 10k,100k.
    #[arg(long, value_delimiter = ',')]
    pub items: Option<Vec<String>>,
    /// Synthetic users (fixed, so that only the catalog grows). Default 100k.
    #[arg(long, default_value = "100k")]
    pub users: String,
    /// Synthetic main batch size B.
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
    /// Synthetic embedding dimension of every feature (towers are
    /// 3 × dim → 128 → 64).
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Measured steps per repeat. Default 20 / 8. The real config's steps are
    /// small: it runs 8× as many measured and warm-up steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Unmeasured warm-up steps before the repeats. Default 5 / 2.
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Repeats; the median examples/s is reported (shared or virtual
    /// machines vary by ±10 % from one window to the next). Default 5 / 3.
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Which training runs: `off`, `on` or `both` (without and with SSL).
    #[arg(long, default_value = "both")]
    pub ssl: String,
    /// Users of the evaluation benchmark (64-d vectors, exact top-100;
    /// 0 = skip). Default 2048 / 1024.
    #[arg(long)]
    pub eval_users: Option<usize>,
    /// Catalog size of the evaluation benchmark (0 = skip). Default 200k / 100k.
    #[arg(long)]
    pub eval_items: Option<String>,
    /// Rows of the ingestion benchmark (0 = skip). Default 1M / 200k.
    #[arg(long)]
    pub ingest_rows: Option<String>,
    /// Interaction rows of the load benchmark: a generated dataset (users
    /// = rows / 50, items = rows / 10, as Parquet and as CSV) loaded as
    /// `twotower train` loads it: read, encode, split, fingerprint. 0 =
    /// skip. Default 1M / 200k.
    #[arg(long)]
    pub load_rows: Option<String>,
    /// A dataset config whose load is measured instead of generated files
    /// (e.g. the `dataset.toml` of `twotower generate`).
    #[arg(long)]
    pub load_config: Option<PathBuf>,
    /// Only the load and ingestion benchmarks (no training or evaluation).
    #[arg(long)]
    pub load_only: bool,
    /// Threads (rayon; each GEMM runs on one of them). 0 = all CPUs.
    /// Default 2, the reference figures' setting.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// A short run: the quick defaults above.
    #[arg(long)]
    pub quick: bool,
    /// Where the JSON report goes. Default runs/bench.json / runs/bench-quick.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The resolved settings, recorded in the report.
#[derive(Serialize)]
struct Settings {
    quick: bool,
    config: Option<PathBuf>,
    items: Vec<usize>,
    users: usize,
    batch_size: usize,
    dim: usize,
    hidden: Vec<usize>,
    out_dim: usize,
    steps: usize,
    warmup: usize,
    repeats: usize,
    ssl: String,
    eval_users: usize,
    eval_items: usize,
    ingest_rows: usize,
    load_rows: usize,
    load_config: Option<PathBuf>,
    threads: usize,
}

/// Largest catalog / user count accepted (ids are u32; far beyond any RAM here anyway).
const MAX_ROWS: usize = 1 << 31;

#[derive(Serialize)]
struct Machine {
    cpu: String,
    logical_cpus: usize,
    threads: usize,
    os: String,
    load_average_at_start: Option<String>,
}

#[derive(Serialize)]
struct Report {
    twotower_version: String,
    date_unix: u64,
    machine: Machine,
    settings: Settings,
    train: Vec<TrainCase>,
    eval: Option<EvalReport>,
    ingest: Vec<IngestCase>,
    load: Vec<LoadCase>,
}

pub(crate) fn parse_count(s: &str) -> anyhow::Result<usize> {
    let t = s.trim();
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000usize),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000usize),
        _ => (t, 1usize),
    };
    let bad = || anyhow::anyhow!("`{s}` is not a count (e.g. 10000, 10k, 2.5M)");
    let v: f64 = num.parse().map_err(|_| bad())?;
    let n = v * mul as f64;
    if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0) {
        return Err(bad());
    }
    if n > MAX_ROWS as f64 {
        bail!("`{s}` is too large (at most {MAX_ROWS})");
    }
    Ok(n as usize)
}

/// Bytes of memory available to new allocations (Linux `MemAvailable`).
fn mem_available() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|k| k * 1024)
}

fn machine(threads: usize) -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|x| x.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cpu,
        logical_cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        threads,
        os: std::env::consts::OS.to_string(),
        load_average_at_start: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
    }
}

/// Runs `twotower bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let q = args.quick;
    let pick = |full: usize, quick: usize| if q { quick } else { full };
    let ssl_modes: Vec<bool> = match args.ssl.as_str() {
        "off" => vec![false],
        "on" => vec![true],
        "both" => vec![false, true],
        other => bail!("--ssl must be off, on or both, not `{other}`"),
    };
    let sizes = match &args.items {
        Some(v) => v
            .iter()
            .map(|s| parse_count(s))
            .collect::<anyhow::Result<Vec<_>>>()?,
        None if q => vec![10_000, 100_000],
        None => vec![10_000, 100_000, 1_000_000, 4_000_000],
    };
    let users = parse_count(&args.users)?;
    let steps = args.steps.unwrap_or(pick(20, 8));
    let warmup = args.warmup.unwrap_or(pick(5, 2));
    let repeats = args.repeats.unwrap_or(pick(5, 3));
    let eval_users = args.eval_users.unwrap_or(pick(2048, 1024));
    let eval_items = match &args.eval_items {
        Some(s) => parse_count(s)?,
        None => pick(200_000, 100_000),
    };
    let ingest_rows = match &args.ingest_rows {
        Some(s) => parse_count(s)?,
        None => pick(1_000_000, 200_000),
    };
    let load_rows = match &args.load_rows {
        Some(s) => parse_count(s)?,
        None => pick(1_000_000, 200_000),
    };
    if let Some(p) = &args.load_config {
        if !p.is_file() {
            bail!("--load-config {}: no such file", p.display());
        }
    }
    if steps == 0 || repeats == 0 || args.batch_size == 0 || args.dim == 0 || users == 0 {
        bail!("--steps, --repeats, --batch-size, --dim and --users must be > 0");
    }
    if sizes.contains(&0) {
        bail!("--items: a catalog needs at least one item");
    }
    if let Some(&small) = sizes.iter().find(|&&n| n < args.batch_size) {
        eprintln!(
            "note: a catalog of {small} items is smaller than the batch ({}): most in-batch \
             columns are accidental hits, and the SSL batch shrinks to the catalog",
            args.batch_size
        );
    }
    // Refuse sizes that cannot fit before spending minutes on the others.
    if let Some(avail) = mem_available() {
        let dim = args.dim as u64;
        let largest = *sizes.iter().max().unwrap_or(&0) as u64;
        // id tables + lazy Adam m, v (3 × 4 B) of both sides, plus columns
        let train_need = 12 * (largest + users as u64) * dim + 16 * (largest + users as u64);
        let eval_need = 4 * 64 * (eval_users as u64 + eval_items as u64);
        for (what, need) in [
            ("--items", train_need),
            ("--eval-users/--eval-items", eval_need),
        ] {
            if need > avail {
                bail!(
                    "{what}: needs about {:.1} GiB, only {:.1} GiB of memory is available",
                    need as f64 / (1u64 << 30) as f64,
                    avail as f64 / (1u64 << 30) as f64
                );
            }
        }
    }
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(if q {
            "runs/bench-quick.json"
        } else {
            "runs/bench.json"
        })
    });
    // Check the output location now, not after minutes of measuring.
    if out.is_dir() {
        bail!("--out {} is a directory; give a file name", out.display());
    }
    super::check_out_file_parent(&out)?;
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("{} is not writable", dir.display()))?;
    }
    let config = if args.no_config {
        None
    } else {
        match &args.config {
            Some(p) => {
                if !p.is_file() {
                    bail!(
                        "--config {}: no such file (use --no-config to skip the real-data case)",
                        p.display()
                    );
                }
                Some(p.clone())
            }
            None => {
                let d = PathBuf::from("configs/ml-100k.toml");
                if d.is_file() {
                    Some(d)
                } else {
                    println!(
                        "note: {} not found here: skipping the real-data throughput (run from the \
                         repository root, or pass --config)",
                        d.display()
                    );
                    None
                }
            }
        }
    };
    let threads = if args.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        args.threads
    };
    super::set_threads(threads)?;
    let settings = Settings {
        quick: q,
        config: config.clone(),
        items: sizes.clone(),
        users,
        batch_size: args.batch_size,
        dim: args.dim,
        hidden: vec![128],
        out_dim: 64,
        steps,
        warmup,
        repeats,
        ssl: args.ssl.clone(),
        eval_users,
        eval_items,
        ingest_rows,
        load_rows,
        load_config: args.load_config.clone(),
        threads,
    };
    let mut report = Report {
        twotower_version: env!("CARGO_PKG_VERSION").to_string(),
        date_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        machine: machine(threads),
        settings,
        train: Vec::new(),
        eval: None,
        ingest: Vec::new(),
        load: Vec::new(),
    };
    println!(
        "machine: {} ({} logical CPUs), {} threads, load {}",
        report.machine.cpu,
        report.machine.logical_cpus,
        threads,
        report
            .machine
            .load_average_at_start
            .as_deref()
            .unwrap_or("?")
    );
    println!(
        "training: examples/s = median over {repeats} windows of {steps} steps; ms per phase = mean \
         over all measured steps (so they may not add up to the median's ms/step exactly)"
    );

    // ---- the real config
    if let Some(path) = config.as_ref().filter(|_| !args.load_only) {
        for &ssl in &ssl_modes {
            let c = real_case(path, ssl, false, warmup * 8, steps * 8, repeats)?;
            print_case(&c);
            report.train.push(c);
        }
        // the config's user tower with the history feature added
        let c = real_case(path, false, true, warmup * 8, steps * 8, repeats)?;
        print_case(&c);
        report.train.push(c);
    }

    // ---- synthetic catalogs
    let user_cols = synthetic_side(users, args.dim, 11);
    for &n in sizes.iter().filter(|_| !args.load_only) {
        for &ssl in &ssl_modes {
            let c = synthetic_case(&user_cols, n, &args, ssl, warmup, steps, repeats)?;
            print_case(&c);
            report.train.push(c);
        }
    }
    for &ssl in &ssl_modes {
        let mut cases: Vec<&TrainCase> = report
            .train
            .iter()
            .filter(|c| c.kind == "synthetic" && c.ssl == ssl)
            .collect();
        cases.sort_by_key(|c| c.items);
        if let (Some(a), Some(b)) = (cases.first(), cases.last()) {
            if a.items != b.items {
                println!(
                    "catalog {} → {} items{}: ms/step {:.2} → {:.2} ({:.2}×)",
                    a.items,
                    b.items,
                    if ssl { " (SSL)" } else { "" },
                    a.report.ms_per_step,
                    b.report.ms_per_step,
                    b.report.ms_per_step / a.report.ms_per_step
                );
            }
        }
    }

    // ---- evaluation
    if eval_items > 0 && eval_users > 0 && !args.load_only {
        let e = eval_throughput(eval_users, eval_items, 64, 2)?;
        println!(
            "eval {}×{}×{}: exact top-K {:.3e} scores/s, plain GEMM {:.3e} scores/s ({:.0} % of GEMM)",
            e.users,
            e.items,
            e.dim,
            e.evaluate_scores_per_second,
            e.gemm_scores_per_second,
            100.0 * e.ratio_to_gemm
        );
        report.eval = Some(e);
    }

    // ---- ingestion
    if ingest_rows > 0 {
        report.ingest = ingest(ingest_rows)?;
        for c in &report.ingest {
            println!(
                "ingest {} {} rows: {:.2} s, {:.2e} rows/s",
                c.format, c.rows, c.seconds, c.rows_per_second
            );
        }
    }

    // ---- the whole load path
    let load_cases: Vec<(String, Option<PathBuf>)> = match &args.load_config {
        Some(p) => vec![(p.display().to_string(), Some(p.clone()))],
        None if load_rows > 0 => vec![("parquet".into(), None), ("csv".into(), None)],
        None => Vec::new(),
    };
    for (source, path) in load_cases {
        let c = load_case(&source, path.as_deref(), load_rows, q)?;
        println!(
            "load {} {} rows: {:.2} s, {:.2e} rows/s (read {:.2} s, entities {:.2} s, split {:.2} \
             s, report {:.2} s, features {:.2} s, fingerprint {:.2} s){}, {}",
            c.source,
            c.rows,
            c.seconds,
            c.rows_per_second,
            c.stages.read,
            c.stages.entities,
            c.stages.split,
            c.stages.report,
            c.stages.features,
            c.fingerprint_seconds,
            c.peak_rss_mib
                .map(|m| format!(", peak RSS {m:.0} MiB"))
                .unwrap_or_default(),
            c.fingerprint
        );
        report.load.push(c);
    }

    let json = serde_json::to_string_pretty(&report)? + "\n";
    if let Err(e) = twotower::util::atomic_write_bytes(&out, json.as_bytes()) {
        // keep the minutes of measurements: print them instead
        println!("{json}");
        return Err(e)
            .with_context(|| format!("writing {} (the report is printed above)", out.display()));
    }
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::train::human;
    use super::*;

    #[test]
    fn counts_parse_with_suffixes() {
        assert_eq!(parse_count("10k").unwrap(), 10_000);
        assert_eq!(parse_count("4M").unwrap(), 4_000_000);
        assert_eq!(parse_count("2.5k").unwrap(), 2_500);
        assert_eq!(parse_count("123").unwrap(), 123);
        assert!(parse_count("ten").is_err());
        assert!(parse_count("-1k").is_err());
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("1e30").is_err());
        assert!(parse_count("k").is_err());
        assert_eq!(parse_count("1e3").unwrap(), 1_000);
        assert_eq!(human(4_000_000), "4M");
        assert_eq!(human(10_000), "10k");
        assert_eq!(human(1234), "1234");
    }
}
