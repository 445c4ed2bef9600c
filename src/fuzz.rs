//! Structure-aware fuzzing of every reader of untrusted bytes, on stable Rust (no `cargo fuzz`,
//! no coverage instrumentation): small real seed files (`tests/fuzz-seeds/<target>/`, written by
//! `scripts/fuzz-seeds.sh`) are mutated with bit flips, byte inserts and deletes, header
//! integers set near their boundaries (0, 1, 2^31, 2^32, `u32::MAX`, values whose product with
//! a record size wraps past 2^64), numbers and strings of JSON/TOML text swapped, truncation,
//! chunk repetition and splicing, and each mutant goes through the reader the CLI uses.
//!
//! A reader may only ever return a clear error naming the file, or a well-formed value. A
//! crash is a panic (caught here), an abort (caught by the supervising process of
//! `examples/fuzz.rs`), memory beyond a fixed multiple of the input's size (measured by
//! [`CountingAlloc`] when the binary installs it), an error that does not name the file or
//! carries a C++ backtrace, or an accepted image set that is not self-consistent. Without
//! coverage feedback the corpus grows by outcome instead: a mutant whose error message (digits
//! removed) was never seen before is kept as a new starting point.

use crate::data::rng::SmallRng;
use crate::data::ImageSet;
use anyhow::{bail, Context, Result};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A reader under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// IDX images and labels (MNIST, Fashion-MNIST), raw.
    Idx,
    /// Gzipped IDX files: the gzip decoder, then the IDX parser.
    Gzip,
    /// CIFAR-10 / CIFAR-100 binary records.
    CifarBin,
    /// CIFAR python-version pickles (NumPy arrays inside).
    CifarPickle,
    /// SVHN MAT-files (MATLAB v5/v7, plain and zlib-compressed elements).
    Mat5,
    /// Safetensors checkpoints, through `checkpoint::load` (what `info` and `eval` call).
    Safetensors,
    /// `torch.save` files (zip archive or legacy pickles), through `import-torch`'s reader.
    TorchPickle,
    /// Sweep files (TOML), read and planned.
    SweepToml,
    /// A sweep's `job.json`.
    JobJson,
    /// A run's `audit.json`, read and checked as `verify-audit` does.
    AuditJson,
}

impl Target {
    /// Every target, in the order the campaign runs them.
    pub const ALL: [Target; 10] = [
        Target::Idx,
        Target::Gzip,
        Target::CifarBin,
        Target::CifarPickle,
        Target::Mat5,
        Target::Safetensors,
        Target::TorchPickle,
        Target::SweepToml,
        Target::JobJson,
        Target::AuditJson,
    ];

    /// The target's name on the command line and its seed folder's name.
    pub fn name(self) -> &'static str {
        match self {
            Target::Idx => "idx",
            Target::Gzip => "gzip",
            Target::CifarBin => "cifar-bin",
            Target::CifarPickle => "cifar-pickle",
            Target::Mat5 => "mat5",
            Target::Safetensors => "safetensors",
            Target::TorchPickle => "torch-pickle",
            Target::SweepToml => "sweep-toml",
            Target::JobJson => "job-json",
            Target::AuditJson => "audit-json",
        }
    }

    /// The target called `name`, or an error listing them.
    pub fn from_name(name: &str) -> Result<Target> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .with_context(|| {
                let all: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown fuzz target {name:?}; the targets are {}",
                    all.join(", ")
                )
            })
    }

    /// The file name an input is written under (readers that take paths see this name).
    fn file_name(self) -> &'static str {
        match self {
            Target::Idx => "fuzz-input-idx3-ubyte",
            Target::Gzip => "fuzz-input-idx3-ubyte.gz",
            Target::CifarBin => "fuzz-input.bin",
            Target::CifarPickle => "fuzz-input-batch",
            Target::Mat5 => "fuzz-input_32x32.mat",
            Target::Safetensors => "fuzz-input.safetensors",
            Target::TorchPickle => "fuzz-input.pth",
            Target::SweepToml => "fuzz-input.toml",
            Target::JobJson => "fuzz-input-job.json",
            Target::AuditJson => "audit.json",
        }
    }

    /// Peak heap growth allowed while reading an input of `len` bytes: a multiple of the input
    /// (the decompressors' worst legitimate ratio is deflate's 1032:1; a pickle's values take
    /// about 100 bytes per opcode byte) plus fixed slack for the reader's own state.
    pub fn memory_limit(self, len: usize) -> usize {
        let factor = match self {
            Target::Gzip | Target::Mat5 => 1100,
            Target::CifarPickle | Target::TorchPickle => 256,
            Target::SweepToml | Target::JobJson | Target::AuditJson => 64,
            Target::Idx | Target::CifarBin | Target::Safetensors => 8,
        };
        len.saturating_mul(factor).saturating_add(32 << 20)
    }

    /// Words worth inserting or swapping in: opcodes, type names, keys of the format.
    fn dictionary(self) -> &'static [&'static [u8]] {
        match self {
            Target::Safetensors => &[
                b"\"F32\"",
                b"\"I32\"",
                b"\"F64\"",
                b"\"F16\"",
                b"\"BF16\"",
                b"\"I64\"",
                b"\"U8\"",
                b"\"BOOL\"",
                b"\"dtype\"",
                b"\"shape\"",
                b"\"data_offsets\"",
                b"\"__metadata__\"",
                b"[]",
                b"[0]",
                b"{}",
                b"_mask\"",
            ],
            Target::CifarPickle | Target::TorchPickle => &[
                b"(",
                b")",
                b"]",
                b"}",
                b"t",
                b"l",
                b"d",
                b"a",
                b"e",
                b"s",
                b"u",
                b"R",
                b"b",
                b"Q",
                b"0",
                b"2",
                b"N",
                b"\x85",
                b"\x86",
                b"\x87",
                b"\x88",
                b"\x94",
                b"\x95",
                b"q\x00",
                b"h\x00",
                b"r\x00\x00\x00\x00",
                b"j\x00\x00\x00\x00",
                b"K\xff",
                b"M\xff\xff",
                b"J\xff\xff\xff\x7f",
                b"\x8a\x08",
                b"\x8c\x07storage",
                b"ctorch._utils\n_rebuild_tensor_v2\n",
                b"ctorch\nFloatStorage\n",
                b"cnumpy.core.multiarray\n_reconstruct\n",
                b"cnumpy\ndtype\n",
                b"U\x02u1",
                b"U\x02<f",
                b"X\x04\x00\x00\x00data",
                b"\x80\x02",
                b".",
            ],
            Target::SweepToml => &[
                b"dataset = ",
                b"arch = ",
                b"epochs = ",
                b"seeds = [",
                b"scenarios = [",
                b"methods = [",
                b"\"class:",
                b"\"random",
                b"[[methods]]",
                b"[",
                b"]",
                b"=",
                b"\"",
                b"\n",
                b"-1",
                b"0",
                b"1e400",
                b"\"Gan\"",
                b"\"FT\"",
                b"grid",
            ],
            Target::JobJson | Target::AuditJson => &[
                b"{",
                b"}",
                b"[",
                b"]",
                b"\"",
                b":",
                b",",
                b"null",
                b"true",
                b"-1",
                b"1e400",
                b"18446744073709551616",
                b"\"\"",
                b"{\"Class\":",
                b"\"kind\":",
            ],
            Target::Idx | Target::Gzip => &[
                b"\x00\x00\x08\x03",
                b"\x00\x00\x08\x01",
                b"\xff\xff\xff\xff",
                b"\x80\x00\x00\x00",
                b"\x1f\x8b\x08\x00",
            ],
            Target::CifarBin => &[b"\x09", b"\x0a", b"\x63", b"\x64", b"\xff"],
            Target::Mat5 => &[
                b"MATLAB 5.0 MAT-file",
                b"IM",
                b"MI",
                b"\x0e\x00\x00\x00",
                b"\x0f\x00\x00\x00",
                b"\x06\x00\x00\x00\x08\x00\x00\x00",
                b"\x05\x00\x00\x00",
                b"\x01\x00\x01\x00X",
                b"\x01\x00\x01\x00y",
                b"\xff\xff\xff\xff",
                b"\x78\x9c",
            ],
        }
    }
}

thread_local! {
    /// Bytes this thread allocated minus those it freed through [`CountingAlloc`], and the
    /// most since the last reset: per thread, so that tests running in parallel do not count
    /// each other's memory.
    static LIVE: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
    static PEAK: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}
/// Whether a [`CountingAlloc`] is installed (set by its first allocation).
static COUNTING: AtomicUsize = AtomicUsize::new(0);
/// Single allocations above this are refused (the process aborts, and the supervisor keeps the
/// input): no reader of a few-KB file has a reason to ask for 2 GiB at once.
pub const HARD_ALLOCATION_LIMIT: usize = 2 << 30;

/// Adds `delta` bytes to this thread's count (no-op while the thread is being torn down).
fn count(delta: isize) {
    let _ = LIVE.try_with(|l| {
        let live = l.get().wrapping_add(delta);
        l.set(live);
        let _ = PEAK.try_with(|p| p.set(p.get().max(live)));
    });
}

/// The system allocator, counting live and peak bytes per thread for the harness's memory
/// check. Install it with
/// `#[global_allocator] static A: gunlearn::fuzz::CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

// SAFETY: every call is forwarded to `System` unchanged; the counters are plain thread-local
// cells (no allocation, no destructor).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        let p = System.alloc(layout);
        if !p.is_null() {
            COUNTING.store(1, Ordering::Relaxed);
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > HARD_ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Resets this thread's peak to its live bytes; returns them.
fn reset_peak() -> isize {
    let live = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(live));
    live
}

/// How one input fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The reader accepted it (and what it returned was well-formed).
    Accepted,
    /// The reader refused it with this message (naming the file).
    Refused(String),
    /// The reader broke its contract: the kind (`panic`, `memory`, `unnamed error`,
    /// `unreadable error`, `inconsistent`, `slow`) and what happened.
    Crash(String, String),
}

/// Where one target's inputs are written and what stays fixed between them.
pub struct Harness {
    target: Target,
    dir: PathBuf,
    /// The input file each execution writes and the reader reads.
    pub input: PathBuf,
}

impl Harness {
    /// A harness for `target` writing its inputs into the folder `dir` (created).
    pub fn new(target: Target, dir: &Path) -> Result<Harness> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let h = Harness {
            target,
            dir: dir.to_path_buf(),
            input: dir.join(target.file_name()),
        };
        if target == Target::Safetensors {
            // The metadata twin every fuzzed weights file is loaded with: ResNet-20 on digits,
            // the architecture of the generated seed checkpoint.
            std::fs::write(h.input.with_extension("json"), checkpoint_json())?;
        }
        Ok(h)
    }

    /// Runs `bytes` through the target's reader, catching panics and measuring memory.
    pub fn run(&self, bytes: &[u8]) -> Outcome {
        let hook_message = install_quiet_hook();
        let base = reset_peak();
        let start = Instant::now();
        IN_HARNESS.with(|h| h.set(true));
        let result = catch_unwind(AssertUnwindSafe(|| self.read(bytes)));
        IN_HARNESS.with(|h| h.set(false));
        let elapsed = start.elapsed();
        let grown = PEAK.with(|p| p.get()).saturating_sub(base).max(0) as usize;
        let outcome = match result {
            Err(_) => Outcome::Crash(
                "panic".into(),
                hook_message
                    .lock()
                    .map(|m| m.clone())
                    .unwrap_or_else(|_| "a panic".into()),
            ),
            Ok(Err(Crashed(kind, msg))) => Outcome::Crash(kind, msg),
            Ok(Ok(None)) => Outcome::Accepted,
            Ok(Ok(Some(message))) => Outcome::Refused(message),
        };
        if matches!(outcome, Outcome::Crash(..)) {
            return outcome;
        }
        let limit = self.target.memory_limit(bytes.len());
        if COUNTING.load(Ordering::Relaxed) == 1 && grown > limit {
            return Outcome::Crash(
                "memory".into(),
                format!(
                    "reading {} bytes took {grown} bytes of heap at its peak (the limit is {limit})",
                    bytes.len()
                ),
            );
        }
        if elapsed > Duration::from_secs(5) {
            return Outcome::Crash(
                "slow".into(),
                format!("reading {} bytes took {elapsed:?}", bytes.len()),
            );
        }
        outcome
    }

    /// The reader's verdict: `Ok(None)` accepted, `Ok(Some(error))` refused by name,
    /// `Err` a broken contract.
    fn read(&self, bytes: &[u8]) -> std::result::Result<Option<String>, Crashed> {
        let path = &self.input;
        let named = |r: Result<()>| -> std::result::Result<Option<String>, Crashed> {
            match r {
                Ok(()) => Ok(None),
                Err(e) => {
                    let text = format!("{e:#}");
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    if text.contains("Exception raised from") || text.contains("frame #") {
                        Err(Crashed(
                            "unreadable error".into(),
                            format!("the error carries a C++ backtrace: {text}"),
                        ))
                    } else if text.contains(name) {
                        Ok(Some(text))
                    } else {
                        Err(Crashed(
                            "unnamed error".into(),
                            format!("the error does not name the file {name}: {text}"),
                        ))
                    }
                }
            }
        };
        use crate::data::formats as f;
        match self.target {
            Target::Idx | Target::Gzip => {
                let set = f::gunzip_maybe(path, bytes.to_vec()).and_then(|raw| {
                    if raw.get(..4) == Some(&[0, 0, 8, 1]) {
                        f::parse_idx_labels(path, &raw, 10).map(|_| None)
                    } else {
                        f::parse_idx_images(path, &raw).map(Some)
                    }
                });
                match set {
                    Ok(Some(set)) => consistent(&set).map(|_| None),
                    Ok(None) => Ok(None),
                    Err(e) => named(Err(e)),
                }
            }
            Target::CifarBin | Target::CifarPickle => {
                type Read = fn(&Path, &[u8], f::CifarKind) -> Result<ImageSet>;
                let read: Read = if self.target == Target::CifarBin {
                    f::read_cifar_records
                } else {
                    f::read_cifar_pickle
                };
                // Either layout may fit: accepted when one does, else both refusals.
                let mut refusals = Vec::new();
                for kind in [f::CifarKind::Cifar10, f::CifarKind::Cifar100] {
                    match read(path, bytes, kind) {
                        Ok(set) => consistent(&set)?,
                        Err(e) => refusals.extend(named(Err(e))?),
                    }
                }
                Ok((refusals.len() == 2).then(|| refusals.join(" | ")))
            }
            Target::Mat5 => match f::read_svhn_file(path, bytes) {
                Ok(set) => consistent(&set).map(|_| None),
                Err(e) => named(Err(e)),
            },
            Target::Safetensors => {
                write_input(path, bytes)?;
                named(crate::checkpoint::load(path, tch::Device::Cpu).map(|_| ()))
            }
            Target::TorchPickle => {
                write_input(path, bytes)?;
                named(crate::torch_io::read_torch_state_dict(path).map(|_| ()))
            }
            Target::SweepToml => {
                write_input(path, bytes)?;
                let spec = match crate::sweep::spec::read(path) {
                    Ok(spec) => spec,
                    Err(e) => return named(Err(e)),
                };
                // Planning checks every setting; its messages name keys, not the file.
                match crate::sweep::spec::plan(&spec, &self.dir.join("sweep-out")) {
                    Ok(_) => Ok(None),
                    Err(e) => Ok(Some(format!("{e:#}"))),
                }
            }
            Target::JobJson => {
                write_input(path, bytes)?;
                match crate::jobs::read_job(path) {
                    Ok(job) => {
                        let _ = job.describe();
                        Ok(None)
                    }
                    Err(e) => named(Err(e)),
                }
            }
            Target::AuditJson => {
                write_input(path, bytes)?;
                if let Err(e) = crate::audit::read(&self.dir) {
                    return named(Err(e));
                }
                // The record reads: recompute what verify-audit checks (files missing here).
                match crate::audit::check_all(&self.dir) {
                    Ok(_) => Ok(None),
                    Err(e) => Ok(Some(format!("{e:#}"))),
                }
            }
        }
    }
}

/// A broken contract found while reading: its kind and description.
struct Crashed(String, String);

fn write_input(path: &Path, bytes: &[u8]) -> std::result::Result<(), Crashed> {
    std::fs::write(path, bytes).map_err(|e| {
        Crashed(
            "harness".into(),
            format!("cannot write {}: {e}", path.display()),
        )
    })
}

/// An accepted image set must be self-consistent, and its first images must batch.
fn consistent(set: &ImageSet) -> std::result::Result<(), Crashed> {
    let per = set
        .channels
        .checked_mul(set.height)
        .and_then(|n| n.checked_mul(set.width));
    let total = per.and_then(|p| p.checked_mul(set.len()));
    if per.is_none_or(|p| p == 0) || total != Some(set.images.len()) {
        return Err(Crashed(
            "inconsistent".into(),
            format!(
                "accepted {} labels of {}×{}×{} images with {} pixel bytes",
                set.len(),
                set.channels,
                set.height,
                set.width,
                set.images.len()
            ),
        ));
    }
    let first: Vec<usize> = (0..set.len().min(4)).collect();
    if !first.is_empty() {
        let _ = crate::data::batches::to_tensor(set, &first);
    }
    Ok(())
}

thread_local! {
    /// Whether this thread is running an input (its panics are findings, not failures).
    static IN_HARNESS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that records the message of a panic inside [`Harness::run`]
/// instead of printing it; other panics go to the previous hook as before.
fn install_quiet_hook() -> &'static Mutex<String> {
    static MESSAGE: Mutex<String> = Mutex::new(String::new());
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_HARNESS.with(|h| h.get()) {
                if let Ok(mut m) = MESSAGE.lock() {
                    *m = info.to_string();
                }
            } else {
                previous(info);
            }
        }));
    });
    &MESSAGE
}

/// The `model.json` the safetensors target loads weights with (ResNet-20, 1 channel, 10
/// classes: the generated seed checkpoint's spec).
fn checkpoint_json() -> String {
    let info = seed_checkpoint_info();
    serde_json::to_string_pretty(&info).expect("a ModelInfo serialises")
}

fn seed_checkpoint_info() -> crate::checkpoint::ModelInfo {
    use crate::data::DatasetName;
    let (mean, std) = DatasetName::Digits.normalization(1);
    crate::checkpoint::ModelInfo {
        format: crate::checkpoint::FORMAT.into(),
        model: crate::model::ModelSpec {
            arch: crate::model::Arch::Resnet20,
            num_classes: 10,
            in_channels: 1,
            mean,
            std,
        },
        dataset: DatasetName::Digits,
        seed: 0,
        epoch: 0,
        accuracy: Default::default(),
        sparsity: 0.0,
        device: "cpu".into(),
        produced_by: "fuzz seed".into(),
        extra: serde_json::Value::Null,
    }
}

/// Writes a freshly initialised ResNet-20 checkpoint for digits (`tch::manual_seed(0)`) as
/// `dir/model.safetensors` with its `model.json`: a real checkpoint, written by gunlearn's own
/// writer, too large (1.1 MB) to commit as a seed. Returns the weights file.
pub fn write_seed_checkpoint(dir: &Path) -> Result<PathBuf> {
    let info = seed_checkpoint_info();
    tch::manual_seed(0);
    let model = crate::model::Classifier::try_new(&info.model, tch::Device::Cpu)?;
    std::fs::create_dir_all(dir)?;
    crate::checkpoint::save(dir, "model", &model, None, &info)?;
    Ok(dir.join("model.safetensors"))
}

/// The seed files of `target` under `root` (`tests/fuzz-seeds`), sorted by name; for the
/// safetensors target also the generated checkpoint (written into `scratch`).
pub fn seeds(target: Target, root: &Path, scratch: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let dir = root.join(target.name());
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "{}: no seed folder for the {} target; run scripts/fuzz-seeds.sh",
                dir.display(),
                target.name()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        out.push((p.display().to_string(), bytes));
    }
    if target == Target::Safetensors {
        let p = write_seed_checkpoint(&scratch.join("seed-checkpoint"))?;
        out.push((p.display().to_string(), std::fs::read(&p)?));
    }
    if out.is_empty() {
        bail!("{}: no seed files", dir.display());
    }
    Ok(out)
}

/// Integers that break size arithmetic: boundaries of the integer types, and values whose
/// product with a common record or element size wraps past 2^64 to a small number.
fn interesting(rng: &mut SmallRng, len: usize) -> u64 {
    const FIXED: [u64; 24] = [
        0,
        1,
        2,
        3,
        4,
        7,
        8,
        0x7f,
        0x80,
        0xff,
        0x100,
        0x7fff,
        0x8000,
        0xffff,
        0x1_0000,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0x1_0000_0000,
        0x7fff_ffff_ffff_ffff,
        0x8000_0000_0000_0000,
        u64::MAX,
        u64::MAX - 1,
        1 << 40,
    ];
    match rng.below(4) {
        0 | 1 => FIXED[rng.below(FIXED.len() as u64) as usize],
        2 => {
            // ceil(2^64 / s) (+ a little): multiplied by s it wraps to a small number.
            const SIZES: [u64; 10] = [2, 3, 4, 8, 12, 16, 1024, 3072, 3073, 3074];
            let s = SIZES[rng.below(SIZES.len() as u64) as usize];
            (u64::MAX / s + 1).wrapping_add(rng.below(4))
        }
        _ => (len as u64).wrapping_add(rng.below(5)).wrapping_sub(2),
    }
}

/// Decimal spellings that break number parsing and size arithmetic in text formats.
const TEXT_NUMBERS: [&str; 16] = [
    "0",
    "-1",
    "1",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1e400",
    "0.5",
    "NaN",
    "99999999999999999999999999",
    "6004799503160662",
];

/// The mutation engine: one seeded generator, the target's structure in mind.
pub struct Mutator {
    rng: SmallRng,
    target: Target,
}

impl Mutator {
    /// A mutator for `target` seeded with `seed`.
    pub fn new(target: Target, seed: u64) -> Mutator {
        Mutator {
            rng: SmallRng::new(seed),
            target,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n.max(1) as u64) as usize
    }

    /// A byte offset where mutations matter most: in a safetensors file, its JSON header;
    /// elsewhere mostly the first 256 bytes (headers), else anywhere.
    fn offset(&mut self, data: &[u8]) -> usize {
        if data.is_empty() {
            return 0;
        }
        if self.target == Target::Safetensors && data.len() >= 8 && self.below(8) != 0 {
            let n = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
            let end = (n.saturating_add(8)).min(data.len() as u64) as usize;
            return self.below(end);
        }
        if self.below(2) == 0 {
            self.below(data.len().min(256))
        } else {
            self.below(data.len())
        }
    }

    /// A mutant of `input` (1 to 4 stacked mutations); `others` are inputs to splice from.
    pub fn mutate(&mut self, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
        let mut data = input.to_vec();
        let rounds = 1 + self.below(4);
        for _ in 0..rounds {
            self.mutate_once(&mut data, others);
        }
        data
    }

    fn mutate_once(&mut self, data: &mut Vec<u8>, others: &[Vec<u8>]) {
        let text = matches!(
            self.target,
            Target::SweepToml | Target::JobJson | Target::AuditJson | Target::Safetensors
        );
        let choice = self.below(if text { 13 } else { 11 });
        match choice {
            // Bit flips.
            0 => {
                for _ in 0..1 + self.below(4) {
                    if data.is_empty() {
                        break;
                    }
                    let at = self.offset(data);
                    data[at] ^= 1 << self.below(8);
                }
            }
            // A random byte.
            1 => {
                if !data.is_empty() {
                    let at = self.offset(data);
                    data[at] = self.below(256) as u8;
                }
            }
            // Insert random bytes.
            2 => {
                let at = self.offset(data).min(data.len());
                let n = 1 + self.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| self.below(256) as u8).collect();
                data.splice(at..at, bytes);
            }
            // Delete a range.
            3 => {
                if !data.is_empty() {
                    let at = self.offset(data);
                    let n = (1 + self.below(32)).min(data.len() - at);
                    data.drain(at..at + n);
                }
            }
            // A header integer near a boundary, 1, 2, 4 or 8 bytes, either byte order.
            4 | 5 => {
                let width = [1usize, 2, 4, 8][self.below(4)];
                if data.len() >= width {
                    let at = self.offset(data).min(data.len() - width);
                    let v = interesting(&mut self.rng, data.len());
                    let le = v.to_le_bytes();
                    let mut bytes = le[..width].to_vec();
                    if self.rng.coin() {
                        bytes.reverse();
                    }
                    data[at..at + width].copy_from_slice(&bytes);
                }
            }
            // Truncation.
            6 => {
                let n = self.below(data.len() + 1);
                data.truncate(n);
            }
            // Repeat a chunk many times (deep nesting, long lists, bombs).
            7 => {
                if !data.is_empty() {
                    let at = self.offset(data);
                    let n = (1 + self.below(8)).min(data.len() - at);
                    let chunk = data[at..at + n].to_vec();
                    let times = [2usize, 16, 256, 4096][self.below(4)];
                    let rep: Vec<u8> = chunk.iter().copied().cycle().take(n * times).collect();
                    data.splice(at..at, rep);
                }
            }
            // Splice: this input's head, another's tail.
            8 => {
                if !others.is_empty() {
                    let other = &others[self.below(others.len())];
                    let cut = self.below(data.len() + 1);
                    let from = self.below(other.len() + 1);
                    data.truncate(cut);
                    data.extend_from_slice(&other[from..]);
                }
            }
            // A dictionary word inserted or written over.
            9 | 10 => {
                let dict = self.target.dictionary();
                let word = dict[self.below(dict.len())];
                let at = self.offset(data).min(data.len());
                if self.rng.coin() || at + word.len() > data.len() {
                    data.splice(at..at, word.iter().copied());
                } else {
                    data[at..at + word.len()].copy_from_slice(word);
                }
            }
            // Text: a number replaced by a boundary spelling.
            11 => {
                let numbers = tokens(data, |c| c.is_ascii_digit() || c == b'-' || c == b'.');
                if !numbers.is_empty() {
                    let (s, e) = numbers[self.below(numbers.len())];
                    let n = TEXT_NUMBERS[self.below(TEXT_NUMBERS.len())];
                    data.splice(s..e, n.bytes());
                }
            }
            // Text: a quoted string replaced by another of the input's.
            _ => {
                let strings = quoted(data);
                if strings.len() >= 2 {
                    let (s, e) = strings[self.below(strings.len())];
                    let (s2, e2) = strings[self.below(strings.len())];
                    let other = data[s2..e2].to_vec();
                    data.splice(s..e, other);
                }
            }
        }
    }
}

/// Maximal runs of bytes satisfying `is`, as (start, end).
fn tokens(data: &[u8], is: impl Fn(u8) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &c) in data.iter().enumerate() {
        match (is(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, data.len()));
    }
    out
}

/// Double-quoted strings (quotes included), as (start, end), in the first 64 KiB.
fn quoted(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut open = None;
    for (i, &c) in data.iter().enumerate().take(1 << 16) {
        if c == b'"' {
            match open {
                None => open = Some(i),
                Some(s) => {
                    out.push((s, i + 1));
                    open = None;
                }
            }
        } else if c == b'\n' {
            open = None;
        }
    }
    out
}

/// The shape of a refusal message, numbers removed, to tell new outcomes from seen ones.
fn bucket(message: &str) -> String {
    message
        .split_whitespace()
        .filter(|w| !w.starts_with("0x"))
        .flat_map(|w| w.chars().filter(|c| !c.is_ascii_digit()).chain([' ']))
        .take(200)
        .collect()
}

/// One contract violation: what happened and the input that did it.
#[derive(Debug, Clone)]
pub struct Crash {
    /// `panic`, `memory`, `unnamed error`, `unreadable error`, `inconsistent`, `slow`.
    pub kind: String,
    /// What happened.
    pub message: String,
    /// The input, saved under the crash folder when one was given.
    pub saved: Option<PathBuf>,
    /// The input's bytes.
    pub bytes: Vec<u8>,
}

/// How long and where to fuzz.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seed of the mutator (runs with the same seed and seeds try the same inputs).
    pub seed: u64,
    /// Stop after this many executions.
    pub iterations: Option<u64>,
    /// Stop after this much time.
    pub duration: Option<Duration>,
    /// Save crashing inputs here (`<kind>-<n>.bin`).
    pub crash_dir: Option<PathBuf>,
    /// Write each input here before running it, so that a supervisor can keep the one that
    /// aborted the process.
    pub last_input: Option<PathBuf>,
    /// Print a progress line this often (to standard output).
    pub progress: Option<Duration>,
}

/// What a fuzzing run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Inputs run (seeds included).
    pub executions: u64,
    /// Inputs the reader accepted.
    pub accepted: u64,
    /// Inputs the reader refused with an error naming the file.
    pub refused: u64,
    /// Contract violations.
    pub crashes: Vec<Crash>,
    /// Corpus size at the end (seeds plus mutants with new outcomes).
    pub corpus: usize,
    /// Distinct refusal shapes seen.
    pub outcomes: usize,
    /// Time taken.
    pub elapsed: Duration,
}

/// Fuzzes `target` from `seeds` in the scratch folder `dir` until `opts` says stop.
pub fn fuzz(target: Target, seeds: &[Vec<u8>], dir: &Path, opts: &Options) -> Result<Report> {
    if seeds.is_empty() {
        bail!("no seeds for the {} target", target.name());
    }
    let harness = Harness::new(target, dir)?;
    let mut mutator = Mutator::new(target, opts.seed);
    let mut corpus: Vec<Vec<u8>> = seeds.to_vec();
    let mut seen: HashSet<String> = HashSet::new();
    let mut report = Report::default();
    let start = Instant::now();
    let mut last_progress = start;
    let mut next = 0usize;
    loop {
        if opts.iterations.is_some_and(|n| report.executions >= n)
            || opts.duration.is_some_and(|d| start.elapsed() >= d)
        {
            break;
        }
        // The seeds themselves first, then mutants of corpus entries.
        let is_seed = next < seeds.len();
        let input = if is_seed {
            next += 1;
            seeds[next - 1].clone()
        } else {
            let base = corpus[mutator.below(corpus.len())].clone();
            mutator.mutate(&base, &corpus)
        };
        if let Some(p) = &opts.last_input {
            std::fs::write(p, &input).with_context(|| format!("writing {}", p.display()))?;
        }
        let outcome = harness.run(&input);
        report.executions += 1;
        match outcome {
            Outcome::Accepted => {
                report.accepted += 1;
                if seen.insert("accepted".into()) && !is_seed {
                    corpus.push(input);
                }
            }
            Outcome::Refused(message) => {
                report.refused += 1;
                if seen.insert(bucket(&message)) && !is_seed && corpus.len() < 512 {
                    corpus.push(input);
                }
            }
            Outcome::Crash(kind, message) => {
                let saved = match &opts.crash_dir {
                    Some(d) => {
                        std::fs::create_dir_all(d)?;
                        let p = d.join(format!(
                            "{}-{}-{}.bin",
                            target.name(),
                            kind.replace(' ', "-"),
                            report.crashes.len()
                        ));
                        std::fs::write(&p, &input)?;
                        Some(p)
                    }
                    None => None,
                };
                println!(
                    "CRASH target={} kind={kind} input={} message={}",
                    target.name(),
                    saved
                        .as_ref()
                        .map_or("(not saved)".into(), |p| p.display().to_string()),
                    message.replace('\n', " ")
                );
                report.crashes.push(Crash {
                    kind,
                    message,
                    saved,
                    bytes: input,
                });
            }
        }
        if let Some(every) = opts.progress {
            if last_progress.elapsed() >= every {
                last_progress = Instant::now();
                println!(
                    "STATS target={} execs={} accepted={} refused={} crashes={} corpus={} outcomes={} elapsed={:.0}",
                    target.name(),
                    report.executions,
                    report.accepted,
                    report.refused,
                    report.crashes.len(),
                    corpus.len(),
                    seen.len(),
                    start.elapsed().as_secs_f64()
                );
            }
        }
    }
    report.corpus = corpus.len();
    report.outcomes = seen.len();
    report.elapsed = start.elapsed();
    Ok(report)
}
