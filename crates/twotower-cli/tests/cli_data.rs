//! `twotower stats` and `twotower generate`, run as a binary.

mod common;

use common::{bin, configs, stderr};

fn stats_json(args: &[&str]) -> serde_json::Value {
    let out = bin()
        .arg("stats")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The EVALUATION.md split sizes of u.data, computed here independently:
/// a user with n ≥ 5 ratings puts ceil(n/5) of them in test.
fn reference_sizes() -> (u64, u64) {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/ml-100k/u.data"
    );
    let mut per_user: std::collections::HashMap<String, u64> = Default::default();
    let text = std::fs::read_to_string(p).unwrap();
    for l in text.lines() {
        *per_user
            .entry(l.split('\t').next().unwrap().to_string())
            .or_default() += 1;
    }
    let test: u64 = per_user
        .values()
        .map(|&n| if n >= 5 { n.div_ceil(5) } else { 0 })
        .sum();
    (100_000 - test, test)
}

#[test]
fn stats_on_ml100k_reports_exact_counts() {
    let cfg = configs().join("ml-100k.toml");
    let s = stats_json(&["--config", cfg.to_str().unwrap()]);
    let (train, test) = reference_sizes();
    assert_eq!(s["users"], 943);
    assert_eq!(s["items"], 1682);
    assert_eq!(s["interactions"], 100_000);
    assert_eq!(s["train_interactions"], train);
    assert_eq!(s["test_interactions"], test);
    // The generic (no preset) description gives the same figures.
    let g = stats_json(&[
        "--config",
        configs().join("ml-100k-generic.toml").to_str().unwrap(),
    ]);
    assert_eq!(g, s);
    // Text output names the figures.
    let out = bin()
        .args(["stats", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("users                 943") && text.contains("gini"),
        "{text}"
    );
}

#[test]
fn stats_set_overrides_and_rejects_unknown_keys() {
    let cfg = configs().join("ml-100k.toml");
    let cfg = cfg.to_str().unwrap();
    // min_interactions = 10000: no user qualifies, everything is train.
    let s = stats_json(&[
        "--config",
        cfg,
        "--set",
        "data.split.min_interactions=10000",
    ]);
    assert_eq!(s["test_interactions"], 0);
    let out = bin()
        .args(["stats", "--config", cfg, "--set", "data.splitt.kind=random"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("splitt") && err.contains("`split`"), "{err}");
}

#[test]
fn generate_writes_tables_and_a_config_that_stats_reads() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["csv", "parquet"] {
        let out = dir.path().join(format);
        let o = bin()
            .args([
                "generate",
                "--out",
                out.to_str().unwrap(),
                "--format",
                format,
            ])
            .args([
                "--users",
                "300",
                "--items",
                "200",
                "--interactions",
                "5000",
                "--seed",
                "7",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let s = stats_json(&["--config", out.join("dataset.toml").to_str().unwrap()]);
        assert_eq!(s["users"], 300);
        assert_eq!(s["items"], 200);
        assert_eq!(s["interactions"], 5000);
    }
    // Same seed → same data in both formats.
    let a = stats_json(&[
        "--config",
        dir.path().join("csv/dataset.toml").to_str().unwrap(),
    ]);
    let b = stats_json(&[
        "--config",
        dir.path().join("parquet/dataset.toml").to_str().unwrap(),
    ]);
    assert_eq!(a, b);
    // A bad parameter is an error message, not a panic.
    let o = bin()
        .args([
            "generate",
            "--out",
            dir.path().join("x").to_str().unwrap(),
            "--affinity",
            "2",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--affinity: "));
}

#[test]
fn batches_whose_loss_weights_are_all_zero_are_skipped_not_a_panic() {
    // Regression: a batch whose weights were all 0 panicked in the loss
    // (Σ w = 0). Users 1-2 have weight 0 on every row, user 3 weight 1; with
    // batch size 2 some batches are all-zero. Training must finish.
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("u,i,t,w\n");
    for u in 1..=3 {
        for i in 1..=8 {
            let w = if u == 3 { 1 } else { 0 };
            csv.push_str(&format!("{u},{i},{},{w}\n", u * 100 + i));
        }
    }
    std::fs::write(dir.path().join("i.csv"), csv).unwrap();
    let cfg = "[data.interactions]\nfile = \"i.csv\"\nuser = \"u\"\nitem = \"i\"\ntimestamp = \"t\"\nweight = \"w\"\n\
               [features.user_id]\nside = \"user\"\nkind = \"categorical\"\ncolumn = \"u\"\n\
               [features.item_id]\nside = \"item\"\nkind = \"categorical\"\ncolumn = \"i\"\n\
               [train]\nbatch_size = 2\nepochs = 2\nvalidation = false\nprogress = false\n";
    std::fs::write(dir.path().join("c.toml"), cfg).unwrap();
    let out = bin()
        .args(["train", "-q", "--config"])
        .arg(dir.path().join("c.toml"))
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(dir.path().join("run/metrics.json").exists());
}

#[test]
fn generated_part_files_train_as_the_single_file_streamed() {
    // `generate --parts 3` writes the interactions as a directory of
    // Parquet parts (a Spark job's layout); stats, and a run that streams
    // them under a tiny memory budget, equal those of the one-file table.
    let dir = tempfile::tempdir().unwrap();
    let mut metrics = Vec::new();
    for parts in ["1", "3"] {
        let out = dir.path().join(format!("p{parts}"));
        let o = bin()
            .args(["generate", "--format", "parquet", "--parts", parts])
            .args(["--users", "300", "--items", "200", "--interactions", "6000"])
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let cfg = out.join("dataset.toml");
        let s = stats_json(&["--config", cfg.to_str().unwrap()]);
        assert_eq!(s["interactions"], 6000);
        let run = out.join("run");
        let o = bin()
            .args(["train", "-q", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(&run)
            .args(["--set", "train.max_memory_gb=0.00001"])
            .args(["--set", "train.validation=false", "--set", "train.epochs=1"])
            .args([
                "--set",
                "model.embedding_dim=8",
                "--set",
                "train.batch_size=256",
            ])
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap())
                .unwrap();
        assert!(m["recall@50"].as_f64().unwrap() > 0.0, "{m}");
        metrics.push(m);
    }
    assert!(dir
        .path()
        .join("p3/interactions/part-00002.parquet")
        .exists());
    // every metric (the config differs by the interactions' file name)
    let at = |m: &serde_json::Value| -> Vec<(String, serde_json::Value)> {
        m.as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.contains('@'))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert!(at(&metrics[0]).len() > 10);
    assert_eq!(at(&metrics[0]), at(&metrics[1]));
}
