//! scikit-learn's 8×8 handwritten digits, embedded in the binary.
//!
//! `assets/digits.csv.gz` is copied from scikit-learn (BSD-3-Clause; notice in
//! `assets/DIGITS-LICENSE.txt`); the data are the test part of the UCI "Optical Recognition
//! of Handwritten Digits" set. 1 797 rows of 64 values in 0..=16 followed by the label.

use anyhow::{bail, Context, Result};
use std::io::Read;

use crate::data::rng::RandomState;
use crate::data::ImageSet;

/// The embedded gzipped CSV.
static DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../assets/digits.csv.gz");

/// Mean of the training pixels (after u8 quantisation, scaled to [0, 1]).
///
/// Computed once with NumPy over the 1 437 × 64 train pixels of [`load_digits`]'s split:
/// `(round(v·255/16) / 255).mean()`; `tests/data_formats.rs` recomputes it.
pub const DIGITS_MEAN: f64 = 0.30544;
/// Population standard deviation of the same pixels (NumPy `.std()`, ddof 0).
pub const DIGITS_STD: f64 = 0.37570;

/// Parses the digits CSV (`source` only names it in messages): 65 integers per line, 64 pixel
/// values in 0..=16 (scaled to u8 by round(v·255/16)) then the label in 0..=9.
pub fn parse_digits_csv(source: &str, text: &str) -> Result<ImageSet> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 65 {
            bail!(
                "{source}: line {}: {} fields, expected 64 pixels and a label",
                ln + 1,
                fields.len()
            );
        }
        for (col, f) in fields.iter().enumerate() {
            let v: f64 = f.trim().parse().with_context(|| {
                format!(
                    "{source}: line {}, field {}: {f:?} is not a number",
                    ln + 1,
                    col + 1
                )
            })?;
            let max = if col < 64 { 16.0 } else { 9.0 };
            if !(0.0..=max).contains(&v) || v.fract() != 0.0 {
                bail!(
                    "{source}: line {}, field {}: {v} is not an integer in 0..={max}",
                    ln + 1,
                    col + 1
                );
            }
            if col < 64 {
                images.push((v * 255.0 / 16.0).round() as u8);
            } else {
                labels.push(v as i64);
            }
        }
    }
    if labels.is_empty() {
        bail!("{source}: no rows");
    }
    Ok(ImageSet {
        images,
        labels,
        channels: 1,
        height: 8,
        width: 8,
    })
}

/// The embedded digits split into `(train, test)`: NumPy-legacy
/// `RandomState(0).permutation(1797)`, first 1 437 (80 %) → train, the rest → test, each in
/// ascending original index order (the data set has no official test split).
pub fn load_digits() -> Result<(ImageSet, ImageSet)> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .context("embedded digits.csv.gz: corrupt gzip stream")?;
    let all = parse_digits_csv("embedded digits.csv.gz", &text)?;
    let perm = RandomState::new(0).permutation(all.len());
    let cut = all.len() * 4 / 5;
    let mut train_idx = perm[..cut].to_vec();
    let mut test_idx = perm[cut..].to_vec();
    train_idx.sort_unstable();
    test_idx.sort_unstable();
    Ok((all.subset(&train_idx), all.subset(&test_idx)))
}
