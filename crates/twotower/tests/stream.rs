//! Training on a streamed train split (`train.max_memory_gb` below the
//! data's size): the same evaluation as the in-memory load for the same
//! model (test pairs, popularity slices, seen-item exclusion), the same
//! artifact train tensors, deterministic runs, a bit-identical resume, every
//! train row in exactly one batch of an epoch, and clear errors for what
//! cannot be streamed.

use std::path::{Path, PathBuf};

use twotower::config::Config;
use twotower::pipeline::{load_data, train_to_dir, TrainJob};
use twotower::run::{evaluate_test, save_run, RunInfo};
use twotower::train::{train, TrainError, TrainOptions};

/// A synthetic dataset written as Parquet (with a dataset.toml) in `dir`.
fn write_data(dir: &Path) -> PathBuf {
    let cfg = twotower_data::SyntheticConfig {
        users: 200,
        items: 300,
        interactions: 8000,
        seed: 5,
        ..Default::default()
    };
    twotower_data::write_dataset(&cfg, dir, twotower_data::OutFormat::Parquet).unwrap();
    dir.join("dataset.toml")
}

const SMALL: [&str; 9] = [
    "model.embedding_dim=8",
    "model.hidden=[]",
    "model.out_dim=8",
    "train.epochs=2",
    "train.batch_size=64",
    "train.validation=false",
    "train.progress=false",
    "train.threads=1",
    "eval.max_users=120",
];

fn config(path: &Path, streamed: bool, extra: &[&str]) -> Config {
    let mut o: Vec<String> = SMALL.iter().map(|s| s.to_string()).collect();
    // 8,000 rows are 0.00012 GiB: a budget of 1e-5 GiB streams them
    o.push(format!(
        "train.max_memory_gb={}",
        if streamed { 1e-5 } else { 0.0 }
    ));
    o.push("train.stream_window=500".into());
    o.extend(extra.iter().map(|s| s.to_string()));
    Config::load(Some(path), &o).unwrap()
}

fn opts(dir: &Path, resume: bool, stop: Option<u64>) -> TrainOptions<'static> {
    TrainOptions {
        run_dir: dir.to_path_buf(),
        resume,
        interrupt: None,
        verbose: false,
        stop_after_steps: stop,
        on_epoch: None,
    }
}

fn bits(m: &twotower::model::TwoTower<f32>) -> Vec<u32> {
    m.named_tensors()
        .into_iter()
        .flat_map(|(_, _, d)| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        .collect()
}

#[test]
fn a_streamed_run_evaluates_and_saves_as_the_in_memory_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_data(dir.path());
    let (cfg_s, cfg_m) = (config(&path, true, &[]), config(&path, false, &[]));
    let ds_s = load_data(&cfg_s, false).unwrap();
    let ds_m = load_data(&cfg_m, false).unwrap();
    let stream = ds_s.train_stream.as_ref().expect("streamed");
    assert!(ds_m.train_stream.is_none());
    assert_eq!(stream.n_rows, ds_m.train.len() as u64);

    let run = dir.path().join("s");
    let out = train(&cfg_s, &ds_s, &opts(&run, false, None)).unwrap();
    let e = out.history[0]["examples_per_second"].as_f64().unwrap();
    assert!(e > 0.0);
    // one epoch saw every train row once
    let per_epoch = out.examples_per_second * out.train_seconds / 2.0;
    assert!(
        (per_epoch - stream.n_rows as f64).abs() < 0.5,
        "{per_epoch}"
    );

    // the same model evaluated on either load: the same metrics
    let info = RunInfo::new(&cfg_s, &out);
    let ms = evaluate_test(&cfg_s, &ds_s, &out.model, &info).unwrap();
    let mm = evaluate_test(&cfg_m, &ds_m, &out.model, &info).unwrap();
    for k in [
        "recall@50",
        "ndcg@10",
        "tail_recall@50",
        "coverage@50",
        "n_test_users",
    ] {
        assert_eq!(ms[k], mm[k], "{k}");
    }
    assert_eq!(ms["most_popular"], mm["most_popular"]);
    assert_eq!(ms["n_train"], mm["n_train"]);
    assert_eq!(ms["train_streamed"], serde_json::json!(true));
    assert!(ms["recall@50"].as_f64().unwrap() > 0.0);

    // the artifact's train tensors, written from the stream column by column
    let (a, b) = (dir.path().join("as"), dir.path().join("am"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    save_run(&a, &cfg_s, &ds_s, &out.model, &info).unwrap();
    save_run(&b, &cfg_m, &ds_m, &out.model, &info).unwrap();
    let f = "artifact.safetensors";
    assert_eq!(
        std::fs::read(a.join(f)).unwrap(),
        std::fs::read(b.join(f)).unwrap()
    );
}

#[test]
fn streamed_training_is_deterministic_and_resumes_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_data(dir.path());
    let cfg = config(
        &path,
        true,
        &["ssl.enabled=true", "loss.mixed_negatives=16"],
    );
    let ds = load_data(&cfg, false).unwrap();
    let full = train(&cfg, &ds, &opts(&dir.path().join("a"), false, None)).unwrap();
    let again = train(&cfg, &ds, &opts(&dir.path().join("b"), false, None)).unwrap();
    assert!(bits(&full.model) == bits(&again.model));
    // interrupted mid-epoch (the stream is re-read and the done batches
    // skipped), then resumed
    let c = dir.path().join("c");
    let e = train(&cfg, &ds, &opts(&c, false, Some(29))).err().unwrap();
    assert!(matches!(e, TrainError::Interrupted { .. }), "{e}");
    let resumed = train(&cfg, &ds, &opts(&c, true, None)).unwrap();
    assert!(bits(&full.model) == bits(&resumed.model));
    // another shuffle window draws other batches: another model
    let other = config(
        &path,
        true,
        &[
            "ssl.enabled=true",
            "loss.mixed_negatives=16",
            "train.stream_window=50",
        ],
    );
    let o = train(&other, &ds, &opts(&dir.path().join("d"), false, None)).unwrap();
    assert!(bits(&full.model) != bits(&o.model));
}

#[test]
fn the_train_job_streams_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_data(dir.path());
    let cfg = config(&path, true, &[]);
    let job = TrainJob {
        config: &cfg,
        out: dir.path().join("run"),
        resume: false,
        force: false,
        interrupt: None,
        verbose: false,
        on_epoch: None,
    };
    let m = train_to_dir(&job).unwrap();
    assert_eq!(m["train_streamed"], serde_json::json!(true));
    // the saved run loads for serving and re-evaluation
    let loaded = twotower::run::load_run(&dir.path().join("run")).unwrap();
    assert_eq!(
        loaded.dataset.train.len() as u64,
        m["n_train"].as_u64().unwrap()
    );
}

#[test]
fn what_needs_the_train_split_in_memory_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_data(dir.path());
    for (set, key) in [
        ("train.validation=true", "train.validation"),
        ("model.history.enabled=true", "model.history.enabled"),
        (
            "loss.mask_false_negatives=true",
            "loss.mask_false_negatives",
        ),
        ("train.recency_decay=1.0", "train.recency_decay"),
    ] {
        let cfg = config(&path, true, &[set]);
        let ds = load_data(&cfg, false).unwrap();
        let e = train(&cfg, &ds, &opts(&dir.path().join("x"), false, None))
            .err()
            .unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains(key) && msg.contains("train.max_memory_gb"),
            "{set}: {msg}"
        );
    }
    // every refusal at once, with the budget that would load the split
    let cfg = config(
        &path,
        true,
        &["train.validation=true", "train.recency_decay=1.0"],
    );
    let ds = load_data(&cfg, false).unwrap();
    let msg = train(&cfg, &ds, &opts(&dir.path().join("y"), false, None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("train.validation") && msg.contains("train.recency_decay"),
        "{msg}"
    );
    assert!(msg.contains("8000 interaction rows need"), "{msg}");
}
