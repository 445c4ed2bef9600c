//! Placeholder until the plotting module lands.
use std::path::Path;

/// Writes a line chart (placeholder).
pub fn line_chart(_path: &Path, _title: &str, _x: &str, _y: &str, _series: &[(&str, Vec<(f64, f64)>)]) -> anyhow::Result<()> {
    Ok(())
}
