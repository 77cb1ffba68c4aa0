//! Logging setup: `tracing` to stderr, human or JSON, filtered like `RUST_LOG`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

/// Logs for a long-running command (`run`).
pub fn init(config: &LoggingConfig) {
    install(config, &config.filter);
}

/// Logs for one-shot commands whose stdout is the product (`explain`, `queue --json`): only
/// warnings and errors, unless `RUST_LOG` says otherwise.
pub fn init_quiet(config: &LoggingConfig) {
    install(config, "warn");
}

fn install(config: &LoggingConfig, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
