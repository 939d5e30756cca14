//! Bad and unusual input: every case is either handled as documented
//! (counted in the IngestReport) or rejected with a DataError naming the
//! file, the 1-based line (counting the header) and the column. Never a panic.

use std::path::{Path, PathBuf};

use twotower_data::{load_data_config, load_dataset, stats, DataError, Dataset};

struct Dir(tempfile::TempDir);

impl Dir {
    fn new(files: &[(&str, &[u8])]) -> Dir {
        let d = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(d.path().join(name), body).unwrap();
        }
        Dir(d)
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn load(&self, config: &str) -> Result<Dataset, DataError> {
        let p = self.path().join("dataset.toml");
        std::fs::write(&p, config).unwrap();
        let (d, f, b) = load_data_config(&p, &[])?;
        load_dataset(&d, &f, &b)
    }
}

const INTER: &str = r#"
[data.interactions]
file = "inter.csv"
user = "user"
item = "item"
timestamp = "ts"
"#;

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn wrong_column_count_names_file_and_line_or_is_skipped() {
    let d = Dir::new(&[("inter.csv", b"user,item,ts\nu1,i1,1\nu1,i2\nu2,i1,3\n")]);
    match d.load(INTER) {
        Err(DataError::FieldCount {
            path,
            line,
            expected,
            got,
        }) => {
            assert_eq!(file_name(&path), "inter.csv");
            // Line 1 is the header; "u1,i2" is line 3.
            assert_eq!((line, expected, got), (3, 3, 2));
        }
        other => panic!("expected FieldCount, got {other:?}"),
    }
    let ds = d
        .load(&format!("[data]\non_bad_row = \"skip\"\n{INTER}"))
        .unwrap();
    assert_eq!(ds.report.skipped_rows, 1);
    assert_eq!(ds.report.interaction_rows, 2);
    assert_eq!(stats(&ds).interactions, 2);
}

#[test]
fn non_numeric_timestamp_names_line_and_column() {
    let d = Dir::new(&[("inter.csv", b"user,item,ts\nu1,i1,1\n\nu1,i2,yesterday\n")]);
    let e = d.load(INTER).unwrap_err();
    match &e {
        DataError::Parse {
            path,
            line,
            column,
            got,
            ..
        } => {
            assert_eq!(file_name(path), "inter.csv");
            // The blank line 3 still counts: the bad row is line 4.
            assert_eq!(*line, 4);
            assert_eq!(column, "ts");
            assert_eq!(got, "yesterday");
        }
        other => panic!("expected Parse, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("inter.csv:4") && msg.contains("ts"), "{msg}");
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let d = Dir::new(&[]);
    match d.load(INTER) {
        Err(DataError::Io { path, .. }) => assert_eq!(file_name(&path), "inter.csv"),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn empty_tables_are_rejected() {
    // 0 bytes: an empty file, not a table without rows
    let d = Dir::new(&[("inter.csv", b"")]);
    match d.load(INTER) {
        Err(DataError::EmptyFile { path }) => assert_eq!(file_name(&path), "inter.csv"),
        other => panic!("expected EmptyFile, got {other:?}"),
    }
    for body in [&b"user,item,ts\n"[..], b"\n\n"] {
        let d = Dir::new(&[("inter.csv", body)]);
        match d.load(INTER) {
            Err(DataError::EmptyTable { path }) => assert_eq!(file_name(&path), "inter.csv"),
            other => panic!("expected EmptyTable for {body:?}, got {other:?}"),
        }
    }
}

#[test]
fn unknown_column_lists_the_available_ones() {
    let d = Dir::new(&[("inter.csv", b"user,movie,ts\nu1,i1,1\n")]);
    match d.load(INTER) {
        Err(DataError::UnknownColumn {
            path,
            header_line,
            column,
            available,
        }) => {
            assert_eq!(file_name(&path), "inter.csv");
            assert_eq!(header_line, Some(1));
            assert_eq!(column, "item");
            assert_eq!(available, vec!["user", "movie", "ts"]);
        }
        other => panic!("expected UnknownColumn, got {other:?}"),
    }
    // A position past the end is reported the same way.
    let d = Dir::new(&[("inter.csv", b"u1,i1,1\n")]);
    let cfg = "[data.interactions]\nfile = \"inter.csv\"\nheader = false\nuser = 0\nitem = 5\n";
    assert!(matches!(d.load(cfg), Err(DataError::UnknownColumn { .. })));
    // A name in a headerless file without `columns` says how to fix it.
    let cfg =
        "[data.interactions]\nfile = \"inter.csv\"\nheader = false\nuser = \"user\"\nitem = 1\n";
    let e = d.load(cfg).unwrap_err().to_string();
    assert!(e.contains("columns"), "{e}");
}

const WITH_ITEMS: &str = r#"
[data.interactions]
file = "inter.csv"
user = "user"
item = "item"
timestamp = "ts"

[data.items]
file = "items.csv"
key = "item"

[features.item_id]
side = "item"
kind = "categorical"
column = "item"

[features.genre]
side = "item"
kind = "categorical"
column = "genre"
"#;

#[test]
fn interaction_item_without_feature_row_joins_the_catalog_with_missing_features() {
    let d = Dir::new(&[
        ("inter.csv", b"user,item,ts\nu1,i1,1\nu1,i9,2\n"),
        ("items.csv", b"item,genre\ni1,drama\ni2,comedy\n"),
    ]);
    let ds = d.load(WITH_ITEMS).unwrap();
    // Catalog = table items {i1, i2} + interaction-only i9.
    assert_eq!(ds.items.ids, vec!["i1", "i2", "i9"]);
    assert_eq!(ds.report.items_without_feature_row, 1);
    assert_eq!(ds.items.missing_feature_rows, 1);
    assert_eq!(ds.report.items_without_interactions, 1); // i2
    let g = ds.items.feature("genre").unwrap();
    assert_eq!(
        g.vocab.tokens(),
        &["comedy".to_string(), "drama".to_string()]
    );
    assert_eq!(g.values, vec![2, 1, 0]);
    let s = stats(&ds);
    assert_eq!(s.report.items_without_feature_row, 1);
    assert_eq!(s.items, 3);
}

#[test]
fn duplicate_feature_rows_identical_are_counted_conflicting_are_rejected() {
    let d = Dir::new(&[
        ("inter.csv", b"user,item,ts\nu1,i1,1\n"),
        ("items.csv", b"item,genre\ni1,drama\ni1,drama\ni2,comedy\n"),
    ]);
    let ds = d.load(WITH_ITEMS).unwrap();
    assert_eq!(ds.report.duplicate_feature_rows, 1);
    assert_eq!(ds.report.item_table_rows, 3);

    let d = Dir::new(&[
        ("inter.csv", b"user,item,ts\nu1,i1,1\n"),
        ("items.csv", b"item,genre\ni1,drama\ni2,comedy\ni1,horror\n"),
    ]);
    match d.load(WITH_ITEMS) {
        Err(DataError::ConflictingRow {
            path,
            line,
            first_path,
            first_line,
            key,
            column,
            first_value,
            value,
        }) => {
            assert_eq!(file_name(&path), "items.csv");
            assert_eq!(&*first_path, path.as_path());
            assert_eq!((line, first_line), (4, 2));
            assert_eq!((&*key, &*column), ("i1", "genre"));
            assert_eq!((&*first_value, &*value), ("drama", "horror"));
        }
        other => panic!("expected ConflictingRow, got {other:?}"),
    }
}

#[test]
fn invalid_utf8_is_an_encoding_error_and_latin1_decodes() {
    let d = Dir::new(&[
        ("inter.csv", b"user,item,ts\nu1,i1,1\n"),
        ("items.csv", b"item,genre\ni1,caf\xe9\n"),
    ]);
    match d.load(WITH_ITEMS) {
        Err(DataError::Encoding { path, line, column }) => {
            assert_eq!(file_name(&path), "items.csv");
            assert_eq!((line, column.as_str()), (2, "genre"));
        }
        other => panic!("expected Encoding, got {other:?}"),
    }
    let cfg = WITH_ITEMS.replace("key = \"item\"", "key = \"item\"\nencoding = \"latin1\"");
    let ds = d.load(&cfg).unwrap();
    assert_eq!(
        ds.items.feature("genre").unwrap().vocab.tokens(),
        &["café".to_string()]
    );
}

#[test]
fn id_seen_only_in_test_is_oov_but_keeps_other_features() {
    // u1 has 5 interactions: the last by time (i3, ts 5) goes to test; i3 has
    // no train interaction, so item_id(i3) = 0 while genre(i3) is encoded.
    let d = Dir::new(&[
        (
            "inter.csv",
            b"user,item,ts\nu1,i1,1\nu1,i2,2\nu1,i1,3\nu1,i2,4\nu1,i3,5\n",
        ),
        ("items.csv", b"item,genre\ni1,a\ni2,b\ni3,c\n"),
    ]);
    let ds = d.load(WITH_ITEMS).unwrap();
    assert_eq!(ds.test.len(), 1);
    let id = ds.items.feature("item_id").unwrap();
    assert_eq!(id.values, vec![1, 2, 0]);
    assert_eq!(id.vocab.tokens(), &["i1".to_string(), "i2".to_string()]);
    assert_eq!(ds.items.feature("genre").unwrap().values, vec![1, 2, 3]);
    assert_eq!(ds.report.duplicate_interactions, 2); // (u1,i1) and (u1,i2) repeat once each
}

#[test]
fn quoted_csv_multi_byte_delimiter_and_positions() {
    // Quoted fields containing the delimiter.
    let d = Dir::new(&[
        ("inter.csv", b"user,item,ts\nu1,\"i,1\",1\n"),
        ("items.csv", b"item,tags\n\"i,1\",\"x|y\"\n"),
    ]);
    let cfg = r#"
[data.interactions]
file = "inter.csv"
user = "user"
item = "item"
timestamp = "ts"
[data.items]
file = "items.csv"
key = "item"
[features.tags]
side = "item"
kind = "multi_categorical"
column = "tags"
"#;
    let ds = d.load(cfg).unwrap();
    assert_eq!(ds.items.ids, vec!["i,1"]);
    assert_eq!(
        ds.items.feature("tags").unwrap().vocab.tokens(),
        &["x".to_string(), "y".to_string()]
    );

    // "::"-separated, headerless, columns by position.
    let d = Dir::new(&[("r.dat", b"1::10::5::100\n2::10::3::50\n")]);
    let cfg = "[data.interactions]\nfile = \"r.dat\"\ndelimiter = \"::\"\nheader = false\nuser = 0\nitem = 1\ntimestamp = 3\n";
    let ds = d.load(cfg).unwrap();
    assert_eq!(ds.train.timestamp, vec![100, 50]);
    assert_eq!(ds.users.ids, vec!["1", "2"]);
}

#[test]
fn movielens_1m_preset_on_a_fixture() {
    let d = Dir::new(&[
        ("ratings.dat", b"1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"),
        ("users.dat", b"1::F::1::10::48067\n2::M::56::16::70072\n"),
        (
            "movies.dat",
            b"1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation|Children's|Musical\n2001::Caf\xe9 (2001)::Comedy\n",
        ),
    ]);
    let ds = d.load("[data]\npreset = \"movielens-1m\"\n").unwrap();
    assert_eq!(ds.items.ids, vec!["661", "1193", "2001"]);
    let g = ds.items.feature("genres").unwrap();
    assert_eq!(g.row(0).len(), 3);
    assert_eq!(g.vocab.len(), 1 + 5);
    let dec = ds.items.feature("decade").unwrap();
    // 1996 → [1990,2000) = bucket 8 → index 9; 1975 → 7; 2001 → ">=2000" = 10.
    assert_eq!(dec.values, vec![9, 7, 10]);
    let age = ds.users.feature("age").unwrap();
    // ML-1M age codes: 1 → "<18" (index 1), 56 → ">=56" (index 7).
    assert_eq!(age.values, vec![1, 7]);
    assert_eq!(ds.report.items_without_interactions, 1);
}

#[test]
fn long_table_hash_buckets_and_min_count() {
    let d = Dir::new(&[
        ("inter.csv", b"user,item,ts\nu1,i1,1\nu2,i2,2\nu3,i3,3\n"),
        (
            "tags.csv",
            b"item,tag\ni1,x\ni1,y\ni2,x\ni3,x\ni3,x\nghost,z\n",
        ),
    ]);
    let cfg = r#"
[data.interactions]
file = "inter.csv"
user = "user"
item = "item"
timestamp = "ts"
[features.tags]
side = "item"
kind = "multi_categorical"
table = { file = "tags.csv", key = "item", value = "tag" }
min_count = 2
[features.uid]
side = "user"
kind = "categorical"
column = "@id"
hash_buckets = 1000
"#;
    let ds = d.load(cfg).unwrap();
    let t = ds.items.feature("tags").unwrap();
    // x is on 3 items, y on 1 (< min_count 2 → dropped from i1's bag).
    assert_eq!(t.vocab.tokens(), &["x".to_string()]);
    assert_eq!(t.offsets, vec![0, 1, 2, 3]);
    assert_eq!(ds.report.orphan_long_rows, 1); // "ghost"
    let u = ds.users.feature("uid").unwrap();
    assert_eq!(u.vocab.len(), 1001);
    assert_eq!(u.values[0], u.vocab.lookup("u1"));
    assert!(u.values.iter().all(|&v| (1..=1000).contains(&v)));
}

#[test]
fn inconsistent_feature_configs_are_config_errors() {
    let d = Dir::new(&[("inter.csv", b"user,item,ts\nu1,i1,1\n")]);
    let cases = [
        (
            "[features.a]\nside=\"user\"\nkind=\"bucketized\"\ncolumn=\"age\"\n",
            "features.a.boundaries",
        ),
        (
            "[features.a]\nside=\"user\"\nkind=\"bucketized\"\ncolumn=\"age\"\nboundaries=[3,2]\n",
            "features.a.boundaries",
        ),
        (
            "[features.g]\nside=\"user\"\nkind=\"categorical\"\ncolumn=\"gender\"\n",
            "features.g",
        ),
        (
            "[features.m]\nside=\"item\"\nkind=\"multi_categorical\"\n",
            "features.m",
        ),
        (
            "[data.users]\nfile=\"inter.csv\"\nkey=\"user\"\nlabel=\"item\"\n",
            "data.users.label",
        ),
    ];
    for (feat, field_prefix) in cases {
        match d.load(&format!("{INTER}{feat}")) {
            Err(DataError::Config { field, .. }) => {
                assert!(field.starts_with(field_prefix), "{field}")
            }
            other => panic!("expected Config for {feat}, got {other:?}"),
        }
    }
    // A misspelt key in a feature table lists the valid keys.
    let e = d
        .load(&format!(
            "{INTER}[features.g]\nside=\"user\"\nkind=\"categorical\"\ncolum=\"x\"\n"
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("colum") && e.contains("flag_columns"), "{e}");
}

#[test]
fn crlf_and_bom_free_tsv_with_weights() {
    let d = Dir::new(&[("i.tsv", b"u\ti\tt\tw\r\n1\t2\t3\t0.5\r\n1\t3\t4\t2\r\n")]);
    let cfg = "[data.interactions]\nfile = \"i.tsv\"\nuser = \"u\"\nitem = \"i\"\ntimestamp = \"t\"\nweight = \"w\"\n";
    let ds = d.load(cfg).unwrap();
    assert_eq!(ds.train.weight, Some(vec![0.5, 2.0]));
    assert_eq!(ds.items.ids, vec!["2", "3"]);
    let _ = PathBuf::new();
}

#[test]
fn negative_or_overflowing_weights_name_line_and_column() {
    // A negative loss weight would turn its row into gradient ascent, 1e40
    // overflows f32 to inf: both rejected with file, line and column.
    let cfg = "[data.interactions]\nfile = \"i.csv\"\nuser = \"u\"\nitem = \"i\"\ntimestamp = \"t\"\nweight = \"w\"\n";
    for (bad, line) in [("-0.5", 3), ("1e40", 3), ("inf", 3)] {
        let body = format!("u,i,t,w\n1,2,3,1\n1,3,4,{bad}\n");
        let d = Dir::new(&[("i.csv", body.as_bytes())]);
        match d.load(cfg) {
            Err(DataError::Parse {
                line: l,
                column,
                got,
                ..
            }) => {
                assert_eq!((l, column.as_str(), got.as_str()), (line, "w", bad));
            }
            other => panic!("{bad}: expected Parse, got {other:?}"),
        }
    }
    // zero is a valid weight
    let d = Dir::new(&[("i.csv", b"u,i,t,w\n1,2,3,0\n1,3,4,1\n")]);
    assert_eq!(d.load(cfg).unwrap().train.weight, Some(vec![0.0, 1.0]));
}

#[test]
fn line_numbers_count_quoted_line_breaks_and_blank_lines() {
    // Line 1 header, 2 a record spanning lines 2-3, 4 blank, 5 bad timestamp.
    let d = Dir::new(&[(
        "inter.csv",
        b"user,item,ts\r\n\"u\n1\",i1,1\r\n\r\nu2,i2,x\r\n",
    )]);
    match d.load(INTER) {
        Err(DataError::Parse { line, .. }) => assert_eq!(line, 5),
        other => panic!("expected Parse, got {other:?}"),
    }
    // The same file without quoting: the plain reader counts the same lines
    // (here the quote is data, so line 2 has 1 field and fails first).
    let cfg = INTER.replace("timestamp = \"ts\"", "timestamp = \"ts\"\nquoting = false");
    match d.load(&cfg) {
        Err(DataError::FieldCount {
            line,
            expected,
            got,
            ..
        }) => assert_eq!((line, expected, got), (2, 3, 1)),
        other => panic!("expected FieldCount, got {other:?}"),
    }
}
