//! The `gunlearn` command line: flag structs that turn into the plain job configs of
//! [`crate::jobs`], and the dispatch. Flag names follow the reference (`--batch_size`);
//! hyphenated aliases are accepted. Defaults come from the configs' `Default`s.

use crate::checkpoint;
use crate::data::DatasetName;
use crate::device::{device_name, parse_device};
use crate::jobs::demo::DemoJob;
use crate::jobs::eval::EvalJob;
use crate::jobs::train::TrainJob;
use crate::jobs::unlearn::UnlearnJob;
use crate::jobs::{result_line, DataConfig, ForgetConfig, Runner, DEFAULT_ARCH};
use crate::model::{Arch, Layout};
use crate::prune::{PruneJob, PruneMethod, PruneType};
use crate::torch_io::{ExportTorchJob, ImportOptions, ImportTorchJob};
use crate::train::TrainConfig;
use crate::unlearn::UnlearnConfig;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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
    /// Run a grid of scenarios × seeds × methods (a TOML sweep file) into one folder, resumably.
    Sweep(SweepArgs),
    /// Per-example forgetting audit: F, F_null, final score and U-LiRA per method,
    /// against a cached pool of retrained models.
    Audit(AuditArgs),
    /// Run one job of a sweep from its job.json (what `sweep` and its Slurm tasks call).
    #[command(name = "run-job")]
    RunJob(RunJobArgs),
    /// Recompute every hash in a run folder's audit.json and say what no longer matches.
    #[command(name = "verify-audit")]
    VerifyAudit(VerifyAuditArgs),
    /// Prune: OMP, IMP, SynFlow or random, with rewinding.
    Prune(PruneArgs),
    /// Convert a PyTorch checkpoint (torch.save or safetensors state dict, pruned or not) to ours.
    #[command(name = "import-torch")]
    ImportTorch(ImportTorchArgs),
    /// Write our checkpoint as PyTorch state-dict weights (.safetensors or .pt).
    #[command(name = "export-torch")]
    ExportTorch(ExportTorchArgs),
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
    #[arg(long, default_value_t = Runner::default().device)]
    pub device: String,
    /// libtorch intra-op threads (default: all cores).
    #[arg(long, value_parser = crate::device::parse_threads)]
    pub threads: Option<usize>,
    /// No progress bars; log lines only.
    #[arg(long)]
    pub quiet: bool,
    /// How the classifier stores activations: auto (channels-last on the CPU, where libtorch's
    /// convolutions run faster on it; N×C×H×W on a GPU), nchw (the reference's kernels: its
    /// results to the last bits), channels-last. The values are the same up to summation order.
    #[arg(long, value_enum, default_value_t = Layout::Auto)]
    pub layout: Layout,
}

/// `--device` alone, for the commands that only load, convert or write a checkpoint.
#[derive(Args, Debug, Clone)]
pub struct DeviceFlag {
    /// Where the checkpoint's tensors are loaded: auto (first GPU if any, else CPU), cpu,
    /// cuda or cuda:N.
    #[arg(long, default_value_t = Runner::default().device)]
    pub device: String,
}

/// Where the data comes from and how it is split.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Data set.
    #[arg(long, value_enum, default_value_t = DataConfig::default().dataset)]
    pub dataset: DatasetName,
    /// Folder with the data set's files (not needed for digits).
    #[arg(long = "data", alias = "data_dir", alias = "data-dir")]
    pub data: Option<PathBuf>,
    /// Seed of the validation split.
    #[arg(long = "val_set_seed", alias = "val-set-seed", default_value_t = DataConfig::default().val_set_seed)]
    pub val_set_seed: u32,
    /// Use only the first N official training images (file order) — for scaled-down runs.
    #[arg(long = "train_subset", alias = "train-subset")]
    pub train_subset: Option<usize>,
    /// Use only the first N official test images (file order) — for scaled-down runs.
    #[arg(long = "test_subset", alias = "test-subset")]
    pub test_subset: Option<usize>,
    /// Hold out this fraction of each class's training images as the selection split, which no
    /// method, Retrain or attacker reads (`report --select` chooses settings on it); 0: none.
    #[arg(long = "selection_fraction", alias = "selection-fraction", default_value_t = DataConfig::default().selection_fraction)]
    pub selection_fraction: f64,
}

impl DataArgs {
    /// The data configuration these flags describe.
    pub fn config(&self) -> DataConfig {
        DataConfig {
            dataset: self.dataset,
            data: self.data.clone(),
            val_set_seed: self.val_set_seed,
            train_subset: self.train_subset,
            test_subset: self.test_subset,
            selection_fraction: self.selection_fraction,
        }
    }
}

impl Common {
    /// The runner these flags describe.
    pub fn runner(&self) -> Runner {
        Runner {
            device: self.device.clone(),
            threads: self.threads,
            quiet: self.quiet,
            layout: self.layout,
        }
    }
}

/// Comma-separated epochs (`--decreasing_lr 91,136`); empty entries are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Milestones(pub Vec<usize>);

impl std::str::FromStr for Milestones {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<usize>()
                    .map_err(|_| format!("{s:?} is not an epoch number"))
            })
            .collect::<Result<_, _>>()
            .map(Milestones)
    }
}

impl std::fmt::Display for Milestones {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(usize::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// The training hyper-parameters shared by `train` and `prune` (reference names and defaults).
#[derive(Args, Debug, Clone)]
pub struct TrainFlags {
    /// Epochs.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// Initial learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = TrainConfig::default().momentum)]
    pub momentum: f64,
    /// Weight decay.
    #[arg(long = "weight_decay", alias = "weight-decay", default_value_t = TrainConfig::default().weight_decay)]
    pub weight_decay: f64,
    /// Batch size.
    #[arg(long = "batch_size", alias = "batch-size", default_value_t = TrainConfig::default().batch_size)]
    pub batch_size: usize,
    /// Comma-separated epochs where the lr is multiplied by 0.1.
    #[arg(long = "decreasing_lr", alias = "decreasing-lr", default_value_t = Milestones(TrainConfig::default().milestones))]
    pub decreasing_lr: Milestones,
    /// Epochs of linear warm-up.
    #[arg(long, default_value_t = TrainConfig::default().warmup)]
    pub warmup: usize,
    /// Seed (initialisation, shuffling, augmentation, random pruning).
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Train without augmentation.
    #[arg(long = "no_augment", alias = "no-augment")]
    pub no_augment: bool,
    /// Keep the last epoch's weights as the model (as Retrain's is), not the best by validation.
    #[arg(long = "keep_last", alias = "keep-last")]
    pub keep_last: bool,
}

impl TrainFlags {
    /// The training configuration these flags describe, with `dataset`'s augmentation (for an
    /// image folder the size-blind choice: the train and prune jobs settle it from the images).
    pub fn config(&self, dataset: DatasetName) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            milestones: self.decreasing_lr.0.clone(),
            warmup: self.warmup,
            seed: self.seed,
            augment: (!self.no_augment).then(|| dataset.default_augment()),
            keep_last: self.keep_last,
            ..TrainConfig::default()
        }
    }
}

#[derive(Args, Debug)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    common: Common,
    /// Architecture.
    #[arg(long, value_enum, default_value_t = DEFAULT_ARCH)]
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
    #[arg(long, value_enum, default_value_t = TrainConfig::default().amp)]
    amp: crate::device::Amp,
}

#[derive(Args, Debug)]
struct DemoArgs {
    #[command(flatten)]
    common: Common,
    /// Output folder for the demo's runs.
    #[arg(long = "save_dir", alias = "save-dir", default_value_os_t = DemoJob::default().save_dir)]
    save_dir: PathBuf,
    /// Training epochs of the original model (and of Retrain) (default: examples/demo.toml's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Only these methods, comma-separated (Retrain and the original always run).
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// Runs at once, one libtorch thread each (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
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
    /// Seconds per adversarial-unlearning iteration, ours vs PyTorch.
    Gan(crate::bench::gan::BenchGanArgs),
    /// Evaluation throughput (softmax outputs, accuracy, MIA features), ours vs PyTorch.
    Eval(crate::bench::eval::BenchEvalArgs),
    /// Every benchmark above with its defaults, then one table of all the ratios (`make bench`).
    All(crate::bench::all::BenchAllArgs),
}

#[derive(Args, Debug)]
struct BenchMiaArgs {
    /// Shadow points.
    #[arg(long, default_value_t = 20_000)]
    n: usize,
    /// Threads of our solver (scikit-learn's libsvm is single-threaded).
    #[arg(long, value_parser = crate::device::parse_threads)]
    threads: Option<usize>,
    /// Accepted as on every command and checked; the SVC solvers on both sides run on the CPU.
    #[arg(long, default_value_t = Runner::default().device)]
    device: String,
}

/// Which samples to forget, with the reference's flag names.
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
    #[arg(long = "forget_fraction", alias = "forget-fraction", default_value_t = ForgetConfig::default().forget_fraction)]
    pub forget_fraction: f64,
    /// Run seed: the forget set is drawn with RandomState(seed − 1).
    #[arg(long, default_value_t = ForgetConfig::default().seed)]
    pub seed: u64,
}

impl ForgetArgs {
    /// The forget configuration these flags describe.
    pub fn config(&self) -> ForgetConfig {
        ForgetConfig {
            class_to_replace: self.class_to_replace,
            num_indexes_to_replace: self.num_indexes_to_replace,
            indexes_to_replace: self.indexes_to_replace,
            forget_fraction: self.forget_fraction,
            seed: self.seed,
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
    #[arg(long = "batch_size", alias = "batch-size", default_value_t = TrainConfig::default().eval_batch_size)]
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
    /// Replace another method's finished run in --save_dir (refused without it).
    #[arg(long)]
    overwrite: bool,
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
    #[arg(long = "no-l1-epochs", alias = "no_l1_epochs", default_value_t = UnlearnConfig::default().no_l1_epochs)]
    no_l1_epochs: usize,
    /// Batch size.
    #[arg(long = "batch_size", alias = "batch-size", default_value_t = UnlearnConfig::default().batch_size)]
    batch_size: usize,
    /// SGD momentum.
    #[arg(long, default_value_t = UnlearnConfig::default().momentum)]
    momentum: f64,
    /// Weight decay.
    #[arg(long = "weight_decay", alias = "weight-decay", default_value_t = UnlearnConfig::default().weight_decay)]
    weight_decay: f64,
    /// Comma-separated MultiStepLR milestones of the iterative baselines.
    #[arg(
        long = "decreasing_lr",
        alias = "decreasing-lr",
        default_value_t = Milestones(UnlearnConfig::default().milestones)
    )]
    decreasing_lr: Milestones,
    /// No augmentation in any stream (for a model trained with --no_augment).
    #[arg(long = "no_augment", alias = "no-augment")]
    no_augment: bool,
    /// Gan: start from this pre-trained attacker instead of pre-training (or reusing a cached one).
    #[arg(long)]
    attacker: Option<PathBuf>,
    /// Gan: attacker pre-training iterations.
    #[arg(
        long = "attacker_iters",
        alias = "attacker-iters",
        default_value_t = UnlearnConfig::default().attacker_iters
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
    #[arg(long, value_enum, default_value_t = UnlearnConfig::default().amp)]
    amp: crate::device::Amp,
    /// Gan: keep the graphs of D's attacker-input passes until the defender's backward (as the
    /// reference; ≈ 32 GB for ResNet-18 at batch 256) with glibc keeping freed memory (fastest,
    /// most memory), recompute them one pass at a time (≈ 12 GB, ≈ 1/3 more defender compute,
    /// the same gradient), or auto: graphs kept unless their estimated peak exceeds the memory
    /// available (GUNLEARN_AVAILABLE_MEMORY_GB overrides what is read from the system); auto
    /// and recompute let glibc return freed memory to the OS.
    #[arg(
        long = "gan_memory",
        alias = "gan-memory",
        value_enum,
        default_value_t = UnlearnConfig::default().gan_memory
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
        default_value_t = Milestones(UnlearnConfig::default().lr_decay_epochs)
    )]
    lr_decay_epochs: Milestones,
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
    /// Per method, keep only the hyper-parameters with the smallest gap to Retrain on held-out
    /// data (UA, MIA-efficacy, RA and the selection split's accuracy — the validation split's
    /// for runs without one; never the test set).
    #[arg(
        long = "select",
        alias = "select-on-validation",
        alias = "select_on_validation",
        alias = "select-on-held-out"
    )]
    select: bool,
    /// Accepted as on every command and checked; a report reads JSON and draws on the CPU.
    #[arg(long, default_value_t = Runner::default().device)]
    device: String,
}

#[derive(Args, Debug)]
struct VerifyAuditArgs {
    /// The unlearning run folder holding audit.json.
    run_dir: PathBuf,
    /// Accepted as on every command and checked; verifying reads files on the CPU.
    #[arg(long, default_value_t = Runner::default().device)]
    device: String,
}

/// `gunlearn prune` (reference flag names; hyphenated aliases accepted).
#[derive(Args, Debug, Clone)]
struct PruneArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    common: Common,
    /// Architecture.
    #[arg(long, value_enum, default_value_t = DEFAULT_ARCH)]
    arch: Arch,
    /// Pruning algorithm.
    #[arg(long, value_enum, default_value_t = prune_defaults().prune)]
    prune: PruneMethod,
    /// Fraction of conv weights to prune (per round for IMP).
    #[arg(long, default_value_t = prune_defaults().rate)]
    rate: f64,
    /// IMP: number of prune-rewind-retrain rounds.
    #[arg(long = "pruning_times", alias = "pruning-times", default_value_t = prune_defaults().pruning_times)]
    pruning_times: usize,
    /// Epoch whose weights `rewind_lt` rewinds to.
    #[arg(long = "rewind_epoch", alias = "rewind-epoch", default_value_t = prune_defaults().rewind_epoch)]
    rewind_epoch: usize,
    /// rewind_lt, lt or pt.
    #[arg(long = "prune_type", alias = "prune-type", value_enum, default_value_t = prune_defaults().prune_type)]
    prune_type: PruneType,
    /// SynFlow rounds.
    #[arg(long = "synflow_rounds", alias = "synflow-rounds", default_value_t = prune_defaults().synflow_rounds)]
    synflow_rounds: usize,
    /// Training hyper-parameters of every state.
    #[command(flatten)]
    train: TrainFlags,
    /// Output folder.
    #[arg(long = "save_dir", alias = "save-dir")]
    save_dir: PathBuf,
    /// Continue an interrupted run in `--save_dir`: finished states (those in `pruning.json`)
    /// are kept, the interrupted one continues from its `last.*` checkpoint.
    #[arg(long)]
    resume: bool,
}

/// The pruning job's reference defaults, for the flags' defaults.
fn prune_defaults() -> PruneJob {
    PruneJob::new(DataConfig::default(), PathBuf::new())
}

/// `gunlearn import-torch FILE.pth[.tar] --arch resnet18 --num_classes C -o CKPT`.
#[derive(Args, Debug, Clone)]
struct ImportTorchArgs {
    /// The PyTorch checkpoint: a `torch.save` file (.pth, .pth.tar, .pt) or a state dict saved
    /// as `.safetensors`.
    input: PathBuf,
    /// Architecture (resnet18, resnet20, vgg16_bn); inferred from the keys when absent.
    #[arg(long)]
    arch: Option<String>,
    /// Number of classes; inferred from the last Linear (`fc.weight`, `classifier.4.weight`)
    /// when absent, checked against it otherwise.
    #[arg(long = "num_classes", alias = "num-classes")]
    num_classes: Option<usize>,
    /// Data set the model was trained on (its normalisation is used when the file has none).
    #[arg(long, value_enum, default_value_t = ImportOptions::default().dataset)]
    dataset: DatasetName,
    /// Derive the mask from the zero weights when the file has no `*_mask` entries (a pruned
    /// model after `torch.nn.utils.prune.remove`).
    #[arg(long = "mask_from_zeros", alias = "mask-from-zeros")]
    mask_from_zeros: bool,
    /// Output: a `.safetensors` file (with its `.json` twin) or a folder (gets `model.*`).
    #[arg(short = 'o', long)]
    output: PathBuf,
    #[command(flatten)]
    device: DeviceFlag,
}

/// `gunlearn export-torch CKPT -o FILE`.
#[derive(Args, Debug, Clone)]
struct ExportTorchArgs {
    /// Our checkpoint: a run folder or a `.safetensors` file.
    checkpoint: PathBuf,
    /// Output: `.safetensors`, or `.pt` / `.pth` / `.pth.tar` / `.bin` for a `torch.save` file.
    #[arg(short = 'o', long)]
    output: PathBuf,
    #[command(flatten)]
    device: DeviceFlag,
}

#[derive(Args, Debug)]
struct SweepArgs {
    /// The sweep file (TOML): dataset, arch, epochs, scenarios, seeds, methods, …
    file: PathBuf,
    /// The sweep folder: one run folder per job, plan.json, the report.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    workers: WorkerFlags,
    /// Write the plan (plan.json, each run's job.json; with --slurm the sbatch scripts) and
    /// list it, without running or submitting anything.
    #[arg(long = "dry-run", alias = "dry_run")]
    dry_run: bool,
    /// With --dry-run: measure per-iteration costs here (a few seconds) and print the CPU time
    /// of the jobs still to run.
    #[arg(long)]
    estimate: bool,
    /// Submit the runs to Slurm as job arrays (one per stage, each after the one before
    /// succeeded) instead of running them here.
    #[arg(long)]
    slurm: bool,
    #[command(flatten)]
    slurm_options: SlurmFlags,
}

#[derive(Args, Debug)]
struct AuditArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Architecture.
    #[arg(long, value_enum, default_value_t = DEFAULT_ARCH)]
    arch: Arch,
    /// The original's and every retrained model's training recipe.
    #[command(flatten)]
    train: TrainFlags,
    /// The forget set: random:N (N samples), random:F (a fraction), class:K or class:K:N.
    #[arg(long)]
    forget: String,
    /// Seed that draws the forget set (the models' seeds are 0…N−1).
    #[arg(long = "forget_seed", alias = "forget-seed", default_value_t = 1)]
    forget_seed: u64,
    /// Comma-separated methods to audit, at their reference settings.
    #[arg(long, value_delimiter = ',', required = true)]
    methods: Vec<String>,
    /// Unlearning epochs of every method (default: each method's reference value).
    #[arg(long = "unlearn_epochs", alias = "unlearn-epochs")]
    unlearn_epochs: Option<usize>,
    /// Batch size of every method.
    #[arg(long = "unlearn_batch_size", alias = "unlearn-batch-size", default_value_t = UnlearnConfig::default().batch_size)]
    unlearn_batch_size: usize,
    /// The adversarial method's attacker pre-training iterations.
    #[arg(long = "attacker_iters", alias = "attacker-iters", default_value_t = UnlearnConfig::default().attacker_iters)]
    attacker_iters: usize,
    /// Models per pool (N); a larger N later reuses the first ones.
    #[arg(long, default_value_t = 32)]
    n: usize,
    /// Bootstrap replicates of the intervals.
    #[arg(long, default_value_t = crate::eval::forgetting::AuditSettings::default().resamples)]
    resamples: usize,
    /// Output folder: audit_result.json, epsilon_<method>.csv, pools/.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    workers: WorkerFlags,
    /// Submit the pool's jobs to Slurm as job arrays instead of running them here; run the
    /// same command without --slurm afterwards to score them.
    #[arg(long)]
    slurm: bool,
    #[command(flatten)]
    slurm_options: SlurmFlags,
}

/// How the local scheduler runs a plan's jobs.
#[derive(Args, Debug)]
struct WorkerFlags {
    /// Jobs run at once (default: one per GPU, else 1).
    #[arg(long)]
    workers: Option<usize>,
    /// libtorch threads per job (default: the cores divided among the workers).
    #[arg(long, value_parser = crate::device::parse_threads)]
    threads: Option<usize>,
    /// Comma-separated GPU indices, one worker each.
    #[arg(long, value_delimiter = ',')]
    gpus: Vec<usize>,
    /// No progress bar; one line per finished job.
    #[arg(long)]
    quiet: bool,
}

impl WorkerFlags {
    /// The scheduler's options.
    fn options(&self) -> crate::sweep::local::LocalOptions {
        crate::sweep::local::LocalOptions {
            workers: self.workers,
            threads: self.threads,
            gpus: self.gpus.clone(),
            quiet: self.quiet,
        }
    }
}

/// sbatch options of every task (with `--slurm`).
#[derive(Args, Debug)]
struct SlurmFlags {
    /// Slurm: partition of every task.
    #[arg(long, requires = "slurm")]
    partition: Option<String>,
    /// Slurm: generic resources of every task (e.g. gpu:1).
    #[arg(long, requires = "slurm")]
    gres: Option<String>,
    /// Slurm: time limit of every task (e.g. 4:00:00).
    #[arg(long, requires = "slurm")]
    time: Option<String>,
    /// Slurm: CPUs of every task (also its libtorch threads).
    #[arg(long = "cpus-per-task", alias = "cpus_per_task", requires = "slurm")]
    cpus_per_task: Option<usize>,
    /// Slurm: memory of every task (e.g. 16G).
    #[arg(long, requires = "slurm")]
    mem: Option<String>,
}

impl SlurmFlags {
    /// The checked sbatch options.
    fn options(self) -> anyhow::Result<crate::slurm::SlurmOptions> {
        let opts = crate::slurm::SlurmOptions {
            partition: self.partition,
            gres: self.gres,
            time: self.time,
            cpus_per_task: self.cpus_per_task,
            mem: self.mem,
            extra: Vec::new(),
        };
        opts.validate()?;
        Ok(opts)
    }
}

#[derive(Args, Debug)]
struct RunJobArgs {
    /// A job.json written by `gunlearn sweep`.
    job: PathBuf,
    /// libtorch intra-op threads (default: all cores).
    #[arg(long, value_parser = crate::device::parse_threads)]
    threads: Option<usize>,
    /// Device: auto, cpu, cuda or cuda:N (default: the job's).
    #[arg(long)]
    device: Option<String>,
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
        Command::Sweep(args) => run_sweep(args),
        Command::RunJob(args) => run_job(args),
        Command::Audit(args) => run_audit(args),
        Command::VerifyAudit(args) => {
            parse_device(&args.device)?;
            crate::audit::print_checks(&args.run_dir)
        }
        Command::Prune(args) => run_prune(args),
        Command::ImportTorch(args) => crate::torch_io::run_import_torch(ImportTorchJob {
            input: args.input,
            options: ImportOptions {
                arch: args
                    .arch
                    .as_deref()
                    .map(Arch::parse)
                    .transpose()
                    .context("--arch")?,
                num_classes: args.num_classes,
                dataset: args.dataset,
                mask_from_zeros: args.mask_from_zeros,
            },
            output: args.output,
            device: args.device.device,
        }),
        Command::ExportTorch(args) => crate::torch_io::run_export_torch(ExportTorchJob {
            checkpoint: args.checkpoint,
            output: args.output,
            device: args.device.device,
        }),
        Command::Report(args) => {
            parse_device(&args.device)?;
            let written = crate::eval::report::report_with(
                &args.runs,
                args.retrain.as_deref(),
                &args.out,
                args.select,
            )?;
            written.log_health();
            println!("{}", written.tables);
            Ok(())
        }
        Command::Bench(BenchCommand::Train(args)) => crate::bench::bench_train(&args).map(|_| ()),
        Command::Bench(BenchCommand::Gan(args)) => crate::bench::gan::bench_gan(&args).map(|_| ()),
        Command::Bench(BenchCommand::All(args)) => crate::bench::all::bench_all(&args),
        Command::Bench(BenchCommand::Eval(args)) => {
            crate::bench::eval::bench_eval(&args).map(|_| ())
        }
        Command::Bench(BenchCommand::Mia(args)) => {
            parse_device(&args.device)?;
            let threads = crate::device::thread_count(args.threads);
            println!("{}", crate::bench::mia::bench_mia(args.n, threads)?);
            Ok(())
        }
    }
}

fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    let job = TrainJob {
        data: args.data.config(),
        arch: args.arch,
        config: TrainConfig {
            amp: args.amp,
            ..args.train.config(args.data.dataset)
        },
        save_dir: args.save_dir,
        resume: args.resume,
        runner: args.common.runner(),
    };
    let info = crate::jobs::train::run(&job)?;
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

fn run_prune(args: PruneArgs) -> anyhow::Result<()> {
    let job = PruneJob {
        data: args.data.config(),
        runner: args.common.runner(),
        arch: args.arch,
        prune: args.prune,
        rate: args.rate,
        pruning_times: args.pruning_times,
        rewind_epoch: args.rewind_epoch,
        prune_type: args.prune_type,
        synflow_rounds: args.synflow_rounds,
        train: args.train.config(args.data.dataset),
        save_dir: args.save_dir,
        resume: args.resume,
    };
    let summary = crate::prune::run(&job)?;
    println!("{}", crate::prune::summary_table(&summary));
    Ok(())
}

fn run_info(args: InfoArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device.device)?;
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

fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    let job = EvalJob {
        model: args.model,
        data: args.data.config(),
        forget: args.forget.config(),
        save_dir: args.save_dir,
        batch_size: args.batch_size,
        runner: args.common.runner(),
    };
    let result = crate::jobs::eval::run(&job)?;
    println!("{}", result_line(&result));
    println!("-> {}", job.save_dir.join("eval_result.json").display());
    Ok(())
}

impl UnlearnArgs {
    /// The unlearning job these flags describe.
    fn job(self) -> anyhow::Result<UnlearnJob> {
        let forget_augment = match self.forget_augment.as_str() {
            "auto" => None,
            "on" => Some(true),
            "off" => Some(false),
            other => anyhow::bail!("--forget_augment {other:?}: expected auto, on or off"),
        };
        let config = UnlearnConfig {
            lr: self.unlearn_lr,
            epochs: self.unlearn_epochs,
            batch_size: self.batch_size,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            milestones: self.decreasing_lr.0,
            alpha: self.alpha,
            no_l1_epochs: self.no_l1_epochs,
            stop_iter: self.stop_iter,
            stop_unlearn_lr: self.stop_unlearn_lr,
            attacker_iters: self.attacker_iters,
            attacker: self.attacker,
            forget_augment,
            seed: self.forget.seed,
            no_augment: self.no_augment,
            amp: self.amp,
            gan_memory: self.gan_memory,
            mask_ratio: self.mask_ratio,
            salun_legacy: self.salun_legacy,
            fisher_reference_rule: self.fisher_reference_rule,
            fgsm_step: self.fgsm_step,
            kd_t: self.kd_t,
            scrub_gamma: self.gamma,
            msteps: self.msteps,
            lr_decay_epochs: self.lr_decay_epochs.0,
            lr_decay_rate: self.lr_decay_rate,
            forget_batch_size: self.forget_batch_size,
        };
        Ok(UnlearnJob {
            model: self.model,
            method: self.unlearn,
            data: self.data.config(),
            forget: self.forget.config(),
            config,
            save_dir: self.save_dir,
            runner: self.common.runner(),
            num_classes: self.num_classes,
            retrain_dir: None,
        })
    }
}

fn run_unlearn(args: UnlearnArgs) -> anyhow::Result<()> {
    let overwrite = args.overwrite;
    let job = args.job()?;
    let method = crate::unlearn::find(&job.method)?.name();
    crate::jobs::unlearn::check_folder_free(&job.save_dir, method, overwrite)?;
    let result = crate::jobs::unlearn::run(&job)?;
    println!("{}", result_line(&result));
    println!("-> {}", job.save_dir.display());
    Ok(())
}

fn run_demo(args: DemoArgs) -> anyhow::Result<()> {
    if args.common.threads.is_some() {
        anyhow::bail!("--threads: the demo runs one thread per run; set --workers instead");
    }
    let demo = crate::jobs::demo::run(&DemoJob {
        save_dir: args.save_dir,
        epochs: args.epochs,
        methods: args.methods,
        workers: args.workers,
        runner: args.common.runner(),
    })?;
    println!("\n{}\n{}\n", demo.tables.trim_end(), demo.reading);
    if !demo.warnings.is_empty() {
        println!(
            "Health checks ({} kinds, each once; report.md lists them per method, and every \
             run's own are in its eval_result.json):",
            demo.warnings.len()
        );
        for (warning, runs) in &demo.warnings {
            println!(
                "  [{runs} run{}] {warning}",
                if *runs == 1 { "" } else { "s" }
            );
        }
        println!();
    }
    println!(
        "demo finished in {:.0} min {:02.0} s; the report: {}",
        (demo.seconds / 60.0).floor(),
        demo.seconds % 60.0,
        demo.html.display()
    );
    Ok(())
}

fn run_sweep(args: SweepArgs) -> anyhow::Result<()> {
    let spec = crate::sweep::spec::read(&args.file)?;
    let plan = crate::sweep::spec::plan(&spec, &args.out)?;
    let slurm = args.slurm_options.options()?;
    let _lock = crate::lock::FolderLock::acquire(&args.out, "sweep")?;
    plan.write()?;
    if args.slurm {
        let ids = submit_to_slurm(&plan, &slurm, args.dry_run)?;
        if !args.dry_run {
            println!(
                "submitted {} job arrays ({}); when they finish: gunlearn report {}",
                ids.len(),
                ids.join(", "),
                args.out.display()
            );
        }
        return Ok(());
    }
    if args.dry_run {
        for job in &plan.jobs {
            let state = if job.job.is_complete() {
                "complete"
            } else {
                "to run"
            };
            println!("stage {}  {:<8}  {}", job.stage, state, job.name);
        }
        if args.estimate {
            let estimate = crate::sweep::estimate::estimate(&plan)?;
            println!("\n{}", estimate.describe(args.workers.workers.unwrap_or(1)));
        }
        let steps = crate::sweep::steps::steps_table(&plan)?;
        let steps_csv = args.out.join("steps.csv");
        crate::fsutil::write_atomic(&steps_csv, |tmp| {
            std::fs::write(tmp, &steps.csv)
                .with_context(|| format!("writing {}", steps_csv.display()))
        })?;
        println!("\n{}", steps.text);
        println!(
            "{} of {} phases outside ±25 % of the reference's steps{}",
            steps.outside,
            steps.phases,
            if steps.outside > 0 {
                " (schedule = \"reference-steps\" in the sweep file derives them)"
            } else {
                ""
            }
        );
        println!(
            "{} jobs planned in {}",
            plan.jobs.len(),
            args.out.join("plan.json").display()
        );
        return Ok(());
    }
    let outcome = crate::sweep::local::run(&plan, &args.workers.options())?;
    println!(
        "sweep {}: {} run now, {} already complete, {} failed",
        args.out.display(),
        outcome.ran,
        outcome.skipped,
        outcome.failed.len()
    );
    for (name, why) in &outcome.failed {
        println!("  failed {name}: {why}");
    }
    if !outcome.failed.is_empty() {
        anyhow::bail!(
            "{} of {} jobs failed (logs in each run folder's run.log); rerun the same command to retry them",
            outcome.failed.len(),
            plan.jobs.len()
        );
    }
    let written = crate::eval::report::report(std::slice::from_ref(&args.out), None, &args.out)?;
    written.log_health();
    println!(
        "{}\n(report.md, report.csv and report.html in {})",
        written.tables,
        args.out.display()
    );
    Ok(())
}

/// Writes the plan's Slurm scripts and, unless `dry_run`, submits them; returns the job ids.
fn submit_to_slurm(
    plan: &crate::sweep::Plan,
    opts: &crate::slurm::SlurmOptions,
    dry_run: bool,
) -> anyhow::Result<Vec<String>> {
    let exe = std::env::current_exe().context("locating the gunlearn binary")?;
    let stages = crate::sweep::slurm_stages(plan, &exe)?;
    let scripts = crate::slurm::write_scripts(&plan.out, &stages, opts)?;
    for script in &scripts {
        println!("wrote {}", script.display());
    }
    if dry_run {
        return Ok(Vec::new());
    }
    crate::slurm::submit(&scripts)
}

fn run_job(args: RunJobArgs) -> anyhow::Result<()> {
    let mut job = crate::jobs::read_job(&args.job)?;
    if job.is_complete() {
        println!("{} is already complete", job.save_dir().display());
        return Ok(());
    }
    let runner = job.runner_mut();
    if args.threads.is_some() {
        runner.threads = args.threads;
    }
    if let Some(device) = args.device {
        runner.device = device;
    }
    job.run()?;
    println!("{} complete", job.save_dir().display());
    Ok(())
}

fn run_audit(args: AuditArgs) -> anyhow::Result<()> {
    use crate::jobs::forget_audit;
    let data = args.data.config();
    // The training split's size turns random:N into its fraction.
    let ds = data.load()?;
    let splits = crate::data::splits::make_splits(
        &ds,
        &data.split_config(1, crate::data::splits::ForgetRequest::None),
    )?;
    let forget = forget_audit::parse_forget(&args.forget, splits.train.len(), args.forget_seed)?;
    let method_config = UnlearnConfig {
        no_augment: args.train.no_augment,
        epochs: args.unlearn_epochs,
        batch_size: args.unlearn_batch_size,
        attacker_iters: args.attacker_iters,
        ..UnlearnConfig::default()
    };
    let job = forget_audit::AuditJob {
        data,
        forget,
        arch: args.arch,
        train: args.train.config(args.data.dataset),
        methods: args
            .methods
            .iter()
            .map(|m| (m.clone(), method_config.clone()))
            .collect(),
        n: args.n,
        out: args.out.clone(),
        settings: crate::eval::forgetting::AuditSettings {
            resamples: args.resamples,
            ..Default::default()
        },
    };
    let slurm = args.slurm_options.options()?;
    let plan = forget_audit::plan(&job)?;
    plan.write()?;
    if args.slurm {
        let ids = submit_to_slurm(&plan, &slurm, false)?;
        println!(
            "submitted {} job arrays ({}); when they finish, run this command again without \
             --slurm to score them",
            ids.len(),
            ids.join(", ")
        );
        return Ok(());
    }
    let outcome = crate::sweep::local::run(&plan, &args.workers.options())?;
    if !outcome.failed.is_empty() {
        for (name, why) in &outcome.failed {
            println!("  failed {name}: {why}");
        }
        anyhow::bail!(
            "{} pool jobs failed; rerun the same command to retry them",
            outcome.failed.len()
        );
    }
    crate::device::set_threads(args.workers.threads);
    let result = forget_audit::score(&job, &plan, tch::Device::Cpu)?;
    println!("| method | F | F interval | F_null | final score | U-LiRA AUC |\n|---|---|---|---|---|---|");
    for (name, m) in &result.methods {
        println!(
            "| {name} | {:.3} | [{:.3}, {:.3}] | {:.3} | {:.3} | {:.3} |",
            m.f, m.f_interval.lower, m.f_interval.upper, m.f_null, m.final_score, m.ulira.auc
        );
    }
    for (a, b, cmp) in &result.rankings {
        println!("{a} vs {b}: {}", cmp.ranking);
    }
    println!("-> {}", args.out.join("audit_result.json").display());
    Ok(())
}
