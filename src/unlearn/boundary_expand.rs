//! `BE`, boundary expanding (Chen et al., "Boundary Unlearning", CVPR 2023; reference: SalUn's
//! `unlearn/boundary_ex.py`, SPEC §4b.6).
//!
//! An extra "shadow" output row is added to the last Linear layer (C+1 logits: the model's C
//! logits and features·w_sᵀ + b_s, with w_s and b_s initialised as PyTorch's default Linear,
//! U(±1/√fan_in)). The model and the shadow row are trained together with SGD on the forget set
//! F only, every sample labelled as the shadow class C, which moves F's features into a region
//! of their own. The shadow neuron is then removed, as the paper prescribes, so F falls into
//! whichever real class is nearest.
//!
//! The reference code never removes the shadow neuron and evaluates with C+1 logits; that is not
//! reproduced: the checkpoint keeps the model's C outputs (the shadow row can be had from
//! [`expand`] by callers that want it). The reference also fails with a SalUn mask, which
//! cannot broadcast onto the widened layer; here masks cover conv weights only and are
//! enforced as in every method. The F stream is augmented only in class-wise forgetting by
//! default (SPEC §1; `--forget_augment`).

use super::{forget_set_epochs, lr_epochs, UnlearnContext, UnlearnLog, Unlearner};
use crate::optim::Sgd;
use anyhow::Context;
use tch::{Device, Kind, Tensor};

/// Boundary expanding.
pub struct BoundaryExpand;

impl Unlearner for BoundaryExpand {
    fn name(&self) -> &'static str {
        "BE"
    }
    fn defaults(&self) -> (f64, usize) {
        // The paper's setting; its lr range is about 1e-6 … 1e-4.
        (1e-5, 10)
    }
    fn summary(&self) -> &'static str {
        "boundary expanding: SGD on F relabelled to an extra shadow class, which is removed afterwards (the model keeps C outputs)"
    }
    fn forget_harness(&self) -> super::Harness {
        super::Harness::Saliency
    }
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()> {
        let (lr, epochs) = lr_epochs(self, ctx.config);
        // Dropping the trained row is the paper's pruning of the shadow neuron.
        expand(ctx, lr, epochs, log).map(|_shadow| ())
    }
}

/// The extra output row of the widened last layer: weight `[1, feature_dim]` and bias `[1]`.
pub struct ShadowRow {
    /// Weight w_s, `[1, feature_dim]`.
    pub weight: Tensor,
    /// Bias b_s, `[1]`.
    pub bias: Tensor,
}

impl ShadowRow {
    /// A row initialised as PyTorch's default `nn.Linear`: weight and bias U(±1/√fan_in).
    pub fn new(feature_dim: usize, device: Device) -> ShadowRow {
        let bound = 1.0 / (feature_dim as f64).sqrt();
        let uniform = |shape: &[i64]| {
            let mut t = Tensor::zeros(shape, (Kind::Float, device));
            let _ = t.uniform_(-bound, bound);
            t.set_requires_grad(true)
        };
        ShadowRow {
            weight: uniform(&[1, feature_dim as i64]),
            bias: uniform(&[1]),
        }
    }

    /// The C+1 logits of the widened layer: the model's `logits` then the shadow logit of
    /// `features`.
    pub fn widen(&self, logits: &Tensor, features: &Tensor) -> Tensor {
        let shadow = features.matmul(&self.weight.tr()) + &self.bias;
        Tensor::cat(&[logits, &shadow], 1)
    }
}

/// BE's epochs over F: the model and a new [`ShadowRow`] trained together with masked SGD on
/// CE(widened logits, C) in train mode, with the reference's MultiStepLR stepped per epoch.
/// Logs per epoch the mean loss and how often the shadow class is the argmax. Returns the
/// trained shadow row; the model itself keeps its C outputs.
pub fn expand(
    ctx: &UnlearnContext,
    lr: f64,
    epochs: usize,
    log: &mut UnlearnLog,
) -> anyhow::Result<ShadowRow> {
    let cfg = ctx.config;
    log.record("shadow_neuron_removed", true);
    let classes = ctx.model.spec.num_classes as i64;
    let shadow = ShadowRow::new(ctx.model.feature_dim(), ctx.device);
    // As the reference, the optimizer is built after widening: the shadow row gets the same
    // momentum and weight decay as the model.
    let mut params = ctx.model.vs.trainable_variables();
    params.push(shadow.weight.shallow_clone());
    params.push(shadow.bias.shallow_clone());
    let mut opt = Sgd::new(params, lr, cfg.momentum, cfg.weight_decay);
    forget_set_epochs(ctx, &mut opt, lr, epochs, log, "shadow_argmax", |batch| {
        let (logits, features) = ctx.model.forward(&batch.images, true);
        let widened = shadow.widen(&logits, &features);
        let target = batch.labels.full_like(classes);
        let to_shadow = widened
            .argmax(-1, false)
            .eq(classes)
            .sum(Kind::Int64)
            .int64_value(&[]);
        Ok((widened.cross_entropy_for_logits(&target), to_shadow))
    })
    .context("BE")?;
    Ok(shadow)
}
