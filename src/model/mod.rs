//! Networks: the CIFAR ResNets and VGG-16-BN (the defender), the membership-inference attacker,
//! pruning masks.

pub mod attacker;
mod classifier;
pub mod mask;
mod resnet;
mod vgg;

pub use classifier::{Arch, Classifier, Layout, ModelSpec, RunningStats};
