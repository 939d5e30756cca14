//! `twotower bench`: training throughput (real config and synthetic catalogs
//! of growing size, with and without SSL) with a per-phase time split, peak
//! memory, allocations per step, evaluation throughput against a plain GEMM,
//! and ingestion rows/s. Prints a table and writes everything as JSON.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use twotower::augment::{AugmentConfig, Augmenter, MaskingPattern, SeedScope};
use twotower::bench::{
    embedding_state_bytes, eval_throughput, peak_rss_bytes, reset_peak_rss, run_steps,
    synthetic_side, synthetic_spec, EvalReport, PairSource, StepReport, StepSetup, SyntheticColumn,
};
use twotower::config::Config;
use twotower::model::{LossConfig, TwoTower};
use twotower::optim::{OptimConfig, Optimizer, SparseOptimizerKind};
use twotower::train;

/// Arguments of `twotower bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Real-data config whose training throughput is measured (batch size,
    /// features and model from the config). Skipped when the file is missing.
    #[arg(long, default_value = "configs/ml-100k.toml")]
    pub config: PathBuf,
    /// Synthetic catalog sizes (suffixes k and M allowed).
    #[arg(long, value_delimiter = ',', default_value = "10k,100k,1M,4M")]
    pub items: Vec<String>,
    /// Synthetic users (fixed, so that only the catalog grows).
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    /// Synthetic main batch size B.
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
    /// Synthetic embedding dimension of every feature.
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Measured steps per repeat (synthetic; the real config runs 8× as many, its steps are small).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Unmeasured warm-up steps before the repeats.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Repeats; the median is reported (shared or virtual machines vary by
    /// ±10 % from one window to the next).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Which training runs: `off`, `on` or `both` (without and with SSL).
    #[arg(long, default_value = "both")]
    pub ssl: String,
    /// Users × items of the evaluation benchmark (vectors of dimension 64).
    #[arg(long, default_value_t = 2048)]
    pub eval_users: usize,
    /// Catalog size of the evaluation benchmark.
    #[arg(long, default_value = "200k")]
    pub eval_items: String,
    /// Rows of the ingestion benchmark (0 = skip).
    #[arg(long, default_value = "1M")]
    pub ingest_rows: String,
    /// Threads for rayon and the GEMM (default 2, the reference figures' setting).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// A short run: catalogs 10k and 100k, fewer steps, smaller eval and ingest.
    #[arg(long)]
    pub quick: bool,
    /// Where the JSON report goes.
    #[arg(long, default_value = "runs/bench.json")]
    pub out: PathBuf,
}

/// One training-throughput measurement.
#[derive(Serialize)]
struct TrainCase {
    name: String,
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
    train: Vec<TrainCase>,
    eval: Option<EvalReport>,
    ingest: Vec<IngestCase>,
}

fn parse_count(s: &str) -> anyhow::Result<usize> {
    let t = s.trim();
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000usize),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000usize),
        _ => (t, 1usize),
    };
    let v: f64 = num
        .parse()
        .with_context(|| format!("`{s}` is not a count (e.g. 10000, 10k, 4M)"))?;
    if !(v.is_finite() && v >= 0.0) {
        bail!("`{s}` is not a count (e.g. 10000, 10k, 4M)");
    }
    Ok((v * mul as f64).round() as usize)
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
    println!(
        "{:<26} {:>9.0} ex/s {:>8.2} ms/step | gather {:.2} fwd {:.2} loss {:.2} bwd {:.2} ssl-aug {:.2} ssl {:.2} sparse {:.2} dense {:.2} | allocs/step {:.1} | peak {} MiB (emb+opt {:.0} MiB)",
        c.name,
        c.report.examples_per_second,
        c.report.ms_per_step,
        p.gather,
        p.forward,
        p.loss,
        p.backward,
        p.ssl_augment,
        p.ssl_compute,
        p.sparse_update,
        p.dense_update,
        c.report.allocations_per_step,
        c.peak_rss_mib
            .map(|m| format!("{m:.0}"))
            .unwrap_or_else(|| "?".into()),
        c.embedding_state_mib,
    );
}

/// Runs `twotower bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    super::set_threads(args.threads)?;
    let ssl_modes: Vec<bool> = match args.ssl.as_str() {
        "off" => vec![false],
        "on" => vec![true],
        "both" => vec![false, true],
        other => bail!("--ssl must be off, on or both, not `{other}`"),
    };
    let mut sizes = args
        .items
        .iter()
        .map(|s| parse_count(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (mut steps, mut warmup, mut repeats) = (args.steps, args.warmup, args.repeats);
    let mut eval_items = parse_count(&args.eval_items)?;
    let mut eval_users = args.eval_users;
    let mut ingest_rows = parse_count(&args.ingest_rows)?;
    if args.quick {
        sizes.retain(|&n| n <= 100_000);
        steps = steps.min(8);
        warmup = warmup.min(2);
        repeats = repeats.min(3);
        eval_items = eval_items.min(20_000);
        eval_users = eval_users.min(1024);
        ingest_rows = ingest_rows.min(200_000);
    }
    if steps == 0 || repeats == 0 || args.batch_size == 0 || args.dim == 0 || args.users == 0 {
        bail!("--steps, --repeats, --batch-size, --dim and --users must be > 0");
    }
    if sizes.contains(&0) {
        bail!("--items: a catalog needs at least one item");
    }
    let mut report = Report {
        twotower_version: env!("CARGO_PKG_VERSION").to_string(),
        date_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        machine: machine(args.threads),
        train: Vec::new(),
        eval: None,
        ingest: Vec::new(),
    };
    println!(
        "machine: {} ({} logical CPUs), {} threads, load {}",
        report.machine.cpu,
        report.machine.logical_cpus,
        args.threads,
        report
            .machine
            .load_average_at_start
            .as_deref()
            .unwrap_or("?")
    );

    // ---- the real config
    if args.config.exists() {
        for &ssl in &ssl_modes {
            let c = real_case(&args.config, ssl, warmup * 8, steps * 8, repeats)?;
            print_case(&c);
            report.train.push(c);
        }
    } else {
        println!(
            "{} not found: skipping the real-data throughput (pass --config)",
            args.config.display()
        );
    }

    // ---- synthetic catalogs
    let users = synthetic_side(args.users, args.dim, 11);
    for &n in &sizes {
        for &ssl in &ssl_modes {
            let c = synthetic_case(&users, n, &args, ssl, warmup, steps, repeats)?;
            print_case(&c);
            report.train.push(c);
        }
    }
    for &ssl in &ssl_modes {
        let cases: Vec<&TrainCase> = report
            .train
            .iter()
            .filter(|c| c.name.starts_with("synthetic") && c.ssl == ssl)
            .collect();
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
    if eval_items > 0 && eval_users > 0 {
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

    if let Some(dir) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&report)? + "\n";
    twotower::util::atomic_write_bytes(&args.out, json.as_bytes())
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}

fn loss_config(cfg: &Config) -> LossConfig<f32> {
    LossConfig {
        temperature: cfg.raw.loss.temperature as f32,
        mask_accidental_hits: cfg.raw.loss.mask_accidental_hits,
        ssl_temperature: cfg.raw.ssl.temperature as f32,
        ssl_weight: cfg.raw.ssl.weight as f32,
    }
}

fn real_case(
    path: &Path,
    ssl: bool,
    warmup: usize,
    steps: usize,
    repeats: usize,
) -> anyhow::Result<TrainCase> {
    let t = Instant::now();
    let rss_reset = reset_peak_rss();
    let overrides = vec![format!("ssl.enabled={ssl}")];
    let cfg = Config::load(Some(path), &overrides)?;
    let ds = super::load_data(&cfg, true)?;
    let model = train::new_model(&cfg, &ds, 0);
    let opt_cfg = train::optim_config(&cfg);
    let opt = Optimizer::new(&model, &opt_cfg);
    let mut counts = vec![0u32; ds.items.ids.len()];
    for &i in &ds.train.item {
        counts[i as usize] += 1;
    }
    let b = cfg.raw.train.batch_size;
    let m = if cfg.raw.ssl.batch_size > 0 {
        cfg.raw.ssl.batch_size
    } else {
        b
    };
    let aug = train::augmenter(&cfg, &ds, &ds.train)?.map(|a| (a, m));
    let emb = embedding_state_bytes(&model, opt_cfg.sparse);
    let mut setup = StepSetup {
        model,
        opt,
        user_columns: train::columns(&ds.users.features),
        item_columns: train::columns(&ds.items.features),
        n_users: ds.users.ids.len(),
        n_items: ds.items.ids.len(),
        pairs: PairSource::List(train::pairs(&ds.train)),
        item_counts: cfg.raw.loss.logq.then_some(counts),
        ssl: aug,
        loss: loss_config(&cfg),
        batch_size: b,
        seed: cfg.raw.train.seed,
    };
    let setup_seconds = t.elapsed().as_secs_f64();
    let report = run_steps(&mut setup, warmup, steps, repeats)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    Ok(TrainCase {
        name: format!("{name}{}", if ssl { " +SSL" } else { "" }),
        items: setup.n_items,
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
        };
        Some((
            Augmenter::new(
                acfg,
                vec![false, false, true],
                vec![true, false, false],
                None,
            )?,
            args.batch_size,
        ))
    } else {
        None
    };
    let mut setup = StepSetup {
        model,
        opt,
        user_columns: users.iter().map(SyntheticColumn::column).collect(),
        item_columns: items.iter().map(SyntheticColumn::column).collect(),
        n_users: users[0].offsets.len() - 1,
        n_items,
        pairs: PairSource::Uniform,
        item_counts: Some(vec![1; n_items]),
        ssl: aug,
        loss: LossConfig {
            temperature: 0.1,
            mask_accidental_hits: true,
            ssl_temperature: 0.1,
            ssl_weight: 0.1,
        },
        batch_size: args.batch_size,
        seed: 7,
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
        items: n_items,
        users: setup.n_users,
        ssl,
        ssl_batch: if ssl { args.batch_size } else { 0 },
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
        assert_eq!(human(4_000_000), "4M");
        assert_eq!(human(10_000), "10k");
        assert_eq!(human(1234), "1234");
    }
}
