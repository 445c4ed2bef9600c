//! SVHN, cropped-digits format: `train_32x32.mat`, `test_32x32.mat` (and `extra_32x32.mat`),
//! MATLAB v5/v7 MAT-files holding `X`, uint8 32×32×3×N in MATLAB's column-major order, and
//! `y`, N×1 labels 1..10 where 10 stands for the digit 0.

use anyhow::{bail, Result};
use std::path::Path;

use super::mat5::{class_name, read_mat_vars, MatVar, MX_UINT8};
use super::{read_file, resolve_dir};
use crate::data::ImageSet;

/// Image side and channels of the cropped-digits format.
const SIDE: usize = 32;
const CHANNELS: usize = 3;

/// The variable `name` of `vars`, or an error naming the file and the variables it has.
fn var<'a>(path: &Path, vars: &'a [MatVar], name: &str) -> Result<&'a MatVar> {
    vars.iter().find(|v| v.name == name).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no variable `{name}`; an SVHN cropped-digits file holds `X` (32×32×3×N uint8) \
             and `y` (N×1 labels 1..10)",
            path.display()
        )
    })
}

/// Parses one SVHN MAT-file (`path` is only used in messages) into N×3×32×32 images with
/// labels 0..9 (label 10 becomes digit 0).
///
/// Fails, naming the file, when `X` or `y` is missing, `X` is not uint8 32×32×3×N, `y` does not
/// hold N integer labels 1..10 (naming the first bad one), or the file is truncated or corrupt.
pub fn read_svhn_file(path: &Path, bytes: &[u8]) -> Result<ImageSet> {
    let p = path.display();
    let vars = read_mat_vars(path, bytes, &["X", "y"])?;
    let x = var(path, &vars, "X")?;
    let y = var(path, &vars, "y")?;
    if x.class != MX_UINT8 || !x.is_u8_data() || x.complex {
        bail!(
            "{p}: `X` (byte offset {}) is a {}{} array, expected uint8 pixels",
            x.offset,
            if x.complex { "complex " } else { "" },
            class_name(x.class)
        );
    }
    // MATLAB drops trailing singleton dimensions, so one image is 32×32×3.
    let n = match x.dims[..] {
        [SIDE, SIDE, CHANNELS, n] => n,
        [SIDE, SIDE, CHANNELS] => 1,
        _ => bail!(
            "{p}: `X` (byte offset {}) has dimensions {:?}, expected 32×32×3×N (height, width, \
             RGB, image)",
            x.offset,
            x.dims
        ),
    };
    if n == 0 {
        bail!("{p}: `X` holds no images");
    }
    if !(6..=15).contains(&y.class) || y.complex {
        bail!(
            "{p}: `y` (byte offset {}) is a {}{} array, expected real numeric labels",
            y.offset,
            if y.complex { "complex " } else { "" },
            class_name(y.class)
        );
    }
    if y.numel() != n || y.dims.iter().filter(|&&d| d != 1).count() > 1 {
        bail!(
            "{p}: `y` (byte offset {}) has dimensions {:?} but `X` holds {n} images; expected \
             {n}×1 labels",
            y.offset,
            y.dims
        );
    }
    let mut labels = Vec::with_capacity(n);
    for (i, v) in y.to_f64s().into_iter().enumerate() {
        if v.fract() != 0.0 || !(1.0..=10.0).contains(&v) {
            bail!(
                "{p}: label {i} of `y` (byte offset {}) is {v}; SVHN labels are 1..10 (10 stands \
                 for the digit 0)",
                y.offset
            );
        }
        labels.push(v as i64 % 10);
    }
    // X[r, c, ch, i] sits at r + 32·c + 1024·ch + 3072·i (column-major); the output plane
    // wants it at ch·1024 + r·32 + c, so each plane is transposed.
    let plane = SIDE * SIDE;
    let mut images = vec![0u8; n * CHANNELS * plane];
    for (src, dst) in x
        .data
        .chunks_exact(plane)
        .zip(images.chunks_exact_mut(plane))
    {
        for r in 0..SIDE {
            for c in 0..SIDE {
                dst[r * SIDE + c] = src[r + SIDE * c];
            }
        }
    }
    Ok(ImageSet {
        images,
        labels,
        channels: CHANNELS,
        height: SIDE,
        width: SIDE,
    })
}

/// Reads SVHN from `dir` or its `svhn/` subfolder: `train_32x32.mat` and `test_32x32.mat`.
/// With `include_extra`, `extra_32x32.mat` (531 131 more, easier, digits) is appended to the
/// training images; otherwise it is ignored. Returns `(train, test)`.
pub fn read_svhn(dir: &Path, include_extra: bool) -> Result<(ImageSet, ImageSet)> {
    let Some(d) = resolve_dir(dir, "svhn", "train_32x32.mat") else {
        bail!(
            "{}: no SVHN data: expected train_32x32.mat and test_32x32.mat (the cropped-digits \
             format) in this folder or in its svhn/ subfolder",
            dir.display()
        );
    };
    let read = |name: &str| {
        let path = d.join(name);
        read_svhn_file(&path, &read_file(&path)?)
    };
    let mut train = read("train_32x32.mat")?;
    if include_extra {
        let extra = read("extra_32x32.mat")?;
        train.images.extend_from_slice(&extra.images);
        train.labels.extend_from_slice(&extra.labels);
    }
    let test = read("test_32x32.mat")?;
    Ok((train, test))
}
