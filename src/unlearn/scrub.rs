//! `SCRUB` (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023; reference:
//! the authors' `large_scale_unlearning.ipynb` with `thirdparty/repdistiller`'s
//! `train_distill`, `DistillKL` and `adjust_learning_rate`, SPEC §4b.7).
//!
//! A student (the model, in train mode, so its BatchNorm statistics move in both passes) is
//! distilled from a teacher (a frozen copy of the model before unlearning, in eval mode). For
//! epoch e = 1..E, the lr is lr₀·rate^{#{d ∈ decay epochs : e > d}}; if e ≤ `--msteps`, a
//! *max pass* over F minimises −KL_T(student, teacher) (pushes the student away from the
//! teacher on what must be forgotten); then a *min pass* over R minimises
//! γ·CE(student, y) + α·KL_T(student, teacher) (keeps it close elsewhere). One SGD optimizer,
//! with its momentum, is shared by both passes. KL_T(s, t) = (T²/B)·Σ p_t·(log p_t − log p_s)
//! with p = softmax(z/T) ([`distill_kl`]).
//!
//! Defaults are the large-scale CIFAR-10 values: lr 5e-4, 3 epochs, `--msteps` 2, `--kd_T` 4,
//! `--gamma` 0.99, `--alpha` 0.001 ([`DEFAULT_ALPHA`]), decay epochs 3,5,9 at rate 0.1, F batch
//! `--forget_batch_size` 512, R batch `--batch_size`. As the reference's loaders, neither
//! stream is augmented; only an explicit `--forget_augment` augments F.

use super::{
    batch_source, custom_pass, frozen_teacher, loss_step, lr_epochs, UnlearnContext, UnlearnLog,
    Unlearner,
};
use crate::model::Classifier;
use crate::optim::Sgd;
use anyhow::{bail, Context};
use std::time::Instant;
use tch::{Kind, Tensor};

/// SCRUB's default weight α of the min pass's distillation term (`--alpha`).
pub const DEFAULT_ALPHA: f64 = 0.001;

/// SCRUB.
pub struct Scrub;

impl Unlearner for Scrub {
    fn name(&self) -> &'static str {
        "SCRUB"
    }
    fn defaults(&self) -> (f64, usize) {
        (5e-4, 3)
    }
    fn summary(&self) -> &'static str {
        "SCRUB: student-teacher distillation, max passes away from the teacher on F, min passes toward it on R (--msteps 2, --kd_T 4, --gamma 0.99, --alpha 0.001, --lr_decay_epochs 3,5,9, --lr_decay_rate 0.1, --forget_batch_size 512)"
    }
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()> {
        let (lr, epochs) = lr_epochs(self, ctx.config);
        let teacher = frozen_teacher(ctx.model)?;
        scrub(ctx, &teacher, lr, epochs, log)
    }
}

/// KL_T(s, t) = (T²/B)·Σᵢ Σ_c p_t·(log p_t − log p_s), p = softmax(z/T): the reference's
/// `DistillKL` (`kl_div` summed, divided by the batch size B), on logits `[B, C]`.
pub fn distill_kl(student: &Tensor, teacher: &Tensor, t: f64) -> Tensor {
    let log_ps = (student / t).log_softmax(-1, Kind::Float);
    // log p_t from log_softmax: a p_t that underflows to 0 then contributes 0, as `kl_div`.
    let log_pt = (teacher / t).log_softmax(-1, Kind::Float);
    let batch = student.size()[0].max(1) as f64;
    (log_pt.exp() * (log_pt - log_ps)).sum(Kind::Float) * (t * t / batch)
}

/// The lr of epoch `epoch` (1-based): lr₀·rate^{#{d ∈ decay_epochs : epoch > d}}, as the
/// reference's `adjust_learning_rate`.
pub fn epoch_lr(lr: f64, decay_epochs: &[usize], rate: f64, epoch: usize) -> f64 {
    let decays = decay_epochs.iter().filter(|&&d| epoch > d).count();
    lr * rate.powi(decays as i32)
}

/// The shuffling (and augmentation) seeds of epoch `epoch` (1-based): (F stream, R stream).
/// The R stream's is fine-tuning's, so SCRUB's min pass visits R in FT's batch order.
pub fn pass_seeds(seed: u64, epoch: usize) -> (u64, u64) {
    let zero_based = epoch.saturating_sub(1) as u64;
    let zero_based = zero_based as usize;
    let retain = super::epoch_seed(seed, zero_based);
    let forget = super::epoch_seed(seed ^ 0x5c_2b, zero_based);
    (forget, retain)
}

/// SCRUB's epochs with `teacher` (a frozen copy of the model before unlearning): max passes
/// over F for the first `--msteps` epochs, a min pass over R every epoch, one shared SGD
/// optimizer with the reference's step decay. Logs per epoch the lr, the mean max-pass loss
/// (−KL; NaN in epochs without a max pass) and the mean min-pass loss.
pub fn scrub(
    ctx: &UnlearnContext,
    teacher: &Classifier,
    lr: f64,
    epochs: usize,
    log: &mut UnlearnLog,
) -> anyhow::Result<()> {
    let cfg = ctx.config;
    let (forget, retain) = (&ctx.splits.forget, &ctx.splits.retain);
    if forget.is_empty() {
        bail!("SCRUB: the forget set is empty");
    }
    if retain.is_empty() {
        bail!("SCRUB: the retain set is empty");
    }
    let alpha = cfg.alpha.unwrap_or(DEFAULT_ALPHA);
    let (gamma, t) = (cfg.scrub_gamma, cfg.kd_t);
    // The reference's loaders do not augment; only an explicit request augments F.
    let forget_augment = cfg.forget_augment.unwrap_or(false);
    log.record("forget_augmented", forget_augment);
    log.record("retain_augmented", false);
    log.record("alpha", alpha);
    log.record("gamma", gamma);
    log.record("kd_T", t);
    log.record("msteps", cfg.msteps);
    log.record("lr_decay_epochs", &cfg.lr_decay_epochs);
    log.record("lr_decay_rate", cfg.lr_decay_rate);
    log.record("forget_batch_size", cfg.forget_batch_size);
    log.record("retain_batch_size", cfg.batch_size);
    let mut opt = Sgd::new(
        ctx.model.vs.trainable_variables(),
        lr,
        cfg.momentum,
        cfg.weight_decay,
    );
    let source = batch_source(ctx);
    let forget_steps = forget.len().div_ceil(cfg.forget_batch_size);
    let retain_steps = retain.len().div_ceil(cfg.batch_size);
    let teacher_logits = |images: &Tensor| tch::no_grad(|| teacher.forward(images, false).0);
    log.columns = vec![
        "iteration",
        "epoch",
        "lr",
        "max_loss",
        "min_loss",
        "seconds",
    ];
    let mut iteration = 0;
    for epoch in 1..=epochs {
        let start = Instant::now();
        opt.lr = epoch_lr(lr, &cfg.lr_decay_epochs, cfg.lr_decay_rate, epoch);
        let (forget_seed, retain_seed) = pass_seeds(cfg.seed, epoch);
        let mut max_loss = f64::NAN;
        if epoch <= cfg.msteps {
            let batches = source.epoch(
                forget.clone(),
                cfg.forget_batch_size,
                true,
                false,
                forget_augment.then(|| ctx.augment()).flatten(),
                forget_seed,
            );
            let title = format!("max {epoch}/{epochs}");
            let mut away_from_teacher = loss_step(|batch| {
                let (student, _) = ctx.model.forward(&batch.images, true);
                Ok(-distill_kl(&student, &teacher_logits(&batch.images), t))
            });
            max_loss = custom_pass(
                ctx,
                &mut opt,
                batches,
                forget_steps,
                &title,
                &mut away_from_teacher,
            )
            .with_context(|| format!("SCRUB max pass, epoch {epoch}"))?;
            iteration += forget_steps;
        }
        let batches = source.epoch(
            retain.clone(),
            cfg.batch_size,
            true,
            false,
            None,
            retain_seed,
        );
        let title = format!("min {epoch}/{epochs}");
        let mut near_teacher = loss_step(|batch| {
            let (student, _) = ctx.model.forward(&batch.images, true);
            let mut loss = student.cross_entropy_for_logits(&batch.labels) * gamma;
            // With α = 0 the term adds exactly nothing; skipping it saves the teacher's pass.
            if alpha != 0.0 {
                loss += distill_kl(&student, &teacher_logits(&batch.images), t) * alpha;
            }
            Ok(loss)
        });
        let min_loss = custom_pass(
            ctx,
            &mut opt,
            batches,
            retain_steps,
            &title,
            &mut near_teacher,
        )
        .with_context(|| format!("SCRUB min pass, epoch {epoch}"))?;
        iteration += retain_steps;
        // Epochs past msteps have no max pass: their max-pass loss does not exist.
        let max_pass = if max_loss.is_nan() {
            "no max pass".to_string()
        } else {
            format!("max-pass loss {max_loss:.4}")
        };
        tracing::info!(
            "SCRUB epoch {epoch}/{epochs}: lr {:.2e}, {max_pass}, min-pass loss {min_loss:.4}",
            opt.lr
        );
        log.rows.push(vec![
            iteration as f64,
            epoch as f64,
            opt.lr,
            max_loss,
            min_loss,
            start.elapsed().as_secs_f64(),
        ]);
    }
    Ok(())
}
