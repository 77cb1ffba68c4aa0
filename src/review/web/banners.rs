//! Banners over every page when something outside the pages is wrong: mail waits in the
//! outbox and no sender runs in this process (`trialdesk web` alone), sending keeps failing
//! (relay down), or no mail was fetched for longer than `[health] max_fetch_silence`. Built
//! from what `/healthz` already knows; the decision is the pure [`banners`].

use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::health::HealthState;

/// One banner: `kind` names its catalog text (`banner.<kind>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Banner {
    pub kind: &'static str,
    /// Mails waiting (outbox_no_sender).
    pub n: i64,
    /// The last send error (relay_down).
    pub detail: String,
    /// How long fetching has been silent (fetch_silent), e.g. `2h 5m`.
    pub age: String,
}

/// What the banners are decided from.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub now_ms: i64,
    /// Mail queued in the outbox and due for more than a minute.
    pub waiting: i64,
    /// The workers of this process, when it runs them (`trialdesk run`); None for `web`.
    pub workers: Option<Workers>,
}

#[derive(Debug, Clone, Default)]
pub struct Workers {
    pub started_ms: i64,
    pub send_ok_ms: i64,
    pub send_failed_ms: i64,
    pub last_send_error: Option<String>,
    pub max_send_failure_ms: i64,
    pub fetch_ok_ms: i64,
    pub max_fetch_silence_ms: i64,
    /// Another instance reads the mailbox: silence here is expected.
    pub standby: bool,
}

impl Workers {
    pub fn from_health(h: &HealthState, now_ms: i64) -> Workers {
        let r = Ordering::Relaxed;
        let report = h.report(now_ms);
        Workers {
            started_ms: h.started_ms,
            send_ok_ms: h.sender.last_success_ms.load(r),
            send_failed_ms: h.sender.last_failure_ms.load(r),
            last_send_error: report.outbound.last_send_error,
            max_send_failure_ms: h.config.max_send_failure.as_millis() as i64,
            fetch_ok_ms: h.inbound.last_fetch_ok_ms.load(r),
            max_fetch_silence_ms: h.config.max_fetch_silence.as_millis() as i64,
            standby: report
                .imap
                .as_ref()
                .and_then(|i| i.lease.as_ref())
                .is_some_and(|l| l.role == "standby"),
        }
    }
}

fn ago(ms: i64) -> String {
    let secs = (ms.max(0) / 60_000 * 60) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// The banners for these facts.
pub fn banners(f: &Facts) -> Vec<Banner> {
    let mut out = Vec::new();
    let banner = |kind| Banner {
        kind,
        n: 0,
        detail: String::new(),
        age: String::new(),
    };
    match &f.workers {
        None => {
            if f.waiting > 0 {
                out.push(Banner {
                    n: f.waiting,
                    ..banner("outbox_no_sender")
                });
            }
        }
        Some(w) => {
            let since_ok = if w.send_ok_ms > 0 {
                w.send_ok_ms
            } else {
                w.started_ms
            };
            if w.send_failed_ms > w.send_ok_ms && f.now_ms - since_ok > w.max_send_failure_ms {
                out.push(Banner {
                    detail: w.last_send_error.clone().unwrap_or_default(),
                    ..banner("relay_down")
                });
            }
            let fetched = if w.fetch_ok_ms > 0 {
                w.fetch_ok_ms
            } else {
                w.started_ms
            };
            if !w.standby && f.now_ms - fetched > w.max_fetch_silence_ms {
                out.push(Banner {
                    age: ago(f.now_ms - fetched),
                    ..banner("fetch_silent")
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn workers() -> Workers {
        Workers {
            started_ms: 0,
            send_ok_ms: 0,
            send_failed_ms: 0,
            last_send_error: None,
            max_send_failure_ms: 30 * MIN,
            fetch_ok_ms: 100 * MIN,
            max_fetch_silence_ms: 10 * MIN,
            standby: false,
        }
    }

    #[test]
    fn banners_say_what_is_wrong_outside_the_pages() {
        let kinds = |f: &Facts| banners(f).iter().map(|b| b.kind).collect::<Vec<_>>();
        let now = 105 * MIN;
        let cases: Vec<(&str, Facts, Vec<&str>)> = vec![
            (
                "web alone, nothing waits",
                Facts {
                    now_ms: now,
                    waiting: 0,
                    workers: None,
                },
                vec![],
            ),
            (
                "web alone, mail waits",
                Facts {
                    now_ms: now,
                    waiting: 3,
                    workers: None,
                },
                vec!["outbox_no_sender"],
            ),
            (
                "run, all well",
                Facts {
                    now_ms: now,
                    waiting: 3,
                    workers: Some(workers()),
                },
                vec![],
            ),
            (
                "run, sends failing for long",
                Facts {
                    now_ms: now,
                    waiting: 0,
                    workers: Some(Workers {
                        send_ok_ms: 10 * MIN,
                        send_failed_ms: 104 * MIN,
                        last_send_error: Some("connection refused".into()),
                        ..workers()
                    }),
                },
                vec!["relay_down"],
            ),
            (
                "run, one recent failure",
                Facts {
                    now_ms: now,
                    waiting: 0,
                    workers: Some(Workers {
                        send_ok_ms: 100 * MIN,
                        send_failed_ms: 104 * MIN,
                        ..workers()
                    }),
                },
                vec![],
            ),
            (
                "run, failure then success",
                Facts {
                    now_ms: now,
                    waiting: 0,
                    workers: Some(Workers {
                        send_ok_ms: 104 * MIN,
                        send_failed_ms: 50 * MIN,
                        ..workers()
                    }),
                },
                vec![],
            ),
            (
                "run, fetch silent",
                Facts {
                    now_ms: now,
                    waiting: 0,
                    workers: Some(Workers {
                        fetch_ok_ms: 60 * MIN,
                        ..workers()
                    }),
                },
                vec!["fetch_silent"],
            ),
            (
                "standby never fetches",
                Facts {
                    now_ms: now,
                    waiting: 0,
                    workers: Some(Workers {
                        fetch_ok_ms: 0,
                        standby: true,
                        ..workers()
                    }),
                },
                vec![],
            ),
        ];
        for (what, facts, want) in cases {
            assert_eq!(kinds(&facts), want, "{what}");
        }
        let silent = banners(&Facts {
            now_ms: now,
            waiting: 0,
            workers: Some(Workers {
                fetch_ok_ms: 60 * MIN,
                ..workers()
            }),
        });
        assert_eq!(silent[0].age, "45m");
    }
}
