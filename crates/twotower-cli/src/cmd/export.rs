//! `twotower export`: user and item vectors out, for serving elsewhere.

use std::path::PathBuf;

use twotower::run::load_run;

/// Arguments of `twotower export`.
#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `twotower train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Output directory: item_vectors.npy, user_vectors.npy, item_ids.txt,
    /// user_ids.txt, vectors.safetensors, manifest.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `twotower export`.
pub fn run(args: Args) -> anyhow::Result<()> {
    super::check_out_dir(&args.out)?;
    let run = load_run(&args.run)?;
    super::set_threads(run.config.raw.train.threads)?;
    let (users, items) = super::serve::vectors(&run);
    let info = format!(
        "twotower {} run {}",
        run.info.twotower_version,
        args.run.display()
    );
    let m = twotower::export::export_vectors(
        &args.out,
        items.view(),
        &run.dataset.items.ids,
        users.view(),
        &run.dataset.users.ids,
        &info,
    )?;
    println!(
        "exported {} item and {} user vectors (dim {}) to {}",
        items.nrows(),
        users.nrows(),
        items.ncols(),
        args.out.display()
    );
    let _ = m;
    Ok(())
}
