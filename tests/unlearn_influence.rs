//! IU (`wfisher`, SPEC §4b.2): the WoodFisher pass on hand-made vectors (the span{v, g₀} quirk,
//! |R| = 1, the closed form for two samples, the 1 002-sample stop), summed per-sample gradients
//! against a sample-by-sample computation, and what the method does to the digits ResNet-20.

mod common;

use gunlearn::data::device_batches::BatchSource;
use gunlearn::model::mask::Mask;
use gunlearn::model::Classifier;
use gunlearn::unlearn::influence::{self, InfluenceUnlearning, WOODFISHER_N};
use gunlearn::unlearn::{UnlearnConfig, UnlearnLog, Unlearner};
use tch::{Device, Kind, Reduction, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn norm(t: &Tensor) -> f64 {
    t.norm().double_value(&[])
}

/// Every trainable parameter as one flat vector (`trainable_variables()` order).
fn flat_parameters(model: &Classifier) -> Tensor {
    let parts: Vec<Tensor> = model
        .vs
        .trainable_variables()
        .iter()
        .map(|t| t.detach().flatten(0, -1))
        .collect();
    Tensor::cat(&parts, 0)
}

/// ‖k − proj_{span{a, b}} k‖, by the 2×2 normal equations in f64.
fn residual_off_span(k: &Tensor, a: &Tensor, b: &Tensor) -> f64 {
    let d = |x: &Tensor, y: &Tensor| x.dot(y).double_value(&[]);
    let (aa, ab, bb, ka, kb) = (d(a, a), d(a, b), d(b, b), d(k, a), d(k, b));
    let det = aa * bb - ab * ab;
    let x = (ka * bb - kb * ab) / det;
    let y = (kb * aa - ka * ab) / det;
    norm(&(k - a * x - b * y))
}

fn samples(gs: &[Tensor]) -> Vec<anyhow::Result<Tensor>> {
    gs.iter().map(|g| Ok(g.shallow_clone())).collect()
}

#[test]
fn the_step_lies_in_the_span_of_v_and_the_first_gradient() {
    tch::manual_seed(11);
    let v = Tensor::randn([40], F64);
    // Gradients large enough that o·g is comparable to N = 1000: k really moves.
    let gs: Vec<Tensor> = (0..30).map(|_| Tensor::randn([40], F64) * 5.0).collect();
    let (k, used) = influence::woodfisher(&v, samples(&gs)).unwrap();
    assert_eq!(used, 30);
    let off_span = residual_off_span(&k, &v, &gs[0]);
    assert!(
        off_span <= 1e-10 * norm(&k),
        "k leaves span{{v, g0}}: {off_span:e}"
    );
    // Not trivially: k is neither v nor along v alone, and not in span{v, g1}.
    let along_v = &v * (k.dot(&v) / v.dot(&v));
    assert!(
        norm(&(&k - &along_v)) > 1e-2 * norm(&k),
        "k is parallel to v"
    );
    assert!(residual_off_span(&k, &v, &gs[1]) > 1e-2 * norm(&k));
}

#[test]
fn one_retain_sample_leaves_v_unchanged() {
    tch::manual_seed(12);
    let v = Tensor::randn([25], F64);
    let g0 = Tensor::randn([25], F64) * 100.0;
    let (k, used) = influence::woodfisher(&v, samples(&[g0])).unwrap();
    assert_eq!(used, 1);
    assert!(k.equal(&v), "with |R| = 1 the direction is v itself");
}

#[test]
fn two_samples_match_the_closed_form() {
    tch::manual_seed(13);
    let v = Tensor::randn([30], F64);
    let g0 = Tensor::randn([30], F64) * 4.0;
    let g1 = Tensor::randn([30], F64) * 4.0;
    let (k, _) =
        influence::woodfisher(&v, samples(&[g0.shallow_clone(), g1.shallow_clone()])).unwrap();
    // k = v − (v·g1)/(N + g0·g1) · g0.
    let want = &v - &g0 * (v.dot(&g1) / (g0.dot(&g1) + WOODFISHER_N));
    assert!(norm(&(&k - &want)) <= 1e-12 * norm(&want));
    assert!(
        norm(&(&k - &v)) > 1e-3 * norm(&v),
        "the second sample changes k"
    );
}

#[test]
fn the_pass_stops_after_1002_samples() {
    tch::manual_seed(14);
    let v = Tensor::randn([8], F64);
    let gs: Vec<Tensor> = (0..1500).map(|_| Tensor::randn([8], F64) * 3.0).collect();
    let (all, used) = influence::woodfisher(&v, samples(&gs)).unwrap();
    assert_eq!(used, 1002);
    let (first_1002, _) = influence::woodfisher(&v, samples(&gs[..1002])).unwrap();
    let (first_1001, _) = influence::woodfisher(&v, samples(&gs[..1001])).unwrap();
    let (first_1003, _) = influence::woodfisher(&v, samples(&gs[..1003])).unwrap();
    assert!(all.equal(&first_1002));
    assert!(all.equal(&first_1003), "sample 1003 is never read");
    assert!(!all.equal(&first_1001), "sample 1002 (index 1001) is used");
}

#[test]
fn v_is_the_weighted_difference_of_mean_gradients() {
    tch::manual_seed(15);
    let (gf, gr) = (Tensor::randn([12], F64), Tensor::randn([12], F64));
    let (nf, nr) = (7usize, 53usize);
    let v = influence::unlearning_direction(&gf, nf, &gr, nr);
    // (n_F/n)(ḡ_F − ḡ_R).
    let want = (&gf / nf as f64 - &gr / nr as f64) * (nf as f64 / (nf + nr) as f64);
    assert!(norm(&(&v - &want)) <= 1e-12 * norm(&want));
}

#[test]
fn summed_gradient_is_the_sum_of_per_sample_gradients() {
    common::pin_threads();
    let fixture = common::DigitsFixture::new(false);
    let ckpt = fixture.fresh_model();
    let model = &ckpt.model;
    let params = gunlearn::unlearn::fisher::parameters_with_masks(model, None);
    let indices: Vec<usize> = fixture.splits.retain[..10].to_vec();
    let batches = BatchSource::new(&fixture.train_set, Device::Cpu).epoch(
        indices.clone(),
        4,
        false,
        false,
        None,
        0,
    );
    let (sum, n) = influence::summed_gradient(model, &params, batches, Device::Cpu);
    assert_eq!(n, 10);

    // Independently: one eval-mode backward per sample through `.backward()` and `.grad()`.
    let mut want = Tensor::zeros_like(&sum);
    let singles =
        BatchSource::new(&fixture.train_set, Device::Cpu).epoch(indices, 1, false, false, None, 0);
    for b in singles {
        for p in model.vs.trainable_variables().iter_mut() {
            p.zero_grad();
        }
        let (logits, _) = model.forward(&b.images, false);
        logits
            .cross_entropy_loss::<Tensor>(&b.labels, None, Reduction::Mean, -100, 0.0)
            .backward();
        let grads: Vec<Tensor> = model
            .vs
            .trainable_variables()
            .iter()
            .map(|p| p.grad().flatten(0, -1))
            .collect();
        want += Tensor::cat(&grads, 0);
    }
    let diff = norm(&(&sum - &want));
    println!("‖Σ‖ {:.4e}, ‖diff‖ {diff:.3e}", norm(&want));
    assert!(norm(&want) > 0.0);
    assert!(diff <= 1e-4 * norm(&want), "‖diff‖ {diff:e}");
}

/// The fixture with F cut to 64 and R to 300 samples, to keep the CPU tests short (the
/// WoodFisher pass then reads all of R; its 1 002-sample stop is tested above).
fn small_sets(mut fixture: common::DigitsFixture) -> common::DigitsFixture {
    fixture.splits.forget.truncate(64);
    fixture.splits.retain.truncate(300);
    fixture
}

#[test]
fn the_model_moves_by_alpha_times_k() {
    common::pin_threads();
    let fixture = small_sets(common::DigitsFixture::new(false));
    let alpha = 2.0;
    let config = UnlearnConfig {
        alpha: Some(alpha),
        batch_size: 128,
        ..UnlearnConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();

    let reference = fixture.fresh_model();
    let ctx = fixture.context(&reference.model, None, &config, dir.path());
    let step = influence::influence_step(&ctx).unwrap();
    assert_eq!(step.forget_samples, fixture.splits.forget.len());
    assert_eq!(step.retain_samples, fixture.splits.retain.len());
    assert_eq!(
        step.woodfisher_samples,
        1002.min(fixture.splits.retain.len())
    );
    assert!(norm(&step.k) > 0.0);
    assert!(
        norm(&(&step.k - &step.v)) > 1e-3 * norm(&step.v),
        "WoodFisher changed v"
    );

    let ckpt = fixture.fresh_model();
    let theta0 = flat_parameters(&ckpt.model);
    let ctx = fixture.context(&ckpt.model, None, &config, dir.path());
    let mut log = UnlearnLog::default();
    InfluenceUnlearning.run(&ctx, &mut log).unwrap();
    assert_eq!(log.ran["alpha"], serde_json::json!(alpha));
    assert_eq!(log.ran["forget_augmented"], serde_json::json!(false));
    assert_eq!(log.ran["retain_augmented"], serde_json::json!(true));
    let delta = flat_parameters(&ckpt.model) - theta0;
    let want = &step.k * alpha;
    let diff = norm(&(&delta - &want));
    println!("‖α·k‖ {:.4e}, ‖Δθ − α·k‖ {diff:.3e}", norm(&want));
    assert!(diff <= 1e-4 * norm(&want), "‖Δθ − α·k‖ = {diff:e}");
}

#[test]
fn pruned_entries_get_no_step_and_stay_zero() {
    common::pin_threads();
    let fixture = small_sets(common::DigitsFixture::new(true));
    let ckpt = fixture.fresh_model();
    let model = &ckpt.model;
    let mask = Mask::global_magnitude(model, 0.5, None);
    mask.apply_to_weights(&model.vs);
    let vars = model.vs.variables();
    let kept_before: Vec<Tensor> = mask
        .masks
        .iter()
        .map(|(n, m)| vars[n].masked_select(&m.eq(1.0)))
        .collect();
    let config = UnlearnConfig {
        alpha: Some(1.0),
        batch_size: 128,
        ..UnlearnConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let ctx = fixture.context(model, Some(&mask), &config, dir.path());
    // The direction itself is 0 at pruned entries (their gradients are masked), not only the
    // weights after the mask is re-applied.
    let step = influence::influence_step(&ctx).unwrap();
    let flat_mask: Vec<Tensor> =
        gunlearn::unlearn::fisher::parameters_with_masks(model, Some(&mask))
            .into_iter()
            .map(|(p, m)| m.unwrap_or_else(|| p.ones_like()).flatten(0, -1))
            .collect();
    let flat_mask = Tensor::cat(&flat_mask, 0);
    let pruned_k = step.k.masked_select(&flat_mask.eq(0.0));
    assert!(pruned_k.numel() > 0);
    assert_eq!(
        pruned_k.abs().max().double_value(&[]),
        0.0,
        "k nonzero at a pruned entry"
    );
    assert!(norm(&step.k) > 0.0);
    let mut log = UnlearnLog::default();
    InfluenceUnlearning.run(&ctx, &mut log).unwrap();
    assert_eq!(
        log.ran["forget_augmented"],
        serde_json::json!(true),
        "class-wise"
    );
    for ((name, m), before) in mask.masks.iter().zip(kept_before) {
        let w = &vars[name];
        let alive = w.masked_select(&m.eq(0.0)).ne(0.0).any().int64_value(&[]);
        assert_eq!(alive, 0, "{name}: a pruned weight is nonzero");
        assert!(
            !w.masked_select(&m.eq(1.0)).equal(&before),
            "{name}: kept weights did not move"
        );
    }
}
