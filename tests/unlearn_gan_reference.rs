//! Our adversarial iteration (SPEC §5) against two iterations run by the reference code's own
//! loop (`shared/reference/gan-iteration-parity-c10.safetensors`, described in
//! `shared/README.md`): ResNet-18 with CIFAR-10 normalisation, batch 4, m = 10 noisy copies,
//! random forgetting (β = 1), unlearn lr 0.01, momentum 0.9, weight decay 5e-4, attacker Adam
//! lr 1e-3 and dropout 0. Starting from the file's defender and attacker, fed the file's
//! batches and noise draws, two calls of [`adversarial_step`] must land on the file's defender
//! and attacker tensors and reproduce the losses and attacker accuracy it printed.
//!
//! Tolerances. Both sides run float32 on the CPU and may sum in different orders; the
//! sensitivity feature is a finite difference of step 1e-3 (its rounding is amplified a
//! thousandfold), and Adam's first steps normalise gradients, rounding noise included. The
//! defender's BatchNorm and conv updates, which get most of their gradient through the
//! sensitivity, are therefore reproducible only to a few percent: the same loop run with
//! PyTorch 2.11 in float32 on our development CPU lands 3.2e-2 (BatchNorm) and 2.4e-2 (convs)
//! away from the file in the update's relative error, and in float64 0.76 to 0.9 away. The
//! errors also depend on the CPU (its vector kernels sum in another order): each bound is about
//! twice the largest error seen with 1 and 2 threads on two CPUs (in brackets: the earlier
//! development CPU; an AMD EPYC), on ‖ours − reference‖ / ‖reference − before‖ per tensor and on
//! max |ours − reference| / max(1, max |reference|), and stays far below what every wrong
//! weighting below gives:
//!
//! | group                                   | update error               | value error               |
//! |-----------------------------------------|----------------------------|---------------------------|
//! | defender BatchNorm weights and biases   | 2e-1 (3.1e-2; 9.5e-2)      | 3e-3 (4.8e-4; 1.5e-3)     |
//! | defender convs                          | 2e-1 (2.7e-2; 7.6e-2)      | 2e-2 (3.0e-3; 8.9e-3)     |
//! | defender fc                             | 2e-3 (1.1e-4; 7.6e-4)      | 1e-4 (1.9e-6; 8.4e-6)     |
//! | defender running statistics             | 2e-4 (8.9e-6; 6.9e-5)      | 1e-4 (2.8e-6; 2.5e-5)     |
//! | attacker parameters                     | 6e-3 (1.1e-3; 2.7e-3)      | 7e-4 (1.6e-4; 3.3e-4)     |
//! | attacker attention key biases           | —                          | 1e-3 (1.0e-4; 9.8e-5)     |
//! | attacker running statistics             | 1.2e-3 (9.0e-5; 5.7e-4)    | 1.2e-3 (1.0e-4; 5.0e-4)   |
//!
//! Losses: L_cls to 1e-5 and L_adv to 4e-4 relative (seen: 2e-7, 2.6e-5; 4.5e-6, 1.7e-4), the attacker loss to
//! the 4 decimals it was printed with, the attacker accuracy exactly. Every wrong weighting we
//! tried lands far outside: β = 0.5 moves the defender's BatchNorm and conv updates by ≈ 0.8,
//! fc by 0.24, the running statistics by 0.26 and the attacker by 0.44 (relative), and L_cls
//! of the second iteration by 2.4 %; with PyTorch, dropping the Barlow-Twins term, weighting
//! L_adv 0.8 or 1.0 instead of 0.9, flipping its sign or detaching s all move the BatchNorm and
//! conv updates by more than 0.75.

mod common;

use gunlearn::checkpoint::copy_into;
use gunlearn::data::batches::Batch;
use gunlearn::model::attacker::Attacker;
use gunlearn::model::{Arch, Classifier, Layout, ModelSpec};
use gunlearn::optim::{Adam, Sgd};
use gunlearn::unlearn::gan::{
    adversarial_step, StepInputs, StepSettings, StepStats, ATTACKER_LR, SENSITIVITY_COPIES,
    SENSITIVITY_SIGMA,
};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

/// The reference run's settings (shared/README.md).
const LR: f64 = 0.01;
const MOMENTUM: f64 = 0.9;
const WEIGHT_DECAY: f64 = 5e-4;
const BETA: f64 = 1.0;
const ITERATIONS: usize = 2;
/// Train-mode passes of D per iteration (F, noisy F, V, noisy V, R) and of A (its own step,
/// then L_adv): what each BatchNorm's `num_batches_tracked` counts.
const DEFENDER_PASSES: i64 = 5;
const ATTACKER_PASSES: i64 = 2;

/// Relative tolerances on the retain loss and L_adv (the reference printed them in full).
const RETAIN_LOSS_TOL: f64 = 1e-5;
const ADV_LOSS_TOL: f64 = 4e-4;
/// Half a unit of the 4th decimal, as the reference printed the attacker's loss, plus our own
/// rounding.
const PRINTED_LOSS_TOL: f64 = 6e-5;

fn reference_path() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/reference/gan-iteration-parity-c10.safetensors");
    assert!(p.exists(), "{} missing", p.display());
    p
}

/// Every tensor of the reference file.
fn reference() -> HashMap<String, Tensor> {
    Tensor::read_safetensors(reference_path())
        .unwrap()
        .into_iter()
        .collect()
}

/// The safetensors header's `__metadata__` (string to string).
fn metadata() -> HashMap<String, String> {
    let mut file = std::fs::File::open(reference_path()).unwrap();
    let mut len = [0u8; 8];
    file.read_exact(&mut len).unwrap();
    let mut header = vec![0u8; u64::from_le_bytes(len) as usize];
    file.read_exact(&mut header).unwrap();
    let mut header: HashMap<String, serde_json::Value> = serde_json::from_slice(&header).unwrap();
    serde_json::from_value(header.remove("__metadata__").expect("no __metadata__")).unwrap()
}

/// A metadata entry holding a list of numbers, e.g. `"[2.34, 2.43]"`.
fn numbers(meta: &HashMap<String, String>, key: &str) -> Vec<f64> {
    serde_json::from_str(&meta[key]).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// The attacker losses from the reference's progress lines (`…Loss_A: 0.7823`, 4 decimals).
fn printed_attacker_losses(meta: &HashMap<String, String>) -> Vec<f64> {
    meta["attacker_loss_per_iteration"]
        .split("Loss_A: ")
        .skip(1)
        .map(|rest| {
            let number: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            number.parse().unwrap()
        })
        .collect()
}

/// The tensors stored under `prefix`, renamed without it, as float32 (the defender's are stored
/// as float16 holding exact float32 values). BatchNorm counters are left out: our layers have
/// none (their momentum is fixed, so the count changes no value); they are checked apart.
fn tensors_under(file: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    file.iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(prefix)?;
            (!name.ends_with("num_batches_tracked"))
                .then(|| (name.to_string(), v.to_kind(Kind::Float)))
        })
        .collect()
}

/// D in the reference's N×C×H×W layout (`--layout nchw`): its recorded iterations came from
/// PyTorch's kernels in that layout, and the attacker's sensitivity input |z̃ − z| / 10⁻³
/// magnifies the last bits of the logits a thousandfold, so channels-last's other summation
/// order (like another machine's) leaves the recorded values by more than these tolerances.
fn defender(file: &HashMap<String, Tensor>) -> Classifier {
    let mut model = Classifier::new(&ModelSpec::cifar10(Arch::Resnet18), Device::Cpu);
    model.layout = Layout::Nchw;
    copy_into(&model.vs, tensors_under(file, "D_before.")).unwrap();
    model
}

fn attacker(file: &HashMap<String, Tensor>) -> Attacker {
    let attacker = Attacker::new(10, 0.0, Device::Cpu);
    copy_into(&attacker.vs, tensors_under(file, "A_before.")).unwrap();
    attacker
}

fn batch(file: &HashMap<String, Tensor>, key: &str) -> Batch {
    let images = file[&format!("{key}.x")].shallow_clone();
    let labels = file[&format!("{key}.y")].shallow_clone();
    let n = images.size()[0] as usize;
    Batch {
        images,
        labels,
        indices: (0..n).collect(),
    }
}

/// Iteration `j`'s inputs. The file's noise u is the N(0, 1) draw behind the noisy batch
/// `x.repeat(10, 1, 1, 1) + 1e-3·u`; ours is the perturbation itself, in the same copy-major
/// layout.
fn step_inputs(file: &HashMap<String, Tensor>, j: usize) -> StepInputs {
    let noise = |side: &str| {
        let u = &file[&format!("{side}.{j}.noise")];
        let x = &file[&format!("{side}.{j}.x")];
        let mut want = x.size();
        want[0] *= SENSITIVITY_COPIES;
        assert_eq!(u.size(), want, "{side}.{j}.noise: m·B copies of the batch");
        u * SENSITIVITY_SIGMA
    };
    StepInputs {
        retain: batch(file, &format!("retain.{j}")),
        forget: batch(file, &format!("forget.{j}")),
        val: batch(file, &format!("val.{j}")),
        noise_forget: noise("forget"),
        noise_val: noise("val"),
    }
}

/// Runs the two iterations on `model` and `attacker`, returning each iteration's statistics.
fn run_iterations(
    model: &Classifier,
    attacker: &Attacker,
    file: &HashMap<String, Tensor>,
    beta: f64,
) -> Vec<StepStats> {
    let mut opt_d = Sgd::new(model.vs.trainable_variables(), LR, MOMENTUM, WEIGHT_DECAY);
    let mut opt_a = Adam::new(attacker.vs.trainable_variables(), ATTACKER_LR);
    (0..ITERATIONS)
        .map(|j| {
            adversarial_step(
                model,
                attacker,
                &mut opt_d,
                &mut opt_a,
                None,
                &step_inputs(file, j),
                StepSettings {
                    beta,
                    ..StepSettings::default()
                },
                j + 1,
            )
            .unwrap()
        })
        .collect()
}

/// A group of compared tensors and its tolerance on the relative error of the two-iteration
/// update, ‖ours − reference‖ / ‖reference − before‖ (the weights move little in two steps at
/// lr 0.01, so this is far stricter than a bound on the values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    DefenderBatchNorm,
    DefenderConvs,
    DefenderFc,
    DefenderRunningStats,
    AttackerParameters,
    AttackerKeyBiases,
    AttackerRunningStats,
}

impl Group {
    fn of(side: Side, name: &str) -> Group {
        let running = name.ends_with("running_mean") || name.ends_with("running_var");
        match side {
            Side::Defender if running => Group::DefenderRunningStats,
            Side::Defender if name.starts_with("fc.") => Group::DefenderFc,
            Side::Defender if is_conv(name) => Group::DefenderConvs,
            Side::Defender => Group::DefenderBatchNorm,
            Side::Attacker if running => Group::AttackerRunningStats,
            Side::Attacker => Group::AttackerParameters,
        }
    }

    /// Tolerance on the update's relative error, about twice the largest seen (module doc).
    fn update_tolerance(self) -> f64 {
        match self {
            Group::DefenderBatchNorm | Group::DefenderConvs => 2e-1,
            Group::DefenderFc => 2e-3,
            Group::DefenderRunningStats => 2e-4,
            Group::AttackerParameters => 6e-3,
            // Their update is rounding noise (see `key_bias_split`): only the values are bounded.
            Group::AttackerKeyBiases => f64::INFINITY,
            Group::AttackerRunningStats => 1.2e-3,
        }
    }

    /// Tolerance on max |ours − reference| relative to max(1, max |reference|).
    fn value_tolerance(self) -> f64 {
        match self {
            Group::DefenderBatchNorm => 3e-3,
            Group::DefenderConvs => 2e-2,
            Group::DefenderFc | Group::DefenderRunningStats => 1e-4,
            Group::AttackerParameters => 7e-4,
            // Loose on purpose: their steps are Adam-normalised rounding noise (seen: 1.0e-4).
            Group::AttackerKeyBiases => ATTACKER_LR,
            Group::AttackerRunningStats => 1.2e-3,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Defender,
    Attacker,
}

/// Whether a defender tensor is a conv weight (ResNet-18's names).
fn is_conv(name: &str) -> bool {
    name.ends_with(".weight")
        && (name.starts_with("conv") || name.contains(".conv") || name.contains("downsample.0"))
}

/// Worst differences over one group of tensors.
#[derive(Default, Debug, Clone, Copy)]
struct Worst {
    /// max |ours − reference|.
    abs: f64,
    /// max |ours − reference| / max(1, max |reference|).
    rel: f64,
    /// ‖ours − reference‖ / ‖reference − before‖.
    update: f64,
    /// Tensors in the group.
    count: usize,
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(Kind::Double).double_value(&[])
}

fn norm(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).norm().double_value(&[])
}

/// An attention `in_proj_bias` as (query and value biases, key biases). The key bias has a
/// mathematically zero gradient (softmax ignores a shift shared by all keys), so Adam turns
/// its rounding noise into steps of either sign: its update is compared by value only.
fn key_bias_split(t: &Tensor) -> (Tensor, Tensor) {
    let d = t.size()[0] / 3;
    let query_value = Tensor::cat(&[t.narrow(0, 0, d), t.narrow(0, 2 * d, d)], 0);
    (query_value, t.narrow(0, d, d))
}

/// (group, label, ours, reference, before) for every tensor the reference stored after both
/// iterations, key biases apart.
fn pairs(
    side: Side,
    ours: &HashMap<String, Tensor>,
    before: &HashMap<String, Tensor>,
    after: &HashMap<String, Tensor>,
) -> Vec<(Group, String, Tensor, Tensor, Tensor)> {
    let mut out = Vec::new();
    for (name, want) in after {
        let got = ours
            .get(name)
            .unwrap_or_else(|| panic!("{side:?}: we have no tensor {name}"));
        let start = &before[name];
        if name.ends_with("self_attn.in_proj_bias") {
            let ((gq, gk), (wq, wk), (sq, sk)) = (
                key_bias_split(got),
                key_bias_split(want),
                key_bias_split(start),
            );
            out.push((
                Group::AttackerParameters,
                format!("{name}[q,v]"),
                gq,
                wq,
                sq,
            ));
            out.push((Group::AttackerKeyBiases, format!("{name}[k]"), gk, wk, sk));
        } else {
            out.push((
                Group::of(side, name),
                name.clone(),
                got.shallow_clone(),
                want.shallow_clone(),
                start.shallow_clone(),
            ));
        }
    }
    out
}

/// Compares every tensor stored under `{prefix}_after.` with ours; returns the worst
/// differences per group.
fn compare(
    side: Side,
    prefix: &str,
    ours: &HashMap<String, Tensor>,
    file: &HashMap<String, Tensor>,
) -> BTreeMap<Group, Worst> {
    let before = tensors_under(file, &format!("{prefix}_before."));
    let after = tensors_under(file, &format!("{prefix}_after."));
    let mut worst: BTreeMap<Group, Worst> = BTreeMap::new();
    for (group, name, got, want, start) in pairs(side, ours, &before, &after) {
        let diff = &got - &want;
        let abs = max_abs(&diff);
        let rel = abs / max_abs(&want).max(1.0);
        let moved = norm(&(&want - &start));
        assert!(
            moved > 0.0,
            "{side:?} {name}: the reference did not change it"
        );
        let update = norm(&diff) / moved;
        let w = worst.entry(group).or_default();
        w.abs = w.abs.max(abs);
        w.rel = w.rel.max(rel);
        w.update = w.update.max(update);
        w.count += 1;
    }
    worst
}

/// Deep copies of a store's variables (on the CPU `variables()` shares storage).
fn variables(vs: &tch::nn::VarStore) -> HashMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect()
}

/// The reference's BatchNorm counters moved by ITERATIONS × the train-mode passes per
/// iteration that our step also runs (our layers keep no counter; the running statistics,
/// moved once per pass with momentum 0.1, are compared in the test).
fn check_counters(file: &HashMap<String, Tensor>) {
    let mut n = 0;
    for (key, after) in file {
        let Some(rest) = key.strip_suffix("num_batches_tracked") else {
            continue;
        };
        let Some((side, name)) = rest.split_once("_after.") else {
            continue;
        };
        let passes = if side == "D" {
            DEFENDER_PASSES
        } else {
            ATTACKER_PASSES
        };
        let before = file[&format!("{side}_before.{name}num_batches_tracked")].int64_value(&[]);
        assert_eq!(
            after.int64_value(&[]) - before,
            ITERATIONS as i64 * passes,
            "{key}: train-mode passes per iteration"
        );
        n += 1;
    }
    assert_eq!(n, 21, "20 defender BatchNorm layers and the attacker's");
}

#[test]
fn two_iterations_reproduce_the_reference_loop() {
    common::pin_threads();
    let file = reference();
    let meta = metadata();
    let model = defender(&file);
    let attacker = attacker(&file);
    let stats = run_iterations(&model, &attacker, &file, BETA);

    let retain = numbers(&meta, "retain_loss_per_iteration");
    let adv = numbers(&meta, "defender_attacker_loss_per_iteration");
    let acc = numbers(&meta, "attacker_accuracy_per_iteration");
    let printed = printed_attacker_losses(&meta);
    for (name, list) in [
        ("retain", &retain),
        ("L_adv", &adv),
        ("acc", &acc),
        ("A", &printed),
    ] {
        assert_eq!(list.len(), ITERATIONS, "metadata: {name} per iteration");
    }
    let mut failures = Vec::new();
    for (j, s) in stats.iter().enumerate() {
        println!(
            "iteration {j}: L_cls ours {:.7} reference {:.7}; L_adv ours {:.7} reference {:.7}; \
             attacker loss ours {:.7} printed {:.4}; attacker accuracy ours {}% reference {}%",
            s.retain_loss,
            retain[j],
            s.adv_loss,
            adv[j],
            s.attacker_loss,
            printed[j],
            s.attacker_acc,
            acc[j]
        );
        for (what, ours, want, tol) in [
            ("L_cls", s.retain_loss, retain[j], RETAIN_LOSS_TOL),
            ("L_adv", s.adv_loss, adv[j], ADV_LOSS_TOL),
        ] {
            if (ours - want).abs() > tol * want.abs() {
                failures.push(format!("iteration {j}: {what} {ours} vs {want}"));
            }
        }
        if (s.attacker_loss - printed[j]).abs() > PRINTED_LOSS_TOL {
            failures.push(format!(
                "iteration {j}: attacker loss {} vs printed {}",
                s.attacker_loss, printed[j]
            ));
        }
        if s.attacker_acc != acc[j] {
            failures.push(format!(
                "iteration {j}: attacker accuracy {} vs {}",
                s.attacker_acc, acc[j]
            ));
        }
    }

    let mut worst = compare(Side::Defender, "D", &variables(&model.vs), &file);
    worst.extend(compare(
        Side::Attacker,
        "A",
        &variables(&attacker.vs),
        &file,
    ));
    for (group, w) in &worst {
        println!(
            "{group:?} ({} tensors): max |diff| {:.3e}, max relative {:.3e}, \
             max update error {:.3e} (tolerances {:.0e}, {:.0e})",
            w.count,
            w.abs,
            w.rel,
            w.update,
            group.value_tolerance(),
            group.update_tolerance()
        );
        if w.rel > group.value_tolerance() || w.update > group.update_tolerance() {
            failures.push(format!("{group:?}: {w:?}"));
        }
    }
    assert_eq!(worst.len(), 7, "every group compared: {worst:?}");
    check_counters(&file);
    assert!(
        failures.is_empty(),
        "differs from the reference:\n{}",
        failures.join("\n")
    );
}
