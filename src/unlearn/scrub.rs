//! `SCRUB` (SPEC §4b): not implemented yet.

use super::{UnlearnContext, UnlearnLog, Unlearner};

/// SCRUB.
pub struct Scrub;

impl Unlearner for Scrub {
    fn name(&self) -> &'static str {
        "SCRUB"
    }
    fn defaults(&self) -> (f64, usize) {
        (5e-4, 3)
    }
    fn summary(&self) -> &'static str {
        "SCRUB: student-teacher distillation, max passes away from the teacher on F, min passes toward it on R"
    }
    fn run(&self, _ctx: &UnlearnContext, _log: &mut UnlearnLog) -> anyhow::Result<()> {
        anyhow::bail!("SCRUB: not implemented yet")
    }
}
