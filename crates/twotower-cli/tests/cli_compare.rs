//! `twotower compare` end to end on a tiny synthetic dataset (2 variants ×
//! 2 seeds, a second of training each in a debug build), plus its input
//! checks.

mod common;

use common::{bin, stderr};
use std::path::Path;
use std::process::Output;

fn twotower(args: &[&str], cwd: &Path) -> Output {
    bin()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("twotower runs")
}

const TINY: &str = r#"
[data]
source = "synthetic"

[data.synthetic]
users = 120
items = 80
interactions = 3000
topics = 4
"#;

const SMALL_MODEL: [&str; 12] = [
    "--set",
    "train.epochs=2",
    "--set",
    "model.hidden=[16]",
    "--set",
    "model.embedding_dim=8",
    "--set",
    "model.out_dim=8",
    "--set",
    "train.batch_size=64",
    "--set",
    "train.threads=1",
];

fn compare(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "compare",
        "--config",
        "tiny.toml",
        "--variants",
        "no_logq=loss.logq=false",
        "logq_ssl=loss.logq=true,ssl.enabled=true",
        "--seeds",
        "2",
        "--out",
        "out",
    ];
    args.extend_from_slice(&SMALL_MODEL);
    args.extend_from_slice(extra);
    twotower(&args, dir)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    )
}

/// PNG signature, then the IHDR chunk's width and height (big-endian).
fn png_dims(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&b[12..16], b"IHDR");
    (
        u32::from_be_bytes(b[16..20].try_into().unwrap()),
        u32::from_be_bytes(b[20..24].try_into().unwrap()),
    )
}

#[test]
fn compare_two_variants_two_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("tiny.toml"), TINY).unwrap();
    let o = compare(d, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = d.join("out");
    for f in [
        "report.md",
        "report.json",
        "recall_by_popularity_decile.png",
        "recall_by_popularity_decile.svg",
        "training_loss.png",
        "training_loss.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing\n{}", text(&o));
    }
    for v in ["no_logq", "logq_ssl"] {
        for s in ["seed1", "seed2"] {
            let run = out.join("runs").join(v).join(s);
            for f in [
                "metrics.json",
                "model.safetensors",
                "epochs.jsonl",
                "recall_by_popularity.json",
            ] {
                assert!(run.join(f).is_file(), "{}/{f} missing", run.display());
            }
            // each run really got its own seed and the variant's overrides
            let info: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap())
                    .unwrap();
            let seed = &info["config"]["train"]["seed"];
            assert_eq!(seed.as_i64(), Some(if s == "seed1" { 1 } else { 2 }));
            assert_eq!(
                info["config"]["loss"]["logq"].as_bool(),
                Some(v == "logq_ssl")
            );
            assert_eq!(info["config"]["train"]["progress"].as_bool(), Some(false));
        }
    }
    assert_eq!(
        png_dims(&out.join("recall_by_popularity_decile.png")),
        (960, 600)
    );
    assert_eq!(png_dims(&out.join("training_loss.png")), (960, 600));

    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let vars = r["variants"].as_array().unwrap();
    assert_eq!(
        vars.iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["no_logq", "logq_ssl"]
    );
    for v in vars {
        for m in [
            "recall@10",
            "recall@50",
            "ndcg@50",
            "head_recall@50",
            "coverage@50",
        ] {
            let s = &v["metrics"][m];
            let mean = s["mean"]
                .as_f64()
                .unwrap_or_else(|| panic!("{m} mean: {s}"));
            let std = s["std"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&mean), "{m} = {mean}");
            assert!(std >= 0.0 && std.is_finite());
            assert_eq!(s["n"].as_u64(), Some(2));
        }
        assert!(v["train_seconds"]["mean"].as_f64().unwrap() > 0.0);
        assert!(v["examples_per_second"]["mean"].as_f64().unwrap() > 0.0);
        assert_eq!(v["recall_by_bin"].as_array().unwrap().len(), 10);
        assert_eq!(v["loss"]["phase"].as_str(), Some("refit"));
    }
    assert_eq!(
        vars[1]["overrides"],
        serde_json::json!(["loss.logq=true", "ssl.enabled=true"])
    );
    // the baseline: one row, std 0, the same value as in every run's metrics.json
    let base = &r["baselines"][0];
    assert_eq!(r["baselines"].as_array().unwrap().len(), 1);
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("runs/no_logq/seed1/metrics.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        base["metrics"]["recall@50"]["mean"],
        m["most_popular"]["recall@50"]
    );
    assert_eq!(base["metrics"]["recall@50"]["std"].as_f64(), Some(0.0));
    // pairs per decile add up to the distinct test pairs
    let pairs: u64 = base["pairs_by_bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert!(pairs > 0);
    assert_eq!(
        base["items_by_bin"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .sum::<u64>(),
        80
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| no_logq | 0."), "{md}");
    assert!(md.contains("| most_popular | 0."), "{md}");

    // The same command again reuses every finished run and rebuilds the report.
    let again = compare(d, &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        stderr(&again).matches("reused").count(),
        4,
        "{}",
        text(&again)
    );
    let r2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r2["variants"], r["variants"]);

    // Another config into the same --out is refused, not silently mixed.
    let other = compare(d, &["--set", "loss.temperature=0.2"]);
    assert!(!other.status.success());
    assert!(
        stderr(&other).contains("holds a finished run of another config"),
        "{}",
        text(&other)
    );

    // A finished run of other data (its fingerprint no longer matches) is not
    // reused as if it were this data's.
    let rj = out.join("runs/no_logq/seed1/run.json");
    let mut info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rj).unwrap()).unwrap();
    let fp = info["data_fingerprint"].as_str().unwrap();
    assert!(fp.starts_with("v1:") && fp.len() == 19, "{fp}");
    info["data_fingerprint"] = "v1:0123456789abcdef".into();
    std::fs::write(&rj, info.to_string()).unwrap();
    let stale = compare(d, &[]);
    assert!(!stale.status.success());
    assert!(
        stderr(&stale).contains("trained on other data"),
        "{}",
        text(&stale)
    );
}

#[test]
fn bad_variants_are_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("tiny.toml"), TINY).unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["a=loss.logq=false", "a=loss.logq=true"], "given twice"),
        (&["a=train.seed=3"], "do not set train.seed"),
        (&["a/b=loss.logq=true"], "variant name may only hold"),
        (&["a=loss.logq"], "is not KEY=VALUE"),
        (&["a=loss.temprature=0.1"], "temprature"),
    ];
    for (variants, msg) in cases {
        let mut args = vec![
            "compare",
            "--config",
            "tiny.toml",
            "--out",
            "out",
            "--variants",
        ];
        args.extend_from_slice(variants);
        let o = twotower(&args, d);
        assert!(!o.status.success(), "{variants:?} accepted");
        let err = stderr(&o);
        assert!(err.contains(msg), "{variants:?}: expected {msg:?} in {err}");
        assert!(
            !d.join("out/runs").exists(),
            "{variants:?}: trained before checking"
        );
    }
    let o = twotower(
        &[
            "compare",
            "--config",
            "tiny.toml",
            "--out",
            "out",
            "--seeds",
            "0",
            "--variants",
            "a=",
        ],
        d,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--seeds must be at least 1"));
}

/// `--split validation`: each run is the search phase alone and its metrics
/// are its best validation epoch's (the same number `train` selects on);
/// the report says so; a test-split compare into the same directory is
/// refused rather than mixing the splits.
#[test]
fn split_validation_reports_the_search_phase_on_the_validation_split() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("tiny.toml"), TINY).unwrap();
    let mut args = vec![
        "compare",
        "--config",
        "tiny.toml",
        "--variants",
        "logq=",
        "--seeds",
        "1",
        "--out",
        "val",
        "--split",
        "validation",
        "--set",
        "train.epochs=4",
    ];
    args.extend_from_slice(&SMALL_MODEL[2..]);
    let o = twotower(&args, d);
    assert!(o.status.success(), "{}", text(&o));
    let run = d.join("val/runs/logq/seed1");
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join(f)).unwrap()).unwrap()
    };
    let (m, info) = (read("metrics.json"), read("run.json"));
    assert_eq!(m["split"].as_str(), Some("validation"));
    assert_eq!(info["config"]["train"]["refit"].as_bool(), Some(false));
    let best = info["best_validation"][0].as_f64().unwrap();
    let r50 = m["recall@50"].as_f64().unwrap();
    assert!(
        (r50 - best).abs() < 1e-12,
        "validation recall@50 {r50} vs the search phase's best {best}"
    );
    // the best epoch's line in epochs.jsonl holds every metric: all equal
    let e = best_epoch_validation(&run, info["best_validation"][1].as_u64().unwrap());
    for k in ["recall@10", "ndcg@50", "tail_recall@50", "coverage@50"] {
        assert_eq!(m[k].as_f64(), e[k].as_f64(), "{k}");
    }
    // fewer evaluated pairs than the test split: the validation split is
    // carved from train
    assert!(m["n_test"].as_u64().unwrap() < m["n_train"].as_u64().unwrap());
    let md = std::fs::read_to_string(d.join("val/report.md")).unwrap();
    assert!(md.contains("**validation split**"), "{md}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("val/report.json")).unwrap()).unwrap();
    assert_eq!(r["split"].as_str(), Some("validation"));

    // the same directory for the test split: refused, nothing retrained
    let mut args2: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| *a != "--split" && *a != "validation")
        .collect();
    args2.push("--split");
    args2.push("test");
    let o = twotower(&args2, d);
    assert!(!o.status.success(), "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains("evaluated on the validation split, not the test split"),
        "{err}"
    );
    // --force retrains, but never into a directory of the other split
    args2.push("--force");
    let o = twotower(&args2, d);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(stderr(&o).contains("not the test split"), "{}", text(&o));
    assert_eq!(read("metrics.json"), m, "the validation run is untouched");
    // refit is the search's to set: an explicit one is refused, not ignored
    for extra in [
        vec!["--set", "train.refit=true"],
        vec!["--variants", "r=train.refit=true"],
    ] {
        let mut a = args.clone();
        a.extend_from_slice(&extra);
        let o = twotower(&a, d);
        assert!(!o.status.success(), "{}", text(&o));
        assert!(
            stderr(&o).contains("do not set train.refit"),
            "{}",
            text(&o)
        );
    }
    // the report's config and notes speak of the search phase and validation pairs
    assert!(md.contains("refit = false"), "{md}");
    assert!(md.contains("the search phase only"), "{md}");
    assert!(md.contains("validation pairs"), "{md}");
    assert!(!md.contains("test pairs"), "{md}");
}

/// The `validation` object of the search epoch `epoch` in a run's epochs.jsonl.
fn best_epoch_validation(run: &Path, epoch: u64) -> serde_json::Value {
    std::fs::read_to_string(run.join("epochs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["phase"] == "search" && v["epoch"].as_u64() == Some(epoch))
        .expect("the best epoch is logged")["validation"]
        .clone()
}
