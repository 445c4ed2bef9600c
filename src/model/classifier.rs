//! The classifier shared by every architecture: [`Arch`], [`ModelSpec`], [`Classifier`] (the
//! normalisation layer, a ResNet or VGG body, bookkeeping for pruning and BatchNorm), and
//! [`RunningStats`].
//!
//! Variable names follow the reference's PyTorch modules (`conv1.weight`,
//! `layer2.0.downsample.0.weight`, `fc.bias` for the ResNets; `features.0.weight`,
//! `classifier.4.bias` for VGG-16-BN) plus the `normalize.mean` / `normalize.std` buffers, so a
//! safetensors file written by [`tch::nn::VarStore::save`] loads into the reference's PyTorch
//! module with `load_state_dict(strict=False)` (only `num_batches_tracked` is absent).

use super::{resnet, vgg};
use anyhow::{bail, Result};
use tch::nn;
use tch::{Device, Kind, Tensor};

/// Which network to build.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// ResNet-18, CIFAR variant (3×3 stem, no max-pool), 512-d features.
    Resnet18,
    /// ResNet-20 (16/32/64 channels, 3 blocks per stage), 64-d features.
    Resnet20,
    /// VGG-16 with BatchNorm, the reference's CIFAR variant: 13 bias-free conv3×3 → BN → ReLU
    /// with 4 max-pools, 2×2 average pool, MLP head 2048 → 256 → 256 → C; 256-d features.
    /// Needs inputs of at least 16×16 pixels.
    #[serde(rename = "vgg16_bn", alias = "vgg16bn", alias = "vgg16-bn")]
    #[value(name = "vgg16_bn", alias = "vgg16bn", alias = "vgg16-bn")]
    Vgg16Bn,
}

impl Arch {
    /// Parses an architecture name (`resnet18`, `resnet20`, `vgg16_bn`) with a clear error.
    pub fn parse(name: &str) -> anyhow::Result<Arch> {
        use clap::ValueEnum;
        Arch::from_str(name, true).map_err(|_| {
            let known: Vec<String> = Arch::value_variants()
                .iter()
                .filter_map(|a| a.to_possible_value())
                .map(|v| v.get_name().to_string())
                .collect();
            anyhow::anyhow!(
                "unknown architecture {name:?} (known: {})",
                known.join(", ")
            )
        })
    }

    /// The canonical name (`resnet18`, `resnet20`, `vgg16_bn`), as the CLI and `model.json`
    /// spell it.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Resnet18 => "resnet18",
            Arch::Resnet20 => "resnet20",
            Arch::Vgg16Bn => "vgg16_bn",
        }
    }

    /// Smallest image height and width the network accepts (VGG-16-BN's four 2×2 max-pools
    /// need 16 pixels to leave 1; the ResNets take anything).
    pub fn min_input_size(self) -> usize {
        match self {
            Arch::Resnet18 | Arch::Resnet20 => 1,
            Arch::Vgg16Bn => vgg::MIN_INPUT_SIZE,
        }
    }

    /// State-dict key of the first conv weight (its shape gives the input channels).
    pub fn first_conv_weight(self) -> &'static str {
        match self {
            Arch::Resnet18 | Arch::Resnet20 => resnet::FIRST_CONV_WEIGHT,
            Arch::Vgg16Bn => vgg::FIRST_CONV_WEIGHT,
        }
    }

    /// State-dict key of the last Linear's weight (its shape gives the number of classes).
    pub fn logits_weight(self) -> &'static str {
        match self {
            Arch::Resnet18 | Arch::Resnet20 => resnet::LOGITS_WEIGHT,
            Arch::Vgg16Bn => vgg::LOGITS_WEIGHT,
        }
    }
}

impl std::fmt::Display for Arch {
    /// The canonical name ([`Arch::name`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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

impl ModelSpec {
    /// CIFAR-10 spec (10 classes, RGB, the CIFAR-10 mean/std of SPEC §1).
    pub fn cifar10(arch: Arch) -> ModelSpec {
        ModelSpec {
            arch,
            num_classes: 10,
            in_channels: 3,
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2470, 0.2435, 0.2616],
        }
    }

    /// Checks that the spec describes a buildable network (it may come from a user file).
    pub fn validate(&self) -> Result<()> {
        if self.num_classes == 0 {
            bail!("model spec: num_classes must be at least 1");
        }
        if self.in_channels == 0 {
            bail!("model spec: in_channels must be at least 1");
        }
        if self.mean.len() != self.in_channels || self.std.len() != self.in_channels {
            bail!(
                "model spec: mean ({} values) and std ({} values) must have in_channels = {} values",
                self.mean.len(),
                self.std.len(),
                self.in_channels
            );
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            bail!("model spec: every std must be finite and > 0, got {s}");
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            bail!("model spec: every mean must be finite, got {m}");
        }
        Ok(())
    }

    /// Checks that images of `height` × `width` pixels fit the architecture
    /// ([`Arch::min_input_size`]); call it where a model meets a data set.
    pub fn check_input_size(&self, height: usize, width: usize) -> Result<()> {
        let min = self.arch.min_input_size();
        if height < min || width < min {
            let why = match self.arch {
                Arch::Vgg16Bn => {
                    " (its four 2×2 max-pools halve the size four times); use resnet20 or \
                     resnet18 for smaller images"
                }
                Arch::Resnet18 | Arch::Resnet20 => "",
            };
            bail!(
                "{} needs images of at least {min}×{min} pixels, got {height}×{width}{why}",
                self.arch.name()
            );
        }
        Ok(())
    }
}

/// Kaiming-normal, fan_out, ReLU gain: std = sqrt(2 / (out_ch·k·k)), as the reference.
const CONV_INIT: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanOut,
    non_linearity: nn::init::NonLinearity::ReLU,
};

/// A bias-free conv (k×k, padding k/2) with the reference's init; records its weight name in
/// `names` (the prunable tensors, in definition order).
pub(super) fn conv(
    p: nn::Path,
    cin: i64,
    cout: i64,
    k: i64,
    stride: i64,
    names: &mut Vec<String>,
) -> nn::Conv2D {
    names.push(format!(
        "{}.weight",
        p.components().collect::<Vec<_>>().join(".")
    ));
    let cfg = nn::ConvConfig {
        stride,
        padding: k / 2,
        bias: false,
        ws_init: CONV_INIT,
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, k, cfg)
}

/// BatchNorm2d as PyTorch's default: momentum 0.1, eps 1e-5, weight 1, bias 0.
pub(super) fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    let cfg = nn::BatchNormConfig {
        eps: 1e-5,
        momentum: 0.1,
        ws_init: nn::Init::Const(1.0),
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    nn::batch_norm2d(p, c, cfg)
}

/// How a classifier stores its activations in memory (`--layout`): the same values either way,
/// summed in another order inside each convolution.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Channels-last on the CPU, N×C×H×W on a GPU.
    #[default]
    Auto,
    /// N×C×H×W, as PyTorch stores images by default and the reference code runs: its kernels,
    /// so results agree with the reference's to the last bits.
    Nchw,
    /// Channels-last (NHWC strides): libtorch's oneDNN convolutions on the CPU run without
    /// reordering activations at every layer, ≈ 0.7× the time of an N×C×H×W step.
    ChannelsLast,
}

impl Layout {
    /// `self`, with `auto` resolved for `device`: channels-last on the CPU (measured faster
    /// there), N×C×H×W on a GPU (not measured).
    pub fn resolve(self, device: Device) -> Layout {
        match self {
            Layout::Auto if device == Device::Cpu => Layout::ChannelsLast,
            Layout::Auto => Layout::Nchw,
            other => other,
        }
    }
}

/// The layers between the normalisation and the outputs.
enum Body {
    ResNet(Box<resnet::ResNet>),
    Vgg(vgg::Vgg),
}

/// A classifier whose variables live in `vs` under PyTorch's names.
pub struct Classifier {
    /// The variables (parameters and BatchNorm buffers).
    pub vs: nn::VarStore,
    /// How it was built.
    pub spec: ModelSpec,
    mean: Tensor,
    std: Tensor,
    body: Body,
    conv_names: Vec<String>,
    feature_dim: usize,
    /// How activations are stored in memory (the values do not depend on it).
    pub layout: Layout,
    /// The BatchNorm running means and variances (shared storage with `vs`), listed once so
    /// that the per-step snapshot in [`RunningStats::save`] needs no name lookups.
    running_stats: Vec<Tensor>,
}

impl Classifier {
    /// Builds a freshly initialised network (SPEC §2) on `device`; panics on an invalid spec
    /// (use [`Classifier::try_new`] for specs read from files).
    pub fn new(spec: &ModelSpec, device: Device) -> Classifier {
        match Classifier::try_new(spec, device) {
            Ok(c) => c,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// Builds a freshly initialised network after validating `spec`.
    pub fn try_new(spec: &ModelSpec, device: Device) -> Result<Classifier> {
        spec.validate()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let c = spec.in_channels as i64;
        let norm = root.sub("normalize");
        let mean = norm.add(
            "mean",
            Tensor::from_slice(&spec.mean)
                .to_kind(Kind::Float)
                .to_device(device),
            false,
        );
        let std = norm.add(
            "std",
            Tensor::from_slice(&spec.std)
                .to_kind(Kind::Float)
                .to_device(device),
            false,
        );

        let mut conv_names = Vec::new();
        let classes = spec.num_classes as i64;
        let body = match spec.arch {
            Arch::Resnet18 => Body::ResNet(Box::new(resnet::ResNet::new(
                &root,
                &resnet::RESNET18,
                c,
                classes,
                &mut conv_names,
            ))),
            Arch::Resnet20 => Body::ResNet(Box::new(resnet::ResNet::new(
                &root,
                &resnet::RESNET20,
                c,
                classes,
                &mut conv_names,
            ))),
            Arch::Vgg16Bn => Body::Vgg(vgg::Vgg::new(&root, c, classes, &mut conv_names)),
        };
        let feature_dim = match &body {
            Body::ResNet(net) => net.feature_dim(),
            Body::Vgg(_) => vgg::FEATURE_DIM,
        };
        let mut running_stats: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(name, _)| name.contains(".running_"))
            .collect();
        running_stats.sort_by(|a, b| a.0.cmp(&b.0));
        let running_stats = running_stats.into_iter().map(|(_, t)| t).collect();
        Ok(Classifier {
            vs,
            running_stats,
            spec: spec.clone(),
            mean: mean.view([1, c, 1, 1]),
            std: std.view([1, c, 1, 1]),
            body,
            conv_names,
            feature_dim,
            layout: Layout::Auto.resolve(device),
        })
    }

    /// Forward pass on images in [0, 1] (f32, B×C×H×W): returns `(logits, features)`, the
    /// features being the input of the last Linear layer.
    ///
    /// Panics when the images are smaller than [`Arch::min_input_size`] (check data sets with
    /// [`ModelSpec::check_input_size`] first).
    pub fn forward(&self, images: &Tensor, train: bool) -> (Tensor, Tensor) {
        let x = (images - &self.mean) / &self.std;
        let x = match self.layout {
            Layout::ChannelsLast if x.dim() == 4 => channels_last(&x),
            _ => x,
        };
        match &self.body {
            Body::ResNet(net) => net.forward(&x, train),
            Body::Vgg(net) => {
                if let [.., h, w] = x.size()[..] {
                    if let Err(e) = self.spec.check_input_size(h as usize, w as usize) {
                        panic!("{e}");
                    }
                }
                net.forward(&x, train)
            }
        }
    }

    /// Names of every conv weight (the prunable tensors), ResNet shortcut convs included, in
    /// definition order.
    pub fn conv_weight_names(&self) -> Vec<String> {
        self.conv_names.clone()
    }

    /// Width of the penultimate features (512 for ResNet-18, 64 for ResNet-20, 256 for
    /// VGG-16-BN).
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    /// Number of trainable scalars (BatchNorm running statistics and normalisation buffers
    /// excluded).
    pub fn num_parameters(&self) -> usize {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel())
            .sum()
    }

    /// The variable called `name` (parameter or buffer), sharing storage with the model.
    pub fn var(&self, name: &str) -> Option<Tensor> {
        self.vs.variables().remove(name)
    }
}

/// Copies of a model's BatchNorm running statistics, taken before a step so that a forward pass
/// that turned them non-finite can be undone (train-mode forwards update them before any loss
/// can be checked).
pub struct RunningStats {
    saved: Vec<(Tensor, Tensor)>,
}

impl RunningStats {
    /// Saves every `*.running_mean` / `*.running_var` of `model`.
    pub fn save(model: &Classifier) -> RunningStats {
        let saved = model
            .running_stats
            .iter()
            .map(|live| (live.shallow_clone(), live.detach().copy()))
            .collect();
        RunningStats { saved }
    }

    /// Writes the saved values back.
    pub fn restore(&self) {
        tch::no_grad(|| {
            for (live, copy) in &self.saved {
                live.shallow_clone().copy_(copy);
            }
        });
    }
}

/// `x` (N×C×H×W) with its values stored channels-last (NHWC strides, the same logical shape).
/// Convolutions, BatchNorm, ReLU and the residual sums keep that layout, so converting the
/// network's input is enough: the weights stay N×C×H×W (checkpoints do not change).
fn channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}
