//! Global pruning picks exactly the expected weights: magnitude (OMP, IMP rounds), random, and
//! arbitrary scores, on conv weights set to a known arrangement of magnitudes.

mod common;

use gunlearn::model::mask::Mask;
use gunlearn::model::{Arch, Classifier, ModelSpec};
use gunlearn::prune::{prune_round, PruneMethod};
use tch::{Device, Kind, Tensor};

/// Pins libtorch's intra-op threads (the test machine's cores are shared).
fn setup_threads() {
    common::pin_threads();
}

fn tiny() -> Classifier {
    let spec = ModelSpec {
        arch: Arch::Resnet20,
        num_classes: 3,
        in_channels: 1,
        mean: vec![0.5],
        std: vec![0.25],
    };
    Classifier::new(&spec, Device::Cpu)
}

/// A tiny xorshift, so that the known arrangement does not depend on libtorch's generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Sets the conv weights to ±(rank + 1)·1e-4 for a shuffled rank of every weight, and returns
/// each weight's rank in the global order (layer order, then row-major).
fn set_known_weights(model: &Classifier) -> Vec<usize> {
    let vars = model.vs.variables();
    let names = model.conv_weight_names();
    let n: usize = names.iter().map(|n| vars[n].numel()).sum();
    let mut ranks: Vec<usize> = (0..n).collect();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for i in (1..n).rev() {
        ranks.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let mut off = 0;
    tch::no_grad(|| {
        for name in &names {
            let w = &vars[name];
            let len = w.numel();
            let vals: Vec<f32> = (0..len)
                .map(|i| {
                    let sign = if rng.next().is_multiple_of(2) {
                        1.0
                    } else {
                        -1.0
                    };
                    sign * (ranks[off + i] as f32 + 1.0) * 1e-4
                })
                .collect();
            w.shallow_clone()
                .copy_(&Tensor::from_slice(&vals).view(w.size().as_slice()));
            off += len;
        }
    });
    ranks
}

fn flat_mask(model: &Classifier, mask: &Mask) -> Vec<f32> {
    let mut out = Vec::new();
    for name in model.conv_weight_names() {
        out.extend(Vec::<f32>::try_from(mask.masks[&name].flatten(0, -1)).unwrap());
    }
    out
}

#[test]
fn global_magnitude_prunes_exactly_the_smallest_weights_at_50_and_95_percent() {
    setup_threads();
    let model = tiny();
    let ranks = set_known_weights(&model);
    let n = ranks.len();
    for rate in [0.5, 0.95] {
        let k = (rate * n as f64).round() as usize;
        for mask in [
            Mask::global_magnitude(&model, rate, None),
            prune_round(&model, PruneMethod::Omp, rate, 1, None, (8, 8), 1).unwrap(),
        ] {
            let flat = flat_mask(&model, &mask);
            for (i, (&r, &m)) in ranks.iter().zip(&flat).enumerate() {
                assert_eq!(
                    m == 0.0,
                    r < k,
                    "rate {rate}: weight {i} of rank {r} (k = {k})"
                );
            }
            assert!((mask.sparsity().overall - 100.0 * k as f64 / n as f64).abs() < 1e-9);
        }
    }
}

#[test]
fn imp_rounds_prune_twenty_percent_of_the_remaining_weights() {
    setup_threads();
    let model = tiny();
    let ranks = set_known_weights(&model);
    let n = ranks.len();
    let r1 = prune_round(&model, PruneMethod::Imp, 0.2, 1, None, (8, 8), 1).unwrap();
    r1.apply_to_weights(&model.vs);
    let r2 = prune_round(&model, PruneMethod::Imp, 0.2, 2, Some(&r1), (8, 8), 1).unwrap();
    let k2 = (0.36 * n as f64).round() as usize;
    let (f1, f2) = (flat_mask(&model, &r1), flat_mask(&model, &r2));
    for i in 0..n {
        assert_eq!(f2[i] == 0.0, ranks[i] < k2, "round 2, weight {i}");
        assert!(f1[i] == 1.0 || f2[i] == 0.0, "a pruned weight was revived");
    }
}

#[test]
fn pruned_weights_stay_pruned_even_if_large() {
    setup_threads();
    // Scores where the already-pruned entries are the largest: they are still chosen first.
    let scores = vec![(
        "a".to_string(),
        Tensor::from_slice(&[5.0f64, 1.0, 2.0, 3.0]),
    )];
    let current = Mask {
        masks: [(
            "a".to_string(),
            Tensor::from_slice(&[0.0f32, 1.0, 1.0, 1.0]),
        )]
        .into(),
    };
    let m = Mask::global_from_scores(&scores, 0.5, Some(&current));
    assert_eq!(
        Vec::<f32>::try_from(&m.masks["a"]).unwrap(),
        vec![0.0, 0.0, 1.0, 1.0]
    );
    // A rate below the current sparsity prunes nothing new and revives nothing (masks only
    // shrink): both entries of `current2` stay pruned at rate 0.25.
    let current2 = Mask {
        masks: [(
            "a".to_string(),
            Tensor::from_slice(&[0.0f32, 1.0, 0.0, 1.0]),
        )]
        .into(),
    };
    let m = Mask::global_from_scores(&scores, 0.25, Some(&current2));
    assert_eq!(
        Vec::<f32>::try_from(&m.masks["a"]).unwrap(),
        vec![0.0, 1.0, 0.0, 1.0]
    );
    // Ties by position: the earlier one goes first, across layers.
    let scores = vec![
        ("a".to_string(), Tensor::from_slice(&[1.0f64, 2.0])),
        ("b".to_string(), Tensor::from_slice(&[1.0f64, 0.5])),
    ];
    let m = Mask::global_from_scores(&scores, 0.5, None);
    assert_eq!(Vec::<f32>::try_from(&m.masks["a"]).unwrap(), vec![0.0, 1.0]);
    assert_eq!(Vec::<f32>::try_from(&m.masks["b"]).unwrap(), vec![1.0, 0.0]);
}

#[test]
fn random_pruning_hits_the_rate_and_is_not_magnitude() {
    setup_threads();
    let model = tiny();
    set_known_weights(&model);
    tch::manual_seed(5);
    let m = prune_round(&model, PruneMethod::Random, 0.5, 1, None, (8, 8), 1).unwrap();
    let n: i64 = m.masks.values().map(|t| t.numel() as i64).sum();
    let zeros: i64 = m
        .masks
        .values()
        .map(|t| t.eq(0.0).sum(Kind::Int64).int64_value(&[]))
        .sum();
    assert_eq!(zeros, (0.5 * n as f64).round() as i64);
    let mag = Mask::global_magnitude(&model, 0.5, None);
    let same = m.masks.iter().all(|(k, t)| t.equal(&mag.masks[k]));
    assert!(!same, "random pruning reproduced magnitude pruning");
    // Every layer loses roughly half (uniform over all weights), not one layer entirely.
    for (name, pct) in m.sparsity().per_layer {
        assert!((20.0..80.0).contains(&pct), "{name}: {pct}% pruned");
    }
}
