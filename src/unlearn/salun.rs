//! `SalUn` / `SalUn_soft` (SPEC §4b): not implemented yet.

use super::{UnlearnContext, UnlearnLog, Unlearner};

/// Saliency unlearning: random labelling restricted to the most salient weights.
pub struct SalUn {
    /// `SalUn_soft`: the proximal (soft-threshold) variant instead of the hard saliency mask.
    pub soft: bool,
}

impl Unlearner for SalUn {
    fn name(&self) -> &'static str {
        if self.soft {
            "SalUn_soft"
        } else {
            "SalUn"
        }
    }
    fn defaults(&self) -> (f64, usize) {
        (0.013, 10)
    }
    fn summary(&self) -> &'static str {
        if self.soft {
            "SalUn-soft: random labelling with a soft threshold pulling most weights back to the original (--mask_ratio 0.5)"
        } else {
            "SalUn: random labelling on the weights most salient for the forget loss only (--mask_ratio 0.5)"
        }
    }
    fn run(&self, _ctx: &UnlearnContext, _log: &mut UnlearnLog) -> anyhow::Result<()> {
        anyhow::bail!("{}: not implemented yet", self.name())
    }
}
