//! Parity of one adversarial-unlearning iteration (SPEC §5) with a PyTorch implementation
//! (`bench/reference.py`, run through `tests/python/gan_step_ref.py` with the `.venv`'s torch):
//! same weights, same images, labels and sensitivity noise; compares the attacker's output,
//! the attacker inputs, every loss, and every defender and attacker variable after each of three
//! consecutive iterations (momentum and Adam state included).

mod common;

use gunlearn::bench::mia::find_python;
use gunlearn::checkpoint::{named_tensors, read_safetensors, write_safetensors};
use gunlearn::model::attacker::Attacker;
use gunlearn::model::{Arch, Classifier, Layout, ModelSpec};
use gunlearn::optim::{Adam, Sgd};
use gunlearn::unlearn::gan::{
    adversarial_step, attacker_inputs, barlow_twins, paired_batch_size, GanMemory, StepInputs,
    StepSettings, ATTACKER_LR,
};
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Pins libtorch's intra-op threads (the test machine's cores are shared).
fn threads() -> i32 {
    common::pin_threads() as i32
}

const BATCH: i64 = 8;
const ITERATIONS: usize = 3;
const LR: f64 = 0.05;
const MOMENTUM: f64 = 0.9;
const WEIGHT_DECAY: f64 = 5e-4;
const BETA: f64 = 1.0;
const LOSS_NAMES: [&str; 5] = ["attacker", "L_cls", "L_adv", "L_bt", "total"];

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

fn max_abs(a: &Tensor) -> f64 {
    a.abs().max().to_kind(Kind::Double).double_value(&[])
}

fn save(path: &Path, tensors: Vec<(&str, &Tensor)>) {
    let named: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.shallow_clone()))
        .collect();
    write_safetensors(path, &named).unwrap();
}

/// Runs the PyTorch side on the files in `dir` and returns its outputs.
fn run_reference(dir: &Path) -> HashMap<String, Tensor> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/gan_step_ref.py");
    let out = std::process::Command::new(find_python())
        .arg(&script)
        .arg(dir)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "gan_step_ref.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_safetensors(&dir.join("out.safetensors")).unwrap()
}

/// A copy of `model` (fresh variables with the same values).
fn clone_classifier(model: &Classifier) -> Classifier {
    let mut copy = Classifier::new(&model.spec, Device::Cpu);
    copy.layout = model.layout;
    gunlearn::checkpoint::copy_into(&copy.vs, named_tensors(&model.vs).into_iter().collect())
        .unwrap();
    copy
}

/// A copy of `attacker` (same dropout rate 0 as the one under test).
fn clone_attacker(attacker: &Attacker) -> Attacker {
    let copy = Attacker::new(10, 0.0, Device::Cpu);
    gunlearn::checkpoint::copy_into(&copy.vs, named_tensors(&attacker.vs).into_iter().collect())
        .unwrap();
    copy
}

/// The reference's layout: PyTorch's kernels, as the reference code runs them.
#[test]
fn one_to_three_iterations_match_pytorch() {
    iterations_match_pytorch(Layout::Nchw);
}

/// `--layout auto` on the CPU: the same iterations with channels-last activations on both sides.
#[test]
fn one_to_three_channels_last_iterations_match_pytorch() {
    assert_eq!(Layout::Auto.resolve(Device::Cpu), Layout::ChannelsLast);
    iterations_match_pytorch(Layout::ChannelsLast);
}

fn iterations_match_pytorch(layout: Layout) {
    let threads = threads();
    tch::manual_seed(20_240_611);
    let spec = ModelSpec::cifar10(Arch::Resnet20);
    let mut model = Classifier::new(&spec, Device::Cpu);
    model.layout = layout;
    let attacker = Attacker::new(10, 0.0, Device::Cpu);
    let inputs = common::random_step_inputs(BATCH);
    // Attacker rows of realistic scale: logits, one-hot labels, sensitivities of tens.
    let probe = Tensor::cat(
        &[
            Tensor::randn([16, 10], (Kind::Float, Device::Cpu)) * 2.0,
            Tensor::randint(10, [16], (Kind::Int64, Device::Cpu))
                .one_hot(10)
                .to_kind(Kind::Float),
            Tensor::rand([16, 10], (Kind::Float, Device::Cpu)) * 50.0,
        ],
        1,
    );

    let dir = tempfile::tempdir().unwrap();
    write_safetensors(
        &dir.path().join("defender.safetensors"),
        &named_tensors(&model.vs),
    )
    .unwrap();
    write_safetensors(
        &dir.path().join("attacker.safetensors"),
        &named_tensors(&attacker.vs),
    )
    .unwrap();
    save(
        &dir.path().join("inputs.safetensors"),
        vec![
            ("retain_images", &inputs.retain.images),
            ("retain_labels", &inputs.retain.labels),
            ("forget_images", &inputs.forget.images),
            ("forget_labels", &inputs.forget.labels),
            ("val_images", &inputs.val.images),
            ("val_labels", &inputs.val.labels),
            ("noise_forget", &inputs.noise_forget),
            ("noise_val", &inputs.noise_val),
            ("probe", &probe),
        ],
    );
    let config = serde_json::json!({
        "arch": "resnet20", "num_classes": 10, "in_channels": 3, "mean": spec.mean, "std": spec.std,
        "lr": LR, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY, "beta": BETA,
        "iterations": ITERATIONS, "threads": threads,
        "channels_last": layout == Layout::ChannelsLast,
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let reference = run_reference(dir.path());

    // The attacker alone, on identical rows, on a copy (train mode moves BatchNorm statistics).
    let probe_attacker = clone_attacker(&attacker);
    for (mode, train) in [("probe_eval", false), ("probe_train", true)] {
        let ours = tch::no_grad(|| probe_attacker.forward(&probe, train));
        let d = max_diff(&ours, &reference[mode]);
        println!("attacker output ({mode}): max |diff| {d:.3e}");
        assert!(d <= 1e-5, "attacker output ({mode}) differs by {d}");
    }

    // Attacker inputs [z, onehot, s] on a copy of D. s = |z̃ − z|/1e-3 amplifies the last bits of
    // the logits a thousandfold, hence a relative bound.
    let d_copy = clone_classifier(&model);
    tch::no_grad(|| {
        for (key, b, noise) in [
            ("rows_forget", &inputs.forget, &inputs.noise_forget),
            ("rows_val", &inputs.val, &inputs.noise_val),
        ] {
            let rows = attacker_inputs(&d_copy, &b.images, &b.labels, noise).rows;
            let want = &reference[key];
            let d = max_diff(&rows, want);
            println!(
                "{key}: max |diff| {d:.3e} (max |value| {:.3e})",
                max_abs(want)
            );
            assert!(d <= 1e-4 * max_abs(want).max(1.0), "{key} differs by {d}");
        }
    });

    // Both ways of getting the defender's gradient must match PyTorch.
    for memory in [GanMemory::Keep, GanMemory::Recompute] {
        println!("--- attacker-input graphs: {memory:?}");
        let model = clone_classifier(&model);
        let attacker = clone_attacker(&attacker);
        iterations_match(&model, &attacker, &inputs, &reference, memory);
    }
}

/// Runs [`ITERATIONS`] iterations from the shared starting point and compares each with PyTorch's.
fn iterations_match(
    model: &Classifier,
    attacker: &Attacker,
    inputs: &StepInputs,
    reference: &HashMap<String, Tensor>,
    memory: GanMemory,
) {
    let mut opt_d = Sgd::new(model.vs.trainable_variables(), LR, MOMENTUM, WEIGHT_DECAY);
    let mut opt_a = Adam::new(attacker.vs.trainable_variables(), ATTACKER_LR);
    // Deep copies: on the CPU `named_tensors` shares storage with the live variables.
    let snapshot = |vs: &tch::nn::VarStore| -> HashMap<String, Tensor> {
        named_tensors(vs)
            .into_iter()
            .map(|(k, v)| (k, v.copy()))
            .collect()
    };
    let mut before_d = snapshot(&model.vs);
    let mut before_a = snapshot(&attacker.vs);
    for i in 0..ITERATIONS {
        let s = adversarial_step(
            model,
            attacker,
            &mut opt_d,
            &mut opt_a,
            None,
            inputs,
            StepSettings {
                beta: BETA,
                memory,
                ..StepSettings::default()
            },
            i + 1,
        )
        .unwrap();
        let ours = [
            s.attacker_loss,
            s.retain_loss,
            s.adv_loss,
            s.bt_loss,
            s.total_loss,
        ];
        let want = Vec::<f64>::try_from(&reference[&format!("losses.{i}")]).unwrap();
        for ((name, o), w) in LOSS_NAMES.iter().zip(ours).zip(&want) {
            let rel = (o - w).abs() / w.abs().max(1e-6);
            println!(
                "iteration {}: {name} ours {o:.7} pytorch {w:.7} rel {rel:.2e}",
                i + 1
            );
            assert!(rel <= 1e-4, "iteration {}: {name} {o} vs {w}", i + 1);
        }
        // Adam's first steps are ±lr·g/(|g| + 1e-8): for gradients near 1e-8 the last bits of g
        // show in the update, hence a looser relative bound for the attacker (observed: ≤ 4e-5
        // for the defender, ≤ 2e-4 for the attacker).
        for (side, vs, before, update_tol) in [
            ("defender", &model.vs, &mut before_d, 1e-3),
            ("attacker", &attacker.vs, &mut before_a, 3e-3),
        ] {
            let after = snapshot(vs);
            let (mut worst_value, mut worst_update) = (0.0f64, 0.0f64);
            for (name, ours) in &after {
                let want = reference
                    .get(&format!("{side}.{i}.{name}"))
                    .unwrap_or_else(|| panic!("PyTorch has no {side} variable {name}"));
                let (ours, want, start) = if name.ends_with("in_proj_bias") {
                    // The key bias has a mathematically zero gradient (softmax ignores a shift
                    // shared by all keys): Adam turns its rounding noise into ±lr steps on
                    // either side, so only the query and value biases are compared.
                    let d = want.size()[0] / 3;
                    let keep = Tensor::cat(
                        &[
                            Tensor::arange(d, (Kind::Int64, Device::Cpu)),
                            Tensor::arange_start(2 * d, 3 * d, (Kind::Int64, Device::Cpu)),
                        ],
                        0,
                    );
                    (
                        ours.index_select(0, &keep),
                        want.index_select(0, &keep),
                        before[name].index_select(0, &keep),
                    )
                } else {
                    (
                        ours.shallow_clone(),
                        want.shallow_clone(),
                        before[name].shallow_clone(),
                    )
                };
                let d = max_diff(&ours, &want);
                assert!(
                    d <= 1e-4,
                    "iteration {}: {side} {name} differs by {d}",
                    i + 1
                );
                worst_value = worst_value.max(d);
                // The update itself (p_after − p_before), relative to its size in L2 norm: far
                // stricter than the absolute bound on the values when the learning rate is small.
                let step_ours = (&ours - &start).to_kind(Kind::Double);
                let step_want = (&want - &start).to_kind(Kind::Double);
                let norm = step_want.norm().double_value(&[]);
                if norm > 0.0 {
                    let rel = (&step_ours - &step_want).norm().double_value(&[]) / norm;
                    worst_update = worst_update.max(rel);
                    assert!(
                        rel <= update_tol,
                        "iteration {}: {side} {name} update differs by {rel:.3e} (relative)",
                        i + 1
                    );
                }
            }
            let theirs = reference
                .keys()
                .filter(|k| k.starts_with(&format!("{side}.{i}.")))
                .count();
            assert_eq!(after.len(), theirs, "{side}: variable count differs");
            println!(
                "iteration {}: {side} {} variables, max |diff| {worst_value:.3e}, max relative update diff {worst_update:.3e}",
                i + 1,
                after.len()
            );
            // Continue from PyTorch's values (our optimizer state stays ours): the sensitivity
            // s = |z̃ − z|/1e-3 is a float32 finite difference, so a 1e-6 difference in the
            // weights moves the next iteration's gradient through sign(z̃ − z) by far more
            // than 1e-4 — on both sides alike. Re-syncing keeps each iteration a like-for-like
            // check while the momentum and Adam moments carry over.
            tch::no_grad(|| {
                for (name, mut var) in vs.variables() {
                    var.copy_(&reference[&format!("{side}.{i}.{name}")]);
                }
            });
            *before = snapshot(vs);
        }
    }
}

/// Unbiased standardisation and the Barlow-Twins sum written out with plain loops in f64.
// Index loops on purpose: they read as the matrix formula M_ij = Σ_k v̂_ki f̂_kj / B.
#[allow(clippy::needless_range_loop)]
fn barlow_twins_by_hand(v: &[Vec<f64>], f: &[Vec<f64>]) -> f64 {
    let b = v.len();
    let dim = v[0].len();
    let standardise = |x: &[Vec<f64>]| -> Vec<Vec<f64>> {
        let mut out = vec![vec![0.0; dim]; b];
        for j in 0..dim {
            let mean = x.iter().map(|r| r[j]).sum::<f64>() / b as f64;
            let var = x.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / (b - 1) as f64;
            for i in 0..b {
                out[i][j] = (x[i][j] - mean) / var.sqrt();
            }
        }
        out
    };
    let (sv, sf) = (standardise(v), standardise(f));
    let mut loss = 0.0;
    for i in 0..dim {
        for j in 0..dim {
            let m: f64 = (0..b).map(|k| sv[k][i] * sf[k][j]).sum::<f64>() / b as f64;
            loss += if i == j {
                (m - 1.0).powi(2)
            } else {
                5e-3 * m * m
            };
        }
    }
    loss
}

#[test]
fn barlow_twins_matches_hand_formula() {
    threads();
    tch::manual_seed(3);
    for (b, dim) in [(6, 5), (16, 12), (2, 3)] {
        let v = Tensor::randn([b, dim], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
        let f = (&v * 0.5 + Tensor::randn([b, dim], (Kind::Float, Device::Cpu))).relu() + 0.01;
        let rows = |t: &Tensor| -> Vec<Vec<f64>> {
            Vec::<Vec<f64>>::try_from(&t.to_kind(Kind::Double)).unwrap()
        };
        let want = barlow_twins_by_hand(&rows(&v), &rows(&f));
        let got = barlow_twins(&v, &f).double_value(&[]);
        println!("B {b} D {dim}: ours {got:.6} hand {want:.6}");
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
            "B {b} D {dim}: {got} vs {want}"
        );
    }
    // Identical inputs: M is the sample correlation matrix scaled by (B−1)/B (unbiased std), so
    // every diagonal term is exactly (1/B)²; the off-diagonal ones add on top.
    let x = Tensor::randn([10, 4], (Kind::Float, Device::Cpu));
    let got = barlow_twins(&x, &x).double_value(&[]);
    let rows = Vec::<Vec<f64>>::try_from(&x.to_kind(Kind::Double)).unwrap();
    let hand = barlow_twins_by_hand(&rows, &rows);
    assert!((got - hand).abs() <= 1e-5, "{got} vs {hand}");
    assert!(
        got >= 4.0 * 0.01 - 1e-6,
        "diagonal terms (1/B)² missing: {got}"
    );
}

#[test]
fn barlow_twins_with_a_feature_constant_over_the_batch_stays_finite() {
    // A ReLU unit that is off for every sample (variance 0): the plain formula divides 0 by 0.
    // It becomes a zero column: L_bt is that of the other features plus 1 (its diagonal term
    // (0 − 1)²), and every gradient is finite.
    threads();
    tch::manual_seed(5);
    let (b, dim, dead) = (8, 6, 2);
    let alive = |t: &Tensor| {
        let keep: Vec<i64> = (0..dim).filter(|&j| j != dead).collect();
        t.index_select(1, &Tensor::from_slice(&keep))
    };
    let with_dead = |t: Tensor| {
        let mask = Tensor::ones([1, dim], (Kind::Float, Device::Cpu));
        let _ = mask.narrow(1, dead, 1).fill_(0.0);
        t * mask
    };
    let v = with_dead(Tensor::randn([b, dim], (Kind::Float, Device::Cpu))).set_requires_grad(true);
    let f = with_dead(Tensor::randn([b, dim], (Kind::Float, Device::Cpu))).set_requires_grad(true);
    let loss = barlow_twins(&v, &f);
    let rows = |t: &Tensor| -> Vec<Vec<f64>> {
        Vec::<Vec<f64>>::try_from(&alive(&t.detach()).to_kind(Kind::Double)).unwrap()
    };
    let want = barlow_twins_by_hand(&rows(&v), &rows(&f)) + 1.0;
    let got = loss.double_value(&[]);
    assert!((got - want).abs() <= 1e-5 * want, "{got} vs {want}");
    loss.backward();
    for (name, t) in [("val", &v), ("forget", &f)] {
        let g = t.grad();
        assert_eq!(
            g.isfinite().all().int64_value(&[]),
            1,
            "{name} gradient has NaN/inf"
        );
        assert_eq!(
            g.narrow(1, dead, 1).abs().max().double_value(&[]),
            0.0,
            "{name}: the constant feature gets no gradient"
        );
    }
    // A constant but nonzero feature is treated the same.
    let c = Tensor::ones([b, 3], (Kind::Float, Device::Cpu)) * 0.7;
    assert!(barlow_twins(&c, &c).double_value(&[]).is_finite());
}

#[test]
fn paired_batch_size_shrinks_to_the_smaller_set() {
    assert_eq!(paired_batch_size(256, 4500, 5000).unwrap(), 256);
    assert_eq!(paired_batch_size(256, 100, 5000).unwrap(), 100);
    assert_eq!(paired_batch_size(256, 4500, 40).unwrap(), 40);
    assert_eq!(paired_batch_size(64, 30, 20).unwrap(), 20);
    assert_eq!(paired_batch_size(2, 2, 2).unwrap(), 2);
    let empty = paired_batch_size(256, 0, 5000).unwrap_err().to_string();
    assert!(empty.contains("forget set is empty"), "{empty}");
    let tiny = paired_batch_size(256, 1, 5000).unwrap_err().to_string();
    assert!(tiny.contains("at least 2"), "{tiny}");
    let tiny_val = paired_batch_size(256, 100, 1).unwrap_err().to_string();
    assert!(tiny_val.contains("(got 100 and 1)"), "{tiny_val}");
}
