//! One folder per class, like torchvision's `ImageFolder`: `DIR/train/<class>/…/*.png` and
//! `DIR/test/<class>/…`, PNG or JPEG.
//!
//! As torchvision does, the classes are the sorted folder names of `train/` (class index =
//! position), the images of a class are found in its folder and every folder below it, in the
//! order of `sorted(os.walk(class_folder))` then sorted file names, and a file counts when its
//! extension is an image one (case-insensitive); other files are skipped. Unlike torchvision,
//! names starting with a dot are skipped (so `.ipynb_checkpoints` is no class), and a test
//! class is looked up by name among the train classes rather than indexed by its own position.

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

use super::decode::{decode_jpeg, decode_png, Decoded};
use crate::data::ImageSet;

/// The extensions torchvision's `ImageFolder` takes as images.
const TORCHVISION_IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

/// Deeper folder nesting than this is taken for a symbolic-link loop.
const MAX_DEPTH: usize = 32;

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// The visible subfolders of `dir` (links followed), sorted by name.
fn subfolders(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for e in
        std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))?
    {
        let e = e.with_context(|| format!("cannot list folder {}", dir.display()))?;
        let path = e.path();
        if !is_hidden(&e.file_name()) && path.is_dir() {
            let name = e.file_name().into_string().map_err(|n| {
                anyhow::anyhow!("{}: folder name {n:?} is not UTF-8", dir.display())
            })?;
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Every folder from `dir` down with the image files directly in it (names sorted).
fn walk(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, Vec<PathBuf>)>) -> Result<()> {
    if depth > MAX_DEPTH {
        bail!(
            "{}: folders nested more than {MAX_DEPTH} deep; is there a symbolic-link loop?",
            dir.display()
        );
    }
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for e in
        std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))?
    {
        let e = e.with_context(|| format!("cannot list folder {}", dir.display()))?;
        if is_hidden(&e.file_name()) {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            dirs.push(path);
            continue;
        }
        let ext = path
            .extension()
            .and_then(|x| x.to_str())
            .map(|x| x.to_ascii_lowercase());
        if let Some(ext) = ext.filter(|x| TORCHVISION_IMAGE_EXTENSIONS.contains(&x.as_str())) {
            if !matches!(ext.as_str(), "png" | "jpg" | "jpeg") {
                bail!(
                    "{}: .{ext} images are not read (PNG and JPEG are): convert them to PNG",
                    path.display()
                );
            }
            files.push(path);
        }
    }
    // Python sorts file names, and os.walk's folders by their full path, as strings.
    files.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    out.push((dir.to_path_buf(), files));
    for d in dirs {
        walk(&d, depth + 1, out)?;
    }
    Ok(())
}

/// The image files of one class folder, in torchvision's order.
fn class_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut folders = Vec::new();
    walk(dir, 0, &mut folders)?;
    folders.sort_by(|a, b| {
        a.0.as_os_str()
            .as_encoded_bytes()
            .cmp(b.0.as_os_str().as_encoded_bytes())
    });
    Ok(folders.into_iter().flat_map(|(_, f)| f).collect())
}

fn decode(path: &Path) -> Result<Decoded> {
    let ext = path
        .extension()
        .and_then(|x| x.to_str())
        .map(|x| x.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => decode_png(path),
        _ => decode_jpeg(path),
    }
}

/// Decodes `files` (path, label) into one set. All must share one size; gray images are made
/// RGB when any image is RGB, as torchvision's loader (PIL `convert("RGB")`) makes them all.
/// `like` is a reference image (path, channels, height, width) from the other split.
fn decode_all(
    files: &[(PathBuf, i64)],
    like: Option<(&Path, usize, usize, usize)>,
) -> Result<ImageSet> {
    let decoded: Vec<Result<Decoded>> = files.par_iter().map(|(p, _)| decode(p)).collect();
    let mut images: Vec<Decoded> = Vec::with_capacity(files.len());
    for d in decoded {
        images.push(d?);
    }
    let (ref_path, ref_h, ref_w) = match like {
        Some((p, _, h, w)) => (p, h, w),
        None => (files[0].0.as_path(), images[0].height, images[0].width),
    };
    for (d, (path, _)) in images.iter().zip(files) {
        if (d.height, d.width) != (ref_h, ref_w) {
            bail!(
                "{}: image is {}×{} (H×W) but {} is {ref_h}×{ref_w}; all images must share one \
                 size: resize them first",
                path.display(),
                d.height,
                d.width,
                ref_path.display()
            );
        }
    }
    let rgb = images.iter().any(|d| d.channels == 3) || like.is_some_and(|l| l.1 == 3);
    let channels = if rgb { 3 } else { 1 };
    let gray = images.iter().filter(|d| d.channels == 1).count();
    if rgb && gray > 0 {
        tracing::info!("{gray} gray images repeated to 3 channels to match the RGB ones");
    }
    let mut set = ImageSet {
        images: Vec::with_capacity(files.len() * channels * ref_h * ref_w),
        labels: files.iter().map(|(_, l)| *l).collect(),
        channels,
        height: ref_h,
        width: ref_w,
    };
    for d in images {
        let d = if rgb { d.into_rgb() } else { d };
        set.images.extend_from_slice(&d.pixels);
    }
    Ok(set)
}

/// A gray set as RGB, each plane repeated three times.
fn to_rgb(set: ImageSet) -> ImageSet {
    let plane = set.height * set.width;
    let mut images = Vec::with_capacity(3 * set.images.len());
    for img in set.images.chunks_exact(plane.max(1)) {
        for _ in 0..3 {
            images.extend_from_slice(img);
        }
    }
    ImageSet {
        images,
        channels: 3,
        ..set
    }
}

/// Reads a class-per-folder data set as `(train, test, class names)`; class `i` is the
/// `i`-th train folder name in sorted order.
///
/// Fails, naming the folder or file, when `train/` or `test/` is missing, `train/` has no class
/// folders, a train class has no images, a test class folder is not among the train classes,
/// an image cannot be decoded or is of another format than PNG or JPEG, or sizes differ.
pub fn read_image_folder(dir: &Path) -> Result<(ImageSet, ImageSet, Vec<String>)> {
    let (tr, te) = (dir.join("train"), dir.join("test"));
    if !tr.is_dir() || !te.is_dir() {
        bail!(
            "{}: expected train/ and test/ subfolders, each with one folder of images per class \
             (train/cat/1.png, test/cat/7.png, …)",
            dir.display()
        );
    }
    let classes = subfolders(&tr)?;
    if classes.is_empty() {
        bail!(
            "{}: no class folders; put each class's images in a folder named after the class \
             (for images labelled by a number in their file names, use --dataset png-folder)",
            tr.display()
        );
    }
    let mut train_files = Vec::new();
    for (i, (_, path)) in classes.iter().enumerate() {
        let files = class_files(path)?;
        if files.is_empty() {
            bail!("{}: class folder has no PNG or JPEG images", path.display());
        }
        train_files.extend(files.into_iter().map(|f| (f, i as i64)));
    }
    let mut test_files = Vec::new();
    for (name, path) in subfolders(&te)? {
        let Some(i) = classes.iter().position(|(n, _)| *n == name) else {
            bail!(
                "{}: class {name:?} is not among the train classes ({}); a test class needs a \
                 train folder of the same name",
                path.display(),
                classes
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        test_files.extend(class_files(&path)?.into_iter().map(|f| (f, i as i64)));
    }
    if test_files.is_empty() {
        bail!(
            "{}: no PNG or JPEG images in any class folder",
            te.display()
        );
    }
    let train = decode_all(&train_files, None)?;
    let test = decode_all(
        &test_files,
        Some((&train_files[0].0, train.channels, train.height, train.width)),
    )?;
    // A test set with RGB images makes the train set RGB too.
    let train = if test.channels == 3 && train.channels == 1 {
        to_rgb(train)
    } else {
        train
    };
    Ok((train, test, classes.into_iter().map(|(n, _)| n).collect()))
}
