//! `gunlearn audit` on digits: Retrain audited as an unlearner (a second draw of retrained
//! models) does not score below F_null, `raw` (nothing forgotten) clearly below it, the per-example outputs
//! cover the forget set, `report` shows the audit, and a larger N reuses the pool's finished
//! models.

mod common;

use common::{ok, read_json};

fn audit(out: &std::path::Path, n: usize) -> String {
    let n = n.to_string();
    let o = ok(&[
        "audit",
        "--dataset",
        "digits",
        "--arch",
        "resnet20",
        "--epochs",
        "3",
        "--forget",
        "random:60",
        "--methods",
        "retrain,raw",
        "--n",
        &n,
        "--resamples",
        "500",
        "--out",
        out.to_str().unwrap(),
        "--workers",
        "2",
        "--threads",
        "1",
        "--quiet",
    ]);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn retrain_scores_at_the_null_and_raw_clearly_below() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("audit");
    audit(&out, 8);
    let result = read_json(&out.join("audit_result.json"));
    assert_eq!(result["forget_indices"].as_array().unwrap().len(), 60);
    let m = |name: &str| &result["methods"][name];
    let f = |name: &str, key: &str| m(name)[key].as_f64().unwrap();
    let interval = |name: &str, key: &str| {
        let i = &m(name)[key];
        (i["lower"].as_f64().unwrap(), i["upper"].as_f64().unwrap())
    };
    let (lo, hi) = interval("retrain", "F_interval");
    let (null_lo, null_hi) = interval("retrain", "F_null_interval");
    // A perfect unlearner is not distinguishable below the null: its F interval reaches
    // F_null's. (Above it is no failure: with N = 8, which 8 retrained models are drawn moves F
    // by a few hundredths either way, more than the example bootstrap covers.)
    assert!(
        hi >= null_lo && f("retrain", "F") > 0.6 * f("retrain", "F_null"),
        "a perfect unlearner: F {} [{lo}, {hi}] against F_null {} [{null_lo}, {null_hi}]",
        f("retrain", "F"),
        f("retrain", "F_null")
    );
    let (_, raw_hi) = interval("raw", "F_interval");
    assert!(
        raw_hi < lo,
        "raw's F interval reaches {raw_hi}, Retrain's starts at {lo}"
    );
    let ranking = &result["rankings"][0];
    assert_eq!(ranking[0], "raw");
    assert_eq!(ranking[1], "retrain");
    assert_eq!(ranking[2]["ranking"], "second_better", "{ranking}");
    assert_eq!(m("raw")["epsilon"].as_array().unwrap().len(), 60);
    let csv = std::fs::read_to_string(out.join("epsilon_raw.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        61,
        "a header and one line per forget example"
    );
    assert!(csv.starts_with("example,epsilon,points,source\n"));

    // The page: the scores table, both figures, and a ROC curve per method from (0,0) to (1,1).
    let html = std::fs::read_to_string(out.join("audit_report.html")).unwrap();
    assert_eq!(html.matches("<tr class=\"method\">").count(), 2);
    assert!(html.contains("<figure class=\"epsilon\">") && html.contains("<figure class=\"roc\">"));
    assert!(
        !html.contains("src=") && !html.contains("<link") && !html.contains("<script"),
        "the page fetches nothing"
    );
    let roc = result["roc"]["raw"].as_array().unwrap();
    assert_eq!(roc.first().unwrap(), &serde_json::json!([0.0, 0.0]));
    assert_eq!(roc.last().unwrap(), &serde_json::json!([1.0, 1.0]));

    // `gunlearn report` over the audit folder shows the audit as a section of its page and
    // its table in report.md, with the scores of audit_result.json.
    let rep = tmp.path().join("report");
    ok(&["report", out.to_str().unwrap(), "-o", rep.to_str().unwrap()]);
    let page = std::fs::read_to_string(rep.join("report.html")).unwrap();
    let audit_part = &page[page
        .find("<section class=\"audit\">")
        .expect("an audit section")..];
    assert_eq!(audit_part.matches("<tr class=\"method\">").count(), 2);
    assert!(
        audit_part.contains("<figure class=\"epsilon\">")
            && audit_part.contains("<figure class=\"roc\">")
    );
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    let raw_row = md
        .lines()
        .find(|l| l.starts_with("| raw | "))
        .unwrap_or_else(|| panic!("no audit row for raw in\n{md}"));
    assert!(
        raw_row.contains(&format!("{:.3} [", f("raw", "F"))),
        "{raw_row}"
    );

    // Growing the pool keeps every finished model as it was.
    let pool = result["pool"].as_str().unwrap().to_string();
    let first = std::path::Path::new(&pool).join("retrain/seed0/audit.json");
    let before = std::fs::read(&first).unwrap();
    let stdout = audit(&out, 10);
    assert!(stdout.contains("|"), "{stdout}");
    assert_eq!(
        std::fs::read(&first).unwrap(),
        before,
        "seed 0 was retrained"
    );
    let grown = read_json(&out.join("audit_result.json"));
    assert_eq!(grown["n"], 10);
    assert_eq!(grown["methods"]["raw"]["n_models"], 10);
}

#[test]
fn bad_audit_requests_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("a");
    for (args, says) in [
        (
            vec!["--forget", "random:60", "--methods", "FT", "--n", "1"],
            "--n 1",
        ),
        (
            vec!["--forget", "random:99999", "--methods", "FT"],
            "random:99999",
        ),
        (
            vec!["--forget", "random:60", "--methods", "NoSuchMethod"],
            "NoSuchMethod",
        ),
        (
            vec!["--forget", "sideways:3", "--methods", "FT"],
            "sideways:3",
        ),
    ] {
        let mut all = vec![
            "audit",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ];
        all.extend(args);
        let o = common::gunlearn(&all);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && stderr.contains(says),
            "{all:?}: {stderr}"
        );
        assert!(!out.join("pools").exists(), "{all:?} started work");
    }
}
