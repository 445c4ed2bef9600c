//! STUB
use std::collections::BTreeMap;
pub struct Mask { pub masks: BTreeMap<String, tch::Tensor> }
pub struct Sparsity { pub per_layer: Vec<(String, f64)>, pub overall: f64 }
impl Mask {
    pub fn apply_to_weights(&self, _vs: &tch::nn::VarStore) { todo!() }
    pub fn apply_to_grads(&self, _vs: &tch::nn::VarStore) { todo!() }
    pub fn sparsity(&self) -> Sparsity { todo!() }
}
