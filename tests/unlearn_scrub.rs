//! SCRUB: the distillation loss against `kl_div` and its zero gradient at the teacher (why the
//! first max step moves a BN-free, decay-free student not at all), the step decay, the min pass
//! as plain fine-tuning when α = 0 and γ = 1, and on the digits fixture a teacher that never
//! changes while the student drifts from it on F more than on R.

mod common;

use common::DigitsFixture;
use gunlearn::data::device_batches::BatchSource;
use gunlearn::data::splits::Splits;
use gunlearn::model::Classifier;
use gunlearn::optim::Sgd;
use gunlearn::unlearn::frozen_teacher;
use gunlearn::unlearn::scrub::{distill_kl, epoch_lr, pass_seeds, scrub, Scrub, DEFAULT_ALPHA};
use gunlearn::unlearn::{UnlearnConfig, UnlearnContext, UnlearnLog, Unlearner};
use tch::{Device, Kind, Reduction, Tensor};

/// Every variable of `model` (parameters and BatchNorm statistics), copied, by name.
fn snapshot(model: &Classifier) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.detach().copy()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

fn context<'a>(
    fixture: &'a DigitsFixture,
    model: &'a Classifier,
    splits: &'a Splits,
    config: &'a UnlearnConfig,
    save_dir: &std::path::Path,
) -> UnlearnContext<'a> {
    UnlearnContext {
        splits,
        ..fixture.context(model, None, config, save_dir)
    }
}

#[test]
fn distill_kl_is_kl_div_and_has_zero_gradient_at_the_teacher() {
    common::pin_threads();
    tch::manual_seed(5);
    let t = 4.0;
    let batch = 8;
    let teacher = Tensor::randn([batch, 10], (Kind::Float, Device::Cpu)) * 3.0;
    let student = Tensor::randn([batch, 10], (Kind::Float, Device::Cpu)) * 3.0;

    // PyTorch's kl_div(log p_s, p_t, sum) · T² / B, as the reference's DistillKL.
    let expected = (&student / t).log_softmax(-1, Kind::Float).kl_div(
        &(&teacher / t).softmax(-1, Kind::Float),
        Reduction::Sum,
        false,
    ) * (t * t / batch as f64);
    let got = distill_kl(&student, &teacher, t);
    assert!(
        max_diff(&got, &expected) < 1e-5,
        "KL {got:?} vs kl_div {expected:?}"
    );

    // ∂KL/∂s = (T/B)·(softmax(s/T) − softmax(t/T)): nonzero away from the teacher…
    let s = student.copy().set_requires_grad(true);
    distill_kl(&s, &teacher, t).backward();
    let analytic = ((&student / t).softmax(-1, Kind::Float)
        - (&teacher / t).softmax(-1, Kind::Float))
        * (t / batch as f64);
    assert!(analytic.abs().max().double_value(&[]) > 1e-3);
    assert!(max_diff(&s.grad(), &analytic) < 1e-6, "gradient at s ≠ t");

    // …and zero at s = t: with no BatchNorm (student and teacher then give the same logits)
    // and no weight decay, the first max step changes nothing.
    let s = teacher.copy().set_requires_grad(true);
    let kl = distill_kl(&s, &teacher, t);
    kl.backward();
    assert!(kl.double_value(&[]).abs() < 1e-6, "KL(t, t) = {kl:?}");
    let grad = s.grad().abs().max().double_value(&[]);
    assert!(grad < 1e-7, "gradient at s = t: {grad}");
}

#[test]
fn lr_decays_after_each_decay_epoch() {
    // SPEC §4b.7: lr = lr₀·rate^{#{d : e > d}}; with decays [3, 5, 9] no decay happens within
    // the first 3 epochs.
    let decays_by_epoch = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3];
    for (e, decays) in (1..=10).zip(decays_by_epoch) {
        let lr = epoch_lr(5e-4, &[3, 5, 9], 0.1, e);
        let expected = 5e-4 * 0.1f64.powi(decays);
        assert!((lr - expected).abs() < 1e-18, "epoch {e}: lr {lr}");
    }
}

#[test]
fn min_pass_with_alpha_0_and_gamma_1_is_plain_fine_tuning() {
    common::pin_threads();
    let fixture = DigitsFixture::new(false);
    let mut splits = fixture.splits.clone();
    splits.retain.truncate(384);
    let (lr, rate, batch_size) = (0.02, 0.1, 128);
    let cfg = UnlearnConfig {
        lr: Some(lr),
        epochs: Some(2),
        batch_size,
        alpha: Some(0.0),
        scrub_gamma: 1.0,
        msteps: 0,
        lr_decay_epochs: vec![1],
        lr_decay_rate: rate,
        seed: 4,
        ..UnlearnConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let model = fixture.fresh_model().model;
    let teacher = frozen_teacher(&model).unwrap();
    let ctx = context(&fixture, &model, &splits, &cfg, dir.path());
    let mut log = UnlearnLog::default();
    scrub(&ctx, &teacher, lr, 2, &mut log).unwrap();

    // The same batches through a hand-written SGD loop on CE (lr × rate after epoch 1).
    let reference = fixture.fresh_model().model;
    let mut opt = Sgd::new(
        reference.vs.trainable_variables(),
        lr,
        cfg.momentum,
        cfg.weight_decay,
    );
    let source = BatchSource::new(&fixture.train_set, Device::Cpu);
    for epoch in 1..=2 {
        opt.lr = if epoch == 1 { lr } else { lr * rate };
        let (_, retain_seed) = pass_seeds(cfg.seed, epoch);
        for batch in source.epoch(
            splits.retain.clone(),
            batch_size,
            true,
            false,
            None,
            retain_seed,
        ) {
            let (logits, _) = reference.forward(&batch.images, true);
            let loss = logits.cross_entropy_for_logits(&batch.labels);
            opt.zero_grad();
            loss.backward();
            opt.step();
        }
    }
    let mut moved = 0.0f64;
    let before = snapshot(&fixture.fresh_model().model);
    for (((name, ours), (_, theirs)), (_, start)) in snapshot(&model)
        .iter()
        .zip(snapshot(&reference))
        .zip(&before)
    {
        let diff = max_diff(ours, &theirs);
        assert!(
            diff < 1e-6,
            "{name}: SCRUB and fine-tuning differ by {diff}"
        );
        moved = moved.max(max_diff(ours, start));
    }
    assert!(moved > 1e-3, "the weights hardly moved ({moved})");
    assert_eq!(log.rows.len(), 2);
    assert!(log.rows.iter().all(|r| r[3].is_nan()), "no max pass ran");
}

#[test]
fn teacher_never_changes_and_the_student_drifts_from_it_on_forget_more_than_on_retain() {
    common::pin_threads();
    // The reference's large-scale lr; only the F batch is smaller, so that each max pass takes
    // several steps on the fixture's few forget samples.
    let lr = Scrub.defaults().0;
    let fixture = DigitsFixture::new(true);
    let cfg = UnlearnConfig {
        epochs: Some(2),
        batch_size: 128,
        forget_batch_size: 32,
        seed: 2,
        ..UnlearnConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let model = fixture.fresh_model().model;
    let original = snapshot(&model);
    let teacher = frozen_teacher(&model).unwrap();
    let ctx = fixture.context(&model, None, &cfg, dir.path());
    let mut log = UnlearnLog::default();
    scrub(&ctx, &teacher, lr, 2, &mut log).unwrap();

    for ((name, now), (_, then)) in snapshot(&teacher).iter().zip(&original) {
        assert!(now.equal(then), "teacher's {name} changed");
    }
    let divergence = |indices: &[usize]| {
        let batch = gunlearn::data::batches::to_tensor(&fixture.train_set, indices);
        tch::no_grad(|| {
            let s = model.forward(&batch.images, false).0;
            let t = teacher.forward(&batch.images, false).0;
            distill_kl(&s, &t, 1.0).double_value(&[])
        })
    };
    let on_forget = divergence(&fixture.splits.forget);
    let on_retain = divergence(&fixture.splits.retain);
    println!(
        "KL(student, teacher): forget {on_forget:.4}, retain {on_retain:.4}; log {:?}",
        log.rows
    );
    assert!(
        on_forget > 2.0 * on_retain,
        "KL on F {on_forget} not well above KL on R {on_retain}"
    );
    // Both epochs start with a max pass (msteps 2), whose loss is −KL ≤ 0.
    assert_eq!(log.rows.len(), 2);
    assert!(log.rows.iter().all(|r| r[3] <= 0.0 && r[4].is_finite()));
    assert_eq!(log.ran["alpha"], serde_json::json!(DEFAULT_ALPHA));
    assert_eq!(log.ran["retain_augmented"], serde_json::json!(false));
    assert_eq!(log.ran["forget_augmented"], serde_json::json!(false));
}
