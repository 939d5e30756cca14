//! Training progress: a bar on a terminal, plain lines in a log.
//!
//! On a terminal, stderr shows an `indicatif` bar (position, loss,
//! examples/s, ETA) that is redrawn in place. When stderr is a file or a
//! pipe (a job scheduler's log, `2> train.log`, `| tee`), a redrawn bar is
//! useless and `indicatif` hides it; [`Progress`] prints instead one line
//! every `train.progress_seconds` seconds of wall clock:
//!
//! ```text
//! train epoch 1/3: batch 12288/97657 (12.6 %), 3145728 examples, 102383 ex/s, loss 4.1234, eta 13m54s
//! ```
//!
//! `examples` counts the examples of this epoch trained so far, `ex/s` is
//! the epoch's rate in this process, `loss` the mean total loss of the
//! epoch's steps so far, `eta` the time left in the epoch at that rate.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Where and how often progress is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProgressMode {
    /// Nothing (`train.progress = false`, `--quiet`).
    Off,
    /// An in-place bar (stderr is a terminal).
    Bar,
    /// A line every so many seconds (stderr is not a terminal).
    Lines {
        /// Wall-clock interval between two lines (> 0).
        every: Duration,
    },
}

impl ProgressMode {
    /// The mode for `enabled` (`train.progress`) and `every_seconds`
    /// (`train.progress_seconds`; 0 turns the lines off) given whether
    /// stderr is a terminal.
    pub fn choose(enabled: bool, every_seconds: f64, stderr_is_terminal: bool) -> Self {
        if !enabled {
            ProgressMode::Off
        } else if stderr_is_terminal {
            ProgressMode::Bar
        } else if every_seconds > 0.0 && every_seconds.is_finite() {
            ProgressMode::Lines {
                every: Duration::from_secs_f64(every_seconds),
            }
        } else {
            ProgressMode::Off
        }
    }

    /// [`ProgressMode::choose`] for this process's stderr.
    pub fn for_stderr(enabled: bool, every_seconds: f64) -> Self {
        Self::choose(enabled, every_seconds, std::io::stderr().is_terminal())
    }
}

/// One epoch's progress display (see the module docs).
pub struct Progress {
    bar: indicatif::ProgressBar,
    lines: Option<Lines>,
}

struct Lines {
    every: Duration,
    prefix: String,
    total: u64,
    start_batch: u64,
    start: Instant,
    last: Instant,
}

/// A duration as `1h02m03s`, `4m05s` or `6s` (whole seconds, rounded down).
pub fn format_eta(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "?".into();
    }
    let s = seconds as u64;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// The log line for `batch` of `total` batches done, `examples` of this
/// epoch, at `examples_per_second`, mean `loss`, `eta_seconds` left.
pub fn format_line(
    prefix: &str,
    batch: u64,
    total: u64,
    examples: u64,
    examples_per_second: f64,
    loss: f64,
    eta_seconds: f64,
) -> String {
    let pct = if total == 0 {
        100.0
    } else {
        100.0 * batch as f64 / total as f64
    };
    format!(
        "{prefix}: batch {batch}/{total} ({pct:.1} %), {examples} examples, {examples_per_second:.0} ex/s, loss {loss:.4}, eta {}",
        format_eta(eta_seconds)
    )
}

impl Progress {
    /// Starts the display of an epoch of `total` batches, `position` of
    /// which are already done (a resumed epoch), labelled `prefix`
    /// (e.g. `train epoch 1/3`).
    pub fn new(mode: ProgressMode, prefix: String, total: u64, position: u64) -> Self {
        match mode {
            ProgressMode::Bar => {
                let bar = indicatif::ProgressBar::new(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {pos}/{len} {msg} (eta {eta})",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(prefix);
                bar.set_position(position);
                Self { bar, lines: None }
            }
            ProgressMode::Lines { every } => {
                let now = Instant::now();
                Self {
                    bar: indicatif::ProgressBar::hidden(),
                    lines: Some(Lines {
                        every,
                        prefix,
                        total,
                        start_batch: position,
                        start: now,
                        last: now,
                    }),
                }
            }
            ProgressMode::Off => Self {
                bar: indicatif::ProgressBar::hidden(),
                lines: None,
            },
        }
    }

    /// Reports that `batch` batches of the epoch are done, `examples` of
    /// its examples trained in this process at `examples_per_second`,
    /// with mean loss `loss` so far.
    pub fn update(&mut self, batch: u64, examples: u64, examples_per_second: f64, loss: f64) {
        self.bar.set_position(batch);
        self.bar
            .set_message(format!("loss {loss:.4} {examples_per_second:.0} ex/s"));
        if let Some(l) = &mut self.lines {
            let now = Instant::now();
            if now.duration_since(l.last) >= l.every {
                l.last = now;
                let done = batch.saturating_sub(l.start_batch);
                let left = l.total.saturating_sub(batch);
                let eta = if done == 0 {
                    f64::NAN
                } else {
                    now.duration_since(l.start).as_secs_f64() / done as f64 * left as f64
                };
                eprintln!(
                    "{}",
                    format_line(
                        &l.prefix,
                        batch,
                        l.total,
                        examples,
                        examples_per_second,
                        loss,
                        eta
                    )
                );
            }
        }
    }

    /// Leaves the bar as it is (training stops with an error or an interrupt).
    pub fn abandon(&self) {
        self.bar.abandon();
    }

    /// Clears the bar at the end of the epoch.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_formats() {
        assert_eq!(format_eta(0.4), "0s");
        assert_eq!(format_eta(59.9), "59s");
        assert_eq!(format_eta(60.0), "1m00s");
        assert_eq!(format_eta(834.0), "13m54s");
        assert_eq!(format_eta(3723.0), "1h02m03s");
        assert_eq!(format_eta(f64::NAN), "?");
        assert_eq!(format_eta(-1.0), "?");
    }

    #[test]
    fn line_formats() {
        // 12288 of 97657 batches = 12.58 %
        assert_eq!(
            format_line("train epoch 1/3", 12288, 97657, 3145728, 102383.4, 4.12344, 834.2),
            "train epoch 1/3: batch 12288/97657 (12.6 %), 3145728 examples, 102383 ex/s, loss 4.1234, eta 13m54s"
        );
        assert_eq!(
            format_line("p", 0, 0, 0, 0.0, 0.0, f64::NAN),
            "p: batch 0/0 (100.0 %), 0 examples, 0 ex/s, loss 0.0000, eta ?"
        );
    }

    #[test]
    fn mode_follows_the_terminal() {
        assert_eq!(ProgressMode::choose(false, 30.0, true), ProgressMode::Off);
        assert_eq!(ProgressMode::choose(true, 30.0, true), ProgressMode::Bar);
        assert_eq!(
            ProgressMode::choose(true, 30.0, false),
            ProgressMode::Lines {
                every: Duration::from_secs(30)
            }
        );
        assert_eq!(ProgressMode::choose(true, 0.0, false), ProgressMode::Off);
        assert_eq!(
            ProgressMode::choose(true, f64::NAN, false),
            ProgressMode::Off
        );
    }
}
