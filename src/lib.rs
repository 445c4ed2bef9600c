//! gunlearn: machine unlearning of image classifiers on libtorch.
//!
//! Data flows one way: [`data`] → [`model`] → [`unlearn`] → [`eval`] → report.

pub mod audit;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod device;
pub mod epoch_loop;
pub mod eval;
pub mod fsutil;
pub mod fuzz;
pub mod jobs;
pub mod lock;
pub mod model;
pub mod optim;
pub mod pickle;
pub mod plot;
pub mod prune;
pub mod slurm;
pub mod sweep;
pub mod torch_io;
pub mod train;
pub mod unlearn;
