//! Writing a report: [`render_markdown`] (`report.md`) and
//! [`write_report`] (`report.md`, `report.json` and the plots, each file
//! atomically).

use std::path::Path;

use twotower::util::atomic_write_bytes;

use crate::error::io_err;
use crate::json::write_json_file;
use crate::{
    format_summary, plot_loss_curves, plot_recall_by_decile, Report, ReportError, DECILE_PLOT,
    LOSS_PLOT, REPORT_JSON, REPORT_MD, STD_NOTE,
};

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The report as Markdown: the variants and their overrides; one table per
/// K with a row per variant (mean ± sample std over seeds) and a row per
/// baseline (std 0); training cost; recall by popularity bin; the plots;
/// the base config as TOML; notes.
pub fn render_markdown(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let n_seeds = r.seeds.len();
    let _ = writeln!(s, "# twotower compare\n");
    let cfg = r
        .config_file
        .as_ref()
        .map(|p| format!("`{}`", p.display()))
        .unwrap_or_else(|| "built-in synthetic default".into());
    let glob = if r.global_overrides.is_empty() {
        "none".to_string()
    } else {
        r.global_overrides
            .iter()
            .map(|o| format!("`{}`", md_escape(o)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        s,
        "- Config: {cfg}; overrides applied to every variant first: {glob}."
    );
    let _ = writeln!(
        s,
        "- Seeds (`train.seed`): {} ({} runs per variant). Every value is **mean ± {}**; the most-popular baseline is deterministic (one value, std 0).",
        r.seeds.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "),
        n_seeds,
        STD_NOTE
    );
    let split = if r.split == "validation" {
        "**validation split** (hyper-parameter search: each run is the search phase alone, early-stopped on the validation split carved from train and evaluated on it, items first seen after the validation cut out of vocabulary; report the chosen variant on the test split)"
    } else {
        "test split"
    };
    let _ = writeln!(
        s,
        "- Protocol: EVALUATION.md (temporal split, full-catalog exact ranking, train items removed, ties by item id); evaluated on the {split}. Total wall time {:.1} s.\n",
        r.total_seconds
    );

    let _ = writeln!(s, "## Variants\n");
    let _ = writeln!(s, "| variant | overrides (after the global ones) | runs |");
    let _ = writeln!(s, "|---|---|---|");
    for v in &r.variants {
        let o = if v.overrides.is_empty() {
            "(none)".to_string()
        } else {
            v.overrides
                .iter()
                .map(|o| format!("`{}`", md_escape(o)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let runs = v
            .runs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            md_escape(&v.name),
            o,
            md_escape(&runs)
        );
    }
    let _ = writeln!(s);

    for &k in &r.ks {
        let names: Vec<&String> = r
            .metric_names
            .iter()
            .filter(|n| {
                n.rsplit_once('@')
                    .map(|(_, kk)| kk == k.to_string())
                    .unwrap_or(false)
            })
            .collect();
        if names.is_empty() {
            continue;
        }
        let _ = writeln!(s, "## Metrics at K = {k}\n");
        let _ = writeln!(
            s,
            "| variant | {} |",
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(s, "|---|{}", "---|".repeat(names.len()));
        for v in &r.variants {
            let cells: Vec<String> = names
                .iter()
                .map(|n| {
                    format_summary(v.metrics.get(*n).and_then(|x| x.as_ref()), 4, v.runs.len())
                })
                .collect();
            let _ = writeln!(s, "| {} | {} |", md_escape(&v.name), cells.join(" | "));
        }
        for b in &r.baselines {
            let cells: Vec<String> = names
                .iter()
                .map(|n| format_summary(b.metrics.get(*n).and_then(|x| x.as_ref()), 4, 1))
                .collect();
            let _ = writeln!(s, "| {} | {} |", md_escape(&b.name), cells.join(" | "));
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Training cost\n");
    let _ = writeln!(s, "| variant | train wall time (s) | examples/s | epochs of the final-model phase, per seed |");
    let _ = writeln!(s, "|---|---|---|---|");
    for v in &r.variants {
        let phase = v
            .loss
            .as_ref()
            .map(|l| format!(" ({})", l.phase))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {}{} |",
            md_escape(&v.name),
            format_summary(v.train_seconds.as_ref(), 1, v.runs.len()),
            format_summary(v.examples_per_second.as_ref(), 0, v.runs.len()),
            v.final_epochs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            phase
        );
    }
    let phases = if r.split == "validation" {
        "the search phase only"
    } else {
        "both phases: validation search and refit"
    };
    let _ = writeln!(
        s,
        "\nWall time: training of one run ({phases}), seconds; examples/s: main-batch training examples per second over the same time.\n"
    );
    // the pairs the figures count: the evaluated split's
    let pairs = if r.split == "validation" {
        "validation"
    } else {
        "test"
    };

    if let Some(k) = r.bins_k {
        let nb = r.n_bins;
        let _ = writeln!(s, "## recall@{k} by item-popularity bin\n");
        let _ = writeln!(
            s,
            "Bin 1 holds the most popular 1/{nb} of the catalog, bin {nb} the least popular (train popularity descending, ties by item id). Each cell: the fraction of the distinct (user, item) {pairs} pairs whose item is in the bin that have the item in the user's top-{k}; mean ± std over seeds.\n"
        );
        let _ = writeln!(
            s,
            "| variant | {} |",
            (1..=nb)
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(s, "|---|{}", "---|".repeat(nb));
        for v in &r.variants {
            let cells: Vec<String> = (0..nb)
                .map(|b| {
                    format_summary(
                        v.recall_by_bin.get(b).and_then(|x| x.as_ref()),
                        4,
                        v.runs.len(),
                    )
                })
                .collect();
            let _ = writeln!(s, "| {} | {} |", md_escape(&v.name), cells.join(" | "));
        }
        for b in &r.baselines {
            if b.recall_by_bin.is_empty() {
                continue;
            }
            let cells: Vec<String> = (0..nb)
                .map(|i| format_summary(b.recall_by_bin.get(i).and_then(|x| x.as_ref()), 4, 1))
                .collect();
            let _ = writeln!(s, "| {} | {} |", md_escape(&b.name), cells.join(" | "));
            let _ = writeln!(
                s,
                "| {pairs} pairs{} | {} |",
                if r.baselines.len() > 1 {
                    format!(" ({})", b.variants.join(", "))
                } else {
                    String::new()
                },
                b.pairs_by_bin
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(
                s,
                "| catalog items{} | {} |",
                if r.baselines.len() > 1 {
                    format!(" ({})", b.variants.join(", "))
                } else {
                    String::new()
                },
                b.items_by_bin
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Plots\n");
    if r.bins_k.is_some() {
        let stem = DECILE_PLOT.trim_end_matches(".png");
        let _ = writeln!(
            s,
            "![recall by popularity bin]({DECILE_PLOT}) ({stem}.svg)\n"
        );
    }
    let stem = LOSS_PLOT.trim_end_matches(".png");
    let _ = writeln!(
        s,
        "![training loss]({LOSS_PLOT}) ({stem}.svg): mean total loss per epoch over seeds, from the phase that produced the final model (`refit` when it ran, else `search`).\n"
    );

    let _ = writeln!(s, "## Full configuration\n");
    let _ = writeln!(
        s,
        "Each variant's config is this document plus its overrides above (defaults filled in for `[model]`, `[loss]`, `[ssl]`, `[train]` and `[eval]`; `[data]` and `[features]` as written); `train.seed` is set per run. Every run's exact config is in its `run.json`, and each variant's in `report.json`.\n"
    );
    let toml_text = serde_json::from_value::<toml::Value>(r.base_config.clone())
        .ok()
        .and_then(|v| toml::to_string(&v).ok())
        .unwrap_or_else(|| r.base_config.to_string());
    let _ = writeln!(s, "```toml\n{}```\n", ensure_newline(&toml_text));

    if !r.notes.is_empty() {
        let _ = writeln!(s, "## Notes\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
        let _ = writeln!(s);
    }
    s
}

fn ensure_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

/// Writes `report.md`, `report.json` and the plots (recall by popularity
/// bin — when the runs have bins — and training loss, PNG + SVG each) into
/// `dir`, every file atomically.
///
/// # Errors
/// [`ReportError::Io`], [`ReportError::Plot`].
pub fn write_report(dir: &Path, r: &Report) -> Result<(), ReportError> {
    let md = dir.join(REPORT_MD);
    atomic_write_bytes(&md, render_markdown(r).as_bytes()).map_err(io_err(&md))?;
    write_json_file(&dir.join(REPORT_JSON), r)?;
    if let Some(k) = r.bins_k {
        let series: Vec<(String, Vec<Option<f64>>)> = r
            .variants
            .iter()
            .map(|v| {
                (
                    v.name.clone(),
                    v.recall_by_bin.iter().map(|s| s.map(|s| s.mean)).collect(),
                )
            })
            .collect();
        let base: Vec<(String, Vec<Option<f64>>)> = r
            .baselines
            .iter()
            .filter(|b| !b.recall_by_bin.is_empty())
            .map(|b| {
                (
                    b.name.clone(),
                    b.recall_by_bin.iter().map(|s| s.map(|s| s.mean)).collect(),
                )
            })
            .collect();
        plot_recall_by_decile(&dir.join(DECILE_PLOT), k, &series, &base)?;
    }
    let phases: std::collections::BTreeSet<&str> = r
        .variants
        .iter()
        .filter_map(|v| v.loss.as_ref().map(|l| l.phase.as_str()))
        .collect();
    let curves: Vec<(String, Vec<(usize, f64)>)> = r
        .variants
        .iter()
        .filter_map(|v| {
            v.loss.as_ref().map(|l| {
                let name = if phases.len() > 1 {
                    format!("{} ({})", v.name, l.phase)
                } else {
                    v.name.clone()
                };
                (
                    name,
                    l.epochs.iter().map(|e| (e.epoch, e.loss.mean)).collect(),
                )
            })
        })
        .collect();
    let phase_label = if phases.len() == 1 {
        phases.iter().next().copied().unwrap_or("final").to_string()
    } else {
        "final-model".to_string()
    };
    plot_loss_curves(&dir.join(LOSS_PLOT), &phase_label, &curves)?;
    Ok(())
}
