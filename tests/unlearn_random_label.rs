//! RL (random labelling) through the library on the digits fixture: the labels it trains the
//! forget set on (uniform over every class, the true one included), the two layouts of an epoch,
//! and its effect: the forget loss on the true labels rises while retain accuracy holds.

mod common;

use common::DigitsFixture;
use gunlearn::data::batches::to_tensor;
use gunlearn::data::DatasetName;
use gunlearn::eval::outputs::accuracy;
use gunlearn::model::Classifier;
use gunlearn::optim::Sgd;
use gunlearn::unlearn::random_label::{
    random_labels, run_rl, Layout, RandomLabel, StepHook, StepInfo, Stream,
};
use gunlearn::unlearn::{UnlearnConfig, UnlearnContext, UnlearnLog, Unlearner};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

fn config(lr: f64, epochs: usize) -> UnlearnConfig {
    UnlearnConfig {
        lr: Some(lr),
        epochs: Some(epochs),
        batch_size: 64,
        seed: 2,
        ..UnlearnConfig::default()
    }
}

/// Pearson's χ² statistic of `counts` against the uniform distribution over its cells.
fn chi_square(counts: &[usize]) -> f64 {
    let n: usize = counts.iter().sum();
    let expected = n as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// A bound that a χ² statistic with `df` degrees of freedom exceeds with probability < 1e-4
/// (Wilson–Hilferty: χ² ≈ df·(1 − 2/(9df) + z·√(2/(9df)))³, z = 3.72 for 1e-4).
fn chi_square_bound(df: usize) -> f64 {
    let k = 2.0 / (9.0 * df as f64);
    df as f64 * (1.0 - k + 3.72 * k.sqrt()).powi(3)
}

fn class_counts(labels: &[i64], classes: usize) -> Vec<usize> {
    let mut counts = vec![0; classes];
    for &y in labels {
        assert!(
            (0..classes as i64).contains(&y),
            "label {y} out of 0..{classes}"
        );
        counts[y as usize] += 1;
    }
    counts
}

#[test]
fn drawn_labels_are_uniform_over_every_class_and_hit_the_true_label_one_time_in_c() {
    common::pin_threads();
    tch::manual_seed(11);
    let n = 100_000;
    for classes in [3usize, 10, 100] {
        let labels = Vec::<i64>::try_from(random_labels(n, classes)).unwrap();
        assert_eq!(labels.len(), n);
        let counts = class_counts(&labels, classes);
        let chi2 = chi_square(&counts);
        let bound = chi_square_bound(classes - 1);
        assert!(
            chi2 < bound,
            "C = {classes}: χ² {chi2:.1} ≥ {bound:.1}, counts {counts:?}"
        );
        // Any fixed "true" labels are hit with probability 1/C: the drawing never avoids them.
        let hits = labels
            .iter()
            .enumerate()
            .filter(|&(i, &y)| y == (i * 7 % classes) as i64)
            .count();
        let p = 1.0 / classes as f64;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (hits as f64 - n as f64 * p).abs() < 5.0 * sd,
            "C = {classes}: {hits} of {n} drawn labels equal the true one, expected ≈ {}",
            n as f64 * p
        );
    }
}

/// One step as the hook saw it.
struct Recorded {
    epoch: usize,
    stream: Stream,
    indices: Vec<usize>,
    labels: Vec<i64>,
    forget: Vec<bool>,
    images: Tensor,
}

/// What each step trained on.
#[derive(Default)]
struct Recorder {
    steps: Vec<Recorded>,
    epochs_started: Vec<usize>,
}

impl StepHook for Recorder {
    fn start_epoch(&mut self, _ctx: &UnlearnContext, epoch: usize) -> anyhow::Result<()> {
        self.epochs_started.push(epoch);
        Ok(())
    }
    fn before_step(&mut self, _ctx: &UnlearnContext, step: &StepInfo) -> anyhow::Result<()> {
        let labels = Vec::<i64>::try_from(&step.batch.labels).unwrap();
        self.steps.push(Recorded {
            epoch: step.epoch,
            stream: step.stream,
            indices: step.batch.indices.clone(),
            labels,
            forget: step.forget.to_vec(),
            images: step.batch.images.copy(),
        });
        Ok(())
    }
    fn after_step(
        &mut self,
        _ctx: &UnlearnContext,
        _opt: &mut Sgd,
        _step: &StepInfo,
    ) -> anyhow::Result<()> {
        Ok(())
    }
}

fn sorted(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v
}

#[test]
fn separate_layout_trains_forget_batches_on_random_labels_then_retain_batches_on_true_ones() {
    common::pin_threads();
    let fixture = DigitsFixture::new(false);
    let model = fixture.fresh_model().model;
    let cfg = config(0.01, 2);
    let dir = tempfile::tempdir().unwrap();
    let ctx = fixture.context(&model, None, &cfg, dir.path());
    let mut log = UnlearnLog::default();
    let mut rec = Recorder::default();
    tch::manual_seed(5);
    run_rl(&ctx, &mut log, 0.01, 2, Layout::Separate, &mut rec).unwrap();
    assert_eq!(rec.epochs_started, vec![0, 1]);

    let (forget, retain) = (&fixture.splits.forget, &fixture.splits.retain);
    let true_labels = &fixture.train_set.labels;
    let mut drawn = Vec::new();
    let mut hits = 0;
    for epoch in 0..2 {
        let steps: Vec<_> = rec.steps.iter().filter(|s| s.epoch == epoch).collect();
        let streams: Vec<Stream> = steps.iter().map(|s| s.stream).collect();
        let n_forget = forget.len().div_ceil(64);
        let n_retain = retain.len().div_ceil(64);
        assert_eq!(
            streams,
            [
                vec![Stream::Forget; n_forget],
                vec![Stream::Retain; n_retain]
            ]
            .concat(),
            "epoch {epoch}: one full pass over F, then one over R"
        );
        let seen = |stream| {
            sorted(
                steps
                    .iter()
                    .filter(|s| s.stream == stream)
                    .flat_map(|s| s.indices.clone())
                    .collect(),
            )
        };
        assert_eq!(seen(Stream::Forget), sorted(forget.clone()));
        assert_eq!(seen(Stream::Retain), sorted(retain.clone()));
        for step in &steps {
            let stream = step.stream;
            assert!(step.forget.iter().all(|&f| f == (stream == Stream::Forget)));
            for (&i, &y) in step.indices.iter().zip(&step.labels) {
                if stream == Stream::Retain {
                    assert_eq!(y, true_labels[i], "retain sample {i} trained on label {y}");
                } else {
                    drawn.push(y);
                    hits += (y == true_labels[i]) as usize;
                }
            }
        }
    }
    let classes = fixture.ds.num_classes;
    let counts = class_counts(&drawn, classes);
    let chi2 = chi_square(&counts);
    assert!(
        chi2 < chi_square_bound(classes - 1),
        "forget labels are not uniform: χ² {chi2:.1}, counts {counts:?}"
    );
    // About 1/C of the drawn labels are the true one: not excluded, not kept.
    let n = drawn.len() as f64;
    let p = 1.0 / classes as f64;
    let sd = (n * p * (1.0 - p)).sqrt();
    assert!(
        (hits as f64 - n * p).abs() < 5.0 * sd,
        "{hits} of {n} forget labels equal the true one, expected ≈ {}",
        n * p
    );
    // Two draws of the same sample in different epochs are independent.
    let first: BTreeMap<usize, i64> = rec
        .steps
        .iter()
        .filter(|s| s.epoch == 0 && s.stream == Stream::Forget)
        .flat_map(|s| s.indices.iter().copied().zip(s.labels.iter().copied()))
        .collect();
    let second: BTreeMap<usize, i64> = rec
        .steps
        .iter()
        .filter(|s| s.epoch == 1 && s.stream == Stream::Forget)
        .flat_map(|s| s.indices.iter().copied().zip(s.labels.iter().copied()))
        .collect();
    let same = first.iter().filter(|(i, y)| second[*i] == **y).count();
    assert!(
        same < first.len() / 2,
        "{same} of {} forget samples got the same label twice",
        first.len()
    );
}

#[test]
fn cifar100_layout_relabels_forget_once_per_epoch_and_mixes_it_with_retain() {
    common::pin_threads();
    let mut fixture = DigitsFixture::new(false);
    // The same images under CIFAR-100's name: RL takes the reference's CIFAR-100 branch.
    fixture.ds.name = DatasetName::Cifar100;
    assert_eq!(Layout::for_rl(fixture.ds.name), Layout::Concatenated);
    let model = fixture.fresh_model().model;
    let cfg = config(0.01, 1);
    let dir = tempfile::tempdir().unwrap();
    let ctx = fixture.context(&model, None, &cfg, dir.path());
    // Random forgetting: the forget stream is not augmented, the retain stream is.
    assert!(!ctx.forget_augmented());
    let mut log = UnlearnLog::default();
    let mut rec = Recorder::default();
    run_rl(&ctx, &mut log, 0.01, 1, Layout::Concatenated, &mut rec).unwrap();

    let (forget, retain) = (&fixture.splits.forget, &fixture.splits.retain);
    let all = sorted(forget.iter().chain(retain).copied().collect());
    assert_eq!(
        rec.steps.len(),
        all.len().div_ceil(64),
        "one loader over F ∪ R"
    );
    let seen = sorted(rec.steps.iter().flat_map(|s| s.indices.clone()).collect());
    assert_eq!(seen, all, "every sample once per epoch");
    let mixed_batches = rec
        .steps
        .iter()
        .filter(|s| s.forget.iter().any(|&f| f) && s.forget.iter().any(|&f| !f))
        .count();
    assert!(
        mixed_batches > 0,
        "no batch mixes forget and retain samples"
    );
    let (mut hits, mut drawn, mut retain_augmented) = (0, 0, 0);
    for Recorded {
        stream,
        indices,
        labels,
        forget: flags,
        images,
        ..
    } in &rec.steps
    {
        assert_eq!(*stream, Stream::Mixed);
        let plain = to_tensor(&fixture.train_set, indices).images;
        for (row, ((&i, &y), &is_forget)) in indices.iter().zip(labels).zip(flags).enumerate() {
            assert_eq!(is_forget, forget.contains(&i));
            let unchanged = images.get(row as i64).equal(&plain.get(row as i64));
            if is_forget {
                assert!(unchanged, "forget sample {i} was augmented");
                drawn += 1;
                hits += (y == fixture.train_set.labels[i]) as usize;
                assert!((0..fixture.ds.num_classes as i64).contains(&y));
            } else {
                assert_eq!(y, fixture.train_set.labels[i], "retain sample {i}");
                retain_augmented += (!unchanged) as usize;
            }
        }
    }
    assert_eq!(drawn, forget.len());
    assert!(hits < drawn, "every forget sample kept its true label");
    assert!(
        retain_augmented > retain.len() / 2,
        "only {retain_augmented} of {} retain samples were augmented",
        retain.len()
    );
    assert_eq!(log.ran["mode"], "concatenated");
    assert_eq!(log.ran["forget_augmented"], false);
    assert_eq!(log.ran["retain_augmented"], true);
}

#[test]
fn rl_is_separate_everywhere_but_cifar100() {
    for name in [
        DatasetName::Digits,
        DatasetName::Mnist,
        DatasetName::FashionMnist,
        DatasetName::Cifar10,
        DatasetName::Svhn,
        DatasetName::PngFolder,
        DatasetName::ImageFolder,
    ] {
        assert_eq!(Layout::for_rl(name), Layout::Separate, "{name:?}");
    }
    assert_eq!(Layout::for_rl(DatasetName::Cifar100), Layout::Concatenated);
}

/// Mean cross-entropy of `model` (eval mode) on `indices` against their true labels.
fn true_label_loss(fixture: &DigitsFixture, model: &Classifier, indices: &[usize]) -> f64 {
    let batch = to_tensor(&fixture.train_set, indices);
    let (logits, _) = tch::no_grad(|| model.forward(&batch.images, false));
    logits
        .cross_entropy_for_logits(&batch.labels)
        .to_kind(Kind::Double)
        .double_value(&[])
}

#[test]
fn rl_raises_the_forget_loss_on_true_labels_while_retain_accuracy_holds() {
    common::pin_threads();
    let fixture = DigitsFixture::new(true);
    let model = fixture.fresh_model().model;
    let (forget, retain) = (&fixture.splits.forget, &fixture.splits.retain);
    let loss_before = true_label_loss(&fixture, &model, forget);
    let retain_before = accuracy(&model, &fixture.train_set, retain, 256, Device::Cpu);
    let bn_before = model.var("bn1.running_mean").unwrap().copy();

    let cfg = config(0.01, 2);
    let dir = tempfile::tempdir().unwrap();
    let ctx = fixture.context(&model, None, &cfg, dir.path());
    let mut log = UnlearnLog::default();
    RandomLabel.run(&ctx, &mut log).unwrap();

    let loss_after = true_label_loss(&fixture, &model, forget);
    let retain_after = accuracy(&model, &fixture.train_set, retain, 256, Device::Cpu);
    let forget_after = accuracy(&model, &fixture.train_set, forget, 256, Device::Cpu);
    println!(
        "forget CE {loss_before:.3} → {loss_after:.3}, forget acc {forget_after:.1}%, \
         retain acc {retain_before:.1}% → {retain_after:.1}%"
    );
    assert!(
        loss_after > 2.0 * loss_before && loss_after > loss_before + 0.5,
        "forget loss on true labels {loss_before:.3} → {loss_after:.3}"
    );
    assert!(
        retain_after >= retain_before - 10.0,
        "retain accuracy {retain_before:.1}% → {retain_after:.1}%"
    );
    // Train mode throughout: the BatchNorm statistics moved.
    assert!(!model.var("bn1.running_mean").unwrap().equal(&bn_before));

    // The log: one row per epoch, cumulative iterations, the forget loss (random labels) far
    // above the retain loss (true labels).
    assert_eq!(
        log.columns,
        [
            "iteration",
            "epoch",
            "forget_loss",
            "retain_loss",
            "lr",
            "seconds"
        ]
    );
    assert_eq!(log.rows.len(), 2);
    let per_epoch = forget.len().div_ceil(64) + retain.len().div_ceil(64);
    for (e, row) in log.rows.iter().enumerate() {
        assert_eq!(row[0], ((e + 1) * per_epoch) as f64);
        assert_eq!(row[1], (e + 1) as f64);
        assert!(
            row[2] > row[3],
            "epoch {}: forget loss {} ≤ retain loss {}",
            e + 1,
            row[2],
            row[3]
        );
        assert_eq!(row[4], 0.01);
    }
    assert_eq!(log.ran["mode"], "separate");
    assert_eq!(log.ran["forget_augmented"], true, "class-wise: augmented");
}

#[test]
fn rl_steps_the_learning_rate_down_at_the_milestones() {
    common::pin_threads();
    let mut fixture = DigitsFixture::new(false);
    // A few batches per pass keep this quick.
    fixture.splits.retain.truncate(64);
    let model = fixture.fresh_model().model;
    let cfg = UnlearnConfig {
        milestones: vec![1, 2],
        ..config(0.1, 3)
    };
    let dir = tempfile::tempdir().unwrap();
    let ctx = fixture.context(&model, None, &cfg, dir.path());
    let mut log = UnlearnLog::default();
    RandomLabel.run(&ctx, &mut log).unwrap();
    let lrs: Vec<f64> = log.rows.iter().map(|r| r[4]).collect();
    let expected = [0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1];
    for (lr, want) in lrs.iter().zip(expected) {
        assert!((lr - want).abs() < 1e-15, "lrs {lrs:?}");
    }
}

#[test]
fn a_non_finite_loss_stops_rl_before_any_update() {
    common::pin_threads();
    let fixture = DigitsFixture::new(false);
    let model = fixture.fresh_model().model;
    let logits_weight = model.spec.arch.logits_weight();
    tch::no_grad(|| {
        let _ = model.var(logits_weight).unwrap().fill_(f64::NAN);
    });
    let before: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.copy()))
        .collect();
    let cfg = config(0.01, 2);
    let dir = tempfile::tempdir().unwrap();
    let ctx = fixture.context(&model, None, &cfg, dir.path());
    let mut log = UnlearnLog::default();
    let err = RandomLabel.run(&ctx, &mut log).unwrap_err();
    let nan = err
        .downcast_ref::<gunlearn::train::NonFiniteLoss>()
        .unwrap_or_else(|| panic!("not a non-finite loss: {err:#}"));
    assert_eq!(nan.iteration, 1, "{err:#}");
    assert!(log.rows.is_empty());
    // Nothing moved: not the weights, not the BatchNorm statistics of the failed forward pass.
    let now = model.vs.variables();
    for (name, t) in &before {
        let same = now[name].isnan().equal(&t.isnan())
            && now[name]
                .nan_to_num(0.0, None, None)
                .equal(&t.nan_to_num(0.0, None, None));
        assert!(same, "{name} changed");
    }
}
