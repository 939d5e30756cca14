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
    for e in both_errors(d.path()) {
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

/// Both loads of a config's dataset, in memory and streamed, as errors.
fn both_errors(dir: &Path) -> [DataError; 2] {
    let (data, features, base) = load_data_config(&dir.join("dataset.toml"), &[]).unwrap();
    [
        load_dataset(&data, &features, &base).unwrap_err(),
        load_dataset_streamed(&data, &features, &base).unwrap_err(),
    ]
}

/// Regression (trial of 2026-12-08): a 0-byte Parquet part (a write that
/// did not finish: a Parquet file of no rows still has a footer) was
/// skipped like an empty CSV part.
#[test]
fn a_zero_byte_parquet_part_is_an_error_naming_it() {
    let d = tempfile::tempdir().unwrap();
    write_dataset_parts(&small(), d.path(), OutFormat::Parquet, 2).unwrap();
    std::fs::write(d.path().join("interactions/part-00002.parquet"), b"").unwrap();
    for e in both_errors(d.path()) {
        let m = e.to_string();
        assert!(
            m.contains("part-00002.parquet") && m.contains("0 bytes"),
            "{m}"
        );
    }
}

/// Regression (trial of 2026-12-08): a part file of another format than
/// the table's was left out without a word, and its rows with it.
#[test]
fn a_part_of_another_format_is_an_error_naming_it() {
    let d = tempfile::tempdir().unwrap();
    write_dataset_parts(&small(), d.path(), OutFormat::Csv, 2).unwrap();
    let x = d.path().join("interactions");
    std::fs::write(x.join("part-00002.parquet"), b"PAR1").unwrap();
    for e in both_errors(d.path()) {
        assert!(
            matches!(&e, DataError::PartFormat { path, .. } if path.ends_with("part-00002.parquet")),
            "{e}"
        );
    }
    // without a `format` key, two formats are an error too (not the first
    // extension's format deciding)
    std::fs::rename(x.join("part-00002.parquet"), x.join("a-part.parquet")).unwrap();
    let toml = std::fs::read_to_string(d.path().join("dataset.toml")).unwrap();
    let toml = toml.replacen(
        "file = \"interactions\"\nformat = \"csv\"\n",
        "file = \"interactions\"\n",
        1,
    );
    std::fs::write(d.path().join("dataset.toml"), toml).unwrap();
    let e = load_data_config(&d.path().join("dataset.toml"), &[])
        .and_then(|(data, features, base)| load_dataset(&data, &features, &base))
        .unwrap_err();
    assert!(matches!(e, DataError::MixedPartFormats { .. }), "{e}");
    assert!(e.to_string().contains("a-part.parquet"), "{e}");
}

/// Regression (trial of 2026-12-08): a key repeated with another value in
/// a later part of a feature-table directory named the first occurrence's
/// line but not its file.
#[test]
fn a_conflicting_key_across_parts_names_both_files() {
    let d = tempfile::tempdir().unwrap();
    write_dataset_parts(&small(), d.path(), OutFormat::Csv, 2).unwrap();
    let items = std::fs::read_to_string(d.path().join("items.csv")).unwrap();
    let lines: Vec<&str> = items.lines().collect();
    let (header, first_row) = (lines[0], lines[1]);
    let dir = d.path().join("items");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("part-00000.csv"), lines[..200].join("\n") + "\n").unwrap();
    // the first item again, its second column changed
    let mut f: Vec<String> = first_row.split(',').map(str::to_string).collect();
    f[1] = "another".into();
    let part1 = format!("{header}\n{}\n{}\n", lines[200..].join("\n"), f.join(","));
    std::fs::write(dir.join("part-00001.csv"), &part1).unwrap();
    std::fs::remove_file(d.path().join("items.csv")).unwrap();
    let toml = std::fs::read_to_string(d.path().join("dataset.toml")).unwrap();
    std::fs::write(
        d.path().join("dataset.toml"),
        toml.replace("file = \"items.csv\"", "file = \"items\""),
    )
    .unwrap();
    let e = both_errors(d.path())[0].to_string();
    let last = part1.lines().count();
    let want = format!(
        "part-00001.csv:{last}: key `{}` already defined at {}:2 with",
        f[0],
        dir.join("part-00000.csv").display()
    );
    assert!(e.contains(&want), "{e}\nwanted: {want}");
}

/// Regression (trial of 2026-12-08): a part rewritten during streamed
/// training was reported against the table directory, not the part file.
#[test]
fn a_part_changed_under_a_stream_is_named_with_its_line() {
    let d = tempfile::tempdir().unwrap();
    write_dataset_parts(&small(), d.path(), OutFormat::Csv, 3).unwrap();
    let ds = load(d.path(), true);
    let p = d.path().join("interactions/part-00001.csv");
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str("7,no-such-item,1\n");
    let line = text.lines().count();
    std::fs::write(&p, text).unwrap();
    let e = ds
        .train_stream
        .as_ref()
        .unwrap()
        .collect(&ds.users.ids, &ds.items.ids)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("part-00001.csv")
            && e.contains(&format!("line {line}"))
            && e.contains("item id"),
        "{e}"
    );
}
