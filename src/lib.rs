//! gunlearn: machine unlearning of image classifiers on libtorch.
//!
//! Data flows one way: [`data`] → [`model`] → [`unlearn`] → [`eval`] → report.

pub mod data;
pub mod eval;
pub mod model;
pub mod plot;
pub mod unlearn;
