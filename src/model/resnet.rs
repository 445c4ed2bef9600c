//! CIFAR-variant ResNet-18 and ResNet-20 with PyTorch state-dict names.

use tch::{nn, Device, Tensor};

/// Which ResNet to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// ResNet-18, CIFAR variant (3×3 stem, no max-pool), 512-d features.
    Resnet18,
    /// ResNet-20 (16/32/64 channels, 3 blocks per stage), 64-d features.
    Resnet20,
}

/// Everything needed to rebuild a classifier: stored in `model.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    /// Architecture.
    pub arch: Arch,
    /// Number of classes C.
    pub num_classes: usize,
    /// Input channels (3 for CIFAR, 1 for the MNIST family and digits).
    pub in_channels: usize,
    /// Per-channel normalisation mean (the model's first layer).
    pub mean: Vec<f64>,
    /// Per-channel normalisation std.
    pub std: Vec<f64>,
}

/// A ResNet classifier whose variables live in `vs` under PyTorch's names.
pub struct Classifier {
    /// The variables (parameters and BatchNorm buffers).
    pub vs: nn::VarStore,
    /// How it was built.
    pub spec: ModelSpec,
}

impl Classifier {
    /// Builds a freshly initialised network (SPEC §2) on `device`.
    pub fn new(spec: &ModelSpec, device: Device) -> Classifier {
        let _ = (spec, device);
        todo!("model helper")
    }

    /// Forward pass on images in [0, 1] (f32, B×C×H×W): returns `(logits, features)`.
    pub fn forward(&self, images: &Tensor, train: bool) -> (Tensor, Tensor) {
        let _ = (images, train);
        todo!("model helper")
    }
}
impl Classifier {
    /// STUB
    pub fn num_parameters(&self) -> usize { todo!() }
}
