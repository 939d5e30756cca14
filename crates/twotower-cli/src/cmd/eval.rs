//! `twotower eval`: evaluate a trained run per EVALUATION.md.

use std::path::PathBuf;

use anyhow::Context;
use twotower::run;

/// Arguments of `twotower eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `twotower train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Print the metrics as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Override an `[eval]` key of the run's config for this evaluation,
    /// e.g. `--set eval.retrieval=hnsw --set eval.ann_ef=512` (repeatable;
    /// other sections are the trained model's and cannot change).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Where `eval --set ...` keeps the metrics.json the run was trained with
/// before it writes the new one.
pub const TRAIN_METRICS_FILE: &str = "metrics.train.json";

/// Runs `twotower eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let loaded = run::load_run_with_data(&args.run).context(
        "eval re-reads the data the run was trained on (the serving artifact holds no test split)",
    )?;
    let config = loaded.config.with_eval_overrides(&args.set)?;
    super::set_threads(config.raw.train.threads)?;
    let metrics = run::evaluate_run_dir(
        &args.run,
        &config,
        &loaded.dataset,
        &loaded.model,
        &loaded.info,
    )?;
    let path = args.run.join(run::METRICS_FILE);
    // evaluated another way (--set): keep the training run's own figures
    // once, beside the new ones
    let kept = args.run.join(TRAIN_METRICS_FILE);
    if !args.set.is_empty() && path.is_file() && !kept.exists() {
        std::fs::copy(&path, &kept)
            .with_context(|| format!("keeping {} as {}", path.display(), kept.display()))?;
        eprintln!(
            "eval: the training run's metrics are kept in {}",
            kept.display()
        );
    }
    run::write_json(&path, &metrics)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&metrics)?);
    } else {
        super::print_metrics(&metrics, &config.raw.eval.ks);
    }
    Ok(())
}
