//! SynFlow scores against hand-computed values on a tiny linear network, and the iterative
//! SynFlow mask on a ResNet-20 (exact final sparsity, masks only shrink, signs untouched).

mod common;

use gunlearn::model::{Arch, Classifier, ModelSpec};
use gunlearn::prune::synflow::{scores, synflow_mask};
use tch::{Device, Kind, Tensor};

/// Pins libtorch's intra-op threads (the test machine's cores are shared).
fn setup_threads() {
    common::pin_threads();
}

#[test]
fn scores_match_hand_computation_on_a_two_layer_net() {
    setup_threads();
    // Linearised net x ↦ |W2| |W1| x on x = (1, 1): R = Σ_i |W2_i| Σ_j |W1_ij|.
    // ∂R/∂W1_ij = |W2_i| → score(W1_ij) = |W2_i|·|W1_ij|; ∂R/∂W2_i = Σ_j |W1_ij| → score(W2_i) = |W2_i|·Σ_j |W1_ij|.
    let w1 = Tensor::from_slice(&[1.0f64, 2.0, 0.5, 3.0, 0.0, 4.0])
        .view([3, 2])
        .set_requires_grad(true);
    let w2 = Tensor::from_slice(&[2.0f64, 0.5, 1.0])
        .view([1, 3])
        .set_requires_grad(true);
    let params = vec![
        ("w1".to_string(), w1.shallow_clone()),
        ("w2".to_string(), w2.shallow_clone()),
    ];
    let s = scores(&params, |x| x.matmul(&w1.tr()).matmul(&w2.tr()), &[1, 2]);
    let s1 = Vec::<f64>::try_from(s[0].1.flatten(0, -1)).unwrap();
    let s2 = Vec::<f64>::try_from(s[1].1.flatten(0, -1)).unwrap();
    // Row sums of |W1|: 3, 3.5, 4.
    assert_eq!(s1, vec![2.0, 4.0, 0.25, 1.5, 0.0, 4.0]);
    assert_eq!(s2, vec![6.0, 1.75, 4.0]);
    // Gradients are cleared afterwards.
    assert_eq!(w1.grad().abs().sum(Kind::Double).double_value(&[]), 0.0);
}

#[test]
fn iterative_synflow_reaches_the_rate_on_resnet20() {
    setup_threads();
    tch::manual_seed(1);
    let spec = ModelSpec {
        arch: Arch::Resnet20,
        num_classes: 4,
        in_channels: 1,
        mean: vec![0.5],
        std: vec![0.25],
    };
    let model = Classifier::new(&spec, Device::Cpu);
    let before: Vec<Tensor> = model
        .conv_weight_names()
        .iter()
        .map(|n| model.var(n).unwrap().copy())
        .collect();
    let half = synflow_mask(&model, 0.5, 10, None, (8, 8)).unwrap();
    let total: i64 = half.masks.values().map(|m| m.numel() as i64).sum();
    let zeros = |m: &gunlearn::model::mask::Mask| -> i64 {
        m.masks
            .values()
            .map(|t| t.eq(0.0).sum(Kind::Int64).int64_value(&[]))
            .sum()
    };
    assert_eq!(zeros(&half), (0.5 * total as f64).round() as i64);
    // Continuing to 90 %: everything pruned at 50 % stays pruned.
    let more = synflow_mask(&model, 0.9, 10, Some(&half), (8, 8)).unwrap();
    assert_eq!(zeros(&more), (0.9 * total as f64).round() as i64);
    for (k, m) in &half.masks {
        let revived = m
            .eq(0.0)
            .logical_and(&more.masks[k].eq(1.0))
            .any()
            .int64_value(&[]);
        assert_eq!(revived, 0, "{k}: a pruned weight was revived");
    }
    // SynFlow avoids layer collapse: no layer loses all its weights at 90 %.
    for (name, pct) in more.sparsity().per_layer {
        assert!(pct < 100.0, "{name} pruned entirely");
    }
    // The model itself (signs included) is untouched.
    for (n, b) in model.conv_weight_names().iter().zip(&before) {
        assert!(model.var(n).unwrap().equal(b), "{n} changed");
    }
}
