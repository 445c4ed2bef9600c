//! `gunlearn sweep FILE.toml --out DIR`: a grid of data set × scenarios × seeds × methods (with
//! hyper-parameter grids) expanded into plain jobs ([`crate::jobs::Job`]), each in its own run
//! folder with a stable, readable name, run in dependency order: the trained (and pruned)
//! model, then each forget request's Retrain and pre-trained attacker, then the methods.
//!
//! A finished job is never redone ([`crate::jobs::Job::is_complete`]); an interrupted one is
//! redone from the start. Every run folder holds its `job.json`, so the same plan runs locally
//! ([`local`]), on Slurm ([`crate::slurm`]) or by hand (`gunlearn run-job DIR/job.json`).

pub mod estimate;
pub mod local;
pub mod spec;
pub mod steps;

use crate::jobs::Job;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One planned job: its stage (prerequisites run in earlier stages), the jobs it needs, and the
/// job itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedJob {
    /// Stable name: the run folder relative to the sweep folder.
    pub name: String,
    /// 0: the trained model; 1: the pruned model; 2: Retrain and attackers; 3: the methods.
    pub stage: usize,
    /// Names of the jobs whose outputs this one reads.
    pub needs: Vec<String>,
    /// What to run.
    pub job: Job,
}

/// Every job of a sweep, in stage order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The sweep folder.
    pub out: PathBuf,
    /// The jobs, sorted by stage.
    pub jobs: Vec<PlannedJob>,
}

/// The file each run folder gets: the job as plain data.
pub const JOB_FILE: &str = "job.json";

impl Plan {
    /// The stages in order, each with the indices of its jobs (in plan order).
    pub fn stages(&self) -> Vec<(usize, Vec<usize>)> {
        let mut stages: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (i, job) in self.jobs.iter().enumerate() {
            stages.entry(job.stage).or_default().push(i);
        }
        stages.into_iter().collect()
    }

    /// Writes `plan.json` and every run folder's `job.json`. A folder whose `job.json` describes
    /// a different job is an error (the sweep file changed under the same names): finished
    /// results are never silently mixed with new settings.
    pub fn write(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        for planned in &self.jobs {
            let dir = planned.job.save_dir();
            let path = dir.join(JOB_FILE);
            let wanted = serde_json::to_value(&planned.job)?;
            if path.exists() {
                // Read back as a job, so settings added since it was written take their
                // defaults instead of counting as a difference (and moved to where the sweep
                // folder is now).
                let existing = serde_json::to_value(crate::jobs::read_job(&path)?)?;
                if let Some(diff) = difference(
                    &without_runner(existing),
                    &without_runner(wanted.clone()),
                    "",
                ) {
                    bail!(
                        "{} was planned with other settings than this sweep file gives it \
                         ({diff}); use another --out, or delete that folder to redo it",
                        dir.display()
                    );
                }
            }
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut record = wanted;
            if let (Ok(inside), Some(map)) = (dir.strip_prefix(&self.out), record.as_object_mut()) {
                map.insert(
                    crate::jobs::SWEEP_DIR_KEY.into(),
                    serde_json::Value::String(self.out.to_string_lossy().into_owned()),
                );
                map.insert(
                    crate::jobs::SWEEP_DEPTH_KEY.into(),
                    serde_json::Value::from(inside.components().count()),
                );
            }
            crate::fsutil::write_json_atomic(&path, &record)?;
        }
        crate::fsutil::write_json_atomic(&self.out.join("plan.json"), self)
    }
}

/// The first setting in which `was` and `now` differ, as `key: was → now` (`None`: equal).
fn difference(was: &serde_json::Value, now: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    let key = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match (was, now) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                let null = Value::Null;
                difference(
                    a.get(k).unwrap_or(&null),
                    b.get(k).unwrap_or(&null),
                    &key(k),
                )
            })
        }
        (a, b) if a == b => None,
        (a, b) => Some(format!(
            "{}: {a} then, {b} now",
            if at.is_empty() { "job" } else { at }
        )),
    }
}

/// A job's JSON without what says how it runs rather than what it computes: its runner
/// (threads, device, quiet and layout may differ between runs) and Gan's `gan_memory` (keep, recompute
/// and auto give the same gradient).
fn without_runner(mut job: serde_json::Value) -> serde_json::Value {
    if let Some(map) = job.as_object_mut() {
        map.remove("runner");
        if let Some(config) = map.get_mut("config").and_then(|c| c.as_object_mut()) {
            config.remove("gan_memory");
        }
    }
    job
}

/// Reads `DIR/plan.json`.
pub fn read_plan(out: &Path) -> anyhow::Result<Plan> {
    let path = out.join("plan.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {}: run `gunlearn sweep FILE --out {}` first",
            path.display(),
            out.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The Slurm form of a plan: one job array per stage over the stage's incomplete jobs, listed
/// one `job.json` per line in `DIR/slurm/stage-<S>.jobs`; array task `i` runs line `i + 1` with
/// `gunlearn run-job` (`exe`), which skips a job finished in the meantime.
pub fn slurm_stages(plan: &Plan, exe: &Path) -> anyhow::Result<Vec<crate::slurm::ArrayStage>> {
    let dir = std::path::absolute(plan.out.join("slurm"))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut stages = Vec::new();
    for (stage, ids) in plan.stages() {
        let files: Vec<String> = ids
            .iter()
            .map(|&i| &plan.jobs[i].job)
            .filter(|job| !job.is_complete())
            .map(|job| std::path::absolute(job.save_dir().join(JOB_FILE)))
            .map(|p| p.map(|p| p.to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        let list = dir.join(format!("stage-{stage}.jobs"));
        crate::fsutil::write_bytes_atomic(&list, (files.join("\n") + "\n").as_bytes())?;
        let command = format!(
            "{exe} run-job \"$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {list})\" \
             ${{SLURM_CPUS_PER_TASK:+--threads $SLURM_CPUS_PER_TASK}}",
            exe = crate::slurm::shell_quote(&exe.to_string_lossy()),
            list = crate::slurm::shell_quote(&list.to_string_lossy()),
        );
        stages.push(crate::slurm::ArrayStage {
            name: STAGE_NAMES
                .get(stage)
                .copied()
                .unwrap_or("stage")
                .to_string(),
            tasks: files.len(),
            command,
        });
    }
    Ok(stages)
}

/// Names of the stages, by number, for Slurm's job names.
const STAGE_NAMES: [&str; 4] = ["train", "prune", "prerequisites", "runs"];
