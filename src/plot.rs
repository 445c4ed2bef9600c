//! Charts (line, bar, histogram panels) written as SVG and PNG with `plotters`.
//!
//! Each chart is written next to `path` as `<stem>.svg` and `<stem>.png` (the extension of
//! `path` is replaced). Text needs a TTF: DejaVu Sans is registered with plotters under the
//! generic `sans-serif` family the first time a chart is drawn (plotters keeps its own
//! registry; we only check it). Without the font, only an SVG without text is written and a
//! warning is logged. Files are written under a temporary name and renamed into place.

use anyhow::{anyhow, ensure, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Font registered for chart text.
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const SIZE: (u32, u32) = (900, 560);

/// A named series of values for a histogram.
pub type Series<'a> = (&'a str, Vec<f64>);
/// A named histogram panel and the series it overlays.
pub type Panel<'a> = (&'a str, Vec<Series<'a>>);

/// What to draw.
enum Chart<'a> {
    Line {
        series: &'a [(&'a str, Vec<(f64, f64)>)],
        x_label: &'a str,
        y_label: &'a str,
    },
    Bar {
        bars: &'a [(&'a str, f64)],
        y_label: &'a str,
    },
    /// A grid of histogram panels with common bins and y-axis, each overlaying its series.
    Panels {
        panels: &'a [Panel<'a>],
        bins: usize,
        x_label: &'a str,
    },
}

/// Panels per row in [`histogram_panels`].
const PANEL_COLUMNS: usize = 3;

impl Chart<'_> {
    /// Canvas size in pixels: panels get a row of 300 px each.
    fn size(&self) -> (u32, u32) {
        match self {
            Chart::Panels { panels, .. } if panels.len() > 1 => {
                let rows = panels.len().div_ceil(PANEL_COLUMNS) as u32;
                (SIZE.0, 60 + 300 * rows)
            }
            // Room for every bar's label side by side (≈ 90 px for a method's name).
            Chart::Bar { bars, .. } => (SIZE.0.max(120 + 90 * bars.len() as u32), SIZE.1),
            _ => SIZE,
        }
    }
}

/// Line chart of one or more (x, y) series; returns the files written.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<Vec<PathBuf>> {
    ensure!(
        series.iter().any(|(_, p)| !p.is_empty()),
        "line chart {}: no points",
        path.display()
    );
    let chart = Chart::Line {
        series,
        x_label,
        y_label,
    };
    write_chart(path, title, &chart, Path::new(FONT_PATH))
}

/// Bar chart with one bar per (name, value); returns the files written.
pub fn bar_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    bars: &[(&str, f64)],
) -> Result<Vec<PathBuf>> {
    ensure!(!bars.is_empty(), "bar chart {}: no bars", path.display());
    write_chart(
        path,
        title,
        &Chart::Bar { bars, y_label },
        Path::new(FONT_PATH),
    )
}

/// Histogram panels, e.g. one per method, each overlaying its series (fraction of each series
/// per bin); all panels share the bins and the y-axis so that they compare, and a series keeps
/// its colour across panels. Returns the files written.
pub fn histogram_panels(
    path: &Path,
    title: &str,
    x_label: &str,
    panels: &[Panel],
    bins: usize,
) -> Result<Vec<PathBuf>> {
    ensure!(bins > 0, "histograms {}: bins must be > 0", path.display());
    ensure!(
        panels
            .iter()
            .any(|(_, series)| series.iter().any(|(_, v)| !v.is_empty())),
        "histograms {}: no values",
        path.display()
    );
    let chart = Chart::Panels {
        panels,
        bins,
        x_label,
    };
    write_chart(path, title, &chart, Path::new(FONT_PATH))
}

/// Registers `font_path` as plotters' `sans-serif` unless a font is already registered.
fn ensure_font(font_path: &Path) -> bool {
    let probe = FontDesc::new(FontFamily::SansSerif, 12.0, FontStyle::Normal);
    if probe.box_size("x").is_ok() {
        return true;
    }
    let Ok(bytes) = std::fs::read(font_path) else {
        return false;
    };
    // plotters requires 'static font bytes; this leaks once per process since the probe
    // above succeeds afterwards.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
}

fn write_chart(base: &Path, title: &str, chart: &Chart, font_path: &Path) -> Result<Vec<PathBuf>> {
    if let Some(dir) = base.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = ensure_font(font_path);
    if !text {
        tracing::warn!(
            "font {} missing: writing {} as SVG without text, no PNG",
            font_path.display(),
            base.display()
        );
    }
    let mut written = Vec::new();
    let svg = base.with_extension("svg");
    let tmp = crate::fsutil::temp_path(&svg);
    {
        let root = SVGBackend::new(&tmp, chart.size()).into_drawing_area();
        render(root, title, chart, text).with_context(|| format!("drawing {}", svg.display()))?;
    }
    std::fs::rename(&tmp, &svg).with_context(|| format!("renaming to {}", svg.display()))?;
    written.push(svg);
    if text {
        let png = base.with_extension("png");
        // The image crate picks the encoder from the extension, so keep `.png` last.
        let tmp = crate::fsutil::temp_path(&png).with_extension("tmp.png");
        {
            let root = BitMapBackend::new(&tmp, chart.size()).into_drawing_area();
            render(root, title, chart, true)
                .with_context(|| format!("drawing {}", png.display()))?;
        }
        std::fs::rename(&tmp, &png).with_context(|| format!("renaming to {}", png.display()))?;
        written.push(png);
    }
    Ok(written)
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotters: {e:?}")
}

/// Range [lo, hi] with a 5 % margin; widened when degenerate.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span <= 0.0 {
        let w = lo.abs().max(1.0) * 0.05;
        return (lo - w, hi + w);
    }
    (lo - 0.05 * span, hi + 0.05 * span)
}

fn render<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    chart: &Chart,
    text: bool,
) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let font = |size: u32| (FontFamily::SansSerif, size);
    if let Chart::Panels {
        panels,
        bins,
        x_label,
    } = chart
    {
        render_panels(&root, title, panels, *bins, x_label, text)?;
        root.present().map_err(err)?;
        return Ok(());
    }
    let mut builder = ChartBuilder::on(&root);
    builder.margin(15);
    if text {
        builder
            .caption(title, font(22))
            .x_label_area_size(45)
            .y_label_area_size(65);
    }
    match chart {
        Chart::Line {
            series,
            x_label,
            y_label,
        } => {
            let pts = series.iter().flat_map(|(_, p)| p.iter());
            let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
            for &(x, y) in pts.filter(|(x, y)| x.is_finite() && y.is_finite()) {
                (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
            }
            let ((x0, x1), (y0, y1)) = (padded(x0, x1), padded(y0, y1));
            let mut c = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
            let mut mesh = c.configure_mesh();
            if text {
                mesh.x_desc(*x_label).y_desc(*y_label).label_style(font(13));
            } else {
                mesh.x_labels(0).y_labels(0);
            }
            mesh.draw().map_err(err)?;
            for (k, (name, p)) in series.iter().enumerate() {
                let color = Palette99::pick(k).to_rgba();
                let s = c
                    .draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))
                    .map_err(err)?;
                if text {
                    s.label(*name).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                }
            }
            if text && series.len() > 1 {
                c.configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(font(13))
                    .draw()
                    .map_err(err)?;
            }
        }
        Chart::Bar { bars, y_label } => {
            let (lo, hi) = bars
                .iter()
                .fold((0.0f64, 0.0f64), |(lo, hi), &(_, v)| (lo.min(v), hi.max(v)));
            let (y0, y1) = padded(lo, hi);
            let y0 = if lo >= 0.0 { 0.0 } else { y0 };
            let n = bars.len();
            let mut c = builder
                .build_cartesian_2d((0..n - 1).into_segmented(), y0..y1)
                .map_err(err)?;
            let mut mesh = c.configure_mesh();
            mesh.disable_x_mesh();
            let names: Vec<String> = bars.iter().map(|(s, _)| s.to_string()).collect();
            let fmt = move |v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    names.get(*i).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            };
            if text {
                mesh.y_desc(*y_label)
                    .x_labels(n)
                    .x_label_formatter(&fmt)
                    .label_style(font(13));
            } else {
                mesh.x_labels(0).y_labels(0);
            }
            mesh.draw().map_err(err)?;
            c.draw_series(bars.iter().enumerate().map(|(i, &(_, v))| {
                let color = Palette99::pick(i).to_rgba();
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), v),
                    ],
                    color.filled(),
                );
                r.set_margin(0, 0, 8, 8);
                r
            }))
            .map_err(err)?;
        }
        Chart::Panels { .. } => unreachable!("drawn by render_panels above"),
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Fraction of the finite `values` in each of `bins` bins of `width` from `lo` (the last bin
/// also takes `hi`).
fn bin_fractions(values: &[f64], lo: f64, width: f64, bins: usize) -> Vec<f64> {
    let mut h = vec![0.0; bins];
    let finite = values.iter().filter(|x| x.is_finite()).count().max(1) as f64;
    for x in values.iter().filter(|x| x.is_finite()) {
        let b = (((x - lo) / width) as usize).min(bins - 1);
        h[b] += 1.0 / finite;
    }
    h
}

fn render_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel],
    bins: usize,
    x_label: &str,
    text: bool,
) -> Result<()> {
    let font = |size: u32| (FontFamily::SansSerif, size);
    let all = panels
        .iter()
        .flat_map(|(_, s)| s.iter().flat_map(|(_, v)| v.iter().copied()));
    let (lo, hi) = all
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if hi > lo { (lo, hi) } else { padded(lo, hi) };
    let width = (hi - lo) / bins as f64;
    let counts: Vec<Vec<Vec<f64>>> = panels
        .iter()
        .map(|(_, s)| {
            s.iter()
                .map(|(_, v)| bin_fractions(v, lo, width, bins))
                .collect()
        })
        .collect();
    let top = counts
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f64, |a, &b| a.max(b));
    let body = if text {
        root.titled(title, font(22)).map_err(err)?
    } else {
        root.clone()
    };
    let cols = panels.len().clamp(1, PANEL_COLUMNS);
    let rows = panels.len().div_ceil(cols);
    let areas = body.split_evenly((rows, cols));
    for (p, (area, (name, series))) in areas.iter().zip(panels).enumerate() {
        let mut builder = ChartBuilder::on(area);
        builder.margin(10);
        if text {
            builder
                .caption(*name, font(16))
                .x_label_area_size(35)
                .y_label_area_size(45);
        }
        let mut c = builder
            .build_cartesian_2d(lo..hi, 0.0..(top * 1.08).max(1e-9))
            .map_err(err)?;
        let mut mesh = c.configure_mesh();
        if text {
            mesh.x_desc(x_label)
                .y_desc("fraction")
                .x_labels(5)
                .y_labels(5)
                .label_style(font(11));
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.disable_mesh().draw().map_err(err)?;
        for (k, ((label, _), h)) in series.iter().zip(&counts[p]).enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let s = c
                .draw_series(h.iter().enumerate().map(|(b, &f)| {
                    let x = lo + b as f64 * width;
                    Rectangle::new([(x, 0.0), (x + width, f)], color.mix(0.5).filled())
                }))
                .map_err(err)?;
            if text {
                s.label(*label).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.mix(0.5).filled())
                });
            }
        }
        if text && !series.is_empty() {
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperMiddle)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(font(11))
                .draw()
                .map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_font_writes_svg_only() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("nofont.png");
        let series = [("a", vec![(0.0, 1.0), (1.0, 2.0)])];
        let chart = Chart::Line {
            series: &series,
            x_label: "x",
            y_label: "y",
        };
        // If another test already registered the font, text is drawn; either way an SVG exists.
        let files = write_chart(&base, "t", &chart, Path::new("/nonexistent/font.ttf")).unwrap();
        assert!(files[0].ends_with("nofont.svg") && files[0].exists());
        assert!(!dir.path().read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp")));
    }

    #[test]
    fn single_bar_and_negative_bars_render() {
        let dir = tempfile::tempdir().unwrap();
        let files = bar_chart(&dir.path().join("one.svg"), "t", "y", &[("only", 2.0)]).unwrap();
        assert!(std::fs::read_to_string(&files[0]).unwrap().contains("only"));
        bar_chart(
            &dir.path().join("neg.svg"),
            "t",
            "y",
            &[("a", -1.0), ("b", 3.0)],
        )
        .unwrap();
        histogram_panels(
            &dir.path().join("h.svg"),
            "t",
            "x",
            &[("one", vec![("same", vec![0.5; 4])])],
            10,
        )
        .unwrap();
        let panels: Vec<Panel> = (0..4)
            .map(|i| ("m", vec![("a", vec![i as f64; 3]), ("b", vec![0.1, 0.9])]))
            .collect();
        let files = histogram_panels(&dir.path().join("p.svg"), "t", "x", &panels, 10).unwrap();
        // Four panels: two rows of three columns, taller than a single chart.
        assert_eq!(
            Chart::Panels {
                panels: &panels,
                bins: 10,
                x_label: "x"
            }
            .size()
            .1,
            660
        );
        assert!(files[0].exists());
    }
}
