//! `twotower train`: train a two-tower model, then evaluate it per EVALUATION.md.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use twotower::config::Config;
use twotower::pipeline::{train_to_dir, TrainJob};

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

/// Runs `twotower train` ([`twotower::pipeline::train_to_dir`], the job
/// the Python package runs too).
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = Config::load(args.config.as_deref(), &args.set)?;
    super::set_threads(cfg.raw.train.threads)?;
    super::check_out_dir(&args.out)?;
    let flag = Arc::new(AtomicBool::new(false));
    {
        let f = flag.clone();
        // A second Ctrl-C while saving is ignored; the save is atomic anyway.
        let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
    }
    let job = TrainJob {
        config: &cfg,
        out: args.out.clone(),
        resume: args.resume,
        force: args.force,
        interrupt: Some(&flag),
        verbose: !args.quiet,
        on_epoch: None,
    };
    let metrics = train_to_dir(&job)?;
    super::print_metrics(&metrics, &cfg.raw.eval.ks);
    println!("run directory: {}", args.out.display());
    Ok(())
}
