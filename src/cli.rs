//! The `gunlearn` command line: argument structs and one function per subcommand.
//! Flag names follow the reference (`--batch_size`); hyphenated aliases are accepted.

use crate::checkpoint::{self, ModelInfo, FORMAT};
use crate::data::splits::{make_splits, ForgetRequest, SplitConfig};
use crate::data::{self, DatasetName};
use crate::device::{device_name, parse_device, set_threads};
use crate::eval::result::{evaluate, EvalRequest, EvalResult};
use crate::model::{Arch, Classifier, ModelSpec};
use crate::train::{train, RunOutput, TrainConfig};
use crate::unlearn::{UnlearnConfig, UnlearnContext};
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
    /// Forget with one unlearning method, then evaluate (writes model.*, eval_result.json, unlearn_log.csv).
    #[command(after_long_help = crate::unlearn::methods_help())]
    Unlearn(Box<UnlearnArgs>),
    /// Evaluate a model: accuracies and the SVC membership-inference attack (eval_result.json).
    Eval(EvalArgs),
    /// Compare runs against Retrain: Markdown table, report.md/csv and figures.
    Report(ReportArgs),
    /// Recompute every hash in a run folder's audit.json and say what no longer matches.
    #[command(name = "verify-audit")]
    VerifyAudit(VerifyAuditArgs),
    /// Prune: OMP, IMP, SynFlow or random, with rewinding (SPEC §3).
    Prune(crate::prune::PruneArgs),
    /// Convert a PyTorch checkpoint (torch.save or safetensors state dict, pruned or not) to ours.
    #[command(name = "import-torch")]
    ImportTorch(crate::torch_io::ImportTorchArgs),
    /// Write our checkpoint as PyTorch state-dict weights (.safetensors or .pt).
    #[command(name = "export-torch")]
    ExportTorch(crate::torch_io::ExportTorchArgs),
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

/// `--device` alone, for the commands that only load, convert or write a checkpoint.
#[derive(Args, Debug, Clone)]
pub struct DeviceFlag {
    /// Where the checkpoint's tensors are loaded: auto (first GPU if any, else CPU), cpu,
    /// cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

impl DeviceFlag {
    /// The libtorch device, or an error naming the bad value.
    pub fn parse(&self) -> anyhow::Result<tch::Device> {
        parse_device(&self.device)
    }
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
    /// Use only the first N official training images (file order) — for scaled-down runs.
    #[arg(long = "train_subset", alias = "train-subset")]
    pub train_subset: Option<usize>,
    /// Use only the first N official test images (file order) — for scaled-down runs.
    #[arg(long = "test_subset", alias = "test-subset")]
    pub test_subset: Option<usize>,
}

impl DataArgs {
    /// Reads the data set, cut to `--train_subset` / `--test_subset` if given.
    pub fn load(&self) -> anyhow::Result<data::DataSet> {
        let mut ds = data::load(self.dataset, self.data.as_deref())?;
        ds.train = first_images(ds.train, self.train_subset, "--train_subset", "training")?;
        ds.test = first_images(ds.test, self.test_subset, "--test_subset", "test")?;
        Ok(ds)
    }
}

/// The first `n` images of `set` (file order), or all of them when `n` is `None`.
fn first_images(
    set: data::ImageSet,
    n: Option<usize>,
    flag: &str,
    what: &str,
) -> anyhow::Result<data::ImageSet> {
    match n {
        None => Ok(set),
        Some(n) if n == 0 || n > set.len() => {
            anyhow::bail!(
                "{flag} {n}: must be between 1 and {} (the {what} images)",
                set.len()
            )
        }
        Some(n) => Ok(set.subset(&(0..n).collect::<Vec<_>>())),
    }
}

/// The training hyper-parameters shared by `train` and `prune` (reference names and defaults).
#[derive(Args, Debug, Clone)]
pub struct TrainFlags {
    /// Epochs.
    #[arg(long, default_value_t = 182)]
    pub epochs: usize,
    /// Initial learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Weight decay.
    #[arg(long = "weight_decay", alias = "weight-decay", default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Batch size.
    #[arg(long = "batch_size", alias = "batch-size", default_value_t = 256)]
    pub batch_size: usize,
    /// Comma-separated epochs where the lr is multiplied by 0.1.
    #[arg(
        long = "decreasing_lr",
        alias = "decreasing-lr",
        default_value = "91,136"
    )]
    pub decreasing_lr: String,
    /// Epochs of linear warm-up.
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Seed (initialisation, shuffling, augmentation, random pruning).
    #[arg(long, default_value_t = 2)]
    pub seed: u64,
    /// Train without augmentation.
    #[arg(long = "no_augment", alias = "no-augment")]
    pub no_augment: bool,
}

impl TrainFlags {
    /// The training configuration these flags describe, with `dataset`'s augmentation (for an
    /// image folder the size-blind choice: [`run_train_job`] and `prune` settle it from the
    /// images).
    pub fn config(&self, dataset: DatasetName) -> anyhow::Result<TrainConfig> {
        let config = TrainConfig {
            epochs: self.epochs,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            milestones: parse_milestones(&self.decreasing_lr)?,
            warmup: self.warmup,
            seed: self.seed,
            augment: (!self.no_augment).then(|| dataset.default_augment()),
            ..TrainConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
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
    #[command(flatten)]
    train: TrainFlags,
    /// Output folder.
    #[arg(long = "save_dir", alias = "save-dir")]
    save_dir: PathBuf,
    /// Continue from save_dir/last.* if present.
    #[arg(long)]
    resume: bool,
    /// Mixed precision of the forward pass and loss: off (FP32, the reference) or bf16 (CUDA).
    #[arg(long, value_enum, default_value = "off")]
    amp: crate::device::Amp,
}

#[derive(Args, Debug)]
struct DemoArgs {
    #[command(flatten)]
    common: Common,
    /// Output folder for the demo's runs.
    #[arg(long = "save_dir", alias = "save-dir", default_value = "runs/demo")]
    save_dir: PathBuf,
    /// Training epochs of the original model (and of Retrain).
    #[arg(long, default_value_t = 20)]
    epochs: usize,
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// A run folder or a .safetensors checkpoint.
    checkpoint: PathBuf,
    #[command(flatten)]
    device: DeviceFlag,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Training-step images/s of ResNet-18 and ResNet-20 (batch 64 and 256), ours vs PyTorch.
    Train(crate::bench::BenchTrainArgs),
    /// SVC fit + predict on shadow points, ours vs scikit-learn.
    Mia(BenchMiaArgs),
    /// Seconds per adversarial-unlearning iteration (SPEC §5), ours vs PyTorch.
    Gan(crate::bench_gan::BenchGanArgs),
    /// Evaluation throughput (softmax outputs, accuracy, MIA features), ours vs PyTorch.
    Eval(crate::bench_eval::BenchEvalArgs),
}

#[derive(Args, Debug)]
struct BenchMiaArgs {
    /// Shadow points.
    #[arg(long, default_value_t = 20_000)]
    n: usize,
    /// Threads of our solver (scikit-learn's libsvm is single-threaded).
    #[arg(long)]
    threads: Option<usize>,
    /// Accepted as on every command and checked; the SVC solvers on both sides run on the CPU.
    #[arg(long, default_value = "auto")]
    device: String,
}

/// Which samples to forget (SPEC §1), with the reference's flag names.
#[derive(Args, Debug, Clone)]
pub struct ForgetArgs {
    /// Class-wise forgetting of class k.
    #[arg(long = "class_to_replace", alias = "class-to-replace")]
    pub class_to_replace: Option<usize>,
    /// How many samples of that class (default, or the class size: the whole class, which is
    /// then also removed from the test set).
    #[arg(long = "num_indexes_to_replace", alias = "num-indexes-to-replace")]
    pub num_indexes_to_replace: Option<usize>,
    /// Random forgetting of 10 % of the train split.
    #[arg(long = "indexes_to_replace", alias = "indexes-to-replace")]
    pub indexes_to_replace: bool,
    /// Fraction for random forgetting.
    #[arg(
        long = "forget_fraction",
        alias = "forget-fraction",
        default_value_t = 0.1
    )]
    pub forget_fraction: f64,
    /// Run seed: the forget set is drawn with RandomState(seed − 1).
    #[arg(long, default_value_t = 2)]
    pub seed: u64,
}

impl ForgetArgs {
    /// The forget request these flags describe.
    pub fn request(&self) -> anyhow::Result<ForgetRequest> {
        match (self.class_to_replace, self.indexes_to_replace) {
            (Some(_), true) => anyhow::bail!(
                "--class_to_replace and --indexes_to_replace both given: choose class-wise or random forgetting"
            ),
            (Some(class), false) => Ok(ForgetRequest::Class { class, count: self.num_indexes_to_replace }),
            (None, true) => {
                if !(self.forget_fraction > 0.0 && self.forget_fraction <= 1.0) {
                    anyhow::bail!("--forget_fraction {}: must be in (0, 1]", self.forget_fraction);
                }
                Ok(ForgetRequest::Random { fraction: self.forget_fraction })
            }
            (None, false) => {
                if self.num_indexes_to_replace.is_some() {
                    anyhow::bail!("--num_indexes_to_replace needs --class_to_replace");
                }
                Ok(ForgetRequest::None)
            }
        }
    }
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// A run folder, a .safetensors checkpoint or a PyTorch `torch.save` file (.pth.tar).
    #[arg(long, alias = "mask")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    forget: ForgetArgs,
    #[command(flatten)]
    common: Common,
    /// Output folder for eval_result.json.
    #[arg(long = "save_dir", alias = "save-dir")]
    save_dir: PathBuf,
    /// Batch size of the prediction passes.
    #[arg(long = "batch_size", alias = "batch-size", default_value_t = 512)]
    batch_size: usize,
}

#[derive(Args, Debug)]
struct UnlearnArgs {
    /// The trained (usually pruned) model: a run folder, a .safetensors checkpoint or the
    /// reference's PyTorch `torch.save` file (.pth.tar, read directly).
    #[arg(long, alias = "mask")]
    model: PathBuf,
    /// Method (case-insensitive): raw, retrain, FT, GA, FT_l1, FT_prune, fisher_new, wfisher,
    /// RL, SalUn, SalUn_soft, BS, BE, SCRUB, Gan; `--help` lists what each does.
    #[arg(long)]
    unlearn: String,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    forget: ForgetArgs,
    #[command(flatten)]
    common: Common,
    /// Number of classes (checked against the checkpoint).
    #[arg(long = "num_classes", alias = "num-classes")]
    num_classes: Option<usize>,
    /// Learning rate (default: the method's reference value).
    #[arg(long = "unlearn_lr", alias = "unlearn-lr")]
    unlearn_lr: Option<f64>,
    /// Epochs (default: the method's reference value).
    #[arg(long = "unlearn_epochs", alias = "unlearn-epochs")]
    unlearn_epochs: Option<usize>,
    /// Gan, class-wise: attacker iterations after which β = 0 and lr = --stop-unlearn-lr.
    #[arg(long = "stop-iter", alias = "stop_iter")]
    stop_iter: Option<usize>,
    /// Gan, class-wise: the defender's lr after --stop-iter.
    #[arg(long = "stop-unlearn-lr", alias = "stop_unlearn_lr")]
    stop_unlearn_lr: Option<f64>,
    /// The method's α: FT_l1's ℓ1 weight (default 5e-4), FF's noise scale, IU's step size,
    /// SCRUB's KL weight (defaults in `--help`'s method list).
    #[arg(long)]
    alpha: Option<f64>,
    /// Final epochs of FT_l1 without the ℓ1 term.
    #[arg(long = "no-l1-epochs", alias = "no_l1_epochs", default_value_t = 0)]
    no_l1_epochs: usize,
    /// Batch size.
    #[arg(long = "batch_size", alias = "batch-size", default_value_t = 256)]
    batch_size: usize,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Weight decay.
    #[arg(long = "weight_decay", alias = "weight-decay", default_value_t = 5e-4)]
    weight_decay: f64,
    /// Comma-separated MultiStepLR milestones of the iterative baselines.
    #[arg(
        long = "decreasing_lr",
        alias = "decreasing-lr",
        default_value = "91,136"
    )]
    decreasing_lr: String,
    /// Gan: start from this pre-trained attacker instead of pre-training (or reusing a cached one).
    #[arg(long)]
    attacker: Option<PathBuf>,
    /// Gan: attacker pre-training iterations.
    #[arg(
        long = "attacker_iters",
        alias = "attacker-iters",
        default_value_t = 1000
    )]
    attacker_iters: usize,
    /// Augment the forget/val streams: auto (reference: only class-wise), on, off.
    #[arg(
        long = "forget_augment",
        alias = "forget-augment",
        default_value = "auto"
    )]
    forget_augment: String,
    /// Output folder.
    #[arg(long = "save_dir", alias = "save-dir")]
    save_dir: PathBuf,
    /// Mixed precision of the plain classification losses (FT, GA, FT_l1, FT_prune, retrain,
    /// Gan's L_cls): off (FP32, the reference) or bf16 (CUDA). Gan's attacker inputs stay FP32.
    #[arg(long, value_enum, default_value = "off")]
    amp: crate::device::Amp,
    /// Gan: keep the graphs of D's attacker-input passes until the defender's backward (as the
    /// reference; ≈ 32 GB for ResNet-18 at batch 256) or recompute them one pass at a time
    /// (≈ 12 GB, ≈ 1/3 more defender compute, the same gradient; glibc then returns freed
    /// memory to the OS, unlike the default).
    #[arg(
        long = "gan_memory",
        alias = "gan-memory",
        value_enum,
        default_value = "keep"
    )]
    gan_memory: crate::unlearn::gan::GanMemory,
    /// SalUn: fraction of all parameter entries in the saliency mask; SalUn_soft: the rank
    /// fraction of its proximal threshold.
    #[arg(long = "mask_ratio", alias = "mask-ratio", default_value_t = UnlearnConfig::default().mask_ratio)]
    mask_ratio: f64,
    /// SalUn: mask only the gradient, as the paper's code before its "Fix weight decay" commit
    /// (weight decay and momentum then still move weights outside the mask).
    #[arg(long = "salun_legacy", alias = "salun-legacy")]
    salun_legacy: bool,
    /// FF: the reference's literal class-wise rule (only CIFAR-10 with 4 500 or CIFAR-100 with
    /// 450 forgotten samples; in random forgetting it zeroes the last class's row).
    #[arg(long = "fisher_reference_rule", alias = "fisher-reference-rule")]
    fisher_reference_rule: bool,
    /// BS: the FGSM step (L∞ bound, pixels in [0, 1]) that finds the nearest wrong class.
    #[arg(long = "fgsm_step", alias = "fgsm-step", default_value_t = UnlearnConfig::default().fgsm_step)]
    fgsm_step: f64,
    /// SCRUB: distillation temperature.
    #[arg(long = "kd_T", alias = "kd-T", alias = "kd_t", default_value_t = UnlearnConfig::default().kd_t)]
    kd_t: f64,
    /// SCRUB: weight γ of the retain cross-entropy in the min pass.
    #[arg(long = "gamma", default_value_t = UnlearnConfig::default().scrub_gamma)]
    gamma: f64,
    /// SCRUB: the first `msteps` epochs start with a max pass over the forget set.
    #[arg(long, default_value_t = UnlearnConfig::default().msteps)]
    msteps: usize,
    /// SCRUB: comma-separated epochs after which the lr is multiplied by --lr_decay_rate.
    #[arg(
        long = "lr_decay_epochs",
        alias = "lr-decay-epochs",
        default_value = "3,5,9"
    )]
    lr_decay_epochs: String,
    /// SCRUB: lr decay factor.
    #[arg(long = "lr_decay_rate", alias = "lr-decay-rate", default_value_t = UnlearnConfig::default().lr_decay_rate)]
    lr_decay_rate: f64,
    /// SCRUB: batch size of the max pass over the forget set.
    #[arg(long = "forget_batch_size", alias = "forget-batch-size", alias = "del_batch_size", default_value_t = UnlearnConfig::default().forget_batch_size)]
    forget_batch_size: usize,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Run folders, each with eval_result.json.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The Retrain run to compare against (default: the runs whose method is retrain).
    #[arg(long)]
    retrain: Option<PathBuf>,
    /// Where report.md, report.csv and the figures go (default: the current folder).
    #[arg(long, short = 'o', default_value = ".")]
    out: PathBuf,
    /// Accepted as on every command and checked; a report reads JSON and draws on the CPU.
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(Args, Debug)]
struct VerifyAuditArgs {
    /// The unlearning run folder holding audit.json.
    run_dir: PathBuf,
    /// Accepted as on every command and checked; verifying reads files on the CPU.
    #[arg(long, default_value = "auto")]
    device: String,
}

/// Parses the command line and runs the command.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(args) => run_train(args),
        Command::Demo(args) => run_demo(args),
        Command::Info(args) => run_info(args),
        Command::Unlearn(args) => run_unlearn(*args),
        Command::Eval(args) => run_eval(args),
        Command::VerifyAudit(args) => {
            parse_device(&args.device)?;
            crate::audit::print_checks(&args.run_dir)
        }
        Command::Prune(args) => crate::prune::run_prune(args),
        Command::ImportTorch(args) => crate::torch_io::run_import_torch(args),
        Command::ExportTorch(args) => crate::torch_io::run_export_torch(args),
        Command::Report(args) => {
            parse_device(&args.device)?;
            let table =
                crate::eval::report::report(&args.runs, args.retrain.as_deref(), &args.out)?;
            println!("{table}");
            Ok(())
        }
        Command::Bench(BenchCommand::Train(args)) => crate::bench::bench_train(&args),
        Command::Bench(BenchCommand::Gan(args)) => crate::bench_gan::bench_gan(&args),
        Command::Bench(BenchCommand::Eval(args)) => {
            crate::bench_eval::bench_eval(&args).map(|_| ())
        }
        Command::Bench(BenchCommand::Mia(args)) => {
            parse_device(&args.device)?;
            let threads = crate::device::thread_count(args.threads);
            println!("{}", crate::eval::bench_mia::bench_mia(args.n, threads)?);
            Ok(())
        }
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

/// The model spec for a data set and architecture; an error when the images are too small
/// for it ([`ModelSpec::check_input_size`]).
pub fn model_spec(ds: &data::DataSet, arch: Arch) -> anyhow::Result<ModelSpec> {
    let spec = ModelSpec {
        arch,
        num_classes: ds.num_classes,
        in_channels: ds.train.channels,
        mean: ds.mean.clone(),
        std: ds.std.clone(),
    };
    spec.check_input_size(ds.train.height, ds.train.width)
        .with_context(|| format!("--arch {arch} on {}", ds.name.cli_name()))?;
    Ok(spec)
}

/// Everything `train` needs, so that `demo` can call it without parsing a command line.
pub struct TrainJob {
    /// Data set and split seed.
    pub data: DataArgs,
    /// Architecture.
    pub arch: Arch,
    /// Hyper-parameters. `augment: Some(_)` asks for augmentation; which one is the data set's
    /// own choice ([`data::DataSet::default_augment`]), settled once its images are read.
    pub config: TrainConfig,
    /// Output folder.
    pub save_dir: PathBuf,
    /// Continue an interrupted run.
    pub resume: bool,
    /// Device, threads, quiet.
    pub common: Common,
}

fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    let config = TrainConfig {
        amp: args.amp,
        ..args.train.config(args.data.dataset)?
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
        "trained {} on {:?}: best val {:.2}% , test {:.2}% -> {}",
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
    let ds = job.data.load()?;
    // An image folder's augmentation depends on its images, known only now.
    let config = TrainConfig {
        augment: job.config.augment.map(|_| ds.default_augment()),
        ..job.config.clone()
    };
    let splits = make_splits(
        &ds,
        &SplitConfig {
            val_set_seed: job.data.val_set_seed,
            seed: 1,
            forget: ForgetRequest::None,
        },
    )?;
    tch::manual_seed(config.seed as i64);
    let spec = model_spec(&ds, job.arch)?;
    let model = Classifier::new(&spec, device);
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
            "test_subset": job.data.test_subset,
        }),
    };
    std::fs::create_dir_all(&job.save_dir)
        .with_context(|| format!("creating {}", job.save_dir.display()))?;
    let output = RunOutput {
        save_dir: job.save_dir.clone(),
        info,
        resume: job.resume,
        quiet: job.common.quiet,
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
    let eval = |set: &data::ImageSet, idx: &[usize]| {
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

fn run_info(args: InfoArgs) -> anyhow::Result<()> {
    let device = args.device.parse()?;
    let ckpt = checkpoint::load(&args.checkpoint, device)?;
    let info = &ckpt.info;
    println!(
        "checkpoint   {} (loaded on {})",
        ckpt.path.display(),
        device_name(device)
    );
    println!(
        "architecture {}, {} classes, {} input channels",
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
    demo_train_config(args.epochs).validate()?;
    let digits = DataArgs {
        dataset: DatasetName::Digits,
        data: None,
        val_set_seed: 1,
        train_subset: None,
        test_subset: None,
    };
    let original = args.save_dir.join("original");
    let job = TrainJob {
        data: digits.clone(),
        arch: Arch::Resnet20,
        config: demo_train_config(args.epochs),
        save_dir: original.clone(),
        resume: false,
        common: args.common.clone(),
    };
    println!(
        "demo 1/3: training ResNet-20 on the embedded digits data ({} epochs) -> {}",
        args.epochs,
        original.display()
    );
    let info = run_train_job(&job)?;
    println!(
        "original model: train {:.2}%, val {:.2}%, test {:.2}%\n",
        info.accuracy["train"], info.accuracy["val"], info.accuracy["test"]
    );
    // Scaled-down versions of the reference runs: digits has 1 297 train images, so batch 64
    // and fewer epochs; Retrain repeats the original schedule on the retain set.
    let scenarios = [
        ("class-wise (whole class 3)", "classwise", Some(3), false),
        ("random 10 %", "random", None, true),
    ];
    for (n, (title, dir, class, random)) in scenarios.into_iter().enumerate() {
        println!("demo {}/3: {title} forgetting", n + 2);
        let forget = ForgetArgs {
            class_to_replace: class,
            num_indexes_to_replace: None,
            indexes_to_replace: random,
            forget_fraction: 0.1,
            seed: 2,
        };
        let mut runs = Vec::new();
        for method in crate::unlearn::registry() {
            let name = method.name();
            if name == "FT_prune" {
                continue; // the same method as FT_l1 under the reference's other name
            }
            // Each method's own defaults, with at most 5 epochs on this small data set; Retrain
            // repeats the original schedule, and Gan uses the seed document's class-wise lr.
            let (default_lr, default_epochs) = method.defaults();
            let (lr, epochs) = match (name, random) {
                ("retrain", _) => (0.1, args.epochs),
                ("Gan", false) => (0.02, 3),
                _ => (default_lr, default_epochs.min(5)),
            };
            let save_dir = args.save_dir.join(dir).join(name);
            let job = UnlearnJob {
                model: original.clone(),
                method: name.into(),
                data: digits.clone(),
                forget: forget.clone(),
                config: UnlearnConfig {
                    lr: Some(lr),
                    epochs: Some(epochs),
                    batch_size: 64,
                    milestones: demo_train_config(args.epochs).milestones,
                    stop_iter: Some(30),
                    stop_unlearn_lr: Some(0.01),
                    attacker_iters: 100,
                    ..UnlearnConfig::default()
                },
                save_dir: save_dir.clone(),
                common: Common {
                    quiet: true,
                    ..args.common.clone()
                },
                num_classes: None,
            };
            let result = run_unlearn_job(&job)?;
            print_result(&result);
            runs.push(save_dir);
        }
        let out = args.save_dir.join(dir);
        let table = crate::eval::report::report(&runs, None, &out)?;
        println!(
            "\n{title} forgetting on digits (report in {}):\n\n{table}\n",
            out.join("report.md").display()
        );
    }
    Ok(())
}

fn demo_train_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        lr: 0.1,
        batch_size: 64,
        milestones: vec![epochs / 2, epochs * 3 / 4],
        augment: Some(DatasetName::Digits.default_augment()),
        ..TrainConfig::default()
    }
}

/// The model, data and splits an `unlearn` or `eval` run works on.
struct Loaded {
    ckpt: checkpoint::Checkpoint,
    ds: data::DataSet,
    splits: crate::data::splits::Splits,
    request: ForgetRequest,
    device: tch::Device,
}

fn load_for_run(
    model: &std::path::Path,
    data_args: &DataArgs,
    forget: &ForgetArgs,
    common: &Common,
    num_classes: Option<usize>,
) -> anyhow::Result<Loaded> {
    set_threads(common.threads);
    let device = parse_device(&common.device)?;
    let request = forget.request()?;
    // The seed document's commands pass the reference's `.pth.tar` to --mask: read it directly.
    let ckpt = if crate::torch_io::is_torch_file(model) {
        crate::torch_io::load_torch_checkpoint(model, data_args.dataset, num_classes, device)?
    } else {
        checkpoint::load(model, device)?
    };
    if ckpt.info.dataset != data_args.dataset {
        anyhow::bail!(
            "--dataset {} but {} was trained on {}: pass --dataset {}",
            data_args.dataset.cli_name(),
            ckpt.path.display(),
            ckpt.info.dataset.cli_name(),
            ckpt.info.dataset.cli_name()
        );
    }
    if let Some(c) = num_classes.filter(|&c| c != ckpt.info.model.num_classes) {
        anyhow::bail!(
            "--num_classes {c} but {} has {} classes",
            ckpt.path.display(),
            ckpt.info.model.num_classes
        );
    }
    let trained_subset = ckpt
        .info
        .extra
        .get("train_subset")
        .and_then(|v| v.as_u64())
        .map(|n| n as usize);
    if ckpt.info.extra.get("train_subset").is_some() && trained_subset != data_args.train_subset {
        anyhow::bail!(
            "{} was trained with --train_subset {:?}, this run has {:?}: pass the same value so the splits match",
            ckpt.path.display(),
            trained_subset,
            data_args.train_subset
        );
    }
    let ds = data_args.load()?;
    if ds.num_classes != ckpt.info.model.num_classes
        || ds.train.channels != ckpt.info.model.in_channels
    {
        anyhow::bail!(
            "{} expects {} classes and {} channels; the data has {} and {}",
            ckpt.path.display(),
            ckpt.info.model.num_classes,
            ckpt.info.model.in_channels,
            ds.num_classes,
            ds.train.channels
        );
    }
    ckpt.info
        .model
        .check_input_size(ds.train.height, ds.train.width)
        .with_context(|| format!("{} on {}", ckpt.path.display(), ds.name.cli_name()))?;
    let seed =
        u32::try_from(forget.seed).context("--seed must fit in 32 bits (NumPy RandomState)")?;
    let splits = make_splits(
        &ds,
        &SplitConfig {
            val_set_seed: data_args.val_set_seed,
            seed,
            forget: request.clone(),
        },
    )?;
    Ok(Loaded {
        ckpt,
        ds,
        splits,
        request,
        device,
    })
}

fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    let run = load_for_run(&args.model, &args.data, &args.forget, &args.common, None)?;
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
        seed: args.forget.seed,
        rte_seconds: 0.0,
        batch_size: args.batch_size,
        device: run.device,
        config: serde_json::json!({ "command": "eval", "model": run.ckpt.path, "val_set_seed": args.data.val_set_seed }),
    })?;
    let out = args.save_dir.join("eval_result.json");
    crate::fsutil::write_json_atomic(&out, &result)?;
    print_result(&result);
    println!("-> {}", out.display());
    Ok(())
}

fn print_result(r: &EvalResult) {
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    println!(
        "{}: UA {}  MIA-efficacy {}  RA {:.2}  TA {:.2}  (train {:.2}, val {:.2}; RTE {:.1}s)",
        r.method,
        opt(r.ua),
        opt(r.mia_efficacy),
        r.ra,
        r.ta,
        r.accuracy.train,
        r.accuracy.val,
        r.rte_seconds
    );
}

/// Everything `unlearn` needs, so that `demo` can run it without a command line.
pub struct UnlearnJob {
    /// Checkpoint to start from.
    pub model: PathBuf,
    /// Method name.
    pub method: String,
    /// Data set and validation seed.
    pub data: DataArgs,
    /// Forget request and seed.
    pub forget: ForgetArgs,
    /// Hyper-parameters.
    pub config: UnlearnConfig,
    /// Output folder.
    pub save_dir: PathBuf,
    /// Device, threads, quiet.
    pub common: Common,
    /// Expected class count, if given.
    pub num_classes: Option<usize>,
}

fn run_unlearn(args: UnlearnArgs) -> anyhow::Result<()> {
    let forget_augment = match args.forget_augment.as_str() {
        "auto" => None,
        "on" => Some(true),
        "off" => Some(false),
        other => anyhow::bail!("--forget_augment {other:?}: expected auto, on or off"),
    };
    let config = UnlearnConfig {
        lr: args.unlearn_lr,
        epochs: args.unlearn_epochs,
        batch_size: args.batch_size,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        milestones: parse_milestones(&args.decreasing_lr)?,
        alpha: args.alpha,
        no_l1_epochs: args.no_l1_epochs,
        stop_iter: args.stop_iter,
        stop_unlearn_lr: args.stop_unlearn_lr,
        attacker_iters: args.attacker_iters,
        attacker: args.attacker,
        forget_augment,
        seed: args.forget.seed,
        amp: args.amp,
        gan_memory: args.gan_memory,
        mask_ratio: args.mask_ratio,
        salun_legacy: args.salun_legacy,
        fisher_reference_rule: args.fisher_reference_rule,
        fgsm_step: args.fgsm_step,
        kd_t: args.kd_t,
        scrub_gamma: args.gamma,
        msteps: args.msteps,
        lr_decay_epochs: parse_milestones(&args.lr_decay_epochs).context("--lr_decay_epochs")?,
        lr_decay_rate: args.lr_decay_rate,
        forget_batch_size: args.forget_batch_size,
    };
    let job = UnlearnJob {
        model: args.model,
        method: args.unlearn,
        data: args.data,
        forget: args.forget,
        config,
        save_dir: args.save_dir,
        common: args.common,
        num_classes: args.num_classes,
    };
    if job.config.gan_memory == crate::unlearn::gan::GanMemory::Recompute
        && crate::device::keep_freed_memory(false)
    {
        // Kept freed buffers fragment between the graph-less and the recomputed passes (ResNet-18
        // at B = 256 on the CPU: 23 GB peak instead of 12 GB); asking for less memory means
        // letting glibc return them, at the cost of page faults.
        tracing::info!("--gan_memory recompute: glibc returns freed memory to the OS");
    }
    let result = run_unlearn_job(&job)?;
    print_result(&result);
    println!("-> {}", job.save_dir.display());
    Ok(())
}

/// Unlearns per `job`; writes `model.*`, `unlearn_log.csv`, `eval_result.json` and, last,
/// `audit.json` in its folder.
pub fn run_unlearn_job(job: &UnlearnJob) -> anyhow::Result<EvalResult> {
    let method = crate::unlearn::find(&job.method)?;
    job.config.validate()?;
    let run = load_for_run(
        &job.model,
        &job.data,
        &job.forget,
        &job.common,
        job.num_classes,
    )?;
    if run.splits.forget.is_empty() && method.name() != "raw" {
        anyhow::bail!("nothing to forget: pass --class_to_replace K [--num_indexes_to_replace N] or --indexes_to_replace");
    }
    std::fs::create_dir_all(&job.save_dir)
        .with_context(|| format!("creating {}", job.save_dir.display()))?;
    let audit_inputs = crate::audit::begin(&job.save_dir, &run.ckpt.path, &job.data)?;
    let ctx = UnlearnContext {
        model: &run.ckpt.model,
        mask: run.ckpt.mask.as_ref(),
        data: &run.ds,
        train_set: Arc::new(run.ds.train.clone()),
        splits: &run.splits,
        config: &job.config,
        device: run.device,
        quiet: job.common.quiet,
        model_path: run.ckpt.path.clone(),
        save_dir: job.save_dir.clone(),
        class_wise: matches!(run.request, ForgetRequest::Class { .. }),
    };
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
        "test_subset": job.data.test_subset,
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
        rte_seconds,
        batch_size: 512,
        device: run.device,
        config,
    })?;
    result
        .timings
        .extend(log.excluded_seconds.iter().map(|(k, v)| (k.clone(), *v)));
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
    let audit = crate::audit::build(
        &job.save_dir,
        audit_inputs,
        &job.data,
        &job.forget,
        &run.splits.forget,
        &result,
    )?;
    crate::audit::write(&job.save_dir, &audit)?;
    Ok(result)
}
