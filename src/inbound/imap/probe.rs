//! `trialdesk check` for the IMAP side: the steps of a connection, reported one by one.

use std::path::Path;
use std::time::Duration;

use super::conn::{self, collect_within};
use super::{quote, utf7};
use crate::config::{AfterProcessing, ImapConfig, TlsMode};
use crate::probe::ProbeStep;

/// Connects, logs in and looks at the mailbox like `run` would, changing nothing (for
/// `trialdesk check`). Steps passed and the first failure are reported in order.
pub async fn probe(config: &ImapConfig, base_dir: &Path) -> Vec<ProbeStep> {
    use self::conn::Stage;
    let mut steps = Vec::new();
    let server = format!("{}:{}", config.host, config.port);
    let credential = match config.credential(base_dir) {
        Ok(c) => c,
        Err(e) => {
            steps.push(ProbeStep::fail("imap login secret", e.to_string()));
            return steps;
        }
    };
    let tls = match config.tls {
        TlsMode::None => None,
        _ => {
            let ca = config.ca_file.as_ref().map(|p| base_dir.join(p));
            match crate::tls::client_config(ca.as_deref()) {
                Ok(t) => Some(t),
                Err(e) => {
                    steps.push(ProbeStep::fail(
                        "imap TLS setup",
                        format!("imap.ca_file: {e}"),
                    ));
                    return steps;
                }
            }
        }
    };
    let order: &[Stage] = match config.tls {
        TlsMode::None => &[Stage::Connect, Stage::Greeting, Stage::Login],
        TlsMode::Implicit => &[Stage::Connect, Stage::Tls, Stage::Greeting, Stage::Login],
        TlsMode::Starttls => &[Stage::Connect, Stage::Greeting, Stage::Tls, Stage::Login],
    };
    let passed = |stage: Stage| -> ProbeStep {
        match stage {
            Stage::Connect => ProbeStep::ok(
                &format!("imap connect to {server}"),
                "TCP connection open".into(),
            ),
            Stage::Greeting => ProbeStep::ok("imap greeting", "server ready".into()),
            Stage::Tls => ProbeStep::ok(
                &format!("imap TLS ({})", config.tls.as_str()),
                format!("certificate valid for {}", config.server_name()),
            ),
            Stage::Login => ProbeStep::ok(
                &format!(
                    "imap login as {} ({})",
                    config.username,
                    config.auth.as_str()
                ),
                "accepted".into(),
            ),
        }
    };
    let (mut session, caps) = match conn::connect(config, tls.as_ref(), &credential).await {
        Ok(ok) => ok,
        Err(e) => {
            for stage in order.iter().take_while(|s| **s != e.stage) {
                steps.push(passed(*stage));
            }
            let what = match e.stage {
                Stage::Connect => format!("imap connect to {server}"),
                Stage::Greeting => "imap greeting".into(),
                Stage::Tls => format!("imap TLS ({})", config.tls.as_str()),
                Stage::Login => format!(
                    "imap login as {} ({})",
                    config.username,
                    config.auth.as_str()
                ),
            };
            steps.push(ProbeStep::fail(&what, e.message));
            return steps;
        }
    };
    steps.extend(order.iter().map(|s| passed(*s)));
    let limit = config.command_timeout;
    match tokio::time::timeout(limit, session.examine(utf7::encode(&config.mailbox))).await {
        Ok(Ok(mb)) => {
            let mode = if config.idle && caps.idle {
                "new mail is pushed (IDLE)".to_string()
            } else {
                format!(
                    "polling every {}",
                    humantime::format_duration(config.poll_interval)
                )
            };
            steps.push(ProbeStep::ok(
                &format!("imap mailbox {:?}", config.mailbox),
                format!(
                    "{} message(s), UIDVALIDITY {}; server: {}; {mode}",
                    mb.exists,
                    mb.uid_validity
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "missing".into()),
                    caps.summary()
                ),
            ));
        }
        Ok(Err(e)) => steps.push(ProbeStep::fail(
            &format!("imap mailbox {:?}", config.mailbox),
            format!(
                "cannot open it: {} (check imap.mailbox)",
                conn::server_text(&e)
            ),
        )),
        Err(_) => steps.push(ProbeStep::fail(
            &format!("imap mailbox {:?}", config.mailbox),
            "no answer within imap.command_timeout".into(),
        )),
    }
    if config.after_processing == AfterProcessing::Move {
        let delimiter = match session.list(Some(""), Some("\"\"")).await {
            Ok(s) => collect_within(s, limit)
                .await
                .ok()
                .and_then(|n| n.first().and_then(|n| n.delimiter().map(str::to_string))),
            Err(_) => None,
        };
        let mut present = Vec::new();
        let mut missing = Vec::new();
        for name in [
            &config.folder_answered,
            &config.folder_review,
            &config.folder_ignored,
        ] {
            let translated = match delimiter.as_deref() {
                Some(d) if d != "/" => name.replace('/', d),
                _ => name.clone(),
            };
            let pattern = quote(&utf7::encode(&translated));
            let found = match session.list(Some(""), Some(&pattern)).await {
                Ok(s) => collect_within(s, limit)
                    .await
                    .map(|n| !n.is_empty())
                    .unwrap_or(false),
                Err(_) => false,
            };
            if found {
                present.push(translated);
            } else {
                missing.push(translated);
            }
        }
        let mut detail = String::new();
        if !present.is_empty() {
            detail.push_str(&format!("present: {}", present.join(", ")));
        }
        if !missing.is_empty() {
            if !detail.is_empty() {
                detail.push_str("; ");
            }
            detail.push_str(&format!(
                "missing, created at first run: {}",
                missing.join(", ")
            ));
        }
        steps.push(ProbeStep::ok("imap outcome folders", detail));
    } else {
        steps.push(ProbeStep::ok(
            "imap after processing",
            "flag_seen: handled mail stays in the mailbox, marked \\Seen".into(),
        ));
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
    steps
}
