//! `RL`: random labelling (SPEC §4b.3; Unlearn-Saliency `unlearn/RL.py`).
//!
//! The model stays in train mode. Each epoch takes one SGD step per forget batch on the
//! cross-entropy against labels drawn uniformly from all C classes with libtorch's generator
//! (`torch.randint`; a drawn label equals the true one with probability 1/C), then one step per
//! retain batch on the true labels. For CIFAR-100 the reference instead relabels a copy of F once
//! per epoch and iterates F ∪ R as one shuffled loader; [`Layout`] names the two shapes of an
//! epoch. SGD (momentum, weight decay) with the reference's MultiStepLR, stepped per epoch; no
//! warm-up (the reference's warm-up path crashes: it reads the step counter before assigning it).
//!
//! Streams: the retain stream is augmented; the forget stream follows `--forget_augment` (SPEC §1's
//! default: augmented only in class-wise forgetting), also for the forget samples of a mixed
//! batch in the concatenated layout.
//!
//! The epoch ([`rl_epoch`]) and the whole run ([`run_rl`]) take a [`StepHook`], so that SalUn
//! (saliency-masked steps) and SalUn-soft (proximal steps) run this same loop with their
//! additions around each optimizer step.

use super::{
    batch_source, custom_pass, epoch_seed, lr_epochs, milestone_lr, CustomStep, UnlearnContext,
    UnlearnLog, Unlearner,
};
use crate::data::batches::Batch;
use crate::data::device_batches::{BatchSource, Batches};
use crate::data::DatasetName;
use crate::optim::Sgd;
use crate::train::NonFiniteLoss;
use anyhow::{bail, ensure, Context};
use std::time::Instant;
use tch::{Device, Kind, Reduction, Tensor};

/// Random labelling.
pub struct RandomLabel;

impl Unlearner for RandomLabel {
    fn name(&self) -> &'static str {
        "RL"
    }
    fn defaults(&self) -> (f64, usize) {
        (0.01, 10)
    }
    fn summary(&self) -> &'static str {
        "random labelling: SGD on F with uniformly random labels, then on R with true labels (one mixed loader for CIFAR-100)"
    }
    fn forget_harness(&self) -> super::Harness {
        super::Harness::Saliency
    }
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()> {
        let (lr, epochs) = lr_epochs(self, ctx.config);
        // The random labels come from libtorch's generator: the same command, the same labels.
        tch::manual_seed(ctx.config.seed as i64);
        run_rl(
            ctx,
            log,
            lr,
            epochs,
            Layout::for_rl(ctx.data.name),
            &mut NoHook,
        )
    }
}

/// How an epoch walks the forget set F and the retain set R.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A full pass over F with labels drawn per batch, then a full pass over R.
    Separate,
    /// F relabelled once per epoch, concatenated with R, iterated as one shuffled loader.
    Concatenated,
}

impl Layout {
    /// RL's layout (and SalUn's, which runs RL): concatenated for CIFAR-100 only.
    pub fn for_rl(name: DatasetName) -> Layout {
        if name == DatasetName::Cifar100 {
            Layout::Concatenated
        } else {
            Layout::Separate
        }
    }

    /// The name recorded in the run's configuration.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Separate => "separate",
            Layout::Concatenated => "concatenated",
        }
    }
}

/// Which stream a step's batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Forget samples with random labels ([`Layout::Separate`]).
    Forget,
    /// Retain samples with their true labels ([`Layout::Separate`]).
    Retain,
    /// Relabelled forget and retain samples together ([`Layout::Concatenated`]).
    Mixed,
}

/// One step as a [`StepHook`] sees it.
pub struct StepInfo<'a> {
    /// 0-based epoch.
    pub epoch: usize,
    /// The stream the batch came from.
    pub stream: Stream,
    /// 0-based index of the batch within its stream in this epoch.
    pub index: usize,
    /// The batch on the model's device, with the labels it is trained on.
    pub batch: &'a Batch,
    /// Per sample of the batch: whether it belongs to the forget set.
    pub forget: &'a [bool],
}

/// What a method adds around each random-labelling step; every call does nothing by default.
pub trait StepHook {
    /// At the start of each epoch, before its first step (snapshots are taken here).
    fn start_epoch(&mut self, _ctx: &UnlearnContext, _epoch: usize) -> anyhow::Result<()> {
        Ok(())
    }
    /// After the backward pass, before the optimizer step (the gradients are ready).
    fn before_step(&mut self, _ctx: &UnlearnContext, _step: &StepInfo) -> anyhow::Result<()> {
        Ok(())
    }
    /// After the optimizer step and the pruning mask's enforcement.
    fn after_step(
        &mut self,
        _ctx: &UnlearnContext,
        _opt: &mut Sgd,
        _step: &StepInfo,
    ) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Plain random labelling: nothing around the steps.
pub struct NoHook;

impl StepHook for NoHook {}

/// `n` labels drawn uniformly from `0..classes` with libtorch's CPU generator (`torch.randint`).
pub fn random_labels(n: usize, classes: usize) -> Tensor {
    Tensor::randint(classes as i64, [n as i64], (Kind::Int64, Device::Cpu))
}

/// Mean cross-entropy of one epoch's forget and retain samples, against the labels trained on.
#[derive(Debug, Clone, Copy, Default)]
pub struct EpochLosses {
    /// Summed cross-entropy of forget samples (random labels).
    pub forget_sum: f64,
    /// Forget samples seen.
    pub forget_count: usize,
    /// Summed cross-entropy of retain samples (true labels).
    pub retain_sum: f64,
    /// Retain samples seen.
    pub retain_count: usize,
    /// Optimizer steps taken.
    pub steps: usize,
}

impl EpochLosses {
    /// Mean forget loss (NaN when no forget sample was seen).
    pub fn forget(&self) -> f64 {
        self.forget_sum / self.forget_count as f64
    }
    /// Mean retain loss (NaN when no retain sample was seen).
    pub fn retain(&self) -> f64 {
        self.retain_sum / self.retain_count as f64
    }
}

/// Number of batches of `len` samples (the last one may be short).
pub fn batches_in(len: usize, batch_size: usize) -> usize {
    len.div_ceil(batch_size)
}

/// The whole random-labelling run: `epochs` calls of [`rl_epoch`] with SGD at the reference's
/// MultiStepLR, one `unlearn_log.csv` row per epoch, and the streams' augmentation and the
/// layout recorded in `log`.
pub fn run_rl(
    ctx: &UnlearnContext,
    log: &mut UnlearnLog,
    lr: f64,
    epochs: usize,
    layout: Layout,
    hook: &mut dyn StepHook,
) -> anyhow::Result<()> {
    let cfg = ctx.config;
    if ctx.splits.forget.is_empty() {
        bail!("random labelling needs a forget set, and it is empty");
    }
    log.record("forget_augmented", ctx.forget_augmented());
    log.record("retain_augmented", ctx.augment().is_some());
    log.record("mode", layout.name());
    let mut opt = Sgd::new(
        ctx.model.vs.trainable_variables(),
        lr,
        cfg.momentum,
        cfg.weight_decay,
    );
    log.columns = vec![
        "iteration",
        "epoch",
        "forget_loss",
        "retain_loss",
        "lr",
        "seconds",
    ];
    let source = batch_source(ctx);
    let mut iteration = 0;
    for epoch in 0..epochs {
        let start = Instant::now();
        // MultiStepLR, stepped once per epoch.
        opt.lr = milestone_lr(cfg, lr, epoch);
        let losses = rl_epoch(ctx, &source, &mut opt, epoch, layout, hook)
            .map_err(|e| with_iteration(e, iteration))
            .with_context(|| format!("epoch {}/{epochs}", epoch + 1))?;
        iteration += losses.steps;
        let seconds = start.elapsed().as_secs_f64();
        tracing::info!(
            "epoch {}/{epochs}: forget loss {:.4}, retain loss {:.4}, lr {}, {seconds:.1}s",
            epoch + 1,
            losses.forget(),
            losses.retain(),
            opt.lr
        );
        log.rows.push(vec![
            iteration as f64,
            (epoch + 1) as f64,
            losses.forget(),
            losses.retain(),
            opt.lr,
            seconds,
        ]);
    }
    Ok(())
}

/// Makes a non-finite loss's step count run-wide (epochs count their steps from 1).
fn with_iteration(err: anyhow::Error, done_before: usize) -> anyhow::Error {
    match err.downcast::<NonFiniteLoss>() {
        Ok(nan) => NonFiniteLoss {
            iteration: done_before + nan.iteration,
            ..nan
        }
        .into(),
        Err(err) => err,
    }
}

/// One random-labelling epoch (0-based `epoch`) with `opt` at its current lr: the hook's
/// `start_epoch`, then the passes of `layout`, each a [`custom_pass`] with the hook around the
/// optimizer step.
pub fn rl_epoch(
    ctx: &UnlearnContext,
    source: &BatchSource,
    opt: &mut Sgd,
    epoch: usize,
    layout: Layout,
    hook: &mut dyn StepHook,
) -> anyhow::Result<EpochLosses> {
    hook.start_epoch(ctx, epoch)?;
    let mut losses = EpochLosses::default();
    match layout {
        Layout::Separate => separate_epoch(ctx, source, opt, epoch, hook, &mut losses)?,
        Layout::Concatenated => concatenated_epoch(ctx, source, opt, epoch, hook, &mut losses)?,
    }
    Ok(losses)
}

/// Seeds of an epoch's batch streams: one per stream, distinct across epochs.
fn stream_seed(seed: u64, epoch: usize, stream: Stream) -> u64 {
    let base = epoch_seed(seed, epoch);
    match stream {
        Stream::Retain => base,
        Stream::Forget => base ^ 0x666f_7267_6574_2121,
        Stream::Mixed => base ^ 0x6d69_7865_6421_2121,
    }
}

/// F with labels drawn per batch, then R with its true labels.
fn separate_epoch(
    ctx: &UnlearnContext,
    source: &BatchSource,
    opt: &mut Sgd,
    epoch: usize,
    hook: &mut dyn StepHook,
    losses: &mut EpochLosses,
) -> anyhow::Result<()> {
    let cfg = ctx.config;
    let (forget, retain) = (&ctx.splits.forget, &ctx.splits.retain);
    let forget_batches = source.epoch(
        forget.clone(),
        cfg.batch_size,
        true,
        false,
        ctx.forget_augmented().then(|| ctx.augment()).flatten(),
        stream_seed(cfg.seed, epoch, Stream::Forget),
    );
    let mut stepper = Stepper {
        ctx,
        hook,
        epoch,
        stream: Stream::Forget,
        relabel: Relabel::Random,
        losses,
        current: None,
    };
    let title = format!("RL forget {}", epoch + 1);
    let steps = batches_in(forget.len(), cfg.batch_size);
    custom_pass(ctx, opt, forget_batches, steps, &title, &mut stepper)
        .map_err(|e| with_iteration(e, 0))?;
    let retain_batches = source.epoch(
        retain.clone(),
        cfg.batch_size,
        true,
        false,
        ctx.augment(),
        stream_seed(cfg.seed, epoch, Stream::Retain),
    );
    stepper.stream = Stream::Retain;
    stepper.relabel = Relabel::True;
    let forget_steps = stepper.losses.steps;
    let title = format!("RL retain {}", epoch + 1);
    let steps = batches_in(retain.len(), cfg.batch_size);
    custom_pass(ctx, opt, retain_batches, steps, &title, &mut stepper)
        .map_err(|e| with_iteration(e, forget_steps))?;
    Ok(())
}

/// F relabelled once for the epoch and R in one shuffled loader. The retain samples are
/// augmented; when the forget stream is not, its samples take the un-augmented pixels of a
/// second stream with the same seed (same batches, same order).
fn concatenated_epoch(
    ctx: &UnlearnContext,
    source: &BatchSource,
    opt: &mut Sgd,
    epoch: usize,
    hook: &mut dyn StepHook,
    losses: &mut EpochLosses,
) -> anyhow::Result<()> {
    let cfg = ctx.config;
    let (forget, retain) = (&ctx.splits.forget, &ctx.splits.retain);
    let mut labels = ctx.train_set.labels.clone();
    let mut is_forget = vec![false; labels.len()];
    let drawn = Vec::<i64>::try_from(random_labels(forget.len(), ctx.data.num_classes))
        .context("reading the drawn labels")?;
    for (&i, &y) in forget.iter().zip(&drawn) {
        labels[i] = y;
        is_forget[i] = true;
    }
    let indices: Vec<usize> = forget.iter().chain(retain).copied().collect();
    let steps = batches_in(indices.len(), cfg.batch_size);
    let seed = stream_seed(cfg.seed, epoch, Stream::Mixed);
    let plain = (!ctx.forget_augmented())
        .then(|| source.epoch(indices.clone(), cfg.batch_size, true, false, None, seed));
    let augmented = source.epoch(indices, cfg.batch_size, true, false, ctx.augment(), seed);
    let mut stepper = Stepper {
        ctx,
        hook,
        epoch,
        stream: Stream::Mixed,
        relabel: Relabel::Mixed {
            labels: &labels,
            is_forget: &is_forget,
            plain,
        },
        losses,
        current: None,
    };
    let title = format!("RL mixed {}", epoch + 1);
    custom_pass(ctx, opt, augmented, steps, &title, &mut stepper)
        .map_err(|e| with_iteration(e, 0))?;
    Ok(())
}

/// How a stream's batches become the batches trained on.
enum Relabel<'e> {
    /// Labels drawn uniformly from all classes, per batch (the separate forget pass).
    Random,
    /// The true labels (the separate retain pass).
    True,
    /// The epoch's labels of F ∪ R (F's drawn once); when `plain` is set, forget samples take
    /// its un-augmented pixels.
    Mixed {
        labels: &'e [i64],
        is_forget: &'e [bool],
        plain: Option<Batches>,
    },
}

/// The batch a step trains on, with its forget flags and per-sample losses.
struct Trained {
    batch: Batch,
    forget: Vec<bool>,
    per_sample: Tensor,
}

/// Random labelling's step in a [`custom_pass`]: the mean cross-entropy of the batch against the
/// labels it is trained on, in train mode, with the hook around the optimizer step; the
/// per-sample losses are summed by forget and retain samples.
struct Stepper<'a, 'c> {
    ctx: &'a UnlearnContext<'c>,
    hook: &'a mut dyn StepHook,
    epoch: usize,
    stream: Stream,
    relabel: Relabel<'a>,
    losses: &'a mut EpochLosses,
    current: Option<(usize, Trained)>,
}

impl Stepper<'_, '_> {
    /// The batch trained on for `batch` (on the model's device) and its forget flags.
    fn trained_batch(&mut self, index: usize, batch: &Batch) -> anyhow::Result<(Batch, Vec<bool>)> {
        let ctx = self.ctx;
        let n = batch.indices.len();
        let device = batch.images.device();
        Ok(match &mut self.relabel {
            Relabel::Random => {
                let labels = random_labels(n, ctx.data.num_classes).to_device(device);
                let batch = Batch {
                    images: batch.images.shallow_clone(),
                    labels,
                    indices: batch.indices.clone(),
                };
                (batch, vec![true; n])
            }
            Relabel::True => (
                Batch {
                    images: batch.images.shallow_clone(),
                    labels: batch.labels.shallow_clone(),
                    indices: batch.indices.clone(),
                },
                vec![false; n],
            ),
            Relabel::Mixed {
                labels,
                is_forget,
                plain,
            } => {
                let flags: Vec<bool> = batch.indices.iter().map(|&i| is_forget[i]).collect();
                let images = match plain.as_mut() {
                    Some(stream) => {
                        let plain = stream
                            .next()
                            .context("the un-augmented stream ended early")?;
                        ensure!(
                            plain.indices == batch.indices,
                            "the un-augmented stream's batch {} holds other samples",
                            index + 1
                        );
                        let rows = Tensor::from_slice(&flags)
                            .to_device(device)
                            .view([-1, 1, 1, 1]);
                        plain
                            .images
                            .to_device(device)
                            .where_self(&rows, &batch.images)
                    }
                    None => batch.images.shallow_clone(),
                };
                let batch_labels: Vec<i64> = batch.indices.iter().map(|&i| labels[i]).collect();
                let batch = Batch {
                    images,
                    labels: Tensor::from_slice(&batch_labels).to_device(device),
                    indices: batch.indices.clone(),
                };
                (batch, flags)
            }
        })
    }

    /// Adds a step's per-sample losses to the forget and retain sums.
    fn add_losses(&mut self, per_sample: &Tensor, forget: &[bool]) -> anyhow::Result<()> {
        let flags = Tensor::from_slice(forget).to_device(per_sample.device());
        let is_forget = flags.to_kind(Kind::Double);
        let is_retain = flags.logical_not().to_kind(Kind::Double);
        let per_sample = per_sample.to_kind(Kind::Double);
        let sums = Tensor::stack(
            &[
                (&per_sample * &is_forget).sum(Kind::Double),
                (&per_sample * &is_retain).sum(Kind::Double),
            ],
            0,
        );
        let sums = Vec::<f64>::try_from(sums.to_device(Device::Cpu)).context("reading losses")?;
        let forget_count = forget.iter().filter(|&&f| f).count();
        self.losses.forget_sum += sums[0];
        self.losses.retain_sum += sums[1];
        self.losses.forget_count += forget_count;
        self.losses.retain_count += forget.len() - forget_count;
        Ok(())
    }
}

impl CustomStep for Stepper<'_, '_> {
    fn loss(&mut self, index: usize, batch: &Batch) -> anyhow::Result<Tensor> {
        let (batch, forget) = self.trained_batch(index, batch)?;
        let (logits, _) = self.ctx.model.forward(&batch.images, true);
        let per_sample =
            logits.cross_entropy_loss::<Tensor>(&batch.labels, None, Reduction::None, -100, 0.0);
        let loss = per_sample.mean(Kind::Float);
        let per_sample = per_sample.detach();
        self.current = Some((
            index,
            Trained {
                batch,
                forget,
                per_sample,
            },
        ));
        Ok(loss)
    }

    fn loss_name(&self) -> &'static str {
        "random-labelling cross-entropy"
    }

    fn before_step(&mut self, _opt: &mut Sgd) -> anyhow::Result<()> {
        let (index, trained) = self.current.take().context("a step without a loss")?;
        let info = StepInfo {
            epoch: self.epoch,
            stream: self.stream,
            index,
            batch: &trained.batch,
            forget: &trained.forget,
        };
        self.hook.before_step(self.ctx, &info)?;
        self.current = Some((index, trained));
        Ok(())
    }

    fn after_step(&mut self, opt: &mut Sgd) -> anyhow::Result<()> {
        let (index, trained) = self.current.take().context("a step without a loss")?;
        let info = StepInfo {
            epoch: self.epoch,
            stream: self.stream,
            index,
            batch: &trained.batch,
            forget: &trained.forget,
        };
        self.hook.after_step(self.ctx, opt, &info)?;
        self.add_losses(&trained.per_sample, &trained.forget)?;
        self.losses.steps += 1;
        Ok(())
    }

    fn message(&self, _mean_loss: f64) -> String {
        match self.stream {
            Stream::Forget => format!("loss {:.4}", self.losses.forget()),
            Stream::Retain => format!("loss {:.4}", self.losses.retain()),
            Stream::Mixed => format!(
                "forget {:.4} retain {:.4}",
                self.losses.forget(),
                self.losses.retain()
            ),
        }
    }
}
