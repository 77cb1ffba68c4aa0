//! `trialdesk check` for SMTP: connect, secure, greet and log in like a send would, without
//! sending, and report each step. Separate because it is a diagnosis, not part of sending.

use std::path::Path;

use super::connect::Step;
use super::SmtpTransport;
use crate::config::{SmtpConfig, TlsMode};
use crate::probe::ProbeStep;

impl SmtpTransport {
    /// Connects, secures, greets and logs in like a send would, without sending anything (for
    /// `trialdesk check`). Each step passed, and the first failure, are reported in order.
    pub async fn probe(config: &SmtpConfig, base_dir: &Path) -> Vec<ProbeStep> {
        let relay = format!("{}:{}", config.host, config.port);
        let transport = match SmtpTransport::new(config, base_dir) {
            Ok(t) => t,
            Err(e) => return vec![ProbeStep::fail("smtp setup", format!("{e:#}"))],
        };
        let connect = format!("smtp connect to {relay} (tls: {})", config.tls.as_str());
        let tls_line = || {
            ProbeStep::ok(
                &format!("smtp TLS ({})", config.tls.as_str()),
                format!("certificate valid for {}", config.server_name()),
            )
        };
        let auth_what = match &config.username {
            Some(u) => format!("smtp AUTH {} as {u}", config.auth.as_str()),
            None => "smtp login".to_string(),
        };
        let mut steps = Vec::new();
        match transport.open().await {
            Ok(mut conn) => {
                steps.push(ProbeStep::ok(
                    &connect,
                    format!("EHLO answered by {}", conn.server_info().name()),
                ));
                if config.tls != TlsMode::None {
                    steps.push(tls_line());
                }
                steps.push(ProbeStep::ok(
                    &auth_what,
                    if config.username.is_some() {
                        "accepted".into()
                    } else {
                        "no smtp.username: sending without AUTH".into()
                    },
                ));
                let _ = conn.quit().await;
            }
            Err((step, f)) => {
                let tcp_open = ProbeStep::ok(&connect, "TCP connection open".into());
                let greeted = ProbeStep::ok(&connect, "EHLO answered".into());
                match step {
                    Step::Connect => {}
                    Step::Tls => steps.push(tcp_open),
                    Step::Greeting => {
                        steps.push(tcp_open);
                        if config.tls == TlsMode::Implicit {
                            steps.push(tls_line());
                        }
                    }
                    Step::Starttls => steps.push(greeted),
                    Step::Auth => {
                        steps.push(greeted);
                        if config.tls != TlsMode::None {
                            steps.push(tls_line());
                        }
                    }
                }
                let what = match step {
                    Step::Connect | Step::Greeting => connect.clone(),
                    Step::Tls | Step::Starttls => format!("smtp TLS ({})", config.tls.as_str()),
                    Step::Auth => auth_what,
                };
                steps.push(ProbeStep::fail(&what, f.text));
            }
        }
        steps
    }
}
