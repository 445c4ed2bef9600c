//! CIFAR-variant ResNet-18 and ResNet-20 with PyTorch state-dict names.
//!
//! Variable names follow torchvision's `ResNet` (`conv1.weight`, `layer2.0.downsample.0.weight`,
//! `fc.bias`, …) plus the reference's `normalize.mean` / `normalize.std` buffers, so a
//! safetensors file written by [`tch::nn::VarStore::save`] loads into the reference's PyTorch
//! module with `load_state_dict(strict=False)` (only `num_batches_tracked` is absent).

use anyhow::{bail, Result};
use tch::nn;
use tch::{Device, Kind, Tensor};

/// Which ResNet to build.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// ResNet-18, CIFAR variant (3×3 stem, no max-pool), 512-d features.
    Resnet18,
    /// ResNet-20 (16/32/64 channels, 3 blocks per stage), 64-d features.
    Resnet20,
}

impl Arch {
    /// Stage widths and number of BasicBlocks per stage.
    fn stages(self) -> (&'static [i64], usize) {
        match self {
            Arch::Resnet18 => (&[64, 128, 256, 512], 2),
            Arch::Resnet20 => (&[16, 32, 64], 3),
        }
    }
}

impl Arch {
    /// Parses an architecture name (`resnet18`, `resnet20`) with a clear error.
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

    /// CIFAR-100 spec (100 classes, RGB, the CIFAR-100 mean/std of SPEC §1).
    pub fn cifar100(arch: Arch) -> ModelSpec {
        ModelSpec {
            arch,
            num_classes: 100,
            in_channels: 3,
            mean: vec![0.5071, 0.4866, 0.4409],
            std: vec![0.2673, 0.2564, 0.2762],
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
}

/// A torchvision BasicBlock: conv3×3(s) → BN → ReLU → conv3×3 → BN, + shortcut, ReLU.
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    /// 1×1 conv (stride s) + BN when the shape changes; identity otherwise.
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl BasicBlock {
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let out = x.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let out = out.apply(&self.conv2).apply_t(&self.bn2, train);
        let shortcut = match &self.downsample {
            Some((conv, bn)) => x.apply(conv).apply_t(bn, train),
            None => x.shallow_clone(),
        };
        (out + shortcut).relu()
    }
}

/// Kaiming-normal, fan_out, ReLU gain: std = sqrt(2 / (out_ch·k·k)), as the reference.
const CONV_INIT: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanOut,
    non_linearity: nn::init::NonLinearity::ReLU,
};

fn conv(
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

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    let cfg = nn::BatchNormConfig {
        eps: 1e-5,
        momentum: 0.1,
        ws_init: nn::Init::Const(1.0),
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    nn::batch_norm2d(p, c, cfg)
}

/// A ResNet classifier whose variables live in `vs` under PyTorch's names.
pub struct Classifier {
    /// The variables (parameters and BatchNorm buffers).
    pub vs: nn::VarStore,
    /// How it was built.
    pub spec: ModelSpec,
    mean: Tensor,
    std: Tensor,
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    blocks: Vec<BasicBlock>,
    fc: nn::Linear,
    conv_names: Vec<String>,
    feature_dim: usize,
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
        let (widths, per_stage) = spec.arch.stages();
        let conv1 = conv(root.sub("conv1"), c, widths[0], 3, 1, &mut conv_names);
        let bn1 = bn(root.sub("bn1"), widths[0]);
        let mut blocks = Vec::new();
        let mut cin = widths[0];
        for (stage, &w) in widths.iter().enumerate() {
            let layer = root.sub(format!("layer{}", stage + 1));
            for b in 0..per_stage {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let p = layer.sub(b);
                let conv1 = conv(p.sub("conv1"), cin, w, 3, stride, &mut conv_names);
                let bn1 = bn(p.sub("bn1"), w);
                let conv2 = conv(p.sub("conv2"), w, w, 3, 1, &mut conv_names);
                let bn2 = bn(p.sub("bn2"), w);
                let downsample = if stride != 1 || cin != w {
                    let d = p.sub("downsample");
                    Some((
                        conv(d.sub(0), cin, w, 1, stride, &mut conv_names),
                        bn(d.sub(1), w),
                    ))
                } else {
                    None
                };
                blocks.push(BasicBlock {
                    conv1,
                    bn1,
                    conv2,
                    bn2,
                    downsample,
                });
                cin = w;
            }
        }
        // PyTorch's Linear default: U(±1/√fan_in) for weight and bias alike.
        let bound = 1.0 / (cin as f64).sqrt();
        let uniform = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let fc = nn::linear(
            root.sub("fc"),
            cin,
            spec.num_classes as i64,
            nn::LinearConfig {
                ws_init: uniform,
                bs_init: Some(uniform),
                bias: true,
            },
        );
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
            conv1,
            bn1,
            blocks,
            fc,
            conv_names,
            feature_dim: cin as usize,
        })
    }

    /// Forward pass on images in [0, 1] (f32, B×C×H×W): returns `(logits, features)`.
    pub fn forward(&self, images: &Tensor, train: bool) -> (Tensor, Tensor) {
        let x = (images - &self.mean) / &self.std;
        let mut x = x.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        for block in &self.blocks {
            x = block.forward(&x, train);
        }
        let features = x.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        let logits = features.apply(&self.fc);
        (logits, features)
    }

    /// Names of every conv weight (the prunable tensors), downsample convs included, in
    /// definition order.
    pub fn conv_weight_names(&self) -> Vec<String> {
        self.conv_names.clone()
    }

    /// Width of the penultimate features (512 for ResNet-18, 64 for ResNet-20).
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
