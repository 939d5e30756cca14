//! One module per subcommand, plus the helpers they share.
pub mod artifact;
pub mod bench;
pub mod compare;
pub mod eval;
pub mod export;
pub mod generate;
pub mod index;
pub mod mi;
pub mod recommend;
pub mod scale;
pub mod serve;
pub mod serve_bench;
pub mod server;
pub mod similar;
pub mod stats;
pub mod train;

use twotower::config::Config;
use twotower_data::Dataset;

/// Sizes rayon's global pool ([`twotower::util::set_threads`]).
pub fn set_threads(threads: usize) -> anyhow::Result<()> {
    twotower::util::set_threads(threads);
    Ok(())
}

/// Loads and encodes the dataset of a config, with a one-line summary
/// ([`twotower::pipeline::load_data`]).
pub fn load_data(cfg: &Config, quiet: bool) -> anyhow::Result<Dataset> {
    Ok(twotower::pipeline::load_data(cfg, !quiet)?)
}

/// Checks an `--out` directory before any work: it, and the nearest of its
/// ancestors that exists, must be directories (a file there made the write
/// fail at the end with a bare "File exists").
pub fn check_out_dir(out: &std::path::Path) -> anyhow::Result<()> {
    check_dir_flag("--out", out)
}

/// [`check_out_dir`] for a directory given by another flag (`flag`).
pub fn check_dir_flag(flag: &str, out: &std::path::Path) -> anyhow::Result<()> {
    if let Some(p) = out.ancestors().find(|p| p.exists()) {
        if p == out && !p.is_dir() {
            anyhow::bail!("{flag} {}: is a file, expected a directory", out.display());
        }
        if !p.is_dir() {
            anyhow::bail!(
                "{flag} {}: {} is a file, so the directory cannot be created",
                out.display(),
                p.display()
            );
        }
    }
    Ok(())
}

/// [`check_out_dir`] for the folder of an `--out` file.
pub fn check_out_file_parent(file: &std::path::Path) -> anyhow::Result<()> {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => {
            check_out_dir(p).map_err(|e| anyhow::anyhow!("{e} (for {})", file.display()))
        }
        _ => Ok(()),
    }
}

/// The K of a metric name `name@K` (for ordering; 0 without one).
pub fn k_of(name: &str) -> usize {
    name.rsplit_once('@')
        .and_then(|(_, k)| k.parse().ok())
        .unwrap_or(0)
}

/// Prints the model's metrics beside the most-popular baseline (approximate
/// figures, `eval.retrieval = "hnsw"`, under a line saying so, with the
/// index's recall against exact top-K).
pub fn print_metrics(m: &serde_json::Value, ks: &[usize]) {
    let pop = m.get("most_popular");
    if let (Some(n), Some(all)) = (
        m.get("n_test_users").and_then(|v| v.as_u64()),
        m.get("eval_sampled_from_users").and_then(|v| v.as_u64()),
    ) {
        println!("evaluated on a sample of {n} of {all} test users (eval.max_users)");
    }
    let approximate = m.get("approximate").and_then(|v| v.as_bool()) == Some(true);
    if approximate {
        let ann = m.get("ann");
        let num = |key: &str| ann.and_then(|a| a.get(key)).and_then(|v| v.as_u64());
        println!(
            "APPROXIMATE: ranked through an HNSW index (eval.retrieval = \"hnsw\", ef {}), not exactly",
            num("ef").map_or("?".into(), |e| e.to_string())
        );
        if let Some(r) = ann
            .and_then(|a| a.get("recall_vs_exact"))
            .and_then(|r| r.as_object())
        {
            let list: Vec<String> = r
                .iter()
                .filter_map(|(k, v)| v.as_f64().map(|v| (k_of(k), format!("{k} {v:.4}"))))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_values()
                .collect();
            println!(
                "index recall against exact top-K on {} users: {}",
                num("recall_users").unwrap_or(0),
                list.join(", ")
            );
        }
    }
    let model = if approximate { "model~" } else { "model" };
    println!("{:<20} {:>10} {:>14}", "metric", model, "most_popular");
    for prefix in twotower::config::METRIC_PREFIXES {
        for k in ks {
            let key = format!("{prefix}@{k}");
            let fmt = |v: Option<&serde_json::Value>| match v.and_then(|v| v.as_f64()) {
                Some(x) => format!("{x:.4}"),
                None => "-".to_string(),
            };
            println!(
                "{:<20} {:>10} {:>14}",
                key,
                fmt(m.get(&key)),
                fmt(pop.and_then(|p| p.get(&key)))
            );
        }
    }
}
