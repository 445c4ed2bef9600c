//! The `gunlearn` binary.

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GUNLEARN_LOG")
        .unwrap_or_else(|_| "info".into());
    // Colour codes only for a terminal: logs redirected to a file stay plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
    // Reuse freed activation buffers instead of page-faulting fresh ones every step.
    gunlearn::device::keep_freed_memory(std::env::var_os("GUNLEARN_MALLOC_DEFAULTS").is_none());
    if let Err(err) = gunlearn::cli::main() {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
