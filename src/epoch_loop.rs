//! The one epoch loop of training, the SGD unlearners and the adversarial method, and the one
//! per-batch walk under a progress bar that it and the custom unlearning passes share.
//!
//! An epoch is: the learning rate of each step from a rule, one shuffled stream over a fixed set
//! of indices (seeded per epoch), one caller-supplied step per batch under a progress bar with an
//! ETA, then one caller-supplied end of epoch (the log row, a checkpoint). The caller's mutable
//! state travels as `state` through both callbacks, so a step can add to sums that the end of the
//! epoch reads without the two closures borrowing the same thing.

use crate::data::augment::Augment;
use crate::data::batches::Batch;
use crate::data::device_batches::{BatchSource, Batches};
use crate::optim::Sgd;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

/// A progress bar that can be switched off (`--quiet`, tests).
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar of `len` steps titled `title`, or a silent one when `quiet`.
    pub fn new(len: usize, title: &str, quiet: bool) -> Progress {
        if quiet {
            return Progress { bar: None };
        }
        let bar = ProgressBar::new(len as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(title.to_string());
        Progress { bar: Some(bar) }
    }

    /// Advances by one step with a status message.
    pub fn step(&self, msg: impl FnOnce() -> String) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg());
            bar.inc(1);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Walks `batches` under a progress bar of `steps` steps titled `title`: `step(index, batch)` per
/// batch (0-based index), its message shown on the bar. Returns the number of batches walked.
pub fn walk_batches(
    batches: impl Iterator<Item = Batch>,
    steps: usize,
    title: &str,
    quiet: bool,
    mut step: impl FnMut(usize, Batch) -> anyhow::Result<String>,
) -> anyhow::Result<usize> {
    let progress = Progress::new(steps, title, quiet);
    let mut walked = 0;
    for (index, batch) in batches.enumerate() {
        let message = step(index, batch)?;
        walked += 1;
        progress.step(|| message);
    }
    progress.finish();
    Ok(walked)
}

/// The stream an epoch walks: shuffled batches of `indices`, augmented when `augment` is set,
/// with order and augmentation seeded by `seed_of(seed, epoch)` (0-based epoch).
pub struct EpochBatches<'a> {
    /// Where the images come from.
    pub source: &'a BatchSource,
    /// The samples of every epoch.
    pub indices: &'a [usize],
    /// Batch size (the last batch may be short).
    pub batch_size: usize,
    /// Augmentation of the stream.
    pub augment: Option<Augment>,
    /// The run's seed.
    pub seed: u64,
    /// How each epoch's seed derives from the run's (training and unlearning differ).
    pub seed_of: fn(u64, usize) -> u64,
}

impl EpochBatches<'_> {
    /// Batches per epoch.
    pub fn steps(&self) -> usize {
        self.indices.len().div_ceil(self.batch_size)
    }

    /// The stream of `epoch` (0-based).
    pub fn of(&self, epoch: usize) -> Batches {
        self.source.epoch(
            self.indices.to_vec(),
            self.batch_size,
            true,
            false,
            self.augment,
            (self.seed_of)(self.seed, epoch),
        )
    }
}

/// Where a step stands in an epoch loop.
#[derive(Debug, Clone, Copy)]
pub struct StepAt {
    /// 0-based epoch.
    pub epoch: usize,
    /// 0-based batch within the epoch.
    pub step: usize,
    /// 1-based count of steps in this loop so far, this one included.
    pub iteration: usize,
    /// When the epoch started (before its stream was made).
    pub started: Instant,
}

/// Where an epoch loop stands when an epoch's stream is done.
#[derive(Debug, Clone, Copy)]
pub struct EpochEnd {
    /// 0-based epoch.
    pub epoch: usize,
    /// Steps taken in this loop so far, this epoch's included.
    pub iteration: usize,
    /// When the epoch started (before its stream was made).
    pub started: Instant,
    /// Seconds from the epoch's start to the end of its stream.
    pub pass_seconds: f64,
}

/// What an epoch loop runs: epochs `first..epochs` (0-based; `first` > 0 when a run resumes)
/// over `batches`, each step at the learning rate `lr_at` gives.
pub struct EpochLoop<'a> {
    /// First epoch to run.
    pub first: usize,
    /// Epochs in the whole run (the loop stops before this one).
    pub epochs: usize,
    /// The stream of each epoch.
    pub batches: EpochBatches<'a>,
    /// Learning rate of each step, set on the optimizer before the step.
    pub lr_at: &'a dyn Fn(StepAt) -> f64,
    /// Hide the progress bars.
    pub quiet: bool,
}

/// Runs the epochs of `plan` with `opt`: per epoch, its stream under a bar titled
/// `epoch N/E`, `step` on each batch with `opt.lr` set by `plan.lr_at` (its returned message on
/// the bar), then `end_epoch`. A step's error ends the loop, with the epoch and step named.
pub fn run_epochs<S>(
    plan: &EpochLoop,
    opt: &mut Sgd,
    state: &mut S,
    mut step: impl FnMut(&mut S, &mut Sgd, StepAt, Batch) -> anyhow::Result<String>,
    mut end_epoch: impl FnMut(&mut S, &Sgd, EpochEnd) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut iteration = 0;
    for epoch in plan.first..plan.epochs {
        let started = Instant::now();
        let batches = plan.batches.of(epoch);
        let title = format!("epoch {}/{}", epoch + 1, plan.epochs);
        let steps = plan.batches.steps();
        walk_batches(batches, steps, &title, plan.quiet, |index, batch| {
            iteration += 1;
            let at = StepAt {
                epoch,
                step: index,
                iteration,
                started,
            };
            opt.lr = (plan.lr_at)(at);
            step(state, opt, at, batch)
                .map_err(|err| err.context(format!("{title}, step {}", index + 1)))
        })?;
        let end = EpochEnd {
            epoch,
            iteration,
            started,
            pass_seconds: started.elapsed().as_secs_f64(),
        };
        end_epoch(state, opt, end)?;
    }
    Ok(())
}
