//! `FT_l1` / `FT_prune` (ℓ1-sparse unlearning): fine-tune on R with α_t·‖θ‖₁, where
//! α_t = α·(1 − t/(E − no_l1_epochs)) in epoch t and 0 in the last `no_l1_epochs` epochs.
//! Reference: 10 epochs, lr 0.01, α ≈ 5e-5…5e-4.

use super::{lr_epochs, sgd_epochs, UnlearnContext, UnlearnLog, Unlearner};
use crate::train::Objective;

/// ℓ1-regularised fine-tuning; the reference knows it under two names.
pub struct L1Sparse {
    /// `FT_l1` or `FT_prune`.
    pub name: &'static str,
}

/// Default ℓ1 coefficient α (`--alpha`), inside the reference's range 5e-5…5e-4.
pub const DEFAULT_ALPHA: f64 = 5e-4;

/// α for epoch `epoch` (0-based) of `epochs`, as the reference's decaying schedule; when
/// `no_l1_epochs` leaves no decaying epoch (it equals or exceeds `epochs`), the reference keeps
/// α constant for the whole run.
pub fn alpha_at(alpha: f64, epoch: usize, epochs: usize, no_l1_epochs: usize) -> f64 {
    let l1_epochs = epochs.saturating_sub(no_l1_epochs);
    if l1_epochs == 0 {
        alpha
    } else if epoch < l1_epochs {
        alpha * (1.0 - epoch as f64 / l1_epochs as f64)
    } else {
        0.0
    }
}

impl Unlearner for L1Sparse {
    fn name(&self) -> &'static str {
        self.name
    }
    fn defaults(&self) -> (f64, usize) {
        (0.01, 10)
    }
    fn summary(&self) -> &'static str {
        "ℓ1-sparse: fine-tune on R plus α_t·‖θ‖₁, α_t decaying linearly to 0 (--alpha 5e-4, --no-l1-epochs 0)"
    }
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()> {
        let (lr, epochs) = lr_epochs(self, ctx.config);
        let cfg = ctx.config;
        let alpha = cfg.alpha.unwrap_or(DEFAULT_ALPHA);
        log.record("alpha", alpha);
        log.record("retain_augmented", ctx.augment().is_some());
        sgd_epochs(ctx, log, &ctx.splits.retain, true, lr, epochs, |epoch| {
            Objective {
                sign: 1.0,
                l1: alpha_at(alpha, epoch, epochs, cfg.no_l1_epochs),
                ..Objective::default()
            }
        })
    }
}
