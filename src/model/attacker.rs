//! STUB
pub struct Attacker { pub vs: tch::nn::VarStore }
impl Attacker {
    pub fn new(_c: usize, _d: f64, _device: tch::Device) -> Attacker { todo!() }
    pub fn forward(&self, _x: &tch::Tensor, _train: bool) -> tch::Tensor { todo!() }
}
