//! BS (boundary shrink) and BE (boundary expanding) on the digits fixture: the FGSM images are
//! valid 8-bit images within the step, the teacher never changes, only the forget set is read,
//! the forget accuracy drops, and BE's model keeps C outputs while its trained shadow row
//! claims the forget samples.

mod common;

use common::DigitsFixture;
use gunlearn::data::batches::to_tensor;
use gunlearn::data::splits::Splits;
use gunlearn::eval::outputs::accuracy;
use gunlearn::model::Classifier;
use gunlearn::unlearn::boundary_expand::expand;
use gunlearn::unlearn::boundary_shrink::{fgsm, shrink};
use gunlearn::unlearn::finetune::FineTune;
use gunlearn::unlearn::frozen_teacher;
use gunlearn::unlearn::{UnlearnConfig, UnlearnContext, UnlearnLog, Unlearner};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tch::{Device, Kind, Tensor};

/// Epochs of the BS and BE runs (digits: about a second each).
const EPOCHS: usize = 4;

fn config(lr: f64, epochs: usize) -> UnlearnConfig {
    UnlearnConfig {
        lr: Some(lr),
        epochs: Some(epochs),
        batch_size: 64,
        seed: 2,
        ..UnlearnConfig::default()
    }
}

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

fn assert_unchanged(model: &Classifier, before: &[(String, Tensor)], what: &str) {
    let now = snapshot(model);
    assert_eq!(now.len(), before.len(), "{what}: variable count");
    for ((name, a), (_, b)) in now.iter().zip(before) {
        assert!(a.equal(b), "{what}: {name} changed");
    }
}

/// The fixture's splits with every index set but the forget set pointing past the end of its
/// image set: a method that reads any of them fails (its batch producer panics).
fn only_forget_readable(fixture: &DigitsFixture) -> Splits {
    let past_train = fixture.train_set.len() + 7;
    let past_test = fixture.ds.test.len() + 7;
    Splits {
        train: vec![past_train; 40],
        val: vec![past_train; 40],
        retain: vec![past_train; 40],
        test: vec![past_test; 40],
        ..fixture.splits.clone()
    }
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

fn forget_accuracy(fixture: &DigitsFixture, model: &Classifier) -> f64 {
    accuracy(
        model,
        &fixture.train_set,
        &fixture.splits.forget,
        256,
        Device::Cpu,
    )
}

#[test]
fn fgsm_images_are_within_the_step_on_the_pixel_grid_and_raise_the_loss() {
    common::pin_threads();
    let fixture = DigitsFixture::new(true);
    let model = fixture.fresh_model().model;
    let teacher = frozen_teacher(&model).unwrap();
    let batch = to_tensor(&fixture.train_set, &fixture.splits.forget[..64]);
    let (x, y) = (&batch.images, &batch.labels);
    for step in [0.1, 0.03] {
        let adv = fgsm(&teacher, x, y, step);
        assert_eq!(adv.size(), x.size());
        let dist = (&adv - x).abs().max().double_value(&[]);
        assert!(
            dist <= step + 1.0 / 510.0 + 1e-6,
            "step {step}: |x′ − x| = {dist}"
        );
        let levels = &adv * 255.0;
        let off_grid = (&levels - levels.round()).abs().max().double_value(&[]);
        assert!(
            off_grid < 1e-3,
            "step {step}: x′ off the 1/255 grid by {off_grid}"
        );
        let (lo, hi) = (adv.min().double_value(&[]), adv.max().double_value(&[]));
        assert!(lo >= 0.0 && hi <= 1.0, "step {step}: x′ in [{lo}, {hi}]");
        let changed = adv.ne_tensor(x).to_kind(Kind::Float).mean(Kind::Float);
        assert!(
            changed.double_value(&[]) > 0.1,
            "step {step}: the attack left almost every pixel alone"
        );
        // The step ascends the teacher's loss (computed here, independently of the method).
        let ce = |images: &Tensor| {
            tch::no_grad(|| teacher.forward(images, false).0.cross_entropy_for_logits(y))
                .double_value(&[])
        };
        assert!(
            ce(&adv) > ce(x),
            "step {step}: CE {} on x′ is not above CE {} on x",
            ce(&adv),
            ce(x)
        );
    }
}

#[test]
fn bs_reads_only_the_forget_set_keeps_its_teacher_and_lowers_forget_accuracy() {
    common::pin_threads();
    let fixture = DigitsFixture::new(true);
    let splits = only_forget_readable(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(0.01, EPOCHS);

    // The poisoned splits do stop a method that reads the retain set (its batch producer's
    // panic, printed below, is expected).
    let probe = fixture.fresh_model().model;
    let ctx = context(&fixture, &probe, &splits, &cfg, dir.path());
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        FineTune.run(&ctx, &mut UnlearnLog::default())
    }));
    assert!(
        !matches!(outcome, Ok(Ok(()))),
        "FT ran on retain indices past the end of the data"
    );

    let model = fixture.fresh_model().model;
    let original = snapshot(&model);
    let teacher = frozen_teacher(&model).unwrap();
    assert_unchanged(&teacher, &original, "teacher as built");
    let before = forget_accuracy(&fixture, &model);
    let ctx = context(&fixture, &model, &splits, &cfg, dir.path());
    let mut log = UnlearnLog::default();
    shrink(&ctx, &teacher, 0.01, EPOCHS, &mut log).unwrap();
    assert_unchanged(&teacher, &original, "teacher after BS");
    let after = forget_accuracy(&fixture, &model);
    println!(
        "BS forget accuracy {before:.1}% -> {after:.1}%; log {:?}",
        log.rows
    );
    assert!(
        after < before - 20.0,
        "forget accuracy {before:.1}% -> {after:.1}%"
    );
    assert_eq!(log.rows.len(), EPOCHS);
    let success = log.columns.iter().position(|&c| c == "attack_success");
    let success = log.rows[0][success.expect("attack_success column")];
    assert!(
        success > 0.0 && success <= 100.0,
        "attack success {success}%"
    );
    assert_eq!(log.ran["forget_augmented"], serde_json::json!(true));
}

#[test]
fn be_keeps_c_outputs_while_its_shadow_row_claims_the_forget_set() {
    common::pin_threads();
    let fixture = DigitsFixture::new(true);
    let splits = only_forget_readable(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(0.01, EPOCHS);
    let model = fixture.fresh_model().model;
    let classes = model.spec.num_classes as i64;
    let fc_shape = model.var("fc.weight").unwrap().size();
    let before = forget_accuracy(&fixture, &model);
    let ctx = context(&fixture, &model, &splits, &cfg, dir.path());
    let mut log = UnlearnLog::default();
    let shadow = expand(&ctx, 0.01, EPOCHS, &mut log).unwrap();

    assert_eq!(model.var("fc.weight").unwrap().size(), fc_shape);
    assert_eq!(shadow.weight.size(), [1, model.feature_dim() as i64]);
    let batch = to_tensor(&fixture.train_set, &fixture.splits.forget);
    let (logits, features) = tch::no_grad(|| model.forward(&batch.images, false));
    assert_eq!(logits.size(), [batch.indices.len() as i64, classes]);
    let widened = tch::no_grad(|| shadow.widen(&logits, &features));
    let to_shadow = widened
        .argmax(-1, false)
        .eq(classes)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    let after = forget_accuracy(&fixture, &model);
    println!(
        "BE forget accuracy {before:.1}% -> {after:.1}%, shadow top-1 on {:.1}% of F; log {:?}",
        100.0 * to_shadow,
        log.rows
    );
    assert!(
        to_shadow > 0.5,
        "the shadow class is the argmax on only {:.1}% of F",
        100.0 * to_shadow
    );
    assert!(
        after < before - 20.0,
        "forget accuracy {before:.1}% -> {after:.1}%"
    );
    assert_eq!(log.rows.len(), EPOCHS);
}
