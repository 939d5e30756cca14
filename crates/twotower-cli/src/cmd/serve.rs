//! Shared pieces of the serving commands (`recommend`, `similar`, `export`,
//! `serve`): loading a run for queries, the catalog and its index
//! ([`twotower_serve`]), and printing ranked items.

use std::path::Path;

use anyhow::Context;
use ndarray::Array2;
use twotower::index::VectorIndex;
use twotower::run::load_run;
use twotower_serve::{Catalog, Served};

/// Loads the run in `dir` for queries (its artifact; a format-1 run
/// through its data).
pub fn load(dir: &Path) -> anyhow::Result<Served> {
    let run = load_run(dir)?;
    super::set_threads(run.config.raw.train.threads)?;
    Ok(Served::new(run))
}

/// The run's items, or the item table in `file` (the layout of the
/// config's `[data.items]`) scored from its features; a summary of a
/// grown catalog goes to stderr.
pub fn catalog(served: &Served, file: Option<&Path>) -> anyhow::Result<Catalog> {
    let Some(file) = file else {
        return Ok(Catalog::of_run(served));
    };
    let c = Catalog::from_file(served, file).context("--catalog")?;
    eprintln!(
        "catalog {}: {} items, {} of them in the training data, {} new (scored from their features){}",
        file.display(),
        c.len(),
        c.len() - c.n_new,
        c.n_new,
        if c.bad_values > 0 {
            format!(
                "; {} values could not be encoded (or rows were skipped) and count as missing",
                c.bad_values
            )
        } else {
            String::new()
        }
    );
    Ok(c)
}

/// Default HNSW search breadth (ef) of `--ann`.
pub const DEFAULT_EF: usize = 128;

/// Parses `--ef`: a whole number >= 1.
pub fn parse_ef(v: &str) -> Result<usize, String> {
    v.parse()
        .ok()
        .filter(|&e: &usize| e >= 1)
        .ok_or_else(|| format!("{v:?}: expected a whole number >= 1"))
}

/// The index over `catalog`: exact, or HNSW (usearch; loaded from the
/// run's saved `index.usearch` when there is one) searched with breadth
/// `ef`, with its recall@k against exact measured on `probe` queries and
/// printed.
#[allow(clippy::too_many_arguments)]
pub fn item_index(
    served: &Served,
    catalog: &Catalog,
    ann: bool,
    ef: usize,
    probe: &Array2<f32>,
    k: usize,
    run_dir: &Path,
) -> anyhow::Result<Box<dyn VectorIndex>> {
    let saved = run_dir.join(twotower_serve::ann::INDEX_FILE);
    let cfg = twotower_serve::ann::AnnConfig {
        expansion_search: ef,
        ..Default::default()
    };
    let (index, recall) =
        twotower_serve::build_index(catalog, served, ann, probe, k, Some(&saved), &cfg)?;
    if let Some(recall) = recall {
        eprintln!(
            "HNSW index over {} items{}: recall@{k} against exact top-{k} = {recall:.4} at ef {ef} ({} probe queries)",
            catalog.len(),
            if saved.is_file() && !catalog.is_grown() {
                format!(" (loaded from {})", saved.display())
            } else {
                String::new()
            },
            probe.nrows()
        );
    }
    Ok(index)
}

/// The server's state over the run in `run_dir`: the run, its catalog (or
/// the grown table in `catalog_file`) and the index over it (`ann`: HNSW,
/// recall@k printed).
pub fn app_state(
    run_dir: &Path,
    catalog_file: Option<&Path>,
    ann: bool,
    ef: usize,
    k: usize,
) -> anyhow::Result<twotower_serve::http::AppState> {
    let served = load(run_dir)?;
    let catalog = catalog(&served, catalog_file)?;
    let users = user_vectors(&served);
    let probe = users
        .slice(ndarray::s![..users.nrows().min(200), ..])
        .to_owned();
    let index = item_index(&served, &catalog, ann, ef, &probe, k, run_dir)?;
    Ok(twotower_serve::http::AppState {
        served,
        catalog,
        index,
    })
}

/// Worker threads: `given`, else the number of CPUs.
pub fn server_threads(given: Option<usize>) -> usize {
    given.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// The user vectors of a run, `[n_users × d]` ([`Served::user_vectors`]).
pub fn user_vectors(served: &Served) -> Array2<f32> {
    served.user_vectors()
}

/// Prints warnings of a query on stderr.
pub fn warn(notes: &[String]) {
    for n in notes {
        eprintln!("warning: {n}");
    }
}

/// Prints ranked items as TSV: `rank`, `item` (id as written in the data),
/// the item table's `label` column when the config names one (the title for
/// the MovieLens presets), `score` (cosine), `train_clicks` (the item's train interactions: its
/// popularity, 0 = cold) and one column per non-id item feature with the
/// item's values as the model saw them (multi-valued joined by `|`; `-` =
/// missing or out of vocabulary).
pub fn print_items(served: &Served, catalog: &Catalog, hits: &[(u32, f32)]) {
    let items = catalog.table(served);
    let feats: Vec<_> = items.features.iter().filter(|f| !f.is_id).collect();
    let clicks = &catalog.clicks;
    let labels = items.labels.as_ref();
    let mut header = String::from("rank\titem");
    if let Some((name, _)) = labels {
        header.push('\t');
        header.push_str(name);
    }
    header.push_str("\tscore\ttrain_clicks");
    for f in &feats {
        header.push('\t');
        header.push_str(&f.name);
    }
    println!("{header}");
    for (r, &(i, s)) in hits.iter().enumerate() {
        let i = i as usize;
        let mut line = format!("{}\t{}", r + 1, &items.ids[i]);
        if let Some((_, text)) = labels {
            push_field(&mut line, &text[i]);
        }
        line.push_str(&format!("\t{s:.4}\t{}", clicks[i]));
        for f in &feats {
            let vals: Vec<&str> = f
                .row(i)
                .iter()
                .filter(|&&v| v != 0)
                .filter_map(|&v| f.vocab.token(v))
                .collect();
            let joined = vals.join("|");
            push_field(&mut line, if vals.is_empty() { "-" } else { &joined });
        }
        println!("{line}");
    }
}

/// Appends a tab and `text` as one TSV field: a tab or line break inside it
/// would shift the columns, so control characters become spaces.
fn push_field(line: &mut String, text: &str) {
    line.push('\t');
    line.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c }));
}
