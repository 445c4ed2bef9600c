//! `RL` (SPEC §4b): not implemented yet.

use super::{UnlearnContext, UnlearnLog, Unlearner};

/// random labelling.
pub struct RandomLabel;

impl Unlearner for RandomLabel {
    fn name(&self) -> &'static str {
        "RL"
    }
    fn defaults(&self) -> (f64, usize) {
        (0.01, 10)
    }
    fn summary(&self) -> &'static str {
        "random labelling: SGD on F with uniformly random labels, then on R with true labels"
    }
    fn run(&self, _ctx: &UnlearnContext, _log: &mut UnlearnLog) -> anyhow::Result<()> {
        anyhow::bail!("RL: not implemented yet")
    }
}
