//! Unlearning methods, one file each, behind one trait and a registry.
