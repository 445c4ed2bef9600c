//! The `gunlearn` binary.

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GUNLEARN_LOG")
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    // Reuse freed activation buffers instead of page-faulting fresh ones every step.
    gunlearn::device::keep_freed_memory(std::env::var_os("GUNLEARN_MALLOC_DEFAULTS").is_none());
    if let Err(err) = gunlearn::cli::main() {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
