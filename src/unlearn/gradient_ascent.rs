//! `GA`: gradient ascent on the forget set (minimise −CE on F). Reference: 5 epochs, lr 1e-4.

use super::{lr_epochs, sgd_epochs, UnlearnContext, UnlearnLog, Unlearner};
use crate::train::Objective;

/// Gradient ascent on F.
pub struct GradientAscent;

impl Unlearner for GradientAscent {
    fn name(&self) -> &'static str {
        "GA"
    }
    fn defaults(&self) -> (f64, usize) {
        (1e-4, 5)
    }
    fn summary(&self) -> &'static str {
        "gradient ascent on the forget set (minimise −CE on F)"
    }
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()> {
        let (lr, epochs) = lr_epochs(self, ctx.config);
        // SPEC §1: the forget stream is augmented only in class-wise forgetting (by default).
        let augment = ctx.forget_augmented();
        log.record("forget_augmented", augment);
        sgd_epochs(ctx, log, &ctx.splits.forget, augment, lr, epochs, |_| {
            Objective {
                sign: -1.0,
                l1: 0.0,
                ..Objective::default()
            }
        })
    }
}
