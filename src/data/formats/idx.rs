//! IDX files (MNIST, Fashion-MNIST), gzipped or raw.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

use super::read_maybe_gz;
use crate::data::ImageSet;

/// Magic number of an unsigned-byte IDX file with 3 dimensions (images).
const MAGIC_IMAGES: u32 = 0x0000_0803;
/// Magic number of an unsigned-byte IDX file with 1 dimension (labels).
const MAGIC_LABELS: u32 = 0x0000_0801;

/// Parses an IDX header with the expected magic; returns the dimensions and the data bytes.
/// `path` names the file in messages (byte offsets count in the gunzipped data).
fn parse_idx<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    what: &str,
) -> Result<(Vec<usize>, &'a [u8])> {
    if bytes.len() < 4 {
        bail!(
            "{}: {} bytes is too short for an IDX header",
            path.display(),
            bytes.len()
        );
    }
    let got = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if got != magic {
        bail!(
            "{}: wrong magic number 0x{got:08x} at byte offset 0, expected 0x{magic:08x} \
             (IDX {what}); is this the right file?",
            path.display()
        );
    }
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        bail!(
            "{}: truncated IDX header: {} bytes, the {} dimensions need {header}",
            path.display(),
            bytes.len(),
            ndim
        );
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let dims_s = dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×");
    let data = &bytes[header..];
    // Checked: crafted dimensions can multiply, wrapping past 2^64, to the real data length.
    let expected = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let Some(expected) = expected else {
        bail!(
            "{}: the IDX header declares dimensions {dims_s}, whose product (the data bytes \
             they need) does not fit in 64 bits, but only {} data bytes follow the {header}-byte \
             header: the header is corrupt or this is not an IDX {what} file; fetch it again",
            path.display(),
            data.len()
        );
    };
    if data.len() != expected {
        bail!(
            "{}: the IDX header declares {dims_s} = {expected} data bytes (from byte offset \
             {header}) but {} follow{}: the file is truncated or corrupt; fetch it again",
            path.display(),
            data.len(),
            if data.len() < expected {
                format!("; the data ends early at byte offset {}", bytes.len())
            } else {
                format!("; {} extra bytes", data.len() - expected)
            }
        );
    }
    Ok((dims, data))
}

/// Largest image side an IDX images file may declare; larger headers are refused as corrupt.
const MAX_SIDE: usize = 1 << 16;

/// Reads an IDX image file (magic 0x803, N×H×W unsigned bytes) as 1-channel images
/// with placeholder labels 0.
pub fn read_idx_images(path: &Path) -> Result<ImageSet> {
    parse_idx_images(path, &read_maybe_gz(path)?)
}

/// Parses the (gunzipped) bytes of an IDX image file; `path` is only used in messages.
pub fn parse_idx_images(path: &Path, bytes: &[u8]) -> Result<ImageSet> {
    let (dims, data) = parse_idx(
        path,
        bytes,
        MAGIC_IMAGES,
        "images, unsigned bytes, 3 dimensions",
    )?;
    let (n, h, w) = (dims[0], dims[1], dims[2]);
    if !(1..=MAX_SIDE).contains(&h) || !(1..=MAX_SIDE).contains(&w) {
        bail!(
            "{}: the IDX header declares {n} images of {h}×{w} pixels; a side must be 1 to \
             {MAX_SIDE}: the header is corrupt; fetch the file again",
            path.display()
        );
    }
    Ok(ImageSet {
        images: data.to_vec(),
        labels: vec![0; n],
        channels: 1,
        height: h,
        width: w,
    })
}

/// Reads an IDX label file (magic 0x801) and checks every label is below `num_classes`.
pub fn read_idx_labels(path: &Path, num_classes: usize) -> Result<Vec<i64>> {
    parse_idx_labels(path, &read_maybe_gz(path)?, num_classes)
}

/// Parses the (gunzipped) bytes of an IDX label file; `path` is only used in messages.
pub fn parse_idx_labels(path: &Path, bytes: &[u8], num_classes: usize) -> Result<Vec<i64>> {
    let (_, data) = parse_idx(
        path,
        bytes,
        MAGIC_LABELS,
        "labels, unsigned bytes, 1 dimension",
    )?;
    for (i, &l) in data.iter().enumerate() {
        if l as usize >= num_classes {
            bail!(
                "{}: label {} of record {} (byte offset {}) is out of range 0..{}",
                path.display(),
                l,
                i,
                8 + i,
                num_classes.saturating_sub(1)
            );
        }
    }
    Ok(data.iter().map(|&l| l as i64).collect())
}

/// Reads an image file and its label file and checks that their counts match.
pub fn read_idx_pair(images: &Path, labels: &Path, num_classes: usize) -> Result<ImageSet> {
    let mut set = read_idx_images(images)?;
    let labels_v = read_idx_labels(labels, num_classes)?;
    if labels_v.len() != set.labels.len() {
        bail!(
            "{} has {} images but {} has {} labels",
            images.display(),
            set.labels.len(),
            labels.display(),
            labels_v.len()
        );
    }
    set.labels = labels_v;
    Ok(set)
}

/// `dir/name.gz` if present, else `dir/name` if present, else an error naming both.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    bail!(
        "missing IDX file: neither {} nor {} exists (the folder must hold train-images-idx3-ubyte, \
         train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, gzipped or raw)",
        raw.display(),
        gz.display()
    )
}

/// Reads an MNIST-layout folder (`train-*-idx?-ubyte[.gz]`, `t10k-*`); returns `(train, test)`.
pub fn read_mnist_dir(dir: &Path, num_classes: usize) -> Result<(ImageSet, ImageSet)> {
    let train = read_idx_pair(
        &find(dir, "train-images-idx3-ubyte")?,
        &find(dir, "train-labels-idx1-ubyte")?,
        num_classes,
    )?;
    let test = read_idx_pair(
        &find(dir, "t10k-images-idx3-ubyte")?,
        &find(dir, "t10k-labels-idx1-ubyte")?,
        num_classes,
    )?;
    if (train.height, train.width) != (test.height, test.width) {
        bail!(
            "{}: train images are {}×{} but test images are {}×{}",
            dir.display(),
            train.height,
            train.width,
            test.height,
            test.width
        );
    }
    Ok((train, test))
}
