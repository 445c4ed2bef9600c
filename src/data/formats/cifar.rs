//! CIFAR-10 / CIFAR-100 binary versions, and the choice between them and the python versions.

use anyhow::{bail, Result};
use std::path::Path;

use super::cifar_pickle::read_cifar_pickle;
use super::{read_file, resolve_dir};
use crate::data::ImageSet;

/// Pixel bytes per CIFAR record: 1 024 red, then green, then blue, each row-major 32×32.
pub(crate) const PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR binary record layout a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarKind {
    /// 1 label byte, then the pixels; 10 classes.
    Cifar10,
    /// 1 coarse-label byte, 1 fine-label byte, then the pixels; 100 (fine) classes.
    Cifar100,
}

impl CifarKind {
    /// Label bytes before the pixels.
    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }

    /// Number of classes of the label we keep.
    pub(crate) fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }

    /// Human name for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "CIFAR-10",
            CifarKind::Cifar100 => "CIFAR-100",
        }
    }
}

/// Parses the records of one CIFAR binary file (`path` is only used in messages).
///
/// Fails when the length is not a whole number of records (naming the offset of the partial
/// record), when the file is empty, or when a label is out of range (naming the record).
pub fn read_cifar_records(path: &Path, bytes: &[u8], kind: CifarKind) -> Result<ImageSet> {
    let lb = kind.label_bytes();
    let rec = lb + PIXELS;
    if bytes.is_empty() {
        bail!(
            "{}: file is empty, expected {}-byte {} records",
            path.display(),
            rec,
            kind.name()
        );
    }
    if !bytes.len().is_multiple_of(rec) {
        let whole = bytes.len() / rec;
        bail!(
            "{}: truncated {} file: {} bytes is not a whole number of {}-byte records; \
             record {} at byte offset {} has only {} bytes",
            path.display(),
            kind.name(),
            bytes.len(),
            rec,
            whole,
            whole * rec,
            bytes.len() - whole * rec
        );
    }
    let n = bytes.len() / rec;
    let mut images = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (r, chunk) in bytes.chunks_exact(rec).enumerate() {
        // CIFAR-100 keeps the fine label, the second byte.
        let label = chunk[lb - 1] as usize;
        if label >= kind.num_classes() {
            bail!(
                "{}: record {} (byte offset {}) has label {} but {} has {} classes (0..{})",
                path.display(),
                r,
                r * rec + lb - 1,
                label,
                kind.name(),
                kind.num_classes(),
                kind.num_classes() - 1
            );
        }
        labels.push(label as i64);
        images.extend_from_slice(&chunk[lb..]);
    }
    Ok(ImageSet {
        images,
        labels,
        channels: 3,
        height: 32,
        width: 32,
    })
}

/// Decodes one CIFAR file (binary records or python pickle) whose bytes are given.
type Decoder = fn(&Path, &[u8], CifarKind) -> Result<ImageSet>;

/// Reads and concatenates CIFAR files in order, each decoded by `decode`.
fn read_files(dir: &Path, names: &[&str], kind: CifarKind, decode: Decoder) -> Result<ImageSet> {
    let mut all = ImageSet {
        images: Vec::new(),
        labels: Vec::new(),
        channels: 3,
        height: 32,
        width: 32,
    };
    for name in names {
        let path = dir.join(name);
        let set = decode(&path, &read_file(&path)?, kind)?;
        all.images.extend_from_slice(&set.images);
        all.labels.extend_from_slice(&set.labels);
    }
    Ok(all)
}

/// The five CIFAR-10 training batches, in order, without the `.bin` of the binary version.
const CIFAR10_TRAIN: [&str; 5] = [
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
];

/// Reads CIFAR-10 from `dir` or its `cifar-10-batches-bin/` or `cifar-10-batches-py/`
/// subfolder: the binary version (`data_batch_1..5.bin`, `test_batch.bin`) when present, else
/// the python version (`data_batch_1..5`, `test_batch`). Returns `(train, test)`.
pub fn read_cifar10(dir: &Path) -> Result<(ImageSet, ImageSet)> {
    if let Some(d) = resolve_dir(dir, "cifar-10-batches-bin", "data_batch_1.bin") {
        let names = CIFAR10_TRAIN.map(|n| format!("{n}.bin"));
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let train = read_files(&d, &names, CifarKind::Cifar10, read_cifar_records)?;
        let test = read_files(
            &d,
            &["test_batch.bin"],
            CifarKind::Cifar10,
            read_cifar_records,
        )?;
        return Ok((train, test));
    }
    if let Some(d) = resolve_dir(dir, "cifar-10-batches-py", "data_batch_1") {
        let train = read_files(&d, &CIFAR10_TRAIN, CifarKind::Cifar10, read_cifar_pickle)?;
        let test = read_files(&d, &["test_batch"], CifarKind::Cifar10, read_cifar_pickle)?;
        return Ok((train, test));
    }
    bail!(
        "{}: no CIFAR-10 data: expected the binary version (data_batch_1.bin … \
         data_batch_5.bin, test_batch.bin) or the python version (data_batch_1 … data_batch_5, \
         test_batch) in this folder or in its cifar-10-batches-bin/ or cifar-10-batches-py/ \
         subfolder",
        dir.display()
    );
}

/// Reads CIFAR-100 (fine labels) from `dir` or its `cifar-100-binary/` or `cifar-100-python/`
/// subfolder: the binary version (`train.bin`, `test.bin`) when present, else the python
/// version (`train`, `test`). Returns `(train, test)`.
pub fn read_cifar100(dir: &Path) -> Result<(ImageSet, ImageSet)> {
    if let Some(d) = resolve_dir(dir, "cifar-100-binary", "train.bin") {
        let train = read_files(&d, &["train.bin"], CifarKind::Cifar100, read_cifar_records)?;
        let test = read_files(&d, &["test.bin"], CifarKind::Cifar100, read_cifar_records)?;
        return Ok((train, test));
    }
    if let Some(d) = resolve_dir(dir, "cifar-100-python", "train") {
        let train = read_files(&d, &["train"], CifarKind::Cifar100, read_cifar_pickle)?;
        let test = read_files(&d, &["test"], CifarKind::Cifar100, read_cifar_pickle)?;
        return Ok((train, test));
    }
    bail!(
        "{}: no CIFAR-100 data: expected the binary version (train.bin, test.bin) or the python \
         version (train, test) in this folder or in its cifar-100-binary/ or cifar-100-python/ \
         subfolder",
        dir.display()
    );
}
