//! The audit record of one forget request, `audit.json`: what was forgotten (the SHA-256 of
//! the sorted forgotten indices), from which data files, by which method with which
//! configuration, the hashes of the input and output checkpoints, the metrics, the software
//! versions and the timings. `unlearn` writes it as the last file of a run, so a run folder
//! with an `audit.json` is complete; [`verify`] recomputes every hash and says what no longer
//! matches.

use crate::data::splits::{make_splits, ForgetRequest};
use crate::data::{self, DatasetName};
use crate::eval::result::EvalResult;
use crate::jobs::{DataConfig, ForgetConfig};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Format tag written to every `audit.json`.
pub const FORMAT: &str = "gunlearn-audit-v1";
/// The file name of the audit record in a run folder.
pub const FILE_NAME: &str = "audit.json";
/// How the embedded digits data set is named where a data file's path would be.
pub const EMBEDDED_DIGITS: &str = "embedded:digits";
/// The `tch` crate version, pinned exactly in Cargo.toml (a unit test keeps the two equal).
pub const TCH_VERSION: &str = "0.24.0";
/// The run-folder files whose hashes are recorded, in the order they are written.
pub const OUTPUT_FILES: [&str; 4] = [
    "unlearn_log.csv",
    "model.safetensors",
    "model.json",
    "eval_result.json",
];

/// Everything in `audit.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Always [`FORMAT`].
    pub format: String,
    /// When the record was written, UTC (RFC 3339).
    pub created_utc: String,
    /// Versions of the software that ran.
    pub software: Software,
    /// The command line of the process that ran the request.
    pub command_line: Vec<String>,
    /// The unlearning method.
    pub method: String,
    /// The method's full configuration, as in `eval_result.json`'s `config`.
    pub config: serde_json::Value,
    /// The data set and the files read.
    pub data: DataRecord,
    /// The forget request and the hash of the forgotten indices.
    pub forget: ForgetAudit,
    /// The checkpoint the run started from.
    pub input_checkpoint: CheckpointFiles,
    /// The run folder's files ([`OUTPUT_FILES`]), paths relative to the folder.
    pub outputs: Vec<FileHash>,
    /// UA, RA, TA, MIA-efficacy (%) and RTE (s).
    pub metrics: Metrics,
    /// Avg. gap to Retrain; empty here, filled by a sweep that has a Retrain run.
    pub gap_to_retrain: Option<f64>,
    /// Timings (s), as in `eval_result.json`, plus `run_total` for the whole command.
    pub timings: BTreeMap<String, f64>,
    /// SHA-256 of this record written without this field ([`AuditRecord::sha256`]), so that
    /// an edit of any field after the run is found; `None` in records of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_sha256: Option<String>,
}

impl AuditRecord {
    /// SHA-256 of the record's JSON without its `record_sha256`.
    pub fn sha256(&self) -> String {
        let bare = AuditRecord {
            record_sha256: None,
            ..self.clone()
        };
        sha256_hex(&serde_json::to_vec(&bare).expect("an audit record serialises"))
    }
}

/// Software versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Software {
    /// gunlearn's version.
    pub gunlearn: String,
    /// The `tch` crate (libtorch bindings) version, pinned in Cargo.toml.
    pub tch: String,
}

/// One file with its size and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileHash {
    /// Its path (absolute for inputs, relative to the run folder for outputs), or
    /// [`EMBEDDED_DIGITS`].
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// A checkpoint's two files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointFiles {
    /// Its weights, `NAME.safetensors` (or the PyTorch file it was read from).
    pub safetensors: FileHash,
    /// Its metadata, `NAME.json`; `None` for a checkpoint without one (a PyTorch file).
    pub json: Option<FileHash>,
}

/// The data set as the run read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    /// Data set.
    pub dataset: DatasetName,
    /// `--data` folder (absolute), if any.
    pub dir: Option<PathBuf>,
    /// Seed of the validation split.
    pub val_set_seed: u32,
    /// `--train_subset`, if given.
    pub train_subset: Option<usize>,
    /// `--test_subset`, if given.
    pub test_subset: Option<usize>,
    /// `--selection_fraction` (0: no selection split).
    #[serde(default)]
    pub selection_fraction: f64,
    /// SHA-256 of the selection split's sorted indices (little-endian u64s) and their count:
    /// the images held out from every method, for choosing hyper-parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<IndexHash>,
    /// The files read ([`data::source_files`]), or one [`EMBEDDED_DIGITS`] entry hashing the
    /// embedded images and labels.
    pub files: Vec<FileHash>,
}

/// A set of training indices by hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexHash {
    /// How many indices.
    pub count: usize,
    /// SHA-256 of the sorted indices as little-endian u64s ([`indices_sha256`]).
    pub sha256: String,
}

/// The forget request and the forgotten indices' hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForgetAudit {
    /// `class`, `random` or `none`.
    pub kind: String,
    /// The forgotten class (class-wise).
    pub class: Option<usize>,
    /// `--num_indexes_to_replace` (class-wise), if given.
    pub num_indexes_to_replace: Option<usize>,
    /// Forgotten fraction of the train split (random).
    pub fraction: Option<f64>,
    /// Run seed (the forget set is drawn with RandomState(seed − 1)).
    pub seed: u64,
    /// How many training images were forgotten.
    pub forget_indices_count: usize,
    /// SHA-256 of the sorted forgotten indices (into the official training images) as
    /// little-endian u64s.
    pub forget_indices_sha256: String,
}

/// The run's metrics, as in `eval_result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Unlearning accuracy (%).
    #[serde(rename = "UA")]
    pub ua: Option<f64>,
    /// Retain accuracy (%).
    #[serde(rename = "RA")]
    pub ra: f64,
    /// Test accuracy (%).
    #[serde(rename = "TA")]
    pub ta: f64,
    /// MIA-efficacy (%).
    #[serde(rename = "MIA_efficacy")]
    pub mia_efficacy: Option<f64>,
    /// Run-time efficiency: seconds of the unlearning step.
    #[serde(rename = "RTE_seconds")]
    pub rte_seconds: f64,
}

/// The inputs' hashes, taken before the method runs.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The input checkpoint's files.
    pub checkpoint: CheckpointFiles,
    /// The data files read.
    pub data_files: Vec<FileHash>,
    /// When hashing started, for `run_total`.
    pub started: std::time::Instant,
}

/// SHA-256 (hex) and size of a file, read in chunks.
pub fn sha256_file(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)
        .with_context(|| format!("cannot open {} to hash it", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {} to hash it", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

/// SHA-256 (hex) of the sorted `indices` as little-endian u64s.
pub fn indices_sha256(indices: &[usize]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha256::new();
    for i in sorted {
        hasher.update((i as u64).to_le_bytes());
    }
    hex(&hasher.finalize())
}

/// SHA-256 of the embedded digits data: train images, train labels (i64 LE), test images,
/// test labels, in that order.
pub fn embedded_digits_hash() -> anyhow::Result<FileHash> {
    let ds = data::load(DatasetName::Digits, None)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    for set in [&ds.train, &ds.test] {
        hasher.update(&set.images);
        for l in &set.labels {
            hasher.update(l.to_le_bytes());
        }
        size += (set.images.len() + 8 * set.labels.len()) as u64;
    }
    Ok(FileHash {
        path: EMBEDDED_DIGITS.into(),
        size,
        sha256: hex(&hasher.finalize()),
    })
}

/// SHA-256 (hex) of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `path` made absolute (resolved when it exists), for a record readable from anywhere.
fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Hashes one file under its absolute path.
fn hash_entry(path: &Path) -> anyhow::Result<FileHash> {
    let (sha256, size) = sha256_file(path)?;
    Ok(FileHash {
        path: absolute(path).to_string_lossy().into_owned(),
        size,
        sha256,
    })
}

/// Where [`begin`] keeps an earlier run's `eval_result.json`.
pub const EARLIER_RESULT: &str = "eval_result.earlier.json";

/// Starts the record of a run into `dir` and hashes its inputs. An earlier run's results are
/// moved out of the way first: its `audit.json` removed (so the folder does not look complete
/// before this run finishes), then its `eval_result.json` kept as [`EARLIER_RESULT`] (so a
/// rerun that fails never leaves old numbers beside new weights).
pub fn begin(dir: &Path, weights: &Path, data: &DataConfig) -> anyhow::Result<Inputs> {
    let stale = dir.join(FILE_NAME);
    if stale.exists() {
        std::fs::remove_file(&stale).with_context(|| {
            format!(
                "removing the earlier run's {}: check the folder's permissions",
                stale.display()
            )
        })?;
    }
    let result = dir.join("eval_result.json");
    if result.exists() {
        std::fs::rename(&result, dir.join(EARLIER_RESULT))
            .with_context(|| format!("setting aside the earlier run's {}", result.display()))?;
    }
    hash_inputs(weights, data)
}

/// Hashes the input checkpoint (`weights` = its `.safetensors`) and the data files `data`
/// reads; call before the method runs.
pub fn hash_inputs(weights: &Path, data: &DataConfig) -> anyhow::Result<Inputs> {
    let started = std::time::Instant::now();
    let checkpoint = CheckpointFiles {
        safetensors: hash_entry(weights)?,
        json: Some(weights.with_extension("json"))
            .filter(|json| json.is_file())
            .map(|json| hash_entry(&json))
            .transpose()?,
    };
    let data_files = match data.dataset {
        DatasetName::Digits => vec![embedded_digits_hash()?],
        name => data::source_files(name, data.data.as_deref())?
            .iter()
            .map(|p| hash_entry(p))
            .collect::<anyhow::Result<_>>()?,
    };
    Ok(Inputs {
        checkpoint,
        data_files,
        started,
    })
}

/// The audit record of a finished run in `dir`, whose outputs are hashed now.
pub fn build(
    dir: &Path,
    inputs: Inputs,
    data_args: &DataConfig,
    forget: &ForgetConfig,
    forget_indices: &[usize],
    selection_indices: &[usize],
    result: &EvalResult,
) -> anyhow::Result<AuditRecord> {
    let outputs = OUTPUT_FILES
        .iter()
        .map(|name| {
            let (sha256, size) = sha256_file(&dir.join(name))?;
            Ok(FileHash {
                path: name.to_string(),
                size,
                sha256,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut timings = result.timings.clone();
    timings.insert("run_total".into(), inputs.started.elapsed().as_secs_f64());
    Ok(AuditRecord {
        format: FORMAT.into(),
        created_utc: utc_now(),
        software: Software {
            gunlearn: env!("CARGO_PKG_VERSION").into(),
            tch: TCH_VERSION.into(),
        },
        command_line: std::env::args().collect(),
        method: result.method.clone(),
        config: result.config.clone(),
        data: DataRecord {
            dataset: data_args.dataset,
            dir: data_args.data.as_deref().map(absolute),
            val_set_seed: data_args.val_set_seed,
            train_subset: data_args.train_subset,
            test_subset: data_args.test_subset,
            selection_fraction: data_args.selection_fraction,
            selection: (!selection_indices.is_empty()).then(|| IndexHash {
                count: selection_indices.len(),
                sha256: indices_sha256(selection_indices),
            }),
            files: inputs.data_files,
        },
        forget: ForgetAudit {
            kind: result.forget.kind.clone(),
            class: result.forget.class,
            num_indexes_to_replace: forget.num_indexes_to_replace,
            fraction: result.forget.fraction,
            seed: forget.seed,
            forget_indices_count: forget_indices.len(),
            forget_indices_sha256: indices_sha256(forget_indices),
        },
        input_checkpoint: inputs.checkpoint,
        outputs,
        metrics: Metrics {
            ua: result.ua,
            ra: result.ra,
            ta: result.ta,
            mia_efficacy: result.mia_efficacy,
            rte_seconds: result.rte_seconds,
        },
        gap_to_retrain: None,
        timings,
        record_sha256: None,
    })
}

/// Writes `dir/audit.json` atomically, with the hash of its fields ([`AuditRecord::sha256`]).
pub fn write(dir: &Path, record: &AuditRecord) -> anyhow::Result<()> {
    let sealed = AuditRecord {
        record_sha256: Some(record.sha256()),
        ..record.clone()
    };
    crate::fsutil::write_json_atomic(&dir.join(FILE_NAME), &sealed)
}

/// Reads `dir/audit.json`, checking its format.
pub fn read(dir: &Path) -> anyhow::Result<AuditRecord> {
    let path = dir.join(FILE_NAME);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {}: no audit record (an unfinished or failed run, or one from an older gunlearn)",
            path.display()
        )
    })?;
    let record: AuditRecord = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a gunlearn audit.json", path.display()))?;
    if record.format != FORMAT {
        bail!(
            "{}: format {:?}, expected {FORMAT:?}",
            path.display(),
            record.format
        );
    }
    Ok(record)
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// The recomputed hash equals the recorded one.
    Ok,
    /// It differs.
    Mismatch {
        /// Recorded SHA-256.
        recorded: String,
        /// Recomputed SHA-256.
        found: String,
    },
    /// The file cannot be read.
    Missing(String),
    /// The value could not be recomputed (the reason); not a failure by itself.
    NotRederived(String),
}

/// One recomputed hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What was checked (`input checkpoint`, `data file`, `output`, `forget indices`).
    pub what: String,
    /// The file (or the embedded data set, or the forget set).
    pub name: String,
    /// The outcome.
    pub status: Status,
}

impl Check {
    /// True for a mismatch or a missing file.
    pub fn failed(&self) -> bool {
        matches!(self.status, Status::Mismatch { .. } | Status::Missing(_))
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let (what, name) = (&self.what, &self.name);
        match &self.status {
            Status::Ok => write!(f, "ok        {what}: {name}"),
            Status::Mismatch { recorded, found } => {
                let is_hash =
                    recorded.len() == 64 && recorded.bytes().all(|b| b.is_ascii_hexdigit());
                let kind = if is_hash { "sha256 " } else { "" };
                write!(
                    f,
                    "MISMATCH  {what}: {name} (recorded {kind}{recorded}, now {found})"
                )
            }
            Status::Missing(why) => write!(f, "missing   {what}: {name} ({why})"),
            Status::NotRederived(why) => write!(f, "not re-derived  {what}: {name} ({why})"),
        }
    }
}

/// Compares `file`'s recorded hash with the file at `path` now.
fn check_file(what: &str, file: &FileHash, path: &Path) -> Check {
    let status = match sha256_file(path) {
        Ok((found, _)) if found == file.sha256 => Status::Ok,
        Ok((found, _)) => Status::Mismatch {
            recorded: file.sha256.clone(),
            found,
        },
        Err(e) => Status::Missing(format!("{:#}", e.root_cause())),
    };
    Check {
        what: what.into(),
        name: path.display().to_string(),
        status,
    }
}

/// Compares a recorded data entry with the data now (the embedded digits recomputed).
fn check_data(file: &FileHash) -> Check {
    if file.path != EMBEDDED_DIGITS {
        return check_file("data file", file, Path::new(&file.path));
    }
    let status = match embedded_digits_hash() {
        Ok(now) if now.sha256 == file.sha256 => Status::Ok,
        Ok(now) => Status::Mismatch {
            recorded: file.sha256.clone(),
            found: now.sha256,
        },
        Err(e) => Status::Missing(format!("{e:#}")),
    };
    Check {
        what: "data".into(),
        name: EMBEDDED_DIGITS.into(),
        status,
    }
}

/// The forget request `forget` records.
fn request(forget: &ForgetAudit) -> anyhow::Result<ForgetRequest> {
    Ok(
        match (forget.kind.as_str(), forget.class, forget.fraction) {
            ("class", Some(class), _) => ForgetRequest::Class {
                class,
                count: forget.num_indexes_to_replace,
            },
            ("random", _, Some(fraction)) => ForgetRequest::Random { fraction },
            ("none", _, _) => ForgetRequest::None,
            (kind, ..) => bail!("forget request {kind:?} is incomplete in the record"),
        },
    )
}

/// The splits, re-derived from the data and the recorded request.
fn rederive_splits(record: &AuditRecord) -> anyhow::Result<crate::data::splits::Splits> {
    let d = &record.data;
    let args = DataConfig {
        dataset: d.dataset,
        data: d.dir.clone(),
        val_set_seed: d.val_set_seed,
        train_subset: d.train_subset,
        test_subset: d.test_subset,
        selection_fraction: d.selection_fraction,
    };
    let ds = args.load()?;
    let seed = u32::try_from(record.forget.seed).context("seed does not fit in 32 bits")?;
    make_splits(&ds, &args.split_config(seed, request(&record.forget)?))
}

/// Checks the recorded index sets (the forgotten indices, and the selection split when the run
/// has one) against the splits re-derived once from the data, when the data files are intact.
fn check_indices(record: &AuditRecord, data_intact: bool) -> Vec<Check> {
    let derived = if data_intact {
        rederive_splits(record).map_err(|e| format!("{e:#}"))
    } else {
        Err("the data files are missing or changed".to_string())
    };
    let check = |what: &str, count: usize, recorded: &str, found: Result<&[usize], &String>| {
        let status = match found {
            Err(why) => Status::NotRederived(why.clone()),
            Ok(idx) => {
                let found = indices_sha256(idx);
                if found == recorded {
                    Status::Ok
                } else {
                    Status::Mismatch {
                        recorded: recorded.to_string(),
                        found,
                    }
                }
            }
        };
        Check {
            what: what.into(),
            name: format!("{count} indices"),
            status,
        }
    };
    let mut forget = check(
        "forget indices",
        record.forget.forget_indices_count,
        &record.forget.forget_indices_sha256,
        derived.as_ref().map(|s| s.forget.as_slice()),
    );
    // The count is what a reader takes from the record: it must be the hashed set's size.
    if let (Ok(s), Status::Ok) = (&derived, &forget.status) {
        if s.forget.len() != record.forget.forget_indices_count {
            forget.status = Status::Mismatch {
                recorded: format!("{} indices", record.forget.forget_indices_count),
                found: format!("{} indices", s.forget.len()),
            };
        }
    }
    let mut checks = vec![forget];
    if let Some(selection) = &record.data.selection {
        let mut c = check(
            "selection split",
            selection.count,
            &selection.sha256,
            derived.as_ref().map(|s| s.selection.as_slice()),
        );
        // The count is part of what the selection record promises.
        if let (Ok(s), Status::Ok) = (&derived, &c.status) {
            if s.selection.len() != selection.count {
                c.status = Status::Mismatch {
                    recorded: format!("{} indices", selection.count),
                    found: format!("{} indices", s.selection.len()),
                };
            }
        }
        checks.push(c);
    }
    checks
}

/// Every check of `dir/audit.json`: input checkpoint, data files, outputs, forgotten indices.
pub fn check_all(dir: &Path) -> anyhow::Result<Vec<Check>> {
    let record = read(dir)?;
    let ckpt = &record.input_checkpoint;
    let mut checks: Vec<Check> = [Some(&ckpt.safetensors), ckpt.json.as_ref()]
        .into_iter()
        .flatten()
        .map(|f| check_file("input checkpoint", f, Path::new(&f.path)))
        .collect();
    let data: Vec<Check> = record.data.files.iter().map(check_data).collect();
    let data_intact = !data.iter().any(Check::failed);
    checks.extend(data);
    checks.extend(
        record
            .outputs
            .iter()
            .map(|f| check_file("output", f, &dir.join(&f.path))),
    );
    checks.extend(check_indices(&record, data_intact));
    checks.push(check_summary(dir, &record));
    checks.push(check_seal(&record));
    Ok(checks)
}

/// The record's method, configuration and metrics against the run's `eval_result.json` (whose
/// bytes the outputs' hashes cover): what the record summarises must say the same.
fn check_summary(dir: &Path, record: &AuditRecord) -> Check {
    let path = dir.join("eval_result.json");
    let status = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<EvalResult>(&b).map_err(|e| e.to_string()))
    {
        Err(why) => Status::Missing(format!("{}: {why}", path.display())),
        Ok(result) => {
            let summary = |method: &str, m: &Metrics, config: &serde_json::Value| {
                format!(
                    "{method} UA {:?} RA {} TA {} MIA-efficacy {:?} RTE {} s, config {}",
                    m.ua, m.ra, m.ta, m.mia_efficacy, m.rte_seconds, config
                )
            };
            let from_result = Metrics {
                ua: result.ua,
                ra: result.ra,
                ta: result.ta,
                mia_efficacy: result.mia_efficacy,
                rte_seconds: result.rte_seconds,
            };
            let recorded = summary(&record.method, &record.metrics, &record.config);
            let found = summary(&result.method, &from_result, &result.config);
            if recorded == found {
                Status::Ok
            } else {
                Status::Mismatch { recorded, found }
            }
        }
    };
    Check {
        what: "summary".into(),
        name: "method, config and metrics vs eval_result.json".into(),
        status,
    }
}

/// The record's own hash: any field edited after the run (a count, a metric, a timing, the
/// gap to Retrain) changes it.
fn check_seal(record: &AuditRecord) -> Check {
    let status = match &record.record_sha256 {
        None => {
            Status::NotRederived("a record of an older version, written without its hash".into())
        }
        Some(sealed) => {
            let found = record.sha256();
            if &found == sealed {
                Status::Ok
            } else {
                Status::Mismatch {
                    recorded: sealed.clone(),
                    found,
                }
            }
        }
    };
    Check {
        what: "record".into(),
        name: "audit.json's own fields".into(),
        status,
    }
}

/// The failed checks of `dir/audit.json` (mismatches and missing files); empty when all match.
pub fn verify(dir: &Path) -> anyhow::Result<Vec<Check>> {
    Ok(check_all(dir)?.into_iter().filter(Check::failed).collect())
}

/// Prints every check of `dir/audit.json` (ok / MISMATCH / missing); an error naming the
/// failed ones when any failed.
pub fn print_checks(dir: &Path) -> anyhow::Result<()> {
    let checks = check_all(dir)?;
    for check in &checks {
        println!("{check}");
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.failed())
        .map(|c| c.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "{}: {} of {} checks failed: {}",
            dir.join(FILE_NAME).display(),
            failed.len(),
            checks.len(),
            failed.join(", ")
        );
    }
    println!(
        "all {} checks of {} passed",
        checks.len(),
        dir.join(FILE_NAME).display()
    );
    Ok(())
}

/// The current time, UTC, as RFC 3339 (`2026-01-31T12:00:00Z`).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_rfc3339(secs)
}

/// Seconds since the Unix epoch as RFC 3339, UTC (civil-from-days, proleptic Gregorian).
pub fn utc_rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(utc_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn tch_version_is_the_pinned_one() {
        let pin = format!("tch = \"={TCH_VERSION}\"");
        assert!(include_str!("../Cargo.toml").contains(&pin), "{pin}");
    }

    #[test]
    fn indices_hash_is_order_free() {
        assert_eq!(indices_sha256(&[3, 1, 2]), indices_sha256(&[1, 2, 3]));
        // SHA-256 of no bytes.
        assert_eq!(
            indices_sha256(&[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
