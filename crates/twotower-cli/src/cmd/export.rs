//! `twotower export`: user and item vectors out, for serving elsewhere.

use std::path::PathBuf;

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
    /// Export the items of this table instead of the run's item table: a
    /// file with the layout of the config's `[data.items]` (same columns
    /// and format), e.g. a catalog that grew after training. Items the
    /// model was trained on keep their vectors; new items get vectors from
    /// their features (the item id's out-of-vocabulary row, as cold items).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

/// Runs `twotower export`.
pub fn run(args: Args) -> anyhow::Result<()> {
    super::check_out_dir(&args.out)?;
    let served = super::serve::load(&args.run)?;
    let catalog = super::serve::catalog(&served, args.catalog.as_deref())?;
    let users = super::serve::user_vectors(&served);
    let run = &served.run;
    let items = &catalog.vectors;
    let info = format!(
        "twotower {} run {}",
        run.info.twotower_version,
        args.run.display()
    );
    let m = twotower::export::export_vectors(
        &args.out,
        items.view(),
        &catalog.table(&served).ids.to_vec(),
        users.view(),
        &run.dataset.users.ids.to_vec(),
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
