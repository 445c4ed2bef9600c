//! `gunlearn sweep`: the sweep file expands into the planned jobs (prerequisites before the runs
//! that read them, stable names, grids), bad files are refused naming the key before anything is
//! written, and a sweep killed with SIGKILL loses nothing finished, leaves nothing half-written
//! that looks complete, and finishes on the next start without redoing finished runs.

mod common;

use common::{gunlearn, ok, read_json};
use gunlearn::jobs::Job;
use gunlearn::sweep::spec;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn plan_of(text: &str) -> anyhow::Result<gunlearn::sweep::Plan> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sweep.toml");
    std::fs::write(&file, text).unwrap();
    spec::plan(&spec::read(&file)?, Path::new("/sweep"))
}

fn unlearn(job: &Job) -> &gunlearn::jobs::unlearn::UnlearnJob {
    match job {
        Job::Unlearn(j) | Job::Attacker(j) => j,
        other => panic!("not an unlearning job: {other:?}"),
    }
}

#[test]
fn the_minimal_file_plans_the_model_each_requests_prerequisites_and_the_runs() {
    let file = examples().join("digits-minimal.toml");
    let plan = spec::plan(&spec::read(&file).unwrap(), Path::new("/sweep")).unwrap();
    let names: Vec<&str> = plan.jobs.iter().map(|j| j.name.as_str()).collect();
    // 1 model + 4 requests × (Retrain + attacker) + 4 × 3 methods.
    assert_eq!(plan.jobs.len(), 1 + 4 * 2 + 4 * 3, "{names:?}");
    assert_eq!(names[0], "original");
    let Job::Train(train) = &plan.jobs[0].job else {
        panic!("stage 0 trains")
    };
    assert_eq!(train.config.epochs, 6);
    assert_eq!(train.arch, gunlearn::model::Arch::Resnet20);
    assert!(train.resume, "an interrupted training continues");
    // Stages never go back, and every job's prerequisites come in earlier stages.
    for (i, job) in plan.jobs.iter().enumerate() {
        for need in &job.needs {
            let n = plan.jobs.iter().position(|j| &j.name == need).unwrap();
            assert!(plan.jobs[n].stage < job.stage, "{} needs {need}", job.name);
            assert!(n < i);
        }
    }
    let get = |name: &str| {
        plan.jobs
            .iter()
            .find(|j| j.name == name)
            .unwrap_or_else(|| panic!("{name} not planned: {names:?}"))
    };
    let gan = get("runs/class3/seed2/Gan");
    assert_eq!(
        gan.needs,
        [
            "original",
            "runs/class3/seed2/retrain",
            "attackers/class3/seed2"
        ]
    );
    let gan_job = unlearn(&gan.job);
    assert_eq!(gan_job.forget.class_to_replace, Some(3));
    assert_eq!(gan_job.forget.seed, 2);
    assert_eq!(gan_job.config.seed, 2, "the method runs with the run seed");
    assert_eq!(gan_job.model, Path::new("/sweep/original"));
    assert_eq!(
        gan_job.retrain_dir.as_deref(),
        Some(Path::new("/sweep/runs/class3/seed2/retrain"))
    );
    let ft = unlearn(&get("runs/random0.1/seed1/FT").job);
    assert!(ft.forget.indexes_to_replace);
    assert_eq!(ft.forget.forget_fraction, 0.1);
    // Retrain repeats the trained model's schedule.
    let retrain = unlearn(&get("runs/random0.1/seed1/retrain").job);
    assert_eq!(retrain.config.epochs, Some(6));
    assert_eq!(retrain.config.lr, Some(0.1));
    assert_eq!(get("attackers/random0.1/seed1").stage, 2);
}

#[test]
fn grids_expand_into_readable_run_names_and_list_settings_stay_single() {
    // Settings appear in a run's name in alphabetical order, so names do not depend on how the
    // file orders them.
    let plan = plan_of(
        r#"
dataset = "digits"
arch = "resnet20"
epochs = 2
scenarios = ["class:3:50"]
seeds = [1]
methods = [
  { name = "FT", unlearn_lr = [0.01, 0.1], unlearn_epochs = 1 },
  { name = "GA", decreasing_lr = [1, 2] },
  { name = "SCRUB", lr_decay_epochs = [[1], [2, 3]] },
]
[unlearn]
batch_size = 32
"#,
    )
    .unwrap();
    let runs: Vec<&str> = plan
        .jobs
        .iter()
        .filter(|j| j.stage == 3)
        .map(|j| j.name.as_str())
        .collect();
    assert_eq!(
        runs,
        [
            "runs/class3-n50/seed1/FT-epochs1-lr0.01",
            "runs/class3-n50/seed1/FT-epochs1-lr0.1",
            "runs/class3-n50/seed1/GA-milestones1_2",
            "runs/class3-n50/seed1/SCRUB-lr_decay_epochs1",
            "runs/class3-n50/seed1/SCRUB-lr_decay_epochs2_3",
        ]
    );
    let ft = unlearn(
        &plan
            .jobs
            .iter()
            .find(|j| j.name.ends_with("FT-epochs1-lr0.1"))
            .unwrap()
            .job,
    );
    assert_eq!(ft.config.lr, Some(0.1));
    assert_eq!(
        ft.config.batch_size, 32,
        "[unlearn] applies to every method"
    );
    assert_eq!(ft.forget.num_indexes_to_replace, Some(50));
    let ga = unlearn(
        &plan
            .jobs
            .iter()
            .find(|j| j.name.ends_with("GA-milestones1_2"))
            .unwrap()
            .job,
    );
    assert_eq!(ga.config.milestones, [1, 2]);
}

#[test]
fn a_method_entry_can_be_limited_to_some_scenarios() {
    let plan = plan_of(
        r#"
dataset = "digits"
scenarios = ["class:3", "random"]
seeds = [1]
methods = [
  { name = "Gan", scenarios = ["class:3"], unlearn_lr = 0.02, stop_iter = 20 },
  { name = "Gan", scenarios = ["random"], unlearn_lr = 0.01 },
]
"#,
    )
    .unwrap();
    let runs: Vec<(&str, Option<f64>)> = plan
        .jobs
        .iter()
        .filter(|j| j.stage == 3)
        .map(|j| (j.name.as_str(), unlearn(&j.job).config.lr))
        .collect();
    assert_eq!(
        runs,
        [
            ("runs/class3/seed1/Gan-lr0.02-stop_iter20", Some(0.02)),
            ("runs/random0.1/seed1/Gan-lr0.01", Some(0.01)),
        ]
    );
    let err = plan_of(
        "dataset = \"digits\"\nscenarios = [\"random\"]\nseeds = [1]\n\
         methods = [{ name = \"FT\", scenarios = [\"class:2\"] }]\n",
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("class:2"), "{err:#}");
}

/// `layout` reaches every job's runner (default `auto`), and a sweep file that changes only the
/// layout replans over finished folders: it says how jobs compute, not what.
#[test]
fn the_layout_reaches_every_job_and_is_not_part_of_its_identity() {
    use gunlearn::model::Layout;
    let base = "dataset = \"digits\"\nscenarios = [\"class:3\"]\nseeds = [1]\nmethods = [\"FT\"]\n";
    for (line, want) in [("", Layout::Auto), ("layout = \"nchw\"\n", Layout::Nchw)] {
        let mut plan = plan_of(&format!("{base}{line}")).unwrap();
        assert!(
            plan.jobs
                .iter_mut()
                .all(|j| j.job.runner_mut().layout == want),
            "{line:?}"
        );
    }
    let err = plan_of(&format!("{base}layout = \"nhwc\"\n")).unwrap_err();
    assert!(format!("{err:#}").contains("layout"), "{err:#}");
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("sweep.toml");
    for line in ["layout = \"nchw\"\n", "layout = \"channels-last\"\n"] {
        std::fs::write(&file, format!("{base}{line}")).unwrap();
        let plan = spec::plan(&spec::read(&file).unwrap(), &out.path().join("sweep")).unwrap();
        plan.write()
            .unwrap_or_else(|e| panic!("replanning with {line:?}: {e:#}"));
    }
}

#[test]
fn bad_sweep_files_are_refused_naming_the_key() {
    let base = "dataset = \"digits\"\nscenarios = [\"class:3\"]\nseeds = [1]\n";
    let cases = [
        (format!("{base}methods = [\"FT\"]\nepoch = 3\n"), "epoch"),
        (
            format!("{base}methods = [{{ name = \"FT\", unlearn_lrr = 0.1 }}]\n"),
            "unlearn_lrr",
        ),
        (
            format!("{base}methods = [\"NoSuchMethod\"]\n"),
            "NoSuchMethod",
        ),
        (
            format!("{base}methods = [\"FT\"]\nepochs = \"six\"\n"),
            "epochs",
        ),
        (
            format!("{base}methods = [{{ name = \"FT\", unlearn_lr = -1.0 }}]\n"),
            "lr",
        ),
        (
            format!("{base}methods = [\"FT\"]\n[train]\nlr = nan\n"),
            "lr must be a finite number",
        ),
        (
            format!("{base}methods = [{{ name = \"FT\", unlearn_epochs = [] }}]\n"),
            "unlearn_epochs",
        ),
        (
            "dataset = \"digits\"\nscenarios = [\"klass:3\"]\nseeds = [1]\nmethods = [\"FT\"]\n"
                .into(),
            "klass:3",
        ),
        (
            "dataset = \"digits\"\nscenarios = [\"class:3\"]\nseeds = []\nmethods = [\"FT\"]\n"
                .into(),
            "seeds",
        ),
        (
            "dataset = \"cifar10\"\nscenarios = [\"random\"]\nseeds = [1]\nmethods = [\"FT\"]\n"
                .into(),
            "data",
        ),
    ];
    for (text, key) in &cases {
        let err = format!("{:#}", plan_of(text).expect_err(text));
        assert!(err.contains(key), "{text}\n-> {err}\n(should name {key})");
    }
    // Through the binary: an error naming the key, and nothing written.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, &cases[0].0).unwrap();
    let out = dir.path().join("out");
    let o = gunlearn(&[
        "sweep",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("epoch"), "{stderr}");
    assert!(
        !out.exists(),
        "a refused sweep file wrote {}",
        out.display()
    );
}

#[test]
fn the_example_sweep_files_parse() {
    // The reference-steps files read the data set's sizes while planning.
    common::fashion_mnist();
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = spec::read(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            // Planned with a stand-in model and data folder where the file names a real one.
            let tmp = tempfile::tempdir().unwrap();
            let s = spec::SweepSpec {
                model: s.model.as_ref().map(|_| tmp.path().to_path_buf()),
                ..s
            };
            let plan =
                spec::plan(&s, tmp.path()).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            assert!(plan.jobs.iter().any(|j| j.stage == 3), "{}", path.display());
        }
    }
}

/// Every run folder under `dir` (those with a job.json).
fn job_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.join("job.json").is_file() {
            out.push(d.clone());
        }
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

const SMALL_SWEEP: &str = r#"
dataset = "digits"
arch = "resnet20"
epochs = 2
scenarios = ["class:3", "random"]
seeds = [1]
methods = [
  { name = "FT", unlearn_epochs = [1, 2] },
  { name = "GA", unlearn_epochs = 1 },
  { name = "Gan", unlearn_epochs = 1, attacker_iters = 10 },
]
[train]
batch_size = 128
[unlearn]
batch_size = 128
"#;

#[test]
fn a_killed_sweep_loses_nothing_finished_and_resumes_without_redoing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sweep.toml");
    std::fs::write(&file, SMALL_SWEEP).unwrap();
    let out = tmp.path().join("out");
    let owned = common::sweep_args(&file, &out, 2);
    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut sweep = common::spawn_quietly(&owned);
    // Kill it as soon as the first unlearning run is complete, others still running.
    let start = Instant::now();
    let complete_runs = || {
        job_dirs(&out)
            .into_iter()
            .filter(|d| d.join("audit.json").is_file())
            .collect::<Vec<_>>()
    };
    while complete_runs().is_empty() {
        assert!(
            sweep.try_wait().unwrap().is_none(),
            "the sweep ended before it was killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no run finished in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    sweep.kill().unwrap(); // SIGKILL
    sweep.wait().unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> = complete_runs()
        .into_iter()
        .map(|d| {
            let audit = std::fs::read(d.join("audit.json")).unwrap();
            (d, audit)
        })
        .collect();
    // The runs it had started die with it: nothing goes on writing behind the next start.
    common::wait_for_children_to_end(&out);
    // Whatever looks complete is: its audit record checks out against its files.
    for (dir, _) in &before {
        ok(&["verify-audit", dir.to_str().unwrap()]);
    }
    let jobs = job_dirs(&out);
    assert_eq!(jobs.len(), 1 + 2 * 2 + 2 * 4, "{jobs:?}");
    assert!(
        before.len() < jobs.len() - 1,
        "killed too late to test anything"
    );

    // The next start finishes the sweep and leaves the finished runs as they were.
    let o = ok(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("already complete"), "{stdout}");
    for (dir, audit) in &before {
        assert_eq!(
            &std::fs::read(dir.join("audit.json")).unwrap(),
            audit,
            "{} was redone",
            dir.display()
        );
    }
    for dir in job_dirs(&out) {
        let job = gunlearn::jobs::read_job(&dir.join("job.json")).unwrap();
        assert!(job.is_complete(), "{} is not complete", dir.display());
    }
    // Each method run's audit record carries its gap to its own request's Retrain.
    let run = out.join("runs/class3/seed1/GA-epochs1");
    let gap = read_json(&run.join("audit.json"))["gap_to_retrain"]
        .as_f64()
        .expect("gap_to_retrain filled");
    let metrics = |dir: &Path| {
        let r = read_json(&dir.join("eval_result.json"));
        ["UA", "MIA_efficacy", "RA", "TA"].map(|k| r[k].as_f64().unwrap())
    };
    let (m, r) = (
        metrics(&run),
        metrics(&out.join("runs/class3/seed1/retrain")),
    );
    let expected = m.iter().zip(&r).map(|(a, b)| (a - b).abs()).sum::<f64>() / 4.0;
    assert!((gap - expected).abs() < 1e-9, "gap {gap} vs {expected}");
    // The report of the sweep folder covers every method of both scenarios.
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    for method in ["FT", "GA", "Gan", "Retrain"] {
        assert!(
            csv.contains(method),
            "{method} missing from report.csv:\n{csv}"
        );
    }
    assert!(out.join("report.html").is_file());
    // A third start has nothing left to do.
    let o = ok(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("0 run now"), "{stdout}");

    // Kept without its weights (as a study folder is committed), the sweep trains its models
    // again; the same weights come out here, so no finished run is redone.
    let audits = |dirs: &[PathBuf]| -> Vec<Vec<u8>> {
        dirs.iter()
            .filter(|d| d.join("audit.json").is_file())
            .map(|d| std::fs::read(d.join("audit.json")).unwrap())
            .collect()
    };
    let all = job_dirs(&out);
    let finished = audits(&all);
    let weights = out.join("original/model.safetensors");
    let trained = std::fs::read(&weights).unwrap();
    for file in walk_files(&out) {
        if file.extension().is_some_and(|e| e == "safetensors") {
            std::fs::remove_file(file).unwrap();
        }
    }
    ok(&args);
    assert_eq!(
        std::fs::read(&weights).unwrap(),
        trained,
        "training is deterministic here"
    );
    assert_eq!(audits(&all), finished, "a finished run was redone");
    // Other weights under the same name (trained again on a machine whose kernels round
    // differently, say) make every run from them stale: none counts as complete.
    let mut other = trained.clone();
    let last = other.len() - 1;
    other[last] ^= 1;
    std::fs::write(&weights, &other).unwrap();
    for dir in &all {
        let job = gunlearn::jobs::read_job(&dir.join("job.json")).unwrap();
        let from_original = matches!(&job, Job::Unlearn(j) if j.model == out.join("original"));
        assert_eq!(job.is_complete(), !from_original, "{}", dir.display());
    }
    // Nor does report show them as results.
    let o = gunlearn(&[
        "report",
        out.to_str().unwrap(),
        "-o",
        tmp.path().join("stale-report").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "stale runs were reported");
    assert!(err.contains("made from other weights"), "{err}");
}

/// Every file under `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn forget_requests_and_seeds_the_data_set_cannot_give_are_refused_before_any_work() {
    let file = |scenarios: &str, seeds: &str| {
        format!(
            "dataset = \"digits\"\nscenarios = [{scenarios}]\nseeds = [{seeds}]\nmethods = [\"FT\"]\n"
        )
    };
    let cases = [
        (file("\"class:99\"", "1"), "no class 99"),
        (file("\"class:3:0\"", "1"), "--num_indexes_to_replace 0"),
        (
            file("\"class:3:5000\"", "1"),
            "cannot forget 5000 samples of class 3",
        ),
        (file("\"random:0.0001\"", "1"), "selects no sample"),
        (file("\"class:3\"", "0"), "seeds: 0"),
        (file("\"class:3\"", "1, 1"), "seeds: 1 is listed twice"),
        (
            file("\"class:3\"", "1")
                .replace("[\"FT\"]", "[{ name = \"Gan\", attacker_iters = 0 }]"),
            "--attacker_iters 0",
        ),
        // The data set's kind is enough, without its files.
        (
            "dataset = \"cifar10\"\ndata = \"/no/such/folder\"\nscenarios = [\"class:12\"]\n\
             seeds = [1]\nmethods = [\"FT\"]\n"
                .into(),
            "no class 12",
        ),
    ];
    for (text, says) in &cases {
        let err = format!("{:#}", plan_of(text).expect_err(text));
        assert!(err.contains(says), "{text}\n-> {err}\n(should say {says})");
    }
    // Through the binary, dry run and real run: refused before anything is written.
    for dry in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let sweep = dir.path().join("s.toml");
        std::fs::write(&sweep, &cases[0].0).unwrap();
        let out = dir.path().join("out");
        let mut args = vec![
            "sweep",
            sweep.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        if dry {
            args.push("--dry-run");
        }
        let o = gunlearn(&args);
        assert!(!o.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("no class 99"));
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    }
}

#[test]
fn forget_requests_whose_attackers_read_the_same_data_share_one_attacker_job() {
    let attackers = |extra: &str| -> Vec<String> {
        let plan = plan_of(&format!(
            "dataset = \"digits\"\narch = \"resnet20\"\nepochs = 2\n\
             scenarios = [\"random\", \"class:3\", \"class:5\"]\nseeds = [1, 2]\n\
             methods = [\"Gan\"]\n{extra}"
        ))
        .unwrap();
        // Every Gan run needs exactly one attacker job of its own seed.
        for job in plan.jobs.iter().filter(|j| j.stage == 3) {
            let seed = unlearn(&job.job).forget.seed;
            let needed: Vec<&String> = job
                .needs
                .iter()
                .filter(|n| n.starts_with("attackers/"))
                .collect();
            assert_eq!(needed.len(), 1, "{}", job.name);
            assert!(
                needed[0].ends_with(&format!("seed{seed}")),
                "{} needs {}",
                job.name,
                needed[0]
            );
        }
        plan.jobs
            .iter()
            .filter(|j| matches!(j.job, Job::Attacker(_)))
            .map(|j| j.name.clone())
            .collect()
    };
    // Augmented training: class-wise attackers see augmented non-members, random ones do not.
    // Planned seed by seed, so that a stopped study holds whole seeds.
    assert_eq!(
        attackers(""),
        [
            "attackers/random0.1/seed1",
            "attackers/class3/seed1",
            "attackers/random0.1/seed2",
            "attackers/class3/seed2"
        ]
    );
    // Without augmentation every request's attacker reads the same: one per seed.
    assert_eq!(
        attackers("[train]\nno_augment = true\n"),
        ["attackers/random0.1/seed1", "attackers/random0.1/seed2"]
    );
}

#[test]
fn a_copied_or_renamed_sweep_folder_resumes_and_a_changed_setting_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("s.toml");
    let text = "dataset = \"digits\"\narch = \"resnet20\"\nepochs = 1\n\
                scenarios = [\"class:3\"]\nseeds = [1]\n\
                methods = [\"FT\"]\n[unlearn]\nunlearn_epochs = 1\n";
    std::fs::write(&file, text).unwrap();
    let run = |out: &Path| {
        gunlearn(&[
            "sweep",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "1",
            "--quiet",
        ])
    };
    let first = tmp.path().join("first");
    assert!(run(&first).status.success());
    // Renamed: nothing to redo, and its jobs point inside the new folder.
    let renamed = tmp.path().join("renamed");
    std::fs::rename(&first, &renamed).unwrap();
    let o = run(&renamed);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && stdout.contains("0 run now"),
        "{stdout}"
    );
    let job = gunlearn::jobs::read_job(&renamed.join("runs/class3/seed1/FT/job.json")).unwrap();
    let Job::Unlearn(ft) = &job else { panic!() };
    assert_eq!(ft.save_dir, renamed.join("runs/class3/seed1/FT"));
    assert_eq!(ft.model, renamed.join("original"));
    assert!(job.is_complete());
    // Copied (the original left in place): the same.
    let copy = tmp.path().join("copy");
    let cp = std::process::Command::new("cp")
        .args(["-r", renamed.to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(cp.success());
    let o = run(&copy);
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 run now"));
    // A changed setting is refused naming it.
    std::fs::write(
        &file,
        text.replace("epochs = 1\nscenarios", "epochs = 2\nscenarios"),
    )
    .unwrap();
    let o = run(&copy);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("config.epochs: 1 then, 2 now"), "{err}");
}
