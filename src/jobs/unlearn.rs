//! The unlearn job: one method on one forget request, then evaluation and the audit record.

use super::{load_for_run, DataConfig, ForgetConfig, Loaded, Runner};
use crate::checkpoint;
use crate::data::splits::ForgetRequest;
use crate::device::device_name;
use crate::eval::result::{evaluate, EvalRequest, EvalResult};
use crate::unlearn::{UnlearnConfig, UnlearnContext};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Everything an unlearning run needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnlearnJob {
    /// Checkpoint to start from: a run folder, a `.safetensors` file or a `torch.save` file.
    pub model: PathBuf,
    /// Method name (case-insensitive, [`crate::unlearn::registry`]).
    pub method: String,
    /// Data set and validation seed.
    pub data: DataConfig,
    /// Forget request and run seed.
    pub forget: ForgetConfig,
    /// Hyper-parameters (its `seed` is the run seed, `forget.seed`).
    pub config: UnlearnConfig,
    /// Output folder.
    pub save_dir: PathBuf,
    /// Device, threads, quiet.
    pub runner: Runner,
    /// Expected class count, checked against the checkpoint.
    pub num_classes: Option<usize>,
    /// The Retrain run of the same forget request, if any: its metrics give the audit record's
    /// gap to Retrain.
    #[serde(default)]
    pub retrain_dir: Option<PathBuf>,
}

/// The file an attacker job writes last: where the pre-trained attacker is cached.
pub const ATTACKER_MARK: &str = "attacker.json";

/// The attacker job's own copy of the pre-trained attacker's weights (for `--attacker`).
pub const ATTACKER_WEIGHTS: &str = "attacker.safetensors";

/// Whether `dir` holds a finished unlearning run: `audit.json` is written last, after a
/// readable `eval_result.json`.
pub fn is_complete(dir: &Path) -> bool {
    dir.join(crate::audit::FILE_NAME).is_file()
        && std::fs::read(dir.join("eval_result.json"))
            .ok()
            .is_some_and(|b| serde_json::from_slice::<EvalResult>(&b).is_ok())
}

/// Refuses to run `method` into `dir` when it holds another method's finished run (which the
/// new run would replace), unless `overwrite`.
pub fn check_folder_free(dir: &Path, method: &str, overwrite: bool) -> anyhow::Result<()> {
    if overwrite || !is_complete(dir) {
        return Ok(());
    }
    let earlier = std::fs::read(dir.join("eval_result.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<EvalResult>(&b).ok())
        .map(|r| r.method);
    match earlier {
        Some(m) if !m.eq_ignore_ascii_case(method) => anyhow::bail!(
            "{} holds a finished {m} run, which this {method} run would replace: choose \
             another --save_dir, or pass --overwrite to replace it",
            dir.display()
        ),
        _ => Ok(()),
    }
}

/// Whether the run recorded in `dir/audit.json` started from the weights now at `model` (a run
/// folder or checkpoint file). A run recorded against other weights is stale: the model was
/// trained again since (on another machine whose kernels round differently, say), and its
/// results describe a model that is gone.
pub fn started_from(dir: &Path, model: &Path) -> bool {
    let Ok(record) = crate::audit::read(dir) else {
        return false;
    };
    let Ok((weights, _)) = checkpoint::resolve(model) else {
        return false;
    };
    crate::audit::sha256_file(&weights)
        .is_ok_and(|(hash, _)| hash == record.input_checkpoint.safetensors.sha256)
}

/// Pre-trains the adversarial method's attacker for `job`'s forget request (or finds it in the
/// cache beside the model), so that the Gan runs sharing it only read it; writes
/// [`ATTACKER_MARK`] into `job.save_dir` with the cache's path.
pub fn pretrain_attacker(job: &UnlearnJob) -> anyhow::Result<PathBuf> {
    let harness = crate::unlearn::find(&job.method)?.forget_harness();
    let run = prepare(job, false)?;
    let _lock = crate::lock::FolderLock::acquire(&job.save_dir, "attacker pre-training")?;
    let ctx = context(job, &run, harness);
    let cache = crate::unlearn::gan::attacker_cache_path(&ctx, job.config.attacker_iters)?;
    tch::manual_seed(job.config.seed as i64);
    let attacker = crate::unlearn::gan::starting_attacker(&ctx)?;
    crate::checkpoint::write_safetensors(
        &job.save_dir.join(ATTACKER_WEIGHTS),
        &crate::checkpoint::named_tensors(&attacker.vs),
    )?;
    crate::fsutil::write_json_atomic(
        &job.save_dir.join(ATTACKER_MARK),
        &serde_json::json!({ "attacker": cache, "iterations": job.config.attacker_iters }),
    )?;
    Ok(cache)
}

/// What every job on a forget request does before its work: checks the settings, loads the
/// model and data, refuses an empty forget set (unless `nothing_to_forget_ok`) and a retain set
/// smaller than the test set (the attack's shadow members), and creates the run's folder.
fn prepare(job: &UnlearnJob, nothing_to_forget_ok: bool) -> anyhow::Result<Loaded> {
    job.config.validate_for(&job.method)?;
    let run = load_for_run(
        &job.model,
        &job.data,
        &job.forget,
        &job.runner,
        job.num_classes,
    )?;
    if run.splits.forget.is_empty() && !nothing_to_forget_ok {
        anyhow::bail!("nothing to forget: pass --class_to_replace K [--num_indexes_to_replace N] or --indexes_to_replace");
    }
    if !run.splits.forget.is_empty() {
        crate::eval::mia::check_shadow_sizes(run.splits.retain.len(), run.splits.test.len())?;
    }
    Ok(run)
}

/// The method's view of a loaded run; `harness` is the method's reference harness.
fn context<'a>(
    job: &'a UnlearnJob,
    run: &'a Loaded,
    harness: crate::unlearn::Harness,
) -> UnlearnContext<'a> {
    UnlearnContext {
        model: &run.ckpt.model,
        mask: run.ckpt.mask.as_ref(),
        data: &run.ds,
        train_set: Arc::new(run.ds.train.clone()),
        splits: &run.splits,
        config: &job.config,
        device: run.device,
        quiet: job.runner.quiet,
        model_path: run.ckpt.path.clone(),
        save_dir: job.save_dir.clone(),
        class_wise: matches!(run.request, ForgetRequest::Class { .. }),
        harness,
    }
}

/// Unlearns per `job`; writes `model.*`, `unlearn_log.csv`, `eval_result.json` and, last,
/// `audit.json` in its folder.
pub fn run(job: &UnlearnJob) -> anyhow::Result<EvalResult> {
    let method = crate::unlearn::find(&job.method)?;
    let run = prepare(job, method.name() == "raw")?;
    let _lock = crate::lock::FolderLock::acquire(&job.save_dir, "unlearn")?;
    let audit_inputs = crate::audit::begin(&job.save_dir, &run.ckpt.path, &job.data)?;
    let ctx = context(job, &run, method.forget_harness());
    // The original's UA, for the check that the method changed anything (before the seed is
    // set: evaluation draws no random numbers, but nothing here should move the method's).
    let ua_before = (!run.splits.forget.is_empty()).then(|| {
        100.0
            - crate::eval::outputs::accuracy(
                &run.ckpt.model,
                &run.ds.train,
                &run.splits.forget,
                512,
                run.device,
            )
    });
    let (lr, epochs) = crate::unlearn::lr_epochs(method.as_ref(), &job.config);
    let config = serde_json::json!({
        "command": "unlearn",
        "method": method.name(),
        "model": run.ckpt.path,
        "unlearn_lr": lr,
        "unlearn_epochs": epochs,
        "settings": job.config,
        "val_set_seed": job.data.val_set_seed,
        "train_subset": job.data.train_subset,
        "selection_fraction": job.data.selection_fraction,
        "test_subset": job.data.test_subset,
        "layout": run.ckpt.model.layout,
    });
    tch::manual_seed(job.config.seed as i64);
    let mut info = run.ckpt.info.clone();
    info.produced_by = format!("unlearn:{}", method.name());
    info.device = device_name(run.device);
    info.extra = config.clone();
    let mut log = crate::unlearn::UnlearnLog::default();
    let start = std::time::Instant::now();
    let outcome = method.run(&ctx, &mut log);
    let rte_seconds = start.elapsed().as_secs_f64() - log.excluded_seconds.values().sum::<f64>();
    // What the method ran with (streams augmented, resolved α, …), as it reported it.
    let mut config = config;
    config["forget_augmented"] = log.ran.get("forget_augmented").cloned().unwrap_or_default();
    config["ran"] = serde_json::Value::Object(log.ran.clone());
    info.extra = config.clone();
    crate::fsutil::write_bytes_atomic(
        &job.save_dir.join("unlearn_log.csv"),
        log.to_csv().as_bytes(),
    )?;
    if let Err(err) = outcome {
        if err.downcast_ref::<crate::train::NonFiniteLoss>().is_some() {
            // Losses are checked before each update, so the weights are the last good ones.
            info.extra["failed"] = serde_json::json!(format!("{err:#}"));
            checkpoint::save(
                &job.save_dir,
                "model",
                &run.ckpt.model,
                run.ckpt.mask.as_ref(),
                &info,
            )?;
            anyhow::bail!(
                "{} stopped: {err:#}; the last good weights are in {} (try a lower --unlearn_lr)",
                method.name(),
                job.save_dir.join("model.safetensors").display()
            );
        }
        return Err(err.context(format!("{} failed", method.name())));
    }
    info.sparsity = run.ckpt.mask.as_ref().map_or(0.0, |m| m.sparsity().overall);
    let mut result = evaluate(&EvalRequest {
        model: &run.ckpt.model,
        data: &run.ds,
        splits: &run.splits,
        forget: &run.request,
        method: method.name().to_string(),
        seed: job.forget.seed,
        sparsity: info.sparsity,
        rte_seconds,
        batch_size: 512,
        device: run.device,
        config,
    })?;
    result
        .timings
        .extend(log.excluded_seconds.iter().map(|(k, v)| (k.clone(), *v)));
    let shape = crate::unlearn::schedule::RunShape {
        sizes: crate::unlearn::schedule::SetSizes::of(&run.splits),
        class_wise: ctx.class_wise,
        dataset: run.ds.name,
    };
    let phases = crate::unlearn::schedule::phases(method.name(), &job.config, &shape);
    result.config["ran"]["phases"] = serde_json::json!(phases);
    let mut warnings = health_warnings(&run, method.as_ref(), &job.config, ua_before, result.ua);
    warnings.extend(crate::unlearn::schedule::departure_warning(
        method.name(),
        &phases,
    ));
    for w in &warnings {
        tracing::warn!("{w}");
    }
    result.config["ua_before"] = serde_json::json!(ua_before);
    result.config["warnings"] = serde_json::json!(warnings);
    info.accuracy = BTreeMap::from([
        ("retain".to_string(), result.accuracy.retain),
        ("val".to_string(), result.accuracy.val),
        ("test".to_string(), result.accuracy.test),
    ]);
    if let Some(f) = result.accuracy.forget {
        info.accuracy.insert("forget".into(), f);
    }
    checkpoint::save(
        &job.save_dir,
        "model",
        &run.ckpt.model,
        run.ckpt.mask.as_ref(),
        &info,
    )?;
    crate::fsutil::write_json_atomic(&job.save_dir.join("eval_result.json"), &result)?;
    // Last, so that a folder with audit.json is a complete run.
    let mut audit = crate::audit::build(
        &job.save_dir,
        audit_inputs,
        &job.data,
        &job.forget,
        &run.splits.forget,
        &run.splits.selection,
        &result,
    )?;
    if let Some(dir) = &job.retrain_dir {
        let text = std::fs::read_to_string(dir.join("eval_result.json")).with_context(|| {
            format!(
                "reading Retrain's {}/eval_result.json for the gap",
                dir.display()
            )
        })?;
        let retrain: EvalResult = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}/eval_result.json", dir.display()))?;
        audit.gap_to_retrain = crate::eval::result::avg_gap(&result.metrics(), &retrain.metrics());
    }
    crate::audit::write(&job.save_dir, &audit)?;
    Ok(result)
}

/// The health checks of a finished run ([`crate::eval::health`]): the original model's
/// memorisation (from its recorded train and test accuracies, when it has them), a UA left
/// where it was, and settings other than the method's reference defaults.
fn health_warnings(
    run: &Loaded,
    method: &dyn crate::unlearn::Unlearner,
    config: &UnlearnConfig,
    ua_before: Option<f64>,
    ua_after: Option<f64>,
) -> Vec<String> {
    use crate::eval::health;
    let acc = &run.ckpt.info.accuracy;
    let memorises = match (acc.get("train"), acc.get("test")) {
        (Some(&train), Some(&test)) => health::memorisation(train, test),
        _ => None,
    };
    let unchanged = match (ua_before, ua_after) {
        (Some(b), Some(a)) => health::unchanged_ua(method.name(), b, a),
        _ => None,
    };
    [memorises, unchanged, health::non_default(method, config)]
        .into_iter()
        .flatten()
        .collect()
}
