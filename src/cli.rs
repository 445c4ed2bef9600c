//! The `gunlearn` command line: argument structs and one function per subcommand.
//! Flag names follow the reference (`--batch_size`); hyphenated aliases are accepted.

use crate::checkpoint::{self, ModelInfo, FORMAT};
use crate::data::splits::{make_splits, ForgetRequest, SplitConfig};
use crate::data::{self, DatasetName};
use crate::device::{device_name, parse_device, set_threads};
use crate::model::{Arch, Classifier, ModelSpec};
use crate::train::{train, RunOutput, TrainConfig};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Machine unlearning of image classifiers: train, prune, unlearn, evaluate, report.
#[derive(Parser, Debug)]
#[command(name = "gunlearn", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a classifier (SGD, MultiStepLR, best-by-validation checkpoint).
    Train(TrainArgs),
    /// Run the whole pipeline on the embedded digits data set, on CPU, in a few minutes.
    Demo(DemoArgs),
    /// Print a checkpoint's architecture, classes, accuracies and sparsity per layer.
    Info(InfoArgs),
    /// Benchmarks against the PyTorch implementation under bench/, run in the same command.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Options every command shares.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// auto (first GPU if any, else CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch intra-op threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bars; log lines only.
    #[arg(long)]
    pub quiet: bool,
}

/// Where the data comes from and how it is split (SPEC §1).
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Data set.
    #[arg(long, value_enum, default_value = "digits")]
    pub dataset: DatasetName,
    /// Folder with the data set's files (not needed for digits).
    #[arg(long = "data", alias = "data_dir", alias = "data-dir")]
    pub data: Option<PathBuf>,
    /// Seed of the validation split.
    #[arg(long = "val_set_seed", alias = "val-set-seed", default_value_t = 1)]
    pub val_set_seed: u32,
}

#[derive(Args, Debug)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    common: Common,
    /// Architecture.
    #[arg(long, value_enum, default_value = "resnet18")]
    arch: Arch,
    /// Epochs.
    #[arg(long, default_value_t = 182)]
    epochs: usize,
    /// Initial learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Weight decay.
    #[arg(long = "weight_decay", alias = "weight-decay", default_value_t = 5e-4)]
    weight_decay: f64,
    /// Batch size.
    #[arg(long = "batch_size", alias = "batch-size", default_value_t = 256)]
    batch_size: usize,
    /// Comma-separated epochs where the lr is multiplied by 0.1.
    #[arg(
        long = "decreasing_lr",
        alias = "decreasing-lr",
        default_value = "91,136"
    )]
    decreasing_lr: String,
    /// Epochs of linear warm-up.
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Seed (initialisation, shuffling, augmentation).
    #[arg(long, default_value_t = 2)]
    seed: u64,
    /// Output folder.
    #[arg(long = "save_dir", alias = "save-dir")]
    save_dir: PathBuf,
    /// Continue from save_dir/last.* if present.
    #[arg(long)]
    resume: bool,
    /// Train without augmentation.
    #[arg(long = "no_augment", alias = "no-augment")]
    no_augment: bool,
}

#[derive(Args, Debug)]
struct DemoArgs {
    #[command(flatten)]
    common: Common,
    /// Output folder for the demo's runs.
    #[arg(long = "save_dir", alias = "save-dir", default_value = "runs/demo")]
    save_dir: PathBuf,
    /// Training epochs of the original model.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// A run folder or a .safetensors checkpoint.
    checkpoint: PathBuf,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Training-step images/s of ResNet-18 and ResNet-20 (batch 64 and 256), ours vs PyTorch.
    Train(crate::bench::BenchTrainArgs),
    /// Seconds per adversarial-unlearning iteration (SPEC §5), ours vs PyTorch.
    Gan(crate::bench_gan::BenchGanArgs),
}

/// Parses the command line and runs the command.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(args) => run_train(args),
        Command::Demo(args) => run_demo(args),
        Command::Info(args) => run_info(args),
        Command::Bench(BenchCommand::Train(args)) => crate::bench::bench_train(&args),
        Command::Bench(BenchCommand::Gan(args)) => crate::bench_gan::bench_gan(&args),
    }
}

/// Parses `--decreasing_lr 91,136`.
pub fn parse_milestones(text: &str) -> anyhow::Result<Vec<usize>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .with_context(|| format!("--decreasing_lr: {s:?} is not an epoch number"))
        })
        .collect()
}

/// The model spec for a data set and architecture.
pub fn model_spec(ds: &data::DataSet, arch: Arch) -> ModelSpec {
    ModelSpec {
        arch,
        num_classes: ds.num_classes,
        in_channels: ds.train.channels,
        mean: ds.mean.clone(),
        std: ds.std.clone(),
    }
}

/// Everything `train` needs, so that `demo` can call it without parsing a command line.
pub struct TrainJob {
    /// Data set and split seed.
    pub data: DataArgs,
    /// Architecture.
    pub arch: Arch,
    /// Hyper-parameters.
    pub config: TrainConfig,
    /// Output folder.
    pub save_dir: PathBuf,
    /// Continue an interrupted run.
    pub resume: bool,
    /// Device, threads, quiet.
    pub common: Common,
}

fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    let ds_augment = args.data.dataset.default_augment();
    let config = TrainConfig {
        epochs: args.epochs,
        lr: args.lr,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        batch_size: args.batch_size,
        milestones: parse_milestones(&args.decreasing_lr)?,
        warmup: args.warmup,
        seed: args.seed,
        augment: if args.no_augment {
            None
        } else {
            Some(ds_augment)
        },
        ..TrainConfig::default()
    };
    let job = TrainJob {
        data: args.data,
        arch: args.arch,
        config,
        save_dir: args.save_dir,
        resume: args.resume,
        common: args.common,
    };
    let info = run_train_job(&job)?;
    println!(
        "trained {:?} on {:?}: best val {:.2}% , test {:.2}% -> {}",
        job.arch,
        job.data.dataset,
        info.accuracy.get("best_val").copied().unwrap_or(f64::NAN),
        info.accuracy.get("test").copied().unwrap_or(f64::NAN),
        job.save_dir.join("model.safetensors").display()
    );
    Ok(())
}

/// Trains per `job`, then evaluates the best checkpoint on train/val/test and records it.
pub fn run_train_job(job: &TrainJob) -> anyhow::Result<ModelInfo> {
    set_threads(job.common.threads);
    let device = parse_device(&job.common.device)?;
    let ds = data::load(job.data.dataset, job.data.data.as_deref())?;
    let splits = make_splits(
        &ds,
        &SplitConfig {
            val_set_seed: job.data.val_set_seed,
            seed: 1,
            forget: ForgetRequest::None,
        },
    )?;
    tch::manual_seed(job.config.seed as i64);
    let spec = model_spec(&ds, job.arch);
    let model = Classifier::new(&spec, device);
    let info = ModelInfo {
        format: FORMAT.into(),
        model: spec,
        dataset: job.data.dataset,
        seed: job.config.seed,
        epoch: 0,
        accuracy: BTreeMap::new(),
        sparsity: 0.0,
        device: device_name(device),
        produced_by: "train".into(),
        extra: serde_json::json!({ "train_config": job.config, "val_set_seed": job.data.val_set_seed }),
    };
    std::fs::create_dir_all(&job.save_dir)
        .with_context(|| format!("creating {}", job.save_dir.display()))?;
    let output = RunOutput {
        save_dir: job.save_dir.clone(),
        info,
        resume: job.resume,
        quiet: job.common.quiet,
    };
    let train_set = Arc::new(ds.train.clone());
    let summary = train(
        &model,
        None,
        &train_set,
        &splits.train,
        &splits.val,
        &job.config,
        Some(&output),
        device,
    )?;
    // Final accuracies of the best checkpoint, written back into its model.json.
    let best = checkpoint::load(&job.save_dir, device)?;
    let mut info = best.info.clone();
    let eval = |set: &data::ImageSet, idx: &[usize]| {
        crate::eval::outputs::accuracy(&best.model, set, idx, job.config.eval_batch_size, device)
    };
    info.accuracy
        .insert("train".into(), eval(&ds.train, &splits.train));
    info.accuracy
        .insert("val".into(), eval(&ds.train, &splits.val));
    info.accuracy
        .insert("test".into(), eval(&ds.test, &splits.test));
    info.accuracy.insert("best_val".into(), summary.best_val);
    checkpoint::save(
        &job.save_dir,
        "model",
        &best.model,
        best.mask.as_ref(),
        &info,
    )?;
    Ok(info)
}

fn run_info(args: InfoArgs) -> anyhow::Result<()> {
    let ckpt = checkpoint::load(&args.checkpoint, tch::Device::Cpu)?;
    let info = &ckpt.info;
    println!("checkpoint   {}", ckpt.path.display());
    println!(
        "architecture {:?}, {} classes, {} input channels",
        info.model.arch, info.model.num_classes, info.model.in_channels
    );
    println!("parameters   {}", ckpt.model.num_parameters());
    println!(
        "data set     {:?} (seed {}), produced by {} on {}",
        info.dataset, info.seed, info.produced_by, info.device
    );
    for (split, acc) in &info.accuracy {
        println!("accuracy     {split:<16} {acc:6.2}%");
    }
    match &ckpt.mask {
        Some(mask) => {
            let s = mask.sparsity();
            println!("sparsity     {:.2}% of conv weights are zero", s.overall);
            for (layer, pct) in &s.per_layer {
                println!("  {layer:<32} {pct:6.2}%");
            }
        }
        None => println!("sparsity     dense (no mask)"),
    }
    Ok(())
}

fn run_demo(args: DemoArgs) -> anyhow::Result<()> {
    let save_dir = args.save_dir.join("original");
    let job = TrainJob {
        data: DataArgs {
            dataset: DatasetName::Digits,
            data: None,
            val_set_seed: 1,
        },
        arch: Arch::Resnet20,
        config: TrainConfig {
            epochs: args.epochs,
            lr: 0.1,
            batch_size: 64,
            milestones: vec![args.epochs / 2, args.epochs * 3 / 4],
            augment: Some(DatasetName::Digits.default_augment()),
            ..TrainConfig::default()
        },
        save_dir: save_dir.clone(),
        resume: false,
        common: Common {
            device: args.common.device.clone(),
            threads: args.common.threads,
            quiet: args.common.quiet,
        },
    };
    println!(
        "demo: training ResNet-20 on the embedded digits data ({} epochs) -> {}",
        job.config.epochs,
        save_dir.display()
    );
    let info = run_train_job(&job)?;
    println!("\n| split | accuracy (%) |\n|---|---|");
    for split in ["train", "val", "test"] {
        println!(
            "| {split} | {:.2} |",
            info.accuracy.get(split).copied().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
