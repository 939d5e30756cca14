//! # twotower-report
//!
//! Comparison reports: several config variants × several seeds, summarised
//! as mean ± sample standard deviation per metric (EVALUATION.md
//! "Reporting"), beside the most-popular baseline, with recall by
//! item-popularity decile and training-loss curves as plots.
//!
//! It also draws the mutual-information heatmap of `twotower mi`
//! ([`write_mi_heatmap`]). This crate holds all the plotting of the
//! workspace, so the training library (`twotower`) builds without a plotting
//! stack: it depends on `twotower`, never the reverse.
//!
//! The CLI (`twotower compare`) trains the runs; this crate holds the
//! computations and writers, so a report can be rebuilt from run directories:
//! - [`recall_by_popularity_decile`] / [`popularity_bin_counts`]: recall@K
//!   of the test pairs of each popularity bin of the catalog;
//! - [`mean_std`], [`Summary`]: mean and sample standard deviation (n − 1);
//! - [`read_run`]: one run directory (`metrics.json`, `epochs.jsonl`,
//!   [`BINS_FILE`]) → [`RunResult`];
//! - [`build_report`] → [`Report`]; [`render_markdown`], [`write_report`]
//!   (`report.md`, `report.json`, the plots);
//! - [`plot_recall_by_decile`], [`plot_loss_curves`]: PNG + SVG line charts,
//!   written atomically. PNG text is drawn with DejaVu Sans embedded in the
//!   binary (crate `dejavu`, plotters' `ab_glyph` backend), never a system font.
//!
//! Modules (every public item is re-exported at the crate root, so what was
//! `twotower::report::X` is `twotower_report::X`):
//! - [`stats`]: mean ± sample std ([`mean_std`], [`Summary`], [`format_summary`]);
//! - [`bins`]: recall by item-popularity bin and the per-run [`BINS_FILE`];
//! - [`read`]: reading finished run directories ([`read_run`]);
//! - [`variant`]: `NAME=KEY=VALUE,...` variants and the resolved config;
//! - [`compare`]: aggregating runs into a [`Report`] ([`build_report`]);
//! - [`markdown`]: `report.md` and writing the whole report ([`write_report`]);
//! - [`plot`]: the PNG + SVG line charts;
//! - [`mi_heatmap`]: the heatmap of the mutual information between item
//!   features (computed by `twotower::augment`), PNG + labelled SVG;
//! - [`png`](mod@png): RGB buffers written as PNG files, atomically;
//! - [`ReportError`]: the one error type.
//!
//! The file names and [`REPORT_FORMAT_VERSION`] below are the on-disk
//! format (ARCHITECTURE.md, "On-disk formats").

#![warn(missing_docs)]

pub mod bins;
pub mod compare;
mod error;
mod json;
pub mod markdown;
pub mod mi_heatmap;
pub mod plot;
pub mod png;
pub mod read;
pub mod stats;
pub mod variant;

pub use bins::{
    popularity_bin_counts, popularity_bins, recall_by_popularity_decile, write_run_bins, BinCounts,
    RunBins,
};
pub use compare::{
    build_report, BaselineReport, EpochSummary, LossCurve, Report, ReportInput, VariantReport,
};
pub use error::ReportError;
pub use markdown::{render_markdown, write_report};
pub use mi_heatmap::{mi_heatmap_svg, write_mi_heatmap, HeatmapError};
pub use plot::{
    plot_loss_curves, plot_recall_by_decile, write_line_chart, ChartSeries, LineChart, CHART_SIZE,
};
pub use png::atomic_write_rgb_png;
pub use read::{final_phase, is_metric_name, read_epochs, read_run, EpochLoss, RunResult};
pub use stats::{format_summary, mean_std, Summary};
pub use variant::{override_key, parse_variant, resolved_config, VariantSpec};

/// Version of `report.json` and of [`BINS_FILE`].
pub const REPORT_FORMAT_VERSION: u32 = 1;
/// Per-run file with the popularity-bin recall of the model and the baseline.
pub const BINS_FILE: &str = "recall_by_popularity.json";
/// The report in Markdown.
pub const REPORT_MD: &str = "report.md";
/// The report as JSON.
pub const REPORT_JSON: &str = "report.json";
/// Plot of recall@K by popularity decile (PNG; the SVG has the same stem).
pub const DECILE_PLOT: &str = "recall_by_popularity_decile.png";
/// Plot of the training loss per epoch (PNG; the SVG has the same stem).
pub const LOSS_PLOT: &str = "training_loss.png";
/// Metric families of EVALUATION.md, in report order (the config's).
pub use twotower::config::METRIC_PREFIXES;
/// Wording of the spread used everywhere in reports.
pub const STD_NOTE: &str = "sample standard deviation over seeds (n − 1 denominator)";
