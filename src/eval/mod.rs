//! Evaluation: accuracies, the SVC membership-inference attack, results and reports.

pub mod audit_html;
pub mod forgetting;
pub mod health;
pub mod mia;
pub mod outputs;
pub mod report;
pub mod report_html;
pub mod result;
pub mod svc;
