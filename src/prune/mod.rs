//! Pruning (placeholder until written).
