//! The body of the CIFAR-variant ResNet-18 and ResNet-20 (SPEC §2), torchvision's names.

use super::classifier::{bn, conv};
use tch::nn;
use tch::Tensor;

/// State-dict key of the stem conv.
pub(super) const FIRST_CONV_WEIGHT: &str = "conv1.weight";
/// State-dict key of the Linear layer that gives the logits.
pub(super) const LOGITS_WEIGHT: &str = "fc.weight";

/// Stage widths and number of BasicBlocks per stage.
pub(super) struct Stages {
    widths: &'static [i64],
    blocks: usize,
}

/// ResNet-18: 64/128/256/512 channels, 2 blocks per stage.
pub(super) const RESNET18: Stages = Stages {
    widths: &[64, 128, 256, 512],
    blocks: 2,
};

/// ResNet-20: 16/32/64 channels, 3 blocks per stage.
pub(super) const RESNET20: Stages = Stages {
    widths: &[16, 32, 64],
    blocks: 3,
};

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

/// Stem conv 3×3 → BN → ReLU (no max-pool), the stages, global average pool, `fc`.
pub(super) struct ResNet {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    blocks: Vec<BasicBlock>,
    fc: nn::Linear,
    feature_dim: usize,
}

impl ResNet {
    /// Registers the layers under `root`; conv weight names go to `conv_names`.
    pub(super) fn new(
        root: &nn::Path,
        stages: &Stages,
        in_channels: i64,
        num_classes: i64,
        conv_names: &mut Vec<String>,
    ) -> ResNet {
        let (widths, per_stage) = (stages.widths, stages.blocks);
        let conv1 = conv(root.sub("conv1"), in_channels, widths[0], 3, 1, conv_names);
        let bn1 = bn(root.sub("bn1"), widths[0]);
        let mut blocks = Vec::new();
        let mut cin = widths[0];
        for (stage, &w) in widths.iter().enumerate() {
            let layer = root.sub(format!("layer{}", stage + 1));
            for b in 0..per_stage {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let p = layer.sub(b);
                let conv1 = conv(p.sub("conv1"), cin, w, 3, stride, conv_names);
                let bn1 = bn(p.sub("bn1"), w);
                let conv2 = conv(p.sub("conv2"), w, w, 3, 1, conv_names);
                let bn2 = bn(p.sub("bn2"), w);
                let downsample = if stride != 1 || cin != w {
                    let d = p.sub("downsample");
                    Some((
                        conv(d.sub(0), cin, w, 1, stride, conv_names),
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
            num_classes,
            nn::LinearConfig {
                ws_init: uniform,
                bs_init: Some(uniform),
                bias: true,
            },
        );
        ResNet {
            conv1,
            bn1,
            blocks,
            fc,
            feature_dim: cin as usize,
        }
    }

    /// Width of the pooled features (the last stage's width).
    pub(super) fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    /// `(logits, features)` of normalised images.
    pub(super) fn forward(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut x = x.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        for block in &self.blocks {
            x = block.forward(&x, train);
        }
        let features = x.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        let logits = features.apply(&self.fc);
        (logits, features)
    }
}
