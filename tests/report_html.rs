//! `gunlearn report SWEEP_DIR`: run folders found in a sweep, grouped over seeds with mean ±
//! sample std checked by hand, gaps against the Retrain of the same seed, and report.html
//! rendered by headless Chromium (installed by scripts/ensure-chromium.sh when missing).

mod common;

use common::ok;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One synthetic run: `(method, seed, [UA, MIA, RA, TA], RTE)`.
struct Fake<'a> {
    method: &'a str,
    seed: u64,
    m: [f64; 4],
    rte: f64,
    forget: serde_json::Value,
    config: serde_json::Value,
}

fn write_run(dir: &Path, f: &Fake) {
    std::fs::create_dir_all(dir).unwrap();
    let [ua, mia, ra, ta] = f.m;
    let scores = json!({"correctness": 0.5, "confidence": mia / 100.0, "entropy": 0.5,
        "m_entropy": 0.5, "prob": 0.5});
    let v = json!({
        "method": f.method, "dataset": "cifar10", "arch": "resnet18", "seed": f.seed,
        "forget": f.forget, "sizes": {"train": 45000},
        "accuracy": {"train": 90.0, "retain": ra, "forget": 100.0 - ua, "val": ta, "test": ta},
        "SVC_MIA_forget_efficacy": scores, "SVC_MIA_training_privacy": scores,
        "UA": ua, "RA": ra, "TA": ta, "MIA_efficacy": mia, "RTE_seconds": f.rte,
        "timings": {"unlearn": f.rte}, "device": "cpu", "config": f.config,
        "mia_confidence_features": {"forget": [0.1, 0.2, 0.9, 0.95], "test": [0.5, 0.6, 0.99]}
    });
    std::fs::write(
        dir.join("eval_result.json"),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
    // A finished run's completion mark (report reads only that it is there).
    std::fs::write(dir.join("audit.json"), "{}").unwrap();
}

fn config(model: &Path, lr: f64, extra: serde_json::Value) -> serde_json::Value {
    let mut settings = json!({"seed": 7, "batch_size": 64, "lr": null, "epochs": null});
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    json!({"command": "unlearn", "model": model, "unlearn_lr": lr, "unlearn_epochs": 5,
        "settings": settings})
}

/// The sweep: class 3 (Retrain and FT at two lrs, two seeds each but one) and random 10 %
/// (Retrain and GA), plus folders the search must skip.
fn sweep(root: &Path) -> PathBuf {
    let sweep = root.join("sweep");
    let model_dir = root.join("original");
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::write(
        model_dir.join("train_log.csv"),
        "epoch,lr,loss,train_acc,val_acc,seconds\n1,0.1,2.0,30.0,35.0,1.0\n\
         2,0.1,1.2,60.0,58.0,1.0\n3,0.01,0.8,75.0,70.0,1.0\n",
    )
    .unwrap();
    let model = model_dir.join("model.safetensors");
    let class = json!({"kind": "class", "class": 3, "count": 4500, "fraction": null,
        "class_removed_from_test": true});
    let random = json!({"kind": "random", "class": null, "count": 4500, "fraction": 0.1,
        "class_removed_from_test": false});
    let cfg = |lr: f64, seed: u64, extra| {
        let mut c = config(&model, lr, extra);
        c["settings"]["seed"] = json!(seed); // differs per seed: must not split a group
        c
    };
    let runs = [
        (
            "c3/retrain/s1",
            "retrain",
            1,
            [5.0, 10.0, 100.0, 94.0],
            100.0,
            &class,
            0.1,
        ),
        (
            "c3/retrain/s2",
            "retrain",
            2,
            [6.0, 12.0, 99.0, 93.0],
            120.0,
            &class,
            0.1,
        ),
        (
            "c3/FT/lr0.01/s1",
            "FT",
            1,
            [2.0, 6.0, 99.0, 93.0],
            10.0,
            &class,
            0.01,
        ),
        (
            "c3/FT/lr0.01/s2",
            "FT",
            2,
            [4.0, 8.0, 97.0, 93.0],
            14.0,
            &class,
            0.01,
        ),
        (
            "c3/FT/lr0.1/s1",
            "FT",
            1,
            [9.0, 20.0, 90.0, 88.0],
            11.0,
            &class,
            0.1,
        ),
        (
            "rnd/retrain/s1",
            "retrain",
            1,
            [8.0, 15.0, 100.0, 92.0],
            90.0,
            &random,
            0.1,
        ),
        (
            "rnd/GA/s1",
            "GA",
            1,
            [3.0, 5.0, 95.0, 90.0],
            4.0,
            &random,
            1e-4,
        ),
    ];
    for (dir, method, seed, m, rte, forget, lr) in runs {
        // Only the lr = 0.1 FT group records this setting; its value needs escaping in HTML.
        let extra = if dir.contains("lr0.1/") {
            json!({"note": "<i>x</i> & y"})
        } else {
            json!({})
        };
        write_run(
            &sweep.join(dir),
            &Fake {
                method,
                seed,
                m,
                rte,
                forget: forget.clone(),
                config: cfg(lr, seed, extra),
            },
        );
    }
    std::fs::write(
        sweep.join("c3/FT/lr0.01/s1/unlearn_log.csv"),
        "iteration,epoch,loss,accuracy,lr,seconds\n1,0,1.5,40,0.01,0.1\n2,0,1.1,55,0.01,0.1\n\
         3,1,0.9,70,0.01,0.1\n",
    )
    .unwrap();
    // Never runs of the report: attacker caches, hidden and unfinished folders, a run's own
    // subfolders.
    let bogus = Fake {
        method: "bogus",
        seed: 1,
        m: [0.0; 4],
        rte: 1.0,
        forget: class.clone(),
        config: json!({}),
    };
    for dir in [
        "attackers/a1",
        ".hidden/r",
        "c3/FT/old.tmp",
        "c3/FT/lr0.01/s1/nested",
    ] {
        write_run(&sweep.join(dir), &bogus);
    }
    sweep
}

fn csv_rows(text: &str) -> Vec<HashMap<String, String>> {
    // The fixture's fields hold no quoted commas except the hyper-parameters, which use ';'.
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            let cells = split_csv(l);
            assert_eq!(cells.len(), header.len(), "{l}");
            header.iter().map(|h| h.to_string()).zip(cells).collect()
        })
        .collect()
}

fn split_csv(line: &str) -> Vec<String> {
    let (mut cells, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    cells.push(cur);
    cells
}

fn num(row: &HashMap<String, String>, col: &str) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|_| panic!("{col} = {:?}", row[col]))
}

fn close(what: &str, a: f64, b: f64) {
    assert!((a - b).abs() < 1e-6, "{what}: {a} vs {b}");
}

/// Renders `html` with headless Chromium and returns the DOM it built; panics with the reason
/// when Chromium cannot be installed or started.
fn chromium_dom(html: &Path) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ensure = Command::new("bash")
        .arg(root.join("scripts/ensure-chromium.sh"))
        .output()
        .expect("bash runs scripts/ensure-chromium.sh");
    assert!(
        ensure.status.success(),
        "scripts/ensure-chromium.sh could not provide Chromium:\n{}",
        String::from_utf8_lossy(&ensure.stderr)
    );
    let browser = String::from_utf8_lossy(&ensure.stdout).trim().to_string();
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .arg(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.canonicalize().unwrap().display()))
        .output()
        .unwrap_or_else(|e| panic!("starting {browser}: {e}"));
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "{browser} --dump-dom failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

#[test]
fn sweep_report_groups_seeds_and_renders_in_chromium() {
    let t = tempfile::tempdir().unwrap();
    let sweep = sweep(t.path());
    let out_dir = t.path().join("out");
    let out = ok(&[
        "report",
        sweep.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("### cifar10, forget class 3 (4500 samples)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("### cifar10, forget random 10 %"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("bogus"),
        "skipped folders were read:\n{stdout}"
    );

    // report.csv: one row per group, seeds (and settings.seed) merged.
    let csv = std::fs::read_to_string(out_dir.join("report.csv")).unwrap();
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 5, "{csv}");
    let ft = rows
        .iter()
        .find(|r| r["method"] == "FT" && r["hyperparameters"].contains("unlearn_lr=0.01"))
        .unwrap_or_else(|| panic!("no FT lr 0.01 row:\n{csv}"));
    assert_eq!((ft["n"].as_str(), ft["seeds"].as_str()), ("2", "1;2"));
    assert_eq!(ft["label"], "FT [note=—, unlearn_lr=0.01]");
    // UA 2 and 4: mean 3, sample std √2. TA 93 twice: std 0.
    close("UA mean", num(ft, "UA_mean"), 3.0);
    close("UA std", num(ft, "UA_std"), 2f64.sqrt());
    close("TA std", num(ft, "TA_std"), 0.0);
    // Gaps against the Retrain of the same seed: seed 1 (3 + 4 + 1 + 1) / 4 = 2.25, seed 2
    // (2 + 4 + 2 + 0) / 4 = 2; mean 2.125, std 0.25 / √2.
    close("gap mean", num(ft, "avg_gap_mean"), 2.125);
    close("gap std", num(ft, "avg_gap_std"), 0.25 / 2f64.sqrt());
    // RTE 10 and 14 s; fractions 10/100 and 14/120.
    close("RTE mean", num(ft, "RTE_mean"), 12.0);
    let (a, b) = (0.1, 14.0 / 120.0);
    close("RTE fraction", num(ft, "RTE_fraction_mean"), (a + b) / 2.0);
    close(
        "RTE fraction std",
        num(ft, "RTE_fraction_std"),
        (b - a) / 2f64.sqrt(),
    );
    // One run: the std cells are empty. FT lr 0.1 seed 1 against Retrain seed 1:
    // (4 + 10 + 10 + 6) / 4 = 7.5.
    let ft1 = rows
        .iter()
        .find(|r| r["method"] == "FT" && r["hyperparameters"].ends_with("unlearn_lr=0.1"))
        .unwrap();
    assert_eq!((ft1["n"].as_str(), ft1["UA_std"].as_str()), ("1", ""));
    close("gap lr 0.1", num(ft1, "avg_gap_mean"), 7.5);
    let rt = rows
        .iter()
        .find(|r| r["method"] == "retrain" && r["forget"].starts_with("class"))
        .unwrap();
    assert_eq!(rt["n"], "2");
    close("Retrain gap", num(rt, "avg_gap_mean"), 0.0);
    let ga = rows.iter().find(|r| r["method"] == "GA").unwrap();
    assert_eq!(ga["forget"], "random 10 %");
    // Against the random Retrain: (5 + 10 + 5 + 2) / 4 = 5.5.
    close("GA gap", num(ga, "avg_gap_mean"), 5.5);

    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(
        md.contains("| FT [note=—, unlearn_lr=0.01] | 3.00 ± 1.41 |"),
        "{md}"
    );

    // report.html: self-contained, escaped, and what Chromium builds from it.
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    for banned in ["<script", "<link", "<img", "src=", "url("] {
        assert!(!html.contains(banned), "report.html has {banned}");
    }
    let urls = html.matches("http").count();
    assert_eq!(
        urls,
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "report.html names a URL besides the SVG namespace"
    );
    let dom = chromium_dom(&out_dir.join("report.html"));
    assert_eq!(dom.matches("<table id=\"results\"").count(), 1);
    assert_eq!(dom.matches("<tr class=\"group\"").count(), 5);
    let ft_row = dom
        .split("<tr class=\"group\"")
        .find(|r| r.contains("unlearn_lr=0.01]"))
        .unwrap_or_else(|| panic!("no FT lr 0.01 row in the DOM:\n{dom}"));
    for cell in [
        "<td>2</td>",
        "<td>3.00 ± 1.41</td>",
        " ± 0.18</td>",
        "<td>12.00 ± 2.83</td>",
    ] {
        assert!(ft_row.contains(cell), "{cell} missing from {ft_row}");
    }
    // The recorded setting's markup is text, not an element.
    assert!(dom.contains("&lt;i&gt;x&lt;/i&gt; &amp; y"), "{dom}");
    assert!(!dom.contains("<i>x</i>"));
    // Figures: a gap chart per setting (2 + 1 bars, Retrain has none), a confidence histogram
    // per group (5), one unlearning log (loss and accuracy), one training log (loss and
    // accuracy): 2 + 5 + 2 + 2 inline SVGs.
    for (class, n) in [
        ("gap", 2),
        ("mia-confidence", 5),
        ("unlearning-curve", 1),
        ("training-curve", 1),
    ] {
        assert_eq!(
            dom.matches(&format!("<figure class=\"{class}\"")).count(),
            n,
            "figures of class {class}"
        );
    }
    assert_eq!(dom.matches("<figcaption>").count(), 9);
    assert_eq!(dom.matches("<svg").count(), 11);
    assert_eq!(dom.matches("<rect class=\"bar\"").count(), 3);
    assert!(dom.matches("<rect class=\"bin\"").count() >= 5 * 2);
    assert_eq!(dom.matches("<polyline class=\"line\"").count(), 5);
    for f in ["gap.svg", "gap.png", "mia_confidence.svg", "report.md"] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
}

#[test]
fn sweep_errors_name_the_folder_or_file() {
    let t = tempfile::tempdir().unwrap();
    let empty = t.path().join("empty_sweep");
    std::fs::create_dir_all(empty.join("attackers/x")).unwrap();
    let out = t.path().join("o");
    let err = format!(
        "{:#}",
        gunlearn::eval::report::report(std::slice::from_ref(&empty), None, &out).unwrap_err()
    );
    assert!(
        err.contains("no run folder") && err.contains("empty_sweep"),
        "{err}"
    );

    let sweep = sweep(t.path());
    let broken = sweep.join("c3/FT/lr0.1/s1/eval_result.json");
    std::fs::write(&broken, "{\"method\": \"FT\"").unwrap();
    let err = format!(
        "{:#}",
        gunlearn::eval::report::report(&[sweep], None, &out).unwrap_err()
    );
    assert!(
        err.contains("parsing") && err.contains(&broken.display().to_string()),
        "{err}"
    );
}
