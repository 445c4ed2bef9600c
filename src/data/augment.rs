//! STUB (replaced by the data branch).
/// Augmentation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment { pub pad: usize, pub flip: bool }
impl super::DatasetName { pub fn default_augment(&self) -> Augment { todo!() } }
