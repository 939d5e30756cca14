//! `twotower recommend`: top-K items for a user.

use std::path::PathBuf;

use twotower::run::load_run;

/// Arguments of `twotower recommend`.
#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `twotower train`.
    #[arg(long)]
    pub run: PathBuf,
    /// The user's id as written in the data (any new id for a user the
    /// model has not seen; optional with --items).
    #[arg(long, required_unless_present = "items")]
    pub user: Option<String>,
    /// The items the user interacted with, oldest first, as item ids
    /// (`ID,ID,...`): the history feature's bag, so a user the model has
    /// never seen gets a vector with no retraining. Needs a model with
    /// `model.history.enabled`; unknown ids are reported and left out.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub items: Option<Vec<String>>,
    /// Number of items.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Search an HNSW index (its recall against exact top-K is printed) instead of exact scoring.
    #[arg(long)]
    pub ann: bool,
    /// Keep the items the user has in the train split.
    #[arg(long)]
    pub include_seen: bool,
    /// User feature value NAME=VALUE (repeatable), for a user not in the data or to override one.
    #[arg(long = "feature", value_name = "NAME=VALUE")]
    pub features: Vec<String>,
}

/// Runs `twotower recommend`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.k == 0 {
        anyhow::bail!("-k must be at least 1");
    }
    let run = load_run(&args.run)?;
    super::set_threads(run.config.raw.train.threads)?;
    let given = match &args.items {
        Some(ids) => Some(super::serve::resolve_items(&run, ids)?),
        None => None,
    };
    let user = args.user.clone().unwrap_or_else(|| "(new user)".into());
    let (query, idx) = super::serve::user_vector(&run, &user, &args.features, given.as_deref())?;
    let mut exclude: Vec<u32> = Vec::new();
    if let (Some(items), false) = (&given, args.include_seen) {
        // the items the user named are seen
        exclude.extend_from_slice(items);
        exclude.sort_unstable();
        exclude.dedup();
    } else if let (Some(u), false) = (idx, args.include_seen) {
        for (uu, ii) in run.dataset.train.user.iter().zip(&run.dataset.train.item) {
            if *uu == u {
                exclude.push(*ii);
            }
        }
        exclude.sort_unstable();
        exclude.dedup();
    }
    let (users, items) = super::serve::vectors(&run);
    let probe = users
        .slice(ndarray::s![..users.nrows().min(200), ..])
        .to_owned();
    let index = super::serve::item_index(&run, &items, args.ann, &probe, args.k, exclude.len())?;
    let hits = index.search(&query, args.k, &exclude)?;
    if !hits.is_empty() && hits.len() < args.k {
        eprintln!(
            "note: {} items listed, fewer than -k {}: the catalog minus the user's {} train items",
            hits.len(),
            args.k,
            exclude.len()
        );
    }
    if hits.is_empty() {
        eprintln!(
            "note: no item left to recommend: user {:?} has all {} catalog items in train (--include-seen keeps them)",
            user,
            exclude.len()
        );
    }
    super::serve::print_items(&run, &hits);
    Ok(())
}
