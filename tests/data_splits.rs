//! Splits (SPEC §1) on synthetic label arrays with CIFAR's class layout, checked against the
//! NumPy vectors in `shared/reference/numpy-randomstate-vectors.json`.

use gunlearn::data::rng::SmallRng;
use gunlearn::data::splits::{make_splits, ForgetRequest, SplitConfig, Splits};
use gunlearn::data::{DataSet, DatasetName, ImageSet};
use serde_json::Value;
use sha2::{Digest, Sha256};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/numpy-randomstate-vectors.json"
);

fn vectors() -> Value {
    serde_json::from_str(&std::fs::read_to_string(VECTORS).expect("vectors file")).unwrap()
}

fn sha_u32(xs: &[usize]) -> String {
    let mut h = Sha256::new();
    for &x in xs {
        h.update((x as u32).to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn u64s(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// `per_class` images of each of `classes` classes in a seeded shuffled order (like CIFAR's
/// files, where classes are interleaved), as 1×1×1 images to stay small.
fn labels(classes: usize, per_class: usize, seed: u64) -> Vec<i64> {
    let mut l: Vec<i64> = (0..classes * per_class)
        .map(|i| (i % classes) as i64)
        .collect();
    SmallRng::new(seed).shuffle(&mut l);
    l
}

fn dataset(classes: usize, per_class: usize, test_per_class: usize) -> DataSet {
    let set = |l: Vec<i64>| ImageSet {
        images: vec![0; l.len()],
        labels: l,
        channels: 1,
        height: 1,
        width: 1,
    };
    DataSet {
        name: DatasetName::Cifar10,
        num_classes: classes,
        train: set(labels(classes, per_class, 11)),
        test: set(labels(classes, test_per_class, 12)),
        mean: vec![0.5],
        std: vec![0.5],
    }
}

/// Index of `i` among the ascending positions of its class.
fn rank_in_class(ds: &DataSet, i: usize) -> usize {
    let c = ds.train.labels[i];
    ds.train.labels[..i].iter().filter(|&&l| l == c).count()
}

fn check_invariants(ds: &DataSet, s: &Splits) {
    let n = ds.train.len();
    assert!(s.train.windows(2).all(|w| w[0] < w[1]), "train ascending");
    assert!(s.forget.windows(2).all(|w| w[0] < w[1]), "forget ascending");
    assert!(s.retain.windows(2).all(|w| w[0] < w[1]), "retain ascending");
    let mut seen = vec![0u8; n];
    for &i in s.train.iter().chain(&s.val) {
        seen[i] += 1;
    }
    assert!(
        seen.iter().all(|&c| c == 1),
        "train and val partition the training images"
    );
    assert_eq!(s.forget.len() + s.retain.len(), s.train.len());
    let mut in_train = vec![false; n];
    for &i in &s.train {
        in_train[i] = true;
    }
    let mut fr = vec![0u8; n];
    for &i in s.forget.iter().chain(&s.retain) {
        assert!(in_train[i], "forget/retain index {i} not in train");
        fr[i] += 1;
    }
    assert!(
        s.train.iter().all(|&i| fr[i] == 1),
        "forget and retain partition train"
    );
}

fn check_val_vectors(ds: &DataSet, s: &Splits, entry: &Value, per_class_val: usize) {
    for c in entry["per_class"].as_array().unwrap() {
        let class = c["class"].as_u64().unwrap() as usize;
        let drawn: Vec<usize> = s.val[class * per_class_val..(class + 1) * per_class_val].to_vec();
        assert!(
            drawn.iter().all(|&i| ds.train.labels[i] == class as i64),
            "val is class by class"
        );
        let ranks: Vec<usize> = drawn.iter().map(|&i| rank_in_class(ds, i)).collect();
        assert_eq!(ranks[..10], u64s(&c["first10"])[..], "class {class}");
        assert_eq!(
            sha_u32(&ranks),
            c["sha256"].as_str().unwrap(),
            "class {class}"
        );
    }
}

#[test]
fn cifar10_val_split_matches_numpy() {
    let ds = dataset(10, 5000, 1000);
    let s = make_splits(&ds, &SplitConfig::default()).unwrap();
    assert_eq!((s.train.len(), s.val.len()), (45_000, 5_000));
    assert!(s.forget.is_empty());
    assert_eq!(s.retain, s.train);
    assert_eq!(s.test, (0..10_000).collect::<Vec<_>>());
    assert_eq!(s.removed_class, None);
    check_invariants(&ds, &s);
    check_val_vectors(&ds, &s, &vectors()["val_split_cifar10"], 500);
}

#[test]
fn cifar100_val_split_matches_numpy() {
    let ds = dataset(100, 500, 100);
    let s = make_splits(&ds, &SplitConfig::default()).unwrap();
    assert_eq!((s.train.len(), s.val.len()), (45_000, 5_000));
    check_invariants(&ds, &s);
    check_val_vectors(&ds, &s, &vectors()["val_split_cifar100"], 50);
}

#[test]
fn random_forgetting_matches_numpy() {
    let ds = dataset(10, 5000, 1000);
    let v = vectors();
    for seed in [1u32, 2, 6] {
        let cfg = SplitConfig {
            seed,
            forget: ForgetRequest::Random { fraction: 0.1 },
            ..SplitConfig::default()
        };
        let s = make_splits(&ds, &cfg).unwrap();
        assert_eq!(s.forget.len(), 4_500);
        assert_eq!(s.retain.len(), 40_500);
        check_invariants(&ds, &s);
        // Back to positions in the train split; they are what NumPy drew.
        let positions: Vec<usize> = s
            .forget
            .iter()
            .map(|i| s.train.binary_search(i).unwrap())
            .collect();
        let want = &v["random_forget_45000_4500"][(seed - 1).to_string()];
        assert_eq!(
            sha_u32(&positions),
            want["sha256_sorted"].as_str().unwrap(),
            "seed {seed}"
        );
        for p in u64s(&want["first20"]) {
            assert!(
                positions.binary_search(&p).is_ok(),
                "seed {seed}: position {p} not forgotten"
            );
        }
        assert_eq!(s.test.len(), 10_000);
    }
}

#[test]
fn class_forgetting_whole_class_removes_it_from_test() {
    let ds = dataset(10, 5000, 1000);
    for count in [None, Some(4500)] {
        let cfg = SplitConfig {
            forget: ForgetRequest::Class { class: 3, count },
            ..SplitConfig::default()
        };
        let s = make_splits(&ds, &cfg).unwrap();
        check_invariants(&ds, &s);
        let class3: Vec<usize> = s
            .train
            .iter()
            .copied()
            .filter(|&i| ds.train.labels[i] == 3)
            .collect();
        assert_eq!(class3.len(), 4500);
        assert_eq!(s.forget, class3);
        assert_eq!(s.removed_class, Some(3));
        assert_eq!(s.test.len(), 9_000);
        assert!(s.test.iter().all(|&i| ds.test.labels[i] != 3));
        assert!(s.retain.iter().all(|&i| ds.train.labels[i] != 3));
    }
}

#[test]
fn class_forgetting_partial_matches_numpy() {
    let ds = dataset(10, 5000, 1000);
    let want = u64s(&vectors()["classwise_4500_of_4500_seed0"]["first20"]);
    let cfg = SplitConfig {
        seed: 1,
        forget: ForgetRequest::Class {
            class: 5,
            count: Some(20),
        },
        ..SplitConfig::default()
    };
    let s = make_splits(&ds, &cfg).unwrap();
    check_invariants(&ds, &s);
    let members: Vec<usize> = s
        .train
        .iter()
        .copied()
        .filter(|&i| ds.train.labels[i] == 5)
        .collect();
    // choice(members, 20) = members[permutation(4500)[:20]], the vector's first 20.
    let mut expect: Vec<usize> = want.iter().map(|&p| members[p]).collect();
    expect.sort_unstable();
    assert_eq!(s.forget, expect);
    assert_eq!(s.removed_class, None);
    assert_eq!(s.test.len(), 10_000);
}

#[test]
fn bad_requests_are_clear_errors() {
    let ds = dataset(10, 50, 10);
    let err = |forget: ForgetRequest, seed: u32| {
        let cfg = SplitConfig {
            seed,
            forget,
            ..SplitConfig::default()
        };
        format!("{:#}", make_splits(&ds, &cfg).unwrap_err())
    };
    let e = err(
        ForgetRequest::Class {
            class: 10,
            count: None,
        },
        2,
    );
    assert!(e.contains("class 10") && e.contains("10 classes"), "{e}");
    let e = err(
        ForgetRequest::Class {
            class: 1,
            count: Some(46),
        },
        2,
    );
    assert!(e.contains("46") && e.contains("only 45"), "{e}");
    let e = err(
        ForgetRequest::Class {
            class: 1,
            count: Some(0),
        },
        2,
    );
    assert!(e.contains("at least 1"), "{e}");
    let e = err(ForgetRequest::Random { fraction: 0.1 }, 0);
    assert!(e.contains("seed 0") && e.contains("seed - 1"), "{e}");
    let e = err(ForgetRequest::Random { fraction: 1.5 }, 2);
    assert!(e.contains("(0, 1]"), "{e}");
    let e = err(ForgetRequest::Random { fraction: 0.001 }, 2);
    assert!(e.contains("no sample"), "{e}");
    // Seed 0 is fine when nothing is forgotten (no forget generator is needed).
    let cfg = SplitConfig {
        seed: 0,
        ..SplitConfig::default()
    };
    assert!(make_splits(&ds, &cfg).is_ok());
}

#[test]
fn out_of_range_training_label_is_an_error() {
    let mut ds = dataset(10, 50, 10);
    ds.train.labels[7] = 12;
    let e = format!(
        "{:#}",
        make_splits(&ds, &SplitConfig::default()).unwrap_err()
    );
    assert!(e.contains("label 12") && e.contains("index 7"), "{e}");
}
