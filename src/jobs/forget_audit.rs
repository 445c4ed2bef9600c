//! `gunlearn audit`: the per-example forgetting audit of SPEC §6b from one reusable pool.
//!
//! For one (data set, forget set, architecture, training recipe) it plans, as a sweep does,
//! the original model, N retrained models (seeds 0…N−1) and, per method, N unlearning runs from
//! the original (seeds 0…N−1), in a folder keyed by a hash of everything that determines them
//! (`pools/<key>/`), so that every method and every later audit reuses them and a pool grows
//! from N = 32 to 64 by adding seeds. The adversarial method's attacker is pre-trained once on
//! the original and shared by its N runs. Then it scores each method against the retrained
//! pool ([`crate::eval::forgetting`]) into `audit_result.json` and one ε CSV per method.

use super::train::TrainJob;
use super::unlearn::UnlearnJob;
use super::{DataConfig, ForgetConfig, Job, Runner};
use crate::checkpoint;
use crate::data::batches::to_tensor;
use crate::data::splits::make_splits;
use crate::eval::forgetting::{self, AuditSettings, MethodAudit, PoolData};
use crate::eval::result::EvalResult;
use crate::model::Arch;
use crate::sweep::{Plan, PlannedJob};
use crate::train::TrainConfig;
use crate::unlearn::UnlearnConfig;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything an audit needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditJob {
    /// Data set and validation seed.
    pub data: DataConfig,
    /// The forget set (its `seed` draws it; the models' seeds are 0…N−1).
    pub forget: ForgetConfig,
    /// Architecture.
    pub arch: Arch,
    /// The original's (and every retrained model's) training recipe.
    pub train: TrainConfig,
    /// Methods to audit, each with its settings.
    pub methods: Vec<(String, UnlearnConfig)>,
    /// Models per pool.
    pub n: usize,
    /// Output folder (the pools live under `out/pools/`).
    pub out: PathBuf,
    /// Bootstrap and null-calibration settings.
    pub settings: AuditSettings,
}

/// The folder of the pools of `job`: `out/pools/<key>`, the key hashing the data, forget set,
/// architecture and recipe.
pub fn pool_dir(job: &AuditJob) -> anyhow::Result<PathBuf> {
    let key = serde_json::to_vec(&(&job.data, &job.forget, job.arch, &job.train))?;
    let hash = crate::audit::sha256_hex(&key);
    Ok(job.out.join("pools").join(&hash[..16]))
}

/// The jobs of an audit: original, retrained pool, attackers, unlearned pools.
pub fn plan(job: &AuditJob) -> anyhow::Result<Plan> {
    if job.n < 2 {
        bail!("--n {}: a pool needs at least 2 models", job.n);
    }
    job.train.validate()?;
    let pools = pool_dir(job)?;
    let runner = Runner {
        quiet: true,
        ..Runner::default()
    };
    let original = pools.join("original");
    let mut jobs = vec![PlannedJob {
        name: "original".into(),
        stage: 0,
        needs: vec![],
        job: Job::Train(TrainJob {
            data: job.data.clone(),
            arch: job.arch,
            config: job.train.clone(),
            save_dir: original.clone(),
            resume: true,
            runner: runner.clone(),
        }),
    }];
    let unlearn = |method: &str, config: UnlearnConfig, seed: u64, dir: PathBuf| UnlearnJob {
        model: original.clone(),
        method: method.into(),
        data: job.data.clone(),
        forget: job.forget.clone(),
        config: UnlearnConfig { seed, ..config },
        save_dir: dir,
        runner: runner.clone(),
        num_classes: None,
        retrain_dir: None,
    };
    let retrain = retrain_config(job);
    for seed in 0..job.n as u64 {
        let name = format!("retrain/seed{seed}");
        jobs.push(PlannedJob {
            name: name.clone(),
            stage: 2,
            needs: vec!["original".into()],
            job: Job::Unlearn(unlearn("retrain", retrain.clone(), seed, pools.join(name))),
        });
    }
    for (method, config) in &job.methods {
        config
            .validate()
            .with_context(|| format!("--methods {method}"))?;
        let method = crate::unlearn::find(method)?.name().to_string();
        // Retrain as an unlearner: the reference's recipe with seeds from RETRAIN_AS_METHOD_SEED
        // on, so its pool is a second draw of the retrained models' distribution — the perfect
        // unlearner — and grows with N as the reference pool does.
        let (mut config, first_seed) = if method == "retrain" {
            (retrain.clone(), RETRAIN_AS_METHOD_SEED)
        } else {
            (config.clone(), 0)
        };
        let mut needs = vec!["original".to_string()];
        if method == "Gan" && config.attacker.is_none() {
            // One attacker pre-trained on the original, shared by the N runs.
            let name = format!("attacker/{}", attacker_label(&config)?);
            let dir = pools.join(&name);
            jobs.push(PlannedJob {
                name: name.clone(),
                stage: 2,
                needs: vec!["original".into()],
                job: Job::Attacker(unlearn("Gan", config.clone(), 0, dir.clone())),
            });
            config.attacker = Some(dir.join(super::unlearn::ATTACKER_WEIGHTS));
            needs.push(name);
        }
        for seed in first_seed..first_seed + job.n as u64 {
            let name = format!("{}/seed{seed}", method_dir(&method, &config)?);
            jobs.push(PlannedJob {
                name: name.clone(),
                stage: 3,
                needs: needs.clone(),
                job: Job::Unlearn(unlearn(&method, config.clone(), seed, pools.join(name))),
            });
        }
    }
    Ok(Plan { out: pools, jobs })
}

/// First seed of Retrain audited as a method (its reference pool uses 0…N−1).
pub const RETRAIN_AS_METHOD_SEED: u64 = 1_000_000;

/// Retrain's settings: the original's training recipe on the retain set.
fn retrain_config(job: &AuditJob) -> UnlearnConfig {
    UnlearnConfig {
        lr: Some(job.train.lr),
        epochs: Some(job.train.epochs),
        milestones: job.train.milestones.clone(),
        batch_size: job.train.batch_size,
        no_augment: job.train.augment.is_none(),
        ..UnlearnConfig::default()
    }
}

/// A method's pool folder: its name and a short hash of its settings (so differently tuned
/// runs of one method never mix).
fn method_dir(method: &str, config: &UnlearnConfig) -> anyhow::Result<String> {
    let key = serde_json::to_vec(&UnlearnConfig {
        seed: 0,
        ..config.clone()
    })?;
    Ok(format!(
        "methods/{method}-{}",
        &crate::audit::sha256_hex(&key)[..8]
    ))
}

fn attacker_label(config: &UnlearnConfig) -> anyhow::Result<String> {
    let key = serde_json::to_vec(&(
        config.attacker_iters,
        config.batch_size,
        config.forget_augment,
    ))?;
    Ok(crate::audit::sha256_hex(&key)[..8].to_string())
}

/// What `audit_result.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditResult {
    /// Models per pool.
    pub n: usize,
    /// The forget set's training-set indices, in the order of every per-example list.
    pub forget_indices: Vec<usize>,
    /// The pool folder.
    pub pool: PathBuf,
    /// The retrained pool's mean retain and test accuracy.
    pub retrain_accuracy: (f64, f64),
    /// One entry per method.
    pub methods: BTreeMap<String, MethodAudit>,
    /// The paired ranking of every pair of methods (SPEC §6b.3).
    pub rankings: Vec<(String, String, forgetting::PairedComparison)>,
    /// Each method's pooled U-LiRA ROC curve, (FPR, TPR) with unlearned models as positives.
    pub roc: BTreeMap<String, Vec<(f64, f64)>>,
}

/// Scores every method of a finished audit plan; writes `audit_result.json` and
/// `epsilon_<method>.csv` into `job.out`.
pub fn score(job: &AuditJob, plan: &Plan, device: tch::Device) -> anyhow::Result<AuditResult> {
    let ds = job.data.load()?;
    let seed = u32::try_from(job.forget.seed).context("--seed must fit in 32 bits")?;
    let splits = make_splits(&ds, &job.data.split_config(seed, job.forget.request()?))?;
    let forget = &splits.forget;
    // The pools are the plan's own unlearning jobs: the retrained models are stage 2, each
    // method's runs stage 3.
    let pool_of = |stage: usize, method: &str| -> anyhow::Result<PoolData> {
        let dirs: Vec<&Path> = plan
            .jobs
            .iter()
            .filter(|j| j.stage == stage)
            .filter(|j| matches!(&j.job, Job::Unlearn(u) if u.method == method))
            .map(|j| j.job.save_dir())
            .collect();
        if dirs.len() != job.n {
            bail!(
                "{} {method} models planned where the audit needs {}",
                dirs.len(),
                job.n
            );
        }
        let mut confidences = vec![Vec::with_capacity(dirs.len()); forget.len()];
        let (mut retain_accuracy, mut test_accuracy) = (Vec::new(), Vec::new());
        for dir in dirs {
            let ckpt = checkpoint::load(dir, device)?;
            let logits = forget_logits(&ckpt.model, &ds.train, forget, device);
            for (x, row) in logits.iter().enumerate() {
                let y = ds.train.labels[forget[x]] as usize;
                confidences[x].push(forgetting::logit_scaled_confidence(row, y)?);
            }
            let text = std::fs::read_to_string(dir.join("eval_result.json"))?;
            let result: EvalResult = serde_json::from_str(&text)?;
            retain_accuracy.push(result.ra);
            test_accuracy.push(result.ta);
        }
        Ok(PoolData {
            confidences,
            retain_accuracy,
            test_accuracy,
        })
    };
    let retrained = pool_of(2, "retrain")?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut methods = BTreeMap::new();
    let mut roc = BTreeMap::new();
    for (method, _) in &job.methods {
        let name = crate::unlearn::find(method)?.name().to_string();
        let unlearned = pool_of(3, &name)?;
        let audit = forgetting::audit_method(&name, &unlearned, &retrained, &job.settings)?;
        roc.insert(name.clone(), ulira_roc(&unlearned, &retrained)?);
        let csv = audit.epsilon_csv(forget)?;
        crate::fsutil::write_bytes_atomic(
            &job.out.join(format!("epsilon_{name}.csv")),
            csv.as_bytes(),
        )?;
        methods.insert(name, audit);
    }
    let names: Vec<&String> = methods.keys().collect();
    let mut rankings = Vec::new();
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            let cmp = forgetting::compare_methods(&methods[*a], &methods[*b])?;
            rankings.push(((*a).clone(), (*b).clone(), cmp));
        }
    }
    let result = AuditResult {
        n: job.n,
        forget_indices: forget.clone(),
        pool: plan.out.clone(),
        retrain_accuracy: (
            mean(&retrained.retain_accuracy),
            mean(&retrained.test_accuracy),
        ),
        methods,
        rankings,
        roc,
    };
    crate::fsutil::write_json_atomic(&job.out.join("audit_result.json"), &result)?;
    crate::fsutil::write_bytes_atomic(
        &job.out.join("audit_report.html"),
        crate::eval::audit_html::render(&result).as_bytes(),
    )?;
    Ok(result)
}

/// The pooled U-LiRA ROC of one method: every example's leave-one-out scores, unlearned models
/// positive, at most 201 points from (0, 0) to (1, 1).
fn ulira_roc(unlearned: &PoolData, retrained: &PoolData) -> anyhow::Result<Vec<(f64, f64)>> {
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for (u, r) in unlearned.confidences.iter().zip(&retrained.confidences) {
        let (su, sr) = forgetting::ulira_example_scores(u, r)?;
        pos.extend(su);
        neg.extend(sr);
    }
    let mut thresholds: Vec<f64> = pos.iter().chain(&neg).copied().collect();
    thresholds.sort_by(|a, b| b.total_cmp(a));
    let rate = |v: &[f64], t: f64| v.iter().filter(|&&x| x >= t).count() as f64 / v.len() as f64;
    let step = (thresholds.len() / 200).max(1);
    let mut curve = vec![(0.0, 0.0)];
    curve.extend(
        thresholds
            .iter()
            .step_by(step)
            .map(|&t| (rate(&neg, t), rate(&pos, t))),
    );
    curve.push((1.0, 1.0));
    Ok(curve)
}

/// Eval-mode logits of `model` on `set[indices]`, one row per image.
fn forget_logits(
    model: &crate::model::Classifier,
    set: &crate::data::ImageSet,
    indices: &[usize],
    device: tch::Device,
) -> Vec<Vec<f64>> {
    let mut rows = Vec::with_capacity(indices.len());
    tch::no_grad(|| {
        for chunk in indices.chunks(512) {
            let images = to_tensor(set, chunk).images.to_device(device);
            let (logits, _) = model.forward(&images, false);
            let logits = logits
                .to_device(tch::Device::Cpu)
                .to_kind(tch::Kind::Double)
                .contiguous();
            let c = logits.size()[1] as usize;
            let flat = Vec::<f64>::try_from(logits.view([-1])).expect("f64 logits");
            rows.extend(flat.chunks(c).map(<[f64]>::to_vec));
        }
    });
    rows
}

/// The forget request `random:N` (N samples) or `class:K[:N]`, as a [`ForgetConfig`] for the
/// data's training split of `train_len` images.
pub fn parse_forget(text: &str, train_len: usize, seed: u64) -> anyhow::Result<ForgetConfig> {
    let bad = || {
        anyhow::anyhow!(
            "--forget {text:?}: write random:N (N samples), random:F (a fraction < 1), class:K or class:K:N"
        )
    };
    match text.split(':').collect::<Vec<_>>().as_slice() {
        ["random", n] => {
            let v: f64 = n.parse().map_err(|_| bad())?;
            let fraction = if v >= 1.0 {
                if v.fract() != 0.0 || v as usize >= train_len {
                    bail!("--forget {text}: N must be a whole number below the {train_len} training samples");
                }
                // ⌊fraction · |train|⌋ = N exactly.
                (v + 0.5) / train_len as f64
            } else {
                v
            };
            Ok(ForgetConfig {
                indexes_to_replace: true,
                forget_fraction: fraction,
                seed,
                ..ForgetConfig::default()
            })
        }
        _ => {
            let s = crate::sweep::spec::parse_scenario(text).map_err(|_| bad())?;
            Ok(ForgetConfig { seed, ..s.forget })
        }
    }
}
