//! `twotower artifact`: writes (or rewrites) the self-contained serving
//! artifact of a run, reading the data it was trained on once. Runs of run
//! format 1 (written before the artifact existed) need it to serve without
//! their data; `train` and `compare` write it themselves.

use std::path::PathBuf;

use twotower::run;

/// Arguments of `twotower artifact`.
#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `twotower train`.
    #[arg(long)]
    pub run: PathBuf,
}

/// Runs `twotower artifact`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let loaded = run::load_run_with_data(&args.run)?;
    super::set_threads(loaded.config.raw.train.threads)?;
    run::save_run(
        &args.run,
        &loaded.config,
        &loaded.dataset,
        &loaded.model,
        &loaded.info,
    )?;
    println!(
        "wrote the serving artifact of {} ({} users, {} items, {} train interactions): \
         recommend, similar, export and serve no longer read the data files",
        args.run.display(),
        loaded.dataset.users.len(),
        loaded.dataset.items.len(),
        loaded.dataset.train.len()
    );
    Ok(())
}
