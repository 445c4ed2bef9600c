//! `BS` (SPEC §4b): not implemented yet.

use super::{UnlearnContext, UnlearnLog, Unlearner};

/// boundary shrink.
pub struct BoundaryShrink;

impl Unlearner for BoundaryShrink {
    fn name(&self) -> &'static str {
        "BS"
    }
    fn defaults(&self) -> (f64, usize) {
        (1e-5, 10)
    }
    fn summary(&self) -> &'static str {
        "boundary shrink: SGD on F toward the label of the nearest wrong class found by FGSM (--fgsm_step 0.1)"
    }
    fn run(&self, _ctx: &UnlearnContext, _log: &mut UnlearnLog) -> anyhow::Result<()> {
        anyhow::bail!("BS: not implemented yet")
    }
}
