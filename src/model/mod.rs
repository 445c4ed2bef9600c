//! Networks: the CIFAR ResNets (the defender), the membership-inference attacker, pruning masks.

pub mod attacker;
pub mod mask;
pub mod resnet;

pub use resnet::{Arch, Classifier, ModelSpec, RunningStats};
