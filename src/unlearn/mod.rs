//! Unlearning methods, one file each, behind one trait and a registry.
//!
//! A method receives the trained model (weights are changed in place), its pruning mask, the
//! data and the splits, and the run's configuration; it may log per-iteration rows. Adding a
//! method = one new file + one line in [`registry`].

use crate::data::device_batches::BatchSource;
use crate::data::splits::Splits;
use crate::data::{DataSet, ImageSet};
use crate::device::Amp;
use crate::model::mask::Mask;
use crate::model::Classifier;
use crate::optim::Sgd;
use crate::train::{run_pass, Objective, Progress, TrainConfig};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::sync::Arc;
use tch::Device;

pub mod finetune;
pub mod gan;
pub mod gradient_ascent;
pub mod l1_sparse;
pub mod raw;
pub mod retrain;

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
    /// ℓ1 coefficient α of FT_l1 / FT_prune.
    pub alpha: f64,
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
    /// Augment the forget and validation streams (`None` = the reference's quirk: only in
    /// class-wise forgetting).
    pub forget_augment: Option<bool>,
    /// Seed of this run.
    pub seed: u64,
    /// Mixed precision of the plain classification losses (FT, GA, ℓ1, Retrain, Gan's L_cls).
    #[serde(default)]
    pub amp: Amp,
    /// Gan: keep the graphs of D's attacker-input passes, or recompute them (less memory).
    #[serde(default)]
    pub gan_memory: gan::GanMemory,
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
            alpha: 5e-4,
            no_l1_epochs: 0,
            stop_iter: None,
            stop_unlearn_lr: None,
            attacker_iters: 1000,
            attacker: None,
            forget_augment: None,
            seed: 2,
            amp: Amp::Off,
            gan_memory: gan::GanMemory::Keep,
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
}

impl UnlearnContext<'_> {
    /// Whether forget/val streams are augmented (SPEC §1 quirk by default).
    pub fn forget_augmented(&self) -> bool {
        self.config.forget_augment.unwrap_or(self.class_wise)
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
}

impl UnlearnLog {
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
    /// Unlearns in place, appending per-iteration rows to `log` (kept even when it fails).
    fn run(&self, ctx: &UnlearnContext, log: &mut UnlearnLog) -> anyhow::Result<()>;
}

/// Every method, in the order reports list them.
pub fn registry() -> Vec<Box<dyn Unlearner>> {
    vec![
        Box::new(raw::Raw),
        Box::new(retrain::Retrain),
        Box::new(finetune::FineTune),
        Box::new(gradient_ascent::GradientAscent),
        Box::new(l1_sparse::L1Sparse { name: "FT_l1" }),
        Box::new(l1_sparse::L1Sparse { name: "FT_prune" }),
        Box::new(gan::Adversarial),
    ]
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

/// SGD epochs over `set[indices]` (shuffled, augmented as in training) with the reference's
/// MultiStepLR; `objective_at(epoch)` gives the loss sign and ℓ1 weight. Shared by the
/// fine-tuning style methods (FT, GA, ℓ1-sparse, Retrain).
pub fn sgd_epochs(
    ctx: &UnlearnContext,
    log: &mut UnlearnLog,
    indices: &[usize],
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
    let steps_per_epoch = indices.len().div_ceil(cfg.batch_size);
    log.columns = vec!["iteration", "epoch", "loss", "accuracy", "lr", "seconds"];
    let source = BatchSource::new(&ctx.train_set, ctx.device);
    for epoch in 0..epochs {
        let batches = source.epoch(
            indices.to_vec(),
            cfg.batch_size,
            true,
            false,
            Some(ctx.data.default_augment()),
            cfg.seed.wrapping_mul(7_919).wrapping_add(epoch as u64),
        );
        let progress = Progress::new(
            steps_per_epoch,
            &format!("epoch {}/{epochs}", epoch + 1),
            ctx.quiet,
        );
        let pass = run_pass(
            ctx.model,
            &mut opt,
            ctx.mask,
            batches,
            Objective {
                amp: cfg.amp,
                ..objective_at(epoch)
            },
            |step| schedule.lr_at(epoch, step, steps_per_epoch),
            &progress,
        )
        .with_context(|| format!("epoch {}", epoch + 1))?;
        progress.finish();
        tracing::info!(
            "epoch {}/{epochs}: loss {:.4}, accuracy {:.2}%, {:.1}s",
            epoch + 1,
            pass.loss,
            pass.accuracy,
            pass.seconds
        );
        log.rows.push(vec![
            ((epoch + 1) * steps_per_epoch) as f64,
            (epoch + 1) as f64,
            pass.loss,
            pass.accuracy,
            opt.lr,
            pass.seconds,
        ]);
    }
    Ok(())
}

/// The (lr, epochs) to use: flags if given, else the method's defaults.
pub fn lr_epochs(method: &dyn Unlearner, config: &UnlearnConfig) -> (f64, usize) {
    let (lr, epochs) = method.defaults();
    (config.lr.unwrap_or(lr), config.epochs.unwrap_or(epochs))
}
