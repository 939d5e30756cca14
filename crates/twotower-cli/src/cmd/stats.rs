//! `twotower stats`: dataset statistics of the train split and the ingest report.

use std::path::PathBuf;

use anyhow::Context;
use twotower_data::{load_config_doc, load_dataset, parse_data_sections, stats, Stats};

/// Arguments of `twotower stats`.
#[derive(clap::Args)]
pub struct Args {
    /// Config file (only its `[data]` and `[features]` sections are read).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value, e.g. `--set data.split.test_fraction=0.1` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the statistics as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let doc = load_config_doc(&args.config, &args.set)?;
    let (data, features) = parse_data_sections(&doc, &args.config)?;
    let base = args
        .config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let ds = load_dataset(&data, &features, &base)
        .with_context(|| format!("loading the dataset of {}", args.config.display()))?;
    for w in ds.report.warnings(ds.users.ids.len(), ds.items.ids.len()) {
        eprintln!("warning: {w}");
    }
    let s = stats(&ds);
    let text = if args.json {
        serde_json::to_string_pretty(&s)? + "\n"
    } else {
        render(&s)
    };
    print_out(&text)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn render(s: &Stats) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let r = &s.report;
    let _ = writeln!(o, "users                 {}", s.users);
    let _ = writeln!(o, "items                 {}", s.items);
    let _ = writeln!(o, "interactions          {}", s.interactions);
    let _ = writeln!(o, "train interactions    {}", s.train_interactions);
    let _ = writeln!(
        o,
        "test interactions     {}  ({} test users)",
        s.test_interactions, s.test_users
    );
    let _ = writeln!(
        o,
        "cold items            {}  (no train interaction; {} test interactions on them)",
        s.cold_items, s.cold_test_interactions
    );
    let _ = writeln!(o, "density (train)       {:.6}", s.density);
    let _ = writeln!(
        o,
        "top 1% items          {:.1}% of train interactions ({} items)",
        100.0 * s.top1pct_share,
        s.top1pct_items
    );
    let _ = writeln!(
        o,
        "top 20% items         {:.1}% of train interactions ({} items)",
        100.0 * s.top20pct_share,
        s.top20pct_items
    );
    let _ = writeln!(o, "gini (train counts)   {:.4}", s.gini);
    let _ = writeln!(
        o,
        "popularity histogram (train interactions per item → items):"
    );
    let maxn = s
        .popularity_histogram
        .iter()
        .map(|b| b.items)
        .max()
        .unwrap_or(1)
        .max(1);
    for b in &s.popularity_histogram {
        let label = if b.lo == b.hi {
            format!("{}", b.lo)
        } else {
            format!("{}-{}", b.lo, b.hi)
        };
        let bar = "#".repeat((40 * b.items).div_ceil(maxn));
        let _ = writeln!(o, "  {label:>13}  {:>8}  {bar}", b.items);
    }
    let _ = writeln!(o, "ingest:");
    let _ = writeln!(o, "  interaction rows kept         {}", r.interaction_rows);
    let _ = writeln!(o, "  bad rows skipped              {}", r.skipped_rows);
    let _ = writeln!(
        o,
        "  duplicate (user,item) rows    {}  (kept)",
        r.duplicate_interactions
    );
    let _ = writeln!(
        o,
        "  user / item table rows        {} / {}",
        r.user_table_rows, r.item_table_rows
    );
    let _ = writeln!(
        o,
        "  duplicate feature rows        {}  (identical, ignored)",
        r.duplicate_feature_rows
    );
    let _ = writeln!(
        o,
        "  users without feature row     {}",
        r.users_without_feature_row
    );
    let _ = writeln!(
        o,
        "  items without feature row     {}",
        r.items_without_feature_row
    );
    let _ = writeln!(
        o,
        "  users without interactions    {}",
        r.users_without_interactions
    );
    let _ = writeln!(
        o,
        "  items without interactions    {}",
        r.items_without_interactions
    );
    if r.orphan_long_rows > 0 {
        let _ = writeln!(o, "  long-table rows without entity {}", r.orphan_long_rows);
    }
    let _ = writeln!(o, "features:");
    for f in &r.features {
        let _ = writeln!(
            o,
            "  {:<5} {:<16} {:<18} vocab {:>8}  {}{}{}",
            format!("{:?}", f.side).to_lowercase(),
            f.name,
            format!("{:?}", f.kind),
            f.vocab_len,
            // an id's "missing" is an id without a train interaction; a
            // table feature's is an empty cell or an entity without a row
            if f.is_id {
                format!("missing {:>7}", f.missing)
            } else {
                format!("empty {:>7}  no row {:>7}", f.empty, f.no_row)
            },
            if f.unparsable > 0 {
                format!("  unparsable {}", f.unparsable)
            } else {
                String::new()
            },
            if f.is_id {
                "  (id, train vocabulary)"
            } else {
                ""
            }
        );
    }
    o
}
