//! The report's line charts: PNG (RGB, text in the embedded DejaVu Sans)
//! and an SVG twin, written atomically: [`write_line_chart`] for any
//! [`LineChart`], and the report's two plots, [`plot_recall_by_decile`] and
//! [`plot_loss_curves`].

use std::path::Path;
use std::sync::OnceLock;

use twotower::util::atomic_write_bytes;

use crate::error::io_err;
use crate::png::atomic_write_rgb_png;
use crate::ReportError;

/// One line of a [`LineChart`]: `(x, y)` points, `None` y = gap.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSeries {
    /// Legend label.
    pub name: String,
    /// Points in x order.
    pub points: Vec<(f64, Option<f64>)>,
    /// Draw dashed, in grey tones (baselines).
    pub dashed: bool,
}

/// A line chart with a title, axis labels, integer x ticks and a legend.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title line.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// X range (inclusive).
    pub x_range: (f64, f64),
    /// Start the y axis at 0.
    pub y_from_zero: bool,
    /// The lines.
    pub series: Vec<ChartSeries>,
}

/// PNG size of every chart, pixels.
pub const CHART_SIZE: (u32, u32) = (960, 600);

const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
    (188, 189, 34),
    (127, 127, 127),
];
const BASE_COLORS: [(u8, u8, u8); 3] = [(0, 0, 0), (90, 90, 90), (150, 150, 150)];

/// The font family every chart uses; registered from the embedded DejaVu Sans.
const FONT: &str = "sans-serif";

fn register_font() -> Result<(), String> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        use plotters::style::FontStyle;
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the embedded DejaVu Sans font was rejected by plotters".into())
    }
}

fn y_range(c: &LineChart) -> (f64, f64) {
    let ys: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1))
        .filter(|y| y.is_finite())
        .collect();
    if ys.is_empty() {
        return (0.0, 1.0);
    }
    let mut lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let mut hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if c.y_from_zero {
        lo = lo.min(0.0);
    }
    let span = if hi > lo {
        hi - lo
    } else {
        0.1 * hi.abs().max(1e-3)
    };
    if !c.y_from_zero || lo < 0.0 {
        lo -= 0.05 * span;
    }
    // headroom for the legend box in the upper right corner
    hi += span * (0.08 + 0.055 * c.series.len() as f64);
    (lo, hi)
}

fn draw_chart<DB: plotters::prelude::DrawingBackend>(
    root: plotters::drawing::DrawingArea<DB, plotters::coord::Shift>,
    c: &LineChart,
) -> Result<(), String> {
    use plotters::prelude::*;
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (y0, y1) = y_range(c);
    let (x0, x1) = c.x_range;
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, (FONT, 24))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(84)
        .build_cartesian_2d((x0 - 0.3)..(x1 + 0.3), y0..y1)
        .map_err(|x| e(&x))?;
    let n_x = (x1 - x0).round().max(0.0) as usize + 1;
    chart
        .configure_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .x_labels(n_x.min(20) + 1)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .y_labels(10)
        .y_label_formatter(&|y| {
            if y1 - y0 < 0.5 {
                format!("{y:.3}")
            } else {
                format!("{y:.2}")
            }
        })
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|x| e(&x))?;
    let (mut vi, mut bi) = (0usize, 0usize);
    for s in &c.series {
        let (r, g, b) = if s.dashed {
            bi += 1;
            BASE_COLORS[(bi - 1) % BASE_COLORS.len()]
        } else {
            vi += 1;
            PALETTE[(vi - 1) % PALETTE.len()]
        };
        let color = RGBColor(r, g, b);
        let style = color.stroke_width(3);
        // contiguous runs of defined points
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &(x, y) in &s.points {
            match y {
                Some(y) if y.is_finite() => segments.last_mut().expect("non-empty").push((x, y)),
                _ => {
                    if !segments.last().expect("non-empty").is_empty() {
                        segments.push(Vec::new());
                    }
                }
            }
        }
        for seg in segments.iter().filter(|s| !s.is_empty()) {
            if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(seg.clone(), 10, 6, style))
                    .map_err(|x| e(&x))?;
            } else {
                chart
                    .draw_series(LineSeries::new(seg.clone(), style))
                    .map_err(|x| e(&x))?;
            }
            chart
                .draw_series(seg.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|x| e(&x))?;
        }
        let dashed = s.dashed;
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(|x| e(&x))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                // two segments: a gap between them for a dashed line
                let (a, b) = if dashed { (9, 15) } else { (24, 0) };
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (a, 0)], color.stroke_width(3))
                    + PathElement::new(vec![(b, 0), (24, 0)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(120, 120, 120))
        .label_font((FONT, 16))
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// Writes `chart` as a PNG at `path_png` (RGB, [`CHART_SIZE`], text in the
/// embedded DejaVu Sans) and as an SVG beside it (same stem, `.svg`; text
/// as `<text>` elements in `sans-serif`). Both atomically.
///
/// # Errors
/// [`ReportError::Plot`] (plotters, font), [`ReportError::Io`].
pub fn write_line_chart(path_png: &Path, chart: &LineChart) -> Result<(), ReportError> {
    use plotters::prelude::*;
    let perr = |p: &Path, m: String| ReportError::Plot {
        path: p.to_path_buf(),
        message: m,
    };
    register_font().map_err(|m| perr(path_png, m))?;
    let (w, h) = CHART_SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw_chart(root, chart).map_err(|m| perr(path_png, m))?;
    }
    atomic_write_rgb_png(path_png, w, h, &buf).map_err(io_err(path_png))?;
    let svg_path = path_png.with_extension("svg");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        draw_chart(root, chart).map_err(|m| perr(&svg_path, m))?;
    }
    atomic_write_bytes(&svg_path, svg.as_bytes()).map_err(io_err(&svg_path))?;
    Ok(())
}

/// Plot (1): recall@`k` by item-popularity bin, one line per variant (mean
/// over seeds) and a dashed line per baseline; x = bin 1 (most popular) …
/// n (least popular). Writes `path_png` and its `.svg` twin.
///
/// # Shapes
/// Each series: `[n_bins]`, `None` = bin without test pairs (a gap).
///
/// # Errors
/// As [`write_line_chart`]; [`ReportError::InvalidArgument`] when the
/// series lengths differ or there is none.
pub fn plot_recall_by_decile(
    path_png: &Path,
    k: usize,
    variants: &[(String, Vec<Option<f64>>)],
    baselines: &[(String, Vec<Option<f64>>)],
) -> Result<(), ReportError> {
    let n = variants
        .first()
        .or(baselines.first())
        .map(|s| s.1.len())
        .unwrap_or(0);
    if n == 0 || variants.iter().chain(baselines).any(|s| s.1.len() != n) {
        return Err(ReportError::InvalidArgument {
            name: "series",
            got: format!(
                "lengths {:?}",
                variants
                    .iter()
                    .chain(baselines)
                    .map(|s| s.1.len())
                    .collect::<Vec<_>>()
            ),
            expected: "at least one series, all of the same non-zero length".into(),
        });
    }
    let bin_word = if n == 10 { "decile" } else { "bin" };
    let mk = |(name, ys): &(String, Vec<Option<f64>>), dashed| ChartSeries {
        name: name.clone(),
        points: ys
            .iter()
            .enumerate()
            .map(|(i, &y)| ((i + 1) as f64, y))
            .collect(),
        dashed,
    };
    let chart = LineChart {
        title: format!("recall@{k} by item-popularity {bin_word} (mean over seeds)"),
        x_label: format!(
            "item-popularity {bin_word}: 1 = most popular … {n} = least popular (train)"
        ),
        y_label: format!("recall@{k} of the test pairs in the {bin_word}"),
        x_range: (1.0, n as f64),
        y_from_zero: true,
        series: variants
            .iter()
            .map(|s| mk(s, false))
            .chain(baselines.iter().map(|s| mk(s, true)))
            .collect(),
    };
    write_line_chart(path_png, &chart)
}

/// Plot (2): training loss per epoch, one line per variant (mean over
/// seeds), from the `phase` that produced the final model. Writes
/// `path_png` and its `.svg` twin.
///
/// # Errors
/// As [`write_line_chart`].
pub fn plot_loss_curves(
    path_png: &Path,
    phase: &str,
    variants: &[(String, Vec<(usize, f64)>)],
) -> Result<(), ReportError> {
    let max_epoch = variants
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(1);
    let chart = LineChart {
        title: format!("training loss per epoch ({phase} phase, mean over seeds)"),
        x_label: "epoch".into(),
        y_label: "mean loss per batch".into(),
        x_range: (1.0, max_epoch as f64),
        y_from_zero: false,
        series: variants
            .iter()
            .map(|(name, pts)| ChartSeries {
                name: name.clone(),
                points: pts.iter().map(|&(e, y)| (e as f64, Some(y))).collect(),
                dashed: false,
            })
            .collect(),
    };
    write_line_chart(path_png, &chart)
}
