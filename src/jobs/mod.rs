//! The jobs the command line and sweeps run: plain configurations (serde data whose `Default` is
//! the reference's values) and one `run` function per job. Nothing here knows about flags; the
//! CLI (`crate::cli`) turns flags into these configs, a sweep (`crate::sweep`) builds them from
//! its grid.

pub mod demo;
pub mod eval;
pub mod forget_audit;
pub mod train;
pub mod unlearn;

use crate::checkpoint::{self, Checkpoint};
use crate::data::splits::{make_splits, ForgetRequest, SplitConfig, Splits};
use crate::data::{self, DatasetName};
use crate::device::{parse_device, set_threads};
use crate::model::{Arch, Layout, ModelSpec};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the data comes from and how it is split (SPEC §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataConfig {
    /// Data set.
    pub dataset: DatasetName,
    /// Folder with the data set's files (not needed for digits).
    pub data: Option<PathBuf>,
    /// Seed of the validation split.
    pub val_set_seed: u32,
    /// Use only the first N official training images (file order).
    pub train_subset: Option<usize>,
    /// Use only the first N official test images (file order).
    pub test_subset: Option<usize>,
    /// Fraction of each class's training images held out as the selection split, which no
    /// method reads (`--selection_fraction`; 0: none, as the reference).
    pub selection_fraction: f64,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: DatasetName::Digits,
            data: None,
            val_set_seed: 1,
            train_subset: None,
            test_subset: None,
            selection_fraction: 0.0,
        }
    }
}

impl DataConfig {
    /// The split settings of a run with this data, `seed` and forget request.
    pub fn split_config(&self, seed: u32, forget: ForgetRequest) -> SplitConfig {
        SplitConfig {
            val_set_seed: self.val_set_seed,
            seed,
            forget,
            selection_fraction: self.selection_fraction,
        }
    }

    /// The set sizes and scenario kind of a run on `ds` (as read with this configuration) for
    /// `forget`: what its methods' optimizer steps follow from.
    pub fn run_shape(
        &self,
        ds: &data::DataSet,
        forget: &ForgetConfig,
    ) -> anyhow::Result<crate::unlearn::schedule::RunShape> {
        let seed = u32::try_from(forget.seed).context("the seed must fit in 32 bits")?;
        let splits = make_splits(ds, &self.split_config(seed, forget.request()?))?;
        Ok(crate::unlearn::schedule::RunShape {
            sizes: crate::unlearn::schedule::SetSizes::of(&splits),
            class_wise: forget.class_to_replace.is_some(),
            dataset: ds.name,
        })
    }

    /// Reads the data set, cut to `train_subset` / `test_subset` if given.
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

/// Which samples to forget (SPEC §1), in the reference's terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForgetConfig {
    /// Class-wise forgetting of this class.
    pub class_to_replace: Option<usize>,
    /// How many samples of that class (`None` or the class size: the whole class, which is
    /// then also removed from the test set).
    pub num_indexes_to_replace: Option<usize>,
    /// Random forgetting of `forget_fraction` of the train split.
    pub indexes_to_replace: bool,
    /// Fraction for random forgetting.
    pub forget_fraction: f64,
    /// Run seed: the forget set is drawn with RandomState(seed − 1).
    pub seed: u64,
}

impl Default for ForgetConfig {
    fn default() -> Self {
        ForgetConfig {
            class_to_replace: None,
            num_indexes_to_replace: None,
            indexes_to_replace: false,
            forget_fraction: 0.1,
            seed: 2,
        }
    }
}

impl ForgetConfig {
    /// The forget request this describes, or an error naming the conflicting flags.
    pub fn request(&self) -> anyhow::Result<ForgetRequest> {
        match (self.class_to_replace, self.indexes_to_replace) {
            (Some(_), true) => anyhow::bail!(
                "--class_to_replace and --indexes_to_replace both given: choose class-wise or random forgetting"
            ),
            (Some(_), false) if self.num_indexes_to_replace == Some(0) => anyhow::bail!(
                "--num_indexes_to_replace 0: forget at least 1 sample (leave it out to forget the whole class)"
            ),
            (Some(class), false) => Ok(ForgetRequest::Class { class, count: self.num_indexes_to_replace }),
            (None, true) if self.num_indexes_to_replace.is_some() => anyhow::bail!(
                "--num_indexes_to_replace counts the samples of --class_to_replace; random forgetting \
                 (--indexes_to_replace) takes its size from --forget_fraction instead"
            ),
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

/// Where and how a job computes: device, libtorch threads, progress bars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Runner {
    /// auto (first GPU if any, else CPU), cpu, cuda or cuda:N.
    pub device: String,
    /// libtorch intra-op threads (`None`: all cores).
    pub threads: Option<usize>,
    /// No progress bars; log lines only.
    pub quiet: bool,
    /// How the classifier stores activations (`auto`: channels-last on the CPU).
    pub layout: Layout,
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            device: "auto".into(),
            threads: None,
            quiet: false,
            layout: Layout::Auto,
        }
    }
}

impl Runner {
    /// Applies the thread count and returns the device (an error naming a bad `--device`).
    pub fn start(&self) -> anyhow::Result<tch::Device> {
        let device = parse_device(&self.device)?;
        set_threads(self.threads);
        Ok(device)
    }
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

/// The model, data and splits an `unlearn` or `eval` run works on.
pub struct Loaded {
    /// The checkpoint (weights, mask, info).
    pub ckpt: Checkpoint,
    /// The data set as read.
    pub ds: data::DataSet,
    /// Train/val/forget/retain/test indices.
    pub splits: Splits,
    /// The forget request.
    pub request: ForgetRequest,
    /// Where the model lives.
    pub device: tch::Device,
}

/// Loads `model` and the data, checks that they belong together and derives the splits.
pub fn load_for_run(
    model: &Path,
    data: &DataConfig,
    forget: &ForgetConfig,
    runner: &Runner,
    num_classes: Option<usize>,
) -> anyhow::Result<Loaded> {
    let device = runner.start()?;
    let request = forget.request()?;
    // The seed document's commands pass the reference's `.pth.tar` to --mask: read it directly.
    let mut ckpt = if crate::torch_io::is_torch_file(model) {
        crate::torch_io::load_torch_checkpoint(model, data.dataset, num_classes, device)?
    } else {
        checkpoint::load(model, device)?
    };
    ckpt.model.layout = runner.layout.resolve(device);
    if ckpt.info.dataset != data.dataset {
        anyhow::bail!(
            "--dataset {} but {} was trained on {}: pass --dataset {}",
            data.dataset.cli_name(),
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
    if ckpt.info.extra.get("train_subset").is_some() && trained_subset != data.train_subset {
        let subset = |n: Option<usize>| match n {
            Some(n) => format!("--train_subset {n}"),
            None => "all training images (no --train_subset)".to_string(),
        };
        anyhow::bail!(
            "{} was trained on {}, this run reads {}: pass the same so the splits match",
            ckpt.path.display(),
            subset(trained_subset),
            subset(data.train_subset)
        );
    }
    let trained_selection = ckpt
        .info
        .extra
        .get("selection_fraction")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    if trained_selection != data.selection_fraction {
        anyhow::bail!(
            "{} was trained with --selection_fraction {trained_selection}, this run has {}: pass \
             the same value so that the selection split stays unseen",
            ckpt.path.display(),
            data.selection_fraction
        );
    }
    let ds = data.load()?;
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
    let splits = make_splits(&ds, &data.split_config(seed, request.clone()))?;
    Ok(Loaded {
        ckpt,
        ds,
        splits,
        request,
        device,
    })
}

/// One line with a run's metrics, as the CLI prints it.
pub fn result_line(r: &crate::eval::result::EvalResult) -> String {
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    format!(
        "{}: UA {}  MIA-efficacy {}  RA {:.2}  TA {:.2}  (train {:.2}, val {:.2}; RTE {:.1}s)",
        r.method,
        opt(r.ua),
        opt(r.mia_efficacy),
        r.ra,
        r.ta,
        r.accuracy.train,
        r.accuracy.val,
        r.rte_seconds
    )
}

/// The architecture `train` and `prune` use when none is given (the reference's).
pub const DEFAULT_ARCH: Arch = Arch::Resnet18;

/// One unit of work of a sweep, as plain data: what `gunlearn run-job` reads from `job.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Train the original model.
    Train(train::TrainJob),
    /// Prune (and retrain) the original model.
    Prune(crate::prune::PruneJob),
    /// Pre-train (or find cached) the adversarial method's attacker for one forget request.
    Attacker(unlearn::UnlearnJob),
    /// One unlearning run (Retrain included).
    Unlearn(unlearn::UnlearnJob),
}

impl Job {
    /// The job's own folder.
    pub fn save_dir(&self) -> &Path {
        match self {
            Job::Train(j) => &j.save_dir,
            Job::Prune(j) => &j.save_dir,
            Job::Attacker(j) | Job::Unlearn(j) => &j.save_dir,
        }
    }

    /// Moves every path of the job under `from` to the same place under `to`: a sweep folder
    /// copied or renamed keeps its jobs pointing inside it. Paths elsewhere (the data, a model
    /// the user gave) stay as they are.
    pub fn rebase(&mut self, from: &Path, to: &Path) {
        let paths: Vec<&mut PathBuf> = match self {
            Job::Train(j) => vec![&mut j.save_dir],
            Job::Prune(j) => vec![&mut j.save_dir],
            Job::Attacker(j) | Job::Unlearn(j) => {
                let mut v = vec![&mut j.save_dir, &mut j.model];
                v.extend(j.retrain_dir.as_mut());
                v.extend(j.config.attacker.as_mut());
                v
            }
        };
        for p in paths {
            if let Ok(rest) = p.strip_prefix(from) {
                *p = to.join(rest);
            }
        }
    }

    /// The runner settings, for a scheduler to override threads and device.
    pub fn runner_mut(&mut self) -> &mut Runner {
        match self {
            Job::Train(j) => &mut j.runner,
            Job::Prune(j) => &mut j.runner,
            Job::Attacker(j) | Job::Unlearn(j) => &mut j.runner,
        }
    }

    /// Whether the job's outputs are all there: a finished run is never redone. Each job writes
    /// its completion mark last, so an interrupted job is never complete. A model that later
    /// jobs read counts only with its weights: a study folder kept without its checkpoints (its
    /// results committed, say) retrains the models it needs and skips the finished runs that
    /// started from the same weights ([`unlearn::started_from`]); a run whose model is absent
    /// or changed is not complete.
    pub fn is_complete(&self) -> bool {
        match self {
            Job::Train(j) => {
                j.save_dir.join("model.safetensors").is_file()
                    && checkpoint::read_info(&j.save_dir.join("model.json")).is_ok_and(|info| {
                        info.accuracy.contains_key("train") && info.accuracy.contains_key("test")
                    })
            }
            Job::Prune(j) => {
                crate::prune::is_complete(j)
                    && crate::prune::final_state_dir(j)
                        .join("model.safetensors")
                        .is_file()
            }
            Job::Attacker(j) => {
                j.save_dir.join(unlearn::ATTACKER_MARK).is_file()
                    && j.save_dir.join(unlearn::ATTACKER_WEIGHTS).is_file()
            }
            Job::Unlearn(j) => {
                unlearn::is_complete(&j.save_dir) && unlearn::started_from(&j.save_dir, &j.model)
            }
        }
    }

    /// Runs the job; its outputs go to [`Job::save_dir`].
    pub fn run(&self) -> anyhow::Result<()> {
        match self {
            Job::Train(j) => train::run(j).map(drop),
            Job::Prune(j) => crate::prune::run(j).map(drop),
            Job::Attacker(j) => unlearn::pretrain_attacker(j).map(drop),
            Job::Unlearn(j) => unlearn::run(j).map(drop),
        }
    }

    /// Short description for progress lines.
    pub fn describe(&self) -> String {
        match self {
            Job::Train(j) => format!("train {} on {}", j.arch, j.data.dataset.cli_name()),
            Job::Prune(j) => format!("prune {:?} {}", j.prune, j.rate),
            Job::Attacker(_) => "attacker pre-training".into(),
            Job::Unlearn(j) => j.method.clone(),
        }
    }
}

/// Reads a `job.json` written by a sweep.
///
/// A sweep writes where its folder was ([`SWEEP_DIR_KEY`]) and how deep the job lies in it
/// ([`SWEEP_DEPTH_KEY`]); the job's paths inside the sweep are moved to where the file is now,
/// so that a copied or renamed sweep folder resumes.
pub fn read_job(path: &Path) -> anyhow::Result<Job> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {}: pass a job.json written by `gunlearn sweep`",
            path.display()
        )
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let planned_in = value
        .get(SWEEP_DIR_KEY)
        .and_then(|v| v.as_str())
        .map(PathBuf::from);
    let depth = value.get(SWEEP_DEPTH_KEY).and_then(|v| v.as_u64());
    let mut job: Job =
        serde_json::from_value(value).with_context(|| format!("parsing {}", path.display()))?;
    if let (Some(from), Some(depth)) = (planned_in, depth) {
        let folder = path.parent().unwrap_or(Path::new(""));
        if let Some(to) = folder.ancestors().nth(depth as usize) {
            job.rebase(&from, to);
        }
    }
    Ok(job)
}

/// The key of a sweep's `job.json` naming the sweep folder it was planned in.
pub const SWEEP_DIR_KEY: &str = "planned_in_sweep";

/// The key of a sweep's `job.json` telling how many folders below the sweep folder it lies.
pub const SWEEP_DEPTH_KEY: &str = "depth_in_sweep";
