//! The self-contained model artifact: a run copied to another folder with
//! its data deleted still serves `recommend`, `similar` and `export` with
//! the same answers; a run written before the artifact existed (the
//! committed run-format-1 fixture) still loads and upgrades; a damaged
//! artifact is refused with a message naming the file.

mod common;

use common::{bin, copy_dir, fixture, run_ok, run_on, stderr, train_config, train_output};
use std::path::{Path, PathBuf};

/// The fixture copied into `dir`, its run's base dir pointed at the copy
/// of its data (the machine that wrote it had it at /tmp/fx/data).
fn v1_copy(dir: &Path) -> PathBuf {
    copy_dir(&fixture("run-v1"), dir);
    let info = dir.join("run/run.json");
    let text = std::fs::read_to_string(&info).unwrap();
    let data = dir.join("data");
    let text = text.replace(
        "\"/tmp/fx/data\"",
        &serde_json::to_string(data.to_str().unwrap()).unwrap(),
    );
    std::fs::write(&info, text).unwrap();
    dir.join("run")
}

const SERVE: [&[&str]; 3] = [
    &["recommend", "--user", "1", "-k", "3"],
    &["similar", "--item", "2", "-k", "3"],
    &[
        "recommend",
        "--user",
        "new",
        "--feature",
        "age=40",
        "--items",
        "1,6",
        "-k",
        "4",
    ],
];

#[test]
fn a_format_1_run_loads_serves_as_it_did_and_upgrades_to_a_self_contained_one() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = v1_copy(dir.path());
    let want_rec = std::fs::read_to_string(fixture("run-v1").join("recommend-user-1.tsv")).unwrap();
    let want_sim = std::fs::read_to_string(fixture("run-v1").join("similar-item-2.tsv")).unwrap();
    assert_eq!(run_ok(SERVE[0], &run_dir), want_rec);
    assert_eq!(run_ok(SERVE[1], &run_dir), want_sim);
    let before_new_user = run_ok(SERVE[2], &run_dir);

    let out = run_ok(&["artifact"], &run_dir);
    assert!(
        out.contains("4 users, 7 items, 16 train interactions"),
        "{out}"
    );
    assert!(run_dir.join("artifact.json").is_file());
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    assert_eq!(run_ok(SERVE[0], &run_dir), want_rec);
    assert_eq!(run_ok(SERVE[1], &run_dir), want_sim);
    assert_eq!(run_ok(SERVE[2], &run_dir), before_new_user);

    // evaluation needs the test split, which only the data holds
    let o = run_on(&["eval"], &run_dir);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("i.csv") && err.contains("re-reads the data"),
        "{err}"
    );
}

#[test]
fn a_trained_run_moved_without_its_data_serves_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("run-v1").join("data"), &dir.path().join("data"));
    let trained = dir.path().join("run");
    train_config(&dir.path().join("data/c.toml"), &trained);
    // regression (fresh-clone trial): training again into a finished run
    // suggested --resume, which refuses a finished run
    let o = train_output(&dir.path().join("data/c.toml"), &trained);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("finished run") && !err.contains("--resume"),
        "{err}"
    );

    let before: Vec<String> = SERVE.iter().map(|a| run_ok(a, &trained)).collect();
    let export = |run_dir: &Path, out: &str| {
        let o = bin()
            .args(["export", "--run"])
            .arg(run_dir)
            .arg("--out")
            .arg(dir.path().join(out))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(dir.path().join(out).join("item_vectors.npy")).unwrap()
    };
    let vectors_before = export(&trained, "e1");

    let moved = dir.path().join("elsewhere/run");
    copy_dir(&trained, &moved);
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    std::fs::remove_dir_all(&trained).unwrap();
    for (args, want) in SERVE.iter().zip(&before) {
        assert_eq!(&run_ok(args, &moved), want, "{args:?}");
    }
    assert_eq!(export(&moved, "e2"), vectors_before);
}

#[test]
fn a_damaged_artifact_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = v1_copy(dir.path());
    run_ok(&["artifact"], &run_dir);

    let st = run_dir.join("artifact.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    let o = run_on(SERVE[0], &run_dir);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("artifact.safetensors") && err.contains("truncated"),
        "{err}"
    );
    std::fs::write(&st, &bytes).unwrap();

    let js = run_dir.join("artifact.json");
    let text = std::fs::read_to_string(&js).unwrap();
    std::fs::write(
        &js,
        text.replacen("\"format_version\":1", "\"format_version\":99", 1),
    )
    .unwrap();
    let o = run_on(SERVE[0], &run_dir);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("artifact.json") && err.contains("format version 99"),
        "{err}"
    );
}
