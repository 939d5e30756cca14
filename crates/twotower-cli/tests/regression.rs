//! Regressions found by trials with hand-made input files: each test names
//! the bug it pins down and asserts the exact message the CLI now prints.

mod common;

use common::{
    bin, run_ok, run_on, stderr_err, stdout_ok, train, write, INTERACTIONS, INTERACTIONS_CONFIG,
    TINY_TRAIN,
};
use std::path::Path;

/// `twotower stats --config DIR/c.toml` after writing `config` there.
fn stats(dir: &Path, config: &str, extra: &[&str]) -> std::process::Output {
    let cfg = write(dir, "c.toml", config);
    bin()
        .arg("stats")
        .arg("--config")
        .arg(cfg)
        .args(extra)
        .output()
        .unwrap()
}

const ITEM_CONFIG: &str = "[data.items]\nfile = \"items.csv\"\nkey = \"item\"\n\
[features.item_id]\nside = \"item\"\nkind = \"categorical\"\ncolumn = \"item\"\n\
[features.genres]\nside = \"item\"\nkind = \"multi_categorical\"\ncolumn = \"genres\"\n";

/// A tiny run with an item table (items 1–6, genres) in `dir/run`.
fn tiny_run(dir: &Path) -> std::path::PathBuf {
    write(dir, "i.csv", INTERACTIONS);
    write(
        dir,
        "items.csv",
        "item,genres\n1,Drama\n2,Action\n3,Drama\n4,Comedy\n5,Horror\n6,Drama\n",
    );
    train(
        dir,
        &format!("{INTERACTIONS_CONFIG}{ITEM_CONFIG}{TINY_TRAIN}"),
        "run",
    )
}

/// Bug: a 0-byte interactions file got the message of a header-only file
/// ("table has no data rows"); it now says the file is empty, at line 1.
#[test]
fn a_zero_byte_file_is_reported_as_empty_not_as_a_table_without_rows() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "i.csv", "");
    // the data layer names a file as the config's folder joined with its `file`
    let file = dir.path().join("i.csv");
    let err = stderr_err(&stats(dir.path(), INTERACTIONS_CONFIG, &[]));
    assert!(
        err.contains(&format!(
            "{}:1: the file is empty (0 bytes; expected a header line or data rows)",
            file.display()
        )),
        "{err}"
    );
    // a header line alone is still a table without data rows
    write(dir.path(), "i.csv", "u,i,t\n");
    let err = stderr_err(&stats(dir.path(), INTERACTIONS_CONFIG, &[]));
    assert!(
        err.contains(&format!("{}: table has no data rows", file.display())),
        "{err}"
    );
}

/// Bug: a missing required column named the file and the columns found but
/// not the header line they were read from.
#[test]
fn a_missing_required_column_names_the_header_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "i.csv", "user,i,t\n1,1,1\n");
    let file = dir.path().join("i.csv");
    let err = stderr_err(&stats(dir.path(), INTERACTIONS_CONFIG, &[]));
    assert!(
        err.contains(&format!(
            "{}:1 (header line): no column `u`; columns found: [\"user\", \"i\", \"t\"]",
            file.display()
        )),
        "{err}"
    );
}

/// Bug: a duplicate item row with a conflicting value named both lines and
/// the column but not the two values.
#[test]
fn a_conflicting_duplicate_row_shows_both_values() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "i.csv", INTERACTIONS);
    write(
        dir.path(),
        "items.csv",
        "item,genres\n1,Drama\n2,Action\n1,Comedy\n",
    );
    let items = dir.path().join("items.csv");
    let err = stderr_err(&stats(
        dir.path(),
        &format!("{INTERACTIONS_CONFIG}{ITEM_CONFIG}"),
        &[],
    ));
    assert!(
        err.contains(&format!(
            "{}:4: key `1` already defined at line 2 with a different value in column `genres`: \
             \"Drama\" at line 2, \"Comedy\" at line 4",
            items.display()
        )),
        "{err}"
    );
}

/// Bug: `stats` counted an entity without a feature row and an empty cell
/// together as "missing" (one empty age + one user without a row = 2
/// missing ages); it now reports them separately.
#[test]
fn stats_separates_empty_cells_from_entities_without_a_row() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "i.csv", INTERACTIONS);
    // user 1: empty age; user 4: no row
    write(dir.path(), "users.csv", "u,age\n1,\n2,30\n3,40\n");
    let config = format!(
        "{INTERACTIONS_CONFIG}[data.users]\nfile = \"users.csv\"\nkey = \"u\"\n\
         [features.item_id]\nside = \"item\"\nkind = \"categorical\"\ncolumn = \"i\"\n\
         [features.age]\nside = \"user\"\nkind = \"categorical\"\ncolumn = \"age\"\n"
    );
    let text = stdout_ok(&stats(dir.path(), &config, &[]));
    let line = text
        .lines()
        .find(|l| l.contains(" age "))
        .unwrap_or_else(|| panic!("no age line in\n{text}"));
    assert_eq!(
        line,
        "  user  age              Categorical        vocab        3  empty       1  no row       1",
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout_ok(&stats(dir.path(), &config, &["--json"]))).unwrap();
    let age = json["report"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "age")
        .unwrap();
    assert_eq!(
        (&age["missing"], &age["empty"], &age["no_row"]),
        (&2.into(), &1.into(), &1.into()),
        "{age}"
    );
}

/// Bug: a `--catalog` table without the key column said "unknown column";
/// it now says the key column is missing, naming the file, its header line
/// and the columns found.
#[test]
fn a_catalog_without_its_key_column_says_the_key_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let catalog = write(dir.path(), "catalog.csv", "id,genres\n1,Drama\n8,Action\n");
    let out = bin()
        .args(["similar", "--item", "1", "--catalog"])
        .arg(&catalog)
        .arg("--run")
        .arg(&run)
        .output()
        .unwrap();
    let err = stderr_err(&out);
    assert!(
        err.contains(&format!(
            "--catalog: {}:1 (header line): the key column `item` is missing; \
             columns found: [\"id\", \"genres\"]",
            catalog.display()
        )),
        "{err}"
    );
}

/// Bug: `--ef` without `--ann` was accepted silently (it only sets the HNSW
/// search breadth of `--ann`); it is now refused, naming `--ann`.
#[test]
fn ef_without_ann_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    for args in [
        &["recommend", "--user", "1", "--ef", "64"][..],
        &["similar", "--item", "1", "--ef", "64"],
    ] {
        let err = stderr_err(&run_on(args, &run));
        assert!(
            err.contains("the following required arguments were not provided")
                && err.contains("--ann"),
            "{args:?}: {err}"
        );
    }
    // with --ann (or without --ef) it runs
    run_ok(&["similar", "--item", "1", "--ann", "--ef", "64"], &run);
}

/// `twotower train --config configs/ml-100k.toml --out OUT --set KEY=VALUE`.
fn train_ml100k_with(dir: &Path, set: &str) -> std::process::Output {
    bin()
        .args(["train", "-q", "--config"])
        .arg(common::configs().join("ml-100k.toml"))
        .arg("--out")
        .arg(dir.join("run"))
        .args(["--set", set])
        .output()
        .unwrap()
}

/// Bug (2026-12-07 trial): a `train.monitor` the evaluation does not
/// compute (recall@20 without 20 in eval.ks) trained to the end and then
/// wrote a run.json that could not be loaded; now refused before loading.
#[test]
fn a_monitor_the_evaluation_does_not_compute_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let err = stderr_err(&train_ml100k_with(dir.path(), "train.monitor=recall@20"));
    assert!(
        err.contains("train.monitor") && err.contains("K in eval.ks"),
        "{err}"
    );
    assert!(!dir.path().join("run").join("run.json").exists());
}

/// Bug (2026-12-07 trial): `train.threads=1000000` hung starting threads;
/// `model.embedding_dim=1000000000` aborted the process in the allocator;
/// now a message each, before any work.
#[test]
fn absurd_sizes_are_messages_not_hangs_or_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let err = stderr_err(&train_ml100k_with(dir.path(), "train.threads=1000000"));
    assert!(
        err.contains("train.threads") && err.contains("0..=256"),
        "{err}"
    );
    let out = train_ml100k_with(dir.path(), "model.embedding_dim=1000000000");
    assert_eq!(out.status.code(), Some(1), "an error exit, not a signal");
    let err = stderr_err(&out);
    assert!(
        err.contains("the configured model does not fit in memory: parameters"),
        "{err}"
    );
}

/// Bugs (2026-12-07 trial of `twotower scale`): `--ef 200000` and a bad
/// `--set` were caught only after generating data and training; `--dir`
/// pointing at a file was blamed on `--out`.
#[test]
fn scale_checks_its_flags_before_any_phase() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let scale = |extra: &[&str]| {
        bin()
            .args([
                "scale",
                "--users",
                "50",
                "--items",
                "40",
                "--interactions",
                "500",
            ])
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let err = stderr_err(&scale(&["--retrieval", "hnsw", "--ef", "200000"]));
    assert!(
        err.contains("--ef 200000") && err.contains("1..=100000"),
        "{err}"
    );
    assert!(!err.contains("scale: generate"), "no phase ran: {err}");
    let err = stderr_err(&scale(&["--set", "bogus.key=1"]));
    assert!(
        err.contains("bogus") && !err.contains("scale: generate"),
        "{err}"
    );
    let file = write(dir.path(), "afile", "x");
    let err = stderr_err(&scale(&["--dir", file.to_str().unwrap()]));
    assert!(err.contains("--dir") && !err.contains("--out"), "{err}");
}

/// Bug (2026-12-07 trial): `eval --run DIR --set eval.ks=[10]` was refused
/// because train.monitor (recall@50) was not among the new ks, a key eval
/// cannot change; and the re-evaluation replaced the training metrics.
#[test]
fn eval_overrides_may_drop_the_monitor_k_and_keep_the_training_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let before = std::fs::read_to_string(run.join("metrics.json")).unwrap();
    let o = run_on(&["eval", "--json", "--set", "eval.ks=[10]"], &run);
    let m: serde_json::Value = serde_json::from_str(&stdout_ok(&o)).unwrap();
    assert!(
        m.get("recall@10").is_some() && m.get("recall@50").is_none(),
        "{m}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.train.json")).unwrap(),
        before
    );
}
