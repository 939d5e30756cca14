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
}

/// Runs `twotower eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let loaded = run::load_run_with_data(&args.run).context(
        "eval re-reads the data the run was trained on (the serving artifact holds no test split)",
    )?;
    super::set_threads(loaded.config.raw.train.threads)?;
    let metrics = run::evaluate_test(&loaded.config, &loaded.dataset, &loaded.model, &loaded.info)?;
    run::write_json(&args.run.join(run::METRICS_FILE), &metrics)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&metrics)?);
    } else {
        super::print_metrics(&metrics, &loaded.config.raw.eval.ks);
    }
    Ok(())
}
