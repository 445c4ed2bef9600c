//! SalUn and SalUn-soft through the library on the digits fixture: the saliency mask (exactly
//! ⌊N·r⌋ of the largest forget-gradient magnitudes), weights outside it bit-identical after
//! unlearning (moved by weight decay in the legacy mode), BatchNorm statistics still updated,
//! pruned weights kept at zero, and the proximal soft threshold after every step.

mod common;

use common::DigitsFixture;
use gunlearn::data::batches::to_tensor;
use gunlearn::model::mask::Mask;
use gunlearn::model::Classifier;
use gunlearn::optim::Sgd;
use gunlearn::unlearn::random_label::{run_rl, StepHook, StepInfo, Stream};
use gunlearn::unlearn::salun::{
    named_parameters, proximal_rank, saliency_mask, saliency_scores, soft_layout, soft_threshold,
    ProximalHook, SalUn, SALIENCY_MASK_FILE,
};
use gunlearn::unlearn::{UnlearnConfig, UnlearnContext, UnlearnLog, Unlearner};
use std::collections::HashMap;
use std::path::Path;
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

/// Every variable of `model` (parameters and BatchNorm statistics), copied, by name.
fn snapshot(model: &Classifier) -> HashMap<String, Tensor> {
    model
        .vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.detach().copy()))
        .collect()
}

fn floats(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1)).unwrap()
}

/// ⌊n·r⌋ the way the reference's Python writes it: `int(n * r)`.
fn floor_n_r(n: usize, r: f64) -> usize {
    (n as f64 * r).floor() as usize
}

#[test]
fn saliency_mask_selects_exactly_floor_n_r_of_the_largest_scores_ties_by_position() {
    common::pin_threads();
    tch::manual_seed(3);
    // Three tensors of different shapes; scores rounded to a few levels, so ties are common.
    let scores: Vec<Tensor> = [vec![7i64, 5], vec![13], vec![3, 2, 4]]
        .iter()
        .map(|shape| (Tensor::rand(shape.as_slice(), (Kind::Float, Device::Cpu)) * 6.0).floor())
        .collect();
    let flat: Vec<f32> = scores.iter().flat_map(floats).collect();
    let n = flat.len();
    for r in [0.1, 0.25, 0.5, 0.73, 0.999, 1.0] {
        let mask = saliency_mask(&scores, r);
        for (m, s) in mask.iter().zip(&scores) {
            assert_eq!(m.size(), s.size());
        }
        let chosen: Vec<f32> = mask.iter().flat_map(floats).collect();
        assert!(chosen.iter().all(|&v| v == 0.0 || v == 1.0));
        let ones = chosen.iter().filter(|&&v| v == 1.0).count();
        assert_eq!(ones, floor_n_r(n, r), "r = {r}");
        // Every selected score is ≥ every unselected one; among equal scores the earlier
        // position (tensor order, then row-major) is selected first.
        for i in 0..n {
            for j in 0..n {
                if chosen[i] == 1.0 && chosen[j] == 0.0 {
                    assert!(flat[i] >= flat[j], "r = {r}: {} < {}", flat[i], flat[j]);
                    if flat[i] == flat[j] {
                        assert!(i < j, "r = {r}: tie at {i} and {j} broken backwards");
                    }
                }
            }
        }
    }
}

#[test]
fn saliency_scores_are_the_forget_gradient_magnitudes_and_leave_the_model_alone() {
    common::pin_threads();
    let fixture = DigitsFixture::new(false);
    let model = fixture.fresh_model().model;
    let before = snapshot(&model);
    let forget = &fixture.splits.forget;
    // One batch holds the whole forget set, so G is the gradient of −CE over all of F.
    let cfg = UnlearnConfig {
        batch_size: forget.len(),
        ..config(0.01, 1)
    };
    let dir = tempfile::tempdir().unwrap();
    let ctx = fixture.context(&model, None, &cfg, dir.path());
    assert!(
        !ctx.forget_augmented(),
        "random forgetting: plain forget images"
    );
    let scores = saliency_scores(&ctx).unwrap();
    let now = snapshot(&model);
    for (name, t) in &before {
        assert!(now[name].equal(t), "building the scores changed {name}");
    }

    // The same gradient, computed here on a fresh copy in eval mode.
    let copy = fixture.fresh_model().model;
    let batch = to_tensor(&fixture.train_set, forget);
    let (logits, _) = copy.forward(&batch.images, false);
    (-logits.cross_entropy_for_logits(&batch.labels)).backward();
    let params = named_parameters(&copy).unwrap();
    assert_eq!(params.len(), scores.len());
    let mut n = 0;
    for ((name, p), s) in params.iter().zip(&scores) {
        let expected = p.grad().abs();
        let scale = expected.abs().max().double_value(&[]).max(1e-6);
        let diff = (&expected - s).abs().max().double_value(&[]);
        assert!(
            diff <= 1e-4 * scale,
            "{name}: max |diff| {diff} (scale {scale})"
        );
        n += p.numel();
    }
    assert_eq!(
        n,
        model.num_parameters(),
        "every trainable parameter is scored"
    );
}

/// The saliency mask SalUn wrote, by parameter name.
fn read_saliency_mask(dir: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(dir.join(SALIENCY_MASK_FILE))
        .unwrap()
        .into_iter()
        .collect()
}

/// Runs SalUn (1 epoch, r = 0.5) on a fresh model; returns the model, its variables before, the
/// mask SalUn wrote and its log.
fn run_salun(
    fixture: &DigitsFixture,
    legacy: bool,
    dir: &Path,
) -> (
    Classifier,
    HashMap<String, Tensor>,
    HashMap<String, Tensor>,
    UnlearnLog,
) {
    let model = fixture.fresh_model().model;
    let before = snapshot(&model);
    let cfg = UnlearnConfig {
        salun_legacy: legacy,
        mask_ratio: 0.5,
        ..config(0.013, 1)
    };
    let ctx = fixture.context(&model, None, &cfg, dir);
    let mut log = UnlearnLog::default();
    SalUn { soft: false }.run(&ctx, &mut log).unwrap();
    let mask = read_saliency_mask(dir);
    (model, before, mask, log)
}

/// (entries outside the mask that changed, of them those whose magnitude grew, entries inside
/// the mask that changed), over every trainable parameter.
fn changes(
    model: &Classifier,
    before: &HashMap<String, Tensor>,
    mask: &HashMap<String, Tensor>,
) -> (i64, i64, i64) {
    let (mut outside, mut grew, mut inside) = (0, 0, 0);
    for (name, p) in named_parameters(model).unwrap() {
        let m = mask[&name].to_kind(Kind::Bool);
        let old = &before[&name];
        // Bit patterns: "identical" means the same 32 bits.
        let changed = p
            .detach()
            .view_dtype(Kind::Int)
            .ne_tensor(&old.view_dtype(Kind::Int));
        let out = changed.logical_and(&m.logical_not());
        outside += out.sum(Kind::Int64).int64_value(&[]);
        grew += out
            .logical_and(&p.abs().gt_tensor(&old.abs()))
            .sum(Kind::Int64)
            .int64_value(&[]);
        inside += changed.logical_and(&m).sum(Kind::Int64).int64_value(&[]);
    }
    (outside, grew, inside)
}

#[test]
fn salun_keeps_weights_outside_the_mask_bit_identical_and_still_updates_batchnorm() {
    common::pin_threads();
    let fixture = DigitsFixture::new(false);
    let dir = tempfile::tempdir().unwrap();
    let (model, before, mask, log) = run_salun(&fixture, false, dir.path());

    let n = model.num_parameters();
    let ones: i64 = mask
        .values()
        .map(|m| m.to_kind(Kind::Int64).sum(Kind::Int64).int64_value(&[]))
        .sum();
    assert_eq!(ones as usize, floor_n_r(n, 0.5), "mask count");
    assert_eq!(log.ran["saliency_mask_ones"], floor_n_r(n, 0.5));
    assert_eq!(log.ran["saliency_mask_entries"], n);
    assert_eq!(
        mask.len(),
        named_parameters(&model).unwrap().len(),
        "one mask per parameter"
    );

    let (outside, _, inside) = changes(&model, &before, &mask);
    assert_eq!(
        outside, 0,
        "{outside} weights outside the saliency mask changed"
    );
    assert!(
        inside > ones / 2,
        "only {inside} of {ones} weights in the mask changed"
    );
    // Model in train mode: BatchNorm running statistics are buffers, outside any mask.
    let now = snapshot(&model);
    let stats: Vec<&String> = before.keys().filter(|k| k.contains("running_")).collect();
    assert!(!stats.is_empty());
    for name in stats {
        assert!(!now[name].equal(&before[name]), "{name} did not change");
    }
    assert_eq!(log.ran["salun_legacy"], false);
    assert_eq!(log.ran["mode"], "separate");
    assert_eq!(log.rows.len(), 1);
}

#[test]
fn legacy_salun_lets_weight_decay_shrink_weights_outside_the_mask() {
    common::pin_threads();
    let fixture = DigitsFixture::new(false);
    let head_dir = tempfile::tempdir().unwrap();
    let legacy_dir = tempfile::tempdir().unwrap();
    let (model, before, mask, log) = run_salun(&fixture, true, legacy_dir.path());
    assert_eq!(log.ran["salun_legacy"], true);
    let (outside, grew, inside) = changes(&model, &before, &mask);
    assert!(outside > 0, "no weight outside the mask moved");
    // Their gradient is masked, so only weight decay (through momentum) moves them: towards 0.
    assert_eq!(grew, 0, "{grew} weights outside the mask grew in magnitude");
    assert!(inside > 0);
    // The mask itself does not depend on the mode.
    let (_, _, head_mask, _) = run_salun(&fixture, false, head_dir.path());
    for (name, m) in &mask {
        assert!(
            m.equal(&head_mask[name]),
            "{name}: masks differ between modes"
        );
    }
}

/// A ResNet-20 from the fixture with half its conv weights pruned (zeroed, mask returned).
fn pruned_model(fixture: &DigitsFixture) -> (Classifier, Mask) {
    let model = fixture.fresh_model().model;
    let mask = Mask::global_magnitude(&model, 0.5, None);
    mask.apply_to_weights(&model.vs);
    (model, mask)
}

fn assert_pruned_zero(model: &Classifier, mask: &Mask, what: &str) {
    let vars = model.vs.variables();
    for (name, m) in &mask.masks {
        let alive = vars[name]
            .ne(0.0)
            .logical_and(&m.eq(0.0))
            .any()
            .int64_value(&[]);
        assert_eq!(alive, 0, "{what}: a pruned weight of {name} is nonzero");
    }
}

#[test]
fn salun_and_salun_soft_keep_pruned_weights_at_zero() {
    common::pin_threads();
    let mut fixture = DigitsFixture::new(false);
    // Two retain batches are enough to move every kept weight.
    fixture.splits.retain.truncate(128);
    let cfg = config(0.013, 1);
    for (soft, legacy) in [(false, false), (false, true), (true, false)] {
        let (model, mask) = pruned_model(&fixture);
        let dir = tempfile::tempdir().unwrap();
        let cfg = UnlearnConfig {
            salun_legacy: legacy,
            ..cfg.clone()
        };
        let ctx = fixture.context(&model, Some(&mask), &cfg, dir.path());
        let what = format!("soft {soft}, legacy {legacy}");
        if !soft {
            // Pruned weights have no saliency.
            let scores = saliency_scores(&ctx).unwrap();
            for ((name, _), s) in named_parameters(&model).unwrap().iter().zip(&scores) {
                if let Some(m) = mask.masks.get(name) {
                    let pruned_score = s
                        .masked_select(&m.eq(0.0))
                        .abs()
                        .sum(Kind::Double)
                        .double_value(&[]);
                    assert_eq!(pruned_score, 0.0, "{name}: pruned weights scored");
                }
            }
        }
        let mut log = UnlearnLog::default();
        SalUn { soft }.run(&ctx, &mut log).unwrap();
        assert_pruned_zero(&model, &mask, &what);
        let kept_moved = mask.masks.iter().any(|(name, m)| {
            let now = model.var(name).unwrap().masked_select(&m.eq(1.0));
            let old = fixture
                .fresh_model()
                .model
                .var(name)
                .unwrap()
                .masked_select(&m.eq(1.0));
            !now.equal(&old)
        });
        assert!(kept_moved, "{what}: no kept conv weight moved");
    }
}

#[test]
fn soft_threshold_pulls_at_least_rho_entries_back_to_theta0_and_shrinks_the_rest_by_tau() {
    common::pin_threads();
    tch::manual_seed(9);
    let shapes: [&[i64]; 3] = [&[6, 4], &[17], &[2, 3, 5]];
    let theta0: Vec<Tensor> = shapes
        .iter()
        .map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu)))
        .collect();
    let n: usize = theta0.iter().map(Tensor::numel).sum();
    for rho in [0, 1, 7, n / 3, n / 2, n - 1, n] {
        let theta: Vec<Tensor> = theta0
            .iter()
            .map(|t| t + Tensor::randn(t.size().as_slice(), (Kind::Float, Device::Cpu)) * 0.1)
            .collect();
        let before: Vec<f32> = theta.iter().flat_map(floats).collect();
        let base: Vec<f32> = theta0.iter().flat_map(floats).collect();
        let tau = soft_threshold(&theta, &theta0, rho);
        let after: Vec<f32> = theta.iter().flat_map(floats).collect();
        if rho == 0 {
            assert_eq!(tau, None);
            assert_eq!(after, before, "ρ = 0 changes nothing");
            continue;
        }
        // τ, computed here: the ρ-th smallest |θ − θ0|.
        let d: Vec<f32> = before.iter().zip(&base).map(|(a, b)| a - b).collect();
        let mut sorted: Vec<f32> = d.iter().map(|x| x.abs()).collect();
        sorted.sort_by(f32::total_cmp);
        let want_tau = sorted[rho - 1];
        assert_eq!(tau, Some(want_tau as f64), "ρ = {rho}");
        for i in 0..n {
            let want = if d[i] > want_tau {
                before[i] - want_tau
            } else if d[i] < -want_tau {
                before[i] + want_tau
            } else {
                base[i]
            };
            assert_eq!(after[i], want, "ρ = {rho}, entry {i}");
        }
        let at_theta0 = after.iter().zip(&base).filter(|(a, b)| a == b).count();
        assert!(
            at_theta0 >= rho,
            "ρ = {rho}: only {at_theta0} entries at θ0"
        );
    }
}

#[test]
fn proximal_rank_decays_linearly_from_r_n_by_epoch() {
    // ρ = ⌊r·(T − done)/T·n⌋, here with exact integer arithmetic for r = 1/2 and r = 1/4.
    let (total_steps, n) = (30usize, 1_000_003usize);
    for (ratio, denominator) in [(0.5, 2usize), (0.25, 4)] {
        for done in [1usize, 11, 21, 29, 30] {
            let exact = (total_steps - done) * n / (total_steps * denominator);
            assert_eq!(
                proximal_rank(ratio, total_steps, done, n),
                exact,
                "r = {ratio}, done = {done}"
            );
        }
    }
}

/// Wraps SalUn-soft's hook: after each of its steps, counts the entries back at the epoch's θ0
/// (snapshotted here, independently) and checks the ρ it used.
struct Checked {
    inner: ProximalHook,
    theta0: Vec<Tensor>,
    expected_rho: Vec<usize>,
    checked: usize,
    moved: i64,
}

impl StepHook for Checked {
    fn start_epoch(&mut self, ctx: &UnlearnContext, epoch: usize) -> anyhow::Result<()> {
        self.theta0 = ctx
            .model
            .vs
            .trainable_variables()
            .iter()
            .map(|p| p.detach().copy())
            .collect();
        self.inner.start_epoch(ctx, epoch)
    }
    fn after_step(
        &mut self,
        ctx: &UnlearnContext,
        opt: &mut Sgd,
        step: &StepInfo,
    ) -> anyhow::Result<()> {
        self.inner.after_step(ctx, opt, step)?;
        assert_eq!(step.stream, Stream::Mixed, "one loader over F ∪ R");
        let rho = self.expected_rho[step.epoch];
        assert_eq!(self.inner.last_rho, rho, "epoch {}", step.epoch);
        let params = ctx.model.vs.trainable_variables();
        let (mut equal, mut moved) = (0i64, 0i64);
        for (p, p0) in params.iter().zip(&self.theta0) {
            let same = p.eq_tensor(p0).sum(Kind::Int64).int64_value(&[]);
            equal += same;
            moved += p.numel() as i64 - same;
        }
        assert!(
            equal >= rho as i64,
            "epoch {}, step {}: {equal} entries at θ0 < ρ {rho}",
            step.epoch,
            step.index
        );
        self.moved = self.moved.max(moved);
        self.checked += 1;
        Ok(())
    }
}

#[test]
fn salun_soft_thresholds_after_every_step_with_a_rho_decaying_by_epoch() {
    common::pin_threads();
    let mut fixture = DigitsFixture::new(false);
    fixture.splits.retain.truncate(300);
    let model = fixture.fresh_model().model;
    let epochs = 2;
    let cfg = UnlearnConfig {
        mask_ratio: 0.5,
        ..config(0.013, epochs)
    };
    let dir = tempfile::tempdir().unwrap();
    let ctx = fixture.context(&model, None, &cfg, dir.path());
    let layout = soft_layout(fixture.ds.name);
    // ρ per epoch, from the formula: L counts the separate loaders' batches.
    let l = fixture.splits.forget.len().div_ceil(64) + fixture.splits.retain.len().div_ceil(64);
    let t = epochs * l;
    let n = model.num_parameters();
    let expected_rho: Vec<usize> = (0..epochs)
        .map(|e| (0.5 * ((t - (e * l + 1)) as f64 / t as f64 * n as f64)) as usize)
        .collect();
    assert!(expected_rho[0] > expected_rho[1] && expected_rho[1] > 0);
    let mut hook = Checked {
        inner: ProximalHook::new(&ctx, epochs, layout),
        theta0: Vec::new(),
        expected_rho,
        checked: 0,
        moved: 0,
    };
    let mut log = UnlearnLog::default();
    run_rl(&ctx, &mut log, 0.013, epochs, layout, &mut hook).unwrap();
    let all = fixture.splits.forget.len() + fixture.splits.retain.len();
    assert_eq!(
        hook.checked,
        epochs * all.div_ceil(64),
        "every step checked"
    );
    assert!(hook.moved > 0, "no weight left θ0");
    assert_eq!(log.ran["mode"], "concatenated");
}
