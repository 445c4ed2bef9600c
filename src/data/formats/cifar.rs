//! CIFAR-10 / CIFAR-100 binary versions.

use anyhow::{bail, Result};
use std::path::Path;

use super::{read_file, resolve_dir};
use crate::data::ImageSet;

/// Pixel bytes per CIFAR record: 1 024 red, then green, then blue, each row-major 32×32.
const PIXELS: usize = 3 * 32 * 32;

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
    fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }

    /// Human name for messages.
    fn name(self) -> &'static str {
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

/// Reads and concatenates CIFAR files in order.
fn read_files(dir: &Path, names: &[&str], kind: CifarKind) -> Result<ImageSet> {
    let mut all = ImageSet {
        images: Vec::new(),
        labels: Vec::new(),
        channels: 3,
        height: 32,
        width: 32,
    };
    for name in names {
        let path = dir.join(name);
        let set = read_cifar_records(&path, &read_file(&path)?, kind)?;
        all.images.extend_from_slice(&set.images);
        all.labels.extend_from_slice(&set.labels);
    }
    Ok(all)
}

/// Reads CIFAR-10 (`data_batch_1..5.bin`, `test_batch.bin`) from `dir` or from
/// `dir/cifar-10-batches-bin/`. Returns `(train, test)`.
pub fn read_cifar10(dir: &Path) -> Result<(ImageSet, ImageSet)> {
    let Some(d) = resolve_dir(dir, "cifar-10-batches-bin", "data_batch_1.bin") else {
        bail!(
            "{}: no CIFAR-10 binary data: expected data_batch_1.bin … data_batch_5.bin and \
             test_batch.bin in this folder or in its cifar-10-batches-bin/ subfolder",
            dir.display()
        );
    };
    let train = read_files(
        &d,
        &[
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
        ],
        CifarKind::Cifar10,
    )?;
    let test = read_files(&d, &["test_batch.bin"], CifarKind::Cifar10)?;
    Ok((train, test))
}

/// Reads CIFAR-100 (`train.bin`, `test.bin`, fine labels) from `dir` or from
/// `dir/cifar-100-binary/`. Returns `(train, test)`.
pub fn read_cifar100(dir: &Path) -> Result<(ImageSet, ImageSet)> {
    let Some(d) = resolve_dir(dir, "cifar-100-binary", "train.bin") else {
        bail!(
            "{}: no CIFAR-100 binary data: expected train.bin and test.bin in this folder or \
             in its cifar-100-binary/ subfolder",
            dir.display()
        );
    };
    let train = read_files(&d, &["train.bin"], CifarKind::Cifar100)?;
    let test = read_files(&d, &["test.bin"], CifarKind::Cifar100)?;
    Ok((train, test))
}
