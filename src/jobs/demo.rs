//! The demo: the whole pipeline on the embedded digits data set, on CPU, in a few minutes. It
//! is the sweep `examples/demo.toml` (embedded), run on this machine's cores, then reported
//! with a plain reading of its tables.

use crate::eval::report::{Group, Report};
use crate::sweep::local::LocalOptions;
use crate::sweep::spec::{MethodSpec, SweepSpec};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The demo's study: every method on a class-wise and a random request of digits.
pub const DEMO_SWEEP: &str = include_str!("../../examples/demo.toml");

/// The demo's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DemoJob {
    /// Output folder for the demo's runs.
    pub save_dir: PathBuf,
    /// Training epochs of the original model (and of Retrain); `None`: the demo file's.
    pub epochs: Option<usize>,
    /// Only these methods (Retrain and the original always run); empty: every method.
    pub methods: Vec<String>,
    /// Runs at once, one libtorch thread each (default: one per core).
    pub workers: Option<usize>,
    /// Device, layout, quiet (threads: one per worker).
    pub runner: super::Runner,
}

impl Default for DemoJob {
    fn default() -> Self {
        DemoJob {
            save_dir: PathBuf::from("runs/demo"),
            epochs: None,
            methods: Vec::new(),
            workers: None,
            runner: super::Runner::default(),
        }
    }
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    /// The report's tables, one per forget request.
    pub tables: String,
    /// The plain reading of the tables.
    pub reading: String,
    /// Each kind of health warning with the number of runs that gave it.
    pub warnings: Vec<(String, usize)>,
    /// `report.html`.
    pub html: PathBuf,
    /// Wall-clock seconds, set-up excluded.
    pub seconds: f64,
}

/// The demo's sweep file with `job`'s changes: fewer epochs (the decay milestones at the same
/// fractions) or fewer methods.
fn demo_spec(job: &DemoJob) -> anyhow::Result<SweepSpec> {
    let mut spec = crate::sweep::spec::parse(DEMO_SWEEP, "the demo's sweep (examples/demo.toml)")?;
    if let Some(epochs) = job.epochs {
        anyhow::ensure!(
            epochs > 0,
            "--epochs 0: the demo's original needs at least one epoch"
        );
        spec.epochs = Some(epochs);
        let milestones = format!("{},{}", epochs / 2, epochs * 3 / 4);
        spec.train
            .insert("decreasing_lr".into(), toml::Value::String(milestones));
    }
    if !job.methods.is_empty() {
        for m in &job.methods {
            crate::unlearn::find(m)?;
        }
        spec.methods.retain(|entry: &MethodSpec| {
            entry.name() == "raw"
                || job
                    .methods
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(entry.name()))
        });
    }
    Ok(spec)
}

/// Trains the original, runs every method on both requests (as a sweep, one run per core),
/// writes the report and returns its tables and reading. Progress goes to the terminal.
pub fn run(job: &DemoJob) -> anyhow::Result<DemoOutcome> {
    let started = Instant::now();
    let spec = demo_spec(job)?;
    let _lock = crate::lock::FolderLock::acquire(&job.save_dir, "demo")?;
    let mut plan = crate::sweep::spec::plan(&spec, &job.save_dir)?;
    for p in &mut plan.jobs {
        let runner = p.job.runner_mut();
        runner.device = job.runner.device.clone();
        runner.layout = job.runner.layout;
    }
    plan.write()?;
    let workers = job
        .workers
        .unwrap_or_else(|| crate::device::thread_count(None))
        .max(1);
    println!(
        "demo: {} runs on the embedded digits data (an original, then each method on a class-wise \
         and a random forget request at its reference's optimizer steps), {workers} at once -> {}",
        plan.jobs.len(),
        job.save_dir.display()
    );
    let outcome = crate::sweep::local::run(
        &plan,
        &LocalOptions {
            workers: Some(workers),
            threads: Some(1),
            gpus: Vec::new(),
            quiet: job.runner.quiet,
        },
    )?;
    if let Some((name, why)) = outcome.failed.first() {
        anyhow::bail!(
            "{} of the demo's {} runs failed, first {name}: {why} (its run.log says more); \
             rerun the demo to retry them",
            outcome.failed.len(),
            plan.jobs.len()
        );
    }
    let dirs = [job.save_dir.clone()];
    let written = crate::eval::report::report(&dirs, None, &job.save_dir)?;
    let original = original_accuracy(&job.save_dir.join("original"));
    Ok(DemoOutcome {
        reading: reading(&written.report, original),
        tables: written.tables,
        warnings: crate::eval::report::health_kinds(&written.health),
        html: job.save_dir.join("report.html"),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// (train, test) accuracy of the trained original, when recorded.
fn original_accuracy(dir: &Path) -> Option<(f64, f64)> {
    let info = crate::checkpoint::read_info(&dir.join("model.json")).ok()?;
    Some((*info.accuracy.get("train")?, *info.accuracy.get("test")?))
}

/// One paragraph per request: which methods land closest to Retrain, how the adversarial
/// method did, and what the demo scaled down.
fn reading(rep: &Report, original: Option<(f64, f64)>) -> String {
    let mut out = String::new();
    if let Some((train, test)) = original {
        out.push_str(&format!(
            "The original reaches train {train:.2} % and test {test:.2} %{}. ",
            if train < 99.5 {
                " (it does not memorise its training set, so forgetting is hard to see)"
            } else if train - test < 2.0 {
                " (it memorises its training set, but the test images are as easy, so a \
                 random forget set looks like unseen data to every model: random forgetting \
                 barely tells methods apart here, class-wise forgetting does)"
            } else {
                " (it memorises its training set, as the paper's models do)"
            }
        ));
    }
    for s in &rep.sections {
        let mut ranked: Vec<&Group> = s
            .groups
            .iter()
            .filter(|g| !g.is_retrain() && g.method != "raw" && g.gap.is_some())
            .collect();
        ranked.sort_by(|a, b| gap_of(a).total_cmp(&gap_of(b)));
        let Some(best) = ranked.first() else {
            continue;
        };
        let closest: Vec<String> = ranked
            .iter()
            .take(3)
            .map(|g| format!("{} ({:.2})", g.label(), gap_of(g)))
            .collect();
        out.push_str(&format!(
            "Forget {}: closest to Retrain (Avg. gap, lower is better) {}",
            s.scenario,
            closest.join(", ")
        ));
        if let Some(raw) = s
            .groups
            .iter()
            .find(|g| g.method == "raw" && g.gap.is_some())
        {
            out.push_str(&format!("; doing nothing is at {:.2}", gap_of(raw)));
        }
        out.push_str(". ");
        if let Some((rank, gan)) = ranked.iter().enumerate().find(|(_, g)| g.method == "Gan") {
            let cost = gan
                .rte_fraction
                .map(|r| format!(" at {:.2}× Retrain's time", r.mean))
                .unwrap_or_default();
            if std::ptr::eq(*gan, *best) {
                out.push_str(&format!("The adversarial method lands closest{cost}. "));
            } else {
                out.push_str(&format!(
                    "The adversarial method ranks {} of {} ({:.2}){cost}. ",
                    rank + 1,
                    ranked.len(),
                    gap_of(gan)
                ));
            }
        }
    }
    out.push_str(
        "Scaled down: digits (8×8 grey, 1 297 training images) for CIFAR-10, ResNet-20 for \
         ResNet-18, the original's 30 epochs for 182, one seed (no spread); each method keeps \
         its reference's optimizer steps per phase at batch 32.",
    );
    out
}

fn gap_of(g: &Group) -> f64 {
    g.gap.map_or(f64::INFINITY, |s| s.mean)
}
