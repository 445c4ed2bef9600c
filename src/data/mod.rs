//! Data sets: readers, NumPy-compatible splits, augmentation and batching.

use std::path::Path;

/// The data sets gunlearn can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// scikit-learn's 8×8 handwritten digits, embedded in the binary (the default).
    Digits,
    /// MNIST, IDX files (gzipped or raw).
    Mnist,
    /// Fashion-MNIST, IDX files (gzipped or raw).
    FashionMnist,
    /// CIFAR-10 binary version.
    Cifar10,
    /// CIFAR-100 binary version (fine labels).
    Cifar100,
    /// A folder of PNG images whose label is the last number in the file name.
    PngFolder,
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
pub fn load(name: DatasetName, dir: Option<&Path>) -> anyhow::Result<DataSet> {
    let _ = (name, dir);
    todo!("data helper")
}
