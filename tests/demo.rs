//! `gunlearn demo` run to completion, shortened (fewer epochs and methods): its tables for both
//! forget requests, the plain reading, the health checks listed once per kind, the pointer to
//! report.html, and no NaN or unlabelled value in anything it prints.

mod common;

#[test]
fn the_demo_runs_to_its_report_and_reads_it() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("demo");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gunlearn"))
        .args([
            "demo",
            "--epochs",
            "12",
            "--methods",
            "FT,GA",
            "--workers",
            "2",
        ])
        .arg("--save_dir")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");

    // One table per forget request, each with Retrain, the original and the chosen methods.
    for title in ["forget class 3", "forget random 10 %"] {
        assert!(stdout.contains(title), "no table for {title}:\n{stdout}");
    }
    for row in ["| Retrain |", "| raw (original) |", "| FT |", "| GA |"] {
        assert_eq!(
            stdout.matches(row).count(),
            2,
            "{row} should appear once per request:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("| SCRUB |") && !stdout.contains("| Gan"),
        "--methods FT,GA ran other methods:\n{stdout}"
    );
    // The reading names the closest method per request and what was scaled down.
    assert_eq!(stdout.matches("closest to Retrain").count(), 2, "{stdout}");
    assert!(stdout.contains("Scaled down:"), "{stdout}");
    // Each kind of warning once, with its count of runs; few lines in all.
    let warning_lines = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("["))
        .count();
    assert!(
        warning_lines <= 10,
        "{warning_lines} warning lines:\n{stdout}"
    );
    let kinds: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('['))
        .filter_map(|l| l.split_once("] ").map(|(_, w)| w))
        .collect();
    let mut unique = kinds.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), kinds.len(), "a warning repeated:\n{stdout}");
    assert_eq!(
        stderr.matches("WARN").count(),
        0,
        "warnings belong in the summary, not the log:\n{stderr}"
    );
    // The last line points at the report, which exists and holds both requests.
    let last = stdout.lines().last().unwrap();
    assert!(
        last.contains("demo finished in") && last.contains("report.html"),
        "{last}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("class 3") && html.contains("random 10 %"));
    for text in [&stdout, &stderr] {
        assert!(!text.contains("NaN"), "NaN printed:\n{text}");
    }
    // The runs ran at the reference's steps: FT's record says so.
    let ft = common::read_json(&dir.join("runs/class3/seed1/FT/eval_result.json"));
    let phases = ft["config"]["ran"]["phases"].as_array().unwrap();
    let steps = phases[0]["steps"].as_u64().unwrap();
    let reference = phases[0]["reference_steps"].as_u64().unwrap();
    assert!(
        (steps as f64 / reference as f64 - 1.0).abs() <= 0.25,
        "FT ran {steps} steps against the reference's {reference}"
    );
}
