//! Readers for the on-disk data set formats. Each returns `ImageSet`s in N×C×H×W `u8`
//! layout and fails with an error naming the file and the byte offset or record at fault.

mod cifar;
mod cifar_pickle;
mod decode;
mod digits;
mod idx;
mod image_folder;
mod mat5;
mod numpy_pickle;
mod png_folder;
mod svhn;

pub use cifar::{read_cifar10, read_cifar100, read_cifar_records, CifarKind};
pub use cifar_pickle::read_cifar_pickle;
pub use digits::{load_digits, parse_digits_csv, DIGITS_MEAN, DIGITS_STD};
pub use idx::{
    parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels, read_idx_pair,
    read_mnist_dir,
};
pub use image_folder::read_image_folder;
pub use png_folder::{label_from_file_name, read_png_dir, read_png_folder};
pub use svhn::{read_svhn, read_svhn_file};

use anyhow::{Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Dimensions as a message writes them: `50000×3072` (`scalar` for none).
pub fn dims_text<T: std::fmt::Display>(dims: &[T]) -> String {
    if dims.is_empty() {
        return "scalar".into();
    }
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}

/// Reads a whole file, with an error naming it.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads a file and gunzips it when it starts with the gzip magic bytes (1f 8b).
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = read_file(path)?;
    gunzip_maybe(path, raw)
}

/// `raw` gunzipped when it starts with the gzip magic bytes (1f 8b), else unchanged; `path`
/// is only used in messages.
pub fn gunzip_maybe(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| {
                format!(
                    "{}: corrupt gzip stream (the file is damaged or was cut short; fetch it \
                     again)",
                    path.display()
                )
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// `dir` itself when it holds the file `probe`, else `dir/sub` when that does; `None` otherwise.
pub(crate) fn resolve_dir(dir: &Path, sub: &str, probe: &str) -> Option<PathBuf> {
    // A file, not just a name: a python-version probe (`train`) may be an image-folder subfolder.
    if dir.join(probe).is_file() {
        Some(dir.to_path_buf())
    } else if dir.join(sub).join(probe).is_file() {
        Some(dir.join(sub))
    } else {
        None
    }
}
