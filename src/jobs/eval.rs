//! The eval job: accuracies and the SVC membership-inference attack of one model.

use super::{load_for_run, DataConfig, ForgetConfig, Runner};
use crate::eval::result::{evaluate, EvalRequest, EvalResult};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything an evaluation needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalJob {
    /// A run folder, a `.safetensors` checkpoint or a `torch.save` file.
    pub model: PathBuf,
    /// Data set and validation seed.
    pub data: DataConfig,
    /// Forget request and run seed.
    pub forget: ForgetConfig,
    /// Output folder for `eval_result.json`.
    pub save_dir: PathBuf,
    /// Batch size of the prediction passes.
    pub batch_size: usize,
    /// Device, threads, quiet.
    pub runner: Runner,
}

/// Evaluates per `job` and writes `save_dir/eval_result.json`.
pub fn run(job: &EvalJob) -> anyhow::Result<EvalResult> {
    if job.batch_size == 0 {
        anyhow::bail!("--batch_size must be at least 1");
    }
    let run = load_for_run(&job.model, &job.data, &job.forget, &job.runner, None)?;
    let _lock = crate::lock::FolderLock::acquire(&job.save_dir, "eval")?;
    let method = match run.ckpt.info.produced_by.strip_prefix("unlearn:") {
        Some(m) => m.to_string(),
        None => "raw".to_string(),
    };
    let result = evaluate(&EvalRequest {
        model: &run.ckpt.model,
        data: &run.ds,
        splits: &run.splits,
        forget: &run.request,
        method,
        seed: job.forget.seed,
        sparsity: run.ckpt.mask.as_ref().map_or(0.0, |m| m.sparsity().overall),
        rte_seconds: 0.0,
        batch_size: job.batch_size,
        device: run.device,
        config: serde_json::json!({ "command": "eval", "model": run.ckpt.path, "val_set_seed": job.data.val_set_seed }),
    })?;
    crate::fsutil::write_json_atomic(&job.save_dir.join("eval_result.json"), &result)?;
    Ok(result)
}
