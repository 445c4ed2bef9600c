//! `report`: gaps to Retrain on fake runs, mean ± std over seeds, error cases, written files.
//! (Sweep folders and report.html: tests/report_html.rs.)

use gunlearn::eval::report::{report, CSV_HEADER};
use serde_json::json;
use std::path::{Path, PathBuf};

#[allow(clippy::too_many_arguments)]
fn run(
    root: &Path,
    name: &str,
    method: &str,
    seed: i64,
    ua: f64,
    mia: f64,
    ra: f64,
    ta: f64,
    rte: f64,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let scores = json!({"correctness": 0.5, "confidence": mia / 100.0, "entropy": 0.5, "m_entropy": 0.5, "prob": 0.5});
    let v = json!({
        "method": method, "dataset": "cifar10", "arch": "resnet18", "seed": seed,
        "forget": {"kind": "class", "class": 3, "count": 4500, "fraction": null},
        "accuracy": {"train": 90.0, "retain": ra, "forget": 100.0 - ua, "val": ta, "test": ta},
        "SVC_MIA_forget_efficacy": scores, "SVC_MIA_training_privacy": scores,
        "UA": ua, "RA": ra, "TA": ta, "MIA_efficacy": mia, "RTE_seconds": rte,
        "timings": {}, "config": {},
        "mia_confidence_features": {"forget": [0.1, 0.2, 0.9], "test": [0.5, 0.6, 0.99]}
    });
    std::fs::write(
        dir.join("eval_result.json"),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
    dir
}

fn row<'a>(md: &'a str, method: &str) -> Vec<&'a str> {
    let line = md
        .lines()
        .find(|l| l.starts_with(&format!("| {method} |")))
        .unwrap_or_else(|| panic!("no row for {method} in\n{md}"));
    line.trim_matches('|').split('|').map(str::trim).collect()
}

#[test]
fn gaps_to_retrain_are_hand_computed() {
    let t = tempfile::tempdir().unwrap();
    let dirs = vec![
        run(t.path(), "rt", "retrain", 1, 5.0, 10.0, 100.0, 94.0, 100.0),
        run(t.path(), "ft", "FT", 1, 2.0, 6.0, 99.0, 93.0, 10.0),
        run(t.path(), "ga", "GA", 1, 8.0, 15.0, 97.0, 91.0, 3.0),
    ];
    let out = t.path().join("out");
    let md = report(&dirs, None, &out).unwrap().tables;
    if let Ok(keep) = std::env::var("GUNLEARN_KEEP_REPORT") {
        for f in ["gap.png", "mia_confidence.png", "report.md"] {
            std::fs::copy(out.join(f), Path::new(&keep).join(f)).unwrap();
        }
    }
    // FT: (|2−5| + |6−10| + |99−100| + |93−94|) / 4 = 9/4; GA: (3 + 5 + 3 + 3) / 4 = 3.5.
    assert_eq!(
        row(&md, "FT"),
        ["FT", "2.00", "6.00", "99.00", "93.00", "2.25", "10.00", "0.10", "1"]
    );
    assert_eq!(row(&md, "GA")[5], "3.50");
    assert_eq!(row(&md, "Retrain")[5], "0.00");
    assert!(md.starts_with("| Method | UA | MIA-Efficacy | RA | TA | Avg. Gap | RTE (s) |"));
    for f in [
        "report.md",
        "report.csv",
        "report.html",
        "gap.svg",
        "gap.png",
        "mia_confidence.svg",
        "mia_confidence.png",
    ] {
        let p = out.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p).unwrap().len() > 100,
            "{f} missing or empty"
        );
    }
    let png = std::fs::read(out.join("gap.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    // A single run has no sample std: its std cells are empty.
    assert!(
        csv.lines().any(|l| l
            .starts_with("cifar10,class 3 (4500 samples),dense,GA,GA,,1,1,8.000000,,15.000000,")
            && l.contains(",3.500000,,")),
        "{csv}"
    );
    assert!(std::fs::read_to_string(out.join("report.md"))
        .unwrap()
        .contains("class 3"));

    // An explicit --retrain dir outside the list gives the same gaps.
    let md2 = report(&dirs[1..], Some(&dirs[0]), &t.path().join("out2"))
        .unwrap()
        .tables;
    assert_eq!(row(&md2, "FT")[5], "2.25");
    assert!(!md2.contains("| Retrain |"));
}

/// Marks the run in `dir` as unlearning a model with `sparsity` % of its conv weights pruned.
fn set_sparsity(dir: &Path, sparsity: f64) {
    let path = dir.join("eval_result.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["sparsity"] = json!(sparsity);
    std::fs::write(&path, v.to_string()).unwrap();
}

#[test]
fn dense_and_pruned_runs_are_compared_with_their_own_retrain() {
    let t = tempfile::tempdir().unwrap();
    let dirs = vec![
        run(t.path(), "rt", "retrain", 1, 5.0, 10.0, 100.0, 94.0, 100.0),
        run(t.path(), "ft", "FT", 1, 2.0, 6.0, 99.0, 93.0, 10.0),
        run(t.path(), "p-rt", "retrain", 1, 7.0, 12.0, 98.0, 92.0, 80.0),
        run(t.path(), "p-ft", "FT", 1, 2.0, 6.0, 99.0, 93.0, 10.0),
    ];
    set_sparsity(&dirs[2], 90.0);
    set_sparsity(&dirs[3], 90.0);
    let out = t.path().join("out");
    report(&dirs, None, &out).unwrap();
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    let gap = |model: &str| {
        let prefix = format!("cifar10,class 3 (4500 samples),{model},FT,");
        let line = csv.lines().find(|l| l.starts_with(&prefix)).unwrap();
        let cells: Vec<&str> = line.split(',').collect();
        cells[CSV_HEADER
            .split(',')
            .position(|c| c == "avg_gap_mean")
            .unwrap()]
        .to_string()
    };
    // Dense FT against the dense Retrain: (3 + 4 + 1 + 1) / 4; pruned against the pruned one:
    // (5 + 6 + 1 + 1) / 4.
    assert_eq!(gap("dense"), "2.250000", "{csv}");
    assert_eq!(gap("pruned 90 %"), "3.250000", "{csv}");
    let doc = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        doc.contains("cifar10 (pruned 90 %), forget class 3"),
        "{doc}"
    );
    // One given Retrain cannot serve runs of another model.
    let err = report(&dirs[3..], Some(&dirs[0]), &t.path().join("out2")).unwrap_err();
    assert!(
        format!("{err:#}").contains("unlearn different models"),
        "{err:#}"
    );
}

#[test]
fn several_seeds_give_mean_and_sample_std() {
    let t = tempfile::tempdir().unwrap();
    let dirs = vec![
        run(t.path(), "rt", "retrain", 1, 5.0, 10.0, 100.0, 94.0, 100.0),
        run(t.path(), "ft1", "FT", 1, 2.0, 6.0, 99.0, 93.0, 10.0),
        run(t.path(), "ft2", "FT", 2, 4.0, 8.0, 97.0, 93.0, 14.0),
    ];
    let md = report(&dirs, None, &t.path().join("out")).unwrap().tables;
    // UA: mean 3, sample std √2; MIA 7 ± √2; RA 98 ± √2; TA 93 ± 0.
    // Gap per run: seed 1 against Retrain seed 1: (3 + 4 + 1 + 1) / 4 = 2.25; seed 2 has no
    // Retrain of its own, so the mean over Retrain runs (seed 1): (1 + 2 + 3 + 1) / 4 = 1.75;
    // 2 ± 0.354. RTE / Retrain: 0.10 and 0.14.
    assert_eq!(
        row(&md, "FT"),
        [
            "FT",
            "3.00 ± 1.41",
            "7.00 ± 1.41",
            "98.00 ± 1.41",
            "93.00 ± 0.00",
            "2.00 ± 0.35",
            "12.00 ± 2.83",
            "0.12 ± 0.03",
            "2"
        ]
    );
    let doc = std::fs::read_to_string(t.path().join("out/report.md")).unwrap();
    assert!(
        doc.contains("1 run(s) had no Retrain of their seed"),
        "{doc}"
    );
    // Without any Retrain run the gap is not available but the table still renders.
    let md = report(&dirs[1..], None, &t.path().join("out3"))
        .unwrap()
        .tables;
    assert_eq!(row(&md, "FT")[5], "n/a");
}

#[test]
fn bad_inputs_name_the_directories() {
    let t = tempfile::tempdir().unwrap();
    let good = run(t.path(), "ft", "FT", 1, 2.0, 6.0, 99.0, 93.0, 10.0);
    let empty = t.path().join("empty_run");
    std::fs::create_dir_all(&empty).unwrap();
    let err = format!(
        "{:#}",
        report(&[good.clone(), empty.clone()], None, &t.path().join("o")).unwrap_err()
    );
    assert!(
        err.contains("empty_run") && err.contains("eval_result.json"),
        "{err}"
    );

    let other = run(t.path(), "c100", "GA", 1, 2.0, 6.0, 99.0, 93.0, 10.0);
    let p = other.join("eval_result.json");
    let s = std::fs::read_to_string(&p)
        .unwrap()
        .replace("cifar10", "cifar100");
    std::fs::write(&p, s).unwrap();
    // Runs of two data sets make two tables; a given Retrain must share every run's setting.
    let md = report(&[good.clone(), other.clone()], None, &t.path().join("o"))
        .unwrap()
        .tables;
    assert!(
        md.contains("### cifar10, forget class 3") && md.contains("### cifar100, forget class 3"),
        "{md}"
    );
    let err = format!(
        "{:#}",
        report(
            std::slice::from_ref(&good),
            Some(&other),
            &t.path().join("o")
        )
        .unwrap_err()
    );
    assert!(
        err.contains("different datasets") && err.contains("ft") && err.contains("c100"),
        "{err}"
    );

    let rnd = run(t.path(), "rnd", "GA", 1, 2.0, 6.0, 99.0, 93.0, 10.0);
    let p = rnd.join("eval_result.json");
    let s = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"class\": 3", "\"class\": 4");
    std::fs::write(&p, s).unwrap();
    let err = format!(
        "{:#}",
        report(std::slice::from_ref(&good), Some(&rnd), &t.path().join("o")).unwrap_err()
    );
    assert!(
        err.contains("different forget sets") && err.contains("rnd"),
        "{err}"
    );

    let bad = run(t.path(), "broken", "GA", 1, 2.0, 6.0, 99.0, 93.0, 10.0);
    std::fs::write(bad.join("eval_result.json"), "{\"method\": 1}").unwrap();
    let err = format!(
        "{:#}",
        report(&[bad], None, &t.path().join("o")).unwrap_err()
    );
    assert!(err.contains("broken") && err.contains("parsing"), "{err}");
}

#[test]
fn line_chart_writes_svg_and_png() {
    let t = tempfile::tempdir().unwrap();
    let files = gunlearn::plot::line_chart(
        &t.path().join("curves.png"),
        "training",
        "epoch",
        "loss",
        &[
            ("train", vec![(0.0, 2.0), (1.0, 1.0), (2.0, 0.5)]),
            ("val", vec![(0.0, 2.1), (2.0, 0.9)]),
        ],
    )
    .unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into())
        .collect();
    assert_eq!(names, ["curves.svg", "curves.png"]);
    let svg = std::fs::read_to_string(t.path().join("curves.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("epoch") && svg.contains("val"));
    assert!(
        gunlearn::plot::line_chart(&t.path().join("e.png"), "t", "x", "y", &[("a", vec![])])
            .is_err()
    );
}

#[test]
fn methods_are_listed_in_registry_order_with_their_papers_names() {
    let t = tempfile::tempdir().unwrap();
    // Given out of order: the report puts Retrain and the original first, then the registry's
    // order, and names FF, IU and ℓ1-sparse as the papers do.
    let dirs = vec![
        run(t.path(), "gan", "Gan", 1, 5.0, 10.0, 99.0, 93.0, 9.0),
        run(t.path(), "ff", "fisher_new", 1, 5.0, 10.0, 99.0, 93.0, 9.0),
        run(t.path(), "scrub", "SCRUB", 1, 5.0, 10.0, 99.0, 93.0, 9.0),
        run(t.path(), "l1", "FT_l1", 1, 5.0, 10.0, 99.0, 93.0, 9.0),
        run(t.path(), "raw", "raw", 1, 0.0, 3.0, 100.0, 94.0, 0.0),
        run(t.path(), "rt", "retrain", 1, 5.0, 10.0, 100.0, 94.0, 100.0),
        run(t.path(), "iu", "wfisher", 1, 5.0, 10.0, 99.0, 93.0, 9.0),
    ];
    let md = report(&dirs, None, &t.path().join("out")).unwrap().tables;
    let names: Vec<&str> = md
        .lines()
        .skip(2)
        .map(|l| l.trim_matches('|').split('|').next().unwrap().trim())
        .collect();
    assert_eq!(
        names,
        [
            "Retrain",
            "raw (original)",
            "FT_l1 (ℓ1-sparse)",
            "fisher_new (FF)",
            "wfisher (IU)",
            "SCRUB",
            "Gan (adversarial)"
        ]
    );
}

#[test]
fn the_adversarial_game_is_drawn_with_its_stop_iter_marked() {
    let t = tempfile::tempdir().unwrap();
    let retrain = run(
        t.path(),
        "retrain",
        "retrain",
        1,
        100.0,
        100.0,
        95.0,
        90.0,
        10.0,
    );
    let gan = run(t.path(), "gan", "Gan", 1, 90.0, 80.0, 92.0, 88.0, 3.0);
    let other = run(t.path(), "ft", "FT", 1, 50.0, 40.0, 97.0, 91.0, 1.0);
    // Five game iterations, β = 0 from iteration 4 on (the stop-iter).
    let mut log = String::from(
        "iteration,epoch,attacker_loss,attacker_acc,retain_loss,retain_acc,L_adv,L_bt,beta,lr\n",
    );
    for (i, beta) in [(1, 1.0), (2, 1.0), (3, 1.0), (4, 0.0), (5, 0.0)] {
        log.push_str(&format!(
            "{i},1,0.6,{},0.3,{},{},0.1,{beta},0.01\n",
            60 + 5 * i,
            90 - i,
            8.0 - i as f64
        ));
    }
    std::fs::write(gan.join("unlearn_log.csv"), log).unwrap();
    // FT's log has no game columns: no figure for it.
    std::fs::write(other.join("unlearn_log.csv"), "epoch,loss\n1,0.5\n").unwrap();
    let out = t.path().join("report");
    report(&[retrain, gan, other], None, &out).unwrap();
    let name = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .find(|n| n.starts_with("game-") && !n.starts_with("game-loss") && n.ends_with(".svg"))
        .expect("a game figure");
    let svg = std::fs::read_to_string(out.join(&name)).unwrap();
    for label in [
        "attacker accuracy",
        "retain accuracy",
        "stop-iter",
        "iteration",
    ] {
        assert!(svg.contains(label), "{name} lacks {label}");
    }
    let loss = std::fs::read_to_string(out.join(name.replacen("game-", "game-loss-", 1))).unwrap();
    for label in ["L_adv", "β", "stop-iter"] {
        assert!(loss.contains(label), "loss figure lacks {label}");
    }
    let pngs = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            let n = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .to_string();
            n.starts_with("game") && n.ends_with(".png")
        })
        .count();
    assert_eq!(pngs, 2, "one accuracy and one loss figure, for Gan only");
}

#[test]
fn health_findings_fold_into_one_line_per_kind_naming_the_methods() {
    let health = [
        (
            "FT ran with settings other than its reference defaults: epochs 43 (reference 10)"
                .to_string(),
            2,
        ),
        (
            "GA ran with settings other than its reference defaults: epochs 18 (reference 5)"
                .to_string(),
            2,
        ),
        (
            "FT left UA where it was (0.78 before, 0.78 after)".to_string(),
            1,
        ),
        (
            "GA left UA where it was (1.00 before, 1.00 after)".to_string(),
            1,
        ),
        (
            "FT ran with settings other than its reference defaults: lr 0.02 (reference 0.01)"
                .to_string(),
            1,
        ),
        (
            "the original model does not memorise its training set (train 100.00%)".to_string(),
            4,
        ),
    ];
    let kinds = gunlearn::eval::report::health_kinds(&health);
    assert_eq!(
        kinds,
        [
            (
                "ran with settings other than its reference defaults: FT, GA".to_string(),
                5
            ),
            ("left UA where it was: FT, GA".to_string(), 2),
            (
                "the original model does not memorise its training set (train 100.00%)".to_string(),
                4
            ),
        ]
    );
}
