//! `gunlearn::slurm` against a real single-node Slurm that `scripts/slurm-local.sh` installs
//! (if missing) and starts on this machine's loopback: job arrays run every task, a stage starts
//! only after every task of the one before succeeded, a failed task stops the stages after it,
//! a job started by slurmd runs the `gunlearn` binary, and `gunlearn sweep --slurm` runs a
//! whole sweep through it. Slurm not starting fails the test, with the script's output; it is
//! never skipped.

use gunlearn::slurm::{shell_quote, submit, write_scripts, ArrayStage, SlurmOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long the jobs of one test may take, queueing included.
const TIMEOUT: Duration = Duration::from_secs(120);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-local.sh")
}

/// The running local cluster; stops it when dropped (also when the test panics), unless it
/// was already running before the test (someone else's, left alone).
struct Cluster {
    started_here: bool,
}

impl Cluster {
    fn start() -> Cluster {
        let was_running = Command::new("bash")
            .arg(script())
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success());
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .output()
            .expect("run scripts/slurm-local.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The guard exists before any check, so a cluster that half started is stopped.
        let cluster = Cluster {
            started_here: !was_running,
        };
        assert!(
            out.status.success(),
            "Slurm did not start: scripts/slurm-local.sh start exited with {}:\n{stdout}\n{stderr}",
            out.status
        );
        let conf = stdout
            .lines()
            .find_map(|l| l.strip_prefix("SLURM_CONF="))
            .unwrap_or_else(|| panic!("no SLURM_CONF= line in:\n{stdout}\n{stderr}"));
        // sbatch, squeue and scontrol (and through sbatch's --export=ALL, the jobs) use it.
        std::env::set_var("SLURM_CONF", conf);
        cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.started_here {
            let _ = Command::new("bash").arg(script()).arg("stop").status();
        }
    }
}

/// Output of a Slurm command, for checks and failure messages.
fn run(cmd: &str, args: &[&str]) -> String {
    match Command::new(cmd).args(args).output() {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("{cmd}: {e}"),
    }
}

/// `(JobState, Reason)` of every record `scontrol show job ID` prints: one per array task
/// once they were split off, one for the tasks still pending together.
fn job_states(id: &str) -> Vec<(String, String)> {
    let text = run("scontrol", &["-o", "show", "job", id]);
    let field = |line: &str, key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or("")
            .to_string()
    };
    text.lines()
        .filter(|l| l.starts_with("JobId="))
        .map(|l| (field(l, "JobState="), field(l, "Reason=")))
        .collect()
}

fn finished(state: &str) -> bool {
    !matches!(
        state,
        "" | "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
    )
}

/// Everything worth reading when a wait times out.
fn diagnostics(ids: &[String], dir: &Path) -> String {
    let mut s = run("squeue", &["-l"]);
    for id in ids {
        s += &run("scontrol", &["show", "job", id]);
    }
    s += &run("sinfo", &["-N", "-l"]);
    let logs = dir.join("slurm/logs");
    for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        s += &format!("--- {}\n{text}", entry.path().display());
    }
    s
}

/// Waits until `done(states of each job)` holds; panics with the cluster's view after TIMEOUT.
fn wait_for(
    ids: &[String],
    dir: &Path,
    what: &str,
    done: impl Fn(&[Vec<(String, String)>]) -> bool,
) {
    let start = Instant::now();
    loop {
        let states: Vec<_> = ids.iter().map(|id| job_states(id)).collect();
        if done(&states) {
            return;
        }
        if start.elapsed() > TIMEOUT {
            panic!(
                "{what}: not after {TIMEOUT:?}; states {states:?}\n{}",
                diagnostics(ids, dir)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Seconds since the epoch written by `date +%s.%N` into `path` after `prefix`.
fn read_time(path: &Path, key: &str) -> f64 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {}: {text:?}", path.display()))
}

#[test]
fn job_arrays_run_in_dependency_order_and_a_failure_stops_the_chain() {
    let _cluster = Cluster::start();
    // A space in the folder: the scripts must quote their log paths and commands.
    let tmp = tempfile::Builder::new()
        .prefix("gunlearn slurm ")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = shell_quote(out.to_str().unwrap());
    let bin = shell_quote(env!("CARGO_BIN_EXE_gunlearn"));

    // Chain 1: three tasks, then two that need all three and run the gunlearn binary.
    let ok_stages = [
        ArrayStage {
            name: "first".into(),
            tasks: 3,
            command: format!(
                "f={o}/first-$SLURM_ARRAY_TASK_ID\n\
                 echo \"index $SLURM_ARRAY_TASK_ID\" > \"$f.tmp\"\n\
                 echo \"start $(date +%s.%N)\" >> \"$f.tmp\"\n\
                 sleep 1\n\
                 echo \"end $(date +%s.%N)\" >> \"$f.tmp\"\n\
                 mv \"$f.tmp\" \"$f\""
            ),
        },
        // An empty stage is skipped; the next one still waits for "first".
        ArrayStage {
            name: "empty".into(),
            tasks: 0,
            command: "exit 1".into(),
        },
        ArrayStage {
            name: "second".into(),
            tasks: 2,
            command: format!(
                "f={o}/second-$SLURM_ARRAY_TASK_ID\n\
                 echo \"start $(date +%s.%N)\" > \"$f.tmp\"\n\
                 for i in 0 1 2; do test -s {o}/first-$i; done\n\
                 {bin} --version > {o}/version-$SLURM_ARRAY_TASK_ID\n\
                 mv \"$f.tmp\" \"$f\""
            ),
        },
    ];
    let ok_dir = dir.join("ok");
    let scripts = write_scripts(&ok_dir, &ok_stages, &SlurmOptions::default()).unwrap();
    assert_eq!(scripts.len(), 2, "{scripts:?}");
    let ok_ids = submit(&scripts).unwrap();

    // Chain 2: one of two tasks fails, so the stage after it must never run.
    let fail_stages = [
        ArrayStage {
            name: "fails".into(),
            tasks: 2,
            command: format!(
                "if [ \"$SLURM_ARRAY_TASK_ID\" = 1 ]; then exit 1; fi\n\
                 touch {o}/fails-$SLURM_ARRAY_TASK_ID"
            ),
        },
        ArrayStage {
            name: "never".into(),
            tasks: 1,
            command: format!("touch {o}/never"),
        },
    ];
    let fail_dir = dir.join("fail");
    let scripts = write_scripts(&fail_dir, &fail_stages, &SlurmOptions::default()).unwrap();
    let fail_ids = submit(&scripts).unwrap();

    wait_for(&ok_ids, &ok_dir, "both stages finished", |jobs| {
        jobs.iter()
            .all(|tasks| !tasks.is_empty() && tasks.iter().all(|(s, _)| finished(s)))
    });
    for (id, tasks) in ok_ids.iter().zip(ok_ids.iter().map(|id| job_states(id))) {
        assert!(
            tasks.iter().all(|(s, _)| s == "COMPLETED"),
            "job {id}: {tasks:?}\n{}",
            diagnostics(&ok_ids, &ok_dir)
        );
    }
    let mut first_end: f64 = 0.0;
    for i in 0..3 {
        let f = out.join(format!("first-{i}"));
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.starts_with(&format!("index {i}\n")), "{text}");
        first_end = first_end.max(read_time(&f, "end "));
    }
    for i in 0..2 {
        let start = read_time(&out.join(format!("second-{i}")), "start ");
        assert!(
            start >= first_end,
            "second task {i} started at {start}, before the first stage ended at {first_end}"
        );
        let version = std::fs::read_to_string(out.join(format!("version-{i}"))).unwrap();
        assert_eq!(
            version.trim(),
            format!("gunlearn {}", env!("CARGO_PKG_VERSION"))
        );
    }
    // Every task's output landed under the quoted log folder, named %x-%A_%a.out.
    let logs = ok_dir.join("slurm/logs");
    for (id, name, n) in [(&ok_ids[0], "first", 3), (&ok_ids[1], "second", 2)] {
        for i in 0..n {
            let log = logs.join(format!("gunlearn-{name}-{id}_{i}.out"));
            assert!(log.is_file(), "{} missing", log.display());
        }
    }

    // The failing chain: the first stage ends (one task failed), and the second is either
    // cancelled by Slurm (--kill-on-invalid-dep) or left pending as never satisfiable.
    wait_for(
        &fail_ids,
        &fail_dir,
        "the dependent stage given up",
        |jobs| {
            let first_done = jobs[0].iter().all(|(s, _)| finished(s)) && !jobs[0].is_empty();
            let never = jobs[1].iter().any(|(s, r)| {
                s == "CANCELLED" || (s == "PENDING" && r == "DependencyNeverSatisfied")
            });
            first_done && never
        },
    );
    let states = job_states(&fail_ids[0]);
    assert!(
        states.iter().any(|(s, _)| s == "FAILED") && states.iter().any(|(s, _)| s == "COMPLETED"),
        "{states:?}"
    );
    let _ = run("scancel", &[&fail_ids[1]]);
    assert!(out.join("fails-0").exists());
    assert!(!out.join("never").exists(), "the dependent stage ran");

    a_sweep_runs_on_slurm_and_reports_as_locally(dir);
    an_audit_pool_is_built_on_slurm_and_scored_locally(dir);
}

/// Runs a `gunlearn … --slurm` command that must succeed; returns the job ids it printed
/// ("submitted N job arrays (ID, ID, …)") and its output.
fn submitted(cmd: &mut Command) -> (Vec<String>, String) {
    let o = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ids = stdout
        .lines()
        .find_map(|l| l.split_once('(').and_then(|(_, r)| r.split_once(')')))
        .map(|(ids, _)| ids.split(", ").map(String::from).collect())
        .unwrap_or_else(|| panic!("no job ids in: {stdout}"));
    (ids, stdout)
}

/// Waits until every array of `ids` has finished; panics with the diagnostics after 15 minutes.
fn wait_for_arrays(ids: &[String], dir: &Path) {
    let start = Instant::now();
    loop {
        let states: Vec<_> = ids.iter().map(|id| job_states(id)).collect();
        if states
            .iter()
            .all(|t| !t.is_empty() && t.iter().all(|(s, _)| finished(s)))
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "the jobs did not finish: {states:?}\n{}",
            diagnostics(ids, dir)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `gunlearn audit --slurm`: the pool (original, retrained models) and the method runs are built
/// by job arrays; the same command without `--slurm` then scores them without training anything.
fn an_audit_pool_is_built_on_slurm_and_scored_locally(dir: &Path) {
    let out = dir.join("audit");
    let bin = env!("CARGO_BIN_EXE_gunlearn");
    let args = |slurm: bool| {
        let mut a = vec![
            "audit",
            "--dataset",
            "digits",
            "--arch",
            "resnet20",
            "--epochs",
            "1",
            "--batch_size",
            "128",
            "--forget",
            "random:30",
            "--methods",
            "raw,FT",
            "--unlearn_epochs",
            "1",
            "--n",
            "2",
            "--resamples",
            "100",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ];
        if slurm {
            a.extend_from_slice(&["--slurm", "--cpus-per-task", "1"]);
        }
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let (ids, stdout) = submitted(Command::new(bin).args(args(true)));
    assert!(!ids.is_empty(), "{stdout}");
    wait_for_arrays(&ids, &out);
    assert!(
        !out.join("audit_result.json").exists(),
        "the Slurm tasks build the pool; scoring is the second command's"
    );
    // Every model the pool needs was made on the cluster: the retrained seeds and each method's
    // runs are complete, and scoring them here changes none.
    let completed = |root: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut found = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|n| n == "audit.json") {
                    found.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        found.sort();
        found
    };
    let before = completed(&out.join("pools"));
    // Two retrained models and 2 runs each of raw and FT.
    assert_eq!(before.len(), 6, "{before:?}\n{}", diagnostics(&ids, &out));
    let o = Command::new(bin).args(args(false)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        completed(&out.join("pools")),
        before,
        "scoring re-ran a model"
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("audit_result.json")).unwrap())
            .unwrap();
    for method in ["raw", "FT"] {
        assert_eq!(result["methods"][method]["n_models"], 2, "{result}");
        assert_eq!(
            result["methods"][method]["epsilon"]
                .as_array()
                .unwrap()
                .len(),
            30
        );
    }
}

/// `gunlearn sweep FILE --slurm`: every run of a small sweep completes through the job arrays,
/// Retrain before the runs that read it, and `gunlearn report DIR` reads the result.
fn a_sweep_runs_on_slurm_and_reports_as_locally(dir: &Path) {
    let file = dir.join("sweep.toml");
    std::fs::write(
        &file,
        "dataset = \"digits\"\narch = \"resnet20\"\nepochs = 1\nscenarios = [\"class:3\"]\n\
         seeds = [1]\nmethods = [{ name = \"FT\", unlearn_epochs = 1 }, { name = \"GA\", unlearn_epochs = 1 }]\n\
         [train]\nbatch_size = 128\n[unlearn]\nbatch_size = 128\n",
    )
    .unwrap();
    let sweep = dir.join("sweep");
    let bin = env!("CARGO_BIN_EXE_gunlearn");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "sweep",
            file.to_str().unwrap(),
            "--out",
            sweep.to_str().unwrap(),
            "--slurm",
            "--cpus-per-task",
            "1",
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let (ids, stdout) = submitted(Command::new(bin).args(args(&[])));
    assert_eq!(ids.len(), 3, "train, prerequisites, runs: {stdout}");
    let runs = [
        "runs/class3/seed1/retrain",
        "runs/class3/seed1/FT-epochs1",
        "runs/class3/seed1/GA-epochs1",
    ];
    wait_for_arrays(&ids, &sweep);
    for run in runs {
        assert!(
            sweep.join(run).join("audit.json").is_file(),
            "{run} did not complete\n{}",
            diagnostics(&ids, &sweep)
        );
    }
    // The runs started after their Retrain finished: each audit record has its gap.
    let audit = std::fs::read_to_string(sweep.join(runs[1]).join("audit.json")).unwrap();
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    assert!(audit["gap_to_retrain"].is_f64(), "{audit}");
    let report = dir.join("report");
    let o = Command::new(bin)
        .args([
            "report",
            sweep.to_str().unwrap(),
            "-o",
            report.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(report.join("report.csv")).unwrap();
    assert!(csv.contains("FT") && csv.contains("GA"), "{csv}");
    // Submitting again finds nothing to do: no stage has an incomplete job.
    let o = Command::new(bin)
        .args(args(&["--dry-run"]))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && !stdout.contains(".sbatch"),
        "{stdout}"
    );
}
