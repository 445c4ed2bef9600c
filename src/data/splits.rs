//! STUB
pub enum ForgetRequest { None, Random { fraction: f64 }, Class { class: usize, count: Option<usize> } }
pub struct SplitConfig { pub val_set_seed: u32, pub seed: u32, pub forget: ForgetRequest }
pub struct Splits { pub train: Vec<usize>, pub val: Vec<usize>, pub forget: Vec<usize>, pub retain: Vec<usize>, pub test: Vec<usize>, pub removed_class: Option<usize> }
pub fn make_splits(_ds: &super::DataSet, _cfg: &SplitConfig) -> anyhow::Result<Splits> { todo!() }
