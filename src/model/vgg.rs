//! The body of VGG-16-BN as the reference defines it for CIFAR (OPTML-Group/Unlearn-Sparse,
//! `models/VGG.py`, `vgg16_bn`):
//!
//! - `features`: configuration "D" without its last max-pool — 13 conv3×3 (padding 1,
//!   **no bias**) → BatchNorm → ReLU, widths 64, 64, M, 128, 128, M, 256 ×3, M, 512 ×3, M,
//!   512 ×3, where M is a 2×2 max-pool (stride 2). Four pools: 32×32 inputs leave 2×2.
//! - adaptive average pool to 2×2, flatten (channel-major, as `torch.flatten`) → 2048 values;
//! - `classifier`: Linear(2048 → 256) → ReLU → Linear(256 → 256) → ReLU → Linear(256 → C).
//!
//! The **features** returned next to the logits are the input of the last Linear (256 values
//! after the second ReLU), as for the ResNets. State-dict names are the `nn.Sequential`
//! indices: `features.0.weight` (conv), `features.1.running_mean` (its BN), …,
//! `features.40.weight` (last conv), `classifier.0.weight`, `classifier.2.*`,
//! `classifier.4.*` (logits).
//!
//! Init as the reference's `_initialize_weights`: conv Kaiming-normal (fan_out, ReLU), BN 1/0,
//! every Linear N(0, 0.01) with zero bias.
//!
//! Inputs must be at least 16×16 ([`MIN_INPUT_SIZE`]) so that the four pools leave one pixel.
//! Between 16 and 31 pixels the pools leave 1×1 and the 2×2 average pool repeats that value
//! four times, exactly as PyTorch's `AdaptiveAvgPool2d((2, 2))` in the reference does — so
//! 28×28 MNIST-family images work as they would there, while 8×8 digits are refused.

use super::classifier::{bn, conv};
use tch::nn;
use tch::Tensor;

/// State-dict key of the first conv.
pub(super) const FIRST_CONV_WEIGHT: &str = "features.0.weight";
/// State-dict key of the Linear layer that gives the logits.
pub(super) const LOGITS_WEIGHT: &str = "classifier.4.weight";
/// Width of the features (the input of the last Linear).
pub(super) const FEATURE_DIM: usize = 256;
/// Smallest height and width: four 2×2 max-pools must leave at least one pixel.
pub(super) const MIN_INPUT_SIZE: usize = 16;

/// Configuration "D" as the reference's `cfgs['D']`: conv widths, `None` = 2×2 max-pool.
const CONFIG_D: [Option<i64>; 17] = [
    Some(64),
    Some(64),
    None,
    Some(128),
    Some(128),
    None,
    Some(256),
    Some(256),
    Some(256),
    None,
    Some(512),
    Some(512),
    Some(512),
    None,
    Some(512),
    Some(512),
    Some(512),
];

/// Channels after the conv stack.
const LAST_WIDTH: i64 = 512;
/// Side of the adaptive average pool's output.
const POOLED: i64 = 2;

/// VGG-16-BN: the `features` stack and the three-Linear `classifier`.
pub(super) struct Vgg {
    /// conv3×3 → BN → ReLU blocks between max-pools: a 2×2 max-pool (stride 2) precedes every
    /// group but the first.
    groups: Vec<Vec<(nn::Conv2D, nn::BatchNorm)>>,
    fc1: nn::Linear,
    fc2: nn::Linear,
    fc3: nn::Linear,
}

/// Linear as the reference's `_initialize_weights`: weight N(0, 0.01), bias 0.
fn linear(p: nn::Path, cin: i64, cout: i64) -> nn::Linear {
    nn::linear(
        p,
        cin,
        cout,
        nn::LinearConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        },
    )
}

impl Vgg {
    /// Registers the layers under `root`; conv weight names go to `conv_names`.
    pub(super) fn new(
        root: &nn::Path,
        in_channels: i64,
        num_classes: i64,
        conv_names: &mut Vec<String>,
    ) -> Vgg {
        let stack = root.sub("features");
        let mut groups = vec![Vec::new()];
        // Index in the reference's `nn.Sequential`: conv, BN, ReLU take three slots, a pool one.
        let mut slot = 0;
        let mut cin = in_channels;
        for width in CONFIG_D {
            match width {
                Some(w) => {
                    let c = conv(stack.sub(slot), cin, w, 3, 1, conv_names);
                    let b = bn(stack.sub(slot + 1), w);
                    groups.last_mut().expect("one group").push((c, b));
                    slot += 3;
                    cin = w;
                }
                None => {
                    groups.push(Vec::new());
                    slot += 1;
                }
            }
        }
        debug_assert_eq!(cin, LAST_WIDTH);
        let head = root.sub("classifier");
        let fc1 = linear(
            head.sub(0),
            LAST_WIDTH * POOLED * POOLED,
            FEATURE_DIM as i64,
        );
        let fc2 = linear(head.sub(2), FEATURE_DIM as i64, FEATURE_DIM as i64);
        let fc3 = linear(head.sub(4), FEATURE_DIM as i64, num_classes);
        Vgg {
            groups,
            fc1,
            fc2,
            fc3,
        }
    }

    /// `(logits, features)` of normalised images (at least [`MIN_INPUT_SIZE`] pixels a side).
    pub(super) fn forward(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut x = x.shallow_clone();
        for (i, group) in self.groups.iter().enumerate() {
            if i > 0 {
                x = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
            for (c, b) in group {
                x = x.apply(c).apply_t(b, train).relu();
            }
        }
        let pooled = x.adaptive_avg_pool2d([POOLED, POOLED]).flatten(1, -1);
        let features = pooled.apply(&self.fc1).relu().apply(&self.fc2).relu();
        let logits = features.apply(&self.fc3);
        (logits, features)
    }
}
