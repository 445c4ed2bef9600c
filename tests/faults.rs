//! Faults a careless or hostile user causes: reruns into finished folders, two processes on one
//! folder, a killed sweep, unwritable outputs, settings that cannot mean anything.

mod common;

use common::{digits_model, gunlearn, ok, read_json};
use std::time::{Duration, Instant};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn unlearn_args<'a>(model: &'a str, method: &'a str, dir: &'a str) -> Vec<&'a str> {
    vec![
        "unlearn",
        "--model",
        model,
        "--unlearn",
        method,
        "--dataset",
        "digits",
        "--class_to_replace",
        "3",
        "--unlearn_epochs",
        "1",
        "--save_dir",
        dir,
        "--device",
        "cpu",
        "--quiet",
    ]
}

#[test]
fn a_failed_rerun_leaves_no_old_numbers_and_report_skips_unfinished_folders() {
    let model = digits_model().to_str().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("ft");
    let run_s = run.to_str().unwrap();
    ok(&unlearn_args(&model, "GA", run_s));
    let first = read_json(&run.join("eval_result.json"));
    // A rerun that fails once started (its loss diverges; it keeps its last good weights)
    // leaves the old numbers set aside, not beside the weights it wrote.
    let mut diverging = unlearn_args(&model, "GA", run_s);
    diverging.extend(["--unlearn_lr", "1e12", "--batch_size", "16"]);
    let epochs = diverging
        .iter()
        .position(|a| *a == "--unlearn_epochs")
        .unwrap();
    diverging[epochs + 1] = "50";
    let o = gunlearn(&diverging);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("loss became"), "{}", stderr(&o));
    assert!(read_json(&run.join("model.json"))["extra"]["failed"].is_string());
    assert!(!run.join("eval_result.json").exists());
    assert!(!run.join("audit.json").exists());
    assert_eq!(read_json(&run.join("eval_result.earlier.json")), first);
    let o = gunlearn(&[
        "report",
        run_s,
        "-o",
        tmp.path().join("r").to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "a folder without results was reported");

    // A folder whose results are there but whose completion mark is not (killed between the
    // two writes, say) is left out of the report, and the report says so.
    let done = tmp.path().join("ga");
    ok(&unlearn_args(&model, "GA", done.to_str().unwrap()));
    let cut = tmp.path().join("ft2");
    ok(&unlearn_args(&model, "FT", cut.to_str().unwrap()));
    std::fs::remove_file(cut.join("audit.json")).unwrap();
    let out = tmp.path().join("report");
    let o = ok(&[
        "report",
        tmp.path().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).contains("left out") && stderr(&o).contains("ft2"),
        "{}",
        stderr(&o)
    );
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    assert!(csv.contains("GA") && !csv.contains("FT"), "{csv}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("Run folders left out") && md.contains("no completion mark"),
        "{md}"
    );
}

#[test]
fn unlearn_refuses_to_replace_another_methods_run_without_overwrite() {
    let model = digits_model().to_str().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let run_s = run.to_str().unwrap();
    ok(&unlearn_args(&model, "FT", run_s));
    let ft = std::fs::read(run.join("eval_result.json")).unwrap();
    let o = gunlearn(&unlearn_args(&model, "GA", run_s));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("holds a finished FT run") && stderr(&o).contains("--overwrite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(run.join("eval_result.json")).unwrap(), ft);
    // With --overwrite it replaces it; the same method reruns without a word.
    let mut args = unlearn_args(&model, "GA", run_s);
    args.push("--overwrite");
    ok(&args);
    assert_eq!(read_json(&run.join("eval_result.json"))["method"], "GA");
    ok(&unlearn_args(&model, "GA", run_s));
}

#[test]
fn an_output_folder_that_cannot_be_written_is_refused_before_any_work() {
    let model = digits_model().to_str().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    // A folder that cannot be created (its parent is a file): the same refusal as a read-only
    // one, which the tests cannot make while they run as root.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let bad = file.join("out");
    let bad_s = bad.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        unlearn_args(&model, "FT", bad_s),
        vec![
            "train",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--save_dir",
            bad_s,
            "--quiet",
        ],
        vec![
            "eval",
            "--model",
            &model,
            "--dataset",
            "digits",
            "--save_dir",
            bad_s,
        ],
    ];
    for args in &commands {
        let o = gunlearn(args);
        assert!(!o.status.success(), "{args:?}");
        assert!(
            stderr(&o).contains("cannot be written to"),
            "{args:?}: {}",
            stderr(&o)
        );
        // Refused at once: nothing trained, evaluated or loaded beyond the arguments.
        assert!(
            !stderr(&o).contains("epoch"),
            "{args:?} worked first: {}",
            stderr(&o)
        );
    }
}

#[test]
fn settings_that_cannot_mean_anything_are_refused_by_name() {
    let model = digits_model().to_str().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let dir_s = dir.to_str().unwrap();
    let base = |extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = vec![
            "unlearn",
            "--model",
            &model,
            "--dataset",
            "digits",
            "--save_dir",
            dir_s,
            "--quiet",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let cases: [(&[&str], &str); 7] = [
        (
            &[
                "--unlearn",
                "FT",
                "--class_to_replace",
                "3",
                "--unlearn_epochs",
                "0",
            ],
            "--unlearn_epochs 0",
        ),
        (
            &[
                "--unlearn",
                "Gan",
                "--class_to_replace",
                "3",
                "--attacker_iters",
                "0",
            ],
            "--attacker_iters 0",
        ),
        (
            &[
                "--unlearn",
                "FT_l1",
                "--class_to_replace",
                "3",
                "--unlearn_epochs",
                "2",
                "--no-l1-epochs",
                "3",
            ],
            "--no-l1-epochs 3",
        ),
        (
            &[
                "--unlearn",
                "FT",
                "--indexes_to_replace",
                "--num_indexes_to_replace",
                "5",
            ],
            "--num_indexes_to_replace",
        ),
        (
            &[
                "--unlearn",
                "FT",
                "--class_to_replace",
                "3",
                "--num_indexes_to_replace",
                "0",
            ],
            "--num_indexes_to_replace 0",
        ),
        (
            &[
                "--unlearn",
                "FT",
                "--class_to_replace",
                "3",
                "--threads",
                "100000",
            ],
            "--threads",
        ),
        (
            &[
                "--unlearn",
                "FT",
                "--class_to_replace",
                "3",
                "--threads",
                "0",
            ],
            "--threads",
        ),
    ];
    for (extra, says) in cases {
        let args = base(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = gunlearn(&refs);
        assert!(!o.status.success(), "{extra:?}");
        assert!(stderr(&o).contains(says), "{extra:?}: {}", stderr(&o));
        assert!(!dir.join("eval_result.json").exists());
    }
}

/// A sweep of a few quick jobs.
const SWEEP: &str = r#"
dataset = "digits"
arch = "resnet20"
epochs = 2
scenarios = ["class:3"]
seeds = [1]
methods = [{ name = "FT", unlearn_epochs = [1, 2] }, { name = "GA", unlearn_epochs = 1 }]
[train]
batch_size = 128
"#;

#[test]
fn two_sweeps_on_one_folder_give_one_running_sweep_and_one_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("s.toml");
    std::fs::write(&file, SWEEP).unwrap();
    let out = tmp.path().join("out");
    let args = common::sweep_args(&file, &out, 2);
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_gunlearn"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Two at once: exactly one runs the study, the other names it and fails.
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (won, lost) = match (a.status.success(), b.status.success()) {
        (true, false) => (a, b),
        (false, true) => (b, a),
        other => panic!(
            "expected one success and one refusal, got {other:?}\n{}\n{}",
            stderr(&a),
            stderr(&b)
        ),
    };
    let done = String::from_utf8_lossy(&won.stderr).into_owned();
    let mut names: Vec<&str> = done
        .lines()
        .filter_map(|l| l.split("] done ").nth(1))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    names.sort();
    let count = names.len();
    names.dedup();
    assert_eq!((count, names.len()), (5, 5), "each job once: {done}"); // original, Retrain, FT × 2, GA
                                                                       // Each finished job's line counts it among the jobs to run, with the time so far and, but
                                                                       // for the last, an estimate of the time left.
    let lines: Vec<&str> = done.lines().filter(|l| l.contains("] done ")).collect();
    for (k, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("[{}/5] ", k + 1)), "{line}");
        assert!(line.contains(" elapsed"), "{line}");
        assert_eq!(line.contains(" left"), k + 1 < lines.len(), "{line}");
    }
    let refusal = stderr(&lost);
    assert!(
        refusal.contains("is in use by sweep (pid ") && refusal.contains("wait for it"),
        "{refusal}"
    );
    assert!(
        !refusal.contains("] done "),
        "the refused sweep ran jobs: {refusal}"
    );

    // One job folder held by another process (a second Slurm task of the same array index,
    // say): run-job refuses it, naming the holder, and runs it once the holder is gone.
    let job = out.join("runs/class3/seed1/GA-epochs1/job.json");
    std::fs::remove_file(job.with_file_name("audit.json")).unwrap();
    let run_job = || gunlearn(&["run-job", job.to_str().unwrap(), "--threads", "1"]);
    let held = gunlearn::lock::FolderLock::acquire(job.parent().unwrap(), "a test").unwrap();
    let o = run_job();
    assert!(!o.status.success());
    let says = format!("is in use by a test (pid {}", std::process::id());
    assert!(stderr(&o).contains(&says), "{}", stderr(&o));
    assert!(!job.with_file_name("audit.json").exists());
    drop(held);
    ok(&["run-job", job.to_str().unwrap(), "--threads", "1"]);
    assert!(job.with_file_name("audit.json").is_file());
}

#[test]
fn a_lock_left_by_a_killed_sweep_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("s.toml");
    std::fs::write(&file, SWEEP).unwrap();
    let out = tmp.path().join("out");
    let owned = common::sweep_args(&file, &out, 1);
    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut first = common::spawn_quietly(&owned);
    // Killed once it holds the lock and has started a job.
    let lock = out.join(gunlearn::lock::FILE_NAME);
    let started = Instant::now();
    while !out.join("original/run.log").is_file() {
        assert!(first.try_wait().unwrap().is_none(), "the sweep ended early");
        assert!(started.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(50));
    }
    let holder = read_json(&lock);
    assert_eq!(holder["pid"], first.id());
    first.kill().unwrap(); // SIGKILL: no chance to clean up
    first.wait().unwrap();
    assert!(lock.is_file(), "the lock file stays behind");
    // Its run-job child dies with it, and with it that job folder's lock.
    common::wait_for_children_to_end(&out);
    // The next sweep takes both locks over and finishes.
    let o = ok(&args);
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 failed"));
    assert_ne!(read_json(&lock)["pid"], holder["pid"]);
}

#[test]
fn a_split_mismatch_is_told_in_flags_not_in_rust_debug_output() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    let m = model.to_str().unwrap();
    ok(&[
        "train",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--train_subset",
        "500",
        "--save_dir",
        m,
        "--quiet",
    ]);
    let run = tmp.path().join("r");
    let o = gunlearn(&unlearn_args(m, "FT", run.to_str().unwrap()));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("--train_subset 500") && err.contains("all training images"),
        "{err}"
    );
    assert!(!err.contains("Some(") && !err.contains("None"), "{err}");
}
