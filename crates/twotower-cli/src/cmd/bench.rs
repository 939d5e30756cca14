//! `twotower bench`: training throughput (real config and synthetic catalogs
//! of growing size, with and without SSL) with a per-phase time split, peak
//! memory, allocations per step, evaluation throughput against a plain GEMM,
//! ingestion rows/s (raw reading) and the whole load path (load → encode →
//! split → fingerprint, rows/s and seconds per stage). Prints a table and
//! writes everything as JSON.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use twotower::augment::{AugmentConfig, Augmenter, MaskingPattern, SeedScope};
use twotower::bench::{
    embedding_state_bytes, eval_throughput, peak_rss_bytes, reset_peak_rss, run_steps,
    synthetic_side, synthetic_spec, uniform_pairs, EvalReport, RowOrder, StepReport, StepSetup,
    SyntheticColumn,
};
use twotower::config::Config;
use twotower::frequency::CountFrequency;
use twotower::model::{LossConfig, TwoTower};
use twotower::optim::{OptimConfig, Optimizer, SparseOptimizerKind};
use twotower::step::{Frequency, Step, StepInputs};
use twotower::train::{self, TrainState};

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

/// One training-throughput measurement.
#[derive(Serialize)]
struct TrainCase {
    name: String,
    /// `config` (a real dataset) or `synthetic`.
    kind: &'static str,
    items: usize,
    users: usize,
    ssl: bool,
    ssl_batch: usize,
    #[serde(flatten)]
    report: StepReport,
    /// Peak RSS of this case (reset before it where the OS allows).
    peak_rss_mib: Option<f64>,
    /// Embedding tables + sparse optimizer state, 4 B × rows × dim × (1 + slots).
    embedding_state_mib: f64,
    setup_seconds: f64,
}

#[derive(Serialize)]
struct IngestCase {
    format: String,
    rows: usize,
    seconds: f64,
    rows_per_second: f64,
}

/// One measurement of the whole load path (best of its repeats by total).
#[derive(Serialize)]
struct LoadCase {
    /// `parquet`, `csv` or the config's path.
    source: String,
    rows: usize,
    users: usize,
    items: usize,
    repeats: usize,
    /// Load + fingerprint, wall clock.
    seconds: f64,
    rows_per_second: f64,
    /// Seconds per stage of the load.
    stages: twotower_data::LoadTimings,
    fingerprint_seconds: f64,
    /// The data fingerprint (the same before and after a loader change).
    fingerprint: String,
    /// Peak RSS of the case (reset before it where the OS allows).
    peak_rss_mib: Option<f64>,
}

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

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
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

fn print_case(c: &TrainCase) {
    let p = &c.report.phases_ms;
    let ssl = if c.ssl {
        format!("ssl-aug {:.2} ssl {:.2} ", p.ssl_augment, p.ssl_compute)
    } else {
        String::new()
    };
    println!(
        "{:<20} {:>8.0} ex/s {:>6.2} ms/step | ms: gather {:.2} fwd {:.2} loss {:.2} bwd {:.2} {}sparse {:.2} dense {:.2} | allocs/step {} | peak {} MiB (emb+opt {:.0} MiB)",
        c.name,
        c.report.examples_per_second,
        c.report.ms_per_step,
        p.gather,
        p.forward,
        p.loss,
        p.backward,
        ssl,
        p.sparse_update,
        p.dense_update,
        c.report
            .allocations_per_step
            .map(|a| format!("{a:.1}"))
            .unwrap_or_else(|| "- (build with --features alloc-count)".into()),
        c.peak_rss_mib
            .map(|m| format!("{m:.0}"))
            .unwrap_or_else(|| "?".into()),
        c.embedding_state_mib,
    );
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

fn real_case(
    path: &Path,
    ssl: bool,
    history: bool,
    warmup: usize,
    steps: usize,
    repeats: usize,
) -> anyhow::Result<TrainCase> {
    let t = Instant::now();
    let rss_reset = reset_peak_rss();
    let mut overrides = vec![format!("ssl.enabled={ssl}")];
    if history {
        overrides.push("model.history.enabled=true".into());
    }
    let cfg = Config::load(Some(path), &overrides)?;
    let ds = super::load_data(&cfg, true)?;
    let b = cfg.raw.train.batch_size;
    // the trainer's own state and step over the train split (logQ, mixed
    // negatives, masks, weights, history bags, id dropout, SSL as configured)
    let state = train::TrainState::new(&cfg, &ds, &ds.train, 0, b, None)?;
    let opt_cfg = train::optim_config(&cfg);
    let m = if cfg.raw.ssl.batch_size > 0 {
        cfg.raw.ssl.batch_size
    } else {
        b
    };
    let emb = embedding_state_bytes(&state.model, opt_cfg.sparse);
    let n_items = ds.items.ids.len();
    let mut setup = StepSetup {
        state,
        n_users: ds.users.ids.len(),
        batch_size: b,
        order: RowOrder::Shuffled(cfg.raw.train.seed),
    };
    let setup_seconds = t.elapsed().as_secs_f64();
    let report = run_steps(&mut setup, warmup, steps, repeats)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    Ok(TrainCase {
        name: format!(
            "{name}{}{}",
            if cfg.raw.model.history.enabled {
                " +history"
            } else {
                ""
            },
            if ssl { " +SSL" } else { "" }
        ),
        kind: "config",
        items: n_items,
        users: setup.n_users,
        ssl,
        ssl_batch: if ssl { m } else { 0 },
        report,
        peak_rss_mib: peak_rss_bytes().filter(|_| rss_reset).map(mib),
        embedding_state_mib: mib(emb),
        setup_seconds,
    })
}

fn synthetic_case(
    users: &[SyntheticColumn],
    n_items: usize,
    args: &Args,
    ssl: bool,
    warmup: usize,
    steps: usize,
    repeats: usize,
) -> anyhow::Result<TrainCase> {
    let t = Instant::now();
    let items = synthetic_side(n_items, args.dim, 12);
    // the peak of this case: tables, optimizer state and batch buffers
    let rss_reset = reset_peak_rss();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let model = TwoTower::new(
        synthetic_spec(users, vec![128], 64),
        synthetic_spec(&items, vec![128], 64),
        &mut rng,
    )?;
    let opt_cfg = OptimConfig {
        sparse: SparseOptimizerKind::Adam,
        sparse_lr: 0.01,
        ..OptimConfig::default()
    };
    let opt = Optimizer::new(&model, &opt_cfg);
    let emb = embedding_state_bytes(&model, opt_cfg.sparse);
    let aug = if ssl {
        let acfg = AugmentConfig {
            pattern: MaskingPattern::Complementary,
            mask_rate: 0.5,
            dropout_rate: 0.0,
            seed_scope: SeedScope::PerExample,
            mask_id_feature: true,
            cfm_id_partner: true,
            mask_as_unknown: false,
        };
        Some((
            Augmenter::new(
                acfg,
                vec![false, false, true],
                vec![true, false, false],
                None,
            )?,
            args.batch_size.min(n_items),
        ))
    } else {
        None
    };
    let n_users = users[0].offsets.len() - 1;
    // enough uniform pairs that no row repeats during the measurement
    let fit = uniform_pairs(
        n_users,
        n_items,
        args.batch_size * (warmup + steps * repeats),
        7,
    );
    let inputs = StepInputs {
        user_columns: users.iter().map(SyntheticColumn::column).collect(),
        item_columns: items.iter().map(SyntheticColumn::column).collect(),
        n_items,
        fit: &fit,
        frequency: Frequency::Counts(CountFrequency::from_train_counts(&vec![1; n_items])?),
        logq_weight: 1.0,
        mixed_negatives: 0,
        weights: None,
        user_history: None,
        history: None,
        id_dropout: None,
        ssl: aug,
        loss: LossConfig {
            temperature: 0.1,
            mask_accidental_hits: true,
            ssl_temperature: 0.1,
            ssl_weight: 0.1,
        },
        seed: 7,
        phase_tag: 0,
    };
    let step = Step::new(inputs, &model, args.batch_size);
    let mut setup = StepSetup {
        state: TrainState::from_step(model, opt, step),
        n_users,
        batch_size: args.batch_size,
        order: RowOrder::Shuffled(7),
    };
    let setup_seconds = t.elapsed().as_secs_f64();
    let report = run_steps(&mut setup, warmup, steps, repeats)?;
    let peak = peak_rss_bytes().map(mib);
    Ok(TrainCase {
        name: format!(
            "synthetic {}{}",
            human(n_items),
            if ssl { " +SSL" } else { "" }
        ),
        kind: "synthetic",
        items: n_items,
        users: setup.n_users,
        ssl,
        ssl_batch: if ssl { args.batch_size.min(n_items) } else { 0 },
        report,
        peak_rss_mib: if rss_reset { peak } else { None },
        embedding_state_mib: mib(emb),
        setup_seconds,
    })
}

fn human(n: usize) -> String {
    if n >= 1_000_000 && (n / 1_000_000) * 1_000_000 == n {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && (n / 1000) * 1000 == n {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn ingest(rows: usize) -> anyhow::Result<Vec<IngestCase>> {
    use twotower_data::{
        read_interactions, write_dataset, InteractionsSpec, OnBadRow, OutFormat, SyntheticConfig,
    };
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let cfg = SyntheticConfig {
        users: 100_000,
        items: 100_000,
        interactions: rows,
        ..Default::default()
    };
    let mut out = Vec::new();
    for (format, of, file) in [
        ("csv", OutFormat::Csv, "interactions.csv"),
        ("parquet", OutFormat::Parquet, "interactions.parquet"),
    ] {
        let d = dir.path().join(format);
        write_dataset(&cfg, &d, of)?;
        let spec: InteractionsSpec = toml::from_str(&format!(
            "file = \"{file}\"\nuser = \"user\"\nitem = \"item\"\ntimestamp = \"timestamp\"\n"
        ))?;
        let mut best = f64::INFINITY;
        let mut n = 0;
        for _ in 0..3 {
            let mut skipped = 0;
            let t = Instant::now();
            let r = read_interactions(&spec, &d, OnBadRow::Error, &mut skipped)?;
            best = best.min(t.elapsed().as_secs_f64());
            n = r.user.len();
        }
        out.push(IngestCase {
            format: format.into(),
            rows: n,
            seconds: best,
            rows_per_second: n as f64 / best,
        });
    }
    Ok(out)
}

/// Times the load path on `config`, or on a generated dataset of `rows`
/// interactions written as `format` (`parquet` / `csv`); best of 3 (1 for a
/// config or above 10M rows).
fn load_case(
    source: &str,
    config: Option<&Path>,
    rows: usize,
    quick: bool,
) -> anyhow::Result<LoadCase> {
    use twotower_data::{load_data_config, write_dataset, OutFormat, SyntheticConfig};
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let path = match config {
        Some(p) => p.to_path_buf(),
        None => {
            let cfg = SyntheticConfig {
                users: (rows / 50).max(1),
                items: (rows / 10).max(1),
                interactions: rows,
                ..Default::default()
            };
            let format = if source == "csv" {
                OutFormat::Csv
            } else {
                OutFormat::Parquet
            };
            write_dataset(&cfg, dir.path(), format)?;
            dir.path().join("dataset.toml")
        }
    };
    let (data, features, base) = load_data_config(&path, &[])?;
    let repeats = if config.is_some() || rows > 10_000_000 || quick {
        1
    } else {
        3
    };
    let rss_reset = reset_peak_rss();
    let mut best: Option<LoadCase> = None;
    for _ in 0..repeats {
        let t = Instant::now();
        let (ds, stages) = twotower_data::load_dataset_timed(&data, &features, &base)
            .with_context(|| format!("loading {}", path.display()))?;
        let tf = Instant::now();
        let fp = ds.fingerprint();
        let fingerprint_seconds = tf.elapsed().as_secs_f64();
        let seconds = t.elapsed().as_secs_f64();
        let n = ds.train.len() + ds.test.len();
        let c = LoadCase {
            source: source.to_string(),
            rows: n,
            users: ds.users.len(),
            items: ds.items.len(),
            repeats,
            seconds,
            rows_per_second: n as f64 / seconds,
            stages,
            fingerprint_seconds,
            fingerprint: fp,
            peak_rss_mib: None,
        };
        drop(ds);
        if best.as_ref().is_none_or(|b| c.seconds < b.seconds) {
            best = Some(c);
        }
    }
    let mut best = best.expect("at least one repeat");
    best.peak_rss_mib = peak_rss_bytes()
        .filter(|_| rss_reset)
        .map(|b| b as f64 / (1024.0 * 1024.0));
    Ok(best)
}

#[cfg(test)]
mod tests {
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
