//! FF (`fisher_new`, SPEC §4b.1): the variance rules on hand-made Fisher tensors, and what the
//! method does to the digits ResNet-20 (variance bounds, N(0,1) noise around θ0, the class-wise
//! row, pruned weights).

mod common;

use gunlearn::model::mask::Mask;
use gunlearn::model::Classifier;
use gunlearn::unlearn::fisher::{self, FisherForgetting, NoisePlan};
use gunlearn::unlearn::{UnlearnConfig, UnlearnLog, Unlearner};
use tch::{Device, Kind, Tensor};

/// A copy of every trainable parameter (`trainable_variables()` order).
fn snapshot(model: &Classifier) -> Vec<Tensor> {
    model
        .vs
        .trainable_variables()
        .iter()
        .map(|t| t.detach().copy())
        .collect()
}

/// A copy of every BatchNorm running statistic, by name.
fn running_stats(model: &Classifier) -> Vec<(String, Tensor)> {
    let mut stats: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .filter(|(n, _)| n.contains("running_"))
        .map(|(n, t)| (n, t.detach().copy()))
        .collect();
    stats.sort_by(|a, b| a.0.cmp(&b.0));
    stats
}

fn max(t: &Tensor) -> f64 {
    t.max().double_value(&[])
}

fn min(t: &Tensor) -> f64 {
    t.min().double_value(&[])
}

/// Asserts every element of `t` equals `want` to float32 rounding.
fn assert_all_equal(t: &Tensor, want: f64, what: &str) {
    let (lo, hi) = (min(t), max(t));
    let tol = want.abs() * 1e-6;
    assert!(
        (lo - want).abs() <= tol && (hi - want).abs() <= tol,
        "{what}: values in [{lo:e}, {hi:e}], want {want:e}"
    );
}

#[test]
fn a_zero_gradient_gets_alpha_times_the_cap_before_the_x10_rule() {
    let alpha = 3e-7;
    let options = (Kind::Float, Device::Cpu);
    // A conv weight, an fc weight (first dimension C = 10), a BN vector: F̂ = 0 everywhere.
    let conv = Tensor::zeros([8, 4, 3, 3], options);
    let fc = Tensor::zeros([10, 16], options);
    let bn = Tensor::zeros([8], options);
    assert_all_equal(
        &fisher::noise_variance(&conv, alpha, 10),
        alpha * 1e3,
        "conv v",
    );
    assert_all_equal(&fisher::noise_variance(&bn, alpha, 10), alpha * 1e3, "BN v");
    // The last layer is capped at 1e2 before α.
    assert_all_equal(&fisher::noise_variance(&fc, alpha, 10), alpha * 1e2, "fc v");
    // Then ×10 for the last layer and 1-D tensors, not for convs.
    let plan = |t: &Tensor| fisher::noise_plan(t, t, alpha, 10, None).variance;
    assert_all_equal(&plan(&conv), alpha * 1e3, "conv plan");
    assert_all_equal(&plan(&fc), alpha * 1e3, "fc plan");
    assert_all_equal(&plan(&bn), alpha * 1e4, "BN plan");
}

#[test]
fn variance_is_the_dim1_mean_of_the_capped_inverse_fisher() {
    tch::manual_seed(5);
    let alpha = 2e-6;
    // Fisher values spanning both sides of the caps, one exact zero.
    let f = ((Tensor::rand([3, 5, 2], (Kind::Double, Device::Cpu)) * 8.0 - 6.0) * 10f64.ln()).exp();
    let _ = f.get(1).get(2).get(0).fill_(0.0);
    let v = fisher::noise_variance(&f.to_kind(Kind::Float), alpha, 10);
    let values: Vec<f64> = Vec::try_from(f.flatten(0, -1)).unwrap();
    for i in 0..3 {
        for l in 0..2 {
            // Independent: α · mean over j of min(1/(F+1e-8), 1e3), in f64.
            let want = (0..5)
                .map(|j| (1.0 / (values[i * 10 + j * 2 + l] + 1e-8)).min(1e3))
                .sum::<f64>()
                / 5.0
                * alpha;
            for j in 0..5 {
                let got = v.double_value(&[i as i64, j as i64, l as i64]);
                assert!(
                    (got - want).abs() <= 1e-5 * want,
                    "v[{i},{j},{l}] = {got:e}, want {want:e}"
                );
            }
        }
    }
    // A 1-D tensor keeps one value per element (no averaging).
    let b = Tensor::from_slice(&[0.0f32, 1.0, 1e-2]);
    let vb = fisher::noise_variance(&b, 1.0, 10);
    let got: Vec<f32> = Vec::try_from(&vb).unwrap();
    let want = [1e3, 1.0 / (1.0 + 1e-8), 1.0 / (1e-2 + 1e-8)];
    for (g, w) in got.iter().zip(want) {
        assert!((*g as f64 - w).abs() <= 1e-5 * w, "1-D v {got:?}");
    }
}

/// The fixture with R cut to its first 320 samples (10 Fisher batches), to keep the CPU tests
/// short; the Fisher pass itself does not depend on |R|.
fn small_retain(mut fixture: common::DigitsFixture) -> common::DigitsFixture {
    fixture.splits.retain.truncate(320);
    fixture
}

fn plans_for(
    fixture: &common::DigitsFixture,
    model: &Classifier,
    mask: Option<&Mask>,
    config: &UnlearnConfig,
    alpha: f64,
) -> Vec<NoisePlan> {
    let dir = tempfile::tempdir().unwrap();
    let ctx = fixture.context(model, mask, config, dir.path());
    fisher::noise_plans(&ctx, alpha).unwrap()
}

#[test]
fn variance_bounds_and_standard_normal_noise_on_the_digits_model() {
    common::pin_threads();
    let fixture = small_retain(common::DigitsFixture::new(false));
    let ckpt = fixture.fresh_model();
    let model = &ckpt.model;
    let alpha = 1e-6;
    let config = UnlearnConfig {
        alpha: Some(alpha),
        ..UnlearnConfig::default()
    };
    let plans = plans_for(&fixture, model, None, &config, alpha);
    let theta0 = snapshot(model);
    // Per-element variance: ≤ α·1e3 for conv and fc, ≤ α·1e4 for BN γ/β, and positive.
    let mut bn_at_bound = false;
    for (p, plan) in theta0.iter().zip(&plans) {
        let last = p.size()[0] == 10;
        let bound = if p.dim() == 1 && !last {
            alpha * 1e4
        } else {
            alpha * 1e3
        };
        let (lo, hi) = (min(&plan.variance), max(&plan.variance));
        assert!(
            lo > 0.0,
            "shape {:?}: variance {lo:e} not positive",
            p.size()
        );
        assert!(
            hi <= bound * (1.0 + 1e-6),
            "shape {:?}: variance {hi:e} above {bound:e}",
            p.size()
        );
        bn_at_bound |= p.dim() == 1 && !last && hi >= bound * 0.999;
        assert!(plan.mean.equal(p), "random forgetting: the mean is θ0");
    }
    assert!(
        bn_at_bound,
        "some BN element has F̂ ≈ 0 and so the full α·1e4 (the ×10 rule applied)"
    );

    let stats_before = running_stats(model);
    let dir = tempfile::tempdir().unwrap();
    let ctx = fixture.context(model, None, &config, dir.path());
    let mut log = UnlearnLog::default();
    FisherForgetting.run(&ctx, &mut log).unwrap();
    assert_eq!(log.ran["alpha"], serde_json::json!(alpha));
    assert_eq!(log.ran["retain_augmented"], serde_json::json!(true));
    assert_eq!(log.ran["forgotten_row"], serde_json::Value::Null);

    // (θ − θ0)/√v over every trainable entry is N(0,1): ~270 000 draws, so the bounds are
    // many standard errors wide yet far tighter than any wrong scale (×√10 or α vs √α).
    let after = snapshot(model);
    let z: Vec<Tensor> = after
        .iter()
        .zip(&theta0)
        .zip(&plans)
        .map(|((a, b), plan)| ((a - b) / plan.variance.sqrt()).flatten(0, -1))
        .collect();
    let z = Tensor::cat(&z, 0).to_kind(Kind::Double);
    let n = z.numel() as f64;
    let mean = z.mean(Kind::Double).double_value(&[]);
    let std = z.std(true).double_value(&[]);
    let inside = z.abs().lt(1.0).to_kind(Kind::Double).mean(Kind::Double);
    let inside = inside.double_value(&[]);
    println!("{n} draws: mean {mean:.4}, std {std:.4}, P(|z|<1) {inside:.4}");
    assert!(n > 100_000.0);
    assert!(mean.abs() < 0.01, "mean of z {mean}");
    assert!((std - 1.0).abs() < 0.01, "std of z {std}");
    assert!((inside - 0.6827).abs() < 0.006, "P(|z|<1) = {inside}");
    // Every large tensor on its own too (a wrong rule for one layer would show here).
    for (i, zi) in after.iter().zip(&theta0).zip(&plans).enumerate() {
        let ((a, b), plan) = zi;
        if a.numel() >= 2000 {
            let s = ((a - b) / plan.variance.sqrt()).std(true).double_value(&[]);
            assert!((s - 1.0).abs() < 0.1, "parameter {i}: std of z {s}");
        }
    }
    // BatchNorm buffers are not touched.
    for ((name, before), (_, now)) in stats_before.iter().zip(running_stats(model)) {
        assert!(before.equal(&now), "{name} changed");
    }
}

#[test]
fn class_wise_row_gets_mean_zero_and_variance_1e_3_for_any_alpha() {
    common::pin_threads();
    let fixture = small_retain(common::DigitsFixture::new(true));
    assert_eq!(fixture.splits.removed_class, Some(3));
    let ckpt = fixture.fresh_model();
    let model = &ckpt.model;
    let theta0 = snapshot(model);
    for alpha in [1e-8, 1e-5] {
        let config = UnlearnConfig {
            alpha: Some(alpha),
            ..UnlearnConfig::default()
        };
        let plans = plans_for(&fixture, model, None, &config, alpha);
        let mut rows = 0;
        for (p, plan) in theta0.iter().zip(&plans) {
            if p.size()[0] != 10 {
                assert!(plan.mean.equal(p), "only the last layer's row is reset");
                continue;
            }
            rows += 1;
            assert_all_equal(&plan.mean.get(3), 0.0, "row 3 mean");
            assert_all_equal(&plan.variance.get(3), 1e-3, "row 3 variance");
            // The other rows keep θ0 and an α-scaled variance (≤ α·1e3).
            let others = Tensor::cat(&[plan.mean.narrow(0, 0, 3), plan.mean.narrow(0, 4, 6)], 0);
            let theirs = Tensor::cat(&[p.narrow(0, 0, 3), p.narrow(0, 4, 6)], 0);
            assert!(others.equal(&theirs));
            let v_others = Tensor::cat(
                &[plan.variance.narrow(0, 0, 3), plan.variance.narrow(0, 4, 6)],
                0,
            );
            assert!(max(&v_others) <= alpha * 1e3 * (1.0 + 1e-6));
        }
        assert_eq!(rows, 2, "fc weight and fc bias");
    }

    // Through the method: the fc weight's row 3 is fresh N(0, 1e-3) noise, whatever α.
    for alpha in [1e-8, 1e-5] {
        let ckpt = fixture.fresh_model();
        let config = UnlearnConfig {
            alpha: Some(alpha),
            ..UnlearnConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let ctx = fixture.context(&ckpt.model, None, &config, dir.path());
        let mut log = UnlearnLog::default();
        FisherForgetting.run(&ctx, &mut log).unwrap();
        assert_eq!(log.ran["forgotten_row"], serde_json::json!(3));
        let fc = snapshot(&ckpt.model)
            .into_iter()
            .find(|t| t.size() == [10, 64])
            .expect("the fc weight");
        let z = fc.get(3).to_kind(Kind::Double) / 1e-3f64.sqrt();
        let (mean, std) = (
            z.mean(Kind::Double).double_value(&[]),
            z.std(true).double_value(&[]),
        );
        // 64 draws: mean within ~5 standard errors, std within ~3.5 (a 10x wrong scale fails).
        assert!(mean.abs() < 0.6, "α {alpha}: row 3 z mean {mean}");
        assert!((0.7..1.3).contains(&std), "α {alpha}: row 3 z std {std}");
    }
}

#[test]
fn the_reference_rule_fires_only_for_cifar_sizes() {
    let model = common::DigitsFixture::new(true).fresh_model();
    for (class_wise, reference_rule, want) in [
        (true, false, Some(3)),
        (false, false, None),
        // Digits is neither CIFAR-10 with 4 500 nor CIFAR-100 with 450 forgotten samples.
        (true, true, None),
        (false, true, None),
    ] {
        let fixture = common::DigitsFixture::new(class_wise);
        let config = UnlearnConfig {
            fisher_reference_rule: reference_rule,
            ..UnlearnConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let ctx = fixture.context(&model.model, None, &config, dir.path());
        assert_eq!(
            fisher::forgotten_row(&ctx),
            want,
            "class-wise {class_wise}, reference rule {reference_rule}"
        );
    }
}

#[test]
fn pruned_entries_get_zero_fisher_and_stay_zero() {
    common::pin_threads();
    let fixture = small_retain(common::DigitsFixture::new(false));
    let ckpt = fixture.fresh_model();
    let model = &ckpt.model;
    let mask = Mask::global_magnitude(model, 0.5, None);
    mask.apply_to_weights(&model.vs);
    let vars = model.vs.variables();

    // F̂ is exactly 0 at pruned entries (the reference's `weight_orig` gradient is 0 there).
    let params = fisher::parameters_with_masks(model, Some(&mask));
    assert_eq!(
        params.iter().filter(|(_, m)| m.is_some()).count(),
        mask.masks.len(),
        "every conv weight found its mask"
    );
    let batches = gunlearn::data::device_batches::BatchSource::new(&fixture.train_set, Device::Cpu)
        .epoch(fixture.splits.retain.clone(), 32, false, false, None, 0)
        .take(3);
    let fim = fisher::diagonal_fisher(model, &params, batches, Device::Cpu).unwrap();
    for ((_, m), f) in params.iter().zip(&fim) {
        if let Some(m) = m {
            let pruned = f.masked_select(&m.eq(0.0));
            assert_eq!(max(&pruned.abs()), 0.0, "F̂ nonzero at a pruned entry");
            assert!(max(&f.masked_select(&m.eq(1.0))) > 0.0);
        }
    }

    let kept_before: Vec<Tensor> = mask
        .masks
        .iter()
        .map(|(n, m)| vars[n].masked_select(&m.eq(1.0)))
        .collect();
    let config = UnlearnConfig {
        alpha: Some(1e-6),
        ..UnlearnConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let ctx = fixture.context(model, Some(&mask), &config, dir.path());
    FisherForgetting
        .run(&ctx, &mut UnlearnLog::default())
        .unwrap();
    for ((name, m), before) in mask.masks.iter().zip(kept_before) {
        let w = &vars[name];
        let alive = w.masked_select(&m.eq(0.0)).ne(0.0).any().int64_value(&[]);
        assert_eq!(alive, 0, "{name}: a pruned weight is nonzero");
        let after = w.masked_select(&m.eq(1.0));
        assert!(!after.equal(&before), "{name}: kept weights did not move");
    }
}
