//! The local scheduler: runs a plan's jobs in dependency order on `workers` child processes
//! (`gunlearn run-job DIR/job.json`), splitting the CPU threads between them or giving each
//! one GPU.
//!
//! Each job is its own process because libtorch's seed and thread count are process-wide: two
//! runs in one process would disturb each other's random streams. A child dies with the sweep
//! (`PR_SET_PDEATHSIG`), so a killed sweep leaves no run writing behind its back; the killed
//! runs have no completion mark and are redone on the next start.

use super::{Plan, JOB_FILE};
use anyhow::Context;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex};

/// How to run a plan on this machine.
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    /// Jobs run at once (default: one per GPU, else 1).
    pub workers: Option<usize>,
    /// libtorch threads per job (default: this machine's cores divided among the workers).
    pub threads: Option<usize>,
    /// GPUs to use, one worker each (`CUDA_VISIBLE_DEVICES` of its jobs).
    pub gpus: Vec<usize>,
    /// No progress bar; one line per job.
    pub quiet: bool,
}

/// What happened to a plan's jobs.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Jobs run to completion now.
    pub ran: usize,
    /// Jobs already complete, skipped.
    pub skipped: usize,
    /// Jobs that failed or could not run, with the reason.
    pub failed: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Status {
    Done,
    Failed(String),
    Pending,
    Running,
}

/// The scheduler's shared state.
struct Board {
    status: Vec<Status>,
    running: usize,
    /// Jobs finished (done or failed) in this run of the sweep.
    finished: usize,
    /// Their typical cost, against the total of the jobs to run, for the time left.
    finished_cost: f64,
}

/// `1 min 05 s`, `42 s`, `2 h 03 min`.
fn duration_text(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

/// A pending job whose prerequisites are all done, marked running; `None` when nothing is left
/// to start. Jobs whose prerequisite failed are marked failed on the way. The ready job of the
/// latest stage goes first, so that the runs of one base model and forget request finish before
/// the next request's Retrain starts (a sweep stopped part-way leaves complete cells rather than
/// a Retrain for every cell and no method beside it); among those, the longest (`cost`) first,
/// so that a long run does not start last and keep one worker busy alone at the end.
fn next_job(
    board: &Mutex<Board>,
    changed: &Condvar,
    needs: &[Vec<usize>],
    plan: &Plan,
    cost: &[f64],
    bar: &indicatif::ProgressBar,
) -> Option<usize> {
    let mut b = board.lock().expect("board lock");
    loop {
        let mut waiting = false;
        let mut ready: Option<usize> = None;
        for (i, job_needs) in needs.iter().enumerate() {
            if b.status[i] != Status::Pending {
                continue;
            }
            if let Some(&n) = job_needs
                .iter()
                .find(|&&n| matches!(b.status[n], Status::Failed(_)))
            {
                let why = format!("not run: its prerequisite {} failed", plan.jobs[n].name);
                b.status[i] = Status::Failed(why);
                bar.inc(1);
                changed.notify_all();
                continue;
            }
            if job_needs.iter().all(|&n| b.status[n] == Status::Done) {
                let key = |j: usize| (plan.jobs[j].stage, cost[j]);
                if ready.is_none_or(|r| key(i) > key(r)) {
                    ready = Some(i);
                }
                continue;
            }
            waiting = true;
        }
        if let Some(i) = ready {
            b.status[i] = Status::Running;
            b.running += 1;
            return Some(i);
        }
        if !waiting || b.running == 0 {
            // Nothing pending, or pending jobs wait on nothing that can still finish.
            return None;
        }
        b = changed.wait(b).expect("board lock");
    }
}

/// Each job's typical cost ([`super::estimate::Costs::TYPICAL`]), which orders the ready jobs;
/// all equal when the data set cannot be read here (its jobs will say why).
fn job_costs(plan: &Plan) -> Vec<f64> {
    let data = plan.jobs.iter().find_map(|p| match &p.job {
        crate::jobs::Job::Unlearn(j) | crate::jobs::Job::Attacker(j) => Some(&j.data),
        _ => None,
    });
    let Some(ds) = data.and_then(|d| d.load().ok()) else {
        return vec![0.0; plan.jobs.len()];
    };
    let typical = super::estimate::Costs::TYPICAL;
    plan.jobs
        .iter()
        .map(|p| super::estimate::job_seconds(&p.job, &ds, &typical).map_or(0.0, |(_, s)| s))
        .collect()
}

/// Runs every incomplete job of `plan` (written with [`Plan::write`]), each once its
/// prerequisites are done; a job whose prerequisite failed is not started.
pub fn run(plan: &Plan, opts: &LocalOptions) -> anyhow::Result<Outcome> {
    let exe = std::env::current_exe().context("locating the gunlearn binary")?;
    let workers = opts.workers.unwrap_or(opts.gpus.len().max(1)).max(1);
    if !opts.gpus.is_empty() && workers > opts.gpus.len() {
        anyhow::bail!(
            "--workers {workers} with {} GPUs: each worker needs its own GPU",
            opts.gpus.len()
        );
    }
    let threads = opts
        .threads
        .unwrap_or_else(|| (crate::device::thread_count(None) / workers).max(1));
    let index: HashMap<&str, usize> = plan
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    let needs: Vec<Vec<usize>> = plan
        .jobs
        .iter()
        .map(|j| {
            j.needs
                .iter()
                .map(|n| {
                    index
                        .get(n.as_str())
                        .copied()
                        .with_context(|| format!("{} needs {n}, which is not planned", j.name))
                })
                .collect()
        })
        .collect::<anyhow::Result<_>>()?;
    let mut outcome = Outcome::default();
    let status: Vec<Status> = plan
        .jobs
        .iter()
        .map(|job| {
            if job.job.is_complete() {
                outcome.skipped += 1;
                Status::Done
            } else {
                Status::Pending
            }
        })
        .collect();
    let todo = plan.jobs.len() - outcome.skipped;
    let bar = progress_bar(todo as u64, opts.quiet);
    say(
        &bar,
        &format!(
            "sweep {}: {} jobs, {} already complete, {todo} to run on {workers} worker(s) × {threads} thread(s)",
            plan.out.display(),
            plan.jobs.len(),
            outcome.skipped
        ),
    );
    // A job starts as soon as everything it needs is done (see `next_job` for the order), so
    // one slow prerequisite does not hold up the jobs that do not read it.
    let cost = job_costs(plan);
    let todo_cost: f64 = (0..plan.jobs.len())
        .filter(|&i| status[i] == Status::Pending)
        .map(|i| cost[i])
        .sum();
    let sweep_started = std::time::Instant::now();
    let board = Mutex::new(Board {
        status,
        running: 0,
        finished: 0,
        finished_cost: 0.0,
    });
    let changed = Condvar::new();
    std::thread::scope(|scope| {
        for w in 0..workers {
            let (board, changed, bar, exe, needs, cost) =
                (&board, &changed, &bar, &exe, &needs, &cost);
            let gpu = opts.gpus.get(w).copied();
            scope.spawn(move || {
                while let Some(i) = next_job(board, changed, needs, plan, cost, bar) {
                    let job = &plan.jobs[i];
                    let started = std::time::Instant::now();
                    let result = run_child(exe, job.job.save_dir(), threads, gpu).and_then(|()| {
                        if job.job.is_complete() {
                            Ok(())
                        } else {
                            anyhow::bail!("it exited without its completion mark")
                        }
                    });
                    let line = match &result {
                        Ok(()) => format!(
                            "done   {} ({}, {:.0} s)",
                            job.name,
                            job.job.describe(),
                            started.elapsed().as_secs_f64()
                        ),
                        Err(err) => format!("FAILED {}: {err:#}", job.name),
                    };
                    let mut b = board.lock().expect("board lock");
                    b.finished += 1;
                    b.finished_cost += cost[i];
                    let elapsed = sweep_started.elapsed().as_secs_f64();
                    let left = if b.finished_cost > 0.0 && todo_cost > b.finished_cost {
                        let seconds = elapsed * (todo_cost - b.finished_cost) / b.finished_cost;
                        format!(", ≈ {} left", duration_text(seconds))
                    } else {
                        String::new()
                    };
                    say(
                        bar,
                        &format!(
                            "[{}/{todo}] {line} · {} elapsed{left}",
                            b.finished,
                            duration_text(elapsed)
                        ),
                    );
                    bar.inc(1);
                    b.running -= 1;
                    b.status[i] = match result {
                        Ok(()) => Status::Done,
                        Err(err) => Status::Failed(format!("{err:#}")),
                    };
                    changed.notify_all();
                }
            });
        }
    });
    let status = board.into_inner().expect("board lock").status;
    outcome.ran = status.iter().filter(|s| **s == Status::Done).count() - outcome.skipped;
    bar.finish_and_clear();
    for (job, s) in plan.jobs.iter().zip(&status) {
        if let Status::Failed(why) = s {
            outcome.failed.push((job.name.clone(), why.clone()));
        }
    }
    Ok(outcome)
}

/// Runs `gunlearn run-job DIR/job.json` with its output in `DIR/run.log`.
fn run_child(exe: &Path, dir: &Path, threads: usize, gpu: Option<usize>) -> anyhow::Result<()> {
    let log_path = dir.join("run.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("run-job")
        .arg(dir.join(JOB_FILE))
        .arg("--threads")
        .arg(threads.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(gpu) = gpu {
        cmd.env("CUDA_VISIBLE_DEVICES", gpu.to_string())
            .args(["--device", "cuda:0"]);
    }
    die_with_parent(&mut cmd);
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", exe.display()))?;
    if !status.success() {
        let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
        let last = tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        anyhow::bail!("{status}: {last} (log: {})", log_path.display());
    }
    Ok(())
}

/// Asks the kernel to kill the child when the thread that started it (and so the sweep) dies.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// One bar over all jobs to run, with ETA; hidden when quiet or not on a terminal.
fn progress_bar(len: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "sweep [{elapsed_precise}] {wide_bar} {pos}/{len} jobs, ETA {eta}",
        )
        .expect("valid template"),
    );
    bar
}

/// A line above the bar, or on stderr when the bar is hidden.
fn say(bar: &indicatif::ProgressBar, line: &str) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}
