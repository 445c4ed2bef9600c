//! `fisher_new` (SPEC §4b): not implemented yet.

use super::{UnlearnContext, UnlearnLog, Unlearner};

/// FF, Fisher forgetting.
pub struct FisherForgetting;

impl Unlearner for FisherForgetting {
    fn name(&self) -> &'static str {
        "fisher_new"
    }
    fn defaults(&self) -> (f64, usize) {
        (0.0, 0)
    }
    fn summary(&self) -> &'static str {
        "FF, Fisher forgetting: Gaussian noise scaled by the inverse diagonal Fisher of R (--alpha)"
    }
    fn run(&self, _ctx: &UnlearnContext, _log: &mut UnlearnLog) -> anyhow::Result<()> {
        anyhow::bail!("fisher_new: not implemented yet")
    }
}
