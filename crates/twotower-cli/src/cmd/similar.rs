//! `twotower similar`: nearest items of an item (cosine of item vectors).

use std::path::PathBuf;

use anyhow::anyhow;

/// Arguments of `twotower similar`.
#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `twotower train`.
    #[arg(long)]
    pub run: PathBuf,
    /// The item's id as written in the data.
    #[arg(long)]
    pub item: String,
    /// Number of items.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Search an HNSW index (its recall against exact top-K is printed).
    #[arg(long)]
    pub ann: bool,
    /// HNSW search breadth (ef) of --ann: larger gives higher recall and slower searches.
    #[arg(long, value_name = "N", requires = "ann", default_value_t = super::serve::DEFAULT_EF, value_parser = super::serve::parse_ef)]
    pub ef: usize,
    /// Rank the items of this table (the layout of the config's
    /// `[data.items]`) instead of the run's: a catalog that grew after
    /// training; new items are scored from their features, and `--item`
    /// may be one of them.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

/// Runs `twotower similar`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.k == 0 {
        anyhow::bail!("-k must be at least 1");
    }
    let served = super::serve::load(&args.run)?;
    let catalog = super::serve::catalog(&served, args.catalog.as_deref())?;
    let table = catalog.table(&served);
    let i = table
        .index_of(&args.item)
        .ok_or_else(|| anyhow!("item {:?} is not in the catalog", args.item))?;
    if let Some((name, text)) = &table.labels {
        eprintln!("item {}: {name} {:?}", args.item, text[i as usize]);
    }
    let items = &catalog.vectors;
    let probe = items
        .slice(ndarray::s![..items.nrows().min(200), ..])
        .to_owned();
    let index = super::serve::item_index(
        &served, &catalog, args.ann, args.ef, &probe, args.k, &args.run,
    )?;
    let q = items.row(i as usize).to_vec();
    let hits = index.search(&q, args.k, &[i])?;
    super::serve::print_items(&served, &catalog, &hits);
    Ok(())
}
