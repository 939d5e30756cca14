//! `twotower index`: builds the run's persisted HNSW index (usearch) over
//! its item vectors, reports its recall@k against exact top-k, and saves it
//! as `index.usearch` in the run directory, where `serve --ann`,
//! `recommend --ann` and `similar --ann` load it instead of building one.

use std::path::PathBuf;
use std::time::Instant;

use twotower_serve::ann::{AnnConfig, UsearchIndex, INDEX_FILE};

/// Arguments of `twotower index`.
#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `twotower train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Cut-off of the reported recall against exact top-k.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// HNSW search breadth (ef) of the recall measurement (searches set their own with `--ef`).
    #[arg(long, value_name = "N", default_value_t = super::serve::DEFAULT_EF, value_parser = super::serve::parse_ef)]
    pub ef: usize,
}

/// Runs `twotower index`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.k == 0 {
        anyhow::bail!("-k must be at least 1");
    }
    let served = super::serve::load(&args.run)?;
    let catalog = super::serve::catalog(&served, None)?;
    let rank = catalog.table(&served).id_rank.clone();
    let t = Instant::now();
    let cfg = AnnConfig {
        expansion_search: args.ef,
        ..AnnConfig::default()
    };
    let index = UsearchIndex::build(catalog.vectors.view(), rank.clone(), &cfg)?;
    let build_s = t.elapsed().as_secs_f64();
    let exact = twotower::index::ExactIndex::with_tie_rank(catalog.vectors.clone(), rank)?;
    let users = super::serve::user_vectors(&served);
    let probe = users
        .slice(ndarray::s![..users.nrows().min(1000), ..])
        .to_owned();
    let recall = twotower::index::ann_recall_at_k(&index, &exact, probe.view(), args.k)?;
    let path = args.run.join(INDEX_FILE);
    index.save(&path)?;
    println!(
        "HNSW index over {} items ({} distinct vectors) built in {build_s:.1}s: recall@{} against \
         exact top-{} = {recall:.4} at ef {} ({} users as queries, tied scores count); saved to {}",
        catalog.len(),
        index.n_distinct(),
        args.k,
        args.k,
        args.ef,
        probe.nrows(),
        path.display()
    );
    Ok(())
}
