//! Interaction ingest throughput (rows/s): CSV through the byte-level
//! splitter (quoting off), CSV through the `csv` crate's `ByteRecord`
//! reader (quoting on), `::`-separated text, and Parquet. The data is a
//! generated 1M-interaction table (100k users, 100k items).
//!
//! Run: `cargo bench -p twotower-data --bench ingest`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use twotower_data::{
    read_interactions, write_dataset, InteractionsSpec, OnBadRow, OutFormat, SyntheticConfig,
};

const ROWS: usize = 1_000_000;

fn spec(file: &str, delimiter: Option<&str>, quoting: Option<bool>) -> InteractionsSpec {
    let mut t: InteractionsSpec = toml::from_str(&format!(
        "file = \"{file}\"\nuser = \"user\"\nitem = \"item\"\ntimestamp = \"timestamp\"\n"
    ))
    .unwrap();
    t.delimiter = delimiter.map(str::to_string);
    t.quoting = quoting;
    t
}

fn read(spec: &InteractionsSpec, dir: &Path) -> usize {
    let mut skipped = 0;
    let r = read_interactions(spec, dir, OnBadRow::Error, &mut skipped).unwrap();
    assert_eq!(r.user.len(), ROWS);
    r.user.len()
}

fn ingest(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SyntheticConfig {
        users: 100_000,
        items: 100_000,
        interactions: ROWS,
        ..Default::default()
    };
    write_dataset(&cfg, &dir.path().join("csv"), OutFormat::Csv).unwrap();
    write_dataset(&cfg, &dir.path().join("pq"), OutFormat::Parquet).unwrap();
    // The same rows with a multi-byte delimiter.
    let text = std::fs::read_to_string(dir.path().join("csv/interactions.csv")).unwrap();
    std::fs::write(
        dir.path().join("csv/interactions.dat"),
        text.replace(',', "::"),
    )
    .unwrap();

    let mut g = c.benchmark_group("ingest_interactions");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.sample_size(10);
    let csv_dir = dir.path().join("csv");
    let pq_dir = dir.path().join("pq");
    let plain = spec("interactions.csv", None, Some(false));
    g.bench_function("csv_byte_splitter", |b| b.iter(|| read(&plain, &csv_dir)));
    let quoted = spec("interactions.csv", None, Some(true));
    g.bench_function("csv_crate_byterecord_quoted", |b| {
        b.iter(|| read(&quoted, &csv_dir))
    });
    let colons = spec("interactions.dat", Some("::"), Some(false));
    g.bench_function("double_colon_delimiter", |b| {
        b.iter(|| read(&colons, &csv_dir))
    });
    let pq = spec("interactions.parquet", None, None);
    g.bench_function("parquet", |b| b.iter(|| read(&pq, &pq_dir)));
    g.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
