//! `report.html`: one self-contained page (inline CSS and inline `<svg>` figures, no scripts,
//! no external URLs) with the results table, gap bars, MIA confidence histograms, and the
//! training and unlearning curves found next to the runs.
//!
//! Elements a reader (or a test) can look for: `<table id="results">` with one
//! `<tr class="group">` per group, and `<figure class="gap">`, `<figure class="mia-confidence">`,
//! `<figure class="training-curve">` and `<figure class="unlearning-curve">`, each with a
//! `<figcaption>`. Gap bars are `<rect class="bar">`, histogram bins `<rect class="bin">` and
//! curves `<polyline class="line">`.

use crate::eval::report::{Group, Report, Run, Section, Stat, CELL_NOTE, GROUP_NOTE};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Series colours (colour-blind safe, Okabe–Ito).
const COLORS: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442", "#000000",
];
/// Most points drawn per curve (longer logs are thinned evenly).
const MAX_POINTS: usize = 600;
/// Histogram bins over the confidence range [0, 1].
const BINS: usize = 25;

pub(crate) const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;\
max-width:1200px;padding:0 1em;color:#222}h1{font-size:1.6em}h2{font-size:1.3em;margin-top:1.6em;\
border-bottom:1px solid #ddd}table{border-collapse:collapse;font-size:.9em;margin:.5em 0}\
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}td{white-space:nowrap}\
th{background:#f3f3f3}td.name,th.name{text-align:left}\
tr.setting th{text-align:left;background:#e8eef6}caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}.note{color:#555;\
font-size:.9em;max-width:60em}.grid{display:flex;flex-wrap:wrap;gap:1em}figure{margin:.5em 0;\
border:1px solid #eee;padding:.5em}figcaption{font-size:.85em;color:#444;max-width:760px}\
.grid figure{width:min-content}.grid svg{max-width:none}.panels{display:flex}\
svg{max-width:100%;height:auto}svg text{font-family:sans-serif;fill:#222}\
table.runs td{font-size:.85em}details{margin:.5em 0}";

/// Escapes `s` for HTML text and attribute values (and SVG text).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page for `report`.
pub fn render(report: &Report) -> String {
    let groups: usize = report.sections.iter().map(|s| s.groups.len()).sum();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Unlearning report</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <h1>Unlearning report</h1>\n<p class=\"meta\">{} run(s) in {groups} group(s), {} \
         setting(s) (data set, model and forget set).</p>\n",
        report.runs.len(),
        report.sections.len()
    );
    results_table(&mut h, report);
    for note in [report.reference_note.as_str(), CELL_NOTE, GROUP_NOTE] {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(note));
    }
    for s in &report.sections {
        section(&mut h, report, s);
    }
    for (dir, audit) in &report.audits {
        h.push_str(&crate::eval::audit_html::section(
            audit,
            &format!("Per-example forgetting audit ({})", dir.display()),
        ));
    }
    training_curves(&mut h, report);
    runs_table(&mut h, report);
    h.push_str("</body>\n</html>\n");
    h
}

fn stat_cell(s: &Option<Stat>) -> String {
    format!(
        "<td>{}</td>",
        esc(&s.as_ref().map_or("n/a".into(), |s| s.text(2)))
    )
}

fn results_table(h: &mut String, report: &Report) {
    h.push_str(
        "<table id=\"results\">\n<caption>Results per group: mean ± sample std over seeds\
         </caption>\n<thead><tr><th class=\"name\">Method</th><th>n</th><th>UA</th>\
         <th>MIA-Efficacy</th><th>RA</th><th>TA</th><th>Avg. Gap</th><th>RTE (s)</th>\
         <th>RTE / Retrain</th><th class=\"name\">Seeds</th></tr></thead>\n",
    );
    for s in &report.sections {
        let _ = writeln!(
            h,
            "<tbody><tr class=\"setting\"><th colspan=\"10\">{}</th></tr>",
            esc(&s.title())
        );
        for g in &s.groups {
            let seeds: Vec<String> = g.seeds.iter().map(u64::to_string).collect();
            let _ = write!(
                h,
                "<tr class=\"group\" data-dataset=\"{}\" data-model=\"{}\" data-forget=\"{}\" data-method=\"{}\">\
                 <td class=\"name\" title=\"{}\">{}</td><td>{}</td>",
                esc(&s.dataset),
                esc(&s.model),
                esc(&s.scenario),
                esc(&g.method),
                esc(&all_params(g)),
                esc(&g.label()),
                g.runs.len()
            );
            for st in g.metrics.iter().chain([&g.gap, &g.rte, &g.rte_fraction]) {
                h.push_str(&stat_cell(st));
            }
            let _ = writeln!(h, "<td class=\"name\">{}</td></tr>", esc(&seeds.join(", ")));
        }
        h.push_str("</tbody>\n");
    }
    h.push_str("</table>\n");
}

fn all_params(g: &Group) -> String {
    let kv: Vec<String> = g.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    kv.join(", ")
}

fn section(h: &mut String, report: &Report, s: &Section) {
    let _ = writeln!(
        h,
        "<section class=\"setting\">\n<h2>{}</h2>",
        esc(&s.title())
    );
    let bars: Vec<(String, Stat)> = s
        .groups
        .iter()
        .filter(|g| !g.is_retrain())
        .filter_map(|g| g.gap.map(|gap| (g.short_label(), gap)))
        .collect();
    if !bars.is_empty() {
        let _ = writeln!(
            h,
            "<figure class=\"gap\">\n{}\n<figcaption>Avg. gap to Retrain per method (mean over \
             UA, MIA-efficacy, RA and TA of |x − Retrain's x|; lower is better), {}; whiskers: \
             ± sample std over seeds.</figcaption>\n</figure>",
            hbar_svg(&bars, "Avg. gap (points)"),
            esc(&s.title())
        );
    } else {
        h.push_str("<p class=\"note\">No Retrain run for this setting: no gap chart.</p>\n");
    }

    let mut hist = String::new();
    for g in &s.groups {
        let Some(run) = g
            .runs
            .iter()
            .map(|&i| &report.runs[i])
            .find(|r| !r.result.mia_confidence_features.forget.is_empty())
        else {
            continue;
        };
        let f = &run.result.mia_confidence_features;
        let series = [("forget", &f.forget[..]), ("test", &f.test[..])];
        let _ = writeln!(
            hist,
            "<figure class=\"mia-confidence\">\n{}\n<figcaption>{}: confidence p_y of forget vs \
             test samples (seed {}, fraction per bin).</figcaption>\n</figure>",
            histogram_svg(&g.short_label(), &series),
            esc(&g.label()),
            run.result.seed
        );
    }
    if !hist.is_empty() {
        let _ = write!(
            h,
            "<h3>MIA confidence histograms</h3>\n<div class=\"grid\">\n{hist}</div>\n"
        );
    }

    let mut curves = String::new();
    let mut count = 0;
    for g in &s.groups {
        for &i in &g.runs {
            let run = &report.runs[i];
            if let Some(fig) = unlearning_curve(run, g) {
                curves.push_str(&fig);
                count += 1;
            }
        }
    }
    if count > 0 {
        let _ = write!(
            h,
            "<details open>\n<summary>Unlearning curves ({count} run(s), from each run's \
             unlearn_log.csv)</summary>\n<div class=\"grid\">\n{curves}</div>\n</details>\n"
        );
    }
    h.push_str("</section>\n");
}

/// Header and numeric rows of a CSV log; `None` when missing or unreadable.
fn read_log(path: &Path) -> Option<(Vec<String>, Vec<Vec<f64>>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()?
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|c| c.trim().parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    (!rows.is_empty()).then_some((header, rows))
}

/// The series named `cols` of a log against column `x` (or the row number).
fn log_series(
    header: &[String],
    rows: &[Vec<f64>],
    x: &str,
    cols: &[&String],
) -> Vec<(String, Vec<(f64, f64)>)> {
    let xi = header.iter().position(|c| c == x);
    let step = rows.len().div_ceil(MAX_POINTS).max(1);
    cols.iter()
        .filter_map(|name| {
            let ci = header.iter().position(|c| c == *name)?;
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .enumerate()
                .filter(|(r, _)| r % step == 0 || *r + 1 == rows.len())
                .filter_map(|(r, row)| {
                    let xv = xi.map_or(r as f64, |j| row.get(j).copied().unwrap_or(f64::NAN));
                    let yv = *row.get(ci)?;
                    (xv.is_finite() && yv.is_finite()).then_some((xv, yv))
                })
                .collect();
            (!pts.is_empty()).then(|| ((*name).clone(), pts))
        })
        .collect()
}

fn is_loss(name: &str) -> bool {
    name.contains("loss") || name.starts_with("L_")
}

fn unlearning_curve(run: &Run, g: &Group) -> Option<String> {
    let path = run.dir.join("unlearn_log.csv");
    let (header, rows) = read_log(&path)?;
    let skip = ["iteration", "epoch", "lr", "seconds"];
    let losses: Vec<&String> = header.iter().filter(|c| is_loss(c)).collect();
    let others: Vec<&String> = header
        .iter()
        .filter(|c| !is_loss(c) && !skip.contains(&c.as_str()))
        .collect();
    let mut svgs = String::new();
    for (title, cols) in [
        ("loss", losses),
        ("accuracy, hits (%) and other values", others),
    ] {
        let series = log_series(&header, &rows, "iteration", &cols);
        if !series.is_empty() {
            svgs.push_str(&line_svg(title, "iteration", &series));
        }
    }
    if svgs.is_empty() {
        return None;
    }
    Some(format!(
        "<figure class=\"unlearning-curve\">\n<div class=\"panels\">{svgs}</div>\n\
         <figcaption>{}, seed {}: unlearning log per iteration ({}).</figcaption>\n</figure>\n",
        esc(&g.label()),
        run.result.seed,
        esc(&path.display().to_string())
    ))
}

/// The folder of the original model a run started from (`config.model`), when it has a
/// `train_log.csv`.
pub fn training_folder(run: &Run) -> Option<PathBuf> {
    let model = PathBuf::from(run.result.config.get("model")?.as_str()?);
    let dir = if model.is_dir() {
        model
    } else {
        model.parent()?.to_path_buf()
    };
    dir.join("train_log.csv").is_file().then_some(dir)
}

fn training_curves(h: &mut String, report: &Report) {
    let mut folders: Vec<PathBuf> = Vec::new();
    for r in &report.runs {
        if let Some(d) = training_folder(r) {
            if !folders.contains(&d) {
                folders.push(d);
            }
        }
    }
    let mut figs = String::new();
    for d in &folders {
        let path = d.join("train_log.csv");
        let Some((header, rows)) = read_log(&path) else {
            continue;
        };
        let mut svgs = String::new();
        let wanted = |names: &[&str]| -> Vec<&String> {
            header
                .iter()
                .filter(|c| names.contains(&c.as_str()))
                .collect()
        };
        for (title, cols) in [
            ("loss", wanted(&["loss"])),
            ("accuracy (%)", wanted(&["train_acc", "val_acc"])),
        ] {
            let series = log_series(&header, &rows, "epoch", &cols);
            if !series.is_empty() {
                svgs.push_str(&line_svg(title, "epoch", &series));
            }
        }
        if !svgs.is_empty() {
            let _ = writeln!(
                figs,
                "<figure class=\"training-curve\">\n<div class=\"panels\">{svgs}</div>\n\
                 <figcaption>Training of the original model: loss and accuracy per epoch ({}).\
                 </figcaption>\n</figure>",
                esc(&path.display().to_string())
            );
        }
    }
    if !figs.is_empty() {
        let _ = write!(
            h,
            "<section class=\"training\">\n<h2>Training of the original model(s)</h2>\n\
             <div class=\"grid\">\n{figs}</div>\n</section>\n"
        );
    }
}

fn runs_table(h: &mut String, report: &Report) {
    h.push_str(
        "<details>\n<summary>All runs</summary>\n<table class=\"runs\">\n<thead><tr>\
         <th class=\"name\">Folder</th><th class=\"name\">Setting</th><th class=\"name\">Method\
         </th><th>Seed</th><th>UA</th><th>MIA-Efficacy</th><th>RA</th><th>TA</th>\
         <th>Avg. Gap</th><th>RTE (s)</th></tr></thead>\n<tbody>\n",
    );
    let num = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    for (r, (gap, _)) in report.runs.iter().zip(&report.per_run) {
        let m = r.metrics();
        let _ = writeln!(
            h,
            "<tr><td class=\"name\">{}</td><td class=\"name\">{}, forget {}</td>\
             <td class=\"name\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{:.2}</td></tr>",
            esc(&r.dir.display().to_string()),
            esc(r.result.dataset.cli_name()),
            esc(&crate::eval::report::scenario(&r.result.forget)),
            esc(&r.result.method),
            r.result.seed,
            num(m[0]),
            num(m[1]),
            num(m[2]),
            num(m[3]),
            num(*gap),
            r.result.rte_seconds
        );
    }
    h.push_str("</tbody>\n</table>\n</details>\n");
}

/// Ticks at 1, 2 or 5 × 10^k covering [lo, hi], about `n` of them, and their decimals.
fn ticks(lo: f64, hi: f64, n: usize) -> (Vec<f64>, usize) {
    let span = hi - lo;
    if span.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !span.is_finite() {
        return (vec![lo], 2);
    }
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let mut v = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 {
        v.push(t);
        t += step;
    }
    (v, decimals)
}

/// Horizontal bars with ± std whiskers, one per (label, value).
fn hbar_svg(bars: &[(String, Stat)], x_label: &str) -> String {
    let longest = bars
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(4);
    let left = (longest as f64 * 7.0 + 16.0).clamp(80.0, 380.0);
    let (width, row, top) = (760.0, 28.0, 12.0);
    let right = width - 70.0;
    let height = top + row * bars.len() as f64 + 46.0;
    let max = bars
        .iter()
        .map(|(_, s)| s.mean.max(0.0) + s.std.unwrap_or(0.0))
        .fold(0.0f64, f64::max);
    let x_max = if max > 0.0 { max * 1.08 } else { 1.0 };
    let (ticks, decimals) = ticks(0.0, x_max, 5);
    let x = |v: f64| left + (right - left) * (v.max(0.0) / x_max).min(1.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">\n"
    );
    let axis_y = top + row * bars.len() as f64;
    for t in &ticks {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{axis_y}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{0:.1}\" y=\"{1:.1}\" font-size=\"11\" text-anchor=\"middle\">{2:.3$}</text>",
            x(*t),
            axis_y + 15.0,
            t,
            decimals
        );
    }
    for (i, (label, st)) in bars.iter().enumerate() {
        let y = top + row * i as f64;
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
             <rect class=\"bar\" x=\"{left:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
             fill=\"{color}\"><title>{}: {}</title></rect>",
            left - 6.0,
            y + row / 2.0 + 4.0,
            esc(label),
            y + 4.0,
            x(st.mean) - left,
            row - 8.0,
            esc(label),
            esc(&st.text(2))
        );
        if let Some(sd) = st.std {
            let (a, b, cy) = (x(st.mean - sd), x(st.mean + sd), y + row / 2.0);
            let _ = writeln!(
                s,
                "<path class=\"err\" d=\"M{a:.1} {cy:.1}H{b:.1}M{a:.1} {:.1}V{:.1}M{b:.1} {:.1}V{:.1}\" \
                 stroke=\"#333\" fill=\"none\"/>",
                cy - 5.0,
                cy + 5.0,
                cy - 5.0,
                cy + 5.0
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{:.2}</text>",
            x(st.mean + st.std.unwrap_or(0.0)) + 4.0,
            y + row / 2.0 + 4.0,
            st.mean
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{right}\" y2=\"{axis_y}\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n</svg>",
        (left + right) / 2.0,
        height - 6.0,
        esc(x_label)
    );
    s
}

/// Overlaid histograms (fraction of each series per bin over [0, 1]).
pub(crate) fn histogram_svg(title: &str, series: &[(&str, &[f64])]) -> String {
    let (width, height) = (340.0, 230.0);
    let (left, right, top, bottom) = (44.0, width - 10.0, 26.0, height - 34.0);
    let fractions: Vec<Vec<f64>> = series
        .iter()
        .map(|(_, v)| {
            let mut h = vec![0.0; BINS];
            let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            for x in &finite {
                let b = ((x.clamp(0.0, 1.0) * BINS as f64) as usize).min(BINS - 1);
                h[b] += 1.0 / finite.len() as f64;
            }
            h
        })
        .collect();
    let top_frac = fractions
        .iter()
        .flatten()
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1e-9);
    let (yt, yd) = ticks(0.0, top_frac * 1.08, 4);
    let y_max = yt.last().copied().unwrap_or(1.0).max(top_frac);
    let x = |v: f64| left + (right - left) * v;
    let y = |v: f64| bottom - (bottom - top) * (v / y_max);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">\n\
         <text x=\"{:.1}\" y=\"16\" font-size=\"13\" text-anchor=\"middle\">{}</text>\n",
        width / 2.0,
        esc(title)
    );
    for t in &yt {
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{right}\" y2=\"{0:.1}\" stroke=\"#eee\"/>\
             <text x=\"{1:.1}\" y=\"{2:.1}\" font-size=\"10\" text-anchor=\"end\">{3:.4$}</text>",
            y(*t),
            left - 4.0,
            y(*t) + 3.0,
            t,
            yd
        );
    }
    for (k, (h, (name, _))) in fractions.iter().zip(series).enumerate() {
        let color = COLORS[k % COLORS.len()];
        for (b, f) in h.iter().enumerate().filter(|(_, f)| **f > 0.0) {
            let x0 = x(b as f64 / BINS as f64);
            let x1 = x((b + 1) as f64 / BINS as f64);
            let _ = writeln!(
                s,
                "<rect class=\"bin\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
                 fill=\"{color}\" fill-opacity=\"0.55\"><title>{} {:.2}–{:.2}: {:.3}</title></rect>",
                y(*f),
                x1 - x0,
                bottom - y(*f),
                esc(name),
                b as f64 / BINS as f64,
                (b + 1) as f64 / BINS as f64,
                f
            );
        }
        let ly = top + 4.0 + 14.0 * k as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"{ly:.1}\" width=\"10\" height=\"10\" fill=\"{color}\" \
             fill-opacity=\"0.55\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            right - 62.0,
            right - 48.0,
            ly + 9.0,
            esc(name)
        );
    }
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{t}</text>",
            x(t),
            bottom + 13.0
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">confidence p_y\
         </text>\n</svg>",
        (left + right) / 2.0,
        height - 4.0
    );
    s
}

/// A line chart of named (x, y) series with a legend.
pub(crate) fn line_svg(title: &str, x_label: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let (width, height) = (420.0, 260.0);
    let legend = 14.0 * series.len() as f64;
    let (left, right, top, bottom) = (52.0, width - 12.0, 26.0 + legend, height - 34.0);
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(px, py) in pts {
        (x0, x1, y0, y1) = (x0.min(px), x1.max(px), y0.min(py), y1.max(py));
    }
    if x1 <= x0 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    if y1 <= y0 {
        let w = y0.abs().max(1.0) * 0.05;
        (y0, y1) = (y0 - w, y1 + w);
    }
    let (xt, xd) = ticks(x0, x1, 5);
    let (yt, yd) = ticks(y0, y1, 4);
    let x = |v: f64| left + (right - left) * (v - x0) / (x1 - x0);
    let y = |v: f64| bottom - (bottom - top) * (v - y0) / (y1 - y0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">\n\
         <text x=\"{:.1}\" y=\"16\" font-size=\"13\" text-anchor=\"middle\">{}</text>\n",
        width / 2.0,
        esc(title)
    );
    for t in &yt {
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{right}\" y2=\"{0:.1}\" stroke=\"#eee\"/>\
             <text x=\"{1:.1}\" y=\"{2:.1}\" font-size=\"10\" text-anchor=\"end\">{3:.4$}</text>",
            y(*t),
            left - 4.0,
            y(*t) + 3.0,
            t,
            yd
        );
    }
    for t in &xt {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{:.3$}</text>",
            x(*t),
            bottom + 13.0,
            t,
            xd
        );
    }
    for (k, (name, p)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let points: Vec<String> = p
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let ly = 26.0 + 14.0 * k as f64;
        let _ = writeln!(
            s,
            "<polyline class=\"line\" points=\"{}\" fill=\"none\" stroke=\"{color}\" \
             stroke-width=\"1.6\"><title>{}</title></polyline>\
             <line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" \
             stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            points.join(" "),
            esc(name),
            ly - 4.0,
            left + 16.0,
            ly - 4.0,
            left + 20.0,
            ly,
            esc(name)
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#333\"/>\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n</svg>",
        (left + right) / 2.0,
        height - 4.0,
        esc(x_label)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }

    #[test]
    fn ticks_are_round() {
        let (t, d) = ticks(0.0, 9.3, 5);
        assert_eq!(t, [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(d, 0);
        let (t, d) = ticks(0.0, 0.31, 4);
        assert_eq!(t.len(), 4);
        assert_eq!(d, 1);
    }
}
