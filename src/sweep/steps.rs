//! The steps table of `gunlearn sweep --dry-run`: per forget request, method and phase, the
//! optimizer steps the sweep will run against the reference's
//! ([`crate::unlearn::schedule`]), for the sweep's first seed.

use super::Plan;
use crate::jobs::Job;
use crate::unlearn::schedule::{self, Phase};
use std::fmt::Write;

/// One row: a phase of a method's runs on one forget request.
struct Row {
    scenario: String,
    method: String,
    runs: usize,
    phase: Phase,
    /// The multiple of the derived stop-iter this run explores (`stop_iter_scale` ≠ 1).
    explored: Option<String>,
}

/// The `stop_iter_scale` value in a run's folder label, when it is not 1.
fn explored_scale(label: &str) -> Option<String> {
    label
        .split('-')
        .find_map(|part| part.strip_prefix("stop_iter_scale"))
        .filter(|v| v.parse::<f64>().ok() != Some(1.0))
        .map(str::to_string)
}

/// The table, and whether every phase not scaled on purpose is within the tolerance.
pub struct StepsTable {
    /// The table as text.
    pub text: String,
    /// The table as CSV (the same rows and checks), for scripts; `steps.csv` of a dry run.
    pub csv: String,
    /// Phases outside ±25 % of the reference's steps, other than those scaled on purpose and
    /// the stop-iter lengths a sweep explores.
    pub outside: usize,
    /// Phases in the table.
    pub phases: usize,
}

/// The steps table of `plan` (reads the data set to know the set sizes).
pub fn steps_table(plan: &Plan) -> anyhow::Result<StepsTable> {
    let unlearn_jobs: Vec<(&str, &crate::jobs::unlearn::UnlearnJob)> = plan
        .jobs
        .iter()
        .filter_map(|p| match &p.job {
            Job::Unlearn(j) => Some((p.name.as_str(), j)),
            _ => None,
        })
        .collect();
    let Some(first) = unlearn_jobs.first() else {
        return Ok(StepsTable {
            text: String::new(),
            csv: String::new(),
            outside: 0,
            phases: 0,
        });
    };
    let data = &first.1.data;
    let ds = data.load()?;
    let first_seed = first.1.forget.seed;
    let mut rows: Vec<Row> = Vec::new();
    for (name, job) in unlearn_jobs {
        if job.forget.seed != first_seed {
            continue;
        }
        // runs/<scenario>/seed<k>/<label>
        let scenario = name.split('/').nth(1).unwrap_or("").to_string();
        let shape = job.data.run_shape(&ds, &job.forget)?;
        let method = crate::unlearn::find(&job.method)?.name().to_string();
        let explored = explored_scale(name.rsplit('/').next().unwrap_or(""));
        for phase in schedule::phases(&method, &job.config, &shape) {
            match rows.iter_mut().find(|r| {
                r.scenario == scenario
                    && r.method == method
                    && r.phase == phase
                    && r.explored == explored
            }) {
                Some(row) => row.runs += 1,
                None => rows.push(Row {
                    scenario: scenario.clone(),
                    method: method.clone(),
                    runs: 1,
                    phase,
                    explored: explored.clone(),
                }),
            }
        }
    }
    let mut text = format!(
        "Optimizer steps per phase (seed {first_seed}) against the reference's (CIFAR-10, batch \
         256); ok = within ±{:.0} %:\n",
        100.0 * schedule::TOLERANCE
    );
    let _ = writeln!(
        text,
        "{:<12} {:<11} {:>4}  {:<22} {:<12} {:>9} {:>7} {:>10} {:>6}  check",
        "request", "method", "runs", "phase", "stream", "per epoch", "steps", "reference", "ratio"
    );
    let mut csv = String::from(
        "request,method,runs,phase,stream,steps_per_epoch,steps,reference_steps,ratio,check\n",
    );
    let mut outside = 0;
    for r in &rows {
        let p = &r.phase;
        let check = if p.scaled_on_purpose {
            "scaled (the original's schedule)".to_string()
        } else if let Some(scale) = r.explored.as_ref().filter(|_| !p.within_tolerance()) {
            format!("explored: stop_iter_scale {scale}")
        } else if p.within_tolerance() {
            "ok".to_string()
        } else {
            outside += 1;
            if p.departs() {
                "OUTSIDE (> 2×: warned)".to_string()
            } else {
                "OUTSIDE".to_string()
            }
        };
        let unit = match p.passes {
            Some((here, reference)) => format!(" ({here:.1} vs {reference:.1} passes)"),
            None => String::new(),
        };
        let _ = writeln!(
            text,
            "{:<12} {:<11} {:>4}  {:<22} {:<12} {:>9} {:>7} {:>10} {:>6.2}  {check}{unit}",
            r.scenario,
            r.method,
            r.runs,
            p.phase,
            p.stream,
            p.steps_per_epoch,
            p.steps,
            p.reference_steps,
            p.ratio(),
        );
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{:.4},{}",
            csv_field(&r.scenario),
            csv_field(&r.method),
            r.runs,
            csv_field(&p.phase),
            csv_field(&p.stream),
            p.steps_per_epoch,
            p.steps,
            p.reference_steps,
            p.ratio(),
            csv_field(&format!("{check}{unit}")),
        );
    }
    Ok(StepsTable {
        text,
        csv,
        outside,
        phases: rows.len(),
    })
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
