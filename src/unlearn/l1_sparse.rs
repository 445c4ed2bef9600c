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

/// α for epoch `epoch` (0-based) of `epochs`, as the reference's decaying schedule.
pub fn alpha_at(alpha: f64, epoch: usize, epochs: usize, no_l1_epochs: usize) -> f64 {
    let l1_epochs = epochs.saturating_sub(no_l1_epochs);
    if epoch < l1_epochs {
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
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()> {
        let (lr, epochs) = lr_epochs(self, ctx.config);
        let cfg = ctx.config;
        sgd_epochs(ctx, log, &ctx.splits.retain, lr, epochs, |epoch| {
            Objective {
                sign: 1.0,
                l1: alpha_at(cfg.alpha, epoch, epochs, cfg.no_l1_epochs),
                ..Objective::default()
            }
        })
    }
}
