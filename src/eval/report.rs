//! `gunlearn report`: compares runs against Retrain (SPEC §6 "Avg. gap") and writes
//! `report.md`, `report.csv`, `report.html`, `gap.{png,svg}` and `mia_confidence.{png,svg}`.
//!
//! The arguments are run folders (holding `eval_result.json`) or sweep folders, searched
//! recursively for run folders. Runs are grouped by data set, model (dense or its sparsity),
//! forget set ("scenario"), method and hyper-parameters, so that the seeds of one setting make
//! one row: mean ± sample standard deviation over the group's runs. Each run's Avg. gap is
//! measured against the Retrain run of the same data set, model, forget set and seed.

use crate::eval::forgetting::Interval;
use crate::eval::result::{EvalResult, ForgetRecord};
use crate::jobs::forget_audit::AuditResult;
use crate::plot;
use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Folders a sweep search never enters (besides hidden ones and `*.tmp`).
const SKIPPED_DIRS: [&str; 1] = ["attackers"];
/// How deep a sweep search goes below each argument.
const MAX_DEPTH: usize = 16;

/// Reads `dir/eval_result.json`.
pub fn load_run(dir: &Path) -> Result<EvalResult> {
    let path = dir.join("eval_result.json");
    ensure!(
        path.is_file(),
        "run dir {} has no eval_result.json",
        dir.display()
    );
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The run folders named by `paths`: each path holding `eval_result.json` is a run; any other
/// folder is searched recursively for run folders (never entering `attackers`, hidden folders,
/// `*.tmp` or a run folder's subfolders). Fails when a path yields no run.
pub fn find_runs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut runs = Vec::new();
    for p in paths {
        if p.join("eval_result.json").is_file() {
            runs.push(p.clone());
            continue;
        }
        ensure!(
            p.is_dir(),
            "{} is neither a run folder (with eval_result.json) nor a sweep folder",
            p.display()
        );
        let before = runs.len();
        search(p, 0, &mut runs)?;
        ensure!(
            runs.len() > before,
            "no run folder (one holding eval_result.json) found in {}",
            p.display()
        );
    }
    Ok(runs)
}

fn search(dir: &Path, depth: usize, runs: &mut Vec<PathBuf>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .filter(|p| {
            let name = p
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into());
            !(name.starts_with('.') || name.ends_with(".tmp") || SKIPPED_DIRS.contains(&&*name))
        })
        .collect();
    children.sort();
    for c in children {
        if c.join("eval_result.json").is_file() {
            runs.push(c);
        } else {
            search(&c, depth + 1, runs)?;
        }
    }
    Ok(())
}

/// One run folder and its evaluation.
#[derive(Debug, Clone)]
pub struct Run {
    /// The run folder.
    pub dir: PathBuf,
    /// Its `eval_result.json`.
    pub result: EvalResult,
}

impl Run {
    /// UA, MIA-efficacy, RA and TA, in table order.
    pub fn metrics(&self) -> [Option<f64>; 4] {
        self.result.metrics()
    }

    /// The (data set, model, scenario) this run belongs to.
    fn setting(&self) -> (String, String, String) {
        (
            self.result.dataset.cli_name().to_string(),
            model_label(self.result.sparsity),
            scenario(&self.result.forget),
        )
    }
}

/// The unlearned model as the report names it: `dense` or `pruned 95 %` (conv weights).
pub fn model_label(sparsity: f64) -> String {
    if sparsity > 0.0 {
        format!("pruned {} %", trim_number((sparsity * 10.0).round() / 10.0))
    } else {
        "dense".to_string()
    }
}

/// The forget set as the report names it: `class K (N samples)`, `random P %` or the kind.
pub fn scenario(f: &ForgetRecord) -> String {
    match (f.kind.as_str(), f.class, f.fraction) {
        ("class", Some(c), _) => format!("class {c} ({} samples)", f.count),
        ("random", _, Some(p)) => format!("random {} %", trim_number(100.0 * p)),
        (k, _, _) => k.to_string(),
    }
}

/// `v` with up to 4 decimals and no trailing zeros.
fn trim_number(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// The hyper-parameters a run's `config` records: `unlearn_lr`, `unlearn_epochs` and every key
/// of `settings` except `seed` (and `lr`/`epochs`, which `unlearn_lr`/`unlearn_epochs` give as
/// resolved, and `gan_memory`, which changes how Gan's gradient is computed, not what it is),
/// rendered as text.
pub fn hyper_parameters(config: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for key in ["unlearn_lr", "unlearn_epochs"] {
        if let Some(v) = config.get(key) {
            out.insert(key.to_string(), value_text(v));
        }
    }
    if let Some(settings) = config.get("settings").and_then(Value::as_object) {
        for (k, v) in settings {
            if !matches!(k.as_str(), "seed" | "lr" | "epochs" | "gan_memory") {
                out.insert(k.clone(), value_text(v));
            }
        }
    }
    out
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "default".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Mean and sample standard deviation (n − 1) of some values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation; `None` for a single value.
    pub std: Option<f64>,
}

impl Stat {
    /// The statistics of `v`; `None` when empty.
    pub fn of(v: &[f64]) -> Option<Stat> {
        if v.is_empty() {
            return None;
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let std = (v.len() > 1)
            .then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
        Some(Stat { mean, std })
    }

    /// `mean ± std` with `decimals`, or the mean alone for a single value.
    pub fn text(&self, decimals: usize) -> String {
        match self.std {
            Some(s) => format!("{:.*} ± {:.*}", decimals, self.mean, decimals, s),
            None => format!("{:.*}", decimals, self.mean),
        }
    }
}

/// One row: the runs of one (data set, scenario, method, hyper-parameters).
#[derive(Debug, Clone)]
pub struct Group {
    /// Unlearning method (`retrain` for the reference).
    pub method: String,
    /// Its hyper-parameters (see [`hyper_parameters`]).
    pub params: BTreeMap<String, String>,
    /// The hyper-parameters shown: those that differ between this method's groups.
    pub shown: Vec<(String, String)>,
    /// Indices of the runs in [`Report::runs`].
    pub runs: Vec<usize>,
    /// Seeds of the runs.
    pub seeds: Vec<u64>,
    /// UA, MIA-efficacy, RA, TA over the runs.
    pub metrics: [Option<Stat>; 4],
    /// Avg. gap of each run to its Retrain, over the runs.
    pub gap: Option<Stat>,
    /// RTE in seconds.
    pub rte: Option<Stat>,
    /// RTE as a fraction of the reference Retrain's RTE.
    pub rte_fraction: Option<Stat>,
}

impl Group {
    /// The table's name for the group: the method (with the papers' name) and the shown
    /// hyper-parameters.
    pub fn label(&self) -> String {
        format!("{}{}", method_label(&self.method), self.params_suffix())
    }

    /// A short name for charts: the method's flag name and the shown hyper-parameters.
    pub fn short_label(&self) -> String {
        format!("{}{}", self.method, self.params_suffix())
    }

    fn params_suffix(&self) -> String {
        if self.shown.is_empty() {
            return String::new();
        }
        let kv: Vec<String> = self.shown.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(" [{}]", kv.join(", "))
    }

    /// Whether this is the Retrain reference.
    pub fn is_retrain(&self) -> bool {
        is_retrain(&self.method)
    }
}

/// The groups of one data set and forget set.
#[derive(Debug, Clone)]
pub struct Section {
    /// Data set name.
    pub dataset: String,
    /// The unlearned model, as [`model_label`] names it.
    pub model: String,
    /// Forget set, as [`scenario`] names it.
    pub scenario: String,
    /// Groups, Retrain and the original first, then the registry's order.
    pub groups: Vec<Group>,
}

impl Section {
    /// `dataset, forget scenario`, with the model when it is pruned.
    pub fn title(&self) -> String {
        if self.model == "dense" {
            format!("{}, forget {}", self.dataset, self.scenario)
        } else {
            format!(
                "{} ({}), forget {}",
                self.dataset, self.model, self.scenario
            )
        }
    }
}

/// Everything a report shows.
#[derive(Debug, Clone)]
pub struct Report {
    /// The runs, in the order found.
    pub runs: Vec<Run>,
    /// One section per (data set, scenario), in the order first found.
    pub sections: Vec<Section>,
    /// Each run's Avg. gap and RTE fraction of its Retrain (parallel to `runs`).
    pub per_run: Vec<(Option<f64>, Option<f64>)>,
    /// How the gaps were measured (for the notes).
    pub reference_note: String,
    /// The per-example forgetting audits found (`audit_result.json`), with their folders.
    pub audits: Vec<(PathBuf, AuditResult)>,
    /// Run folders left out, with why: an unlearning run without its completion mark, or one
    /// made from weights that have changed since.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Why the run in `dir` is not a result to report, if it is not: an unlearning run must have
/// its completion mark (`audit.json`, written last) and, where its input model is still at the
/// recorded path, have started from those weights.
fn not_a_result(dir: &Path, result: &EvalResult) -> Option<String> {
    if result.config.get("command").and_then(|c| c.as_str()) != Some("unlearn") {
        return None;
    }
    if !dir.join(crate::audit::FILE_NAME).is_file() {
        return Some("no completion mark (audit.json): the run did not finish; rerun it".into());
    }
    let model = result.config.get("model").and_then(|m| m.as_str())?;
    let model = Path::new(model);
    if model.is_file() && !crate::jobs::unlearn::started_from(dir, model) {
        return Some(format!(
            "made from other weights than {} holds now (the model was trained again since); \
             rerun it",
            model.display()
        ));
    }
    None
}

/// The folders under `paths` holding an `audit_result.json` (`gunlearn audit`'s output).
fn find_audits(paths: &[PathBuf]) -> Result<Vec<(PathBuf, AuditResult)>> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if depth > MAX_DEPTH {
            return;
        }
        if dir.join("audit_result.json").is_file() {
            out.push(dir.to_path_buf());
        }
        let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && !p.join("eval_result.json").is_file())
            .collect();
        children.sort();
        for c in children {
            walk(&c, depth + 1, out);
        }
    }
    let mut dirs = Vec::new();
    for p in paths.iter().filter(|p| p.is_dir()) {
        walk(p, 0, &mut dirs);
    }
    dirs.into_iter()
        .map(|d| {
            let path = d.join("audit_result.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let result: AuditResult = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: not an audit result (rerun `gunlearn audit` to rewrite it)",
                    path.display()
                )
            })?;
            Ok((d, result))
        })
        .collect()
}

/// The Markdown table of one audit: F, F_null, final score and U-LiRA AUC per method.
pub fn audit_markdown(result: &AuditResult) -> String {
    let iv = |v: f64, i: &Interval| format!("{v:.3} [{:.3}, {:.3}]", i.lower, i.upper);
    let mut md = String::from(
        "| method | F [95 % interval] | F_null | final score | U-LiRA AUC | TPR at 1 % FPR |\n\
         |---|---|---|---|---|---|\n",
    );
    for (name, m) in &result.methods {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.3} |",
            md_text(name),
            iv(m.f, &m.f_interval),
            iv(m.f_null, &m.f_null_interval),
            iv(m.final_score, &m.final_score_interval),
            iv(m.ulira.auc, &m.ulira.auc_interval),
            m.ulira.tpr_at_1pct_fpr
        );
    }
    md
}

fn is_retrain(m: &str) -> bool {
    m.eq_ignore_ascii_case("retrain")
}

/// Mean of each metric over `runs` (a metric missing from every run stays `None`).
fn mean_metrics(runs: &[&Run]) -> ([Option<f64>; 4], f64) {
    let mut out = [None; 4];
    for (k, o) in out.iter_mut().enumerate() {
        let v: Vec<f64> = runs.iter().filter_map(|r| r.metrics()[k]).collect();
        *o = Stat::of(&v).map(|s| s.mean);
    }
    let rte = runs.iter().map(|r| r.result.rte_seconds).sum::<f64>() / runs.len().max(1) as f64;
    (out, rte)
}

/// Loads, groups and measures the runs found under `paths`.
pub fn build(paths: &[PathBuf], retrain: Option<&Path>) -> Result<Report> {
    ensure!(!paths.is_empty(), "report: no run directories given");
    let dirs = find_runs(paths)?;
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for d in dirs {
        let result = load_run(&d)?;
        match not_a_result(&d, &result) {
            Some(why) => skipped.push((d, why)),
            None => runs.push(Run { dir: d, result }),
        }
    }
    if runs.is_empty() {
        let (dir, why) = &skipped[0];
        bail!(
            "no finished run to report: {} run folder(s) left out, first {}: {why}",
            skipped.len(),
            dir.display()
        );
    }
    let explicit = match retrain {
        Some(d) => Some(Run {
            dir: d.to_path_buf(),
            result: load_run(d)?,
        }),
        None => None,
    };
    if let Some(e) = &explicit {
        // The given Retrain is every run's reference, so all must share its experiment.
        for r in &runs {
            if r.result.dataset != e.result.dataset {
                bail!(
                    "runs {} ({}) and {} ({}) use different datasets",
                    r.dir.display(),
                    r.result.dataset.cli_name(),
                    e.dir.display(),
                    e.result.dataset.cli_name()
                );
            }
            if r.setting().1 != e.setting().1 {
                bail!(
                    "runs {} ({}) and {} ({}) unlearn different models",
                    r.dir.display(),
                    r.setting().1,
                    e.dir.display(),
                    e.setting().1
                );
            }
            if r.setting().2 != e.setting().2 {
                bail!(
                    "runs {} ({}) and {} ({}) use different forget sets",
                    r.dir.display(),
                    scenario(&r.result.forget),
                    e.dir.display(),
                    scenario(&e.result.forget)
                );
            }
        }
    }

    // Each run's reference: the given Retrain, or the Retrain runs of its setting and seed
    // (their mean if several), or else the mean over its setting's Retrain runs.
    let mut fallbacks = 0;
    let mut any_reference = false;
    let mut per_run: Vec<(Option<f64>, Option<f64>)> = Vec::new(); // (gap, RTE fraction)
    for r in &runs {
        let reference = match &explicit {
            Some(e) => Some(mean_metrics(&[e])),
            None => {
                let same: Vec<&Run> = runs
                    .iter()
                    .filter(|o| is_retrain(&o.result.method) && o.setting() == r.setting())
                    .collect();
                let seed: Vec<&Run> = same
                    .iter()
                    .copied()
                    .filter(|o| o.result.seed == r.result.seed)
                    .collect();
                if !seed.is_empty() {
                    Some(mean_metrics(&seed))
                } else if !same.is_empty() {
                    fallbacks += 1;
                    Some(mean_metrics(&same))
                } else {
                    None
                }
            }
        };
        any_reference |= reference.is_some();
        per_run.push(match reference {
            Some((m, rte)) => (
                crate::eval::result::avg_gap(&r.metrics(), &m),
                (rte > 0.0).then(|| r.result.rte_seconds / rte),
            ),
            None => (None, None),
        });
    }

    let mut sections: Vec<Section> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let (dataset, model, scen) = r.setting();
        let params = hyper_parameters(&r.result.config);
        let s = match sections
            .iter()
            .position(|s| s.dataset == dataset && s.model == model && s.scenario == scen)
        {
            Some(s) => s,
            None => {
                sections.push(Section {
                    dataset,
                    model,
                    scenario: scen,
                    groups: Vec::new(),
                });
                sections.len() - 1
            }
        };
        let groups = &mut sections[s].groups;
        match groups
            .iter_mut()
            .find(|g| g.method == r.result.method && g.params == params)
        {
            Some(g) => g.runs.push(i),
            None => groups.push(Group {
                method: r.result.method.clone(),
                params,
                shown: Vec::new(),
                runs: vec![i],
                seeds: Vec::new(),
                metrics: [None; 4],
                gap: None,
                rte: None,
                rte_fraction: None,
            }),
        }
    }
    for s in &mut sections {
        let snapshot = s.groups.clone();
        for g in &mut s.groups {
            let members: Vec<&Run> = g.runs.iter().map(|&i| &runs[i]).collect();
            g.seeds = members.iter().map(|r| r.result.seed).collect();
            for k in 0..4 {
                let v: Vec<f64> = members.iter().filter_map(|r| r.metrics()[k]).collect();
                g.metrics[k] = Stat::of(&v);
            }
            let col = |f: &dyn Fn(usize) -> Option<f64>| {
                Stat::of(&g.runs.iter().filter_map(|&i| f(i)).collect::<Vec<_>>())
            };
            g.gap = col(&|i| per_run[i].0);
            g.rte = col(&|i| Some(runs[i].result.rte_seconds));
            g.rte_fraction = col(&|i| per_run[i].1);
            // Show the hyper-parameters on which this method's groups disagree.
            let siblings: Vec<&Group> = snapshot.iter().filter(|o| o.method == g.method).collect();
            let keys: std::collections::BTreeSet<&String> =
                siblings.iter().flat_map(|o| o.params.keys()).collect();
            g.shown = keys
                .into_iter()
                .filter(|k| {
                    siblings
                        .iter()
                        .any(|o| o.params.get(*k) != g.params.get(*k))
                })
                .map(|k| {
                    let v = g.params.get(k).cloned().unwrap_or_else(|| "—".into());
                    (k.clone(), v)
                })
                .collect();
        }
        // Methods in the registry's order (Retrain and the original first), unknown names
        // last; a method's groups by their shown hyper-parameters.
        s.groups.sort_by(|a, b| {
            (method_rank(&a.method), &a.method, a.short_label()).cmp(&(
                method_rank(&b.method),
                &b.method,
                b.short_label(),
            ))
        });
    }

    let reference_note = match (&explicit, any_reference) {
        (Some(e), _) => format!(
            "Avg. Gap is relative to the Retrain run {}.",
            e.dir.display()
        ),
        (None, true) => {
            let mut s = String::from(
                "Avg. Gap is each run's gap to the Retrain run of the same data set, model, \
                 forget set and seed (their mean if several), averaged over the group's runs.",
            );
            if fallbacks > 0 {
                let _ = write!(
                    s,
                    " {fallbacks} run(s) had no Retrain of their seed and were compared with the \
                     mean over that setting's Retrain runs."
                );
            }
            s
        }
        (None, false) => "No Retrain run given: Avg. Gap is not available.".into(),
    };
    Ok(Report {
        runs,
        sections,
        per_run,
        reference_note,
        audits: find_audits(paths)?,
        skipped,
    })
}

/// What each cell means (written under the tables).
pub const CELL_NOTE: &str = "Cells are the mean ± the sample standard deviation (n − 1) over \
the group's runs (one per seed); a group of a single run shows its value alone, and report.csv \
leaves that std empty. RTE / Retrain is the unlearning time as a fraction of the reference \
Retrain's.";

/// How runs are grouped (written under the tables).
pub const GROUP_NOTE: &str = "A group is the runs with the same data set, model, forget set, \
method and hyper-parameters (config.unlearn_lr, config.unlearn_epochs and every key of \
config.settings except seed and gan_memory); a label shows the hyper-parameters that differ between the \
groups of its method.";

fn opt_text(s: &Option<Stat>, decimals: usize) -> String {
    s.as_ref().map_or("n/a".into(), |s| s.text(decimals))
}

/// The Markdown table of one section.
pub fn markdown_table(section: &Section) -> String {
    let mut md = String::new();
    md.push_str(
        "| Method | UA | MIA-Efficacy | RA | TA | Avg. Gap | RTE (s) | RTE / Retrain | n |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for g in &section.groups {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md_text(&g.label()),
            opt_text(&g.metrics[0], 2),
            opt_text(&g.metrics[1], 2),
            opt_text(&g.metrics[2], 2),
            opt_text(&g.metrics[3], 2),
            opt_text(&g.gap, 2),
            opt_text(&g.rte, 2),
            opt_text(&g.rte_fraction, 2),
            g.runs.len(),
        );
    }
    md
}

/// `s` for a Markdown table cell: no column breaks, no HTML.
fn md_text(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Column names of `report.csv`.
pub const CSV_HEADER: &str = "dataset,forget,model,method,label,hyperparameters,n,seeds,\
UA_mean,UA_std,MIA_efficacy_mean,MIA_efficacy_std,RA_mean,RA_std,TA_mean,TA_std,\
avg_gap_mean,avg_gap_std,RTE_mean,RTE_std,RTE_fraction_mean,RTE_fraction_std";

/// `report.csv`: one row per group; numbers with 6 decimals, empty when not available (a
/// std of a single run included).
pub fn csv(report: &Report) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    let num = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    for s in &report.sections {
        for g in &s.groups {
            let params: Vec<String> = g.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let seeds: Vec<String> = g.seeds.iter().map(u64::to_string).collect();
            let mut cells = vec![
                csv_field(&s.dataset),
                csv_field(&s.scenario),
                csv_field(&s.model),
                csv_field(&g.method),
                csv_field(&g.label()),
                csv_field(&params.join(";")),
                g.runs.len().to_string(),
                csv_field(&seeds.join(";")),
            ];
            for st in g.metrics.iter().chain([&g.gap, &g.rte, &g.rte_fraction]) {
                cells.push(num(st.map(|s| s.mean)));
                cells.push(num(st.and_then(|s| s.std)));
            }
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    out
}

/// Builds the comparison for the runs in `run_dirs` (run folders or sweep folders searched for
/// them), with Retrain taken from `retrain` or from the runs whose method is `retrain`; writes
/// the report files into `out_dir` and returns the Markdown table(s) and health findings.
pub fn report(run_dirs: &[PathBuf], retrain: Option<&Path>, out_dir: &Path) -> Result<Written> {
    report_with(run_dirs, retrain, out_dir, false)
}

/// What [`report`] wrote, for the command to print.
#[derive(Debug, Clone)]
pub struct Written {
    /// The Markdown table(s) of report.md.
    pub tables: String,
    /// Each kind of health finding once, with the number of runs it concerns (report.md's
    /// "Health checks").
    pub health: Vec<(String, usize)>,
    /// The comparison the files show.
    pub report: Report,
}

impl Written {
    /// Logs the folders left out and each health finding once, with its run count (for the
    /// commands that print the tables).
    pub fn log_health(&self) {
        for (dir, why) in &self.report.skipped {
            tracing::warn!("left out {}: {why}", dir.display());
        }
        for (kind, n) in health_kinds(&self.health) {
            tracing::warn!("{kind} ({n} run(s); report.md lists each)");
        }
    }
}

/// The health findings folded into one line per kind: a finding reads "METHOD what (detail)"
/// or "METHOD what: detail", and the kind is "what" with the methods it concerns, e.g.
/// `left UA where it was: FT, GA` over the runs of both.
pub fn health_kinds(health: &[(String, usize)]) -> Vec<(String, usize)> {
    let mut kinds: Vec<(String, Vec<String>, usize)> = Vec::new();
    for (warning, n) in health {
        let (method, rest) = match warning.split_once(' ') {
            Some((first, rest)) if crate::unlearn::find(first).is_ok() => (first, rest),
            _ => {
                // A finding about the study rather than a method: its own kind.
                kinds.push((warning.clone(), Vec::new(), *n));
                continue;
            }
        };
        let what = rest
            .split([':', '('])
            .next()
            .unwrap_or(rest)
            .trim()
            .to_string();
        match kinds.iter_mut().find(|(w, ..)| *w == what) {
            Some((_, methods, runs)) => {
                if !methods.iter().any(|m| m == method) {
                    methods.push(method.to_string());
                }
                *runs += n;
            }
            None => kinds.push((what, vec![method.to_string()], *n)),
        }
    }
    kinds
        .into_iter()
        .map(|(what, mut methods, runs)| {
            methods.sort();
            if methods.is_empty() {
                (what, runs)
            } else {
                (format!("{what}: {}", methods.join(", ")), runs)
            }
        })
        .collect()
}

/// The held-out split a hyper-parameter choice reads in place of the test set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldOut {
    /// The selection split, which no method, Retrain or attacker reads.
    Selection,
    /// The validation split: the adversarial method's defender trains through it, so a choice
    /// among Gan's settings on it reads data that Gan trained on.
    Validation,
}

impl HeldOut {
    /// The split's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            HeldOut::Selection => "selection",
            HeldOut::Validation => "validation",
        }
    }

    /// This split's accuracy in `run`.
    fn accuracy(self, run: &Run) -> Option<f64> {
        match self {
            HeldOut::Selection => run.result.accuracy.selection,
            HeldOut::Validation => Some(run.result.accuracy.val),
        }
    }
}

/// One method's hyper-parameter choice on a held-out split: every candidate group's label and
/// mean gap, and the chosen one.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The section's title.
    pub section: String,
    /// The split the gaps were computed on.
    pub held_out: HeldOut,
    /// The method.
    pub method: String,
    /// (label, mean validation gap over its runs) per candidate.
    pub candidates: Vec<(String, Option<f64>)>,
    /// Index of the chosen candidate.
    pub chosen: usize,
}

/// A run's gap to Retrain with the held-out split's accuracy in place of TA: the mean of |Δ|
/// over UA, MIA-efficacy, RA and that accuracy, against the Retrain runs of its seed (all of
/// the section's when none has its seed).
fn held_out_gap(run: &Run, retrains: &[&Run], held_out: HeldOut) -> Option<f64> {
    let same_seed: Vec<&&Run> = retrains
        .iter()
        .filter(|r| r.result.seed == run.result.seed)
        .collect();
    let refs: Vec<&Run> = if same_seed.is_empty() {
        retrains.to_vec()
    } else {
        same_seed.into_iter().copied().collect()
    };
    if refs.is_empty() {
        return None;
    }
    let with_val = |r: &Run| {
        let m = r.metrics();
        [m[0], m[1], m[2], held_out.accuracy(r)]
    };
    let mut reference = [Some(0.0); 4];
    for (k, slot) in reference.iter_mut().enumerate() {
        let v: Vec<f64> = refs.iter().filter_map(|r| with_val(r)[k]).collect();
        *slot = (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    }
    crate::eval::result::avg_gap(&with_val(run), &reference)
}

/// Keeps, per section and method, only the hyper-parameter group with the smallest mean gap on
/// a held-out split (no test data involved): the selection split when every run of the section
/// has one, else the validation split. Returns every choice made.
pub fn choose_on_held_out(rep: &mut Report) -> Vec<Choice> {
    let mut choices = Vec::new();
    for section in &mut rep.sections {
        let retrains: Vec<&Run> = section
            .groups
            .iter()
            .filter(|g| is_retrain(&g.method))
            .flat_map(|g| g.runs.iter().map(|&i| &rep.runs[i]))
            .collect();
        let every_run_has_selection = section
            .groups
            .iter()
            .flat_map(|g| &g.runs)
            .all(|&i| rep.runs[i].result.accuracy.selection.is_some());
        let held_out = if every_run_has_selection {
            HeldOut::Selection
        } else {
            HeldOut::Validation
        };
        let mut methods: Vec<String> = Vec::new();
        for g in &section.groups {
            if !methods.contains(&g.method) {
                methods.push(g.method.clone());
            }
        }
        let mut drop = Vec::new();
        for method in methods {
            let ids: Vec<usize> = (0..section.groups.len())
                .filter(|&i| section.groups[i].method == method)
                .collect();
            if ids.len() < 2 || is_retrain(&method) {
                continue;
            }
            let candidates: Vec<(String, Option<f64>)> = ids
                .iter()
                .map(|&i| {
                    let g = &section.groups[i];
                    let gaps: Vec<f64> = g
                        .runs
                        .iter()
                        .filter_map(|&r| held_out_gap(&rep.runs[r], &retrains, held_out))
                        .collect();
                    let mean =
                        (!gaps.is_empty()).then(|| gaps.iter().sum::<f64>() / gaps.len() as f64);
                    (g.label(), mean)
                })
                .collect();
            let chosen = (0..candidates.len())
                .min_by(|&a, &b| {
                    let key = |i: usize| candidates[i].1.unwrap_or(f64::INFINITY);
                    key(a).total_cmp(&key(b))
                })
                .expect("two or more candidates");
            drop.extend(
                ids.iter()
                    .enumerate()
                    .filter(|&(k, _)| k != chosen)
                    .map(|(_, &i)| i),
            );
            choices.push(Choice {
                section: section.title(),
                held_out,
                method,
                candidates,
                chosen,
            });
        }
        let mut i = 0;
        section.groups.retain(|_| {
            let keep = !drop.contains(&i);
            i += 1;
            keep
        });
    }
    choices
}

/// [`report`], and with `select` only each method's hyper-parameters chosen on a held-out split
/// ([`choose_on_held_out`]), the choices written into `report.md`.
pub fn report_with(
    run_dirs: &[PathBuf],
    retrain: Option<&Path>,
    out_dir: &Path,
    select: bool,
) -> Result<Written> {
    let mut rep = build(run_dirs, retrain)?;
    let choices = if select {
        choose_on_held_out(&mut rep)
    } else {
        Vec::new()
    };
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let single = rep.sections.len() == 1;
    let mut tables = String::new();
    let mut doc = if single {
        format!("# Unlearning report — {}\n\n", rep.sections[0].title())
    } else {
        "# Unlearning report\n\n".to_string()
    };
    for s in &rep.sections {
        let table = markdown_table(s);
        if single {
            tables.push_str(&table);
            doc.push_str(&table);
        } else {
            let _ = write!(tables, "### {}\n\n{table}\n", s.title());
            let _ = write!(doc, "## {}\n\n{table}\n", s.title());
        }
    }
    let _ = write!(
        doc,
        "\n{}\n\n{CELL_NOTE}\n\n{GROUP_NOTE}\n",
        rep.reference_note
    );
    if !choices.is_empty() {
        doc.push_str(
            "\n## Hyper-parameters chosen on a held-out split\n\nPer method, the setting with the \
             smallest mean gap to Retrain over UA, MIA-efficacy, RA and the held-out split's \
             accuracy (TA, the test set, plays no part); the tables above show only the chosen \
             one. The selection split is read by no method; where a run has none, the validation \
             split stands in, which the adversarial method's defender trains through.\n",
        );
        for c in &choices {
            let _ = write!(
                doc,
                "\n**{}**, {}:\n\n| setting | {} gap | |\n|---|---|---|\n",
                c.method,
                c.section,
                c.held_out.name()
            );
            for (k, (label, gap)) in c.candidates.iter().enumerate() {
                let gap = gap.map_or("n/a".to_string(), |g| format!("{g:.2}"));
                let mark = if k == c.chosen { "chosen" } else { "" };
                let _ = writeln!(doc, "| {} | {gap} | {mark} |", md_text(label));
            }
        }
    }
    for (dir, audit) in &rep.audits {
        let _ = write!(
            doc,
            "\n## Per-example forgetting audit ({})\n\nN = {} models per pool, {} forget \
             examples (SPEC §6b); per-example ε in its epsilon_<method>.csv.\n\n{}",
            dir.display(),
            audit.n,
            audit.forget_indices.len(),
            audit_markdown(audit)
        );
    }
    if !rep.skipped.is_empty() {
        doc.push_str("\n## Run folders left out\n\n");
        for (dir, why) in &rep.skipped {
            let _ = writeln!(doc, "- {}: {why}", md_text(&dir.display().to_string()));
        }
    }
    let warnings = health_warnings(&rep);
    if !warnings.is_empty() {
        doc.push_str("\n## Health checks\n\n");
        for (warning, n) in &warnings {
            let _ = writeln!(doc, "- {warning} ({n} run(s))");
        }
    }
    crate::fsutil::write_bytes_atomic(&out_dir.join("report.md"), doc.as_bytes())?;
    crate::fsutil::write_bytes_atomic(&out_dir.join("report.csv"), csv(&rep).as_bytes())?;
    crate::fsutil::write_bytes_atomic(
        &out_dir.join("report.html"),
        crate::eval::report_html::render(&rep).as_bytes(),
    )?;
    write_figures(&rep, out_dir)?;
    write_game_figures(&rep, out_dir)?;
    Ok(Written {
        tables,
        health: warnings,
        report: rep,
    })
}

/// The adversarial method's game, per section and Gan group, for the group's first seed:
/// `game-<section>.{png,svg}` (attacker and retain accuracy) and `game-loss-<section>.{png,svg}`
/// (L_adv and β) against iteration, the stop-iter (where β drops to 0) marked. Read from the
/// run's `unlearn_log.csv`; a run without one is left out.
fn write_game_figures(rep: &Report, out_dir: &Path) -> Result<()> {
    for s in &rep.sections {
        let slug = slug(&s.title());
        for (k, g) in s.groups.iter().filter(|g| g.method == "Gan").enumerate() {
            let Some(run) = g
                .runs
                .iter()
                .map(|&i| &rep.runs[i])
                .min_by_key(|r| r.result.seed)
            else {
                continue;
            };
            let Ok(log) = GameLog::read(&run.dir.join("unlearn_log.csv")) else {
                continue;
            };
            let name = if k == 0 {
                slug.clone()
            } else {
                format!("{slug}-{k}")
            };
            let what = format!("{}, seed {}", s.title(), run.result.seed);
            let marker = |lo: f64, hi: f64| {
                log.stop_iter
                    .map(|at| vec![(at, lo), (at, hi)])
                    .unwrap_or_default()
            };
            plot::line_chart(
                &out_dir.join(format!("game-{name}.png")),
                &format!("Adversarial game: {what}"),
                "iteration",
                "batch accuracy (%)",
                &[
                    ("attacker accuracy", log.series("attacker_acc")),
                    ("retain accuracy", log.series("retain_acc")),
                    ("stop-iter (β → 0)", marker(0.0, 100.0)),
                ],
            )?;
            let l_adv = log.series("L_adv");
            let top = l_adv.iter().map(|p| p.1).fold(1.0f64, f64::max);
            plot::line_chart(
                &out_dir.join(format!("game-loss-{name}.png")),
                &format!("Adversarial loss and β: {what}"),
                "iteration",
                "L_adv; β",
                &[
                    ("L_adv", l_adv),
                    ("β", log.series("beta")),
                    ("stop-iter (β → 0)", marker(0.0, top)),
                ],
            )?;
        }
    }
    Ok(())
}

/// A section title as a file-name part: lower-case letters and digits, the rest as '-'.
fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// The adversarial method's `unlearn_log.csv`: its numeric columns by name.
struct GameLog {
    columns: Vec<String>,
    rows: Vec<Vec<f64>>,
    /// The first iteration with β = 0 (class-wise forgetting's stop-iter), if any.
    stop_iter: Option<f64>,
}

impl GameLog {
    /// Reads the log; fails when it lacks the game's columns.
    fn read(path: &Path) -> Result<GameLog> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut lines = text.lines();
        let columns: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::to_string)
            .collect();
        for needed in ["iteration", "attacker_acc", "retain_acc", "L_adv", "beta"] {
            anyhow::ensure!(
                columns.iter().any(|c| c == needed),
                "{}: no {needed} column",
                path.display()
            );
        }
        let rows: Vec<Vec<f64>> = lines
            .map(|l| {
                l.split(',')
                    .map(|v| v.parse().unwrap_or(f64::NAN))
                    .collect()
            })
            .collect();
        let mut log = GameLog {
            columns,
            rows,
            stop_iter: None,
        };
        log.stop_iter = log
            .series("beta")
            .into_iter()
            .find(|&(_, beta)| beta == 0.0)
            .map(|(at, _)| at);
        Ok(log)
    }

    /// (iteration, value) of one column, finite values only.
    fn series(&self, column: &str) -> Vec<(f64, f64)> {
        let at = |name: &str| self.columns.iter().position(|c| c == name);
        let (Some(x), Some(y)) = (at("iteration"), at(column)) else {
            return Vec::new();
        };
        self.rows
            .iter()
            .filter_map(|r| Some((*r.get(x)?, *r.get(y)?)))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    }
}

/// `gap.{png,svg}` and `mia_confidence.{png,svg}` (when there is something to draw).
fn write_figures(rep: &Report, out_dir: &Path) -> Result<()> {
    let single = rep.sections.len() == 1;
    let name = |s: &Section, g: &Group| {
        if single {
            g.short_label()
        } else {
            format!("{}: {}", s.title(), g.short_label())
        }
    };
    let mut bars: Vec<(String, f64)> = Vec::new();
    let mut panels: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    for s in &rep.sections {
        for g in &s.groups {
            if let (Some(gap), false) = (g.gap, g.is_retrain()) {
                bars.push((name(s, g), gap.mean));
            }
            // The attack's view of each group: its first run's forget vs test confidences.
            if let Some(f) = g
                .runs
                .iter()
                .map(|&i| &rep.runs[i].result.mia_confidence_features)
                .find(|f| !f.forget.is_empty() || !f.test.is_empty())
            {
                panels.push((name(s, g), f.forget.clone(), f.test.clone()));
            }
        }
    }
    if !bars.is_empty() {
        let b: Vec<(&str, f64)> = bars.iter().map(|(s, v)| (s.as_str(), *v)).collect();
        plot::bar_chart(
            &out_dir.join("gap.png"),
            "Average gap to Retrain (lower is better)",
            "Avg. Gap (points)",
            &b,
        )?;
    }
    if !panels.is_empty() {
        let p: Vec<plot::Panel> = panels
            .iter()
            .map(|(name, forget, test)| {
                let series: Vec<plot::Series> = [("forget", forget), ("test", test)]
                    .into_iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(n, v)| (n, v.clone()))
                    .collect();
                (name.as_str(), series)
            })
            .collect();
        plot::histogram_panels(
            &out_dir.join("mia_confidence.png"),
            "MIA confidence feature p_y: forget vs test, per method",
            "confidence p_y",
            &p,
            30,
        )?;
    }
    Ok(())
}

/// Position of `method` in the unlearning registry (reports list methods in that order).
fn method_rank(method: &str) -> usize {
    let methods = crate::unlearn::registry();
    methods
        .iter()
        .position(|m| m.name().eq_ignore_ascii_case(method))
        .unwrap_or(methods.len())
}

/// The name a table shows for `method`: the papers' name beside the flag's where they differ.
pub fn method_label(method: &str) -> String {
    let paper = match method.to_ascii_lowercase().as_str() {
        "retrain" => return "Retrain".into(),
        "raw" => "original",
        "ft_l1" | "ft_prune" => "ℓ1-sparse",
        "fisher_new" => "FF",
        "wfisher" => "IU",
        "gan" => "adversarial",
        _ => return method.to_string(),
    };
    format!("{method} ({paper})")
}

/// The runs' health warnings (recorded by `unlearn` in `config.warnings`), each with how many
/// runs gave it, in the order first found.
pub fn health_warnings(rep: &Report) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for run in &rep.runs {
        let warnings = run.result.config.get("warnings").and_then(|w| w.as_array());
        for w in warnings.into_iter().flatten().filter_map(|w| w.as_str()) {
            match out.iter_mut().find(|(x, _)| x == w) {
                Some((_, n)) => *n += 1,
                None => out.push((w.to_string(), 1)),
            }
        }
    }
    out
}
