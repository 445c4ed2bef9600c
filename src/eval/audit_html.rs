//! `audit_report.html`: the per-example forgetting audit as one self-contained page — the
//! scores with their intervals, the paired rankings, the ε histogram of every method and the
//! U-LiRA ROC curves (inline SVG, no scripts, nothing fetched).

use crate::eval::forgetting::EPSILON_CAP;
use crate::eval::report_html::{esc, histogram_svg, line_svg, CSS};
use crate::jobs::forget_audit::AuditResult;
use std::fmt::Write as _;

/// The whole page for `result`.
pub fn render(result: &AuditResult) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Forgetting audit</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <h1>Per-example forgetting audit</h1>\n{}</body>\n</html>\n",
        body(result)
    )
}

/// The audit as a section of another page (`gunlearn report`'s), headed by `title`.
pub fn section(result: &AuditResult, title: &str) -> String {
    format!(
        "<section class=\"audit\">\n<h2>{}</h2>\n{}</section>\n",
        esc(title),
        body(result)
    )
}

/// The scores table, the rankings and both figures.
fn body(result: &AuditResult) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<p class=\"meta\">N = {} models per pool, {} \
         forget examples; the retrained pool's mean RA {:.2} %, TA {:.2} %.</p>",
        result.n,
        result.forget_indices.len(),
        result.retrain_accuracy.0,
        result.retrain_accuracy.1
    );
    h.push_str(
        "<table class=\"audit\"><tr><th>method</th><th>F</th><th>F_null</th><th>final score</th>\
         <th>U-LiRA AUC</th><th>TPR at 1 % FPR</th><th>median ε</th></tr>\n",
    );
    let iv = |v: f64, i: &crate::eval::forgetting::Interval| {
        format!("{v:.3} [{:.3}, {:.3}]", i.lower, i.upper)
    };
    for (name, m) in &result.methods {
        let _ = writeln!(
            h,
            "<tr class=\"method\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{:.3}</td><td>{:.2}</td></tr>",
            esc(name),
            iv(m.f, &m.f_interval),
            iv(m.f_null, &m.f_null_interval),
            iv(m.final_score, &m.final_score_interval),
            iv(m.ulira.auc, &m.ulira.auc_interval),
            m.ulira.tpr_at_1pct_fpr,
            m.median_epsilon
        );
    }
    h.push_str("</table>\n<p class=\"note\">Intervals are percentile bootstrap intervals over \
                forget examples, the same resamples for every method. F near F_null: the \
                unlearned models cannot be told from retrained ones; lower F: they can.</p>\n<ul>\n");
    for (a, b, cmp) in &result.rankings {
        let _ = writeln!(
            h,
            "<li>{} vs {}: {} (ΔF {:.3} [{:.3}, {:.3}])</li>",
            esc(a),
            esc(b),
            esc(&cmp.ranking.to_string()),
            cmp.delta_f,
            cmp.delta_f_interval.lower,
            cmp.delta_f_interval.upper
        );
    }
    h.push_str("</ul>\n<div class=\"grid\">\n");
    let scaled: Vec<(String, Vec<f64>)> = result
        .methods
        .iter()
        .map(|(n, m)| {
            (
                n.clone(),
                m.epsilon.iter().map(|e| e / EPSILON_CAP).collect(),
            )
        })
        .collect();
    let series: Vec<(&str, &[f64])> = scaled
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let _ = writeln!(
        h,
        "<figure class=\"epsilon\">{}<figcaption>Per-example ε / {EPSILON_CAP} (ε capped at \
         {EPSILON_CAP}): mass on the right marks examples whose unlearned models are told from \
         retrained ones.</figcaption></figure>",
        histogram_svg("per-example ε / cap", &series)
    );
    let curves: Vec<(String, Vec<(f64, f64)>)> = result
        .roc
        .iter()
        .map(|(n, c)| (n.clone(), c.clone()))
        .collect();
    let _ = writeln!(
        h,
        "<figure class=\"roc\">{}<figcaption>U-LiRA ROC (TPR against FPR, unlearned models \
         positive); the diagonal is a perfect unlearner.</figcaption></figure>",
        line_svg("U-LiRA ROC", "false-positive rate", &curves)
    );
    h.push_str("</div>\n");
    h
}
