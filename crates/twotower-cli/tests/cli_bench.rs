//! `twotower bench` end to end at a tiny size: the JSON report is complete and
//! self-consistent, and bad arguments are refused before anything is measured.

mod common;

use common::{bin, stderr};

fn bench(args: &[&str]) -> std::process::Output {
    bin()
        .arg("bench")
        .args(args)
        .output()
        .expect("run twotower")
}

#[test]
fn tiny_bench_writes_a_consistent_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub/b.json");
    let o = bench(&[
        "--quick",
        "--no-config",
        "--items",
        "2k",
        "--users",
        "1k",
        "--batch-size",
        "64",
        "--dim",
        "8",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--repeats",
        "3",
        "--ssl",
        "both",
        "--eval-users",
        "32",
        "--eval-items",
        "500",
        "--ingest-rows",
        "0",
        "--load-rows",
        "20k",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let s = &r["settings"];
    assert_eq!(s["quick"], true);
    assert_eq!(s["items"], serde_json::json!([2000]));
    assert_eq!(s["threads"], 1);
    let train = r["train"].as_array().unwrap();
    assert_eq!(train.len(), 2); // without and with SSL
    for (case, ssl) in train.iter().zip([false, true]) {
        assert_eq!(case["kind"], "synthetic");
        assert_eq!(case["items"], 2000);
        assert_eq!(case["ssl"], ssl);
        assert_eq!(case["ssl_batch"], if ssl { 64 } else { 0 });
        let eps = case["examples_per_second"].as_f64().unwrap();
        let ms = case["ms_per_step"].as_f64().unwrap();
        // ms per step = B / (examples/s), in ms
        assert!(
            (ms - 64.0 / eps * 1e3).abs() < 1e-9 * ms.max(1.0),
            "{ms} vs {eps}"
        );
        assert_eq!(
            case["repeats_examples_per_second"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        let p = &case["phases_ms"];
        let parts: f64 = [
            "gather",
            "forward",
            "loss",
            "backward",
            "ssl_augment",
            "ssl_compute",
            "sparse_update",
            "dense_update",
        ]
        .iter()
        .map(|k| p[*k].as_f64().unwrap())
        .sum();
        assert!(parts <= p["total"].as_f64().unwrap() * 1.0001);
        assert_eq!(p["ssl_compute"].as_f64().unwrap() > 0.0, ssl);
        assert!(case["mean_loss"].as_f64().unwrap().is_finite());
        // 4 B × (rows × dim) × (1 + 2 Adam slots); rows: users 1001 + 1001 + 101,
        // items 2001 + 1001 + 101 = 5206; dim 8
        let mib = 4.0 * 5206.0 * 8.0 * 3.0 / (1024.0 * 1024.0);
        assert!((case["embedding_state_mib"].as_f64().unwrap() - mib).abs() < 1e-9);
    }
    let e = &r["eval"];
    assert_eq!(
        (e["users"].as_u64(), e["items"].as_u64()),
        (Some(32), Some(500))
    );
    let ratio = e["gemm_seconds"].as_f64().unwrap() / e["evaluate_seconds"].as_f64().unwrap();
    assert!((e["ratio_to_gemm"].as_f64().unwrap() - ratio).abs() < 1e-9);
    assert!(r["ingest"].as_array().unwrap().is_empty());
    // the whole load path, generated Parquet and CSV
    let load = r["load"].as_array().unwrap();
    assert_eq!(load.len(), 2);
    // the same data as Parquet and as CSV: the same fingerprint
    assert_eq!(load[0]["fingerprint"], load[1]["fingerprint"]);
    for (case, source) in load.iter().zip(["parquet", "csv"]) {
        assert_eq!(case["source"], source);
        assert_eq!(case["rows"], 20_000);
        assert_eq!(
            (case["users"].as_u64(), case["items"].as_u64()),
            (Some(400), Some(2000))
        );
        let st = &case["stages"];
        let stages: f64 = ["read", "entities", "split", "report", "features"]
            .iter()
            .map(|k| st[k].as_f64().unwrap())
            .sum();
        let total = case["seconds"].as_f64().unwrap();
        assert!(stages + case["fingerprint_seconds"].as_f64().unwrap() <= total + 1e-3);
        assert!(case["fingerprint"].as_str().unwrap().starts_with("v1:"));
        let rate = 20_000.0 / total;
        assert!((case["rows_per_second"].as_f64().unwrap() - rate).abs() < 1e-6 * rate);
    }
}

#[test]
fn bad_arguments_are_refused_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["--items", "abc"], "is not a count"),
        (vec!["--items", "1.5"], "is not a count"),
        (vec!["--items", "0"], "at least one item"),
        (vec!["--items", "1e30"], "too large"),
        (vec!["--ssl", "maybe"], "--ssl must be off, on or both"),
        (vec!["--steps", "0"], "must be > 0"),
        (vec!["--config", "/nonexistent/x.toml"], "no such file"),
        (
            vec!["--out", dir.path().to_str().unwrap()],
            "is a directory",
        ),
    ] {
        let o = bench(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        // refused before any measurement was printed
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("ex/s"),
            "{args:?}"
        );
    }
}
