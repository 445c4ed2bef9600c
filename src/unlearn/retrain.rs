//! `retrain`: the gold standard — fresh initialisation (the pruning mask kept), then training
//! on R only. Reference: 160 epochs, lr 0.1.

use super::{lr_epochs, sgd_epochs, UnlearnContext, UnlearnLog, Unlearner};
use crate::checkpoint::copy_into;
use crate::model::Classifier;
use crate::train::Objective;

/// Retraining from scratch on R.
pub struct Retrain;

impl Unlearner for Retrain {
    fn name(&self) -> &'static str {
        "retrain"
    }
    fn defaults(&self) -> (f64, usize) {
        (0.1, 160)
    }
    fn summary(&self) -> &'static str {
        "the gold standard: fresh initialisation (pruning mask kept), then training on R"
    }
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()> {
        tch::manual_seed(ctx.config.seed as i64);
        let mut fresh = Classifier::new(&ctx.model.spec, ctx.device);
        fresh.layout = ctx.model.layout;
        copy_into(&ctx.model.vs, fresh.vs.variables())?;
        if let Some(mask) = ctx.mask {
            mask.apply_to_weights(&ctx.model.vs);
        }
        let (lr, epochs) = lr_epochs(self, ctx.config);
        log.record("retain_augmented", ctx.augment().is_some());
        sgd_epochs(ctx, log, &ctx.splits.retain, true, lr, epochs, |_| {
            Objective::default()
        })
    }
}
