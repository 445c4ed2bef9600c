//! CIFAR-10 / CIFAR-100 python versions (`cifar-10-batches-py/`, `cifar-100-python/`).
//!
//! Each file is one pickled dict: `data` is a uint8 NumPy array N×3072 whose rows are laid out
//! like a binary record's pixels (1 024 red, then green, then blue, each row-major 32×32), and
//! `labels` (CIFAR-10) or `fine_labels` (CIFAR-100) is a list of N ints. The published files were
//! written by Python 2's `cPickle` (protocol 2, `str` keys and data); files re-pickled by
//! Python 3 (any protocol, `str` or `bytes` keys, NumPy 1 or 2) read the same.

use anyhow::{bail, Context, Result};
use std::path::Path;

use super::cifar::{CifarKind, PIXELS};
use super::numpy_pickle::{dict_get, dict_keys, np_array};
use crate::data::ImageSet;
use crate::pickle::{parse_with, Py2Str, Value};

/// The pixel rows of `data`: a uint8 array N×3072, or a list of N rows of 3 072 values.
fn pixels(path: &Path, data: &Value) -> Result<(Vec<u8>, usize)> {
    let at = || format!("{}: `data`", path.display());
    if let Some(a) = np_array(data).with_context(at)? {
        if a.dtype.kind != b'u' || a.dtype.size != 1 {
            bail!(
                "{}: is a NumPy {} array; CIFAR pixels must be uint8",
                at(),
                a.dtype
            );
        }
        if a.shape.len() != 2 || a.shape[1] != PIXELS {
            bail!(
                "{}: has shape {:?}, expected (N, {PIXELS}): one row of 3 072 pixel bytes per image",
                at(),
                a.shape
            );
        }
        if a.fortran && a.shape[0] > 1 {
            bail!(
                "{}: the array is stored in Fortran (column-major) order; CIFAR rows must be \
                 C-ordered: re-save it with numpy.ascontiguousarray(data)",
                at()
            );
        }
        return Ok((a.data.to_vec(), a.shape[0]));
    }
    // A list of rows, each bytes, a list of ints or a 3 072-element uint8 array.
    let (Value::List(rows) | Value::Tuple(rows)) = data else {
        bail!(
            "{}: is a {}, expected a uint8 NumPy array N×{PIXELS}",
            at(),
            data.type_name()
        );
    };
    // Grown as rows are read: a crafted list of many empty rows must not reserve 3 072 bytes
    // for each.
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let before = out.len();
        match row {
            Value::Bytes(b) => out.extend_from_slice(b),
            Value::List(vals) | Value::Tuple(vals) => {
                for (j, v) in vals.iter().enumerate() {
                    match v {
                        Value::Int(p) if (0..=255).contains(p) => out.push(*p as u8),
                        Value::Int(p) => bail!(
                            "{}: row {i}, value {j} is {p}, expected an int 0..255",
                            at()
                        ),
                        other => bail!(
                            "{}: row {i}, value {j} is a {}, expected an int 0..255",
                            at(),
                            other.type_name()
                        ),
                    }
                }
            }
            other => match np_array(other).with_context(at)? {
                Some(a) if a.dtype.kind == b'u' && a.dtype.size == 1 => {
                    out.extend_from_slice(a.data)
                }
                _ => bail!(
                    "{}: row {i} is a {}, expected {PIXELS} pixel bytes",
                    at(),
                    other.type_name()
                ),
            },
        }
        if out.len() - before != PIXELS {
            bail!(
                "{}: row {i} has {} values, expected {PIXELS}",
                at(),
                out.len() - before
            );
        }
    }
    Ok((out, rows.len()))
}

/// The labels under `key`: a list of ints or a 1-D integer NumPy array.
fn labels(path: &Path, key: &str, v: &Value) -> Result<Vec<i64>> {
    let at = || format!("{}: `{key}`", path.display());
    if let Some(a) = np_array(v).with_context(at)? {
        if a.shape.len() != 1 {
            bail!("{}: has shape {:?}, expected (N,)", at(), a.shape);
        }
        return a.to_ints().with_context(at);
    }
    let (Value::List(items) | Value::Tuple(items)) = v else {
        bail!("{}: is a {}, expected a list of ints", at(), v.type_name());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, x)| match x {
            Value::Int(l) => Ok(*l),
            other => bail!(
                "{}: entry {i} is a {}, expected an int",
                at(),
                other.type_name()
            ),
        })
        .collect()
}

/// Parses one CIFAR python-version file (`path` is only used in messages).
///
/// Fails, naming the file, when it is not a pickle, when `data` is not N×3072 uint8 in C order,
/// when the label list is missing or its length differs from N, or when a label is out of range
/// (naming the image).
pub fn read_cifar_pickle(path: &Path, bytes: &[u8], kind: CifarKind) -> Result<ImageSet> {
    let (root, used) = parse_with(bytes, Py2Str::Bytes).with_context(|| {
        format!(
            "{}: not a readable {} python-version file (a pickled dict)",
            path.display(),
            kind.name()
        )
    })?;
    if used != bytes.len() {
        bail!(
            "{}: {} bytes after the end of the pickle at byte offset {used}; the file is not \
             one pickled dict",
            path.display(),
            bytes.len() - used
        );
    }
    if !matches!(root, Value::Dict(_)) {
        bail!(
            "{}: the pickle holds a {}, expected the dict of a {} python-version file",
            path.display(),
            root.type_name(),
            kind.name()
        );
    }
    let label_key = match kind {
        CifarKind::Cifar10 => "labels",
        CifarKind::Cifar100 => "fine_labels",
    };
    let get = |key: &str| {
        dict_get(&root, key).with_context(|| {
            format!(
                "{}: no `{key}` in the pickled dict (keys: {}); is this a {} python-version file?",
                path.display(),
                dict_keys(&root).join(", "),
                kind.name()
            )
        })
    };
    let (images, n) = pixels(path, get("data")?)?;
    if n == 0 {
        bail!("{}: `data` holds no images", path.display());
    }
    let labels = labels(path, label_key, get(label_key)?)?;
    if labels.len() != n {
        bail!(
            "{}: {} labels in `{label_key}` but {n} images in `data`",
            path.display(),
            labels.len()
        );
    }
    let c = kind.num_classes() as i64;
    if let Some((i, l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| !(0..c).contains(&l))
    {
        bail!(
            "{}: image {i} has label {l} in `{label_key}` but {} has {c} classes (0..{})",
            path.display(),
            kind.name(),
            c - 1
        );
    }
    Ok(ImageSet {
        images,
        labels,
        channels: 3,
        height: 32,
        width: 32,
    })
}
