//! `twotower recommend`: top-K items for a user.

use std::path::PathBuf;

use anyhow::{bail, Context};
use twotower_serve::{QueryError, Served};

/// Arguments of `twotower recommend`.
#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `twotower train`.
    #[arg(long)]
    pub run: PathBuf,
    /// The user's id as written in the data (any new id for a user the
    /// model has not seen; optional with --items).
    #[arg(long, required_unless_present_any = ["items", "queries"])]
    pub user: Option<String>,
    /// The items the user interacted with, oldest first, as item ids
    /// (`ID,ID,...`): the history feature's bag, so a user the model has
    /// never seen gets a vector with no retraining. Needs a model with
    /// `model.history.enabled`; unknown ids are reported and left out.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub items: Option<Vec<String>>,
    /// Many new users at once: a text file with one user per line, that
    /// user's item ids oldest first, comma-separated (`ID,ID,...`; blank
    /// lines skipped). Prints TSV `query` (the line number), `rank`, `item`,
    /// `score`; each user's listed items are excluded. Needs a history model.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["user", "items", "features"])]
    pub queries: Option<PathBuf>,
    /// Number of items.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Search an HNSW index (its recall against exact top-K is printed) instead of exact scoring.
    #[arg(long)]
    pub ann: bool,
    /// HNSW search breadth (ef) of --ann: larger gives higher recall and slower searches.
    #[arg(long, value_name = "N", requires = "ann", default_value_t = super::serve::DEFAULT_EF, value_parser = super::serve::parse_ef)]
    pub ef: usize,
    /// Keep the items the user has in the train split.
    #[arg(long)]
    pub include_seen: bool,
    /// User feature value NAME=VALUE (repeatable), for a user not in the data or to override one.
    #[arg(long = "feature", value_name = "NAME=VALUE")]
    pub features: Vec<String>,
    /// Rank the items of this table instead of the run's item table: a
    /// file with the layout of the config's `[data.items]` (same columns
    /// and format), e.g. a catalog that grew after training. New items are
    /// scored from their features (the item id's out-of-vocabulary row, as
    /// cold items); history ids (`--items`, `--queries`) are still the
    /// training data's items.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

/// `NAME=VALUE` pairs of `--feature`.
fn parse_features(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    raw.iter()
        .map(|o| {
            o.split_once('=')
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--feature {o:?}: expected NAME=VALUE"))
        })
        .collect()
}

/// Runs `twotower recommend`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.k == 0 {
        anyhow::bail!("-k must be at least 1");
    }
    let features = parse_features(&args.features)?;
    let served = super::serve::load(&args.run)?;
    if let Some(path) = &args.queries {
        return queries(&served, path, &args);
    }
    let given = match &args.items {
        Some(ids) => {
            if served.history.is_none() {
                return Err(QueryError::NoHistoryFeature {
                    what: "--items".into(),
                }
                .into());
            }
            let (items, notes) = served.resolve_items(ids, "--items")?;
            super::serve::warn(&notes);
            Some(items)
        }
        None => None,
    };
    let user = args.user.clone().unwrap_or_else(|| "(new user)".into());
    let q = served.user_vector(&user, &features, given.as_deref(), "--feature")?;
    super::serve::warn(&q.notes);
    let catalog = super::serve::catalog(&served, args.catalog.as_deref())?;
    let seen: &[u32] = match (&given, q.user, args.include_seen) {
        (_, _, true) => &[],
        // the items the user named are seen
        (Some(items), _, false) => items,
        (None, Some(u), false) => served.seen(u),
        (None, None, false) => &[],
    };
    let exclude = catalog.map_run_items(seen);
    let users = super::serve::user_vectors(&served);
    let probe = users
        .slice(ndarray::s![..users.nrows().min(200), ..])
        .to_owned();
    let index = super::serve::item_index(
        &served, &catalog, args.ann, args.ef, &probe, args.k, &args.run,
    )?;
    let hits = index.search(&q.vector, args.k, &exclude)?;
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
    super::serve::print_items(&served, &catalog, &hits);
    Ok(())
}

/// `recommend --queries FILE`: top-K for each line's items (a new user each).
fn queries(served: &Served, path: &std::path::Path, args: &Args) -> anyhow::Result<()> {
    if served.history.is_none() {
        bail!(
            "--queries needs a model with a history feature (model.history.enabled = true); \
             this run's user tower has none"
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // a UTF-8 byte-order mark (spreadsheet exports) is not part of the first id
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let catalog = super::serve::catalog(served, args.catalog.as_deref())?;
    let users = super::serve::user_vectors(served);
    let probe = users
        .slice(ndarray::s![..users.nrows().min(200), ..])
        .to_owned();
    let index = super::serve::item_index(
        served, &catalog, args.ann, args.ef, &probe, args.k, &args.run,
    )?;
    let table = catalog.table(served);
    println!("query\trank\titem\tscore");
    let mut out = String::new();
    let mut skipped = 0usize;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let what = format!("{} line {}", path.display(), n + 1);
        let ids: Vec<String> = line.split(',').map(|s| s.trim().to_string()).collect();
        let (mut given, notes) = match served.resolve_items(&ids, &what) {
            Ok(r) => r,
            Err(e @ QueryError::NoKnownItems { .. }) => {
                // one bad line does not cost the others their answers
                eprintln!("warning: {e}; the line is skipped");
                skipped += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        super::serve::warn(&notes);
        let q = served
            .user_vector("", &[], Some(&given), "--feature")
            .with_context(|| what.clone())?;
        let mut exclude = Vec::new();
        if !args.include_seen {
            given.sort_unstable();
            given.dedup();
            exclude = catalog.map_run_items(&given);
        }
        let hits = index.search(&q.vector, args.k, &exclude)?;
        out.clear();
        for (r, (i, s)) in hits.iter().enumerate() {
            use std::fmt::Write;
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{s:.4}",
                n + 1,
                r + 1,
                &table.ids[*i as usize]
            );
        }
        print!("{out}");
    }
    if skipped > 0 {
        eprintln!("note: {skipped} lines had no known item and got no answer");
    }
    Ok(())
}
