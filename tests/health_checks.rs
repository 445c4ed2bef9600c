//! Health checks: the thresholds of `eval::health`, and through the binary, the warnings an
//! `unlearn` run records in `eval_result.json` and `report` lists under "Health checks".

mod common;

use common::{ok, read_json};
use gunlearn::eval::health;
use gunlearn::unlearn::{find, UnlearnConfig};

#[test]
fn thresholds() {
    assert!(health::memorisation(100.0, 94.0).is_none());
    let w = health::memorisation(84.6, 83.9).expect("a 0.7-point gap does not memorise");
    assert!(w.contains("84.60") && w.contains("83.90"), "{w}");
    assert!(
        health::memorisation(90.0, 88.0).is_none(),
        "2 points is enough"
    );
    assert!(health::unchanged_ua("FT", 5.0, 5.3).is_some());
    assert!(health::unchanged_ua("FT", 5.0, 6.0).is_none());
    assert!(
        health::unchanged_ua("raw", 5.0, 5.0).is_none(),
        "raw changes nothing by design"
    );
    let ft = find("FT").unwrap();
    assert!(health::non_default(ft.as_ref(), &UnlearnConfig::default()).is_none());
    let reference = UnlearnConfig {
        lr: Some(0.01),
        epochs: Some(10),
        ..UnlearnConfig::default()
    };
    assert!(
        health::non_default(ft.as_ref(), &reference).is_none(),
        "the reference values given explicitly are the reference"
    );
    let tuned = UnlearnConfig {
        lr: Some(0.05),
        batch_size: 64,
        ..UnlearnConfig::default()
    };
    let w = health::non_default(ft.as_ref(), &tuned).unwrap();
    assert!(
        w.contains("lr 0.05 (reference 0.01)") && w.contains("batch size 64"),
        "{w}"
    );
}

#[test]
fn unlearn_records_the_warnings_and_report_lists_them() {
    let tmp = tempfile::tempdir().unwrap();
    // The fixture model, with a recorded train/test gap of 0.5 points.
    let model = tmp.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    let fixture = common::digits_model();
    std::fs::copy(fixture, model.join("model.safetensors")).unwrap();
    let mut info = read_json(&fixture.with_extension("json"));
    info["accuracy"]["train"] = 90.0.into();
    info["accuracy"]["test"] = 89.5.into();
    std::fs::write(model.join("model.json"), info.to_string()).unwrap();
    let run = tmp.path().join("iu");
    let threads = common::test_threads().to_string();
    ok(&[
        "unlearn",
        "--model",
        model.to_str().unwrap(),
        "--unlearn",
        "wfisher",
        // A step this small leaves every weight (and so UA) as it was.
        "--alpha",
        "1e-30",
        "--class_to_replace",
        "3",
        "--device",
        "cpu",
        "--threads",
        &threads,
        "--quiet",
        "--save_dir",
        run.to_str().unwrap(),
    ]);
    let result = read_json(&run.join("eval_result.json"));
    let warnings: Vec<&str> = result["config"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings[0].contains("does not memorise"), "{warnings:?}");
    assert!(warnings[1].contains("left UA where it was"), "{warnings:?}");
    assert!(warnings[2].contains("alpha 1e-30"), "{warnings:?}");
    let before = result["config"]["ua_before"].as_f64().unwrap();
    assert!((before - result["UA"].as_f64().unwrap()).abs() < 0.5);
    let out = tmp.path().join("report");
    ok(&["report", run.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let checks = md
        .split("## Health checks")
        .nth(1)
        .expect("a Health checks section");
    assert!(
        checks.contains("does not memorise") && checks.contains("(1 run(s))"),
        "{md}"
    );
}
