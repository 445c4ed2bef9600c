//! `gunlearn prune`: one-shot (OMP) and iterative (IMP) magnitude pruning with rewinding,
//! random pruning, and data-free SynFlow (SPEC §3), with the reference's output per state.
//!
//! Flow of OMP / IMP / random (the reference's `main_imp.py`): state 0 trains dense and keeps
//! the weights after `--rewind_epoch` epochs; after each state's training the last weights are
//! pruned (globally over all conv weights), the survivors are rewound (`rewind_lt`: to the
//! epoch-`rewind_epoch` weights, `lt`: to the initialisation, `pt`: not at all) and the next
//! state retrains the full schedule, advanced by `rewind_epoch` epochs for `rewind_lt`.
//! OMP prunes once, to `rate`; IMP prunes `pruning_times` rounds of `rate` of the *remaining*
//! weights (cumulative 1 − (1 − rate)^r, as `torch.nn.utils.prune` composes); random prunes
//! once, uniformly at random. SynFlow prunes the initialisation to `rate` without data, then
//! trains the sparse network (a single state).
//!
//! Output in `--save_dir`: `state<k>/` per trained state (`model.*` = best by validation
//! accuracy, with its mask; `last.*`; `train_log.csv`; curves), `state0/rewind.*`, and
//! `pruning.json` (per state: sparsity, best validation accuracy and epoch, test accuracy).

pub mod synflow;

use crate::checkpoint::{self, copy_into, ModelInfo, FORMAT};
use crate::data::splits::{make_splits, ForgetRequest};
use crate::data::ImageSet;
use crate::device::device_name;
use crate::jobs::{model_spec, DataConfig, Runner};
use crate::model::mask::Mask;
use crate::model::{Arch, Classifier};
use crate::train::{train, RunOutput, TrainConfig};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Which pruning algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneMethod {
    /// One-shot global magnitude pruning after dense training.
    Omp,
    /// Iterative magnitude pruning, `rate` of the remaining weights per round.
    Imp,
    /// SynFlow at initialisation, data-free.
    Synflow,
    /// Uniformly random global pruning after dense training.
    Random,
}

/// What the surviving weights are reset to after pruning (the reference's `--prune_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum PruneType {
    /// Lottery ticket with rewinding: back to the weights after `rewind_epoch` epochs.
    #[value(name = "rewind_lt")]
    #[serde(rename = "rewind_lt")]
    RewindLt,
    /// Lottery ticket: back to the initialisation.
    #[value(name = "lt")]
    #[serde(rename = "lt")]
    Lt,
    /// Pruning + fine-tuning: keep the trained weights.
    #[value(name = "pt")]
    #[serde(rename = "pt")]
    Pt,
}

/// Everything a pruning run needs (SPEC §3).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PruneJob {
    /// Data set and split seed.
    pub data: DataConfig,
    /// Device, threads, quiet.
    pub runner: Runner,
    /// Architecture.
    pub arch: Arch,
    /// Pruning algorithm.
    pub prune: PruneMethod,
    /// Fraction of conv weights to prune (per round for IMP).
    pub rate: f64,
    /// IMP: number of prune-rewind-retrain rounds.
    pub pruning_times: usize,
    /// Epoch whose weights `rewind_lt` rewinds to.
    pub rewind_epoch: usize,
    /// rewind_lt, lt or pt.
    pub prune_type: PruneType,
    /// SynFlow rounds.
    pub synflow_rounds: usize,
    /// Training hyper-parameters of every state; `augment: Some(_)` asks for the data set's
    /// augmentation.
    pub train: TrainConfig,
    /// Output folder.
    pub save_dir: PathBuf,
    /// Continue an interrupted run in `save_dir`: finished states (those in `pruning.json`)
    /// are kept, the interrupted one continues from its `last.*` checkpoint.
    pub resume: bool,
}

impl PruneJob {
    /// The reference's pruning settings (`main_imp.py`) for `data`, written to `save_dir`.
    pub fn new(data: DataConfig, save_dir: PathBuf) -> PruneJob {
        PruneJob {
            data,
            runner: Runner::default(),
            arch: crate::jobs::DEFAULT_ARCH,
            prune: PruneMethod::Omp,
            rate: 0.2,
            pruning_times: 1,
            rewind_epoch: 8,
            prune_type: PruneType::RewindLt,
            synflow_rounds: 100,
            train: TrainConfig::default(),
            save_dir,
            resume: false,
        }
    }
}

/// One trained state in `pruning.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StateSummary {
    /// State index (0 = dense for OMP/IMP/random).
    pub state: usize,
    /// Folder of its checkpoints.
    pub dir: PathBuf,
    /// % of conv weights pruned.
    pub sparsity: f64,
    /// Best validation accuracy (%).
    pub best_val: f64,
    /// Epoch (1-based) of the best validation accuracy.
    pub best_epoch: usize,
    /// Test accuracy (%) of the best checkpoint.
    pub test: f64,
}

/// `pruning.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PruningSummary {
    /// Algorithm.
    pub method: PruneMethod,
    /// Rewinding.
    pub prune_type: PruneType,
    /// `--rate`.
    pub rate: f64,
    /// `--pruning_times`.
    pub pruning_times: usize,
    /// `--rewind_epoch`.
    pub rewind_epoch: usize,
    /// Training configuration of each state (schedule offset aside).
    pub train_config: TrainConfig,
    /// Every trained state, in order.
    pub states: Vec<StateSummary>,
}

/// Uniform random scores for every conv weight (from libtorch's seeded generator).
fn random_scores(model: &Classifier) -> Vec<(String, Tensor)> {
    let vars = model.vs.variables();
    model
        .conv_weight_names()
        .into_iter()
        .map(|n| {
            // Drawn on the CPU generator (the same scores whatever the device), then placed
            // beside the weight so the mask built from them lives there too.
            let w = &vars[&n];
            let s = Tensor::rand(w.size(), (Kind::Float, Device::Cpu)).to_device(w.device());
            (n, s)
        })
        .collect()
}

/// The mask after pruning round `round` (1-based) of `method` on `model`'s current weights.
pub fn prune_round(
    model: &Classifier,
    method: PruneMethod,
    rate: f64,
    round: usize,
    current: Option<&Mask>,
    image_size: (usize, usize),
    synflow_rounds: usize,
) -> Result<Mask> {
    Ok(match method {
        PruneMethod::Omp => Mask::global_magnitude(model, rate, current),
        // torch.nn.utils.prune composes `rate` of the remaining weights per round.
        PruneMethod::Imp => {
            Mask::global_magnitude(model, 1.0 - (1.0 - rate).powi(round as i32), current)
        }
        PruneMethod::Random => Mask::global_from_scores(&random_scores(model), rate, current),
        PruneMethod::Synflow => {
            synflow::synflow_mask(model, rate, synflow_rounds, current, image_size)?
        }
    })
}

fn snapshot(model: &Classifier) -> HashMap<String, Tensor> {
    model
        .vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect()
}

fn restore(model: &Classifier, weights: &HashMap<String, Tensor>) -> Result<()> {
    copy_into(
        &model.vs,
        weights
            .iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect(),
    )
}

/// The per-state Markdown table `gunlearn prune` prints.
pub fn summary_table(summary: &PruningSummary) -> String {
    let mut table = String::from(
        "| state | sparsity (%) | best val (%) | test (%) | checkpoint |\n|---|---|---|---|---|",
    );
    for s in &summary.states {
        table += &format!(
            "\n| {} | {:.2} | {:.2} | {:.2} | {} |",
            s.state,
            s.sparsity,
            s.best_val,
            s.test,
            s.dir.join("model.safetensors").display()
        );
    }
    table
}

fn check_args(args: &PruneJob) -> Result<()> {
    if !(0.0..=1.0).contains(&args.rate) || args.rate.is_nan() {
        bail!("--rate {}: must be in [0, 1]", args.rate);
    }
    if args.rate >= 1.0 && args.prune != PruneMethod::Imp {
        bail!("--rate 1 would prune every conv weight");
    }
    if args.prune == PruneMethod::Imp && args.pruning_times == 0 {
        bail!("--pruning_times must be at least 1 for IMP");
    }
    if args.train.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let rewinds = matches!(
        args.prune,
        PruneMethod::Omp | PruneMethod::Imp | PruneMethod::Random
    ) && args.prune_type == PruneType::RewindLt;
    if rewinds && args.rewind_epoch > args.train.epochs {
        bail!(
            "--rewind_epoch {} is past --epochs {}",
            args.rewind_epoch,
            args.train.epochs
        );
    }
    Ok(())
}

/// Does the whole pruning run and writes `pruning.json`; returns its content.
pub fn run(args: &PruneJob) -> Result<PruningSummary> {
    check_args(args)?;
    args.train.validate()?;
    let device = args.runner.start()?;
    let ds = args.data.load()?;
    let _lock = crate::lock::FolderLock::acquire(&args.save_dir, "prune")?;
    let splits = make_splits(&ds, &args.data.split_config(1, ForgetRequest::None))?;
    tch::manual_seed(args.train.seed as i64);
    let spec = model_spec(&ds, args.arch)?;
    let mut model = Classifier::try_new(&spec, device)?;
    model.layout = args.runner.layout.resolve(device);
    let init = snapshot(&model);
    let mut config = args.train.clone();
    config.augment = config.augment.map(|_| ds.default_augment());
    std::fs::create_dir_all(&args.save_dir)
        .with_context(|| format!("creating {}", args.save_dir.display()))?;
    let image_size = (ds.train.height, ds.train.width);
    let train_set = Arc::new(ds.train);
    let base_info = ModelInfo {
        format: FORMAT.into(),
        model: spec,
        dataset: args.data.dataset,
        seed: args.train.seed,
        epoch: 0,
        accuracy: BTreeMap::new(),
        sparsity: 0.0,
        device: device_name(device),
        produced_by: String::new(),
        extra: serde_json::Value::Null,
    };
    let ctx = StateContext {
        args,
        device,
        train_set: &train_set,
        test: &ds.test,
        splits: &splits,
        base_info: &base_info,
    };
    let mut summary = PruningSummary {
        method: args.prune,
        prune_type: args.prune_type,
        rate: args.rate,
        pruning_times: args.pruning_times,
        rewind_epoch: args.rewind_epoch,
        train_config: config.clone(),
        states: Vec::new(),
    };
    let write_summary = |s: &PruningSummary| {
        crate::fsutil::write_json_atomic(&args.save_dir.join("pruning.json"), s)
    };
    let finished = if args.resume {
        finished_states(&args.save_dir, &summary)?
    } else {
        Vec::new()
    };

    if args.prune == PruneMethod::Synflow {
        if let Some(done) = finished.first() {
            summary.states.push(done.clone());
            return Ok(summary);
        }
        // Data-free pruning of the initialisation, then one sparse training run.
        let mask = prune_round(
            &model,
            args.prune,
            args.rate,
            1,
            None,
            image_size,
            args.synflow_rounds,
        )?;
        mask.apply_to_weights(&model.vs);
        tracing::info!(
            "SynFlow: {:.2}% of conv weights pruned at initialisation",
            mask.sparsity().overall
        );
        let s = ctx.train_state(&model, Some(&mask), 1, &config, None)?;
        summary.states.push(s);
        write_summary(&summary)?;
        return Ok(summary);
    }

    // State 0: dense, keeping the rewind point.
    let rounds = if args.prune == PruneMethod::Imp {
        args.pruning_times
    } else {
        1
    };
    let rewind_epoch = (args.prune_type == PruneType::RewindLt).then_some(args.rewind_epoch);
    let s0 = match finished.first() {
        Some(done) => {
            // The rounds prune the state's last-epoch weights, which are kept in `last.*`.
            load_last(&model, done.state, args, device)?;
            done.clone()
        }
        None => ctx.train_state(&model, None, 0, &config, rewind_epoch)?,
    };
    summary.states.push(s0);
    write_summary(&summary)?;
    let rewind_weights = match args.prune_type {
        PruneType::RewindLt => Some(checkpoint::load(
            &args.save_dir.join("state0").join("rewind.safetensors"),
            device,
        )?),
        _ => None,
    };
    let mut mask: Option<Mask> = None;
    for round in 1..=rounds {
        if let Some(done) = finished.get(round) {
            mask = load_last(&model, round, args, device)?;
            summary.states.push(done.clone());
            continue;
        }
        if args.prune == PruneMethod::Random {
            // Each round draws its scores from its own seed, so a resumed run draws the same.
            tch::manual_seed(args.train.seed.wrapping_add(round as u64) as i64);
        }
        let new = prune_round(
            &model,
            args.prune,
            args.rate,
            round,
            mask.as_ref(),
            image_size,
            args.synflow_rounds,
        )?;
        match args.prune_type {
            PruneType::RewindLt => {
                let r = rewind_weights.as_ref().expect("loaded above");
                copy_into(&model.vs, r.model.vs.variables())?;
            }
            PruneType::Lt => restore(&model, &init)?,
            PruneType::Pt => {}
        }
        new.apply_to_weights(&model.vs);
        tracing::info!(
            "round {round}: {:.2}% of conv weights pruned",
            new.sparsity().overall
        );
        let cfg = TrainConfig {
            schedule_offset: if args.prune_type == PruneType::RewindLt {
                args.rewind_epoch
            } else {
                0
            },
            seed: args.train.seed.wrapping_add(round as u64),
            ..config.clone()
        };
        let s = ctx.train_state(&model, Some(&new), round, &cfg, None)?;
        summary.states.push(s);
        write_summary(&summary)?;
        mask = Some(new);
    }
    Ok(summary)
}

/// The states an earlier run of the same configuration finished (`--resume`), in order; empty
/// when `save_dir` holds no `pruning.json`. A different configuration there is an error.
fn finished_states(save_dir: &Path, expected: &PruningSummary) -> Result<Vec<StateSummary>> {
    let path = save_dir.join("pruning.json");
    if !path.exists() {
        tracing::warn!(
            "--resume: {} not found, starting from scratch",
            path.display()
        );
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let previous: PruningSummary = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a gunlearn pruning.json", path.display()))?;
    let config = |s: &PruningSummary| {
        serde_json::to_value(PruningSummary {
            states: Vec::new(),
            ..s.clone()
        })
    };
    if config(&previous)? != config(expected)? {
        bail!(
            "--resume: {} describes a different pruning run (method, rewinding, rate, rounds or \
             training flags differ); pass the same flags as before, or use another --save_dir",
            path.display()
        );
    }
    for (k, s) in previous.states.iter().enumerate() {
        let first = usize::from(previous.method == PruneMethod::Synflow);
        if s.state != k + first {
            bail!(
                "--resume: {} lists state {} where state {} belongs",
                path.display(),
                s.state,
                k + first
            );
        }
    }
    Ok(previous.states)
}

/// Loads finished state `state`'s last-epoch weights into `model`; returns its mask.
fn load_last(
    model: &Classifier,
    state: usize,
    args: &PruneJob,
    device: Device,
) -> Result<Option<Mask>> {
    let path = args
        .save_dir
        .join(format!("state{state}"))
        .join("last.safetensors");
    let last = checkpoint::load(&path, device)
        .with_context(|| format!("--resume: state {state} is listed as finished"))?;
    copy_into(&model.vs, last.model.vs.variables())?;
    Ok(last.mask)
}

struct StateContext<'a> {
    args: &'a PruneJob,
    device: Device,
    train_set: &'a Arc<ImageSet>,
    test: &'a ImageSet,
    splits: &'a crate::data::splits::Splits,
    base_info: &'a ModelInfo,
}

impl StateContext<'_> {
    /// Trains one state into `save_dir/state<k>`; with `rewind_at`, first trains that many
    /// epochs and saves `rewind.*`, then resumes to the end (same schedule and shuffles as one
    /// uninterrupted run). Leaves the model at its last-epoch weights.
    fn train_state(
        &self,
        model: &Classifier,
        mask: Option<&Mask>,
        state: usize,
        cfg: &TrainConfig,
        rewind_at: Option<usize>,
    ) -> Result<StateSummary> {
        let args = self.args;
        let dir = args.save_dir.join(format!("state{state}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let produced_by = if mask.is_some() {
            format!("prune:{}", method_name(args.prune))
        } else {
            "train".into()
        };
        let mut info = self.base_info.clone();
        info.produced_by = produced_by;
        info.sparsity = mask.map_or(0.0, |m| m.sparsity().overall);
        info.extra = serde_json::json!({
            "state": state,
            "prune": args.prune,
            "prune_type": args.prune_type,
            "rate": args.rate,
            "rewind_epoch": args.rewind_epoch,
            "train_config": cfg,
            "val_set_seed": args.data.val_set_seed,
            "train_subset": args.data.train_subset,
            "selection_fraction": args.data.selection_fraction,
            "test_subset": args.data.test_subset,
        });
        let run = |epochs: usize, resume: bool| {
            let output = RunOutput {
                save_dir: dir.clone(),
                info: info.clone(),
                resume,
                quiet: args.runner.quiet,
            };
            let c = TrainConfig {
                epochs,
                ..cfg.clone()
            };
            train(
                model,
                mask,
                self.train_set,
                &self.splits.train,
                &self.splits.val,
                &c,
                Some(&output),
                self.device,
            )
        };
        tracing::info!(
            "state {state}: training {} epochs -> {}",
            cfg.epochs,
            dir.display()
        );
        let resume = args.resume;
        let summary = match rewind_at {
            // Resuming after the rewind point was saved: just continue to the end.
            Some(_) if resume && dir.join("rewind.json").exists() => run(cfg.epochs, true)?,
            Some(e) => {
                let mut rinfo = info.clone();
                rinfo.epoch = e;
                if e == 0 {
                    checkpoint::save(&dir, "rewind", model, mask, &rinfo)?;
                    run(cfg.epochs, resume)?
                } else {
                    run(e, resume)?;
                    checkpoint::save(&dir, "rewind", model, mask, &rinfo)?;
                    run(cfg.epochs.max(e), true)?
                }
            }
            None => run(cfg.epochs, resume)?,
        };
        // Test accuracy of the best checkpoint, recorded in its model.json.
        let best = checkpoint::load(&dir, self.device)?;
        let test = crate::eval::outputs::accuracy(
            &best.model,
            self.test,
            &self.splits.test,
            cfg.eval_batch_size,
            self.device,
        );
        let mut binfo = best.info.clone();
        binfo.accuracy.insert("test".into(), test);
        checkpoint::save_info(&dir, "model", &binfo)?;
        Ok(StateSummary {
            state,
            dir,
            sparsity: info.sparsity,
            best_val: summary.best_val,
            best_epoch: summary.best_epoch,
            test,
        })
    }
}

fn method_name(m: PruneMethod) -> &'static str {
    match m {
        PruneMethod::Omp => "omp",
        PruneMethod::Imp => "imp",
        PruneMethod::Synflow => "synflow",
        PruneMethod::Random => "random",
    }
}

/// How many trained states a finished run of `job` has: SynFlow one, OMP and random the dense
/// one and the pruned one, IMP the dense one and one per round.
pub fn expected_states(job: &PruneJob) -> usize {
    match job.prune {
        PruneMethod::Synflow => 1,
        PruneMethod::Omp | PruneMethod::Random => 2,
        PruneMethod::Imp => job.pruning_times + 1,
    }
}

/// Whether `job.save_dir` holds a finished pruning run (`pruning.json` lists every state).
pub fn is_complete(job: &PruneJob) -> bool {
    std::fs::read_to_string(job.save_dir.join("pruning.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<PruningSummary>(&text).ok())
        .is_some_and(|s| s.states.len() == expected_states(job))
}

/// The folder of the last (sparsest) state of a finished run of `job`: the model to unlearn.
pub fn final_state_dir(job: &PruneJob) -> PathBuf {
    let last = match job.prune {
        PruneMethod::Synflow => 1,
        _ => expected_states(job) - 1,
    };
    job.save_dir.join(format!("state{last}"))
}
