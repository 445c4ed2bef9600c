//! Data sets: readers, NumPy-compatible splits, augmentation and batching.

use std::path::{Path, PathBuf};

pub use augment::Augment;

/// The data sets gunlearn can read.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// scikit-learn's 8×8 handwritten digits, embedded in the binary (the default).
    Digits,
    /// MNIST, IDX files (gzipped or raw).
    Mnist,
    /// Fashion-MNIST, IDX files (gzipped or raw).
    FashionMnist,
    /// CIFAR-10, binary or python version.
    Cifar10,
    /// CIFAR-100, binary or python version (fine labels).
    Cifar100,
    /// A folder of PNG images whose label is the last number in the file name.
    PngFolder,
    /// SVHN cropped digits: train_32x32.mat and test_32x32.mat (label 10 is the digit 0).
    Svhn,
    /// One folder of PNG or JPEG images per class under train/ and test/ (torchvision's ImageFolder).
    ImageFolder,
}

/// Images in N×C×H×W row-major `u8` layout, with one label per image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Pixels, `len() * channels * height * width` bytes.
    pub images: Vec<u8>,
    /// Class index per image.
    pub labels: Vec<i64>,
    /// Channels per image (1 or 3).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
}

/// A data set as read from disk: its official train and test parts and its normalisation.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// Which data set this is.
    pub name: DatasetName,
    /// Number of classes C (labels are 0..C).
    pub num_classes: usize,
    /// The official training images (50 000 for CIFAR), in file order.
    pub train: ImageSet,
    /// The official test images.
    pub test: ImageSet,
    /// Per-channel mean used by the model's normalisation layer.
    pub mean: Vec<f64>,
    /// Per-channel standard deviation used by the model's normalisation layer.
    pub std: Vec<f64>,
}

pub mod augment;
pub mod batches;
pub mod device_batches;
pub mod formats;
pub mod rng;
pub mod splits;

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image (channels × height × width).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let n = self.image_len();
        let mut images = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            images.extend_from_slice(&self.images[i * n..(i + 1) * n]);
        }
        ImageSet {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }
}

/// Reads a data set. `dir` is required for every data set except the embedded `digits`.
///
/// `PngFolder` infers the number of classes (largest label + 1); use
/// [`formats::read_png_folder`] to give it explicitly.
pub fn load(name: DatasetName, dir: Option<&Path>) -> anyhow::Result<DataSet> {
    let need_dir = || -> anyhow::Result<&Path> {
        dir.ok_or_else(|| {
            anyhow::anyhow!(
                "data set {} needs `--data DIR`: {}",
                name.cli_name(),
                name.expected_layout()
            )
        })
    };
    // Folders of images count their classes; every other kind has a fixed number.
    let ((train, test), counted) = match name {
        DatasetName::Digits => (formats::load_digits()?, None),
        DatasetName::Mnist | DatasetName::FashionMnist => {
            (formats::read_mnist_dir(need_dir()?, 10)?, None)
        }
        DatasetName::Cifar10 => (formats::read_cifar10(need_dir()?)?, None),
        DatasetName::Cifar100 => (formats::read_cifar100(need_dir()?)?, None),
        DatasetName::PngFolder => {
            let (train, test, classes) = formats::read_png_folder(need_dir()?, None)?;
            ((train, test), Some(classes))
        }
        // extra_32x32.mat is left out, as the reference does; formats::read_svhn opts in.
        DatasetName::Svhn => (formats::read_svhn(need_dir()?, false)?, None),
        DatasetName::ImageFolder => {
            let (train, test, classes) = formats::read_image_folder(need_dir()?)?;
            ((train, test), Some(classes.len()))
        }
    };
    let num_classes = counted
        .or(name.known_num_classes())
        .expect("a data set's kind fixes its class count unless its folder counts them");
    let (mean, std) = name.normalization(train.channels);
    Ok(DataSet {
        name,
        num_classes,
        train,
        test,
        mean,
        std,
    })
}

impl DatasetName {
    /// The number of classes a data set of this kind has, where the kind fixes it (folders of
    /// images have as many as their files name).
    pub fn known_num_classes(&self) -> Option<usize> {
        match self {
            DatasetName::Cifar100 => Some(100),
            DatasetName::PngFolder | DatasetName::ImageFolder => None,
            _ => Some(10),
        }
    }

    /// The name used on the command line (`--dataset`).
    pub fn cli_name(&self) -> &'static str {
        match self {
            DatasetName::Digits => "digits",
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Cifar10 => "cifar10",
            DatasetName::Cifar100 => "cifar100",
            DatasetName::PngFolder => "png-folder",
            DatasetName::Svhn => "svhn",
            DatasetName::ImageFolder => "image-folder",
        }
    }

    /// What the `--data DIR` folder must contain, for help and error messages.
    pub fn expected_layout(&self) -> &'static str {
        match self {
            DatasetName::Digits => "nothing: the digits data set is embedded",
            DatasetName::Mnist | DatasetName::FashionMnist => {
                "a folder with train-images-idx3-ubyte, train-labels-idx1-ubyte, \
                 t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each raw or .gz)"
            }
            DatasetName::Cifar10 => {
                "the CIFAR-10 binary folder cifar-10-batches-bin/ (data_batch_1.bin … \
                 data_batch_5.bin, test_batch.bin) or python folder cifar-10-batches-py/ \
                 (data_batch_1 … data_batch_5, test_batch), or their parent (binary preferred)"
            }
            DatasetName::Cifar100 => {
                "the CIFAR-100 binary folder cifar-100-binary/ (train.bin, test.bin) or python \
                 folder cifar-100-python/ (train, test), or their parent (binary preferred)"
            }
            DatasetName::PngFolder => {
                "a folder of *.png images labelled by the last number in the file name \
                 (cifar10_07_3.png → class 3), optionally split into train/ and test/ subfolders"
            }
            DatasetName::Svhn => {
                "a folder (or its svhn/ subfolder) with SVHN's cropped-digits MAT-files \
                 train_32x32.mat and test_32x32.mat (MATLAB v5/v7, not v7.3); \
                 extra_32x32.mat is ignored"
            }
            DatasetName::ImageFolder => {
                "a folder with train/ and test/, each holding one folder of PNG or JPEG images \
                 per class (train/cat/001.png …); classes are the sorted train/ folder names, \
                 and all images must share one size"
            }
        }
    }

    /// Per-channel normalisation (mean, std) for images with `channels` channels.
    ///
    /// CIFAR values are SPEC §1's; MNIST and Fashion-MNIST the customary published ones;
    /// digits computed from its train split (see [`formats::DIGITS_MEAN`]); a PNG folder
    /// uses CIFAR-10's when it has 3 channels (the foolbox samples are CIFAR-10), else 0.5.
    /// SVHN's are the reference's (its `utils.py`). An image folder of RGB images gets
    /// ImageNet's, as the reference normalises its image-folder data set (Tiny ImageNet): the
    /// customary statistics of natural photographs; gray images get 0.5, which maps [0, 1]
    /// to [−1, 1] without claiming to know the data.
    pub fn normalization(&self, channels: usize) -> (Vec<f64>, Vec<f64>) {
        let (m, s): (Vec<f64>, Vec<f64>) = match self {
            DatasetName::Cifar10 => (vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616]),
            DatasetName::Cifar100 => (vec![0.5071, 0.4866, 0.4409], vec![0.2673, 0.2564, 0.2762]),
            DatasetName::Mnist => (vec![0.1307], vec![0.3081]),
            DatasetName::FashionMnist => (vec![0.2860], vec![0.3530]),
            DatasetName::Digits => (vec![formats::DIGITS_MEAN], vec![formats::DIGITS_STD]),
            DatasetName::PngFolder if channels == 3 => {
                return DatasetName::Cifar10.normalization(3);
            }
            DatasetName::PngFolder => (vec![0.5], vec![0.5]),
            DatasetName::Svhn => (vec![0.4377, 0.4438, 0.4728], vec![0.1980, 0.2010, 0.1970]),
            DatasetName::ImageFolder if channels == 3 => {
                (vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225])
            }
            DatasetName::ImageFolder => (vec![0.5], vec![0.5]),
        };
        if m.len() == channels {
            (m, s)
        } else {
            // A data set read with an unexpected channel count still gets one value per channel.
            (vec![m[0]; channels], vec![s[0]; channels])
        }
    }

    /// The training augmentation suited to this data set.
    ///
    /// CIFAR-10/100 and PNG folders (CIFAR-like natural images): pad 4 + flip, as SPEC §1.
    /// Fashion-MNIST: pad 2 (28×28 images, so the same ~14 % shift as 4/32) + flip, since
    /// clothes are left–right symmetric. MNIST: pad 2, no flip, because mirrored digits are
    /// different or invalid glyphs. Digits: pad 1 (8×8 images: one pixel is already 12 %),
    /// no flip for the same reason as MNIST. SVHN: none at all, as the reference trains it
    /// (its `svhn_dataloaders` applies only `ToTensor`); a flip would mirror digits anyway.
    /// Image folder: the choice for 3-channel images of at least 32 px (pad 4 + flip); the
    /// images' real size and channels decide through [`DatasetName::augment_for`].
    pub fn default_augment(&self) -> Augment {
        match self {
            DatasetName::Svhn => Augment {
                pad: 0,
                flip: false,
            },
            DatasetName::Cifar10
            | DatasetName::Cifar100
            | DatasetName::PngFolder
            | DatasetName::ImageFolder => Augment { pad: 4, flip: true },
            DatasetName::FashionMnist => Augment { pad: 2, flip: true },
            DatasetName::Mnist => Augment {
                pad: 2,
                flip: false,
            },
            DatasetName::Digits => Augment {
                pad: 1,
                flip: false,
            },
        }
    }

    /// The training augmentation for this data set's images of `channels`×`height`×`width`.
    ///
    /// Only an image folder depends on them: RGB images of at least 32 px are taken for
    /// natural photographs and get CIFAR's pad 4 + flip (the reference augments Tiny ImageNet's
    /// 64 px images so too). Anything else may be digits, glyphs or scans whose mirror image
    /// is another thing, so no flip, and a pad of 1/16 of the side rounded up, which gives
    /// the 2 px of MNIST's 28 and the 1 px of the 8×8 digits.
    pub fn augment_for(&self, channels: usize, height: usize, width: usize) -> Augment {
        match self {
            DatasetName::ImageFolder if channels == 3 && height.min(width) >= 32 => {
                Augment { pad: 4, flip: true }
            }
            DatasetName::ImageFolder => Augment {
                pad: height.min(width).div_ceil(16),
                flip: false,
            },
            other => other.default_augment(),
        }
    }
}

impl DataSet {
    /// The training augmentation suited to these images ([`DatasetName::augment_for`]).
    pub fn default_augment(&self) -> Augment {
        self.name
            .augment_for(self.train.channels, self.train.height, self.train.width)
    }
}

/// The files [`load`] reads for data set `name` in `dir`, sorted per split (none for the
/// embedded digits); an error when `dir` is needed but missing or cannot be listed.
pub fn source_files(name: DatasetName, dir: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    let Some(dir) = dir.filter(|_| name != DatasetName::Digits) else {
        if name == DatasetName::Digits {
            return Ok(Vec::new());
        }
        anyhow::bail!(
            "data set {} needs `--data DIR`: {}",
            name.cli_name(),
            name.expected_layout()
        );
    };
    let in_dir =
        |d: &Path, names: &[&str]| -> Vec<PathBuf> { names.iter().map(|n| d.join(n)).collect() };
    let files = match name {
        DatasetName::Digits => Vec::new(),
        DatasetName::Mnist | DatasetName::FashionMnist => [
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ]
        .iter()
        .map(|n| {
            // The reader prefers the gzipped file when both exist.
            let gz = dir.join(format!("{n}.gz"));
            if gz.is_file() {
                gz
            } else {
                dir.join(n)
            }
        })
        .collect(),
        DatasetName::Cifar10 => {
            if let Some(d) = formats::resolve_dir(dir, "cifar-10-batches-bin", "data_batch_1.bin") {
                CIFAR10_FILES
                    .iter()
                    .map(|n| d.join(format!("{n}.bin")))
                    .collect()
            } else {
                let d = formats::resolve_dir(dir, "cifar-10-batches-py", "data_batch_1")
                    .unwrap_or_else(|| dir.to_path_buf());
                in_dir(&d, &CIFAR10_FILES)
            }
        }
        DatasetName::Cifar100 => {
            if let Some(d) = formats::resolve_dir(dir, "cifar-100-binary", "train.bin") {
                in_dir(&d, &["train.bin", "test.bin"])
            } else {
                let d = formats::resolve_dir(dir, "cifar-100-python", "train")
                    .unwrap_or_else(|| dir.to_path_buf());
                in_dir(&d, &["train", "test"])
            }
        }
        DatasetName::Svhn => {
            let d = formats::resolve_dir(dir, "svhn", "train_32x32.mat")
                .unwrap_or_else(|| dir.to_path_buf());
            in_dir(&d, &["train_32x32.mat", "test_32x32.mat"])
        }
        DatasetName::PngFolder => {
            let (tr, te) = (dir.join("train"), dir.join("test"));
            if tr.is_dir() && te.is_dir() {
                let mut files = files_with_ext(&tr, &["png"], false)?;
                files.extend(files_with_ext(&te, &["png"], false)?);
                files
            } else {
                files_with_ext(dir, &["png"], false)?
            }
        }
        DatasetName::ImageFolder => {
            let mut files = Vec::new();
            for split in ["train", "test"] {
                for class in visible_subfolders(&dir.join(split))? {
                    files.extend(files_with_ext(&class, &["png", "jpg", "jpeg"], true)?);
                }
            }
            files
        }
    };
    Ok(files)
}

/// CIFAR-10's files in reading order, without the `.bin` of the binary version.
const CIFAR10_FILES: [&str; 6] = [
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
];

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.as_encoded_bytes().first() == Some(&b'.'))
}

/// The visible subfolders of `dir`, sorted.
fn visible_subfolders(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read folder {}: {e}", dir.display()))?
    {
        let path = e
            .map_err(|e| anyhow::anyhow!("cannot list folder {}: {e}", dir.display()))?
            .path();
        if !is_hidden(&path) && path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The files in `dir` (and below it when `recursive`, hidden names skipped) whose extension is
/// one of `exts` (case-insensitive), sorted by path.
fn files_with_ext(dir: &Path, exts: &[&str], recursive: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read folder {}: {e}", dir.display()))?
    {
        let path = e
            .map_err(|e| anyhow::anyhow!("cannot list folder {}: {e}", dir.display()))?
            .path();
        if recursive && is_hidden(&path) {
            continue;
        }
        if path.is_dir() {
            if recursive {
                out.extend(files_with_ext(&path, exts, true)?);
            }
            continue;
        }
        let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
        if path.is_file() && exts.iter().any(|x| x.eq_ignore_ascii_case(ext)) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod source_files_tests {
    use super::*;

    #[test]
    fn names_the_files_load_reads() {
        assert!(source_files(DatasetName::Digits, None).unwrap().is_empty());
        assert!(source_files(DatasetName::Mnist, None).is_err());
        let tmp =
            std::env::temp_dir().join(format!("gunlearn-source-files-{}", std::process::id()));
        let d = tmp.join("cifar-100-binary");
        std::fs::create_dir_all(&d).unwrap();
        for n in ["train.bin", "test.bin"] {
            std::fs::write(d.join(n), b"x").unwrap();
        }
        std::fs::write(tmp.join("train-images-idx3-ubyte.gz"), b"x").unwrap();
        assert_eq!(
            source_files(DatasetName::Cifar100, Some(&tmp)).unwrap(),
            vec![d.join("train.bin"), d.join("test.bin")]
        );
        let mnist = source_files(DatasetName::Mnist, Some(&tmp)).unwrap();
        assert_eq!(mnist[0], tmp.join("train-images-idx3-ubyte.gz"));
        assert_eq!(mnist[3], tmp.join("t10k-labels-idx1-ubyte"));
        let png = tmp.join("png");
        std::fs::create_dir_all(png.join("train")).unwrap();
        std::fs::create_dir_all(png.join("test")).unwrap();
        for n in [
            "train/b_1.png",
            "train/a_0.PNG",
            "train/notes.txt",
            "test/c_2.png",
        ] {
            std::fs::write(png.join(n), b"x").unwrap();
        }
        assert_eq!(
            source_files(DatasetName::PngFolder, Some(&png)).unwrap(),
            vec![
                png.join("train/a_0.PNG"),
                png.join("train/b_1.png"),
                png.join("test/c_2.png")
            ]
        );
        let folder = tmp.join("folder");
        for n in [
            "train/cat/x/1.jpg",
            "train/cat/.hidden/2.png",
            "train/dog/3.png",
            "test/cat/4.png",
        ] {
            let p = folder.join(n);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(
            source_files(DatasetName::ImageFolder, Some(&folder)).unwrap(),
            vec![
                folder.join("train/cat/x/1.jpg"),
                folder.join("train/dog/3.png"),
                folder.join("test/cat/4.png")
            ]
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
