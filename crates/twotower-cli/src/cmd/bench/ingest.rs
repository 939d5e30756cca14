//! The data cases of `twotower bench`: ingestion rows/s (raw reading of
//! generated CSV and Parquet) and the whole load path (load → encode →
//! split → fingerprint) on a generated dataset or a given config.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use twotower::bench::{peak_rss_bytes, reset_peak_rss};

#[derive(Serialize)]
pub(super) struct IngestCase {
    pub(super) format: String,
    pub(super) rows: usize,
    pub(super) seconds: f64,
    pub(super) rows_per_second: f64,
}

/// One measurement of the whole load path (best of its repeats by total).
#[derive(Serialize)]
pub(super) struct LoadCase {
    /// `parquet`, `csv` or the config's path.
    pub(super) source: String,
    pub(super) rows: usize,
    pub(super) users: usize,
    pub(super) items: usize,
    pub(super) repeats: usize,
    /// Load + fingerprint, wall clock.
    pub(super) seconds: f64,
    pub(super) rows_per_second: f64,
    /// Seconds per stage of the load.
    pub(super) stages: twotower_data::LoadTimings,
    pub(super) fingerprint_seconds: f64,
    /// The data fingerprint (the same before and after a loader change).
    pub(super) fingerprint: String,
    /// Peak RSS of the case (reset before it where the OS allows).
    pub(super) peak_rss_mib: Option<f64>,
}

pub(super) fn ingest(rows: usize) -> anyhow::Result<Vec<IngestCase>> {
    use twotower_data::{
        read_interactions, write_dataset, InteractionsSpec, OnBadRow, OutFormat, SyntheticConfig,
    };
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let cfg = SyntheticConfig {
        users: 100_000,
        items: 100_000,
        interactions: rows,
        ..Default::default()
    };
    let mut out = Vec::new();
    for (format, of, file) in [
        ("csv", OutFormat::Csv, "interactions.csv"),
        ("parquet", OutFormat::Parquet, "interactions.parquet"),
    ] {
        let d = dir.path().join(format);
        write_dataset(&cfg, &d, of)?;
        let spec: InteractionsSpec = toml::from_str(&format!(
            "file = \"{file}\"\nuser = \"user\"\nitem = \"item\"\ntimestamp = \"timestamp\"\n"
        ))?;
        let mut best = f64::INFINITY;
        let mut n = 0;
        for _ in 0..3 {
            let mut skipped = 0;
            let t = Instant::now();
            let r = read_interactions(&spec, &d, OnBadRow::Error, &mut skipped)?;
            best = best.min(t.elapsed().as_secs_f64());
            n = r.user.len();
        }
        out.push(IngestCase {
            format: format.into(),
            rows: n,
            seconds: best,
            rows_per_second: n as f64 / best,
        });
    }
    Ok(out)
}

/// Times the load path on `config`, or on a generated dataset of `rows`
/// interactions written as `format` (`parquet` / `csv`); best of 3 (1 for a
/// config or above 10M rows).
pub(super) fn load_case(
    source: &str,
    config: Option<&Path>,
    rows: usize,
    quick: bool,
) -> anyhow::Result<LoadCase> {
    use twotower_data::{load_data_config, write_dataset, OutFormat, SyntheticConfig};
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let path = match config {
        Some(p) => p.to_path_buf(),
        None => {
            let cfg = SyntheticConfig {
                users: (rows / 50).max(1),
                items: (rows / 10).max(1),
                interactions: rows,
                ..Default::default()
            };
            let format = if source == "csv" {
                OutFormat::Csv
            } else {
                OutFormat::Parquet
            };
            write_dataset(&cfg, dir.path(), format)?;
            dir.path().join("dataset.toml")
        }
    };
    let (data, features, base) = load_data_config(&path, &[])?;
    let repeats = if config.is_some() || rows > 10_000_000 || quick {
        1
    } else {
        3
    };
    let rss_reset = reset_peak_rss();
    let mut best: Option<LoadCase> = None;
    for _ in 0..repeats {
        let t = Instant::now();
        let (ds, stages) = twotower_data::load_dataset_timed(&data, &features, &base)
            .with_context(|| format!("loading {}", path.display()))?;
        let tf = Instant::now();
        let fp = ds.fingerprint();
        let fingerprint_seconds = tf.elapsed().as_secs_f64();
        let seconds = t.elapsed().as_secs_f64();
        let n = ds.train.len() + ds.test.len();
        let c = LoadCase {
            source: source.to_string(),
            rows: n,
            users: ds.users.len(),
            items: ds.items.len(),
            repeats,
            seconds,
            rows_per_second: n as f64 / seconds,
            stages,
            fingerprint_seconds,
            fingerprint: fp,
            peak_rss_mib: None,
        };
        drop(ds);
        if best.as_ref().is_none_or(|b| c.seconds < b.seconds) {
            best = Some(c);
        }
    }
    let mut best = best.expect("at least one repeat");
    best.peak_rss_mib = peak_rss_bytes()
        .filter(|_| rss_reset)
        .map(|b| b as f64 / (1024.0 * 1024.0));
    Ok(best)
}
