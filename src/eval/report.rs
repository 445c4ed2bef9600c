//! `gunlearn report`: compares runs against Retrain (SPEC §6 "Avg. gap") and writes
//! `report.md`, `report.csv`, `gap.{png,svg}` and `mia_confidence.{png,svg}`.

use crate::plot;
use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The forget-set description of `eval_result.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ForgetSpec {
    /// `class`, `random` or `none`.
    pub kind: String,
    /// Forgotten class for class-wise forgetting.
    #[serde(default)]
    pub class: Option<i64>,
    /// Number of forgotten samples.
    #[serde(default)]
    pub count: Option<u64>,
    /// Forgotten fraction for random forgetting.
    #[serde(default)]
    pub fraction: Option<f64>,
}

/// Confidence features kept for histograms.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfidenceFeatures {
    /// Confidence p_y of forget samples.
    #[serde(default)]
    pub forget: Vec<f64>,
    /// Confidence p_y of test samples.
    #[serde(default)]
    pub test: Vec<f64>,
}

/// The fields of `eval_result.json` the report needs.
#[derive(Debug, Clone, Deserialize)]
pub struct RunSummary {
    /// Unlearning method (`retrain` for the reference run).
    pub method: String,
    /// Dataset name.
    pub dataset: String,
    /// Seed of the run.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Forget set.
    pub forget: ForgetSpec,
    /// Unlearning accuracy, 100 − forget accuracy.
    #[serde(rename = "UA")]
    pub ua: f64,
    /// Retain accuracy.
    #[serde(rename = "RA")]
    pub ra: f64,
    /// Test accuracy.
    #[serde(rename = "TA")]
    pub ta: f64,
    /// Forget-efficacy confidence score × 100.
    #[serde(rename = "MIA_efficacy")]
    pub mia_efficacy: f64,
    /// Wall-clock of the unlearning step.
    #[serde(rename = "RTE_seconds", default)]
    pub rte_seconds: Option<f64>,
    /// Optional confidence features for histograms.
    #[serde(default)]
    pub mia_confidence_features: Option<ConfidenceFeatures>,
}

/// Reads `dir/eval_result.json`.
pub fn load_run(dir: &Path) -> Result<RunSummary> {
    let path = dir.join("eval_result.json");
    ensure!(
        path.is_file(),
        "run dir {} has no eval_result.json",
        dir.display()
    );
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Mean and sample standard deviation (0 for a single value).
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

/// One method's aggregate over its seeds.
#[derive(Debug, Clone)]
struct Group {
    method: String,
    runs: Vec<RunSummary>,
}

impl Group {
    /// (mean, std) of UA, MIA-efficacy, RA, TA in table order.
    fn metrics(&self) -> [(f64, f64); 4] {
        let col =
            |f: fn(&RunSummary) -> f64| mean_std(&self.runs.iter().map(f).collect::<Vec<_>>());
        [
            col(|r| r.ua),
            col(|r| r.mia_efficacy),
            col(|r| r.ra),
            col(|r| r.ta),
        ]
    }

    fn rte(&self) -> Option<(f64, f64)> {
        let v: Option<Vec<f64>> = self.runs.iter().map(|r| r.rte_seconds).collect();
        v.map(|v| mean_std(&v))
    }
}

fn fmt_ms((m, s): (f64, f64), n: usize) -> String {
    if n > 1 {
        format!("{m:.2} ± {s:.2}")
    } else {
        format!("{m:.2}")
    }
}

/// Builds the comparison table for `run_dirs`, with Retrain taken from `retrain` or from the
/// runs whose method is `retrain`; writes the report files into `out_dir` and returns the
/// Markdown table.
pub fn report(run_dirs: &[PathBuf], retrain: Option<&Path>, out_dir: &Path) -> Result<String> {
    ensure!(!run_dirs.is_empty(), "report: no run directories given");
    let mut runs: Vec<(PathBuf, RunSummary)> = Vec::new();
    for d in run_dirs {
        runs.push((d.clone(), load_run(d)?));
    }
    let explicit = match retrain {
        Some(d) => Some((d.to_path_buf(), load_run(d)?)),
        None => None,
    };
    // All runs (and the Retrain reference) must describe the same experiment.
    let all: Vec<&(PathBuf, RunSummary)> = runs.iter().chain(explicit.iter()).collect();
    let (d0, r0) = all[0];
    for (d, r) in &all[1..] {
        if r.dataset != r0.dataset {
            bail!(
                "runs {} ({}) and {} ({}) use different datasets",
                d0.display(),
                r0.dataset,
                d.display(),
                r.dataset
            );
        }
        if r.forget != r0.forget {
            bail!(
                "runs {} ({:?}) and {} ({:?}) use different forget sets",
                d0.display(),
                r0.forget,
                d.display(),
                r.forget
            );
        }
    }

    let mut groups: Vec<Group> = Vec::new();
    for (_, r) in &runs {
        match groups.iter_mut().find(|g| g.method == r.method) {
            Some(g) => g.runs.push(r.clone()),
            None => groups.push(Group {
                method: r.method.clone(),
                runs: vec![r.clone()],
            }),
        }
    }
    // Methods in the registry's order (Retrain and the original first), unknown names last.
    groups.sort_by_key(|g| method_rank(&g.method));
    let is_retrain = |m: &str| m.eq_ignore_ascii_case("retrain");
    let reference: Option<[(f64, f64); 4]> = match &explicit {
        Some((_, r)) => Some(
            Group {
                method: r.method.clone(),
                runs: vec![r.clone()],
            }
            .metrics(),
        ),
        None => groups
            .iter()
            .find(|g| is_retrain(&g.method))
            .map(|g| g.metrics()),
    };

    let gap = |g: &Group| -> Option<f64> {
        let r = reference?;
        let m = g.metrics();
        Some((0..4).map(|k| (m[k].0 - r[k].0).abs()).sum::<f64>() / 4.0)
    };

    let mut md = String::new();
    md.push_str("| Method | UA | MIA-Efficacy | RA | TA | Avg. Gap | RTE (s) |\n");
    md.push_str("|---|---|---|---|---|---|---|\n");
    let mut csv = String::from(
        "method,seeds,UA_mean,UA_std,MIA_efficacy_mean,MIA_efficacy_std,RA_mean,RA_std,TA_mean,TA_std,avg_gap,RTE_mean,RTE_std\n",
    );
    let mut bars: Vec<(String, f64)> = Vec::new();
    for g in &groups {
        let n = g.runs.len();
        let m = g.metrics();
        let gp = gap(g);
        let rte = g.rte();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            method_label(&g.method),
            fmt_ms(m[0], n),
            fmt_ms(m[1], n),
            fmt_ms(m[2], n),
            fmt_ms(m[3], n),
            gp.map_or("n/a".into(), |v| format!("{v:.2}")),
            rte.map_or("n/a".into(), |v| fmt_ms(v, n)),
        );
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        let _ = writeln!(
            csv,
            "{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{},{},{}",
            g.method,
            n,
            m[0].0,
            m[0].1,
            m[1].0,
            m[1].1,
            m[2].0,
            m[2].1,
            m[3].0,
            m[3].1,
            opt(gp),
            opt(rte.map(|r| r.0)),
            opt(rte.map(|r| r.1)),
        );
        if let Some(v) = gp {
            if !is_retrain(&g.method) {
                // The flag's name: short enough to label a bar (the table has the papers' names).
                bars.push((g.method.clone(), v));
            }
        }
    }

    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut doc = format!(
        "# Unlearning report — {}, forget {}\n\n",
        r0.dataset,
        describe_forget(&r0.forget)
    );
    doc.push_str(&md);
    match (&explicit, reference) {
        (Some((d, _)), _) => {
            let _ = writeln!(
                doc,
                "\nAvg. Gap is relative to the Retrain run {}.",
                d.display()
            );
        }
        (None, Some(_)) => {
            doc.push_str("\nAvg. Gap is relative to the `retrain` runs (mean over seeds).\n")
        }
        (None, None) => doc.push_str("\nNo Retrain run given: Avg. Gap is not available.\n"),
    }
    crate::fsutil::write_bytes_atomic(&out_dir.join("report.md"), doc.as_bytes())?;
    crate::fsutil::write_bytes_atomic(&out_dir.join("report.csv"), csv.as_bytes())?;

    if !bars.is_empty() {
        let b: Vec<(&str, f64)> = bars.iter().map(|(s, v)| (s.as_str(), *v)).collect();
        plot::bar_chart(
            &out_dir.join("gap.png"),
            "Average gap to Retrain (lower is better)",
            "Avg. Gap (points)",
            &b,
        )?;
    }
    // One panel per method: forget vs test confidence (the attack's view of each model).
    let panels: Vec<plot::Panel> = groups
        .iter()
        .filter_map(|g| {
            let f = g
                .runs
                .iter()
                .find_map(|r| r.mia_confidence_features.as_ref())?;
            let series: Vec<plot::Series> = [("forget", &f.forget), ("test", &f.test)]
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(name, v)| (name, v.clone()))
                .collect();
            (!series.is_empty()).then_some((g.method.as_str(), series))
        })
        .collect();
    if !panels.is_empty() {
        plot::histogram_panels(
            &out_dir.join("mia_confidence.png"),
            "MIA confidence feature p_y: forget vs test, per method",
            "confidence p_y",
            &panels,
            30,
        )?;
    }
    Ok(md)
}

/// Position of `method` in the unlearning registry (reports list methods in that order).
fn method_rank(method: &str) -> usize {
    let methods = crate::unlearn::registry();
    methods
        .iter()
        .position(|m| m.name().eq_ignore_ascii_case(method))
        .unwrap_or(methods.len())
}

/// The name a table shows for `method`: the papers' name beside the flag's where they differ.
pub fn method_label(method: &str) -> String {
    let paper = match method.to_ascii_lowercase().as_str() {
        "retrain" => return "Retrain".into(),
        "raw" => "original",
        "ft_l1" | "ft_prune" => "ℓ1-sparse",
        "fisher_new" => "FF",
        "wfisher" => "IU",
        "gan" => "adversarial",
        _ => return method.to_string(),
    };
    format!("{method} ({paper})")
}

fn describe_forget(f: &ForgetSpec) -> String {
    match (f.kind.as_str(), f.class, f.fraction) {
        ("class", Some(c), _) => format!("class {c}"),
        ("random", _, Some(p)) => format!("random {:.0} %", 100.0 * p),
        (k, _, _) => k.to_string(),
    }
}
