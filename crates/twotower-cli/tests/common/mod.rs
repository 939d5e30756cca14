//! Helpers shared by the CLI tests (`mod common;` in each file): the
//! binary, running it and reading its output, the committed fixtures, and
//! a tiny trainable dataset.
//!
//! Each test file is its own crate and uses only some of these, hence the
//! `dead_code` allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `twotower` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_twotower"))
}

/// `twotower ARGS --run RUN_DIR`, its output captured.
pub fn run_on(args: &[&str], run_dir: &Path) -> Output {
    bin().args(args).arg("--run").arg(run_dir).output().unwrap()
}

/// Stdout of `twotower ARGS --run RUN_DIR`, which must succeed.
pub fn run_ok(args: &[&str], run_dir: &Path) -> String {
    let o = run_on(args, run_dir);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// Stdout of a command that must succeed (its stderr in the panic message).
pub fn stdout_ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", stderr(o));
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Stderr, lossily decoded.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stderr of a command that must fail (its output in the panic message).
pub fn stderr_err(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "expected a failure; stdout:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    stderr(o)
}

/// `crates/twotower-cli/tests/fixtures/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The repository's `configs/` folder.
pub fn configs() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs"))
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Copies the folder `from` into `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
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

/// Users 1–4 click items 1–6 (4 clicks each, so every row is in train:
/// users with fewer than 5 interactions have no test split); user 1's items
/// in time order are 1, 2, 3, 4. Item clicks: 1 → 4, 2 → 3, 3 → 3, 4 → 2,
/// 5 → 2, 6 → 2; an item 7 in an item table has no click (cold).
pub const INTERACTIONS: &str = "u,i,t\n\
1,1,1\n1,2,2\n1,3,3\n1,4,4\n\
2,1,5\n2,2,6\n2,5,7\n2,6,8\n\
3,1,9\n3,3,10\n3,5,11\n3,6,12\n\
4,1,13\n4,2,14\n4,3,15\n4,4,16\n";

/// `[data.interactions]` over [`INTERACTIONS`] in `i.csv`, with the
/// user-id feature on `u`.
pub const INTERACTIONS_CONFIG: &str = "[data.interactions]\nfile = \"i.csv\"\nuser = \"u\"\n\
item = \"i\"\ntimestamp = \"t\"\n\
[features.user_id]\nside = \"user\"\nkind = \"categorical\"\ncolumn = \"u\"\n";

/// A tiny, quick `[train]` section: 2 epochs of batch 4, no validation.
pub const TINY_TRAIN: &str =
    "[train]\nbatch_size = 4\nepochs = 2\nvalidation = false\nprogress = false\n";

/// `twotower train -q --config CONFIG --out RUN`, its output captured.
pub fn train_output(config: &Path, run: &Path) -> Output {
    bin()
        .args(["train", "-q", "--config"])
        .arg(config)
        .arg("--out")
        .arg(run)
        .output()
        .unwrap()
}

/// Trains the config file `config` into `run` (asserting success).
pub fn train_config(config: &Path, run: &Path) {
    let o = train_output(config, run);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Writes `config` to `dir/c.toml` and trains it into `dir/OUT` (asserting
/// success); returns the run directory.
pub fn train(dir: &Path, config: &str, out: &str) -> PathBuf {
    let cfg = write(dir, "c.toml", config);
    let run = dir.join(out);
    train_config(&cfg, &run);
    run
}
