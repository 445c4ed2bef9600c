//! MIA features on hand-computed probabilities and the two attack protocols on synthetic
//! outputs where members are more confident than non-members.

mod common;

use gunlearn::eval::mia::{self, features, FeatureKind, Outputs};

/// Rayon threads for tests (`GUNLEARN_TEST_THREADS`, default 2).
fn test_threads() -> usize {
    common::test_threads()
}

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(test_threads())
        .build()
        .unwrap()
}

fn close(a: f32, b: f64) {
    assert!((a as f64 - b).abs() < 1e-5, "{a} vs {b}");
}

#[test]
fn features_on_hand_computed_rows() {
    // Row 0: label 0 is the argmax. Row 1: label 2, argmax 1. Row 2: tie 0.5/0.5, label 1.
    let probs = [0.7, 0.2, 0.1, 0.2, 0.5, 0.3, 0.5, 0.5, 0.0];
    let labels = [0, 2, 1];
    let (f, d) = features(FeatureKind::Correctness, &probs, &labels, 3);
    assert_eq!(
        (f, d),
        (vec![1.0, 0.0, 0.0], 1),
        "ties go to the first maximum"
    );
    let (f, d) = features(FeatureKind::Confidence, &probs, &labels, 3);
    assert_eq!(d, 1);
    close(f[0], 0.7);
    close(f[1], 0.3);
    close(f[2], 0.5);
    let (f, _) = features(FeatureKind::Entropy, &probs, &labels, 3);
    // −(0.7 ln 0.7 + 0.2 ln 0.2 + 0.1 ln 0.1) = 0.249672 + 0.321888 + 0.230259
    close(f[0], 0.801819);
    // 0 · ln 0 contributes 0 thanks to the clamp: entropy of (0.5, 0.5, 0) is ln 2.
    close(f[2], std::f64::consts::LN_2);
    let (f, _) = features(FeatureKind::Prob, &probs, &labels, 3);
    assert_eq!(f, probs.to_vec());
    assert_eq!(features(FeatureKind::Prob, &probs, &labels, 3).1, 3);
}

#[test]
fn modified_entropy_follows_the_formula() {
    let probs = [
        0.7f32, 0.2, 0.1, 0.2, 0.5, 0.3, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0,
    ];
    let labels = [0, 2, 0, 0];
    let (f, d) = features(FeatureKind::MEntropy, &probs, &labels, 3);
    assert_eq!(d, 1);
    let me = |p: &[f64], y: usize| {
        let mut s = -(1.0 - p[y]) * p[y].max(1e-30).ln();
        for (i, &pi) in p.iter().enumerate() {
            if i != y {
                s -= pi * (1.0 - pi).max(1e-30).ln();
            }
        }
        s
    };
    // −0.3 ln 0.7 − 0.2 ln 0.8 − 0.1 ln 0.9 = 0.107002 + 0.044629 + 0.010536
    close(f[0], 0.162167);
    close(f[1], me(&[0.2, 0.5, 0.3], 2));
    // A perfect prediction has modified entropy 0.
    close(f[2], 0.0);
    // p_y = 0 and a wrong class at 1: both logs hit the 1e-30 clamp, 2 · 30 ln 10.
    assert!(
        (f[3] as f64 - 2.0 * 30.0 * std::f64::consts::LN_10).abs() < 1e-3,
        "{}",
        f[3]
    );
}

/// `n` softmax rows over 4 classes whose true-class probability is around `conf`.
fn outputs(n: usize, conf: f32, seed: u64) -> Outputs {
    let mut s = seed;
    let mut u = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut probs = Vec::new();
    let mut labels = Vec::new();
    for k in 0..n {
        let y = k % 4;
        let py = (conf + 0.2 * (u() - 0.5)).clamp(0.05, 0.999);
        let mut rest = [u() + 0.1, u() + 0.1, u() + 0.1];
        let sum: f32 = rest.iter().sum();
        rest.iter_mut().for_each(|r| *r *= (1.0 - py) / sum);
        let mut it = rest.iter();
        for c in 0..4 {
            probs.push(if c == y { py } else { *it.next().unwrap() });
        }
        labels.push(y as i64);
    }
    Outputs {
        probs,
        labels,
        num_classes: 4,
    }
}

#[test]
fn forget_efficacy_separates_members_from_non_members() {
    let retain = outputs(400, 0.95, 1);
    let test = outputs(200, 0.55, 2);
    let pool = pool();
    // A forget set that looks like test data is predicted non-member; one like retain is not.
    let unlearned = pool
        .install(|| mia::forget_efficacy(&retain, &test, &outputs(100, 0.55, 3)))
        .unwrap();
    let remembered = pool
        .install(|| mia::forget_efficacy(&retain, &test, &outputs(100, 0.95, 4)))
        .unwrap();
    for kind in [
        FeatureKind::Confidence,
        FeatureKind::Entropy,
        FeatureKind::MEntropy,
        FeatureKind::Prob,
    ] {
        assert!(unlearned.get(kind) > 0.85, "{kind:?}: {unlearned:?}");
        assert!(remembered.get(kind) < 0.15, "{kind:?}: {remembered:?}");
    }
    // Every row is predicted correctly in both sets: the correctness SVC sees identical rows,
    // so it must say the same thing for both forget sets.
    assert_eq!(unlearned.correctness, remembered.correctness);
    let json = serde_json::to_value(unlearned).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys.len(), 5);
    for k in ["correctness", "confidence", "entropy", "m_entropy", "prob"] {
        assert!(keys.contains(&k), "{k} missing");
    }
}

#[test]
fn training_privacy_is_high_when_members_are_distinguishable() {
    let pool = pool();
    let s = pool
        .install(|| mia::training_privacy(&outputs(300, 0.95, 5), &outputs(200, 0.55, 6)))
        .unwrap();
    assert!(s.confidence > 0.9 && s.prob > 0.9, "{s:?}");
    // Same distribution for members and non-members: no better than chance (with slack).
    let s = pool
        .install(|| mia::training_privacy(&outputs(300, 0.7, 7), &outputs(200, 0.7, 8)))
        .unwrap();
    assert!(s.confidence < 0.62, "{s:?}");
}

#[test]
fn protocol_set_sizes_and_bad_outputs_are_errors() {
    let err = mia::forget_efficacy(
        &outputs(50, 0.9, 1),
        &outputs(60, 0.5, 2),
        &outputs(10, 0.5, 3),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("shorter than the test set"), "{err}");
    let err = mia::forget_efficacy(
        &outputs(50, 0.9, 1),
        &outputs(40, 0.5, 2),
        &Outputs {
            num_classes: 4,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("forget set is empty"), "{err}");
    let err = mia::training_privacy(&outputs(10, 0.9, 1), &outputs(40, 0.5, 2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("longer than |test|/2"), "{err}");
    let mut bad = outputs(10, 0.9, 1);
    bad.labels[3] = 7;
    let err = mia::training_privacy(&bad, &outputs(4, 0.5, 2))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("retain") && err.contains("label 7 at sample 3"),
        "{err}"
    );
    let mut other = outputs(10, 0.5, 2);
    other.num_classes = 5;
    other.probs.truncate(0);
    other.labels.truncate(0);
    let err = mia::training_privacy(&outputs(10, 0.9, 1), &other)
        .unwrap_err()
        .to_string();
    assert!(err.contains("test outputs have 5 classes"), "{err}");
}
