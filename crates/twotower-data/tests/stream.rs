//! A streamed train split is the in-memory loader's, exactly: the same
//! entities, vocabularies and encoded features, the same test split (rows
//! and order), the same train counts, and re-reading the stream gives the
//! in-memory train split row for row — on ML-100K, Amazon Beauty (its
//! `timestamp` is a sequence position, with many ties across users), a
//! synthetic Parquet file, and a hand-made table with timestamp ties,
//! duplicate rows and weights.

use std::path::{Path, PathBuf};

use twotower_data::{
    fingerprints_differ, load_data_config, load_dataset, load_dataset_streamed, write_dataset,
    Dataset, OutFormat, SyntheticConfig,
};

fn config(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs")).join(name)
}

fn both(path: &Path, overrides: &[String]) -> (Dataset, Dataset) {
    let (data, features, base) = load_data_config(path, overrides).unwrap();
    let mem = load_dataset(&data, &features, &base).unwrap();
    let st = load_dataset_streamed(&data, &features, &base).unwrap();
    (mem, st)
}

fn assert_same(mem: &Dataset, st: &Dataset) {
    assert!(!mem.train.is_empty());
    assert!(
        st.train.is_empty(),
        "a streamed dataset holds no train rows"
    );
    assert_eq!(mem.users, st.users);
    assert_eq!(mem.items, st.items);
    assert_eq!(mem.test, st.test);
    let s = st.train_stream.as_ref().unwrap();
    assert_eq!(s.n_rows, mem.train.len() as u64);
    assert_eq!(s.item_counts, mem.train.item_counts(mem.items.len()));
    assert_eq!(s.user_counts, mem.train.user_counts(mem.users.len()));
    let train = s.collect(&st.users.ids, &st.items.ids).unwrap();
    assert_eq!(train, mem.train);
    // chunks of any size give the same rows
    let mut n = 0;
    s.for_each_chunk(&st.users.ids, &st.items.ids, 7, |c| {
        assert!(c.len() <= 7);
        assert_eq!(c.user, mem.train.user[n..n + c.len()]);
        n += c.len();
        Ok(())
    })
    .unwrap();
    assert_eq!(n, mem.train.len());
    let mut r = mem.report.clone();
    r.duplicate_interactions = 0; // not counted when streamed
    assert_eq!(r, st.report);
    // a streamed fingerprint is its own version: never compared with an
    // in-memory one, always with another streamed load of the same data
    assert!(st.fingerprint().starts_with("s1:"));
    assert!(!fingerprints_differ(&mem.fingerprint(), &st.fingerprint()));
}

#[test]
fn ml100k_streamed_split_is_the_in_memory_split() {
    let (mem, st) = both(&config("ml-100k.toml"), &[]);
    assert_same(&mem, &st);
}

#[test]
fn beauty_streamed_split_is_the_in_memory_split() {
    let (mem, st) = both(&config("amazon-beauty.toml"), &[]);
    assert_same(&mem, &st);
}

#[test]
fn synthetic_parquet_streamed_split_is_the_in_memory_split() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SyntheticConfig {
        users: 300,
        items: 500,
        interactions: 6000,
        ..SyntheticConfig::default()
    };
    write_dataset(&cfg, dir.path(), OutFormat::Parquet).unwrap();
    let (mem, st) = both(&dir.path().join("dataset.toml"), &[]);
    assert_same(&mem, &st);
}

#[test]
fn ties_duplicates_and_weights_split_as_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    // user a: 6 rows with timestamp ties (same time, items ordered by id
    // rank, exact duplicates kept in file order) → 2 test rows; user b: 3
    // rows (< 5) → all train; user c: 5 rows → 1 test row
    let rows = "user,item,ts,w\n\
        a,i3,5,1.0\na,i1,5,2.0\nb,i1,1,1.0\na,i2,5,3.0\nc,i1,1,1\nc,i2,2,1\n\
        a,i2,5,4.0\na,i9,1,0.5\nb,i2,2,1\nc,i3,3,1\nc,i4,4,1\nc,i5,4,2\n\
        a,i1,7,1.5\nb,i3,3,1\n";
    std::fs::write(dir.path().join("x.csv"), rows).unwrap();
    let toml = r#"
[data]
path = "."
[data.interactions]
file = "x.csv"
user = "user"
item = "item"
timestamp = "ts"
weight = "w"
[features.user_id]
side = "user"
kind = "categorical"
column = "user"
[features.item_id]
side = "item"
kind = "categorical"
column = "item"
"#;
    std::fs::write(dir.path().join("d.toml"), toml).unwrap();
    let (mem, st) = both(&dir.path().join("d.toml"), &[]);
    assert_same(&mem, &st);
    assert_eq!(mem.test.len(), 3);
    assert!(st.test.weight.is_some());
    // the file changed after loading (a train row appended for user b):
    // re-reading the stream is an error naming the file, not a config error
    // (a row appended after a user's cut is test, and the train split it
    // leaves unchanged is read as before)
    std::fs::write(dir.path().join("x.csv"), format!("{rows}b,i4,0,1\n")).unwrap();
    let s = st.train_stream.as_ref().unwrap();
    let e = s.collect(&st.users.ids, &st.items.ids).unwrap_err();
    assert!(matches!(e, twotower_data::DataError::Changed { .. }), "{e}");
    assert!(
        e.to_string().contains("x.csv") && e.to_string().contains("changed"),
        "{e}"
    );
}

#[test]
fn what_cannot_be_streamed_is_an_error_naming_the_key() {
    let (data, features, base) = load_data_config(&config("ml-100k.toml"), &[]).unwrap();
    let mut random = data.clone();
    random.split.kind = twotower_data::SplitKind::Random;
    let e = load_dataset_streamed(&random, &features, &base).unwrap_err();
    assert!(e.to_string().contains("data.split.kind"), "{e}");
    let mut synth = data;
    synth.source = twotower_data::Source::Synthetic;
    let e = load_dataset_streamed(&synth, &features, &base).unwrap_err();
    assert!(e.to_string().contains("data.source"), "{e}");
}
