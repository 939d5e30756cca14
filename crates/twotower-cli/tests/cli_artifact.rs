//! The self-contained model artifact: a run copied to another folder with
//! its data deleted still serves `recommend`, `similar` and `export` with
//! the same answers; a run written before the artifact existed (the
//! committed run-format-1 fixture) still loads and upgrades; a damaged
//! artifact is refused with a message naming the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_twotower"))
}

fn fixture() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/run-v1"
    ))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn run(args: &[&str], run_dir: &Path) -> Output {
    bin().args(args).arg("--run").arg(run_dir).output().unwrap()
}

fn stdout_ok(args: &[&str], run_dir: &Path) -> String {
    let o = run(args, run_dir);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The fixture copied into `dir`, its run's base dir pointed at the copy
/// of its data (the machine that wrote it had it at /tmp/fx/data).
fn v1_copy(dir: &Path) -> PathBuf {
    copy_dir(&fixture(), dir);
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
    let want_rec = std::fs::read_to_string(fixture().join("recommend-user-1.tsv")).unwrap();
    let want_sim = std::fs::read_to_string(fixture().join("similar-item-2.tsv")).unwrap();
    assert_eq!(stdout_ok(SERVE[0], &run_dir), want_rec);
    assert_eq!(stdout_ok(SERVE[1], &run_dir), want_sim);
    let before_new_user = stdout_ok(SERVE[2], &run_dir);

    let out = stdout_ok(&["artifact"], &run_dir);
    assert!(
        out.contains("4 users, 7 items, 16 train interactions"),
        "{out}"
    );
    assert!(run_dir.join("artifact.json").is_file());
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    assert_eq!(stdout_ok(SERVE[0], &run_dir), want_rec);
    assert_eq!(stdout_ok(SERVE[1], &run_dir), want_sim);
    assert_eq!(stdout_ok(SERVE[2], &run_dir), before_new_user);

    // evaluation needs the test split, which only the data holds
    let o = run(&["eval"], &run_dir);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("i.csv") && err.contains("re-reads the data"),
        "{err}"
    );
}

#[test]
fn a_trained_run_moved_without_its_data_serves_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture().join("data"), &dir.path().join("data"));
    let trained = dir.path().join("run");
    let o = bin()
        .args(["train", "-q", "--config"])
        .arg(dir.path().join("data/c.toml"))
        .arg("--out")
        .arg(&trained)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // regression (fresh-clone trial): training again into a finished run
    // suggested --resume, which refuses a finished run
    let o = bin()
        .args(["train", "-q", "--config"])
        .arg(dir.path().join("data/c.toml"))
        .arg("--out")
        .arg(&trained)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("finished run") && !err.contains("--resume"),
        "{err}"
    );

    let before: Vec<String> = SERVE.iter().map(|a| stdout_ok(a, &trained)).collect();
    let export = |run_dir: &Path, out: &str| {
        let o = bin()
            .args(["export", "--run"])
            .arg(run_dir)
            .arg("--out")
            .arg(dir.path().join(out))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(dir.path().join(out).join("item_vectors.npy")).unwrap()
    };
    let vectors_before = export(&trained, "e1");

    let moved = dir.path().join("elsewhere/run");
    copy_dir(&trained, &moved);
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    std::fs::remove_dir_all(&trained).unwrap();
    for (args, want) in SERVE.iter().zip(&before) {
        assert_eq!(&stdout_ok(args, &moved), want, "{args:?}");
    }
    assert_eq!(export(&moved, "e2"), vectors_before);
}

#[test]
fn a_damaged_artifact_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = v1_copy(dir.path());
    stdout_ok(&["artifact"], &run_dir);

    let st = run_dir.join("artifact.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    let o = run(SERVE[0], &run_dir);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
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
    let o = run(SERVE[0], &run_dir);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("artifact.json") && err.contains("format version 99"),
        "{err}"
    );
}
