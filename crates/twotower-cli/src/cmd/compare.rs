//! `twotower compare`: train config variants × seeds exactly as `twotower
//! train` does, then write a comparison report (mean ± sample std over seeds
//! beside the most-popular baseline, recall by popularity decile, loss
//! curves) — see the `twotower-report` crate.
//!
//! Layout of `--out DIR`: `runs/<variant>/seed<k>/` (ordinary run
//! directories plus `recall_by_popularity.json`), `report.md`,
//! `report.json`, `recall_by_popularity_decile.{png,svg}`,
//! `training_loss.{png,svg}`. Rerunning the same command reuses the runs
//! already finished with the same config and resumes an interrupted one.
//!
//! `--split validation` is the hyper-parameter search of EVALUATION.md's
//! protocol: each run is the search phase alone (`train.refit = false`:
//! early-stopped on the validation split carved from train, as `train`
//! carves it) and is evaluated on that validation split, with the items
//! first seen after the validation cut out of vocabulary, as the search
//! phase sees them. Its figures equal the run's best validation epoch. Pick
//! the variant there, then report it with `--split test`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use twotower::config::Config;
use twotower::eval::{DotScorer, PopularityScorer};
use twotower::run::{self, RunInfo};
use twotower::train::{
    encode_all, eval_set_sampled, history_feature, search_dataset, train, validation_split,
    TrainOptions,
};
use twotower_report::{self as report, ReportInput, RunBins, VariantSpec, REPORT_FORMAT_VERSION};

/// Largest `--seeds`: a report of more seeds than this is a mistake, not a study.
pub const MAX_SEEDS: usize = 1000;

/// Arguments of `twotower compare`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset + model config (TOML) shared by every variant. Without it: the built-in synthetic data.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Variants to compare, each `NAME=KEY=VALUE[,KEY=VALUE...]` (`NAME=` for none), e.g.
    /// `--variants "no_logq=loss.logq=false" "logq_ssl=loss.logq=true,ssl.enabled=true"`.
    #[arg(long, num_args = 1.., required = true, value_name = "NAME=SETS")]
    pub variants: Vec<String>,
    /// Runs per variant, with `train.seed` = seed-base, seed-base + 1, ...
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    pub seed_base: u64,
    /// Override a config key for every variant, before the variant's own (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Output directory (runs/, report.md, report.json, plots).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Cut-off K of the recall-by-popularity-decile plot.
    #[arg(long, default_value_t = 50)]
    pub decile_k: usize,
    /// Retrain every run, even those already finished in --out.
    #[arg(long)]
    pub force: bool,
    /// Print each run's epochs too.
    #[arg(long, short)]
    pub verbose: bool,
    /// The split every run is evaluated on: `test` (EVALUATION.md's test
    /// split; the figures to report), or `validation` (hyper-parameter
    /// search: each run is the search phase alone — `train.refit=false` is
    /// set, so `--set train.refit=...` is refused — evaluated on the
    /// validation split carved from train). An `--out` holding runs of the
    /// other split is refused, `--force` too.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub split: Split,
}

/// `compare --split`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// EVALUATION.md's test split (each run as `twotower train` makes it).
    Test,
    /// The validation split carved from train; the search phase's model.
    Validation,
}

impl Split {
    /// The name in metrics.json (`"split"`) and the report.
    pub fn name(self) -> &'static str {
        match self {
            Split::Test => "test",
            Split::Validation => "validation",
        }
    }
}

/// Popularity bins of the report (deciles).
const N_BINS: usize = 10;

struct Planned {
    spec: VariantSpec,
    /// config of each seed, in seed order
    configs: Vec<(u64, Config)>,
}

/// Runs `twotower compare`.
pub fn run(args: Args) -> anyhow::Result<()> {
    super::check_out_dir(&args.out)?;
    let t0 = Instant::now();
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if args.seeds > MAX_SEEDS {
        bail!(
            "--seeds {}: at most {MAX_SEEDS} (each seed trains every variant once)",
            args.seeds
        );
    }
    if args.decile_k == 0 {
        bail!("--decile-k must be at least 1");
    }
    let seeds: Vec<u64> = (0..args.seeds as u64)
        .map(|i| {
            args.seed_base
                .checked_add(i)
                .context("--seed-base + --seeds overflows u64")
        })
        .collect::<anyhow::Result<_>>()?;
    for o in &args.set {
        if report::override_key(o) == "train.seed" {
            bail!("--set {o}: the seeds come from --seeds/--seed-base; do not set train.seed");
        }
        if args.split == Split::Validation && report::override_key(o) == "train.refit" {
            bail!("--set {o}: --split validation trains the search phase only (it sets train.refit=false itself); do not set train.refit");
        }
    }
    let mut specs: Vec<VariantSpec> = Vec::new();
    for v in &args.variants {
        let spec = report::parse_variant(v)?;
        if specs.iter().any(|s| s.name == spec.name) {
            bail!("variant name `{}` is given twice", spec.name);
        }
        if let Some(o) = spec
            .overrides
            .iter()
            .find(|o| report::override_key(o) == "train.seed")
        {
            bail!(
                "variant {}: `{o}`: the seeds come from --seeds/--seed-base; do not set train.seed",
                spec.name
            );
        }
        if let Some(o) = spec
            .overrides
            .iter()
            .find(|o| args.split == Split::Validation && report::override_key(o) == "train.refit")
        {
            bail!(
                "variant {}: `{o}`: --split validation trains the search phase only (it sets train.refit=false itself); do not set train.refit",
                spec.name
            );
        }
        specs.push(spec);
    }

    // Every config is loaded and checked before anything trains.
    let base = Config::load(args.config.as_deref(), &args.set)?;
    let mut plans = Vec::new();
    for spec in &specs {
        let mut configs = Vec::new();
        for &seed in &seeds {
            let mut o = args.set.clone();
            o.extend(spec.overrides.iter().cloned());
            o.push(format!("train.seed={seed}"));
            o.push("train.progress=false".into());
            if args.split == Split::Validation {
                // the search phase's model: early-stopped on validation
                o.push("train.refit=false".into());
            }
            let cfg = Config::load(args.config.as_deref(), &o)
                .with_context(|| format!("variant {}", spec.name))?;
            if args.split == Split::Validation && !cfg.raw.train.validation {
                bail!(
                    "variant {}: --split validation needs train.validation = true (the validation split is carved by training)",
                    spec.name
                );
            }
            configs.push((seed, cfg));
        }
        plans.push(Planned {
            spec: spec.clone(),
            configs,
        });
    }
    super::set_threads(plans[0].configs[0].1.raw.train.threads)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let flag = Arc::new(AtomicBool::new(false));
    {
        let f = flag.clone();
        let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
    }

    // Group the variants by data (the [data] and [features] sections): the
    // dataset is loaded and split once per group.
    let data_key = |c: &Config| {
        (
            c.doc.get("data").cloned(),
            c.doc.get("features").cloned(),
            c.base_dir.clone(),
        )
    };
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new(); // (representative plan, members)
    for (i, p) in plans.iter().enumerate() {
        let key = data_key(&p.configs[0].1);
        match groups
            .iter_mut()
            .find(|(r, _)| data_key(&plans[*r].configs[0].1) == key)
        {
            Some(g) => g.1.push(i),
            None => groups.push((i, vec![i])),
        }
    }

    let total = plans.len() * seeds.len();
    let mut done = 0usize;
    for (rep, members) in &groups {
        let cfg0 = &plans[*rep].configs[0].1;
        let ds = super::load_data(cfg0, false)?;
        let fingerprint = ds.fingerprint();
        // what the runs are evaluated on: the test split, or the search
        // phase's (fit, validation) pair with its item vocabulary
        let vds = match args.split {
            Split::Test => None,
            Split::Validation => Some(validation_dataset(cfg0, &ds)?),
        };
        let eds = vds.as_ref().unwrap_or(&ds);
        if vds.is_some() {
            eprintln!(
                "validation: {} train interactions before the validation cut / {} validation interactions (the runs are evaluated on these)",
                eds.train.user.len(),
                eds.test.user.len()
            );
        }
        let set = eval_set_sampled(cfg0, eds, &eds.train, &eds.test)?;
        let pop_bins = report::popularity_bin_counts(
            &set,
            &PopularityScorer::from_set(&set),
            args.decile_k,
            N_BINS,
        )?;
        for &pi in members {
            let plan = &plans[pi];
            for (seed, cfg) in &plan.configs {
                done += 1;
                let dir = args
                    .out
                    .join("runs")
                    .join(&plan.spec.name)
                    .join(format!("seed{seed}"));
                let label = format!("[{done}/{total}] {} seed {seed}", plan.spec.name);
                // never mix the splits in one --out, --force or not
                check_split(&dir, args.split)?;
                let existing = if args.force {
                    Existing::None
                } else {
                    existing_run(&dir, cfg, &fingerprint, args.decile_k)?
                };
                let prior = match existing {
                    Existing::Finished => {
                        eprintln!("{label}: finished run found in {}, reused", dir.display());
                        continue;
                    }
                    Existing::StaleBins(info) => {
                        eprintln!(
                            "{label}: finished run found in {} without recall@{} by decile; reloading its final checkpoint (no training) to evaluate it",
                            dir.display(),
                            args.decile_k
                        );
                        Some(*info)
                    }
                    Existing::None => None,
                };
                let t = Instant::now();
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let resume = !args.force && dir.join(twotower::checkpoint::META_FILE).exists();
                let opts = TrainOptions {
                    run_dir: dir.clone(),
                    resume,
                    interrupt: Some(&flag),
                    verbose: args.verbose,
                    stop_after_steps: None,
                    on_epoch: None,
                };
                let outcome = match train(cfg, &ds, &opts) {
                    Ok(o) => o,
                    Err(twotower::train::TrainError::Interrupted { run_dir }) => bail!(
                        "interrupted: checkpoint saved in {}; rerun the same command to continue",
                        run_dir.display()
                    ),
                    Err(e @ twotower::train::TrainError::Resume { .. }) => {
                        return Err(anyhow::Error::new(e).context(format!(
                            "{} holds an unfinished run of another config; use --force to retrain it, or another --out",
                            dir.display()
                        )))
                    }
                    Err(e) => return Err(anyhow::Error::new(e).context(label)),
                };
                let info = prior.unwrap_or_else(|| RunInfo::new(cfg, &outcome));
                run::save_run(&dir, cfg, &ds, &outcome.model, &info)?;
                let mut metrics = run::evaluate_test(cfg, eds, &outcome.model, &info)?;
                if let Some(m) = metrics.as_object_mut() {
                    m.insert("split".into(), serde_json::json!(args.split.name()));
                }
                let history = history_feature(cfg, eds, &eds.train);
                let (uv, iv) = encode_all(&outcome.model, eds, history.as_ref());
                let scorer = DotScorer::new(uv.view(), iv.view())?;
                let model_bins =
                    report::popularity_bin_counts(&set, &scorer, args.decile_k, N_BINS)?;
                report::write_run_bins(
                    &dir,
                    &RunBins {
                        format_version: REPORT_FORMAT_VERSION,
                        k: args.decile_k,
                        n_bins: N_BINS,
                        model: model_bins,
                        most_popular: pop_bins.clone(),
                    },
                )?;
                // metrics.json last: its presence marks a finished run.
                run::write_json(&dir.join(run::METRICS_FILE), &metrics)?;
                let r50 = metrics
                    .get(format!("recall@{}", args.decile_k))
                    .and_then(|v| v.as_f64())
                    .map(|v| format!(", recall@{} {v:.4}", args.decile_k))
                    .unwrap_or_default();
                eprintln!(
                    "{label}: trained in {:.1}s ({:.0} examples/s){r50} ({:.1}s with evaluation)",
                    info.train_seconds,
                    info.examples_per_second,
                    t.elapsed().as_secs_f64()
                );
            }
        }
    }

    let mut variants = Vec::new();
    for plan in &plans {
        let mut runs = Vec::new();
        for (seed, _) in &plan.configs {
            let dir = args
                .out
                .join("runs")
                .join(&plan.spec.name)
                .join(format!("seed{seed}"));
            let mut r = report::read_run(&dir)?;
            // shown relative to the report
            r.dir = Path::new("runs")
                .join(&plan.spec.name)
                .join(format!("seed{seed}"));
            runs.push(r);
        }
        variants.push((
            plan.spec.clone(),
            report::resolved_config(&plan.configs[0].1),
            runs,
        ));
    }
    let mut base_doc = report::resolved_config(&base);
    if let Some(t) = base_doc.as_table_mut() {
        let train = t
            .entry("train")
            .or_insert_with(|| toml::Value::Table(Default::default()));
        if let Some(train) = train.as_table_mut() {
            train.remove("seed");
            train.insert("progress".into(), toml::Value::Boolean(false));
            if args.split == Split::Validation {
                train.insert("refit".into(), toml::Value::Boolean(false));
            }
        }
    }
    let input = ReportInput {
        config_file: args.config.clone(),
        global_overrides: args.set.clone(),
        base_config: base_doc,
        seeds: seeds.clone(),
        variants,
        total_seconds: t0.elapsed().as_secs_f64(),
        split: args.split.name().into(),
    };
    let rep = report::build_report(&input)?;
    report::write_report(&args.out, &rep)?;
    print_summary(&rep);
    println!("report: {}", args.out.join(report::REPORT_MD).display());
    Ok(())
}

/// What `--out` already holds for one run.
enum Existing {
    /// Nothing finished (maybe an interrupted checkpoint).
    None,
    /// A finished run of this config with popularity bins at this K: reuse.
    Finished,
    /// A finished run of this config without usable popularity bins: the
    /// finished checkpoint is reloaded (no training) and evaluated again; its
    /// training figures are kept.
    StaleBins(Box<RunInfo>),
}

/// The search phase's evaluation data: `ds`'s train split cut into the part
/// before the validation cut (`train`) and the validation split (`test`),
/// exactly as `twotower train` carves them, with the items first seen after
/// the cut out of vocabulary ([`search_dataset`]).
fn validation_dataset(
    cfg: &Config,
    ds: &twotower_data::Dataset,
) -> anyhow::Result<twotower_data::Dataset> {
    if ds.train_stream.is_some() {
        bail!("--split validation needs the train split in memory (this run would stream it: raise train.max_memory_gb)");
    }
    // its one error, an empty validation split, hints at train.validation=false
    let (fit, valid) = validation_split(cfg, ds, &ds.train).map_err(|_| {
        anyhow::anyhow!(
            "--split validation: the validation split carved from train is empty (too few interactions per user)"
        )
    })?;
    let mut v = search_dataset(ds, &fit);
    v.train = fit;
    v.test = valid;
    Ok(v)
}

/// Refuses a run directory whose finished run was evaluated on the other
/// split (`metrics.json` `"split"`; absent: the test split, as written
/// before the field): one `--out` never mixes the two.
fn check_split(dir: &Path, split: Split) -> anyhow::Result<()> {
    let mpath = dir.join(run::METRICS_FILE);
    if !mpath.exists() {
        return Ok(());
    }
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&mpath).with_context(|| format!("reading {}", mpath.display()))?,
    )
    .with_context(|| format!("{}: not a twotower metrics file", mpath.display()))?;
    let found = metrics["split"].as_str().unwrap_or("test");
    if found != split.name() {
        bail!(
            "{} holds a finished run evaluated on the {found} split, not the {} split; use another --out",
            dir.display(),
            split.name()
        );
    }
    Ok(())
}

/// Inspects `dir`. A finished run of another config is an error: reusing it
/// would mislabel it, retraining would destroy it.
fn existing_run(dir: &Path, cfg: &Config, fingerprint: &str, k: usize) -> anyhow::Result<Existing> {
    let rpath = dir.join(run::RUN_FILE);
    if !dir.join(run::METRICS_FILE).exists() || !rpath.exists() {
        return Ok(Existing::None);
    }
    let text =
        std::fs::read_to_string(&rpath).with_context(|| format!("reading {}", rpath.display()))?;
    let info: RunInfo = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a twotower run file", rpath.display()))?;
    if info.config != cfg.doc {
        bail!(
            "{} holds a finished run of another config; use --force to retrain it, or another --out",
            dir.display()
        );
    }
    if let Some(fp) = &info.data_fingerprint {
        if twotower_data::fingerprints_differ(fp, fingerprint) {
            bail!(
                "{} holds a finished run trained on other data (data fingerprint {fp}, the data now {fingerprint}); use --force to retrain it, or another --out",
                dir.display()
            );
        }
    }
    let bpath = dir.join(report::BINS_FILE);
    let fresh = bpath.exists() && {
        let text = std::fs::read_to_string(&bpath)
            .with_context(|| format!("reading {}", bpath.display()))?;
        match serde_json::from_str::<RunBins>(&text) {
            Ok(b) => b.k == k && b.n_bins == N_BINS && b.format_version == REPORT_FORMAT_VERSION,
            Err(_) => false,
        }
    };
    if fresh {
        Ok(Existing::Finished)
    } else if dir.join(twotower::checkpoint::META_FILE).exists() {
        Ok(Existing::StaleBins(Box::new(info)))
    } else {
        Ok(Existing::None)
    }
}

/// recall@K and tail_recall@K per variant for every K, on stdout.
fn print_summary(r: &report::Report) {
    let names: Vec<&String> = r
        .metric_names
        .iter()
        .filter(|n| n.starts_with("recall@") || n.starts_with("tail_recall@"))
        .collect();
    let width = r
        .variants
        .iter()
        .map(|v| v.name.len())
        .chain(r.baselines.iter().map(|b| b.name.len()))
        .max()
        .unwrap_or(8)
        .max(8);
    print!("{:<width$}", "variant");
    for n in &names {
        print!(" {:>20}", n);
    }
    println!();
    for v in &r.variants {
        print!("{:<width$}", v.name);
        for n in &names {
            print!(
                " {:>20}",
                report::format_summary(v.metrics.get(*n).and_then(|x| x.as_ref()), 4, v.runs.len())
            );
        }
        println!();
    }
    for b in &r.baselines {
        print!("{:<width$}", b.name);
        for n in &names {
            print!(
                " {:>20}",
                report::format_summary(b.metrics.get(*n).and_then(|x| x.as_ref()), 4, 1)
            );
        }
        println!();
    }
}
