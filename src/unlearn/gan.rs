//! `Gan`: adversarial unlearning (SPEC §5), a min-max game between the defender D (the model
//! being unlearned) and a membership-inference attacker A that tells forget samples from
//! validation samples by D's logits, labels and logit sensitivity to input noise.
//!
//! One iteration per retain batch: fresh random forget/val batches; four forward passes of D
//! (F, noisy F, V, noisy V) build A's inputs; A takes an Adam step on detached inputs; D takes an
//! SGD step on `L_cls + β(0.001·L_bt + 0.9·L_adv)` with gradients flowing through the same
//! forward passes (logits and sensitivity) and A's freshly updated weights, labels flipped.
//! The batch composition of every forward pass is the reference's: BatchNorm's batch statistics
//! depend on it, so it is not merged or split for speed. What may change is how the defender's
//! gradient gets through the attacker-input passes ([`GanMemory`]): all graphs kept, as the
//! reference, or the passes recomputed one at a time (one pass's memory instead of all); with
//! β = 0 no graph is built for them at all (their gradient contribution is exactly zero).

use super::{lr_epochs, UnlearnContext, UnlearnLog, Unlearner};
use crate::checkpoint::{copy_into, named_tensors, read_safetensors, write_safetensors};
use crate::data::batches::Batch;
use crate::data::device_batches::BatchSource;
use crate::device::{with_amp, Amp, StrictFp32};
use crate::epoch_loop::{run_epochs, EpochBatches, EpochLoop, Progress, StepAt};
use crate::model::attacker::Attacker;
use crate::model::mask::Mask;
use crate::model::{Classifier, RunningStats};
use crate::optim::{Adam, Sgd};
use crate::train::{masked_step, masked_update, NonFiniteLoss};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Noisy copies per sample for the sensitivity feature.
pub const SENSITIVITY_COPIES: i64 = 10;
/// Standard deviation of the sensitivity noise (and the finite-difference step).
pub const SENSITIVITY_SIGMA: f64 = 1e-3;
/// Weight of the Barlow-Twins term inside the β bracket.
pub const BT_WEIGHT: f64 = 0.001;
/// Weight of the adversarial term inside the β bracket.
pub const ADV_WEIGHT: f64 = 0.9;
/// Weight of the off-diagonal Barlow-Twins entries.
pub const BT_OFF_DIAGONAL: f64 = 5e-3;
/// Adam learning rate of the attacker.
pub const ATTACKER_LR: f64 = 1e-3;
/// Dropout inside the attacker's transformer layers.
pub const ATTACKER_DROPOUT: f64 = 0.2;

/// Adversarial unlearning.
pub struct Adversarial;

/// D's outputs for one batch and the attacker's input rows built from them.
pub struct AttackerInputs {
    /// `[z, onehot(y), s]`, B×3C, still attached to D's graph.
    pub rows: Tensor,
    /// D's penultimate features h, B×F (train mode).
    pub features: Tensor,
}

/// Builds A's input rows for `images` (in `[0, 1]`) with labels, D in train mode.
/// `noise` is the m·B×C×H×W perturbation already scaled by σ (copies stacked copy-major).
pub fn attacker_inputs(
    model: &Classifier,
    images: &Tensor,
    labels: &Tensor,
    noise: &Tensor,
) -> AttackerInputs {
    let passes = d_passes(model, images, noise);
    AttackerInputs {
        rows: attacker_rows(&passes, labels),
        features: passes.features,
    }
}

/// D's two train-mode forward passes behind one side's attacker inputs.
struct Passes {
    /// Logits of the clean batch, B×C.
    logits: Tensor,
    /// Penultimate features of the clean batch, B×F.
    features: Tensor,
    /// Logits of the m noisy copies, m·B×C.
    noisy_logits: Tensor,
}

/// The clean pass, then the pass over the m noisy copies (the reference's order: BatchNorm's
/// running statistics move in it).
fn d_passes(model: &Classifier, images: &Tensor, noise: &Tensor) -> Passes {
    let (logits, features) = model.forward(images, true);
    let (noisy_logits, _) = model.forward(&noisy_copies(images, noise), true);
    Passes {
        logits,
        features,
        noisy_logits,
    }
}

/// The m noisy copies `x + σ·N(0, 1)` of a batch, copy-major.
fn noisy_copies(images: &Tensor, noise: &Tensor) -> Tensor {
    images.repeat([SENSITIVITY_COPIES, 1, 1, 1]) + noise
}

/// `[z, onehot(y), s]` with `s = mean over copies of |z̃ − z| / σ`.
fn attacker_rows(passes: &Passes, labels: &Tensor) -> Tensor {
    let batch = passes.logits.size()[0];
    let classes = passes.logits.size()[1];
    let sensitivity = (passes
        .noisy_logits
        .view([SENSITIVITY_COPIES, batch, classes])
        - passes.logits.unsqueeze(0))
    .abs()
    .mean_dim(0, false, Kind::Float)
        / SENSITIVITY_SIGMA;
    let onehot = labels.one_hot(classes).to_kind(Kind::Float);
    Tensor::cat(&[&passes.logits, &onehot, &sensitivity], 1)
}

/// Fresh sensitivity noise for a batch of `images`: σ·N(0,1), m copies.
pub fn sensitivity_noise(images: &Tensor) -> Tensor {
    let mut size = images.size();
    size[0] *= SENSITIVITY_COPIES;
    Tensor::randn(size, (Kind::Float, images.device())) * SENSITIVITY_SIGMA
}

/// Standardises each feature over the batch with the unbiased std, as the reference.
///
/// A feature that is constant over the batch (variance 0: a ReLU unit that is off for every
/// sample, frequent in VGG-16-BN's head) is where the reference divides 0 by 0 and its run
/// turns NaN; here it becomes 0 — it has nothing to align — so it adds a constant 1 to L_bt and
/// no gradient. The denominator is made safe *before* the square root: a `where` after it would
/// still send 0 · ∞ = NaN back through the std's gradient. Wherever the variance is positive
/// the value is the reference's.
fn standardise(h: &Tensor) -> Tensor {
    let centred = h - h.mean_dim(0, true, Kind::Float);
    let var = h.var_dim(0, true, true);
    let varies = var.gt(0.0);
    let safe_var = var.where_self(&varies, &var.ones_like());
    centred * varies.to_kind(Kind::Float) / safe_var.sqrt()
}

/// Barlow-Twins loss between validation and forget features:
/// `M = ĥ_Vᵀ ĥ_F / B`, `Σ_i (M_ii − 1)² + 5e-3·Σ_{i≠j} M_ij²`.
pub fn barlow_twins(features_val: &Tensor, features_forget: &Tensor) -> Tensor {
    let batch = features_val.size()[0] as f64;
    let m = standardise(features_val)
        .transpose(0, 1)
        .matmul(&standardise(features_forget))
        / batch;
    let diagonal = m.diagonal(0, 0, 1);
    let on = (&diagonal - 1.0).square().sum(Kind::Float);
    let off = m.square().sum(Kind::Float) - diagonal.square().sum(Kind::Float);
    on + off * BT_OFF_DIAGONAL
}

/// Inputs of one adversarial iteration (kept explicit so that tests and benchmarks can feed the
/// same tensors to the PyTorch implementation).
pub struct StepInputs {
    /// Retain batch.
    pub retain: Batch,
    /// Forget batch (members, label 1 for A).
    pub forget: Batch,
    /// Validation batch (non-members, label 0 for A).
    pub val: Batch,
    /// Sensitivity noise for the forget batch.
    pub noise_forget: Tensor,
    /// Sensitivity noise for the validation batch.
    pub noise_val: Tensor,
}

/// Losses and accuracies of one iteration.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepStats {
    /// A's CE on detached inputs (its own step).
    pub attacker_loss: f64,
    /// A's accuracy (%) on that batch before its step.
    pub attacker_acc: f64,
    /// D's CE on the retain batch.
    pub retain_loss: f64,
    /// D's accuracy (%) on the retain batch.
    pub retain_acc: f64,
    /// A's CE with flipped labels (D's adversarial term).
    pub adv_loss: f64,
    /// Barlow-Twins term.
    pub bt_loss: f64,
    /// D's total loss.
    pub total_loss: f64,
}

/// Membership labels `[1…1; 0…0]` for `forget` then `val` rows.
fn membership_labels(forget: i64, val: i64, device: Device) -> Tensor {
    Tensor::cat(
        &[
            Tensor::ones([forget], (Kind::Int64, device)),
            Tensor::zeros([val], (Kind::Int64, device)),
        ],
        0,
    )
}

/// Steps 1–2 of SPEC §5: A's Adam step on detached rows; returns (loss, accuracy %).
pub fn attacker_step(
    attacker: &Attacker,
    opt: &mut Adam,
    rows_forget: &Tensor,
    rows_val: &Tensor,
) -> (f64, f64) {
    let device = rows_forget.device();
    let x = Tensor::cat(&[rows_forget.detach(), rows_val.detach()], 0);
    let target = membership_labels(rows_forget.size()[0], rows_val.size()[0], device);
    let out = attacker.forward(&x, true);
    let loss = out.cross_entropy_for_logits(&target);
    opt.zero_grad();
    loss.backward();
    opt.step();
    let acc = out
        .argmax(-1, false)
        .eq_tensor(&target)
        .to_kind(Kind::Float)
        .mean(Kind::Float);
    (loss.double_value(&[]), 100.0 * acc.double_value(&[]))
}

fn finite(loss: &'static str, value: f64, iteration: usize) -> anyhow::Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(NonFiniteLoss {
            loss,
            value,
            iteration,
        }
        .into())
    }
}

/// How the defender step gets its gradient through D's attacker-input passes (the clean and
/// noisy forget and validation batches: 22·B of the 23·B images of an iteration).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum GanMemory {
    /// Graphs kept unless their estimated peak exceeds the host memory available, then
    /// `recompute`; on the CPU glibc returns freed memory during the game, so the peak is the
    /// memory in use (below the reference's). On a GPU, `keep`. The choice is logged and
    /// recorded in the run's configuration.
    #[default]
    Auto,
    /// Keep the graphs of all passes until the defender's backward, as the reference, and let
    /// glibc keep freed memory for reuse: fastest, ≈ 5.4 MB per image for ResNet-18 (≈ 32 GB at
    /// B = 256) plus the kept heap's fragmentation (≈ 1.7× the memory in use at B = 64).
    Keep,
    /// Run the passes without graphs and recompute them one at a time in the backward: the peak
    /// is one pass (the 10·B noisy copies; measured 12 GB in all at B = 256), for ≈ 1/3 more
    /// compute in the defender step. The same gradient, summed in another order.
    Recompute,
}

/// Headroom on [`estimate_keep_peak`]: besides the graphs, D's backward briefly holds the
/// gradients of the largest activations, and the attacker its own graph.
pub const KEEP_HEADROOM: f64 = 1.25;

/// Estimated peak host memory (bytes) of a `keep` iteration that holds the graphs of `images`
/// images: the resident memory now plus [`KEEP_HEADROOM`] × `images` × the heap that one
/// training-mode forward pass with its graph holds per image of `probe` (a few of the run's
/// images). BatchNorm's running statistics are put back afterwards. `None` where the process's
/// memory cannot be read.
pub fn estimate_keep_peak(model: &Classifier, probe: &Tensor, images: usize) -> Option<f64> {
    let (resident, _) = crate::device::resident_memory()?;
    let stats = RunningStats::save(model);
    let before = crate::device::heap_in_use()?;
    let held = {
        let (logits, _) = model.forward(probe, true);
        let after = crate::device::heap_in_use()?;
        drop(logits);
        after - before
    };
    stats.restore();
    let per_image = held / probe.size()[0].max(1) as f64;
    Some(resident + KEEP_HEADROOM * per_image * images as f64)
}

/// The `--gan_memory` the game runs with: `auto` resolved per [`GanMemory::Auto`], recorded in
/// `log` (`gan_memory`, whether glibc keeps freed memory, and for `auto` the estimate and the
/// memory available, in GB) and, when it switches, said in one log line.
///
/// glibc keeps freed memory (the process default, fewest page faults) only for an explicit
/// `keep`. `auto` and `recompute` let it return freed memory to the OS: kept free blocks
/// fragment between the game's differently sized passes, so that a kept heap peaks well above
/// the memory actually in use (ResNet-18, B = 64: 11.8 GB for 6.7 GB in use, against 7.0 GB
/// when returned, for ≈ 3 % more time; ResNet-18, B = 256, recompute: 23 GB against 12 GB;
/// docs/performance.md). `GUNLEARN_MALLOC_DEFAULTS` leaves glibc's defaults throughout.
fn resolve_memory(
    ctx: &UnlearnContext,
    images_per_iteration: usize,
    log: &mut UnlearnLog,
) -> GanMemory {
    let chosen = match ctx.config.gan_memory {
        GanMemory::Auto if ctx.device == Device::Cpu => {
            // A few retain images, un-augmented: the graph's size does not depend on the pixels.
            let rows: Vec<usize> = ctx.splits.retain.iter().copied().take(4).collect();
            let probe = crate::data::batches::to_tensor(&ctx.train_set, &rows).images;
            let estimate = estimate_keep_peak(ctx.model, &probe, images_per_iteration);
            let available = crate::device::available_memory();
            log.record("gan_memory_keep_estimate_gb", estimate.map(|b| b / 1e9));
            log.record("memory_available_gb", available.map(|b| b / 1e9));
            match (estimate, available) {
                (Some(need), Some(have)) if need > have => {
                    tracing::info!(
                        "--gan_memory auto: keeping every graph would need ≈ {:.1} GB, {:.1} GB \
                         are available: recomputing the attacker-input passes instead (the same \
                         gradient, ≈ 1/3 more compute in the defender step)",
                        need / 1e9,
                        have / 1e9
                    );
                    GanMemory::Recompute
                }
                _ => GanMemory::Keep,
            }
        }
        GanMemory::Auto => GanMemory::Keep,
        other => other,
    };
    // Host memory only: on a GPU the activations live in device memory.
    let malloc_defaults = std::env::var_os("GUNLEARN_MALLOC_DEFAULTS").is_some();
    let switched = ctx.device == Device::Cpu
        && ctx.config.gan_memory != GanMemory::Keep
        && !malloc_defaults
        && crate::device::keep_freed_memory(false);
    if switched {
        tracing::info!(
            "--gan_memory {}: glibc returns freed memory to the OS during the game",
            match ctx.config.gan_memory {
                GanMemory::Recompute => "recompute",
                _ => "auto",
            }
        );
    }
    log.record("gan_memory", chosen);
    log.record("glibc_returns_freed_memory", switched || malloc_defaults);
    chosen
}

/// Everything about one adversarial iteration besides its inputs.
#[derive(Debug, Clone, Copy)]
pub struct StepSettings {
    /// β, the weight of the attacker terms (0 after `stop_iter` in class-wise forgetting).
    pub beta: f64,
    /// Mixed precision of the retain loss `L_cls` (the attacker terms always stay in FP32).
    pub amp: Amp,
    /// How the gradient through the attacker-input passes is obtained.
    pub memory: GanMemory,
}

impl Default for StepSettings {
    fn default() -> Self {
        StepSettings {
            beta: 1.0,
            amp: Amp::Off,
            memory: GanMemory::Keep,
        }
    }
}

/// One side's (forget or validation) passes as the defender step needs them.
struct Side {
    /// A's input rows and D's features, attached to the passes' graphs in `Keep` mode, or to the
    /// leaves of `recompute` in `Recompute` mode.
    inputs: AttackerInputs,
    /// `Recompute` mode: the passes' outputs as graph-less leaves that collect the gradient of
    /// D's loss, for [`backward_through_recomputed`].
    recompute: Option<Passes>,
}

/// D's passes for one side: with graphs (`Keep`), or without and with leaves for a later
/// recomputation (`Recompute`), or without any gradient (`None`: β = 0, where the attacker terms
/// send exactly zero into D, so the result is the same as with graphs).
fn side_passes(
    model: &Classifier,
    images: &Tensor,
    labels: &Tensor,
    noise: &Tensor,
    memory: Option<GanMemory>,
) -> Side {
    match memory {
        // `Auto` is resolved before the game; unresolved, it keeps.
        Some(GanMemory::Keep | GanMemory::Auto) => Side {
            inputs: attacker_inputs(model, images, labels, noise),
            recompute: None,
        },
        None => Side {
            inputs: tch::no_grad(|| attacker_inputs(model, images, labels, noise)),
            recompute: None,
        },
        Some(GanMemory::Recompute) => {
            let passes = tch::no_grad(|| d_passes(model, images, noise));
            let leaves = Passes {
                logits: passes.logits.set_requires_grad(true),
                features: passes.features.set_requires_grad(true),
                noisy_logits: passes.noisy_logits.set_requires_grad(true),
            };
            Side {
                inputs: AttackerInputs {
                    rows: attacker_rows(&leaves, labels),
                    features: leaves.features.shallow_clone(),
                },
                recompute: Some(leaves),
            }
        }
    }
}

/// `Recompute` mode, after D's loss has been backpropagated into the leaves: each pass again,
/// one at a time, backpropagating the leaves' gradients into D's weights (accumulated with the
/// retain loss's). The passes see the same batches, so BatchNorm's batch statistics and the
/// outputs are the first passes'; the running statistics they move are put back.
fn backward_through_recomputed(model: &Classifier, passes: &[(&Tensor, &Tensor, &Passes)]) {
    let running_stats = RunningStats::save(model);
    // Σ ⟨output, ∂L/∂output⟩ has exactly ∂L/∂output as its gradient with respect to output.
    let pull = |outputs: &[(&Tensor, &Tensor)]| {
        let terms: Vec<Tensor> = outputs
            .iter()
            .filter_map(|(out, leaf)| {
                let grad = leaf.grad();
                grad.defined().then(|| (*out * grad).sum(Kind::Float))
            })
            .collect();
        if let Some(surrogate) = terms.into_iter().reduce(|a, b| a + b) {
            surrogate.backward();
        }
    };
    for (images, noise, leaves) in passes {
        let (logits, features) = model.forward(images, true);
        pull(&[(&logits, &leaves.logits), (&features, &leaves.features)]);
        drop((logits, features));
        let (noisy_logits, _) = model.forward(&noisy_copies(images, noise), true);
        pull(&[(&noisy_logits, &leaves.noisy_logits)]);
    }
    running_stats.restore();
}

/// One full iteration (SPEC §5 steps 2–3): attacker step, then defender step. Checks every loss
/// before D is updated, so on error D still holds the last good weights.
#[allow(clippy::too_many_arguments)]
pub fn adversarial_step(
    model: &Classifier,
    attacker: &Attacker,
    opt_d: &mut Sgd,
    opt_a: &mut Adam,
    mask: Option<&Mask>,
    inputs: &StepInputs,
    settings: StepSettings,
    iteration: usize,
) -> anyhow::Result<StepStats> {
    let device = model.vs.device();
    let to = |t: &Tensor| t.to_device(device);
    // Train-mode forwards move BatchNorm statistics before any loss can be checked; a
    // non-finite loss puts them back so that D stays exactly at its last good state.
    let running_stats = RunningStats::save(model);
    let finite = |loss: &'static str, value: f64| {
        finite(loss, value, iteration).inspect_err(|_| running_stats.restore())
    };
    let graphs = (settings.beta != 0.0).then_some(settings.memory);
    let (forget_images, forget_noise) = (to(&inputs.forget.images), to(&inputs.noise_forget));
    let (val_images, val_noise) = (to(&inputs.val.images), to(&inputs.noise_val));
    let forget = side_passes(
        model,
        &forget_images,
        &to(&inputs.forget.labels),
        &forget_noise,
        graphs,
    );
    let val = side_passes(
        model,
        &val_images,
        &to(&inputs.val.labels),
        &val_noise,
        graphs,
    );
    let (forget_rows, val_rows) = (&forget.inputs.rows, &val.inputs.rows);
    let (attacker_loss, attacker_acc) = attacker_step(attacker, opt_a, forget_rows, val_rows);
    finite("attacker", attacker_loss)?;

    let retain_labels = to(&inputs.retain.labels);
    let (retain_logits, l_cls) = with_amp(settings.amp, || {
        let (logits, _) = model.forward(&to(&inputs.retain.images), true);
        let l_cls = logits
            .cross_entropy_for_logits(&retain_labels)
            .to_kind(Kind::Float);
        (logits, l_cls)
    });
    let flipped = membership_labels(forget_rows.size()[0], val_rows.size()[0], device).neg() + 1;
    let l_adv = attacker
        .forward(&Tensor::cat(&[forget_rows, val_rows], 0), true)
        .cross_entropy_for_logits(&flipped);
    let l_bt = barlow_twins(&val.inputs.features, &forget.inputs.features);
    let total = &l_cls + (&l_bt * BT_WEIGHT + &l_adv * ADV_WEIGHT) * settings.beta;

    let stats = StepStats {
        attacker_loss,
        attacker_acc,
        retain_loss: finite("retain cross-entropy", l_cls.double_value(&[]))?,
        retain_acc: 100.0
            * retain_logits
                .argmax(-1, false)
                .eq_tensor(&retain_labels)
                .to_kind(Kind::Float)
                .mean(Kind::Float)
                .double_value(&[]),
        adv_loss: finite("adversarial (L_adv)", l_adv.double_value(&[]))?,
        bt_loss: finite("Barlow-Twins (L_bt)", l_bt.double_value(&[]))?,
        total_loss: finite("defender total", total.double_value(&[]))?,
    };
    match (&forget.recompute, &val.recompute) {
        (Some(forget_leaves), Some(val_leaves)) => {
            opt_d.zero_grad();
            total.backward();
            drop((total, l_cls, l_adv, l_bt, retain_logits));
            backward_through_recomputed(
                model,
                &[
                    (&forget_images, &forget_noise, forget_leaves),
                    (&val_images, &val_noise, val_leaves),
                ],
            );
            masked_step(model, opt_d, mask);
        }
        _ => masked_update(model, opt_d, mask, &total),
    }
    Ok(stats)
}

/// Forget/val batch size: equal for both (L_bt pairs them), shrunk to the smaller set.
pub fn paired_batch_size(batch_size: usize, forget: usize, val: usize) -> anyhow::Result<usize> {
    if forget == 0 {
        bail!("the forget set is empty: nothing to unlearn");
    }
    if val < 2 || forget < 2 {
        bail!("adversarial unlearning needs at least 2 forget and 2 validation samples (got {forget} and {val})");
    }
    let size = batch_size.min(forget).min(val);
    if size < batch_size {
        tracing::warn!(
            "forget set ({forget}) or validation set ({val}) is smaller than the batch ({batch_size}): both attacker batches use {size}"
        );
    }
    Ok(size)
}

/// Attacker pre-training (`--train_attacker`): steps 1–2 only, whole train split (augmented)
/// as members vs val (augmented as in the forget scenario) as non-members, with its own
/// derived seed, on a copy of D (D's BatchNorm statistics move in train
/// mode, and the unlearning run must start from the original model).
pub fn pretrain_attacker(ctx: &UnlearnContext, iterations: usize) -> anyhow::Result<Attacker> {
    let _fp32 = StrictFp32::new();
    tch::manual_seed(pretraining_seed(ctx.config.seed));
    let mut model = Classifier::new(&ctx.model.spec, ctx.device);
    model.layout = ctx.model.layout;
    copy_into(&model.vs, ctx.model.vs.variables())?;
    let attacker = Attacker::new(ctx.model.spec.num_classes, ATTACKER_DROPOUT, ctx.device);
    let mut opt = Adam::new(attacker.vs.trainable_variables(), ATTACKER_LR);
    let size = paired_batch_size(
        ctx.config.batch_size,
        ctx.splits.train.len(),
        ctx.splits.val.len(),
    )?;
    let augment = ctx.augment();
    let seed = ctx.config.seed;
    let source = BatchSource::new(&ctx.train_set, ctx.device);
    let members = source.random(ctx.splits.train.clone(), size, augment, seed ^ 0xa11ce);
    // Validation samples are augmented as in the forget scenario (SPEC §1).
    let non_members = source.random(
        ctx.splits.val.clone(),
        size,
        ctx.forget_augmented().then_some(augment).flatten(),
        seed ^ 0xb0b,
    );
    let progress = Progress::new(iterations, "attacker", ctx.quiet);
    let (mut loss_sum, mut acc_sum) = (0.0, 0.0);
    for (iteration, (m, n)) in members.zip(non_members).take(iterations).enumerate() {
        // D's graph is not needed: A's step uses detached inputs.
        let (rows_m, rows_n) = tch::no_grad(|| {
            let mi = m.images.to_device(ctx.device);
            let ni = n.images.to_device(ctx.device);
            (
                attacker_inputs(
                    &model,
                    &mi,
                    &m.labels.to_device(ctx.device),
                    &sensitivity_noise(&mi),
                )
                .rows,
                attacker_inputs(
                    &model,
                    &ni,
                    &n.labels.to_device(ctx.device),
                    &sensitivity_noise(&ni),
                )
                .rows,
            )
        });
        let (loss, acc) = attacker_step(&attacker, &mut opt, &rows_m, &rows_n);
        finite("attacker pre-training", loss, iteration + 1)?;
        loss_sum += loss;
        acc_sum += acc;
        progress.step(|| format!("loss {loss:.4} acc {acc:.1}%"));
        if (iteration + 1) % 100 == 0 {
            tracing::debug!(
                "attacker pre-training {}: mean loss {:.4}, acc {:.1}%",
                iteration + 1,
                loss_sum / 100.0,
                acc_sum / 100.0
            );
            (loss_sum, acc_sum) = (0.0, 0.0);
        }
    }
    progress.finish();
    Ok(attacker)
}

/// Everything that determines a pre-trained attacker (SPEC §5): the model's bytes, the data's
/// identity, the member and non-member sets, their augmentation, the seed, batch size and
/// iteration count, and the attacker's own constants. Stored as JSON beside the cached weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttackerCacheKey {
    /// Version of this key's layout (a change of the pre-training procedure bumps it).
    pub version: u32,
    /// SHA-256 of the model's safetensors file.
    pub model_sha256: String,
    /// The data set's name.
    pub dataset: String,
    /// SHA-256 of the official training images and labels (as read, after `--train_subset`).
    pub train_images_sha256: String,
    /// SHA-256 of the member indices (the train split: depends on `--val_set_seed`).
    pub members_sha256: String,
    /// SHA-256 of the non-member indices (the validation split).
    pub non_members_sha256: String,
    /// Number of members and non-members.
    pub sizes: (usize, usize),
    /// Members' augmentation (always the data set's training augmentation).
    pub members_augment: Option<crate::data::augment::Augment>,
    /// Non-members' augmentation (the forget scenario's: on in class-wise forgetting by default).
    pub non_members_augment: Option<crate::data::augment::Augment>,
    /// Run seed (pre-training uses a seed derived from it).
    pub seed: u64,
    /// Paired batch size.
    pub batch_size: usize,
    /// Pre-training iterations.
    pub iterations: usize,
    /// Attacker's Adam learning rate and dropout.
    pub attacker_lr: f64,
    /// Dropout inside the attacker's transformer layers.
    pub attacker_dropout: f64,
}

/// Seed of attacker pre-training, derived from the run seed: its random stream (noise,
/// dropout) is its own, so a run that pre-trains and one that reuses the cache unlearn alike.
fn pretraining_seed(seed: u64) -> i64 {
    (seed ^ 0x5eed_a77a_c4e5) as i64
}

impl AttackerCacheKey {
    /// The key of the pre-training `ctx` would run with `iterations` iterations.
    pub fn of(ctx: &UnlearnContext, iterations: usize) -> anyhow::Result<AttackerCacheKey> {
        let model = std::fs::read(&ctx.model_path)
            .with_context(|| format!("reading {}", ctx.model_path.display()))?;
        let set = &ctx.train_set;
        let mut data = set.images.clone();
        data.extend(set.labels.iter().flat_map(|l| l.to_le_bytes()));
        data.extend([set.channels, set.height, set.width].map(|d| d as u8));
        Ok(AttackerCacheKey {
            version: 2,
            model_sha256: crate::audit::sha256_hex(&model),
            dataset: ctx.data.name.cli_name().to_string(),
            train_images_sha256: crate::audit::sha256_hex(&data),
            members_sha256: crate::audit::indices_sha256(&ctx.splits.train),
            non_members_sha256: crate::audit::indices_sha256(&ctx.splits.val),
            sizes: (ctx.splits.train.len(), ctx.splits.val.len()),
            members_augment: ctx.augment(),
            non_members_augment: ctx.forget_augmented().then(|| ctx.augment()).flatten(),
            seed: ctx.config.seed,
            batch_size: paired_batch_size(
                ctx.config.batch_size,
                ctx.splits.train.len(),
                ctx.splits.val.len(),
            )?,
            iterations,
            attacker_lr: ATTACKER_LR,
            attacker_dropout: ATTACKER_DROPOUT,
        })
    }

    /// The cached attacker's file for this key: `attackers/attacker-<hash>.safetensors` next
    /// to the model file, with the key itself as `attacker-<hash>.json`.
    pub fn path(&self, model_path: &Path) -> PathBuf {
        let text = serde_json::to_string(self).expect("the key serialises");
        let hash = crate::audit::sha256_hex(text.as_bytes());
        model_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("attackers")
            .join(format!("attacker-{}.safetensors", &hash[..16]))
    }
}

/// Where a pre-trained attacker for this run's pre-training is cached: next to the model file.
pub fn attacker_cache_path(ctx: &UnlearnContext, iterations: usize) -> anyhow::Result<PathBuf> {
    Ok(AttackerCacheKey::of(ctx, iterations)?.path(&ctx.model_path))
}

/// The attacker to start from: `--attacker PATH`, else a cached pre-trained one whose stored
/// key matches this run's, else a freshly pre-trained one (then cached with its key).
pub fn starting_attacker(ctx: &UnlearnContext) -> anyhow::Result<Attacker> {
    let attacker = Attacker::new(ctx.model.spec.num_classes, ATTACKER_DROPOUT, ctx.device);
    let path = match &ctx.config.attacker {
        Some(path) => path.clone(),
        None => {
            let key = AttackerCacheKey::of(ctx, ctx.config.attacker_iters)?;
            let cache = key.path(&ctx.model_path);
            let key_path = cache.with_extension("json");
            let stored = std::fs::read(&key_path)
                .ok()
                .and_then(|b| serde_json::from_slice::<AttackerCacheKey>(&b).ok());
            if !(cache.exists() && stored.as_ref() == Some(&key)) {
                tracing::info!(
                    "pre-training the attacker ({} iterations) -> {}",
                    ctx.config.attacker_iters,
                    cache.display()
                );
                let trained = pretrain_attacker(ctx, ctx.config.attacker_iters)?;
                // The key first: weights without their key are never reused.
                let saved = crate::fsutil::write_json_atomic(&key_path, &key)
                    .and_then(|()| write_safetensors(&cache, &named_tensors(&trained.vs)));
                if let Err(err) = saved {
                    tracing::warn!(
                        "could not cache the attacker ({err:#}); keeping it in {}",
                        ctx.save_dir.display()
                    );
                    write_safetensors(
                        &ctx.save_dir.join("attacker-pretrained.safetensors"),
                        &named_tensors(&trained.vs),
                    )?;
                }
                return Ok(trained);
            }
            tracing::info!("reusing the pre-trained attacker {}", cache.display());
            cache
        }
    };
    copy_into(&attacker.vs, read_safetensors(&path)?).with_context(|| {
        format!(
            "{}: not an attacker for {} classes",
            path.display(),
            ctx.model.spec.num_classes
        )
    })?;
    Ok(attacker)
}

impl Unlearner for Adversarial {
    fn name(&self) -> &'static str {
        "Gan"
    }
    fn defaults(&self) -> (f64, usize) {
        (0.01, 3)
    }
    fn summary(&self) -> &'static str {
        "adversarial unlearning: a min-max game against a membership-inference attacker (class-wise: --stop-iter, --stop-unlearn-lr)"
    }
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()> {
        let cfg = ctx.config;
        let (lr, epochs) = lr_epochs(self, cfg);
        // The sensitivity feature (and its gradient) are finite differences of step 1e-3:
        // full FP32 on the GPU for the whole run, whatever libtorch's TF32 defaults are.
        let _fp32 = StrictFp32::new();
        let pretraining = std::time::Instant::now();
        let attacker = starting_attacker(ctx)?;
        // Pre-training is reusable across forget requests (it is cached), so it is reported
        // apart from the unlearning time (RTE).
        log.excluded_seconds.insert(
            "attacker_pretraining".into(),
            pretraining.elapsed().as_secs_f64(),
        );
        // The game's random stream starts here, whether the attacker was pre-trained in this
        // run, read from the cache or given: the same command gives the same weights.
        tch::manual_seed(cfg.seed as i64);
        let mut opt_a = Adam::new(attacker.vs.trainable_variables(), ATTACKER_LR);
        let mut opt_d = Sgd::new(
            ctx.model.vs.trainable_variables(),
            lr,
            cfg.momentum,
            cfg.weight_decay,
        );
        let size = paired_batch_size(
            cfg.batch_size,
            ctx.splits.forget.len(),
            ctx.splits.val.len(),
        )?;
        let augment = ctx.augment();
        let side_augment = ctx.forget_augmented().then_some(augment).flatten();
        log.record("forget_augmented", side_augment.is_some());
        log.record("val_augmented", side_augment.is_some());
        log.record("retain_augmented", ctx.augment().is_some());
        let source = BatchSource::new(&ctx.train_set, ctx.device);
        let memory = resolve_memory(ctx, cfg.batch_size + 22 * size, log);
        let mut forget_stream = source.random(
            ctx.splits.forget.clone(),
            size,
            side_augment,
            cfg.seed ^ 0xf0f,
        );
        let mut val_stream =
            source.random(ctx.splits.val.clone(), size, side_augment, cfg.seed ^ 0x7a1);
        let stop_iter = if ctx.class_wise { cfg.stop_iter } else { None };
        log.columns = vec![
            "iteration",
            "epoch",
            "attacker_loss",
            "attacker_acc",
            "retain_loss",
            "retain_acc",
            "L_adv",
            "L_bt",
            "beta",
            "lr",
        ];
        let batches = EpochBatches {
            source: &source,
            indices: &ctx.splits.retain,
            batch_size: cfg.batch_size,
            augment,
            seed: cfg.seed,
            seed_of: super::epoch_seed,
        };
        // Class-wise: after `stop_iter` iterations β = 0 and D's lr is `stop_unlearn_lr`.
        let stopped = |iteration: usize| stop_iter.is_some_and(|stop| iteration > stop);
        let lr_at = |at: StepAt| {
            if stopped(at.iteration) {
                cfg.stop_unlearn_lr.unwrap_or(lr)
            } else {
                lr
            }
        };
        let plan = EpochLoop {
            first: 0,
            epochs,
            batches,
            lr_at: &lr_at,
            quiet: ctx.quiet,
        };
        run_epochs(
            &plan,
            &mut opt_d,
            log,
            |log, opt_d, at, retain_batch| {
                let beta = if stopped(at.iteration) { 0.0 } else { 1.0 };
                let forget = forget_stream
                    .next()
                    .context("forget batch producer stopped")?;
                let val = val_stream
                    .next()
                    .context("validation batch producer stopped")?;
                // The batch source already yields them on ctx.device.
                let noise_forget = sensitivity_noise(&forget.images);
                let noise_val = sensitivity_noise(&val.images);
                let inputs = StepInputs {
                    retain: retain_batch,
                    forget,
                    val,
                    noise_forget,
                    noise_val,
                };
                let settings = StepSettings {
                    beta,
                    amp: cfg.amp,
                    memory,
                };
                let s = adversarial_step(
                    ctx.model,
                    &attacker,
                    opt_d,
                    &mut opt_a,
                    ctx.mask,
                    &inputs,
                    settings,
                    at.iteration,
                )?;
                log.rows.push(vec![
                    at.iteration as f64,
                    (at.epoch + 1) as f64,
                    s.attacker_loss,
                    s.attacker_acc,
                    s.retain_loss,
                    s.retain_acc,
                    s.adv_loss,
                    s.bt_loss,
                    beta,
                    opt_d.lr,
                ]);
                Ok(format!(
                    "A {:.3}/{:.0}% R {:.3}/{:.0}% adv {:.3} bt {:.1}",
                    s.attacker_loss,
                    s.attacker_acc,
                    s.retain_loss,
                    s.retain_acc,
                    s.adv_loss,
                    s.bt_loss
                ))
            },
            |log, _, end| {
                if let Some(row) = log.rows.last() {
                    // Columns: iteration, epoch, attacker loss/acc, retain loss/acc, L_adv, L_bt, β, lr.
                    tracing::info!(
                        "epoch {}/{epochs}: {} iterations; last: attacker acc {:.1} %  retain acc \
                         {:.1} %  L_adv {:.3}  L_bt {:.2}  β {}  lr {}",
                        end.epoch + 1,
                        end.iteration,
                        row[3],
                        row[5],
                        row[6],
                        row[7],
                        row[8],
                        row[9]
                    );
                }
                Ok(())
            },
        )?;
        // Kept for inspection and for continuing the game later.
        write_safetensors(
            &ctx.save_dir.join("attacker.safetensors"),
            &named_tensors(&attacker.vs),
        )?;
        Ok(())
    }
}
