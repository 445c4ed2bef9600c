//! The defender step's ways of getting its gradient through D's attacker-input passes
//! (`--gan_memory`), against the step written out by hand with every graph kept (the
//! reference's way): `keep` is that step exactly; `recompute` gives the same update up to the
//! order in which the gradient is summed; with β = 0 the passes run without graphs and the
//! update is still exactly the hand-written one.

mod common;

use gunlearn::checkpoint::{copy_into, named_tensors};
use gunlearn::model::attacker::Attacker;
use gunlearn::model::mask::Mask;
use gunlearn::model::{Arch, Classifier, ModelSpec};
use gunlearn::optim::{Adam, Sgd};
use gunlearn::train::masked_update;
use gunlearn::unlearn::gan::{
    adversarial_step, attacker_inputs, attacker_step, barlow_twins, GanMemory, StepInputs,
    StepSettings, ADV_WEIGHT, ATTACKER_DROPOUT, ATTACKER_LR, BT_WEIGHT,
};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

const BATCH: i64 = 6;
const ITERATIONS: usize = 3;
const LR: f64 = 0.05;

/// D, A, D's mask and both optimizers: one player pair in a fixed starting state.
struct Players {
    model: Classifier,
    attacker: Attacker,
    mask: Mask,
    opt_d: Sgd,
    opt_a: Adam,
}

impl Players {
    /// Fresh copies of `model` (with `mask`) and `attacker`, with new optimizers.
    fn copy_of(model: &Classifier, attacker: &Attacker, mask: &Mask) -> Players {
        let model_copy = Classifier::new(&model.spec, Device::Cpu);
        copy_into(
            &model_copy.vs,
            named_tensors(&model.vs).into_iter().collect(),
        )
        .unwrap();
        let attacker_copy = Attacker::new(10, ATTACKER_DROPOUT, Device::Cpu);
        copy_into(
            &attacker_copy.vs,
            named_tensors(&attacker.vs).into_iter().collect(),
        )
        .unwrap();
        let opt_d = Sgd::new(model_copy.vs.trainable_variables(), LR, 0.9, 5e-4);
        let opt_a = Adam::new(attacker_copy.vs.trainable_variables(), ATTACKER_LR);
        Players {
            model: model_copy,
            attacker: attacker_copy,
            mask: Mask {
                masks: mask
                    .masks
                    .iter()
                    .map(|(k, v)| (k.clone(), v.copy()))
                    .collect(),
            },
            opt_d,
            opt_a,
        }
    }

    /// Every variable of D (BatchNorm running statistics included) and of A, deep-copied.
    fn state(&self) -> HashMap<String, Tensor> {
        let mut all = HashMap::new();
        for (prefix, vs) in [("D.", &self.model.vs), ("A.", &self.attacker.vs)] {
            for (name, t) in named_tensors(vs) {
                all.insert(format!("{prefix}{name}"), t.copy());
            }
        }
        all
    }
}

/// SPEC §5 steps 2–3 written out with every graph kept until one backward.
fn step_by_hand(p: &mut Players, inputs: &StepInputs, beta: f64) {
    let forget = attacker_inputs(
        &p.model,
        &inputs.forget.images,
        &inputs.forget.labels,
        &inputs.noise_forget,
    );
    let val = attacker_inputs(
        &p.model,
        &inputs.val.images,
        &inputs.val.labels,
        &inputs.noise_val,
    );
    attacker_step(&p.attacker, &mut p.opt_a, &forget.rows, &val.rows);
    let (logits, _) = p.model.forward(&inputs.retain.images, true);
    let l_cls = logits.cross_entropy_for_logits(&inputs.retain.labels);
    let flipped = Tensor::cat(
        &[
            Tensor::zeros([BATCH], (Kind::Int64, Device::Cpu)),
            Tensor::ones([BATCH], (Kind::Int64, Device::Cpu)),
        ],
        0,
    );
    let l_adv = p
        .attacker
        .forward(&Tensor::cat(&[&forget.rows, &val.rows], 0), true)
        .cross_entropy_for_logits(&flipped);
    let l_bt = barlow_twins(&val.features, &forget.features);
    let total = l_cls + (l_bt * BT_WEIGHT + l_adv * ADV_WEIGHT) * beta;
    masked_update(&p.model, &mut p.opt_d, Some(&p.mask), &total);
}

/// Largest |a − b| / max(|b|, 1e-3) over every variable (the relative scale of each update).
fn worst_relative(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> (f64, String) {
    let mut worst = (0.0, String::new());
    for (name, want) in b {
        let got = &a[name];
        let scale = want.abs().max().double_value(&[]).max(1e-3);
        let d = (got - want).abs().max().double_value(&[]) / scale;
        if d > worst.0 {
            worst = (d, name.clone());
        }
    }
    worst
}

/// Runs [`ITERATIONS`] iterations three ways from one starting state and compares the states.
fn compare(beta: f64) {
    common::pin_threads();
    tch::manual_seed(77);
    let model = Classifier::new(&ModelSpec::cifar10(Arch::Resnet20), Device::Cpu);
    let mask = Mask::global_magnitude(&model, 0.5, None);
    mask.apply_to_weights(&model.vs);
    let attacker = Attacker::new(10, ATTACKER_DROPOUT, Device::Cpu);
    let steps: Vec<StepInputs> = (0..ITERATIONS)
        .map(|_| common::random_step_inputs(BATCH))
        .collect();

    let mut by_hand = Players::copy_of(&model, &attacker, &mask);
    let mut keep = Players::copy_of(&model, &attacker, &mask);
    let mut recompute = Players::copy_of(&model, &attacker, &mask);
    for (i, step) in steps.iter().enumerate() {
        // The attacker's dropout draws from the global generator: the same seed for each way.
        tch::manual_seed(1000 + i as i64);
        step_by_hand(&mut by_hand, step, beta);
        for (players, memory) in [
            (&mut keep, GanMemory::Keep),
            (&mut recompute, GanMemory::Recompute),
        ] {
            tch::manual_seed(1000 + i as i64);
            let settings = StepSettings {
                beta,
                memory,
                ..StepSettings::default()
            };
            adversarial_step(
                &players.model,
                &players.attacker,
                &mut players.opt_d,
                &mut players.opt_a,
                Some(&players.mask),
                step,
                settings,
                i + 1,
            )
            .unwrap();
        }
        let want = by_hand.state();
        let (keep_state, recompute_state) = (keep.state(), recompute.state());
        assert_eq!(want.len(), keep_state.len());
        if beta == 0.0 {
            // No graphs at all for the attacker-input passes: still exactly the same update.
            for (name, t) in &want {
                assert!(t.equal(&keep_state[name]), "β = 0, keep: {name} differs");
                assert!(
                    t.equal(&recompute_state[name]),
                    "β = 0, recompute: {name} differs"
                );
            }
        } else {
            for (name, t) in &want {
                assert!(t.equal(&keep_state[name]), "keep: {name} differs");
            }
            let (worst, name) = worst_relative(&recompute_state, &want);
            println!(
                "iteration {}: recompute vs keep, worst relative difference {worst:.2e} ({name})",
                i + 1
            );
            assert!(
                worst <= 1e-5,
                "recompute: {name} differs by {worst:e} (relative)"
            );
        }
        // Continue from the hand-written state (the optimizers' state stays each one's own):
        // s = |z̃ − z| / 1e-3 is a float32 finite difference, so a 1e-7 difference in the weights
        // moves the next iteration's gradient through sign(z̃ − z) by far more than 1e-5.
        for (prefix, vs) in [("D.", &recompute.model.vs), ("A.", &recompute.attacker.vs)] {
            tch::no_grad(|| {
                for (name, mut var) in vs.variables() {
                    var.copy_(&want[&format!("{prefix}{name}")]);
                }
            });
        }
        // Pruned weights stay exactly zero on every path.
        for players in [&keep, &recompute] {
            let vars = players.model.vs.variables();
            for (name, m) in &players.mask.masks {
                let pruned: Tensor = vars[name].abs() * (m.ones_like() - m);
                let pruned_sum = pruned.sum(Kind::Float);
                assert_eq!(
                    pruned_sum.double_value(&[]),
                    0.0,
                    "{name}: a pruned weight moved"
                );
            }
        }
    }
    // Sanity: the run changed D at all (β > 0 or not, the retain loss moves it).
    let start = Players::copy_of(&model, &attacker, &mask).state();
    let (moved, _) = worst_relative(&keep.state(), &start);
    assert!(moved > 1e-4, "the iterations left D unchanged");
}

#[test]
fn keep_and_recompute_give_the_hand_written_update() {
    compare(1.0);
}

#[test]
fn beta_zero_runs_the_attacker_passes_without_graphs_and_changes_nothing() {
    compare(0.0);
}
