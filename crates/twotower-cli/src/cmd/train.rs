//! `twotower train`: train a two-tower model, then evaluate it per EVALUATION.md.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use twotower::config::Config;
use twotower::run::{self, RunInfo};
use twotower::train::{train, TrainOptions};

/// Arguments of `twotower train`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset + model config (TOML). Without it: the built-in synthetic data.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override any config key, e.g. `--set loss.temperature=0.1` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run directory (checkpoint, epoch log, model, metrics.json).
    #[arg(long, short, default_value = "runs/latest")]
    pub out: PathBuf,
    /// Continue the interrupted run in --out.
    #[arg(long)]
    pub resume: bool,
    /// Replace a finished run already in --out.
    #[arg(long)]
    pub force: bool,
    /// Print only the final metrics.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `twotower train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = Config::load(args.config.as_deref(), &args.set)?;
    super::set_threads(cfg.raw.train.threads)?;
    let out = &args.out;
    super::check_out_dir(out)?;
    if !args.resume && out.join(run::RUN_FILE).exists() && !args.force {
        // a finished run: there is nothing to resume
        bail!(
            "{} already holds a finished run (see its metrics.json); use --force to replace it, \
             or another --out",
            out.display()
        );
    }
    if !args.resume && out.join(twotower::checkpoint::META_FILE).exists() && !args.force {
        bail!(
            "{} already holds a run; use --resume to continue it, --force to replace it, or another --out",
            out.display()
        );
    }
    if args.resume && !out.join(twotower::checkpoint::META_FILE).exists() {
        bail!("--resume: {} holds no checkpoint", out.display());
    }
    if args.resume && out.join(run::RUN_FILE).exists() {
        // run.json is written only once training has finished
        bail!(
            "--resume: the run in {} has already finished (see its metrics.json; `twotower eval --run` \
             re-evaluates it); use --force without --resume to train it again",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ds = super::load_data(&cfg, args.quiet)?;

    let flag = Arc::new(AtomicBool::new(false));
    {
        let f = flag.clone();
        // A second Ctrl-C while saving is ignored; the save is atomic anyway.
        let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
    }
    let mut cfg_run = cfg.clone();
    if args.quiet {
        cfg_run.raw.train.progress = false;
    }
    let opts = TrainOptions {
        run_dir: out.clone(),
        resume: args.resume,
        interrupt: Some(&flag),
        verbose: !args.quiet,
        stop_after_steps: None,
    };
    let outcome = train(&cfg_run, &ds, &opts)?;
    let info = RunInfo::new(&cfg, &outcome);
    run::save_run(out, &cfg, &ds, &outcome.model, &info)?;
    if !args.quiet {
        eprintln!(
            "trained in {:.1}s ({:.0} examples/s); evaluating on the test split...",
            outcome.train_seconds, outcome.examples_per_second
        );
    }
    let metrics = run::evaluate_test(&cfg, &ds, &outcome.model, &info)?;
    run::write_json(&out.join(run::METRICS_FILE), &metrics)?;
    super::print_metrics(&metrics, &cfg.raw.eval.ks);
    println!("run directory: {}", out.display());
    Ok(())
}
