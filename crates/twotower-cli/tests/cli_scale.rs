//! `twotower scale` on a tiny size (every phase a child process, time and
//! peak RSS each), and the approximate evaluation it ends with
//! (`eval.retrieval = "hnsw"`): labelled approximate, with the index's
//! recall against exact top-K, and — at a generous ef on this small
//! catalog — the exact evaluation's metrics.
mod common;

use common::{bin, stderr_err, stdout_ok};

#[test]
fn scale_measures_every_phase_and_hnsw_eval_matches_exact() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let json = dir.path().join("scale.json");
    let o = bin()
        .args([
            "scale",
            "--users",
            "300",
            "--items",
            "400",
            "--interactions",
            "9000",
            "--dim",
            "16",
            "--batch-size",
            "256",
            "--eval-users",
            "0",
            "--retrieval",
            "hnsw",
            "--ef",
            "2000",
            "--dir",
        ])
        .arg(&work)
        .arg("--out")
        .arg(&json)
        .output()
        .unwrap();
    let out = stdout_ok(&o);
    for phase in ["generate", "train", "eval", "export"] {
        assert!(out.lines().any(|l| l.starts_with(phase)), "{phase}: {out}");
    }
    assert!(out.contains("peak RSS GiB"), "{out}");
    assert!(out.contains("APPROXIMATE"), "{out}");
    assert!(out.contains("index recall against exact top-K"), "{out}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let phases = report["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["generate", "train", "eval", "export"]);
    for p in phases {
        assert!(p["seconds"].as_f64().unwrap() > 0.0, "{p}");
        // a child's own peak: at least a few MiB, never the parent's 0
        assert!(p["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{p}");
    }
    assert_eq!(report["items"], 400);
    assert_eq!(report["retrieval"], "hnsw");
    assert!(report["machine"]["logical_cpus"].as_u64().unwrap() >= 1);

    // the approximate metrics are labelled, with the index's recall
    let m = &report["metrics"];
    assert_eq!(m["approximate"], true, "{m}");
    assert_eq!(m["retrieval"], "hnsw");
    assert_eq!(m["ann"]["ef"], 2000);
    let recall = m["ann"]["recall_vs_exact"].as_object().unwrap();
    assert_eq!(recall.len(), 3, "{recall:?}");
    for (k, v) in recall {
        assert_eq!(v.as_f64(), Some(1.0), "{k}");
    }
    assert!(m["ann"]["recall_users"].as_u64().unwrap() > 0);
    assert!(work.join("export/manifest.json").is_file());

    // the exact evaluation of the same run, on the same users (the run's
    // own config says eval.max_users=1: train's evaluation was cut short)
    let run = work.join("run");
    let o = bin()
        .args(["eval", "--json", "--set", "eval.max_users=0", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    let exact: serde_json::Value = serde_json::from_str(&stdout_ok(&o)).unwrap();
    assert!(exact.get("approximate").is_none(), "{exact}");
    assert!(exact.get("ann").is_none());
    let mut compared = 0;
    for (key, want) in exact.as_object().unwrap() {
        if key.contains('@') {
            assert_eq!(&m[key], want, "{key}");
            compared += 1;
        }
    }
    assert_eq!(compared, 18);
    assert_eq!(m["most_popular"], exact["most_popular"]);
    assert_eq!(m["n_test_users"], exact["n_test_users"]);

    // the table of `eval` labels approximate figures
    let o = bin()
        .args(["eval", "--set", "eval.retrieval=hnsw", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    let table = stdout_ok(&o);
    assert!(
        table.contains("APPROXIMATE") && table.contains("ef 256"),
        "{table}"
    );
    assert!(table.contains("model~"), "{table}");

    // the run's saved graph (`twotower index`) is searched, not rebuilt
    let o = bin().args(["index", "--run"]).arg(&run).output().unwrap();
    stdout_ok(&o);
    let o = bin()
        .args([
            "eval",
            "--json",
            "--set",
            "eval.retrieval=hnsw",
            "--set",
            "eval.max_users=0",
            "--run",
        ])
        .arg(&run)
        .output()
        .unwrap();
    let loaded: serde_json::Value = serde_json::from_str(&stdout_ok(&o)).unwrap();
    let graph = loaded["ann"]["graph"].as_str().unwrap();
    assert!(
        graph.starts_with("loaded from") && graph.ends_with("index.usearch"),
        "{graph}"
    );
    assert_eq!(loaded["approximate"], true);
    assert_eq!(
        loaded["ann"]["recall_vs_exact"].as_object().unwrap().len(),
        3
    );
    assert_eq!(m["ann"]["graph"], "built in row order");
    // a saved graph that does not fit: a warning, and a graph of its own
    std::fs::write(run.join("index.usearch"), b"not an index").unwrap();
    let o = bin()
        .args(["eval", "--json", "--set", "eval.retrieval=hnsw", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    let rebuilt: serde_json::Value = serde_json::from_str(&stdout_ok(&o)).unwrap();
    assert_eq!(rebuilt["ann"]["graph"], "built in row order");
    let e = common::stderr(&o);
    assert!(e.contains("warning") && e.contains("index.usearch"), "{e}");

    // bad input names the key, never a panic
    for (set, want) in [
        ("eval.retrieval=ivf", "eval.retrieval"),
        ("eval.ann_ef=0", "eval.ann_ef"),
        ("eval.ann_recall_users=0", "eval.ann_recall_users"),
        ("train.seed=3", "[eval]"),
        ("eval.ann_eff=3", "unknown key `ann_eff`"),
    ] {
        let o = bin()
            .args(["eval", "--set", set, "--run"])
            .arg(&run)
            .output()
            .unwrap();
        let e = stderr_err(&o);
        assert!(e.contains(want) && !e.contains("panicked"), "{set}: {e}");
    }
}

#[test]
fn scale_bad_arguments_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (args, want) in [
        (vec!["--retrieval", "ivf"], "--retrieval ivf"),
        (vec!["--ef", "0"], "--ef 0"),
        (vec!["--items", "0"], "--items 0"),
    ] {
        let o = bin()
            .arg("scale")
            .args(&args)
            .arg("--dir")
            .arg(dir.path().join("w"))
            .output()
            .unwrap();
        let e = stderr_err(&o);
        assert!(e.contains(want) && !e.contains("panicked"), "{args:?}: {e}");
    }
}
