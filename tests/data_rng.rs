//! `RandomState` must reproduce NumPy's legacy generator bit for bit: every vector in
//! `shared/reference/numpy-randomstate-vectors.json`, plus a few extra NumPy outputs.

use gunlearn::data::rng::{RandomState, SmallRng};
use serde_json::Value;
use sha2::{Digest, Sha256};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/numpy-randomstate-vectors.json"
);

fn vectors() -> Value {
    let text =
        std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("cannot read {VECTORS}: {e}"));
    serde_json::from_str(&text).expect("vectors JSON")
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// sha256 over the values as little-endian uint32, as the vectors file defines it.
fn sha_u32(xs: &[usize]) -> String {
    let mut h = Sha256::new();
    for &x in xs {
        h.update((x as u32).to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn seeds(obj: &Value) -> Vec<(u32, &Value)> {
    let map = obj.as_object().unwrap();
    assert!(!map.is_empty());
    map.iter().map(|(k, v)| (k.parse().unwrap(), v)).collect()
}

#[test]
fn raw_uint32() {
    let v = vectors();
    for (seed, want) in seeds(&v["raw_uint32"]) {
        let mut rs = RandomState::new(seed);
        let got: Vec<u64> = (0..want.as_array().unwrap().len())
            .map(|_| rs.next_u32() as u64)
            .collect();
        assert_eq!(got, u64s(want), "seed {seed}");
    }
}

/// The `random_sample` section as `(seed, values)`, with the numbers parsed by Rust's
/// correctly rounded `str::parse` (serde_json's default float parsing can be 1 ulp off).
fn random_sample_vectors() -> Vec<(u32, Vec<f64>)> {
    let text = std::fs::read_to_string(VECTORS).unwrap();
    let start = text.find("\"random_sample\"").expect("random_sample key");
    let body = &text[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
    let mut out = Vec::new();
    for part in body.split(']') {
        let Some((key, list)) = part.split_once('[') else {
            continue;
        };
        let seed = key
            .trim_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap();
        let vals = list.split(',').map(|x| x.trim().parse().unwrap()).collect();
        out.push((seed, vals));
    }
    out
}

#[test]
fn random_sample() {
    let v = vectors();
    let parsed = random_sample_vectors();
    assert_eq!(parsed.len(), v["random_sample"].as_object().unwrap().len());
    for (seed, want) in parsed {
        let mut rs = RandomState::new(seed);
        for (i, w) in want.iter().enumerate() {
            // Exact: both sides are the same 53-bit construction.
            assert_eq!(rs.random_sample(), *w, "seed {seed} draw {i}");
        }
    }
}

#[test]
fn permutation_small() {
    let v = vectors();
    for (seed, want) in seeds(&v["permutation_small"]) {
        let want: Vec<usize> = u64s(want).into_iter().map(|x| x as usize).collect();
        assert_eq!(
            RandomState::new(seed).permutation(want.len()),
            want,
            "seed {seed}"
        );
    }
}

#[test]
fn random_forget_45000_4500() {
    let v = vectors();
    let pool: Vec<usize> = (0..45_000).collect();
    for (seed, want) in seeds(&v["random_forget_45000_4500"]) {
        let mut got = RandomState::new(seed).choice_without_replacement(&pool, 4500);
        let first20: Vec<u64> = got[..20].iter().map(|&x| x as u64).collect();
        assert_eq!(first20, u64s(&want["first20"]), "seed {seed}");
        assert_eq!(
            sha_u32(&got),
            want["sha256"].as_str().unwrap(),
            "seed {seed}"
        );
        got.sort_unstable();
        assert_eq!(
            sha_u32(&got),
            want["sha256_sorted"].as_str().unwrap(),
            "seed {seed}"
        );
    }
}

#[test]
fn classwise_whole_class() {
    let v = vectors();
    let want = &v["classwise_4500_of_4500_seed0"];
    let pool: Vec<usize> = (0..4500).collect();
    let got = RandomState::new(0).choice_without_replacement(&pool, 4500);
    let first20: Vec<u64> = got[..20].iter().map(|&x| x as u64).collect();
    assert_eq!(first20, u64s(&want["first20"]));
    assert_eq!(sha_u32(&got), want["sha256"].as_str().unwrap());
}

/// Shared by the two validation-split vectors: one generator across classes, each class a
/// `choice` of ⌊0.1·n⌋ from its `n` positions; values are indexes into the class positions.
fn check_val_vectors(entry: &Value, classes: usize, per_class: usize) {
    let mut rs = RandomState::new(1);
    let mut picks = Vec::new();
    let positions: Vec<usize> = (0..per_class).collect();
    for _ in 0..classes {
        picks.push(rs.choice_without_replacement(&positions, per_class / 10));
    }
    let listed = entry["per_class"].as_array().unwrap();
    assert!(!listed.is_empty());
    for c in listed {
        let class = c["class"].as_u64().unwrap() as usize;
        let first10: Vec<u64> = picks[class][..10].iter().map(|&x| x as u64).collect();
        assert_eq!(first10, u64s(&c["first10"]), "class {class}");
        assert_eq!(
            sha_u32(&picks[class]),
            c["sha256"].as_str().unwrap(),
            "class {class}"
        );
    }
}

#[test]
fn val_split_vectors() {
    let v = vectors();
    check_val_vectors(&v["val_split_cifar10"], 10, 5000);
    check_val_vectors(&v["val_split_cifar100"], 100, 500);
}

#[test]
fn randint_and_shuffle_match_numpy() {
    // Outputs of numpy 2.4.6 `RandomState(7)`: randint(0, 10) ×8, randint(-5, 10**6) ×5,
    // randint(0, 2**32) ×3 (the raw-draw special case), randint(3, 2**40) ×3 (64-bit masks),
    // and shuffle(list(range(12))).
    let mut rs = RandomState::new(7);
    let a: Vec<i64> = (0..8).map(|_| rs.randint(0, 10)).collect();
    assert_eq!(a, [4, 9, 6, 3, 3, 7, 7, 9]);
    let mut rs = RandomState::new(7);
    let b: Vec<i64> = (0..5).map(|_| rs.randint(-5, 1_000_000)).collect();
    assert_eq!(b, [585898, 189631, 573972, 535025, 759358]);
    let mut rs = RandomState::new(7);
    let c: Vec<i64> = (0..3).map(|_| rs.randint(0, 1 << 32)).collect();
    assert_eq!(c, [327741615, 976413892, 3349725721]);
    let mut rs = RandomState::new(7);
    let d: Vec<i64> = (0..3).map(|_| rs.randint(3, 1 << 40)).collect();
    assert_eq!(d, [752595690695, 108744157689, 291964244182]);
    let mut xs: Vec<usize> = (0..12).collect();
    RandomState::new(7).shuffle(&mut xs);
    assert_eq!(xs, [7, 10, 2, 5, 0, 1, 11, 8, 3, 6, 9, 4]);
    // The largest seed.
    let mut rs = RandomState::new(u32::MAX);
    let e: Vec<u32> = (0..3).map(|_| rs.next_u32()).collect();
    assert_eq!(e, [419326371, 479346978, 3918654476]);
    assert_eq!(rs.random_sample(), 0.5626933782475836);
}

#[test]
fn choice_edge_cases() {
    let mut rs = RandomState::new(3);
    assert!(rs.choice_without_replacement(&[], 0).is_empty());
    assert_eq!(rs.choice_without_replacement(&[42], 1), vec![42]);
    let pool = [10, 20, 30, 40];
    let mut all = RandomState::new(3).choice_without_replacement(&pool, 4);
    all.sort_unstable();
    assert_eq!(all, pool);
}

#[test]
fn small_rng_is_seeded_and_uniform() {
    let a: Vec<u64> = {
        let mut r = SmallRng::new(9);
        (0..5).map(|_| r.next_u64()).collect()
    };
    let mut r = SmallRng::new(9);
    assert_eq!(a, (0..5).map(|_| r.next_u64()).collect::<Vec<_>>());
    let mut r2 = SmallRng::new(10);
    assert_ne!(a[0], r2.next_u64());
    // below(6): every face appears with roughly 1/6 frequency.
    let mut counts = [0usize; 6];
    let mut r = SmallRng::new(1);
    for _ in 0..60_000 {
        counts[r.below(6) as usize] += 1;
    }
    for c in counts {
        assert!((9_000..11_000).contains(&c), "{counts:?}");
    }
}
