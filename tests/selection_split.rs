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
use gunlearn::data::splits::{make_splits, ForgetRequest, SplitConfig};
use gunlearn::data::{self, DatasetName};
use gunlearn::unlearn::{registry, Harness, UnlearnConfig, UnlearnLog};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

fn splits_with(fraction: f64, forget: ForgetRequest) -> gunlearn::data::splits::Splits {
    let ds = data::load(DatasetName::Digits, None).unwrap();
    make_splits(
        &ds,
        &SplitConfig {
            forget,
            selection_fraction: fraction,
            ..SplitConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn selection_is_stratified_disjoint_and_leaves_validation_as_the_reference_draws_it() {
    let ds = data::load(DatasetName::Digits, None).unwrap();
    let plain = splits_with(0.0, ForgetRequest::Random { fraction: 0.1 });
    let held = splits_with(0.05, ForgetRequest::Random { fraction: 0.1 });
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
        let mut fixture = DigitsFixture::new(class_wise);
        let forget = if class_wise {
            ForgetRequest::Class {
                class: 3,
                count: None,
            }
        } else {
            ForgetRequest::Random { fraction: 0.1 }
        };
        let splits = splits_with(0.05, forget);
        assert!(!splits.selection.is_empty());
        fixture.splits = splits.clone();
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
