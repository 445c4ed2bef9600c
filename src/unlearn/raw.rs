//! `raw`: no change — the original model, evaluated as a reference point.

use super::{UnlearnContext, UnlearnLog, Unlearner};

/// The identity unlearner.
pub struct Raw;

impl Unlearner for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }
    fn defaults(&self) -> (f64, usize) {
        (0.0, 0)
    }
    fn summary(&self) -> &'static str {
        "no change: the original model, as a reference point"
    }
    fn run(&self, _ctx: &UnlearnContext, _log: &mut UnlearnLog) -> anyhow::Result<()> {
        Ok(())
    }
}
