//! `wfisher` (SPEC §4b): not implemented yet.

use super::{UnlearnContext, UnlearnLog, Unlearner};

/// IU, influence unlearning.
pub struct InfluenceUnlearning;

impl Unlearner for InfluenceUnlearning {
    fn name(&self) -> &'static str {
        "wfisher"
    }
    fn defaults(&self) -> (f64, usize) {
        (0.0, 0)
    }
    fn summary(&self) -> &'static str {
        "IU, influence unlearning: one WoodFisher-preconditioned step along the forget-minus-retain gradient (--alpha)"
    }
    fn run(&self, _ctx: &UnlearnContext, _log: &mut UnlearnLog) -> anyhow::Result<()> {
        anyhow::bail!("wfisher: not implemented yet")
    }
}
