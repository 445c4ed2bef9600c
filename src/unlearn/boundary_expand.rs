//! `BE` (SPEC §4b): not implemented yet.

use super::{UnlearnContext, UnlearnLog, Unlearner};

/// boundary expanding.
pub struct BoundaryExpand;

impl Unlearner for BoundaryExpand {
    fn name(&self) -> &'static str {
        "BE"
    }
    fn defaults(&self) -> (f64, usize) {
        (1e-5, 10)
    }
    fn summary(&self) -> &'static str {
        "boundary expanding: F relabelled to an extra shadow class, which is removed afterwards"
    }
    fn run(&self, _ctx: &UnlearnContext, _log: &mut UnlearnLog) -> anyhow::Result<()> {
        anyhow::bail!("BE: not implemented yet")
    }
}
