//! Supervised training: SGD with MultiStepLR and optional linear warm-up (SPEC §3), masks
//! enforced at every step, best-by-validation and last checkpoints, a CSV log and `--resume`.
//! Its epochs run on [`crate::epoch_loop`], as the SGD unlearners' and the adversarial method's do.

use crate::checkpoint::{self, ModelInfo};
use crate::data::augment::Augment;
use crate::data::batches::Batch;
use crate::data::device_batches::BatchSource;
use crate::data::ImageSet;
use crate::device::{with_amp, Amp};
use crate::epoch_loop::{run_epochs, EpochBatches, EpochLoop, StepAt};
use crate::eval::outputs::accuracy;
use crate::model::mask::Mask;
use crate::model::{Classifier, RunningStats};
use crate::optim::Sgd;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Hyper-parameters of a training run; defaults are the reference's.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Number of epochs.
    pub epochs: usize,
    /// Initial learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Batch size.
    pub batch_size: usize,
    /// Epochs at which the learning rate is multiplied by `gamma`.
    pub milestones: Vec<usize>,
    /// MultiStepLR factor.
    pub gamma: f64,
    /// Epochs of linear warm-up (per step, as the reference's `warmup_lr`).
    pub warmup: usize,
    /// Seed for initialisation, shuffling and augmentation.
    pub seed: u64,
    /// Training augmentation (`None` = none).
    pub augment: Option<Augment>,
    /// Epochs the LR schedule is advanced by (OMP/IMP retraining after rewinding).
    pub schedule_offset: usize,
    /// Batch size for evaluation passes.
    pub eval_batch_size: usize,
    /// Mixed precision of the training forward pass and loss (CUDA only).
    #[serde(default)]
    pub amp: Amp,
    /// `model.*` keeps the last epoch's weights (as Retrain's model is) instead of the best by
    /// validation accuracy (the reference's choice).
    #[serde(default)]
    pub keep_last: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 182,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            batch_size: 256,
            milestones: vec![91, 136],
            gamma: 0.1,
            warmup: 0,
            seed: 2,
            augment: None,
            schedule_offset: 0,
            eval_batch_size: 512,
            amp: Amp::Off,
            keep_last: false,
        }
    }
}

impl TrainConfig {
    /// Rejects values that cannot work before any work starts (a clear error naming the flag).
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.epochs == 0 {
            bail!("--epochs 0: nothing would be trained; give at least 1");
        }
        if self.batch_size == 0 {
            bail!("--batch_size must be at least 1");
        }
        for (flag, value) in [
            ("--lr", self.lr),
            ("--momentum", self.momentum),
            ("--weight_decay", self.weight_decay),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                bail!("{flag} {value}: must be a finite number ≥ 0");
            }
        }
        if self.lr == 0.0 {
            bail!("--lr 0: the weights would never change; give a positive learning rate");
        }
        Ok(())
    }

    /// Learning rate at `step` (0-based) of `epoch` (0-based).
    pub fn lr_at(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
        if epoch < self.warmup {
            let done = (epoch * steps_per_epoch + step + 1) as f64;
            let total = (self.warmup * steps_per_epoch).max(1) as f64;
            return (self.lr * done / total).min(self.lr);
        }
        let scheduled = epoch + self.schedule_offset;
        let decays = self.milestones.iter().filter(|&&m| scheduled >= m).count();
        self.lr * self.gamma.powi(decays as i32)
    }
}

/// What one optimisation step minimises, beyond the sign of the cross-entropy.
#[derive(Debug, Clone, Copy)]
pub struct Objective {
    /// +1: minimise CE (training, fine-tuning); −1: gradient ascent on CE (GA).
    pub sign: f64,
    /// Coefficient of the ℓ1 norm of all trainable weights (ℓ1-sparse unlearning); 0 = none.
    pub l1: f64,
    /// Forward pass and cross-entropy under bf16 autocast (CUDA; the ℓ1 term stays FP32).
    pub amp: Amp,
}

impl Default for Objective {
    fn default() -> Self {
        Objective {
            sign: 1.0,
            l1: 0.0,
            amp: Amp::Off,
        }
    }
}

/// Mean loss and accuracy of one pass over a batch stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassStats {
    /// Mean loss per sample.
    pub loss: f64,
    /// Training accuracy (%) on the (augmented) batches.
    pub accuracy: f64,
    /// Images seen.
    pub images: usize,
    /// Wall time (s).
    pub seconds: f64,
}

/// A loss stopped being finite. It is detected before the parameter update, so the model
/// still holds the last good weights; callers save them and report which loss and iteration.
#[derive(Debug, thiserror::Error)]
#[error("the {loss} loss became {value} at iteration {iteration}")]
pub struct NonFiniteLoss {
    /// Which loss.
    pub loss: &'static str,
    /// Its value.
    pub value: f64,
    /// 1-based iteration (0 = not known at the point of detection).
    pub iteration: usize,
}

/// One SGD step on a batch: forward in train mode, loss, backward, masked update.
/// Returns (summed loss over the batch, number correct).
pub fn sgd_step(
    model: &Classifier,
    opt: &mut Sgd,
    mask: Option<&Mask>,
    batch: &Batch,
    objective: Objective,
    device: Device,
) -> anyhow::Result<(f64, i64)> {
    let images = batch.images.to_device(device);
    let labels = batch.labels.to_device(device);
    let running_stats = RunningStats::save(model);
    let (logits, ce) = with_amp(objective.amp, || {
        let (logits, _) = model.forward(&images, true);
        let ce = logits
            .cross_entropy_for_logits(&labels)
            .to_kind(Kind::Float);
        (logits, ce)
    });
    let mut loss = &ce * objective.sign;
    if objective.l1 != 0.0 {
        loss += l1_norm(model) * objective.l1;
    }
    let ce_value = ce.double_value(&[]);
    if !ce_value.is_finite() {
        // Checked before the update: the weights are the last good ones; the forward pass
        // already moved the BatchNorm statistics, so put them back too.
        running_stats.restore();
        return Err(NonFiniteLoss {
            loss: "cross-entropy",
            value: ce_value,
            iteration: 0,
        }
        .into());
    }
    masked_update(model, opt, mask, &loss);
    let correct = logits
        .argmax(-1, false)
        .eq_tensor(&labels)
        .sum(Kind::Int64)
        .int64_value(&[]);
    Ok((ce_value * batch.indices.len() as f64, correct))
}

/// Backward of `loss`, then one SGD step with `mask` enforced: on the gradients before the
/// step (so momentum and weight decay cannot revive pruned weights) and on the weights after it.
pub fn masked_update(model: &Classifier, opt: &mut Sgd, mask: Option<&Mask>, loss: &Tensor) {
    opt.zero_grad();
    loss.backward();
    masked_step(model, opt, mask);
}

/// One SGD step on the gradients already accumulated, with `mask` enforced as in
/// [`masked_update`].
pub fn masked_step(model: &Classifier, opt: &mut Sgd, mask: Option<&Mask>) {
    if let Some(mask) = mask {
        mask.apply_to_grads(&model.vs);
    }
    opt.step();
    if let Some(mask) = mask {
        mask.apply_to_weights(&model.vs);
    }
}

/// ‖θ‖₁ over all trainable weights, as the reference's `l1_regularization`.
pub fn l1_norm(model: &Classifier) -> Tensor {
    let params = model.vs.trainable_variables();
    params
        .iter()
        .map(|p| p.abs().sum(Kind::Float))
        .reduce(|a, b| a + b)
        .expect("a model has parameters")
}

/// Running sums of an epoch of [`sgd_step`]s, read as [`PassStats`] when the epoch ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassTally {
    loss_sum: f64,
    correct: i64,
    images: usize,
}

impl PassTally {
    /// One [`sgd_step`] on `batch` at `at` (the lr already set), added to the sums; returns the
    /// progress message. A non-finite loss names its 1-based step within the epoch.
    pub fn sgd_step(
        &mut self,
        model: &Classifier,
        opt: &mut Sgd,
        mask: Option<&Mask>,
        batch: &Batch,
        objective: Objective,
        at: StepAt,
    ) -> anyhow::Result<String> {
        let (loss, correct) = sgd_step(model, opt, mask, batch, objective, model.vs.device())
            .map_err(|err| match err.downcast::<NonFiniteLoss>() {
                Ok(nan) => NonFiniteLoss {
                    iteration: at.step + 1,
                    ..nan
                }
                .into(),
                Err(err) => err,
            })?;
        self.loss_sum += loss;
        self.correct += correct;
        self.images += batch.indices.len();
        let images = self.images as f64;
        Ok(format!(
            "loss {:.4} acc {:.2}% {:.0} img/s",
            self.loss_sum / images,
            100.0 * self.correct as f64 / images,
            images / at.started.elapsed().as_secs_f64()
        ))
    }

    /// The epoch's mean loss and accuracy over `seconds`; the sums start again from zero.
    pub fn take(&mut self, seconds: f64) -> PassStats {
        let tally = std::mem::take(self);
        let images = tally.images.max(1) as f64;
        PassStats {
            loss: tally.loss_sum / images,
            accuracy: 100.0 * tally.correct as f64 / images,
            images: tally.images,
            seconds,
        }
    }
}

/// One row of `train_log.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLog {
    /// Epoch (1-based, as printed).
    pub epoch: usize,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy (%) on augmented batches.
    pub train_acc: f64,
    /// Validation accuracy (%).
    pub val_acc: f64,
    /// Wall time of the epoch including validation (s).
    pub seconds: f64,
}

const LOG_HEADER: &str = "epoch,lr,loss,train_acc,val_acc,seconds";

fn log_csv(rows: &[EpochLog]) -> String {
    let mut text = format!("{LOG_HEADER}\n");
    for r in rows {
        text.push_str(&format!(
            "{},{},{:.6},{:.4},{:.4},{:.3}\n",
            r.epoch, r.lr, r.loss, r.train_acc, r.val_acc, r.seconds
        ));
    }
    text
}

fn parse_log_csv(path: &Path) -> anyhow::Result<Vec<EpochLog>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let f: Vec<f64> = line
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} line {}: not a number", path.display(), n + 1))?;
        if f.len() != 6 {
            bail!(
                "{} line {}: expected 6 columns ({LOG_HEADER})",
                path.display(),
                n + 1
            );
        }
        rows.push(EpochLog {
            epoch: f[0] as usize,
            lr: f[1],
            loss: f[2],
            train_acc: f[3],
            val_acc: f[4],
            seconds: f[5],
        });
    }
    Ok(rows)
}

/// Where and how a training run writes its outputs.
pub struct RunOutput {
    /// Folder for `model.*` (best), `last.*`, `optimizer.safetensors`, `train_log.csv`, the curve.
    pub save_dir: PathBuf,
    /// Metadata template; epoch, accuracy and sparsity are filled in at each save.
    pub info: ModelInfo,
    /// Continue from `save_dir/last.*` when it exists.
    pub resume: bool,
    /// Hide progress bars.
    pub quiet: bool,
}

/// What a finished run reached.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The per-epoch log (including epochs before a resume).
    pub log: Vec<EpochLog>,
    /// Validation accuracy (%) of the kept model: the best, or the last with `keep_last`.
    pub best_val: f64,
    /// Epoch (1-based) of the kept model.
    pub best_epoch: usize,
}

/// Trains `model` on `train_set[train_idx]`, validating on `train_set[val_idx]` each epoch.
/// With an output, keeps `model.*` = best by validation accuracy (or the latest with
/// `keep_last`) and `last.*` = latest.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &Classifier,
    mask: Option<&Mask>,
    train_set: &Arc<ImageSet>,
    train_idx: &[usize],
    val_idx: &[usize],
    cfg: &TrainConfig,
    output: Option<&RunOutput>,
    device: Device,
) -> anyhow::Result<TrainSummary> {
    if train_idx.is_empty() {
        bail!("the training set is empty");
    }
    let mut opt = Sgd::new(
        model.vs.trainable_variables(),
        cfg.lr,
        cfg.momentum,
        cfg.weight_decay,
    );
    let mut log = Vec::new();
    let (mut best_val, mut best_epoch) = (f64::NEG_INFINITY, 0);
    if let Some(out) = output.filter(|o| o.resume) {
        if let Some(state) = resume_state(model, &mut opt, out, device)? {
            log = state.0;
            (best_val, best_epoch) = (state.1, state.2);
        }
    }
    let quiet = output.is_none_or(|o| o.quiet);
    let steps_per_epoch = train_idx.len().div_ceil(cfg.batch_size);
    // On a GPU the images live there for the whole run; on the CPU a producer thread feeds them.
    let source = BatchSource::new(train_set, device);
    let lr_at = |at: StepAt| cfg.lr_at(at.epoch, at.step, steps_per_epoch);
    let plan = EpochLoop {
        first: log.len(),
        epochs: cfg.epochs,
        batches: EpochBatches {
            source: &source,
            indices: train_idx,
            batch_size: cfg.batch_size,
            augment: cfg.augment,
            seed: cfg.seed,
            seed_of: train_epoch_seed,
        },
        lr_at: &lr_at,
        quiet,
    };
    let objective = Objective {
        amp: cfg.amp,
        ..Objective::default()
    };
    let mut run = TrainProgress {
        log,
        best_val,
        best_epoch,
        tally: PassTally::default(),
    };
    run_epochs(
        &plan,
        &mut opt,
        &mut run,
        |run, opt, at, batch| run.tally.sgd_step(model, opt, mask, &batch, objective, at),
        |run, opt, end| {
            let pass = run.tally.take(end.pass_seconds);
            let val_acc = accuracy(model, train_set, val_idx, cfg.eval_batch_size, device);
            let row = EpochLog {
                epoch: end.epoch + 1,
                lr: cfg.lr_at(
                    end.epoch,
                    steps_per_epoch.saturating_sub(1),
                    steps_per_epoch,
                ),
                loss: pass.loss,
                train_acc: pass.accuracy,
                val_acc,
                seconds: end.started.elapsed().as_secs_f64(),
            };
            if !quiet || output.is_some() {
                tracing::info!(
                    "epoch {:>3}/{}  lr {:.4}  loss {:.4}  train {:.2}%  val {:.2}%  {:.1}s ({:.0} img/s)",
                    row.epoch,
                    cfg.epochs,
                    row.lr,
                    row.loss,
                    row.train_acc,
                    row.val_acc,
                    row.seconds,
                    pass.images as f64 / pass.seconds
                );
            }
            run.log.push(row);
            let improved = cfg.keep_last || val_acc > run.best_val;
            if improved {
                run.best_val = val_acc;
                run.best_epoch = end.epoch + 1;
            }
            if let Some(out) = output {
                save_epoch(model, mask, opt, out, &run.log, improved, run.best_val)?;
            }
            Ok(())
        },
    )?;
    let TrainProgress {
        log,
        best_val,
        best_epoch,
        ..
    } = run;
    if let Some(out) = output {
        write_curves(&out.save_dir, &log)?;
    }
    Ok(TrainSummary {
        log,
        best_val,
        best_epoch,
    })
}

/// Seed of training epoch `epoch`'s batch order and augmentation.
pub fn train_epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64)
}

/// What a training run carries from epoch to epoch.
struct TrainProgress {
    log: Vec<EpochLog>,
    best_val: f64,
    best_epoch: usize,
    tally: PassTally,
}

fn save_epoch(
    model: &Classifier,
    mask: Option<&Mask>,
    opt: &Sgd,
    out: &RunOutput,
    log: &[EpochLog],
    improved: bool,
    best_val: f64,
) -> anyhow::Result<()> {
    let last = log.last().expect("called after an epoch");
    let mut info = out.info.clone();
    info.epoch = last.epoch;
    info.accuracy.insert("val".into(), last.val_acc);
    info.accuracy
        .insert("train_augmented".into(), last.train_acc);
    info.accuracy.insert("best_val".into(), best_val);
    info.sparsity = mask.map_or(0.0, |m| m.sparsity().overall);
    if improved {
        checkpoint::save(&out.save_dir, "model", model, mask, &info)?;
    }
    // Optimizer state first: a `last.json` must never point at state that is not there yet.
    let buffers: Vec<(String, Tensor)> = opt
        .state()
        .into_iter()
        .enumerate()
        .map(|(i, t)| (format!("momentum.{i}"), t.to_device(Device::Cpu)))
        .collect();
    checkpoint::write_safetensors(&out.save_dir.join("optimizer.safetensors"), &buffers)?;
    crate::fsutil::write_bytes_atomic(
        &out.save_dir.join("train_log.csv"),
        log_csv(log).as_bytes(),
    )?;
    checkpoint::save(&out.save_dir, "last", model, mask, &info)
}

type ResumeState = (Vec<EpochLog>, f64, usize);

fn resume_state(
    model: &Classifier,
    opt: &mut Sgd,
    out: &RunOutput,
    device: Device,
) -> anyhow::Result<Option<ResumeState>> {
    let (last_weights, _) = checkpoint::paths(&out.save_dir, "last");
    if !last_weights.exists() {
        tracing::warn!(
            "--resume: {} not found, starting from scratch",
            last_weights.display()
        );
        return Ok(None);
    }
    let last = checkpoint::load(&last_weights, device)?;
    if last.info.model != model.spec {
        bail!(
            "--resume: {} holds a different model ({:?})",
            last_weights.display(),
            last.info.model
        );
    }
    checkpoint::copy_into(&model.vs, last.model.vs.variables())?;
    let state = checkpoint::read_safetensors(&out.save_dir.join("optimizer.safetensors"))?;
    let mut buffers = Vec::with_capacity(state.len());
    for i in 0..state.len() {
        let b = state
            .get(&format!("momentum.{i}"))
            .with_context(|| format!("optimizer.safetensors lacks momentum.{i}"))?;
        buffers.push(b.shallow_clone());
    }
    opt.load_state(buffers)
        .context("--resume: optimizer.safetensors does not fit the model")?;
    let mut log = parse_log_csv(&out.save_dir.join("train_log.csv"))?;
    log.truncate(last.info.epoch);
    if log.len() != last.info.epoch {
        bail!(
            "--resume: train_log.csv has {} epochs, last.json says {}",
            log.len(),
            last.info.epoch
        );
    }
    // The CSV rounds accuracies to 4 decimals; the exact best value is in last.json and the
    // best epoch in model.json (the best checkpoint), so a resumed run compares exactly as an
    // uninterrupted one. The CSV is the fallback for folders written without them.
    let (mut best_epoch, mut best_val) = log.iter().fold((0, f64::NEG_INFINITY), |(be, bv), r| {
        if r.val_acc > bv {
            (r.epoch, r.val_acc)
        } else {
            (be, bv)
        }
    });
    if let Some(&exact) = last.info.accuracy.get("best_val") {
        best_val = exact;
    }
    let (_, best_json) = checkpoint::paths(&out.save_dir, "model");
    if let Some(best) = checkpoint::read_info(&best_json)
        .ok()
        .filter(|b| (1..=last.info.epoch).contains(&b.epoch))
    {
        best_epoch = best.epoch;
    }
    tracing::info!(
        "resuming after epoch {} (best val {:.2}% at epoch {})",
        last.info.epoch,
        best_val,
        best_epoch
    );
    Ok(Some((log, best_val, best_epoch)))
}

/// `training_curves.png` (+ `.svg`): loss and train/val accuracy per epoch.
fn write_curves(dir: &Path, log: &[EpochLog]) -> anyhow::Result<()> {
    let acc = |f: fn(&EpochLog) -> f64| {
        log.iter()
            .map(|r| (r.epoch as f64, f(r)))
            .collect::<Vec<_>>()
    };
    crate::plot::line_chart(
        &dir.join("training_curves.png"),
        "training",
        "epoch",
        "accuracy (%)",
        &[
            ("train (augmented)", acc(|r| r.train_acc)),
            ("val", acc(|r| r.val_acc)),
        ],
    )?;
    crate::plot::line_chart(
        &dir.join("training_loss.png"),
        "training loss",
        "epoch",
        "loss",
        &[("loss", acc(|r| r.loss))],
    )?;
    Ok(())
}
