//! The selection split: stratified, disjoint from every other split, leaves the validation split
//! as the reference draws it, and is read by no method (every registry entry, Retrain and the
//! adversarial method's attacker included).
//!
//! How a read is detected: the test gives the selection images labels far outside the class
//! range. Any loss, attacker input or statistic that reads such a sample fails in libtorch
//! ("target out of bounds"); a positive control shows that one selection index slipped into
//! the retain set is caught.

mod common;

use common::DigitsFixture;
use gunlearn::data::{self, DatasetName};
use gunlearn::unlearn::{registry, Harness, UnlearnConfig, UnlearnLog};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

#[test]
fn selection_is_stratified_disjoint_and_leaves_validation_as_the_reference_draws_it() {
    let ds = data::load(DatasetName::Digits, None).unwrap();
    let plain = DigitsFixture::new(false).splits;
    let held = DigitsFixture::with_selection(false, 0.05).splits;
    assert!(plain.selection.is_empty());
    assert_eq!(held.val, plain.val, "the validation split does not move");
    for c in 0..ds.num_classes as i64 {
        let n_c = ds.train.labels.iter().filter(|&&l| l == c).count();
        let in_selection = held
            .selection
            .iter()
            .filter(|&&i| ds.train.labels[i] == c)
            .count();
        assert_eq!(in_selection, n_c * 5 / 100, "class {c}: ⌊0.05·{n_c}⌋");
    }
    let mut seen = vec![0u8; ds.train.len()];
    for &i in held.train.iter().chain(&held.val).chain(&held.selection) {
        seen[i] += 1;
    }
    assert!(
        seen.iter().all(|&k| k == 1),
        "train, val and selection partition the images"
    );
    for &i in &held.selection {
        assert!(!held.forget.contains(&i) && !held.retain.contains(&i));
    }
    assert_eq!(
        held.train.len() + held.selection.len(),
        plain.train.len(),
        "the selection split comes out of the train split"
    );
}

/// The fixture's training images with every selection image labelled far out of range.
fn poisoned(fixture: &DigitsFixture, selection: &[usize]) -> Arc<gunlearn::data::ImageSet> {
    let mut set = (*fixture.train_set).clone();
    for &i in selection {
        set.labels[i] = 1_000_000;
    }
    Arc::new(set)
}

/// Short settings that still run every phase of every method.
fn short_config() -> UnlearnConfig {
    UnlearnConfig {
        epochs: Some(1),
        batch_size: 64,
        forget_batch_size: 64,
        stop_iter: Some(2),
        attacker_iters: 3,
        ..UnlearnConfig::default()
    }
}

/// Runs `method` on the fixture's model with `splits` and the poisoned images; `Err` when it
/// failed or panicked.
fn run_method(
    fixture: &DigitsFixture,
    splits: &gunlearn::data::splits::Splits,
    train_set: Arc<gunlearn::data::ImageSet>,
    method: &dyn gunlearn::unlearn::Unlearner,
    harness: Harness,
) -> Result<(), String> {
    let model = fixture.fresh_model().model;
    let cfg = short_config();
    let dir = tempfile::tempdir().unwrap();
    let ctx = gunlearn::unlearn::UnlearnContext {
        splits,
        train_set,
        harness,
        ..fixture.context(&model, None, &cfg, dir.path())
    };
    let mut log = UnlearnLog::default();
    match catch_unwind(AssertUnwindSafe(|| method.run(&ctx, &mut log))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err("panicked".into()),
    }
}

#[test]
fn no_method_reads_the_selection_split() {
    common::pin_threads();
    for class_wise in [false, true] {
        let fixture = DigitsFixture::with_selection(class_wise, 0.05);
        let splits = fixture.splits.clone();
        assert!(!splits.selection.is_empty());
        let train_set = poisoned(&fixture, &splits.selection);

        // Positive control: one selection image in the retain set is caught.
        let mut leaky = splits.clone();
        leaky.retain.push(splits.selection[0]);
        leaky.retain.sort_unstable();
        let ft = gunlearn::unlearn::find("FT").unwrap();
        assert!(
            run_method(
                &fixture,
                &leaky,
                Arc::clone(&train_set),
                ft.as_ref(),
                Harness::Sparsity
            )
            .is_err(),
            "a selection image in R must be detected"
        );

        for method in registry() {
            let result = run_method(
                &fixture,
                &splits,
                Arc::clone(&train_set),
                method.as_ref(),
                method.forget_harness(),
            );
            assert!(
                result.is_ok(),
                "{} ({}) read the selection split or failed: {result:?}",
                method.name(),
                if class_wise { "class-wise" } else { "random" }
            );
        }
    }
}

#[test]
fn a_run_with_a_selection_split_reports_it_records_it_and_verify_audit_checks_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, run) = (tmp.path().join("original"), tmp.path().join("ft"));
    let (m, r) = (model.to_str().unwrap(), run.to_str().unwrap());
    let threads = common::test_threads().to_string();
    let common_flags = ["--dataset", "digits", "--threads", &threads, "--quiet"];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(common_flags.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let ok = |args: Vec<String>| {
        common::ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    };
    ok(with(&[
        "train",
        "--arch",
        "resnet20",
        "--epochs",
        "1",
        "--batch_size",
        "64",
        "--selection_fraction",
        "0.05",
        "--save_dir",
        m,
    ]));
    // The model was trained without its selection split: a run that would read it is refused.
    let refused = common::gunlearn(
        &with(&[
            "eval",
            "--model",
            m,
            "--indexes_to_replace",
            "--save_dir",
            r,
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("--selection_fraction 0.05"), "{err}");

    ok(with(&[
        "unlearn",
        "--model",
        m,
        "--unlearn",
        "FT",
        "--indexes_to_replace",
        "--unlearn_epochs",
        "1",
        "--batch_size",
        "64",
        "--selection_fraction",
        "0.05",
        "--save_dir",
        r,
    ]));
    let result = common::read_json(&run.join("eval_result.json"));
    let ds = data::load(DatasetName::Digits, None).unwrap();
    let expected: usize = (0..ds.num_classes as i64)
        .map(|c| ds.train.labels.iter().filter(|&&l| l == c).count() * 5 / 100)
        .sum();
    assert_eq!(result["sizes"]["selection"], expected, "{result:#}");
    let selection_acc = result["accuracy"]["selection"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&selection_acc));
    // One epoch of FT at batch 64 departs from the reference's steps: the run says so.
    let phases = &result["config"]["ran"]["phases"];
    assert_eq!(phases[0]["phase"], "fine-tuning", "{phases:#}");
    assert_eq!(phases[0]["reference_steps"], 1590);
    let warned = result["config"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().starts_with("FT: fine-tuning "));
    assert!(warned, "{:#}", result["config"]["warnings"]);

    let audit_path = run.join("audit.json");
    let mut audit = common::read_json(&audit_path);
    assert_eq!(audit["data"]["selection"]["count"], expected);
    assert!(common::gunlearn(&["verify-audit", r]).status.success());
    audit["data"]["selection"]["sha256"] = serde_json::json!("0".repeat(64));
    std::fs::write(&audit_path, audit.to_string()).unwrap();
    let tampered = common::gunlearn(&["verify-audit", r]);
    assert!(!tampered.status.success());
    let out = String::from_utf8_lossy(&tampered.stdout);
    assert!(
        out.lines()
            .any(|l| l.contains("MISMATCH") && l.contains("selection split")),
        "{out}"
    );
}
