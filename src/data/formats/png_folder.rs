//! A folder of PNG images labelled by the last number in their file names
//! (`cifar10_07_3.png` → class 3, the foolbox sample naming).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

use super::decode::decode_png;
use crate::data::ImageSet;

/// The last run of ASCII digits in the file stem, e.g. `cifar10_07_3.png` → 3.
pub fn label_from_file_name(name: &str) -> Option<i64> {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let bytes = stem.as_bytes();
    let end = bytes.iter().rposition(|b| b.is_ascii_digit())? + 1;
    let start = bytes[..end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |p| p + 1);
    stem[start..end].parse().ok()
}

/// Above this many classes an inferred label is more likely a date or an id than a class.
const MAX_INFERRED_CLASSES: i64 = 100_000;

/// Reads every `*.png` directly in `dir`, sorted by file name; all must share size and
/// channel count, and each name must contain a number (its label, below `num_classes` if given).
pub fn read_png_dir(dir: &Path, num_classes: Option<usize>) -> Result<ImageSet> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))?;
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("cannot list folder {}", dir.display()))?;
        let path = e.path();
        let is_png = path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| x.eq_ignore_ascii_case("png"));
        if is_png && path.is_file() {
            files.push((e.file_name().to_string_lossy().into_owned(), path));
        }
    }
    if files.is_empty() {
        bail!("{}: no *.png files", dir.display());
    }
    files.sort();
    let mut set: Option<ImageSet> = None;
    for (name, path) in &files {
        let Some(label) = label_from_file_name(name) else {
            bail!(
                "{}: file name has no number to use as its label (expected e.g. cifar10_07_3.png → 3)",
                path.display()
            );
        };
        if let Some(c) = num_classes {
            if label as usize >= c {
                bail!(
                    "{}: label {label} (from the file name) is out of range for {c} classes (0..{})",
                    path.display(),
                    c.saturating_sub(1)
                );
            }
        }
        let d = decode_png(path)?;
        let s = set.get_or_insert_with(|| ImageSet {
            images: Vec::new(),
            labels: Vec::new(),
            channels: d.channels,
            height: d.height,
            width: d.width,
        });
        if (d.channels, d.height, d.width) != (s.channels, s.height, s.width) {
            bail!(
                "{}: image is {}×{}×{} (C×H×W) but {} is {}×{}×{}; all images must share size and channels",
                path.display(),
                d.channels,
                d.height,
                d.width,
                files[0].1.display(),
                s.channels,
                s.height,
                s.width
            );
        }
        s.images.extend_from_slice(&d.pixels);
        s.labels.push(label);
    }
    Ok(set.expect("at least one file"))
}

/// Reads a PNG folder as `(train, test, num_classes)`.
///
/// With `train/` and `test/` subfolders each is read on its own; otherwise the folder's
/// images are both train and test. `num_classes` defaults to the largest label + 1; when
/// given, every label must be below it.
pub fn read_png_folder(
    dir: &Path,
    num_classes: Option<usize>,
) -> Result<(ImageSet, ImageSet, usize)> {
    if !dir.is_dir() {
        bail!(
            "{}: PNG folder does not exist or is not a folder",
            dir.display()
        );
    }
    let (tr, te) = (dir.join("train"), dir.join("test"));
    let (train, test) = if tr.is_dir() && te.is_dir() {
        let train = read_png_dir(&tr, num_classes)?;
        let test = read_png_dir(&te, num_classes)?;
        if (train.channels, train.height, train.width) != (test.channels, test.height, test.width) {
            bail!(
                "{}: train images are {}×{}×{} but test images are {}×{}×{}",
                dir.display(),
                train.channels,
                train.height,
                train.width,
                test.channels,
                test.height,
                test.width
            );
        }
        (train, test)
    } else {
        let set = read_png_dir(dir, num_classes)?;
        (set.clone(), set)
    };
    let max_label = train
        .labels
        .iter()
        .chain(&test.labels)
        .copied()
        .max()
        .unwrap_or(0);
    let classes = match num_classes {
        Some(c) => c,
        None if max_label >= MAX_INFERRED_CLASSES => bail!(
            "{}: largest label in the file names is {max_label}; that many classes is not \
             plausible, so rename the files (label = last number in the name)",
            dir.display()
        ),
        None => max_label as usize + 1,
    };
    Ok((train, test, classes))
}
