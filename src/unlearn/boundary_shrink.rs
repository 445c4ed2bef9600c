//! `BS`, boundary shrink (Chen et al., "Boundary Unlearning", CVPR 2023; reference: SalUn's
//! `unlearn/boundary_sh.py`, SPEC §4b.5).
//!
//! Only the forget set F is used. A teacher, a frozen copy of the model as it was before
//! unlearning, is attacked with one untargeted FGSM step per batch (no random start, step
//! `--fgsm_step`, 0.1 by default as the paper hard-codes it); the teacher's prediction on the
//! adversarial image is the "nearest wrong" class ŷ, and the model is trained with SGD to predict
//! ŷ on the *clean* image, which shrinks F's region of the decision space into its neighbours.
//! As in the reference, ŷ is not filtered: where the attack fails, ŷ is the true label. The F
//! stream is augmented only in class-wise forgetting by default (SPEC §1; `--forget_augment`).

use super::{forget_set_epochs, frozen_teacher, lr_epochs, UnlearnContext, UnlearnLog, Unlearner};
use crate::model::Classifier;
use crate::optim::Sgd;
use anyhow::Context;
use tch::{Kind, Tensor};

/// Boundary shrink.
pub struct BoundaryShrink;

impl Unlearner for BoundaryShrink {
    fn name(&self) -> &'static str {
        "BS"
    }
    fn defaults(&self) -> (f64, usize) {
        // The paper's setting; its lr range is about 1e-6 … 1e-4.
        (1e-5, 10)
    }
    fn summary(&self) -> &'static str {
        "boundary shrink: SGD on F toward the label of the nearest wrong class found by FGSM on a frozen teacher (--fgsm_step 0.1)"
    }
    fn forget_harness(&self) -> super::Harness {
        super::Harness::Saliency
    }
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()> {
        let (lr, epochs) = lr_epochs(self, ctx.config);
        let teacher = frozen_teacher(ctx.model)?;
        shrink(ctx, &teacher, lr, epochs, log)
    }
}

/// One untargeted FGSM step on `teacher` (eval mode), no random start:
/// x′ = round(clamp(x + step·sign(∇ₓCE(teacher(x), y)), 0, 1)·255)/255, so x′ is a valid
/// 8-bit image within `step` (plus half a grey level) of x.
pub fn fgsm(teacher: &Classifier, images: &Tensor, labels: &Tensor, step: f64) -> Tensor {
    let x = images.detach().set_requires_grad(true);
    let (logits, _) = teacher.forward(&x, false);
    let loss = logits.cross_entropy_for_logits(labels);
    // Only ∇ₓ is wanted: nothing is accumulated into the teacher's parameters.
    let grad = Tensor::run_backward(&[&loss], &[&x], false, false)
        .pop()
        .expect("one gradient per input");
    tch::no_grad(|| {
        let moved = (x.detach() + grad.sign() * step).clamp(0.0, 1.0);
        (moved * 255.0).round() / 255.0
    })
}

/// The teacher's label for the FGSM image of each sample: argmax teacher(x′), not filtered
/// (it equals the true label where the attack fails).
pub fn nearest_wrong_labels(
    teacher: &Classifier,
    images: &Tensor,
    labels: &Tensor,
    step: f64,
) -> Tensor {
    let adversarial = fgsm(teacher, images, labels, step);
    tch::no_grad(|| teacher.forward(&adversarial, false).0.argmax(-1, false))
}

/// BS's epochs over F with `teacher` (a frozen copy of the model before unlearning): per batch,
/// ŷ from [`nearest_wrong_labels`], then one masked SGD step on CE(model(clean x), ŷ) in train
/// mode, with the reference's MultiStepLR stepped per epoch. Logs per epoch the mean loss and
/// the attack success rate (% of samples with ŷ ≠ y).
pub fn shrink(
    ctx: &UnlearnContext,
    teacher: &Classifier,
    lr: f64,
    epochs: usize,
    log: &mut UnlearnLog,
) -> anyhow::Result<()> {
    let cfg = ctx.config;
    log.record("fgsm_step", cfg.fgsm_step);
    let mut opt = Sgd::new(
        ctx.model.vs.trainable_variables(),
        lr,
        cfg.momentum,
        cfg.weight_decay,
    );
    forget_set_epochs(ctx, &mut opt, lr, epochs, log, "attack_success", |batch| {
        let target = nearest_wrong_labels(teacher, &batch.images, &batch.labels, cfg.fgsm_step);
        let moved = target
            .ne_tensor(&batch.labels)
            .sum(Kind::Int64)
            .int64_value(&[]);
        let (logits, _) = ctx.model.forward(&batch.images, true);
        Ok((logits.cross_entropy_for_logits(&target), moved))
    })
    .context("BS")
}
