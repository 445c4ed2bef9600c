//! Health checks a user gets with every run: conditions under which the numbers cannot rank
//! methods, or a run is not what its method's name promises. Each returns a warning sentence.

use crate::unlearn::{UnlearnConfig, Unlearner};

/// Train − test accuracy gap (points) below which the original model does not memorise its
/// training set: a random forget set then looks like test data before anything is forgotten.
pub const MEMORISATION_GAP: f64 = 2.0;

/// UA change (points) below which a method left the forget set as it found it.
pub const UNCHANGED_UA: f64 = 0.5;

/// A warning when the original model's train and test accuracies (%) are within
/// [`MEMORISATION_GAP`] points.
pub fn memorisation(train: f64, test: f64) -> Option<String> {
    (train - test < MEMORISATION_GAP).then(|| {
        format!(
            "the original model does not memorise its training set (train {train:.2}%, test \
             {test:.2}%: gap {:.2} < {MEMORISATION_GAP} points), so random forgetting cannot rank \
             methods; train it longer or without augmentation",
            train - test
        )
    })
}

/// A warning when a method moved UA by less than [`UNCHANGED_UA`] points from the original's.
pub fn unchanged_ua(method: &str, before: f64, after: f64) -> Option<String> {
    ((after - before).abs() < UNCHANGED_UA && method != "raw")
        .then(|| format!("{method} left UA where it was ({before:.2} before, {after:.2} after)"))
}

/// A warning listing the hyper-parameters in which `config` departs from `method`'s reference
/// defaults (learning rate, epochs, batch size, α, and the adversarial method's schedule).
pub fn non_default(method: &dyn Unlearner, config: &UnlearnConfig) -> Option<String> {
    let reference = UnlearnConfig::default();
    let (lr, epochs) = method.defaults();
    let mut diffs = Vec::new();
    if let Some(v) = config.lr.filter(|&v| v != lr) {
        diffs.push(format!("lr {} (reference {})", num(v), num(lr)));
    }
    if let Some(v) = config.epochs.filter(|&v| v != epochs) {
        diffs.push(format!("epochs {v} (reference {epochs})"));
    }
    if config.batch_size != reference.batch_size {
        diffs.push(format!(
            "batch size {} (reference {})",
            config.batch_size, reference.batch_size
        ));
    }
    if let Some(alpha) = config.alpha {
        diffs.push(format!(
            "alpha {} (reference: the method's own)",
            num(alpha)
        ));
    }
    if method.name() == "Gan" && config.attacker_iters != reference.attacker_iters {
        diffs.push(format!(
            "attacker pre-training {} iterations (reference {})",
            config.attacker_iters, reference.attacker_iters
        ));
    }
    (!diffs.is_empty()).then(|| {
        format!(
            "{} ran with settings other than its reference defaults: {}",
            method.name(),
            diffs.join(", ")
        )
    })
}

/// A setting as people write it: 0.01, 1e-5.
fn num(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}
