//! Logging setup: `tracing` to stderr, human or JSON, filtered like `RUST_LOG`.
//!
//! Spans carry what a line is about: `process{message_id, sender, loans, inbound_id}` for a
//! mail in the pipeline, `send_one{outbox_id, message_id, purpose, to, attempt}` for a send,
//! `send{trial_id, kind, audience}` for a reminder, `imap_fetch{account, mailbox}` /
//! `imap_ack{origin, disposition}` / `imap_connect{server, user}` for the IMAP source. Errors
//! are logged with their cause chain ([`ErrorChain`]); secrets never reach a log line
//! ([`crate::config::Secret`] prints `[redacted]`).

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

/// Log targets of libraries that write credentials at some level, and the most verbose level
/// let through from them. async-imap traces every command it writes (`encode: input: …`),
/// `LOGIN user password` and the base64 XOAUTH2 line included; its wire trace is therefore
/// never logged, whatever `RUST_LOG` says (trialdesk's own `imap_*` spans still are).
pub const SECRET_BEARING_TARGETS: [(&str, &str); 1] = [("async_imap::imap_stream", "info")];

/// The filter: `RUST_LOG` (or `default_filter`), with [`SECRET_BEARING_TARGETS`] capped.
pub fn filter(default_filter: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    for (target, level) in SECRET_BEARING_TARGETS {
        if let Ok(directive) = format!("{target}={level}").parse() {
            // A later directive for the same target replaces an earlier one: the cap wins
            // over `RUST_LOG=async_imap=trace` too.
            filter = filter.add_directive(directive);
        }
    }
    filter
}

fn install(config: &LoggingConfig, default_filter: &str) {
    let filter = filter(default_filter);
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Human => builder.try_init(),
        // One copy of each span's fields per line: the list of open spans, outermost first
        // (the current span is its last entry).
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}

/// Displays an error with its whole cause chain, `outer: inner: root`, for log fields
/// (`error = %ErrorChain(&e)`). A cause whose text the outer message already includes (errors
/// that print their source themselves) is not repeated.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let c = cause.to_string();
            if !c.is_empty() && !text.contains(&c) {
                text.push_str(": ");
                text.push_str(&c);
            }
            source = cause.source();
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot send")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("connection lost: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn error_chain_shows_every_cause_once() {
        let e = Outer(Middle(std::io::Error::other("broken pipe")));
        assert_eq!(
            ErrorChain(&e).to_string(),
            "cannot send: connection lost: broken pipe"
        );
    }
}
