//! `twotower train` as a batch job sees it: stderr redirected to a file (not
//! a terminal) gets a progress line every `train.progress_seconds`, and
//! `eval.max_users` evaluates a seeded sample of the test users, labelled.

mod common;

use common::bin;
use std::path::Path;

/// Trains on small built-in synthetic data with `extra` `--set`s; stderr
/// goes to a file (as `2> train.log` would), returned with stdout.
fn train(dir: &Path, name: &str, extra: &[&str]) -> (String, String) {
    let log = dir.join(format!("{name}.log"));
    let mut cmd = bin();
    cmd.args(["train", "--out"]).arg(dir.join(name));
    for s in [
        "data.synthetic.users=300",
        "data.synthetic.items=200",
        "data.synthetic.interactions=6000",
        "train.epochs=1",
        "train.validation=false",
        "train.batch_size=32",
    ]
    .iter()
    .chain(extra)
    {
        cmd.args(["--set", s]);
    }
    let out = cmd
        .stderr(std::fs::File::create(&log).unwrap())
        .output()
        .unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("refit epoch 1/1: batch "))
        .collect()
}

#[test]
fn a_log_file_gets_progress_lines() {
    let dir = tempfile::tempdir().unwrap();
    // an interval far below a step: a line at every update (every 16 batches)
    let (_, stderr) = train(dir.path(), "lines", &["train.progress_seconds=0.000001"]);
    let lines = progress_lines(&stderr);
    assert!(lines.len() >= 2, "{stderr}");
    for l in &lines {
        // refit epoch 1/1: batch 17/N (x %), E examples, R ex/s, loss L, eta T
        // (without validation, the one phase is the refit on all of train)
        assert!(
            l.contains(" examples, ") && l.contains(" ex/s, loss "),
            "{l}"
        );
        assert!(l.contains(", eta "), "{l}");
        let rest = &l["refit epoch 1/1: batch ".len()..];
        let (batch, rest) = rest.split_once('/').unwrap();
        let batch: u64 = batch.parse().unwrap();
        let total: u64 = rest.split_once(' ').unwrap().0.parse().unwrap();
        assert!(
            batch % 16 == 1 || batch == total,
            "updates every 16 batches and at the end: {l}"
        );
    }
    // the memory plan comes first, before any step
    let mem = stderr
        .find("refit: memory: parameters ")
        .expect("memory line");
    assert!(mem < stderr.find(lines[0]).unwrap(), "{stderr}");
    assert!(stderr.contains(" GiB in all ("), "{stderr}");
    // no terminal control codes in a log
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");

    // the default interval (30 s) prints none in a run this short, and
    // progress_seconds = 0 turns the lines off
    for (name, set) in [
        ("default", "train.seed=42"),
        ("off", "train.progress_seconds=0"),
    ] {
        let (_, stderr) = train(dir.path(), name, &[set]);
        assert!(progress_lines(&stderr).is_empty(), "{name}: {stderr}");
    }
}

#[test]
fn negative_progress_interval_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["train", "--out"])
        .arg(dir.path().join("r"))
        .args(["--set", "train.progress_seconds=-1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("train.progress_seconds"), "{err}");
}

fn metrics(dir: &Path, name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name).join("metrics.json")).unwrap())
        .unwrap()
}

#[test]
fn max_users_evaluates_a_labelled_sample() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = train(dir.path(), "full", &[]);
    let full = metrics(dir.path(), "full");
    let all = full["n_test_users"].as_u64().unwrap();
    assert!(all > 40, "{full}");
    assert!(full.get("eval_sampled_from_users").is_none());

    let (stdout, _) = train(dir.path(), "s1", &["eval.max_users=40"]);
    let s1 = metrics(dir.path(), "s1");
    assert_eq!(s1["n_test_users"], 40);
    assert_eq!(s1["eval_sampled_from_users"].as_u64(), Some(all));
    assert!(
        stdout.contains(&format!("evaluated on a sample of 40 of {all} test users")),
        "{stdout}"
    );
    // the model is the same: only the evaluated users differ
    assert_ne!(s1["recall@50"], full["recall@50"]);
    // same sample seed → the same users → the same metrics; another seed → others
    train(dir.path(), "s2", &["eval.max_users=40"]);
    assert_eq!(metrics(dir.path(), "s2")["recall@50"], s1["recall@50"]);
    train(
        dir.path(),
        "s3",
        &["eval.max_users=40", "eval.sample_seed=9"],
    );
    let s3 = metrics(dir.path(), "s3");
    assert_eq!(s3["n_test_users"], 40);
    assert_ne!(s3["most_popular"], s1["most_popular"]);
}
