//! STUB
use super::{augment::Augment, ImageSet};
use std::sync::Arc;
pub struct Batch { pub images: tch::Tensor, pub labels: tch::Tensor, pub indices: Vec<usize> }
pub fn epoch_batches(_set: Arc<ImageSet>, _indices: Vec<usize>, _batch_size: usize, _shuffle: bool, _drop_last: bool, _augment: Option<Augment>, _seed: u64) -> std::vec::IntoIter<Batch> { todo!() }
pub fn to_tensor(_set: &ImageSet, _indices: &[usize]) -> Batch { todo!() }
pub fn random_batches(_set: Arc<ImageSet>, _pool: Vec<usize>, _batch_size: usize, _augment: Option<Augment>, _seed: u64) -> std::vec::IntoIter<Batch> { todo!() }
