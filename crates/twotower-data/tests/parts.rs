//! A table stored as a directory of part files (what Spark, DataFusion or
//! `twotower generate --parts` write) is the table of its parts
//! concatenated in path order: the same dataset — fingerprint included —
//! as the single file with the same rows, in memory and streamed; errors
//! name the part file and its line.

use std::path::Path;

use twotower_data::{
    load_data_config, load_dataset, load_dataset_streamed, write_dataset_parts, DataError, Dataset,
    OutFormat, SyntheticConfig,
};

fn load(dir: &Path, streamed: bool) -> Dataset {
    let (data, features, base) = load_data_config(&dir.join("dataset.toml"), &[]).unwrap();
    if streamed {
        load_dataset_streamed(&data, &features, &base).unwrap()
    } else {
        load_dataset(&data, &features, &base).unwrap()
    }
}

fn small() -> SyntheticConfig {
    SyntheticConfig {
        users: 300,
        items: 500,
        interactions: 6000,
        ..SyntheticConfig::default()
    }
}

fn parted_equals_single(format: OutFormat, ext: &str) {
    let one = tempfile::tempdir().unwrap();
    let four = tempfile::tempdir().unwrap();
    write_dataset_parts(&small(), one.path(), format, 1).unwrap();
    let s = write_dataset_parts(&small(), four.path(), format, 4).unwrap();
    assert_eq!(s.files[2], four.path().join("interactions"));
    let mut parts: Vec<String> = std::fs::read_dir(four.path().join("interactions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        (0..4)
            .map(|k| format!("part-{k:05}.{ext}"))
            .collect::<Vec<_>>()
    );
    let toml = std::fs::read_to_string(four.path().join("dataset.toml")).unwrap();
    assert!(toml.contains("file = \"interactions\""), "{toml}");
    for streamed in [false, true] {
        let (a, b) = (load(one.path(), streamed), load(four.path(), streamed));
        assert_eq!(a.fingerprint(), b.fingerprint(), "streamed: {streamed}");
        assert_eq!(a.train, b.train);
        assert_eq!(a.test, b.test);
        assert_eq!(a.items, b.items);
        assert_eq!(a.report.interaction_rows, 6000);
        assert_eq!(a.report, b.report);
        if streamed {
            let (sa, sb) = (
                a.train_stream.as_ref().unwrap(),
                b.train_stream.as_ref().unwrap(),
            );
            assert_eq!(
                sa.collect(&a.users.ids, &a.items.ids).unwrap(),
                sb.collect(&b.users.ids, &b.items.ids).unwrap()
            );
        }
    }
    // the memory budget's row estimate counts every part
    let (data, _, base) = load_data_config(&four.path().join("dataset.toml"), &[]).unwrap();
    let est = twotower_data::estimate_interaction_rows(&data, &base)
        .unwrap()
        .unwrap();
    match format {
        OutFormat::Parquet => assert_eq!(est, 6000),
        OutFormat::Csv => assert!((5000..7000).contains(&est), "{est}"),
    }
}

#[test]
fn parquet_parts_load_as_the_single_file() {
    parted_equals_single(OutFormat::Parquet, "parquet");
}

#[test]
fn csv_parts_load_as_the_single_file() {
    parted_equals_single(OutFormat::Csv, "csv");
}

#[test]
fn bookkeeping_files_and_empty_parts_are_skipped() {
    let d = tempfile::tempdir().unwrap();
    write_dataset_parts(&small(), d.path(), OutFormat::Csv, 3).unwrap();
    let before = load(d.path(), false).fingerprint();
    let x = d.path().join("interactions");
    std::fs::write(x.join("_SUCCESS"), b"").unwrap();
    std::fs::write(x.join(".part-00000.csv.crc"), b"\x00\x01").unwrap();
    // an empty partition: a header only, and a 0-byte file
    std::fs::write(x.join("part-00003.csv"), "user,item,timestamp\n").unwrap();
    std::fs::write(x.join("part-00004.csv"), "").unwrap();
    assert_eq!(load(d.path(), false).fingerprint(), before);
}

#[test]
fn a_bad_row_names_its_part_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    write_dataset_parts(&small(), d.path(), OutFormat::Csv, 3).unwrap();
    let p = d.path().join("interactions/part-00001.csv");
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str("7,3,yesterday\n");
    let line = text.lines().count();
    std::fs::write(&p, text).unwrap();
    let (data, features, base) = load_data_config(&d.path().join("dataset.toml"), &[]).unwrap();
    for e in [
        load_dataset(&data, &features, &base).unwrap_err(),
        load_dataset_streamed(&data, &features, &base).unwrap_err(),
    ] {
        let m = e.to_string();
        assert!(
            m.contains(&format!("part-00001.csv:{line}")) && m.contains("timestamp"),
            "{m}"
        );
    }
}

#[test]
fn a_directory_without_parts_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    write_dataset_parts(&small(), d.path(), OutFormat::Parquet, 2).unwrap();
    let x = d.path().join("interactions");
    for e in std::fs::read_dir(&x).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    std::fs::write(x.join("_SUCCESS"), b"").unwrap();
    let (data, features, base) = load_data_config(&d.path().join("dataset.toml"), &[]).unwrap();
    let e = load_dataset(&data, &features, &base).unwrap_err();
    assert!(matches!(e, DataError::NoPartFiles { .. }), "{e}");
    assert!(e.to_string().contains("interactions"), "{e}");
}

#[test]
fn parts_replace_an_earlier_partitioned_table_whole() {
    let d = tempfile::tempdir().unwrap();
    write_dataset_parts(&small(), d.path(), OutFormat::Parquet, 5).unwrap();
    write_dataset_parts(&small(), d.path(), OutFormat::Parquet, 2).unwrap();
    let n = std::fs::read_dir(d.path().join("interactions"))
        .unwrap()
        .count();
    assert_eq!(n, 2, "the old table's parts are gone");
    let hidden: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
    let e = write_dataset_parts(&small(), d.path(), OutFormat::Parquet, 0).unwrap_err();
    assert!(e.to_string().contains("parts"), "{e}");
    let e = write_dataset_parts(&small(), d.path(), OutFormat::Parquet, 6001).unwrap_err();
    assert!(e.to_string().contains("6000"), "{e}");
}
