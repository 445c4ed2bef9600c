//! `FT`: fine-tune on the retain set (catastrophic forgetting of F). Reference: 10 epochs, lr 0.01.

use super::{lr_epochs, sgd_epochs, UnlearnContext, UnlearnLog, Unlearner};
use crate::train::Objective;

/// Fine-tuning on R.
pub struct FineTune;

impl Unlearner for FineTune {
    fn name(&self) -> &'static str {
        "FT"
    }
    fn defaults(&self) -> (f64, usize) {
        (0.01, 10)
    }
    fn summary(&self) -> &'static str {
        "fine-tune on the retain set (catastrophic forgetting of F)"
    }
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()> {
        let (lr, epochs) = lr_epochs(self, ctx.config);
        log.record("retain_augmented", ctx.augment().is_some());
        sgd_epochs(ctx, log, &ctx.splits.retain, true, lr, epochs, |_| {
            Objective::default()
        })
    }
}
