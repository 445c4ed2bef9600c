//! `report --select-on-validation`: per method, the hyper-parameters whose runs come closest to
//! Retrain on UA, MIA-efficacy, RA and *validation* accuracy are kept; the test set plays no
//! part in the choice.

mod common;

use serde_json::json;
use std::path::Path;

/// A run's eval_result.json with UA, MIA-efficacy, RA, validation and test accuracy.
fn write_run(dir: &Path, method: &str, lr: f64, seed: u64, m: [f64; 5]) {
    write_run_with_selection(dir, method, lr, seed, m, None);
}

/// [`write_run`] with a selection split's accuracy.
fn write_run_with_selection(
    dir: &Path,
    method: &str,
    lr: f64,
    seed: u64,
    m: [f64; 5],
    selection: Option<f64>,
) {
    std::fs::create_dir_all(dir).unwrap();
    let [ua, mia, ra, val, ta] = m;
    let scores = json!({"correctness": 0.5, "confidence": 0.5, "entropy": 0.5,
        "m_entropy": 0.5, "prob": 0.5});
    let forget = json!({"kind": "random", "class": null, "count": 100, "fraction": 0.1,
        "class_removed_from_test": false});
    let v = json!({
        "method": method, "dataset": "digits", "arch": "resnet20", "seed": seed,
        "forget": forget, "sizes": {"train": 1000},
        "accuracy": {"train": 99.0, "retain": ra, "forget": 100.0 - ua, "val": val, "test": ta},
        "SVC_MIA_forget_efficacy": scores, "SVC_MIA_training_privacy": scores,
        "UA": ua, "RA": ra, "TA": ta, "MIA_efficacy": mia, "RTE_seconds": 1.0,
        "timings": {}, "device": "cpu",
        "config": {"command": "unlearn", "unlearn_lr": lr, "unlearn_epochs": 5,
            "settings": {"seed": seed, "batch_size": 64}},
        "mia_confidence_features": {"forget": [], "test": []}
    });
    let mut v = v;
    if let Some(sel) = selection {
        v["accuracy"]["selection"] = json!(sel);
    }
    std::fs::write(dir.join("eval_result.json"), v.to_string()).unwrap();
    // A finished run's completion mark (report reads only that it is there).
    std::fs::write(dir.join("audit.json"), "{}").unwrap();
}

#[test]
fn the_choice_uses_validation_accuracy_and_never_the_test_set() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sweep");
    for seed in [1, 2] {
        let s = root.join(format!("seed{seed}"));
        write_run(
            &s.join("retrain"),
            "retrain",
            0.1,
            seed,
            [5.0, 12.0, 100.0, 90.0, 90.0],
        );
        // lr 0.01: TA equal to Retrain's but validation 10 points off: gap (2 + 10) / 4 = 3.
        write_run(
            &s.join("FT-a"),
            "FT",
            0.01,
            seed,
            [5.0, 12.0, 98.0, 80.0, 90.0],
        );
        // lr 0.1: TA 10 points off but validation equal to Retrain's: gap 2 / 4 = 0.5.
        write_run(
            &s.join("FT-b"),
            "FT",
            0.1,
            seed,
            [5.0, 12.0, 98.0, 90.0, 80.0],
        );
    }
    let out = tmp.path().join("report");
    let (r, o) = (root.to_str().unwrap(), out.to_str().unwrap());
    common::ok(&["report", r, "-o", o, "--select-on-validation"]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let chosen = md
        .split("## Hyper-parameters chosen on a held-out split")
        .nth(1)
        .expect("the choices are written");
    let rows: Vec<&str> = chosen.lines().filter(|l| l.starts_with("| FT")).collect();
    assert_eq!(rows.len(), 2, "{chosen}");
    assert!(
        rows[0].contains("0.01") && rows[0].contains("| 3.00 |") && !rows[0].contains("chosen"),
        "{chosen}"
    );
    assert!(
        rows[1].contains("0.1") && rows[1].contains("| 0.50 |") && rows[1].contains("chosen"),
        "{chosen}"
    );
    // The table keeps Retrain and the chosen FT only.
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    let ft_rows: Vec<&str> = csv.lines().filter(|l| l.contains(",FT,")).collect();
    assert_eq!(ft_rows.len(), 1, "{csv}");
    assert!(ft_rows[0].contains("0.1"), "{csv}");
    // Without the flag both settings stay.
    common::ok(&["report", r, "-o", o]);
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    assert_eq!(
        csv.lines().filter(|l| l.contains(",FT,")).count(),
        2,
        "{csv}"
    );
}

#[test]
fn with_a_selection_split_the_choice_reads_it_and_not_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sweep");
    for seed in [1, 2] {
        let s = root.join(format!("seed{seed}"));
        // [UA, MIA, RA, val, TA] and the selection accuracy.
        let run = |name: &str, method: &str, lr: f64, m: [f64; 5], sel: f64| {
            write_run_with_selection(&s.join(name), method, lr, seed, m, Some(sel));
        };
        run(
            "retrain",
            "retrain",
            0.1,
            [5.0, 12.0, 100.0, 90.0, 90.0],
            90.0,
        );
        // Validation equal to Retrain's, selection 10 points off: gap (2 + 10) / 4 = 3.
        run("FT-a", "FT", 0.01, [5.0, 12.0, 98.0, 90.0, 90.0], 80.0);
        // Validation 10 points off (as after training through it), selection equal: 0.5.
        run("FT-b", "FT", 0.1, [5.0, 12.0, 98.0, 80.0, 90.0], 90.0);
    }
    let out = tmp.path().join("report");
    let (r, o) = (root.to_str().unwrap(), out.to_str().unwrap());
    common::ok(&["report", r, "-o", o, "--select"]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let chosen = md
        .split("## Hyper-parameters chosen on a held-out split")
        .nth(1)
        .expect("the choices are written");
    assert!(chosen.contains("| setting | selection gap |"), "{chosen}");
    let rows: Vec<&str> = chosen.lines().filter(|l| l.starts_with("| FT")).collect();
    assert!(
        rows[0].contains("| 3.00 |") && !rows[0].contains("chosen"),
        "{chosen}"
    );
    assert!(
        rows[1].contains("| 0.50 |") && rows[1].contains("chosen"),
        "{chosen}"
    );
}
