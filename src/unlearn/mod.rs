//! Unlearning methods, one file each, behind one trait and a registry.
//!
//! A method receives the trained model (weights are changed in place), its pruning mask, the
//! data and the splits, and the run's configuration; it may log per-iteration rows. Adding a
//! method = one new file + one line in [`registry`].

use crate::data::batches::Batch;
use crate::data::device_batches::BatchSource;
use crate::data::splits::Splits;
use crate::data::{DataSet, ImageSet};
use crate::device::Amp;
use crate::epoch_loop::{run_epochs, walk_batches, EpochBatches, EpochLoop, StepAt};
use crate::model::mask::Mask;
use crate::model::{Classifier, RunningStats};
use crate::optim::Sgd;
use crate::train::{masked_step, NonFiniteLoss, Objective, PassTally, TrainConfig};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::sync::Arc;
use tch::{Device, Tensor};

pub mod boundary_expand;
pub mod boundary_shrink;
pub mod finetune;
pub mod fisher;
pub mod gan;
pub mod gradient_ascent;
pub mod influence;
pub mod l1_sparse;
pub mod random_label;
pub mod raw;
pub mod retrain;
pub mod salun;
pub mod schedule;
pub mod scrub;

/// Hyper-parameters shared by the unlearners (reference flag names in the CLI).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UnlearnConfig {
    /// Learning rate (`--unlearn_lr`); `None` = the method's reference default.
    pub lr: Option<f64>,
    /// Epochs (`--unlearn_epochs`); `None` = the method's reference default.
    pub epochs: Option<usize>,
    /// Batch size.
    pub batch_size: usize,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD weight decay.
    pub weight_decay: f64,
    /// MultiStepLR milestones (epochs) for the iterative baselines.
    pub milestones: Vec<usize>,
    /// `--alpha`: the method's α (FT_l1's ℓ1 weight, FF's noise scale, IU's step, SCRUB's KL
    /// weight); `None` = the method's default.
    pub alpha: Option<f64>,
    /// Final epochs of FT_l1 without the ℓ1 term.
    pub no_l1_epochs: usize,
    /// Gan, class-wise only: attacker iterations after which β = 0 and lr = `stop_unlearn_lr`.
    pub stop_iter: Option<usize>,
    /// Gan, class-wise only: the defender's lr after `stop_iter`.
    pub stop_unlearn_lr: Option<f64>,
    /// Gan: attacker pre-training iterations.
    pub attacker_iters: usize,
    /// Gan: a pre-trained attacker to start from (else one is pre-trained or reused from cache).
    pub attacker: Option<PathBuf>,
    /// Augment the forget and validation streams (`None` = as the method's reference harness
    /// does: [`Unlearner::forget_harness`]).
    pub forget_augment: Option<bool>,
    /// Seed of this run.
    pub seed: u64,
    /// No augmentation in any stream (`--no_augment`, as the model's training had it).
    #[serde(default)]
    pub no_augment: bool,
    /// Mixed precision of the plain classification losses (FT, GA, ℓ1, Retrain, Gan's L_cls).
    #[serde(default)]
    pub amp: Amp,
    /// Gan: keep the graphs of D's attacker-input passes, or recompute them (less memory).
    #[serde(default)]
    pub gan_memory: gan::GanMemory,
    /// SalUn / SalUn_soft: fraction r of all parameter entries in the saliency mask (SalUn) or
    /// the proximal threshold's rank fraction (SalUn_soft).
    #[serde(default = "default_mask_ratio")]
    pub mask_ratio: f64,
    /// SalUn: the paper's code before the "Fix weight decay" commit (only the gradient is masked,
    /// so weight decay and momentum still move weights outside the mask).
    #[serde(default)]
    pub salun_legacy: bool,
    /// FF: the reference's literal class-wise rule (fires only for CIFAR-10 with 4 500 or
    /// CIFAR-100 with 450 forgotten samples, and on row −1 in random forgetting).
    #[serde(default)]
    pub fisher_reference_rule: bool,
    /// BS: the FGSM step (L∞ bound) of the boundary-shrink attack.
    #[serde(default = "default_fgsm_step")]
    pub fgsm_step: f64,
    /// SCRUB: distillation temperature T.
    #[serde(default = "default_kd_t")]
    pub kd_t: f64,
    /// SCRUB: weight γ of the retain cross-entropy in the min pass.
    #[serde(default = "default_scrub_gamma")]
    pub scrub_gamma: f64,
    /// SCRUB: epochs (1-based, inclusive) that start with a max pass over F.
    #[serde(default = "default_msteps")]
    pub msteps: usize,
    /// SCRUB: epochs after which the lr is multiplied by `lr_decay_rate`.
    #[serde(default = "default_lr_decay_epochs")]
    pub lr_decay_epochs: Vec<usize>,
    /// SCRUB: the lr decay factor.
    #[serde(default = "default_lr_decay_rate")]
    pub lr_decay_rate: f64,
    /// SCRUB: batch size of the max pass over F.
    #[serde(default = "default_forget_batch_size")]
    pub forget_batch_size: usize,
}

fn default_mask_ratio() -> f64 {
    0.5
}
fn default_fgsm_step() -> f64 {
    0.1
}
fn default_kd_t() -> f64 {
    4.0
}
fn default_scrub_gamma() -> f64 {
    0.99
}
fn default_msteps() -> usize {
    2
}
fn default_lr_decay_epochs() -> Vec<usize> {
    vec![3, 5, 9]
}
fn default_lr_decay_rate() -> f64 {
    0.1
}
fn default_forget_batch_size() -> usize {
    512
}

impl Default for UnlearnConfig {
    fn default() -> Self {
        UnlearnConfig {
            lr: None,
            epochs: None,
            batch_size: 256,
            momentum: 0.9,
            weight_decay: 5e-4,
            milestones: vec![91, 136],
            alpha: None,
            no_l1_epochs: 0,
            stop_iter: None,
            stop_unlearn_lr: None,
            attacker_iters: 1000,
            attacker: None,
            forget_augment: None,
            seed: 2,
            no_augment: false,
            amp: Amp::Off,
            gan_memory: gan::GanMemory::Auto,
            mask_ratio: default_mask_ratio(),
            salun_legacy: false,
            fisher_reference_rule: false,
            fgsm_step: default_fgsm_step(),
            kd_t: default_kd_t(),
            scrub_gamma: default_scrub_gamma(),
            msteps: default_msteps(),
            lr_decay_epochs: default_lr_decay_epochs(),
            lr_decay_rate: default_lr_decay_rate(),
            forget_batch_size: default_forget_batch_size(),
        }
    }
}

impl UnlearnConfig {
    /// Checks every size and coefficient before any work starts (a clear error naming the flag).
    pub fn validate(&self) -> anyhow::Result<()> {
        let positive = |flag: &str, v: f64| -> anyhow::Result<()> {
            if !(v.is_finite() && v > 0.0) {
                bail!("{flag} {v}: must be a positive number");
            }
            Ok(())
        };
        let non_negative = |flag: &str, v: f64| -> anyhow::Result<()> {
            if !(v.is_finite() && v >= 0.0) {
                bail!("{flag} {v}: must be a finite number ≥ 0");
            }
            Ok(())
        };
        if self.batch_size == 0 {
            bail!("--batch_size must be at least 1");
        }
        if self.forget_batch_size == 0 {
            bail!("--forget_batch_size must be at least 1");
        }
        if let Some(lr) = self.lr {
            non_negative("--unlearn_lr", lr)?;
        }
        if let Some(lr) = self.stop_unlearn_lr {
            non_negative("--stop-unlearn-lr", lr)?;
        }
        if let Some(alpha) = self.alpha {
            non_negative("--alpha", alpha)?;
        }
        non_negative("--momentum", self.momentum)?;
        non_negative("--weight_decay", self.weight_decay)?;
        if !(self.mask_ratio > 0.0 && self.mask_ratio <= 1.0) {
            bail!("--mask_ratio {}: must be in (0, 1]", self.mask_ratio);
        }
        positive("--fgsm_step", self.fgsm_step)?;
        positive("--kd_T", self.kd_t)?;
        non_negative("--gamma", self.scrub_gamma)?;
        positive("--lr_decay_rate", self.lr_decay_rate)?;
        if self.epochs == Some(0) {
            bail!("--unlearn_epochs 0: give at least 1 (leave it out for the method's default)");
        }
        Ok(())
    }

    /// [`UnlearnConfig::validate`], plus the settings that mean nothing for `method`.
    pub fn validate_for(&self, method: &str) -> anyhow::Result<()> {
        self.validate()?;
        let found = find(method)?;
        match found.name() {
            "Gan" if self.attacker_iters == 0 && self.attacker.is_none() => bail!(
                "--attacker_iters 0: Gan's game starts from an attacker pre-trained for that many \
                 iterations; give at least 1, or --attacker PATH to start from a saved one"
            ),
            "FT_l1" => {
                let epochs = self.epochs.unwrap_or(found.defaults().1);
                if self.no_l1_epochs > epochs {
                    bail!(
                        "--no-l1-epochs {}: more than the {epochs} epochs of the run; give at \
                         most {epochs} ({epochs} keeps α constant throughout, as the reference \
                         does when no epoch is left to decay it)",
                        self.no_l1_epochs
                    );
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Everything a method works on.
pub struct UnlearnContext<'a> {
    /// The model being unlearned; methods change its weights in place.
    pub model: &'a Classifier,
    /// Its pruning mask, enforced after every step.
    pub mask: Option<&'a Mask>,
    /// The data set.
    pub data: &'a DataSet,
    /// The official training images (shared with batch producers).
    pub train_set: Arc<ImageSet>,
    /// Train/val/forget/retain/test.
    pub splits: &'a Splits,
    /// Hyper-parameters.
    pub config: &'a UnlearnConfig,
    /// Where to compute.
    pub device: Device,
    /// Hide progress bars.
    pub quiet: bool,
    /// The checkpoint file the model came from (used to key caches).
    pub model_path: PathBuf,
    /// The run's output folder.
    pub save_dir: PathBuf,
    /// Class-wise forgetting (`--class_to_replace`) rather than random forgetting.
    pub class_wise: bool,
    /// The reference harness the method comes from: it decides whether the forget stream is
    /// augmented when `forget_augment` is not given.
    pub harness: Harness,
}

/// The evaluation harness a method's reference code runs in, which decides the forget (and
/// validation) stream's augmentation by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Harness {
    /// The sparsity code base's `main_forget.py` (Gan, FT, GA, FT_l1, FF, IU, SCRUB): forget and
    /// validation streams augmented in class-wise forgetting only (a quirk of its loaders).
    Sparsity,
    /// Unlearn-Saliency's `main_random.py` / `main_forget.py` (RL, SalUn, SalUn_soft, BS, BE): the
    /// forget loader keeps the train transform in both scenarios.
    Saliency,
}

impl Harness {
    /// Whether this harness augments the forget stream of a run.
    pub fn augments_forget(self, class_wise: bool) -> bool {
        match self {
            Harness::Sparsity => class_wise,
            Harness::Saliency => true,
        }
    }
}

impl UnlearnContext<'_> {
    /// Whether forget/val streams are augmented: `forget_augment` if given, else as the
    /// method's reference harness does.
    pub fn forget_augmented(&self) -> bool {
        !self.config.no_augment
            && self
                .config
                .forget_augment
                .unwrap_or(self.harness.augments_forget(self.class_wise))
    }

    /// The training augmentation of this run's streams: the data set's own, or none with
    /// `no_augment` (for a model trained without augmentation).
    pub fn augment(&self) -> Option<crate::data::Augment> {
        (!self.config.no_augment).then(|| self.data.default_augment())
    }
}

/// A per-iteration log of an unlearner: column names and rows of numbers.
#[derive(Debug, Clone, Default)]
pub struct UnlearnLog {
    /// Column names (first is always `iteration`).
    pub columns: Vec<&'static str>,
    /// One row per iteration.
    pub rows: Vec<Vec<f64>>,
    /// Timed preparation that is not part of the unlearning time (RTE), by name, in seconds.
    pub excluded_seconds: std::collections::BTreeMap<String, f64>,
    /// What the method actually ran with (streams augmented, resolved α, …), recorded in the
    /// run's configuration under `ran`.
    pub ran: serde_json::Map<String, serde_json::Value>,
}

impl UnlearnLog {
    /// Records one setting the method ran with.
    pub fn record(&mut self, key: &str, value: impl serde::Serialize) {
        let value = serde_json::to_value(value).expect("a plain setting serialises");
        self.ran.insert(key.to_string(), value);
    }

    /// The log as CSV text.
    pub fn to_csv(&self) -> String {
        let mut text = self.columns.join(",");
        text.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        text
    }
}

/// One unlearning method.
pub trait Unlearner {
    /// The reference's name (`--unlearn NAME`).
    fn name(&self) -> &'static str;
    /// Its reference (lr, epochs) defaults, used when the flags are absent.
    fn defaults(&self) -> (f64, usize);
    /// One line on what it does and its own knobs' defaults (for `unlearn --help`).
    fn summary(&self) -> &'static str;
    /// The reference harness its code runs in (the forget stream's default augmentation).
    fn forget_harness(&self) -> Harness {
        Harness::Sparsity
    }
    /// Unlearns in place, appending per-iteration rows to `log` (kept even when it fails).
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()>;
}

/// Every method, in the order reports list them.
pub fn registry() -> Vec<Box<dyn Unlearner>> {
    vec![
        Box::new(retrain::Retrain),
        Box::new(raw::Raw),
        Box::new(finetune::FineTune),
        Box::new(gradient_ascent::GradientAscent),
        Box::new(l1_sparse::L1Sparse { name: "FT_l1" }),
        Box::new(l1_sparse::L1Sparse { name: "FT_prune" }),
        Box::new(fisher::FisherForgetting),
        Box::new(influence::InfluenceUnlearning),
        Box::new(random_label::RandomLabel),
        Box::new(salun::SalUn { soft: false }),
        Box::new(salun::SalUn { soft: true }),
        Box::new(boundary_shrink::BoundaryShrink),
        Box::new(boundary_expand::BoundaryExpand),
        Box::new(scrub::Scrub),
        Box::new(gan::Adversarial),
    ]
}

/// Every method with its defaults and one line on what it does, for `unlearn --help`.
pub fn methods_help() -> String {
    let mut text = String::from("Methods (--unlearn NAME; lr and epochs are the defaults of --unlearn_lr and --unlearn_epochs):\n");
    for m in registry() {
        let (lr, epochs) = m.defaults();
        let schedule = if epochs == 0 {
            "one-shot".to_string()
        } else {
            format!("lr {lr}, {epochs} epochs")
        };
        text.push_str(&format!(
            "  {:<10} {} [{schedule}]\n",
            m.name(),
            m.summary()
        ));
    }
    text
}

/// Finds a method by name, case-insensitively (`Gan`, `gan`, `FT`, `ft`, ...).
pub fn find(name: &str) -> anyhow::Result<Box<dyn Unlearner>> {
    let wanted = name.to_ascii_lowercase().replace('-', "_");
    let methods = registry();
    let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
    let names = names.join(", ");
    match methods
        .into_iter()
        .find(|m| m.name().to_ascii_lowercase() == wanted)
    {
        Some(m) => Ok(m),
        None => bail!("--unlearn {name:?}: unknown method; known: {names}"),
    }
}

/// SGD epochs over `set[indices]` (shuffled; augmented as in training when `augment`) with the
/// reference's MultiStepLR; `objective_at(epoch)` gives the loss sign and ℓ1 weight. Shared by
/// the fine-tuning style methods (FT, GA, ℓ1-sparse, Retrain).
#[allow(clippy::too_many_arguments)]
pub fn sgd_epochs(
    ctx: &UnlearnContext,
    log: &mut UnlearnLog,
    indices: &[usize],
    augment: bool,
    lr: f64,
    epochs: usize,
    objective_at: impl Fn(usize) -> Objective,
) -> anyhow::Result<()> {
    if indices.is_empty() {
        bail!("nothing to train on: the selected set is empty");
    }
    let cfg = ctx.config;
    let schedule = TrainConfig {
        epochs,
        lr,
        momentum: cfg.momentum,
        weight_decay: cfg.weight_decay,
        batch_size: cfg.batch_size,
        milestones: cfg.milestones.clone(),
        seed: cfg.seed,
        ..TrainConfig::default()
    };
    let mut opt = Sgd::new(
        ctx.model.vs.trainable_variables(),
        lr,
        cfg.momentum,
        cfg.weight_decay,
    );
    log.columns = vec!["iteration", "epoch", "loss", "accuracy", "lr", "seconds"];
    let source = batch_source(ctx);
    let batches = epoch_batches(ctx, &source, indices, augment);
    let steps_per_epoch = batches.steps();
    let lr_at = |at: StepAt| schedule.lr_at(at.epoch, at.step, steps_per_epoch);
    let plan = EpochLoop {
        first: 0,
        epochs,
        batches,
        lr_at: &lr_at,
        quiet: ctx.quiet,
    };
    let mut tally = PassTally::default();
    run_epochs(
        &plan,
        &mut opt,
        &mut tally,
        |tally, opt, at, batch| {
            let objective = Objective {
                amp: cfg.amp,
                ..objective_at(at.epoch)
            };
            tally.sgd_step(ctx.model, opt, ctx.mask, &batch, objective, at)
        },
        |tally, opt, end| {
            let pass = tally.take(end.pass_seconds);
            tracing::info!(
                "epoch {}/{epochs}: loss {:.4}, accuracy {:.2}%, {:.1}s",
                end.epoch + 1,
                pass.loss,
                pass.accuracy,
                pass.seconds
            );
            log.rows.push(vec![
                ((end.epoch + 1) * steps_per_epoch) as f64,
                (end.epoch + 1) as f64,
                pass.loss,
                pass.accuracy,
                opt.lr,
                pass.seconds,
            ]);
            Ok(())
        },
    )
}

/// The (lr, epochs) to use: flags if given, else the method's defaults.
pub fn lr_epochs(method: &dyn Unlearner, config: &UnlearnConfig) -> (f64, usize) {
    let (lr, epochs) = method.defaults();
    (config.lr.unwrap_or(lr), config.epochs.unwrap_or(epochs))
}

/// One batch's step in a [`custom_pass`]: the loss to minimise, and what runs around the masked
/// SGD step (RL and SalUn act on the gradients and the weights there). [`loss_step`] makes one
/// from a closure that only gives the loss.
pub trait CustomStep {
    /// The loss on `batch` (already on the model's device; `index` is 0-based in the pass).
    fn loss(&mut self, index: usize, batch: &Batch) -> anyhow::Result<Tensor>;
    /// The loss's name in a [`NonFiniteLoss`] error.
    fn loss_name(&self) -> &'static str {
        "unlearning"
    }
    /// After the backward pass, before the masked step: the gradients are ready.
    fn before_step(&mut self, _opt: &mut Sgd) -> anyhow::Result<()> {
        Ok(())
    }
    /// After the masked step and the pruning mask's enforcement on the weights.
    fn after_step(&mut self, _opt: &mut Sgd) -> anyhow::Result<()> {
        Ok(())
    }
    /// The progress bar's message, from the mean loss of the pass so far.
    fn message(&self, mean_loss: f64) -> String {
        format!("loss {mean_loss:.4}")
    }
}

/// A [`CustomStep`] that is only a loss.
pub struct LossStep<F>(F);

impl<F: FnMut(&Batch) -> anyhow::Result<Tensor>> CustomStep for LossStep<F> {
    fn loss(&mut self, _index: usize, batch: &Batch) -> anyhow::Result<Tensor> {
        (self.0)(batch)
    }
}

/// The [`CustomStep`] whose loss on a batch is `loss_of(batch)`, with nothing around the step.
pub fn loss_step(
    loss_of: impl FnMut(&Batch) -> anyhow::Result<Tensor>,
) -> LossStep<impl FnMut(&Batch) -> anyhow::Result<Tensor>> {
    LossStep(loss_of)
}

/// One masked SGD step of `step` on `batch` (moved to the model's device), its hooks around the
/// optimizer step. The loss is checked before the update, so a non-finite one leaves the last
/// good weights and BatchNorm statistics (the error names iteration `index + 1`). Returns the
/// loss.
pub fn custom_step(
    ctx: &UnlearnContext,
    opt: &mut Sgd,
    index: usize,
    batch: Batch,
    step: &mut impl CustomStep,
) -> anyhow::Result<f64> {
    let batch = Batch {
        images: batch.images.to_device(ctx.device),
        labels: batch.labels.to_device(ctx.device),
        indices: batch.indices,
    };
    let running_stats = RunningStats::save(ctx.model);
    let loss = step.loss(index, &batch)?;
    let value = loss.double_value(&[]);
    if !value.is_finite() {
        running_stats.restore();
        return Err(NonFiniteLoss {
            loss: step.loss_name(),
            value,
            iteration: index + 1,
        }
        .into());
    }
    opt.zero_grad();
    loss.backward();
    step.before_step(opt)?;
    masked_step(ctx.model, opt, ctx.mask);
    step.after_step(opt)?;
    Ok(value)
}

/// One pass over `batches` (`steps` of them, under a bar titled `title`) with one
/// [`custom_step`] per batch. Returns the mean loss over the batches. Shared by the methods
/// whose loss is not plain cross-entropy on the true labels (RL, SalUn, BS, BE, SCRUB).
pub fn custom_pass(
    ctx: &UnlearnContext,
    opt: &mut Sgd,
    batches: impl Iterator<Item = Batch>,
    steps: usize,
    title: &str,
    step: &mut impl CustomStep,
) -> anyhow::Result<f64> {
    let (mut sum, mut count) = (0.0, 0usize);
    walk_batches(batches, steps, title, ctx.quiet, |index, batch| {
        let value = custom_step(ctx, opt, index, batch, step)
            .with_context(|| format!("{title}, step {}", index + 1))?;
        sum += value;
        count += 1;
        Ok(step.message(sum / count as f64))
    })?;
    Ok(sum / count.max(1) as f64)
}

/// Seed of epoch `epoch`'s batch order and augmentation: every SGD-style unlearner derives its
/// retain stream's seed this way, so the same seed visits R in the same batches.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(7_919).wrapping_add(epoch as u64)
}

/// The reference's MultiStepLR for the iterative unlearners: `lr`·0.1 per milestone of
/// `config.milestones` reached by epoch `epoch` (0-based), stepped once per epoch.
pub fn milestone_lr(config: &UnlearnConfig, lr: f64, epoch: usize) -> f64 {
    TrainConfig {
        lr,
        milestones: config.milestones.clone(),
        ..TrainConfig::default()
    }
    .lr_at(epoch, 0, 1)
}

/// Each epoch's shuffled batches of `indices` (augmented as in training when `augment`), seeded
/// by [`epoch_seed`].
pub fn epoch_batches<'a>(
    ctx: &UnlearnContext,
    source: &'a BatchSource,
    indices: &'a [usize],
    augment: bool,
) -> EpochBatches<'a> {
    EpochBatches {
        source,
        indices,
        batch_size: ctx.config.batch_size,
        augment: augment.then(|| ctx.augment()).flatten(),
        seed: ctx.config.seed,
        seed_of: epoch_seed,
    }
}

/// The epochs of a method that trains on the forget set only (BS, BE): per epoch the
/// reference's MultiStepLR, one shuffled pass over F (augmented as the scenario says) with one
/// masked SGD step per batch on the loss `step` returns with a count of "hits" in the batch,
/// and a log row with the mean loss and the hits as a percentage of F (column `hit_column`).
pub fn forget_set_epochs(
    ctx: &UnlearnContext,
    opt: &mut Sgd,
    lr: f64,
    epochs: usize,
    log: &mut UnlearnLog,
    hit_column: &'static str,
    mut step: impl FnMut(&Batch) -> anyhow::Result<(Tensor, i64)>,
) -> anyhow::Result<()> {
    let cfg = ctx.config;
    let forget = &ctx.splits.forget;
    if forget.is_empty() {
        bail!("the forget set is empty: nothing to unlearn");
    }
    let augment = ctx.forget_augmented();
    log.record("forget_augmented", augment);
    log.record("forget_batch_size", cfg.batch_size);
    log.record("retain_used", false);
    let source = batch_source(ctx);
    let batches = epoch_batches(ctx, &source, forget, augment);
    let steps = batches.steps();
    log.columns = vec!["iteration", "epoch", "loss", hit_column, "lr", "seconds"];
    // MultiStepLR, stepped once per epoch.
    let lr_at = |at: StepAt| milestone_lr(cfg, lr, at.epoch);
    let plan = EpochLoop {
        first: 0,
        epochs,
        batches,
        lr_at: &lr_at,
        quiet: ctx.quiet,
    };
    let mut sums = ForgetSetSums::default();
    run_epochs(
        &plan,
        opt,
        &mut sums,
        |sums, opt, at, batch| {
            let samples = batch.indices.len();
            let mut with_hits = loss_step(|batch| {
                let (loss, hits) = step(batch)?;
                sums.hits += hits;
                Ok(loss)
            });
            let loss = custom_step(ctx, opt, at.step, batch, &mut with_hits)?;
            drop(with_hits);
            sums.loss += loss;
            sums.steps += 1;
            sums.seen += samples;
            Ok(format!("loss {:.4}", sums.loss / sums.steps as f64))
        },
        |sums, opt, end| {
            let sums = std::mem::take(sums);
            let loss = sums.loss / sums.steps.max(1) as f64;
            let share = 100.0 * sums.hits as f64 / sums.seen.max(1) as f64;
            tracing::info!(
                "epoch {}/{epochs}: loss {loss:.4}, {hit_column} {share:.1}%",
                end.epoch + 1
            );
            log.rows.push(vec![
                ((end.epoch + 1) * steps) as f64,
                (end.epoch + 1) as f64,
                loss,
                share,
                opt.lr,
                end.started.elapsed().as_secs_f64(),
            ]);
            Ok(())
        },
    )
}

/// One epoch's sums in [`forget_set_epochs`].
#[derive(Debug, Default)]
struct ForgetSetSums {
    loss: f64,
    steps: usize,
    hits: i64,
    seen: usize,
}

/// A copy of `model` (weights and BatchNorm statistics) whose parameters take no gradients:
/// the teacher of BS and SCRUB, which must stay the model as it was before unlearning.
pub fn frozen_teacher(model: &Classifier) -> anyhow::Result<Classifier> {
    let mut teacher = Classifier::try_new(&model.spec, model.vs.device())?;
    crate::checkpoint::copy_into(&teacher.vs, model.vs.variables())
        .context("copying the model into its teacher")?;
    teacher.vs.freeze();
    Ok(teacher)
}

/// The batch source for this run's training images (on the device for CUDA runs).
pub fn batch_source(ctx: &UnlearnContext) -> BatchSource {
    BatchSource::new(&ctx.train_set, ctx.device)
}
