//! The `train` job as one function: check the run directory, load and
//! encode the data, train, write the finished run (model, artifact,
//! `run.json`), evaluate on the test split and write `metrics.json`.
//!
//! The CLI's `twotower train` and the Python package's `twotower.train`
//! both call [`train_to_dir`], so a run trained from either is the same
//! run, bit for bit, for the same config and seed.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use twotower_data::{DataError, Dataset};

use crate::config::Config;
use crate::run::{self, RunError, RunInfo};
use crate::train::{train, TrainError, TrainOptions};

/// Why a run directory cannot be trained into (checked before any work).
///
/// The messages name both spellings of an option: the CLI's flag and the
/// Python keyword (`--force` / `force=True`).
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// The path, or the nearest existing ancestor, is a file.
    #[error("out {out}: {file} is a file, expected a directory")]
    NotADirectory {
        /// The requested run directory.
        out: PathBuf,
        /// The file in the way.
        file: PathBuf,
    },
    /// A finished run is there and neither resume nor force was asked.
    #[error(
        "{0} already holds a finished run (see its metrics.json); use --force (force=True) to replace it, \
         or another out directory"
    )]
    Finished(PathBuf),
    /// An unfinished run (a checkpoint) is there.
    #[error(
        "{0} already holds a run; use --resume (resume=True) to continue it, --force (force=True) to \
         replace it, or another out directory"
    )]
    Unfinished(PathBuf),
    /// Resume was asked and there is no checkpoint.
    #[error("resume: {0} holds no checkpoint")]
    NoCheckpoint(PathBuf),
    /// Resume was asked of a run that has already finished.
    #[error(
        "resume: the run in {0} has already finished (see its metrics.json; `twotower eval --run` \
         re-evaluates it); use --force (force=True) without resume to train it again"
    )]
    AlreadyFinished(PathBuf),
}

/// What can stop [`train_to_dir`].
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The run directory cannot be used.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// Creating the run directory failed.
    #[error("creating {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The data could not be read or encoded (file, line and column named).
    #[error(transparent)]
    Data(#[from] Box<DataError>),
    /// Training failed or was interrupted.
    #[error(transparent)]
    Train(#[from] Box<TrainError>),
    /// Writing the run or evaluating it failed.
    #[error(transparent)]
    Run(#[from] Box<RunError>),
}

impl From<DataError> for PipelineError {
    fn from(e: DataError) -> Self {
        Self::Data(Box::new(e))
    }
}

impl From<TrainError> for PipelineError {
    fn from(e: TrainError) -> Self {
        Self::Train(Box::new(e))
    }
}

impl From<RunError> for PipelineError {
    fn from(e: RunError) -> Self {
        Self::Run(Box::new(e))
    }
}

impl PipelineError {
    /// Whether training was stopped by an interrupt (a checkpoint was saved).
    pub fn is_interrupted(&self) -> bool {
        matches!(self, Self::Train(e) if matches!(**e, TrainError::Interrupted { .. }))
    }
}

/// Checks `out` before any work: it, and its nearest existing ancestor, are
/// directories; it holds no finished run unless `force` (or `resume`,
/// which is refused on a finished run); `resume` needs a checkpoint.
///
/// # Errors
/// [`RunDirError`], naming the directory.
pub fn check_run_dir(out: &Path, resume: bool, force: bool) -> Result<(), RunDirError> {
    if let Some(p) = out.ancestors().find(|p| p.exists()) {
        if !p.is_dir() {
            return Err(RunDirError::NotADirectory {
                out: out.to_path_buf(),
                file: p.to_path_buf(),
            });
        }
    }
    let finished = out.join(run::RUN_FILE).exists();
    let checkpoint = out.join(crate::checkpoint::META_FILE).exists();
    match (resume, finished, checkpoint) {
        (false, true, _) if !force => Err(RunDirError::Finished(out.to_path_buf())),
        (false, false, true) if !force => Err(RunDirError::Unfinished(out.to_path_buf())),
        (true, _, false) => Err(RunDirError::NoCheckpoint(out.to_path_buf())),
        // run.json is written only once training has finished
        (true, true, true) => Err(RunDirError::AlreadyFinished(out.to_path_buf())),
        _ => Ok(()),
    }
}

/// One training job, as `twotower train` takes it.
pub struct TrainJob<'a> {
    /// The checked config.
    pub config: &'a Config,
    /// The run directory.
    pub out: PathBuf,
    /// Continue the interrupted run in `out`.
    pub resume: bool,
    /// Replace a run already in `out`.
    pub force: bool,
    /// Set by a Ctrl-C handler; checked after every step.
    pub interrupt: Option<&'a AtomicBool>,
    /// Print the data summary, per-epoch lines and progress to stderr.
    pub verbose: bool,
    /// Called with each epoch's record ([`TrainOptions::on_epoch`]).
    pub on_epoch: Option<&'a (dyn Fn(&serde_json::Value) + Sync)>,
}

/// Why the train split of `cfg`'s data must be streamed, or `None` when it
/// fits `train.max_memory_gb` ([`twotower_data::stream_reason`]).
///
/// # Errors
/// [`DataError`] if the interactions file cannot be opened.
pub fn stream_reason(cfg: &Config) -> Result<Option<String>, DataError> {
    twotower_data::stream_reason(&cfg.data(), &cfg.base_dir, cfg.raw.train.max_memory_gb)
}

/// Loads and encodes the dataset of `cfg` (streaming its train split when
/// it exceeds `train.max_memory_gb`: [`stream_reason`]); with `verbose`, prints a one-line
/// summary. Loading warnings (they change what the model can learn) are
/// printed always.
///
/// # Errors
/// [`DataError`] naming the file, line and column.
pub fn load_data(cfg: &Config, verbose: bool) -> Result<Dataset, DataError> {
    let t = std::time::Instant::now();
    let data = cfg.data();
    let ds = match stream_reason(cfg)? {
        Some(why) => {
            if verbose {
                eprintln!("data: {why}: streaming the train split from its file(s) (read twice now, then once per epoch)");
            }
            twotower_data::load_dataset_streamed(&data, &cfg.raw.features, &cfg.base_dir)?
        }
        None => twotower_data::load_dataset(&data, &cfg.raw.features, &cfg.base_dir)?,
    };
    if verbose {
        let resident = crate::memory::resident_bytes()
            .map(|r| format!(", resident {}", crate::memory::gib(r)))
            .unwrap_or_default();
        eprintln!(
            "data: {} users, {} items, {} train / {} test interactions ({:.2}s{resident})",
            ds.users.ids.len(),
            ds.items.ids.len(),
            ds.train_stream
                .as_ref()
                .map_or(ds.train.user.len() as u64, |s| s.n_rows),
            ds.test.user.len(),
            t.elapsed().as_secs_f64()
        );
    }
    for w in ds.report.warnings(ds.users.ids.len(), ds.items.ids.len()) {
        eprintln!("warning: {w}");
    }
    Ok(ds)
}

/// Runs the whole `train` job into `job.out` and returns the metrics.json
/// document it wrote (EVALUATION.md's metric names, the most-popular
/// baseline under `"most_popular"`).
///
/// # Errors
/// [`PipelineError`]: a run directory in the way (before any work), bad
/// data, a failed or interrupted training ([`PipelineError::is_interrupted`];
/// the checkpoint is saved), a failed write.
pub fn train_to_dir(job: &TrainJob<'_>) -> Result<serde_json::Value, PipelineError> {
    let cfg = job.config;
    let out = &job.out;
    check_run_dir(out, job.resume, job.force)?;
    std::fs::create_dir_all(out).map_err(|source| PipelineError::Io {
        path: out.clone(),
        source,
    })?;
    let ds = load_data(cfg, job.verbose)?;
    let mut cfg_run = cfg.clone();
    if !job.verbose {
        cfg_run.raw.train.progress = false;
    }
    let opts = TrainOptions {
        run_dir: out.clone(),
        resume: job.resume,
        interrupt: job.interrupt,
        verbose: job.verbose,
        stop_after_steps: None,
        on_epoch: job.on_epoch,
    };
    let outcome = train(&cfg_run, &ds, &opts)?;
    let info = RunInfo::new(cfg, &outcome);
    run::save_run(out, cfg, &ds, &outcome.model, &info)?;
    if job.verbose {
        eprintln!(
            "trained in {:.1}s ({:.0} examples/s); evaluating on the test split...",
            outcome.train_seconds, outcome.examples_per_second
        );
    }
    let metrics = run::evaluate_test(cfg, &ds, &outcome.model, &info)?;
    run::write_json(&out.join(run::METRICS_FILE), &metrics)?;
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dir_checks_name_the_case() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        // a new directory: fine, and resume has nothing to continue
        check_run_dir(&out, false, false).unwrap();
        assert!(matches!(
            check_run_dir(&out, true, false),
            Err(RunDirError::NoCheckpoint(_))
        ));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join(crate::checkpoint::META_FILE), "{}").unwrap();
        assert!(matches!(
            check_run_dir(&out, false, false),
            Err(RunDirError::Unfinished(_))
        ));
        check_run_dir(&out, true, false).unwrap();
        check_run_dir(&out, false, true).unwrap();
        std::fs::write(out.join(run::RUN_FILE), "{}").unwrap();
        let e = check_run_dir(&out, false, false).unwrap_err();
        assert!(matches!(e, RunDirError::Finished(_)));
        assert!(e.to_string().contains("--force (force=True)"), "{e}");
        assert!(matches!(
            check_run_dir(&out, true, false),
            Err(RunDirError::AlreadyFinished(_))
        ));
        check_run_dir(&out, false, true).unwrap();
        // a file where the directory (or an ancestor) should be
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        for p in [file.clone(), file.join("sub")] {
            let e = check_run_dir(&p, false, false).unwrap_err();
            assert!(
                matches!(&e, RunDirError::NotADirectory { file: f, .. } if *f == file),
                "{e}"
            );
        }
    }
}
