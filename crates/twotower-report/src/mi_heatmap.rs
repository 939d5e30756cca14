//! The heatmap of the mutual information between item features (the
//! statistic behind correlated feature masking, computed by
//! [`twotower::augment::mutual_information`]; its text table is
//! [`twotower::augment::mi_table`]): [`write_mi_heatmap`] (PNG + labelled
//! SVG) and [`mi_heatmap_svg`]. Only the drawing lives here, so the training
//! library needs no plotting stack.

use std::path::{Path, PathBuf};

use twotower::util::atomic_write_bytes;

use crate::png::atomic_write_rgb_png;

/// Errors of drawing and writing the MI heatmap.
#[derive(Debug, thiserror::Error)]
pub enum HeatmapError {
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Plotting failed.
    #[error("plotting {path}: {message}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// The plotting backend's message.
        message: String,
    },
}

/// A feature's label: its name, or `f{i}` where a name is missing (as
/// [`twotower::augment::mi_table`] labels it).
fn label(names: &[String], i: usize) -> String {
    names.get(i).cloned().unwrap_or_else(|| format!("f{i}"))
}

const CELL: u32 = 48;
const MARGIN_PNG: u32 = 8;

/// Colour of an off-diagonal cell: white (0) to dark blue (vmax); the
/// diagonal (entropy, on another scale) is grey.
fn cell_rgb(i: usize, j: usize, v: f64, vmax: f64) -> (u8, u8, u8) {
    if i == j {
        return (200, 200, 200);
    }
    let t = if vmax > 0.0 {
        (v / vmax).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    (lerp(255.0, 8.0), lerp(255.0, 48.0), lerp(255.0, 107.0))
}

fn off_diagonal_max(mi: &[Vec<f64>]) -> f64 {
    let mut vmax = 0.0f64;
    for (i, row) in mi.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            if i != j && v.is_finite() {
                vmax = vmax.max(v);
            }
        }
    }
    vmax
}

/// The MI heatmap as an SVG document: one cell per pair (48 px, wider when a
/// name needs it), white → dark blue over [0, max off-diagonal MI], the
/// diagonal (entropy, another scale) grey, each cell labelled with its value
/// in nats, rows and columns with `names` (`f{i}` where missing), and a title
/// line giving the scale.
///
/// # Errors
/// [`HeatmapError::Plot`] if plotters fails (path `<svg>`).
pub fn mi_heatmap_svg(names: &[String], mi: &[Vec<f64>]) -> Result<String, HeatmapError> {
    use plotters::prelude::*;
    let k = mi.len() as u32;
    let longest = (0..mi.len())
        .map(|i| label(names, i).chars().count())
        .max()
        .unwrap_or(1) as u32;
    // ~6 px per character at the 12-pt (≈ 9.7 px) plotters font.
    let cell = CELL.max(6 * longest + 8);
    let left = 8 + 6 * longest;
    let top = 44u32;
    let size = ((left + k * cell + 8).max(360), top + k * cell + 8);
    let vmax = off_diagonal_max(mi);
    let perr = |e: &dyn std::fmt::Display| HeatmapError::Plot {
        path: PathBuf::from("<svg>"),
        message: e.to_string(),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&e))?;
        let font = ("sans-serif", 12).into_font();
        let title =
            format!("mutual information (nats); colour 0 .. {vmax:.3}; diagonal = entropy (grey)");
        root.draw(&Text::new(title, (4, 6), font.clone()))
            .map_err(|e| perr(&e))?;
        let mid = cell as i32 / 2 - 5;
        for (i, row) in mi.iter().enumerate() {
            let y = (top + i as u32 * cell) as i32;
            root.draw(&Text::new(label(names, i), (4, y + mid), font.clone()))
                .map_err(|e| perr(&e))?;
            for j in 0..mi.len() {
                let v = row.get(j).copied().unwrap_or(f64::NAN);
                let x = (left + j as u32 * cell) as i32;
                let (r, g, b) = cell_rgb(i, j, v, vmax);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell as i32, y + cell as i32)],
                    RGBColor(r, g, b).filled(),
                ))
                .map_err(|e| perr(&e))?;
                let t = if vmax > 0.0 { v / vmax } else { 0.0 };
                let color = if i != j && t > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    format!("{v:.3}"),
                    (x + 4, y + mid),
                    font.clone().color(&color),
                ))
                .map_err(|e| perr(&e))?;
            }
        }
        for j in 0..mi.len() {
            let x = (left + j as u32 * cell) as i32;
            root.draw(&Text::new(
                label(names, j),
                (x + 2, top as i32 - 14),
                font.clone(),
            ))
            .map_err(|e| perr(&e))?;
        }
        root.present().map_err(|e| perr(&e))?;
    }
    Ok(svg)
}

/// Writes the MI heatmap: `path_png` (cells only, **no text**: bitmap text
/// needs a font backend — plotters' `ttf`/`ab_glyph` — that may find no
/// system font on a fresh machine, so it is not built in) and, beside it,
/// `path_png` with extension `svg` ([`mi_heatmap_svg`], with names and
/// values). Cell i, j of the PNG is the 48×48 square at
/// (8 + 48·j, 8 + 48·i), coloured as in the SVG. Both files are written
/// atomically ([`twotower::util::atomic_write`]).
///
/// # Errors
/// [`HeatmapError::Plot`], [`HeatmapError::Io`] (with the path).
pub fn write_mi_heatmap(
    path_png: impl AsRef<Path>,
    names: &[String],
    mi: &[Vec<f64>],
) -> Result<(), HeatmapError> {
    use plotters::prelude::*;
    let path = path_png.as_ref();
    let k = mi.len() as u32;
    let (w, h) = (2 * MARGIN_PNG + k * CELL, 2 * MARGIN_PNG + k * CELL);
    let vmax = off_diagonal_max(mi);
    let perr = |e: &dyn std::fmt::Display| HeatmapError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&e))?;
        for (i, row) in mi.iter().enumerate() {
            for j in 0..mi.len() {
                let v = row.get(j).copied().unwrap_or(f64::NAN);
                let (x, y) = (
                    (MARGIN_PNG + j as u32 * CELL) as i32,
                    (MARGIN_PNG + i as u32 * CELL) as i32,
                );
                let (r, g, b) = cell_rgb(i, j, v, vmax);
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL as i32 - 1, y + CELL as i32 - 1)],
                    RGBColor(r, g, b).filled(),
                ))
                .map_err(|e| perr(&e))?;
            }
        }
        root.present().map_err(|e| perr(&e))?;
    }
    let io = |source: std::io::Error, p: &Path| HeatmapError::Io {
        path: p.to_path_buf(),
        source,
    };
    atomic_write_rgb_png(path, w, h, &buf).map_err(|e| io(e, path))?;
    let svg = mi_heatmap_svg(names, mi)?;
    let svg_path = path.with_extension("svg");
    atomic_write_bytes(&svg_path, svg.as_bytes()).map_err(|e| io(e, &svg_path))?;
    Ok(())
}
