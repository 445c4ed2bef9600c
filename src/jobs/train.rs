//! The train job: one classifier trained by SGD with the best-by-validation checkpoint kept.

use super::{model_spec, DataConfig, Runner};
use crate::checkpoint::{self, ModelInfo, FORMAT};
use crate::data::splits::{make_splits, ForgetRequest};
use crate::data::ImageSet;
use crate::device::device_name;
use crate::model::{Arch, Classifier};
use crate::train::{train, RunOutput, TrainConfig};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything a training run needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainJob {
    /// Data set and split seed.
    pub data: DataConfig,
    /// Architecture.
    pub arch: Arch,
    /// Hyper-parameters. `augment: Some(_)` asks for augmentation; which one is the data set's
    /// own choice ([`crate::data::DataSet::default_augment`]), settled once its images are read.
    pub config: TrainConfig,
    /// Output folder.
    pub save_dir: PathBuf,
    /// Continue an interrupted run from `save_dir/last.*`.
    pub resume: bool,
    /// Device, threads, quiet.
    pub runner: Runner,
}

/// Trains per `job`, then evaluates the best checkpoint on train/val/test and records it in its
/// `model.json`.
pub fn run(job: &TrainJob) -> anyhow::Result<ModelInfo> {
    job.config.validate()?;
    let device = job.runner.start()?;
    let ds = job.data.load()?;
    let _lock = crate::lock::FolderLock::acquire(&job.save_dir, "train")?;
    // An image folder's augmentation depends on its images, known only now.
    let config = TrainConfig {
        augment: job.config.augment.map(|_| ds.default_augment()),
        ..job.config.clone()
    };
    let splits = make_splits(&ds, &job.data.split_config(1, ForgetRequest::None))?;
    tch::manual_seed(config.seed as i64);
    let spec = model_spec(&ds, job.arch)?;
    let mut model = Classifier::new(&spec, device);
    model.layout = job.runner.layout.resolve(device);
    let info = ModelInfo {
        format: FORMAT.into(),
        model: spec,
        dataset: job.data.dataset,
        seed: config.seed,
        epoch: 0,
        accuracy: BTreeMap::new(),
        sparsity: 0.0,
        device: device_name(device),
        produced_by: "train".into(),
        extra: serde_json::json!({
            "train_config": config,
            "val_set_seed": job.data.val_set_seed,
            "train_subset": job.data.train_subset,
            "selection_fraction": job.data.selection_fraction,
            "test_subset": job.data.test_subset,
            "layout": model.layout,
        }),
    };
    std::fs::create_dir_all(&job.save_dir)
        .with_context(|| format!("creating {}", job.save_dir.display()))?;
    let output = RunOutput {
        save_dir: job.save_dir.clone(),
        info,
        resume: job.resume,
        quiet: job.runner.quiet,
    };
    let train_set = Arc::new(ds.train);
    let summary = train(
        &model,
        None,
        &train_set,
        &splits.train,
        &splits.val,
        &config,
        Some(&output),
        device,
    )?;
    // Final accuracies of the best checkpoint, written back into its model.json.
    let best = checkpoint::load(&job.save_dir, device)?;
    let mut info = best.info.clone();
    let eval = |set: &ImageSet, idx: &[usize]| {
        crate::eval::outputs::accuracy(&best.model, set, idx, config.eval_batch_size, device)
    };
    info.accuracy
        .insert("train".into(), eval(&train_set, &splits.train));
    info.accuracy
        .insert("val".into(), eval(&train_set, &splits.val));
    info.accuracy
        .insert("test".into(), eval(&ds.test, &splits.test));
    info.accuracy.insert("best_val".into(), summary.best_val);
    checkpoint::save_info(&job.save_dir, "model", &info)?;
    Ok(info)
}
