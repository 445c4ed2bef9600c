//! Evaluation: accuracies, the SVC membership-inference attack, results and reports.

pub mod outputs;
