//! The sweep file (TOML) and its expansion into a [`Plan`].
//!
//! ```toml
//! dataset = "digits"
//! arch = "resnet20"
//! epochs = 6                      # for the shared trained model
//! scenarios = ["random", "class:3"]
//! seeds = [1, 2]
//! methods = ["FT", "GA", "Gan"]   # or tables with per-method hyper-parameters and grids
//! ```
//! Method tables: `{ name = "FT", unlearn_lr = [0.01, 0.05], unlearn_epochs = 5 }`; a list
//! where one value is expected is a grid over it (for list-valued settings such as
//! `decreasing_lr`, a list of lists); `scenarios = ["class:3"]` limits an entry to some of the
//! sweep's scenarios. `[train]` overrides the trained model's schedule,
//! `[unlearn]` every method's settings, `[prune]` adds a pruning stage; `model = PATH` starts
//! from an existing checkpoint instead of training.

use super::{Plan, PlannedJob};
use crate::data::DatasetName;
use crate::jobs::train::TrainJob;
use crate::jobs::unlearn::UnlearnJob;
use crate::jobs::{DataConfig, ForgetConfig, Job, Runner, DEFAULT_ARCH};
use crate::model::{Arch, Layout};
use crate::prune::PruneJob;
use crate::train::TrainConfig;
use crate::unlearn::schedule::{RunShape, Schedule, Written};
use crate::unlearn::UnlearnConfig;
use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The sweep file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Data set (`digits`, `fashion-mnist`, `cifar10`, …).
    pub dataset: DatasetName,
    /// Folder with the data set's files (not needed for digits).
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// Architecture of the trained model.
    #[serde(default)]
    pub arch: Option<Arch>,
    /// Training epochs of the shared trained model (and Retrain's, unless overridden).
    #[serde(default)]
    pub epochs: Option<usize>,
    /// Start from this checkpoint (run folder, `.safetensors` or the reference's `.pth.tar`)
    /// instead of training one.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Forget requests: `random` (10 %), `random:F`, `class:K`, `class:K:N` (N samples of K).
    pub scenarios: Vec<String>,
    /// Run seeds: the forget set of a random scenario is drawn with RandomState(seed − 1), and
    /// every method is seeded with it.
    pub seeds: Vec<u64>,
    /// Methods: names, or tables with `name` and per-method settings (lists are grids).
    pub methods: Vec<MethodSpec>,
    /// Seed of the validation split.
    #[serde(default)]
    pub val_set_seed: Option<u32>,
    /// Use only the first N official training images.
    #[serde(default)]
    pub train_subset: Option<usize>,
    /// Use only the first N official test images.
    #[serde(default)]
    pub test_subset: Option<usize>,
    /// Hold out this fraction of each class's training images as the selection split, read by
    /// no method, Retrain or attacker (`report --select` chooses on it).
    #[serde(default)]
    pub selection_fraction: Option<f64>,
    /// Overrides of the trained model's schedule (`lr`, `batch_size`, `decreasing_lr`, `seed`, …).
    #[serde(default)]
    pub train: toml::Table,
    /// A pruning stage before unlearning (`prune = "omp"`, `rate`, `rewind_epoch`, …).
    #[serde(default)]
    pub prune: Option<toml::Table>,
    /// Settings of every method (`batch_size`, `attacker_iters`, …), before each method's own.
    #[serde(default)]
    pub unlearn: toml::Table,
    /// How every job's classifier stores activations (`auto`, `nchw`, `channels-last`; as
    /// `--layout`): the same values up to summation order, so not part of a job's identity.
    #[serde(default)]
    pub layout: Layout,
    /// How each method's epochs and phase lengths are set: `as-given` (default) or
    /// `reference-steps` (derived from the set sizes so that every phase keeps the reference's
    /// optimizer steps; [`crate::unlearn::schedule`]).
    #[serde(default)]
    pub schedule: Schedule,
}

/// One entry of `methods`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MethodSpec {
    /// Just the method's name: its reference settings.
    Name(String),
    /// The name and settings; a list value is a grid.
    Table {
        /// Method name.
        name: String,
        /// Settings by flag name (`unlearn_lr`, `unlearn_epochs`, `alpha`, …).
        #[serde(flatten)]
        settings: toml::Table,
    },
}

impl MethodSpec {
    /// The method's name as written.
    pub fn name(&self) -> &str {
        match self {
            MethodSpec::Name(n) | MethodSpec::Table { name: n, .. } => n,
        }
    }
    fn settings(&self) -> toml::Table {
        match self {
            MethodSpec::Name(_) => toml::Table::new(),
            MethodSpec::Table { settings, .. } => settings.clone(),
        }
    }
}

/// A forget request of the sweep, with its folder name.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Folder name: `random0.1`, `class3`, `class3-n100`.
    pub name: String,
    /// The request (seed filled in per run).
    pub forget: ForgetConfig,
}

/// Parses `random`, `random:F`, `class:K` or `class:K:N`.
pub fn parse_scenario(text: &str) -> anyhow::Result<Scenario> {
    let parts: Vec<&str> = text.split(':').map(str::trim).collect();
    let bad = || {
        anyhow::anyhow!(
            "scenarios: {text:?} is not a scenario; write \"random\", \"random:0.1\", \"class:3\" or \"class:3:100\""
        )
    };
    let forget = match parts.as_slice() {
        ["random"] => ForgetConfig {
            indexes_to_replace: true,
            ..ForgetConfig::default()
        },
        ["random", f] => ForgetConfig {
            indexes_to_replace: true,
            forget_fraction: f.parse().map_err(|_| bad())?,
            ..ForgetConfig::default()
        },
        ["class", k] => ForgetConfig {
            class_to_replace: Some(k.parse().map_err(|_| bad())?),
            ..ForgetConfig::default()
        },
        ["class", k, n] => ForgetConfig {
            class_to_replace: Some(k.parse().map_err(|_| bad())?),
            num_indexes_to_replace: Some(n.parse().map_err(|_| bad())?),
            ..ForgetConfig::default()
        },
        _ => return Err(bad()),
    };
    forget
        .request()
        .with_context(|| format!("scenarios: {text:?}"))?;
    let name = match (forget.class_to_replace, forget.num_indexes_to_replace) {
        (Some(k), Some(n)) => format!("class{k}-n{n}"),
        (Some(k), None) => format!("class{k}"),
        _ => format!("random{}", forget.forget_fraction),
    };
    Ok(Scenario { name, forget })
}

/// Flag names accepted for a config's field names (the reference's flags, as on the CLI).
const ALIASES: &[(&str, &str)] = &[
    ("unlearn_lr", "lr"),
    ("unlearn_epochs", "epochs"),
    ("decreasing_lr", "milestones"),
    ("gamma", "scrub_gamma"),
    ("kd_T", "kd_t"),
];

/// `base` with `overrides` applied (keys are field names or their flag aliases), checked by
/// deserialising; `what` names the table in errors.
fn apply<T: serde::Serialize + serde::de::DeserializeOwned>(
    base: &T,
    overrides: &Map<String, Value>,
    what: &str,
) -> anyhow::Result<T> {
    let mut value = serde_json::to_value(base)?;
    let fields = value.as_object_mut().expect("configs serialise to objects");
    for (key, v) in overrides {
        let field = field_name(key);
        if !fields.contains_key(field) {
            let mut known: Vec<&String> = fields.keys().collect();
            known.sort();
            bail!(
                "{what}: unknown key {key:?}; known keys: {}",
                known
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if v.is_null() {
            // TOML's nan and inf have no JSON form; no setting accepts them anyway.
            bail!("{what}: {key} must be a finite number");
        }
        fields.insert(field.to_string(), milestones_from_text(v.clone()));
    }
    serde_json::from_value(value).map_err(|err| {
        // Name the key: the first override that fails on its own.
        let key = overrides.iter().find_map(|(key, v)| {
            let mut one = serde_json::to_value(base).ok()?;
            one[field_name(key)] = milestones_from_text(v.clone());
            serde_json::from_value::<T>(one).is_err().then_some(key)
        });
        match key {
            Some(key) => anyhow::anyhow!("{what}: {key}: {err}"),
            None => anyhow::anyhow!("{what}: {err}"),
        }
    })
}

/// The config field a key names.
fn field_name(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, field)| field)
}

/// `"91,136"` → `[91, 136]` (the CLI's spelling of epoch lists); other values unchanged.
fn milestones_from_text(v: Value) -> Value {
    match &v {
        Value::String(s) if s.split(',').all(|p| p.trim().parse::<usize>().is_ok()) => {
            Value::Array(
                s.split(',')
                    .map(|p| Value::from(p.trim().parse::<usize>().expect("checked")))
                    .collect(),
            )
        }
        _ => v,
    }
}

/// A TOML table as JSON.
fn json_table(table: &toml::Table) -> Map<String, Value> {
    match serde_json::to_value(table).expect("TOML values are JSON values") {
        Value::Object(map) => map,
        _ => unreachable!("a table serialises to an object"),
    }
}

/// Every combination of a method table's settings: a list where the config has a scalar (or a
/// list of lists where it has a list) is a grid axis.
fn grid(
    settings: &Map<String, Value>,
    base: &Map<String, Value>,
) -> anyhow::Result<Vec<Map<String, Value>>> {
    let mut points = vec![Map::new()];
    for (key, value) in settings {
        let field_is_list = base.get(field_name(key)).is_some_and(Value::is_array);
        let values = match value {
            Value::Array(items) if !field_is_list || items.iter().all(Value::is_array) => {
                if items.is_empty() {
                    bail!("{key}: an empty list gives no runs");
                }
                items.clone()
            }
            other => vec![other.clone()],
        };
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut p = p.clone();
                    p.insert(key.clone(), v.clone());
                    p
                })
            })
            .collect();
    }
    Ok(points)
}

/// A setting's value as it appears in a folder name.
fn label_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(label_value).collect::<Vec<_>>().join("_"),
        other => other.to_string(),
    }
}

/// Reads and checks a sweep file.
pub fn read(path: &Path) -> anyhow::Result<SweepSpec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the sweep file {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses a sweep file's text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<SweepSpec> {
    toml::from_str(text)
        .map_err(|e| anyhow::anyhow!("{origin}: {e}"))
        .with_context(|| format!("{origin} is not a valid sweep file"))
}

/// Expands `spec` into the jobs of a sweep in `out`, every setting checked.
pub fn plan(spec: &SweepSpec, out: &Path) -> anyhow::Result<Plan> {
    if spec.scenarios.is_empty() || spec.seeds.is_empty() || spec.methods.is_empty() {
        bail!("scenarios, seeds and methods each need at least one entry");
    }
    let data = DataConfig {
        dataset: spec.dataset,
        data: spec.data.clone(),
        val_set_seed: spec
            .val_set_seed
            .unwrap_or(DataConfig::default().val_set_seed),
        train_subset: spec.train_subset,
        test_subset: spec.test_subset,
        selection_fraction: spec.selection_fraction.unwrap_or(0.0),
    };
    if spec.dataset != DatasetName::Digits && spec.data.is_none() {
        bail!(
            "data: {} needs the folder of its files (data = \"PATH\")",
            spec.dataset.cli_name()
        );
    }
    let mut train_base = TrainConfig {
        augment: Some(spec.dataset.default_augment()),
        ..TrainConfig::default()
    };
    if let Some(epochs) = spec.epochs {
        train_base.epochs = epochs;
    }
    let mut train_over = json_table(&spec.train);
    let no_augment = train_over
        .remove("no_augment")
        .map(|v| {
            v.as_bool()
                .context("train.no_augment: expected true or false")
        })
        .transpose()?
        .unwrap_or(false);
    let mut train_config: TrainConfig = apply(&train_base, &train_over, "[train]")?;
    if no_augment {
        train_config.augment = None;
    }
    train_config.validate().context("[train]")?;

    let runner = Runner {
        quiet: true,
        layout: spec.layout,
        ..Runner::default()
    };
    let mut jobs = Vec::new();
    let (model, model_job): (PathBuf, Option<String>) = match &spec.model {
        Some(path) => {
            if !path.exists() {
                bail!("model: {} does not exist", path.display());
            }
            (path.clone(), None)
        }
        None => {
            let dir = out.join("original");
            jobs.push(PlannedJob {
                name: "original".into(),
                stage: 0,
                needs: vec![],
                job: Job::Train(TrainJob {
                    data: data.clone(),
                    arch: spec.arch.unwrap_or(DEFAULT_ARCH),
                    config: train_config.clone(),
                    save_dir: dir.clone(),
                    resume: true,
                    runner: runner.clone(),
                }),
            });
            (dir, Some("original".into()))
        }
    };
    let (model, model_job) = match &spec.prune {
        None => (model, model_job),
        Some(table) => {
            if spec.model.is_some() {
                bail!("prune: a sweep prunes the model it trains; drop `model` or `[prune]`");
            }
            let base = PruneJob {
                arch: spec.arch.unwrap_or(DEFAULT_ARCH),
                train: train_config.clone(),
                runner: runner.clone(),
                resume: true,
                ..PruneJob::new(data.clone(), out.join("pruned"))
            };
            let mut over = json_table(table);
            for fixed in ["data", "runner", "arch", "train", "save_dir", "resume"] {
                if over.remove(fixed).is_some() {
                    bail!("[prune]: {fixed:?} is set by the sweep, not here");
                }
            }
            let prune: PruneJob = apply(&base, &over, "[prune]")?;
            let state = crate::prune::final_state_dir(&prune);
            jobs.push(PlannedJob {
                name: "pruned".into(),
                stage: 1,
                needs: vec![],
                job: Job::Prune(prune),
            });
            // Pruning trains its own dense state: the separate trained model is not needed.
            jobs.retain(|j| j.name != "original");
            (state, Some("pruned".into()))
        }
    };
    let model_needs: Vec<String> = model_job.into_iter().collect();

    let mut unlearn_over = json_table(&spec.unlearn);
    if no_augment {
        // A model trained without augmentation is unlearned (and retrained) without it.
        unlearn_over
            .entry("no_augment")
            .or_insert(Value::Bool(true));
    }
    let unlearn_base: UnlearnConfig = apply(&UnlearnConfig::default(), &unlearn_over, "[unlearn]")?;
    let base_map = match serde_json::to_value(&unlearn_base)? {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let scenarios = spec
        .scenarios
        .iter()
        .map(|s| parse_scenario(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut names = std::collections::BTreeSet::new();
    for s in &scenarios {
        if !names.insert(s.name.clone()) {
            bail!("scenarios: {} is listed twice", s.name);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for &seed in &spec.seeds {
        if !seen.insert(seed) {
            bail!("seeds: {seed} is listed twice (its runs would share one folder)");
        }
        if seed == 0 {
            bail!(
                "seeds: 0 is not a run seed: the forget set is drawn with RandomState(seed - 1), \
                 as the reference does; use seeds from 1"
            );
        }
        u32::try_from(seed).context("seeds: each must fit in 32 bits (NumPy RandomState)")?;
    }

    // Methods with their grid points, checked once.
    struct Run {
        method: String,
        label: String,
        config: UnlearnConfig,
        /// The scenarios this run is limited to (`None`: all).
        only: Option<Vec<String>>,
        /// The schedule settings written in the file (the rest are derived under
        /// `reference-steps`).
        written: Written,
        /// Gan under `reference-steps`: the derived stop-iter's multiple.
        stop_iter_scale: f64,
    }
    // The schedule settings written in `[unlearn]` or a method's table: not derived.
    let written_in = |keys: &mut dyn Iterator<Item = &String>| {
        let mut w = Written::default();
        for key in keys {
            match field_name(key) {
                "epochs" => w.epochs = true,
                "stop_iter" => w.stop_iter = true,
                "attacker_iters" => w.attacker_iters = true,
                "forget_batch_size" => w.forget_batch_size = true,
                _ => {}
            }
        }
        w
    };
    let mut runs: Vec<Run> = Vec::new();
    let mut retrain_entry: Option<UnlearnConfig> = None;
    for (i, entry) in spec.methods.iter().enumerate() {
        let method = crate::unlearn::find(entry.name()).with_context(|| format!("methods[{i}]"))?;
        let name = method.name().to_string();
        let what = format!("methods[{i}] ({name})");
        let mut settings = json_table(&entry.settings());
        // `scenarios = [...]` in a method's table limits it to those forget requests.
        let only = match settings.remove("scenarios") {
            None => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| {
                        let text = v.as_str().with_context(|| {
                            format!("{what}: scenarios: expected strings like \"class:3\"")
                        })?;
                        let s = parse_scenario(text).with_context(|| what.clone())?;
                        if !scenarios.iter().any(|t| t.name == s.name) {
                            bail!("{what}: scenario {text:?} is not in the sweep's scenarios");
                        }
                        Ok(s.name)
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
            ),
            Some(_) => bail!("{what}: scenarios: expected a list like [\"class:3\"]"),
        };
        let points = grid(&settings, &base_map).with_context(|| what.clone())?;
        // Named in a run's folder in the order of the settings' field names.
        let mut varied: Vec<&String> = settings.keys().collect();
        varied.sort_by_key(|k| field_name(k));
        for mut point in points {
            let scale_value = point.remove("stop_iter_scale");
            let stop_iter_scale = match scale_value.clone() {
                None => 1.0,
                Some(v) => {
                    let scale = v
                        .as_f64()
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .with_context(|| {
                            format!("{what}: stop_iter_scale must be a positive number")
                        })?;
                    if name != "Gan" || spec.schedule != Schedule::ReferenceSteps {
                        bail!(
                            "{what}: stop_iter_scale multiplies the stop-iter that schedule = \
                             \"reference-steps\" derives for Gan; it has no meaning here"
                        );
                    }
                    scale
                }
            };
            let written = written_in(&mut point.keys().chain(unlearn_over.keys()));
            if stop_iter_scale != 1.0 && written.stop_iter {
                bail!("{what}: give stop_iter or stop_iter_scale, not both");
            }
            // Retrain repeats the schedule of the model this sweep trains; from a given
            // checkpoint it keeps the method's reference defaults.
            let retrain_defaults = name == "retrain" && spec.model.is_none();
            let mut base = unlearn_base.clone();
            if retrain_defaults {
                base.lr = Some(train_config.lr);
                base.epochs = Some(train_config.epochs);
                base.milestones = train_config.milestones.clone();
                base.batch_size = train_config.batch_size;
            }
            let config: UnlearnConfig = apply(&base, &point, &what)?;
            if let Some(v) = scale_value {
                point.insert("stop_iter_scale".into(), v);
            }
            config.validate_for(&name).with_context(|| what.clone())?;
            let label = std::iter::once(name.clone())
                .chain(
                    varied
                        .iter()
                        .map(|k| format!("{}{}", field_name(k), label_value(&point[k.as_str()]))),
                )
                .collect::<Vec<_>>()
                .join("-");
            if name == "retrain" {
                if retrain_entry.is_some() {
                    bail!("{what}: Retrain is the reference of every gap; give it one setting");
                }
                retrain_entry = Some(config);
                continue;
            }
            let overlaps = |r: &Run| match (&r.only, &only) {
                (Some(a), Some(b)) => a.iter().any(|x| b.contains(x)),
                _ => true,
            };
            if runs.iter().any(|r| r.label == label && overlaps(r)) {
                bail!("{what}: {label} is listed twice");
            }
            runs.push(Run {
                method: name.clone(),
                label,
                config,
                only: only.clone(),
                written,
                stop_iter_scale,
            });
        }
    }
    let retrain_config = match retrain_entry {
        Some(c) => c,
        None if spec.model.is_some() => unlearn_base.clone(),
        None => {
            let c = UnlearnConfig {
                lr: Some(train_config.lr),
                epochs: Some(train_config.epochs),
                milestones: train_config.milestones.clone(),
                batch_size: train_config.batch_size,
                ..unlearn_base.clone()
            };
            c.validate().context("[unlearn] (for Retrain)")?;
            c
        }
    };

    let unlearn_job =
        |config: &UnlearnConfig, method: &str, forget: &ForgetConfig, dir: PathBuf| UnlearnJob {
            model: model.clone(),
            method: method.into(),
            data: data.clone(),
            forget: forget.clone(),
            config: UnlearnConfig {
                seed: forget.seed,
                ..config.clone()
            },
            save_dir: dir,
            runner: runner.clone(),
            num_classes: None,
            retrain_dir: None,
        };
    // Every forget request is drawn here once, so that one the data set cannot give (a class
    // it lacks, more samples than the class has) is refused before any work; the set sizes
    // also give the reference-steps schedule.
    // Without the data at hand (a dry run on another machine), what the data set's kind
    // tells is checked; a schedule derived from the set sizes needs the data itself.
    let ds =
        match (data.load(), spec.schedule) {
            (Ok(ds), _) => Some(ds),
            (Err(e), Schedule::ReferenceSteps) => return Err(e.context(
                "schedule = \"reference-steps\" reads the data set to derive each phase's steps",
            )),
            (Err(_), Schedule::AsGiven) => None,
        };
    for s in &scenarios {
        let class = s.forget.class_to_replace;
        if let (Some(k), Some(n)) = (class, spec.dataset.known_num_classes()) {
            if k >= n {
                bail!(
                    "scenarios: {}: {} has {n} classes (0 to {}); no class {k} to forget",
                    s.name,
                    spec.dataset.cli_name(),
                    n - 1
                );
            }
        }
    }
    let schedule_of = |run: &Run, shape: &Option<RunShape>| -> anyhow::Result<UnlearnConfig> {
        let (Schedule::ReferenceSteps, Some(shape)) = (spec.schedule, shape) else {
            return Ok(run.config.clone());
        };
        let config = crate::unlearn::schedule::reference_steps(
            &run.method,
            &run.config,
            shape,
            run.written,
            run.stop_iter_scale,
        );
        config
            .validate_for(&run.method)
            .with_context(|| format!("{} (derived schedule)", run.label))?;
        Ok(config)
    };
    // One attacker job per seed and distinct pre-training: forget requests whose attacker
    // reads the same members, non-members and augmentation share it.
    let mut attackers: BTreeMap<(u64, String), String> = BTreeMap::new();
    let mut method_jobs = Vec::new();
    // Seed by seed, so that a study stopped part-way (the scheduler finishes the runs of one
    // request before it starts the next) holds every scenario at the first seeds.
    for &seed in &spec.seeds {
        for scenario in &scenarios {
            let forget = ForgetConfig {
                seed,
                ..scenario.forget.clone()
            };
            let class_wise = forget.class_to_replace.is_some();
            let base = format!("runs/{}/seed{seed}", scenario.name);
            let shape = ds
                .as_ref()
                .map(|ds| data.run_shape(ds, &forget))
                .transpose()
                .with_context(|| {
                    format!(
                        "scenarios: {} (seed {seed}) on {}",
                        scenario.name,
                        spec.dataset.cli_name()
                    )
                })?;
            let retrain_name = format!("{base}/retrain");
            let retrain_dir = out.join(&retrain_name);
            jobs.push(PlannedJob {
                name: retrain_name.clone(),
                stage: 2,
                needs: model_needs.clone(),
                job: Job::Unlearn(unlearn_job(
                    &retrain_config,
                    "retrain",
                    &forget,
                    retrain_dir.clone(),
                )),
            });
            let in_scenario = |r: &&Run| r.only.as_ref().is_none_or(|o| o.contains(&scenario.name));
            let mut here = 0;
            for run in runs.iter().filter(in_scenario) {
                let config = schedule_of(run, &shape)?;
                let name = format!("{base}/{}", run.label);
                let mut job = unlearn_job(&config, &run.method, &forget, out.join(&name));
                job.retrain_dir = Some(retrain_dir.clone());
                let mut needs = model_needs.clone();
                needs.push(retrain_name.clone());
                if run.method == "Gan" && config.attacker.is_none() {
                    let key = (seed, attacker_key(&config, class_wise)?);
                    if !attackers.contains_key(&key) {
                        let attacker = if here == 0 {
                            format!("attackers/{}/seed{seed}", scenario.name)
                        } else {
                            format!("attackers/{}/seed{seed}-{here}", scenario.name)
                        };
                        here += 1;
                        jobs.push(PlannedJob {
                            name: attacker.clone(),
                            stage: 2,
                            needs: model_needs.clone(),
                            job: Job::Attacker(unlearn_job(
                                &config,
                                "Gan",
                                &forget,
                                out.join(&attacker),
                            )),
                        });
                        attackers.insert(key.clone(), attacker);
                    }
                    needs.push(attackers[&key].clone());
                }
                method_jobs.push(PlannedJob {
                    name,
                    stage: 3,
                    needs,
                    job: Job::Unlearn(job),
                });
            }
        }
    }
    jobs.extend(method_jobs);
    jobs.sort_by_key(|j| j.stage);
    Ok(Plan {
        out: out.to_path_buf(),
        jobs,
    })
}

/// The settings that decide a pre-trained attacker: everything but the game's own schedule,
/// and whether its non-members are augmented (they are as the forget stream of the request).
fn attacker_key(config: &UnlearnConfig, class_wise: bool) -> anyhow::Result<String> {
    let augmented = !config.no_augment && config.forget_augment.unwrap_or(class_wise);
    let mut v = serde_json::to_value(config)?;
    v["non_members_augmented"] = Value::Bool(augmented);
    for game_only in [
        "lr",
        "epochs",
        "stop_iter",
        "stop_unlearn_lr",
        "milestones",
        "amp",
        "gan_memory",
    ] {
        v[game_only] = Value::Null;
    }
    Ok(v.to_string())
}
