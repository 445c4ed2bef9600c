//! What GA, Retrain, FT_l1 and Gan do to a ResNet-20 trained on digits, through the library:
//! GA's one step against a hand-written SGD step on the un-augmented forget images, Retrain's
//! fresh start and kept mask, FT_l1's α schedule and its shrinking of ‖θ‖₁, Gan's stop-iter
//! switch, `--attacker PATH`, and the pre-trained attacker cache (written once with its key,
//! reused for bit-identical weights, keyed on the validation split).

mod common;

use common::DigitsFixture;
use gunlearn::checkpoint::{named_tensors, write_safetensors};
use gunlearn::data::device_batches::BatchSource;
use gunlearn::data::splits::{make_splits, ForgetRequest, SplitConfig, Splits};
use gunlearn::model::attacker::Attacker;
use gunlearn::model::mask::Mask;
use gunlearn::model::Classifier;
use gunlearn::unlearn::gan::{attacker_cache_path, AttackerCacheKey, ATTACKER_DROPOUT};
use gunlearn::unlearn::{find, l1_sparse, UnlearnConfig, UnlearnContext, UnlearnLog};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Every variable of `model` (weights and BatchNorm statistics), by name, copied.
fn snapshot(model: &Classifier) -> BTreeMap<String, Tensor> {
    model
        .vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect()
}

/// The trainable weights of `model` (BatchNorm statistics left out), by name, copied.
fn weights(model: &Classifier) -> BTreeMap<String, Tensor> {
    model
        .vs
        .variables()
        .into_iter()
        .filter(|(_, v)| v.requires_grad())
        .map(|(k, v)| (k, v.detach().copy()))
        .collect()
}

/// Runs method `name` on `ctx` after seeding the global generator as the CLI does.
fn run(name: &str, ctx: &UnlearnContext) -> UnlearnLog {
    tch::manual_seed(ctx.config.seed as i64);
    let mut log = UnlearnLog::default();
    find(name).unwrap().run(ctx, &mut log).unwrap();
    log
}

/// The images at `indices`, un-augmented, in index order.
fn plain_batch(fixture: &DigitsFixture, indices: &[usize]) -> (Tensor, Tensor) {
    let source = BatchSource::new(&fixture.train_set, Device::Cpu);
    let batch = source
        .epoch(indices.to_vec(), indices.len(), false, false, None, 0)
        .next()
        .expect("one batch");
    (batch.images, batch.labels)
}

/// Mean cross-entropy of `model` in eval mode on the un-augmented images at `indices`.
fn eval_loss(model: &Classifier, fixture: &DigitsFixture, indices: &[usize]) -> f64 {
    let (images, labels) = plain_batch(fixture, indices);
    tch::no_grad(|| {
        let (logits, _) = model.forward(&images, false);
        logits.cross_entropy_for_logits(&labels).double_value(&[])
    })
}

/// ‖θ‖₁ over the trainable weights.
fn l1(model: &Classifier) -> f64 {
    model
        .vs
        .trainable_variables()
        .iter()
        .map(|p| p.abs().sum(Kind::Double).double_value(&[]))
        .sum()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

/// Largest |a − b| over the variables of two snapshots of the same architecture.
fn max_diff(a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>) -> f64 {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "same variables"
    );
    a.iter()
        .map(|(k, v)| max_abs(&(v - &b[k])))
        .fold(0.0, f64::max)
}

fn assert_bit_identical(a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: variable count");
    for (k, v) in a {
        assert!(v.equal(&b[k]), "{what}: {k} differs");
    }
}

/// A temporary copy of the fixture's checkpoint, so that a test's attacker cache (written
/// beside the model file) is its own.
fn model_copy(fixture: &DigitsFixture, dir: &Path) -> PathBuf {
    let from = fixture.model_path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    for file in ["model.safetensors", "model.json"] {
        std::fs::copy(from.join(file), dir.join(file)).unwrap();
    }
    dir.join("model.safetensors")
}

/// Files in `dir` (names), sorted; empty when it does not exist.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------------
// GA

#[test]
fn ga_raises_the_forget_loss_and_records_the_class_wise_augmentation() {
    common::pin_threads();
    let fixture = DigitsFixture::new(true);
    let ckpt = fixture.fresh_model();
    let before = eval_loss(&ckpt.model, &fixture, &fixture.splits.forget);
    let config = UnlearnConfig {
        lr: Some(0.01),
        epochs: Some(2),
        batch_size: 64,
        ..UnlearnConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let ctx = fixture.context(&ckpt.model, None, &config, dir.path());
    let log = run("GA", &ctx);
    let after = eval_loss(&ckpt.model, &fixture, &fixture.splits.forget);
    println!("forget CE {before:.4} -> {after:.4}");
    assert!(
        after > before + 0.5,
        "gradient ascent should raise the forget loss: {before} -> {after}"
    );
    assert_eq!(log.ran["forget_augmented"], serde_json::json!(true));
    assert_eq!(log.rows.len(), 2, "one log row per epoch");
}

#[test]
fn ga_one_batch_equals_one_sgd_step_on_minus_ce_over_the_unaugmented_forget_images() {
    common::pin_threads();
    let fixture = DigitsFixture::new(false);
    let forget = &fixture.splits.forget;
    let (lr, wd) = (0.05, 5e-4);
    // One epoch, one batch holding all of F (the batch mean does not depend on its order).
    let config = UnlearnConfig {
        lr: Some(lr),
        epochs: Some(1),
        batch_size: forget.len(),
        weight_decay: wd,
        ..UnlearnConfig::default()
    };

    // By hand: train-mode forward on F as stored, −CE, backward, p −= lr·(g + wd·p) (the first
    // step of momentum SGD: the buffer starts as the gradient itself).
    let reference = fixture.fresh_model();
    let original = weights(&reference.model);
    let (images, labels) = plain_batch(&fixture, forget);
    let (logits, _) = reference.model.forward(&images, true);
    let loss = -logits.cross_entropy_for_logits(&labels);
    loss.backward();
    tch::no_grad(|| {
        for mut p in reference.model.vs.trainable_variables() {
            let step = (p.grad() + &p * wd) * lr;
            let _ = p.g_sub_(&step);
        }
    });
    let expected = weights(&reference.model);

    let dir = tempfile::tempdir().unwrap();
    let ckpt = fixture.fresh_model();
    let ctx = fixture.context(&ckpt.model, None, &config, dir.path());
    let log = run("GA", &ctx);
    assert_eq!(log.ran["forget_augmented"], serde_json::json!(false));
    let got = weights(&ckpt.model);

    // The same run with the forget stream augmented lands elsewhere: the comparison can tell.
    let augmented_config = UnlearnConfig {
        forget_augment: Some(true),
        ..config.clone()
    };
    let other = fixture.fresh_model();
    let ctx = fixture.context(&other.model, None, &augmented_config, dir.path());
    let log = run("GA", &ctx);
    assert_eq!(log.ran["forget_augmented"], serde_json::json!(true));
    let augmented = weights(&other.model);

    let step = max_diff(&expected, &original);
    let error = max_diff(&got, &expected);
    let augmented_error = max_diff(&augmented, &expected);
    println!("step {step:.3e}, GA vs hand step {error:.3e}, augmented GA vs hand step {augmented_error:.3e}");
    assert!(step > 1e-3, "the step is visible: {step}");
    assert!(
        error <= 1e-4 * step,
        "GA's step differs from the hand-written one by {error} (step {step})"
    );
    assert!(
        augmented_error > 100.0 * error.max(1e-7 * step),
        "an augmented forget stream should give another step ({augmented_error} vs {error})"
    );
}

// ---------------------------------------------------------------------------------------------
// Retrain

#[test]
fn retrain_starts_from_fresh_weights_and_keeps_the_mask_zeros() {
    common::pin_threads();
    let fixture = DigitsFixture::new(false);
    let dir = tempfile::tempdir().unwrap();
    let pruned = |ckpt: &gunlearn::checkpoint::Checkpoint| {
        let mask = Mask::global_magnitude(&ckpt.model, 0.5, None);
        mask.apply_to_weights(&ckpt.model.vs);
        mask
    };

    // 0 epochs: exactly the fresh initialisation of the run's seed, masked.
    let ckpt = fixture.fresh_model();
    let mask = pruned(&ckpt);
    let original = snapshot(&ckpt.model);
    let config = UnlearnConfig {
        epochs: Some(0),
        batch_size: 128,
        seed: 5,
        ..UnlearnConfig::default()
    };
    let ctx = fixture.context(&ckpt.model, Some(&mask), &config, dir.path());
    run("retrain", &ctx);
    tch::manual_seed(config.seed as i64);
    let fresh = Classifier::new(&ckpt.model.spec, Device::Cpu);
    mask.apply_to_weights(&fresh.vs);
    assert_bit_identical(
        &snapshot(&ckpt.model),
        &snapshot(&fresh),
        "retrain with 0 epochs vs Classifier::new under the run's seed",
    );
    assert!(
        max_diff(&snapshot(&ckpt.model), &original) > 0.1,
        "the original weights are gone"
    );

    // 1 epoch: trained from there, the pruned weights stay exactly zero.
    let ckpt = fixture.fresh_model();
    let mask = pruned(&ckpt);
    let config = UnlearnConfig {
        epochs: Some(1),
        ..config
    };
    let ctx = fixture.context(&ckpt.model, Some(&mask), &config, dir.path());
    let log = run("retrain", &ctx);
    assert_eq!(log.rows.len(), 1);
    let vars = ckpt.model.vs.variables();
    let mut pruned_count = 0;
    for (name, m) in &mask.masks {
        let w = &vars[name];
        let revived = w.ne(0.0).logical_and(&m.eq(0.0)).any().int64_value(&[]);
        assert_eq!(revived, 0, "a pruned weight of {name} is nonzero");
        pruned_count += m.eq(0.0).sum(Kind::Int64).int64_value(&[]);
    }
    assert!(pruned_count > 0, "the mask prunes something");
    let trained = snapshot(&ckpt.model);
    assert!(max_diff(&trained, &snapshot(&fresh)) > 1e-3, "it trained");
}

// ---------------------------------------------------------------------------------------------
// FT_l1

#[test]
fn ft_l1_alpha_decays_linearly_per_epoch_and_is_constant_without_decaying_epochs() {
    let alpha = 4e-4;
    // 10 epochs, the last 2 without ℓ1: α·(1 − t/8) for t < 8, then 0.
    let schedule: Vec<f64> = (0..10)
        .map(|t| l1_sparse::alpha_at(alpha, t, 10, 2))
        .collect();
    for (t, &a) in schedule.iter().enumerate() {
        let want = if t < 8 {
            alpha * (8 - t) as f64 / 8.0
        } else {
            0.0
        };
        assert!((a - want).abs() <= 1e-18, "epoch {t}: {a} vs {want}");
    }
    // Linear: equal decrements over the ℓ1 epochs.
    let steps: Vec<f64> = schedule[..8].windows(2).map(|w| w[0] - w[1]).collect();
    assert!(
        steps.iter().all(|s| (s - alpha / 8.0).abs() < 1e-18),
        "{steps:?}"
    );
    // No no-ℓ1 epochs: decays over all epochs, α at the start.
    assert_eq!(l1_sparse::alpha_at(alpha, 0, 5, 0), alpha);
    assert!((l1_sparse::alpha_at(alpha, 4, 5, 0) - alpha / 5.0).abs() < 1e-18);
    // no_l1_epochs equal to (or above) the epochs leaves no decaying epoch: α throughout.
    for epochs in [1, 3, 10] {
        for t in 0..epochs {
            assert_eq!(l1_sparse::alpha_at(alpha, t, epochs, epochs), alpha);
            assert_eq!(l1_sparse::alpha_at(alpha, t, epochs, epochs + 2), alpha);
        }
    }
}

#[test]
fn ft_l1_shrinks_the_l1_norm_more_than_plain_ft() {
    common::pin_threads();
    let fixture = DigitsFixture::new(false);
    let dir = tempfile::tempdir().unwrap();
    let config = |alpha: Option<f64>| UnlearnConfig {
        lr: Some(0.01),
        epochs: Some(1),
        batch_size: 64,
        alpha,
        ..UnlearnConfig::default()
    };
    let run_on_fresh = |name: &str, config: &UnlearnConfig| {
        let ckpt = fixture.fresh_model();
        let ctx = fixture.context(&ckpt.model, None, config, dir.path());
        let log = run(name, &ctx);
        (ckpt, log)
    };
    let before = l1(&fixture.fresh_model().model);
    let (ft, _) = run_on_fresh("FT", &config(None));
    let (sparse, log) = run_on_fresh("FT_l1", &config(Some(5e-3)));
    assert_eq!(log.ran["alpha"], serde_json::json!(5e-3));
    let (zero, _) = run_on_fresh("FT_l1", &config(Some(0.0)));
    // Without --alpha the run records (and uses) the default α.
    let (_, log) = run_on_fresh(
        "FT_l1",
        &UnlearnConfig {
            epochs: Some(0),
            ..config(None)
        },
    );
    assert_eq!(
        log.ran["alpha"],
        serde_json::json!(l1_sparse::DEFAULT_ALPHA)
    );
    let (n_ft, n_sparse) = (l1(&ft.model), l1(&sparse.model));
    println!("‖θ‖₁: original {before:.2}, FT {n_ft:.2}, FT_l1 (α 5e-3) {n_sparse:.2}");
    // With α = 0 FT_l1 is FT: the difference below is the ℓ1 term's doing.
    assert_bit_identical(
        &snapshot(&zero.model),
        &snapshot(&ft.model),
        "FT_l1 with α = 0 vs FT",
    );
    // Every step pulls each of the 0.27 M weights towards 0 by lr·α = 5e-5 (more with momentum):
    // hundreds of units over the epoch's ~20 steps, where FT alone barely moves the norm.
    assert!(
        n_ft - n_sparse > 10.0,
        "the ℓ1 term should shrink ‖θ‖₁ more than FT: {n_sparse} vs FT {n_ft}"
    );
}

// ---------------------------------------------------------------------------------------------
// Gan

/// The small class-wise Gan settings of these tests.
fn gan_config() -> UnlearnConfig {
    UnlearnConfig {
        lr: Some(0.01),
        epochs: Some(1),
        batch_size: 64,
        attacker_iters: 5,
        stop_iter: Some(3),
        stop_unlearn_lr: Some(0.005),
        ..UnlearnConfig::default()
    }
}

/// The fixture's splits with the retain set cut to its first `batches` batches of 64: the Gan
/// tests are about the switch, the attacker and the cache, not about the length of an epoch.
fn short_retain(fixture: &DigitsFixture, batches: usize) -> Splits {
    let mut splits = fixture.splits.clone();
    splits.retain.truncate(batches * 64);
    splits
}

/// A log column by name.
fn column(log: &UnlearnLog, name: &str) -> Vec<f64> {
    let i = log
        .columns
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", log.columns));
    log.rows.iter().map(|r| r[i]).collect()
}

#[test]
fn gan_switches_beta_and_lr_after_stop_iter_and_starts_from_the_given_attacker() {
    common::pin_threads();
    let fixture = DigitsFixture::new(true);
    let dir = tempfile::tempdir().unwrap();
    // An attacker whose last layer is zero: constant logits, so its first loss is exactly ln 2.
    let attacker = Attacker::new(10, ATTACKER_DROPOUT, Device::Cpu);
    tch::no_grad(|| {
        let vars = attacker.vs.variables();
        for name in ["fc3.weight", "fc3.bias"] {
            let _ = vars[name].shallow_clone().zero_();
        }
    });
    let attacker_path = dir.path().join("given-attacker.safetensors");
    write_safetensors(&attacker_path, &named_tensors(&attacker.vs)).unwrap();
    let model_path = model_copy(&fixture, &dir.path().join("model"));

    let config = UnlearnConfig {
        attacker: Some(attacker_path),
        ..gan_config()
    };
    let splits = short_retain(&fixture, 6);
    let ckpt = fixture.fresh_model();
    let mut ctx = fixture.context(&ckpt.model, None, &config, &dir.path().join("run"));
    ctx.model_path = model_path.clone();
    ctx.splits = &splits;
    let log = run("Gan", &ctx);

    let steps = 6;
    assert_eq!(
        column(&log, "iteration"),
        (1..=steps).map(|i| i as f64).collect::<Vec<_>>()
    );
    let (beta, lr) = (column(&log, "beta"), column(&log, "lr"));
    for (i, (&b, &l)) in beta.iter().zip(&lr).enumerate() {
        let iteration = i + 1;
        if iteration <= 3 {
            assert_eq!((b, l), (1.0, 0.01), "iteration {iteration}");
        } else {
            assert_eq!((b, l), (0.0, 0.005), "iteration {iteration}");
        }
    }
    let first = column(&log, "attacker_loss")[0];
    assert!(
        (first - std::f64::consts::LN_2).abs() < 1e-6,
        "the given attacker (zero last layer) should start at ln 2, got {first}"
    );
    assert!(
        listing(&model_path.parent().unwrap().join("attackers")).is_empty(),
        "a given attacker neither pre-trains nor touches the cache"
    );
    assert!(dir.path().join("run/attacker.safetensors").is_file());

    // The CSV written for the run carries the same switch.
    let csv = log.to_csv();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(header[0], "iteration");
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let row4: Vec<f64> = csv
        .lines()
        .nth(4)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(
        (row4[at("iteration")], row4[at("beta")], row4[at("lr")]),
        (4.0, 0.0, 0.005)
    );
}

#[test]
fn gan_caches_its_pretrained_attacker_with_its_key_and_reuses_it_bit_identically() {
    common::pin_threads();
    let fixture = DigitsFixture::new(true);
    let dir = tempfile::tempdir().unwrap();
    let model_path = model_copy(&fixture, &dir.path().join("model"));
    let cache_dir = model_path.parent().unwrap().join("attackers");
    let config = gan_config();
    let splits = short_retain(&fixture, 5);
    let unlearn = |save: &str| {
        let ckpt = fixture.fresh_model();
        let mut ctx = fixture.context(&ckpt.model, None, &config, &dir.path().join(save));
        ctx.model_path = model_path.clone();
        ctx.splits = &splits;
        let log = run("Gan", &ctx);
        let key = AttackerCacheKey::of(&ctx, config.attacker_iters).unwrap();
        (snapshot(&ckpt.model), log, key)
    };

    // First run: pre-trains and writes the weights with their key.
    let (first, log1, key) = unlearn("first");
    let files = listing(&cache_dir);
    assert_eq!(files.len(), 2, "one attacker and its key: {files:?}");
    let weights = key.path(&model_path);
    let key_file = weights.with_extension("json");
    assert_eq!(weights.parent().unwrap(), cache_dir);
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name(&weights).starts_with("attacker-") && weights.is_file(),
        "{weights:?}"
    );
    assert!(
        files.contains(&name(&weights)) && files.contains(&name(&key_file)),
        "{files:?}"
    );
    let stored: AttackerCacheKey =
        serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
    assert_eq!(stored, key);
    assert_eq!(stored.iterations, 5);
    assert_eq!(log1.rows.len(), 5);
    assert_eq!(stored.batch_size, 64);
    assert_eq!(stored.seed, config.seed);
    assert!(
        stored.non_members_augment.is_some(),
        "class-wise: val augmented"
    );
    let written = std::fs::metadata(&weights).unwrap().modified().unwrap();

    // Second identical run: reuses it, much faster, and unlearns to the same bits.
    let (second, log2, _) = unlearn("second");
    assert_eq!(listing(&cache_dir), files, "no new cache file");
    assert_eq!(
        std::fs::metadata(&weights).unwrap().modified().unwrap(),
        written
    );
    let (t1, t2) = (
        log1.excluded_seconds["attacker_pretraining"],
        log2.excluded_seconds["attacker_pretraining"],
    );
    println!("attacker: pre-trained in {t1:.3}s, reused in {t2:.3}s");
    assert!(
        t2 < 0.5 * t1,
        "reuse ({t2}s) should be far cheaper than pre-training ({t1}s)"
    );
    assert_bit_identical(
        &first,
        &second,
        "pre-trained in the run vs reused from the cache",
    );
    let attacker = |run: &str| {
        gunlearn::checkpoint::read_safetensors(&dir.path().join(run).join("attacker.safetensors"))
            .unwrap()
    };
    let (a1, a2) = (attacker("first"), attacker("second"));
    for (k, v) in &a1 {
        assert!(v.equal(&a2[k]), "final attacker {k} differs");
    }

    // Another validation split: other members and non-members, another cache entry.
    let splits = make_splits(
        &fixture.ds,
        &SplitConfig {
            val_set_seed: 7,
            forget: ForgetRequest::Class {
                class: 3,
                count: None,
            },
            ..SplitConfig::default()
        },
    )
    .unwrap();
    assert_ne!(splits.val, fixture.splits.val);
    let other_config = UnlearnConfig {
        epochs: Some(0),
        ..config.clone()
    };
    let ckpt = fixture.fresh_model();
    let mut ctx = fixture.context(&ckpt.model, None, &other_config, &dir.path().join("third"));
    ctx.splits = &splits;
    ctx.model_path = model_path.clone();
    let other_path = attacker_cache_path(&ctx, config.attacker_iters).unwrap();
    assert_ne!(
        other_path, weights,
        "--val_set_seed must change the cache entry"
    );
    run("Gan", &ctx);
    assert!(other_path.is_file() && other_path.with_extension("json").is_file());
    assert_eq!(listing(&cache_dir).len(), 4, "{:?}", listing(&cache_dir));
}
