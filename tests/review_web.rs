//! The review pages over HTTP, in-process (axum router + tower `oneshot`, no sockets):
//! sign-in, sessions, CSRF, rate limits, sanitised mail, actions and their audit rows.

mod common;
mod review_support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::TestEnv;
use review_support::{
    add_user, hostile_html_mail, seed, seed_dead_letter, Browser, Page, Seed, PASSWORD,
};
use tokio::sync::Notify;
use trialdesk::clock::ManualClock;
use trialdesk::store::AuditFilter;

async fn signed_in(env: &TestEnv, name: &str) -> Browser {
    add_user(env, name).await;
    let mut b = Browser::new(env);
    let res = b.login(name, PASSWORD).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    b
}

#[tokio::test]
async fn every_page_needs_a_session() {
    let env = TestEnv::new("").await;
    let (item, inbound) = seed(&env, Seed::default()).await;
    let mut b = Browser::new(&env);
    for path in [
        "/".to_string(),
        "/queue?q=x".to_string(),
        format!("/items/{item}"),
        format!("/messages/{inbound}"),
        format!("/messages/{inbound}/raw"),
        format!("/messages/{inbound}/attachments/0"),
        "/history".to_string(),
        "/audit".to_string(),
        "/import".to_string(),
        "/outbox/1".to_string(),
    ] {
        let res = b.get(&path).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{path}");
        let to = res.location().unwrap();
        assert!(to.starts_with("/login?next="), "{path} → {to}");
    }
    for path in [
        format!("/items/{item}/resolve"),
        format!("/items/{item}/answer"),
        "/logout".to_string(),
    ] {
        let res = b.post(&path, &[("note", "x")]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(res.location(), Some("/login"));
    }
    // The sign-in page and the stylesheet are open.
    assert_eq!(b.get("/login").await.status, StatusCode::OK);
    let css = b.get("/static/style.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    // A made-up session cookie is no session.
    b.cookies.insert("td_session".into(), "0".repeat(64));
    assert_eq!(b.get("/queue").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        env.app
            .store
            .review_item(item)
            .await
            .unwrap()
            .unwrap()
            .state,
        "open"
    );
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_the_session() {
    let env = TestEnv::new("").await;
    seed(&env, Seed::default()).await;
    add_user(&env, "alice").await;
    let mut b = Browser::new(&env);
    let res = b.login("Alice", PASSWORD).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), Some("/queue"));
    let cookie = res
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("td_session="))
        .expect("session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP by default: {cookie}"
    );
    let queue = b.get("/queue").await;
    assert_eq!(queue.status, StatusCode::OK);
    assert!(queue.body.contains("试用终端追踪请求"), "{}", queue.body);
    assert!(queue.body.contains("alice"));
    // The database keeps only a hash of the token.
    let token = b.cookies["td_session"].clone();
    assert!(env
        .app
        .store
        .live_session(&token, 0, i64::MAX)
        .await
        .unwrap()
        .is_none());

    let csrf = queue.csrf();
    let out = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!b.cookies.contains_key("td_session"));
    // The old cookie, replayed, no longer works: the session is gone server-side.
    b.cookies.insert("td_session".into(), token);
    assert_eq!(b.get("/queue").await.status, StatusCode::SEE_OTHER);
    let actions: Vec<String> = env
        .audit(AuditFilter {
            actor: Some("alice".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, vec!["logout", "login"]);
}

#[tokio::test]
async fn secure_cookies_use_the_host_prefix() {
    let env = TestEnv::new("[web]\nsecure_cookies = true\n").await;
    add_user(&env, "alice").await;
    let mut b = Browser::new(&env);
    let res = b.login("alice", PASSWORD).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let cookie = res
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-td_session="))
        .expect("__Host- session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert_eq!(b.get("/queue").await.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_passwords_are_rate_limited_per_name_and_per_address() {
    let env =
        TestEnv::new("[web]\nlogin_max_failures = 3\nlogin_max_failures_per_address = 5\n").await;
    add_user(&env, "alice").await;
    add_user(&env, "bob").await;
    let mut b = Browser::new(&env);
    for _ in 0..3 {
        let res = b.login("alice", "wrong password!").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert!(res.body.contains("Wrong name or password"));
    }
    // Now even the right password is refused, without being checked.
    let res = b.login("alice", PASSWORD).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
    assert!(res.headers.contains_key(header::RETRY_AFTER));
    assert!(!b.cookies.contains_key("td_session"));
    // Another account from another address is not affected...
    let mut other = Browser::new(&env);
    other.remote = "10.0.0.9:4000".parse().unwrap();
    assert_eq!(
        other.login("bob", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    // ...but one address guessing many names is stopped too (2 more failures reach 5).
    for name in ["carol", "dave"] {
        assert_eq!(
            b.login(name, "wrong password!").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        b.login("bob", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn sign_in_form_needs_its_csrf_token() {
    let env = TestEnv::new("").await;
    add_user(&env, "alice").await;
    let mut b = Browser::new(&env);
    b.get("/login").await;
    let res = b
        .post(
            "/login",
            &[
                ("csrf", "forged"),
                ("name", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(!b.cookies.contains_key("td_session"));
}

#[tokio::test]
async fn writes_without_the_csrf_token_are_refused() {
    let env = TestEnv::new("").await;
    let (item, _) = seed(&env, Seed::default()).await;
    let mut b = signed_in(&env, "alice").await;
    let csrf = b.session_csrf().await;
    let path = format!("/items/{item}/resolve");
    for form in [vec![("note", "x")], vec![("note", "x"), ("csrf", "0000")]] {
        let res = b.post(&path, &form).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{form:?}");
    }
    // A browser that says the form came from another site is refused even with the token.
    b.extra.push(("sec-fetch-site", "cross-site".into()));
    assert_eq!(
        b.post(&path, &[("note", "x"), ("csrf", &csrf)])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    b.extra.clear();
    // A multipart body (which the middleware cannot check) is refused outside the import.
    let multipart = Request::post(&path)
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=x")
        .body(Body::from(
            "--x\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nx\r\n--x--\r\n",
        ))
        .unwrap();
    assert_eq!(b.send(multipart).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        env.app
            .store
            .review_item(item)
            .await
            .unwrap()
            .unwrap()
            .state,
        "open"
    );
    // With the token it works.
    let res = b
        .post(&path, &[("note", "phoned them"), ("csrf", &csrf)])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        env.app
            .store
            .review_item(item)
            .await
            .unwrap()
            .unwrap()
            .state,
        "resolved"
    );
}

#[tokio::test]
async fn received_html_is_sanitised_and_no_page_can_run_script() {
    let env = TestEnv::new("").await;
    let (item, inbound) = seed(
        &env,
        Seed {
            from: "Mallory <mallory@evil.example.org>",
            subject: "Invoice overdue",
            message_id: "html-1@evil.example.org",
            raw: Some(hostile_html_mail("html-1@evil.example.org")),
            reason: "unknown_sender",
            partner_id: None,
            body: "Please pay D20261001. <script>window.__pwned=5</script>",
            ..Default::default()
        },
    )
    .await;
    let mut b = signed_in(&env, "alice").await;
    let page = b.get(&format!("/items/{item}")).await;
    assert_eq!(page.status, StatusCode::OK);
    // The only script on the page is the pages' own file (CSP: script-src 'self').
    const OWN_SCRIPT: &str = "<script src=\"/static/app.js\" defer></script>";
    assert_eq!(page.body.matches(OWN_SCRIPT).count(), 1);
    let body = &page.body.replace(OWN_SCRIPT, "");
    assert!(
        body.contains("Please <b>pay</b> D20261001."),
        "the HTML is shown: {body}"
    );
    for bad in [
        "<script",
        "onerror",
        "javascript:",
        "tracker.example.org",
        "<form action=\"https://evil",
    ] {
        assert!(!body.contains(bad), "{bad} reached the page");
    }
    // The decoded text is escaped, not interpreted.
    assert!(body.contains("&lt;script&gt;window.__pwned=5"), "{body}");
    assert!(body.contains("1 remote image(s) blocked"));
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.starts_with("default-src 'none'")
            && csp.contains("script-src 'self';")
            && !csp.contains("unsafe")
            && csp.contains("style-src 'self';"),
        "{csp}"
    );
    assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    // Asked for, remote images load (and the policy allows them), still without script.
    let with_images = b.get(&format!("/items/{item}?images=1")).await;
    assert!(with_images
        .body
        .contains("https://tracker.example.org/open.gif"));
    let csp = with_images.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("img-src 'self' https: http:")
            && csp.contains("script-src 'self';")
            && !csp.contains("unsafe"),
        "{csp}"
    );
    // The HTML attachment is listed, and served only as an opaque download.
    assert!(body.contains("invoice.html"));
    let att = b.get(&format!("/messages/{inbound}/attachments/0")).await;
    assert_eq!(att.status, StatusCode::OK);
    assert_eq!(
        att.headers[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    let disposition = att.headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"invoice.html\""),
        "{disposition}"
    );
    let raw = b.get(&format!("/messages/{inbound}/raw")).await;
    assert!(raw.body.contains("Message-ID: <html-1@evil.example.org>"));
    assert!(raw.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
}

#[tokio::test]
async fn answering_from_the_page_queues_the_reply_and_empties_the_queue() {
    let env = TestEnv::new("").await;
    let (item, inbound) = seed(
        &env,
        Seed {
            message_id: "web-1@huadong.example.cn",
            loans: &["D20261001"],
            ..Default::default()
        },
    )
    .await;
    let mut b = signed_in(&env, "alice").await;
    let page = b.get(&format!("/items/{item}")).await;
    assert!(
        page.body
            .contains("name=\"loan\" value=\"D20261001\" checked"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let path = format!("/items/{item}/answer");
    // Preview: shows the rendered answer, sends nothing.
    let preview = b
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("mode", "template"),
                ("loan", "D20261001"),
                ("more_loans", "D20261003"),
                ("intent", "preview"),
            ],
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(preview.body.contains("EA920049643CN") && preview.body.contains("JDX000486399531"));
    assert_eq!(
        env.app.store.sent_for_inbound(inbound).await.unwrap().len(),
        0
    );
    // Send.
    let sent = b
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("mode", "template"),
                ("loan", "D20261001"),
                ("more_loans", "D20261003"),
                ("intent", "send"),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let to = sent.location().unwrap().to_string();
    assert!(
        to.starts_with(&format!("/queue?done=answered&item={item}&outbox=")),
        "{to}"
    );
    let queue = b.get(&to).await;
    assert!(
        queue.body.contains("answered: the reply is in the outbox"),
        "{}",
        queue.body
    );
    assert!(queue.body.contains("The queue is empty"), "{}", queue.body);
    let replies = env.app.store.sent_for_inbound(inbound).await.unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].purpose, "staff_reply");
    // A replayed POST (back button, double click) cannot answer twice.
    let again = b
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("mode", "template"),
                ("loan", "D20261001"),
                ("intent", "send"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        env.app.store.sent_for_inbound(inbound).await.unwrap().len(),
        1
    );
    // The audit page shows who did it; the history finds the reply by loan number.
    let audit = b.get("/audit").await;
    assert!(
        audit.body.contains("answer template") && audit.body.contains("alice"),
        "{}",
        audit.body
    );
    let history = b.get("/history?q=D20261003").await;
    assert!(history.body.contains("staff reply"), "{}", history.body);
    assert!(history.links().contains(&format!("/messages/{inbound}")));
    let message = b.get(&format!("/messages/{inbound}")).await;
    assert_eq!(message.status, StatusCode::OK);
    assert!(message.body.contains("queued"), "delivery status shown");
}

#[tokio::test]
async fn dead_letters_can_be_retried_from_the_page() {
    let env = TestEnv::new("").await;
    let (item, outbox) = seed_dead_letter(&env, "dl-web@huadong.example.cn").await;
    let mut b = signed_in(&env, "alice").await;
    let page = b.get(&format!("/items/{item}")).await;
    assert!(
        page.body.contains("550 5.1.1 mailbox unknown"),
        "{}",
        page.body
    );
    assert!(page.body.contains("status of D20261001"));
    let res = b
        .post(&format!("/items/{item}/retry"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(
        env.app
            .store
            .outbox_row(outbox)
            .await
            .unwrap()
            .unwrap()
            .state,
        "queued"
    );
    let resolved = b.get("/queue?state=resolved").await;
    assert!(
        resolved.body.contains("dead letter queued again"),
        "{}",
        resolved.body
    );
}

#[tokio::test]
async fn queue_page_filters_searches_and_pages() {
    let env = TestEnv::new("[web]\npage_size = 2\n").await;
    for i in 0..5 {
        let mid = format!("q{i}@huadong.example.cn");
        let loan = format!("D2026100{i}");
        seed(
            &env,
            Seed {
                message_id: &mid,
                loans: &[&loan],
                reason: if i == 0 {
                    "dmarc_fail"
                } else {
                    "other_subject"
                },
                ..Default::default()
            },
        )
        .await;
    }
    let mut b = signed_in(&env, "alice").await;
    let page = b.get("/queue").await;
    assert!(
        page.body.contains("dmarc fail<b>1</b>") && page.body.contains("other subject<b>4</b>"),
        "{}",
        page.body
    );
    let next = page
        .links()
        .into_iter()
        .find(|l| l.starts_with("/queue?after="))
        .unwrap_or_else(|| panic!("older link: {}", page.body));
    let page2 = b.get(&next).await;
    assert_eq!(page2.status, StatusCode::OK);
    assert!(
        page2
            .links()
            .iter()
            .any(|l| l.starts_with("/queue?before=")),
        "a way back: {}",
        page2.body
    );
    let found = b.get("/queue?q=d20261003").await;
    let items: std::collections::BTreeSet<String> = found
        .links()
        .into_iter()
        .filter(|l| l.starts_with("/items/"))
        .collect();
    assert_eq!(items.len(), 1, "{}", found.body);
    let dmarc = b.get("/queue?reason=dmarc_fail").await;
    assert!(dmarc.body.contains("D20261000") && !dmarc.body.contains("D20261004"));
    assert_eq!(
        b.get("/queue?reason=nope").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        b.get("/queue?after=junk").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn csv_import_from_the_page_validates_like_the_cli() {
    let env = TestEnv::new("").await;
    let mut b = signed_in(&env, "alice").await;
    let form = b.get("/import").await;
    let csrf = form.csrf();
    let upload = |csrf: &str, csv: &str| {
        let body = format!(
            "--XX\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
             --XX\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nshipments\r\n\
             --XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.csv\"\r\n\
             Content-Type: text/csv\r\n\r\n{csv}\r\n--XX--\r\n"
        );
        Request::post("/import")
            .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XX")
            .body(Body::from(body))
            .unwrap()
    };
    let header_row = "loan_number,partner_id,customer,status,carrier,tracking_number,shipped_on,eta,delivered_on,items";
    let bad =
        format!("{header_row}\nD20269999,P01,X,flying,,,,,,A\nD20269998,P99,Y,ordered,,,,,,B\n");
    let res = b.send(upload(&csrf, &bad)).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    assert!(
        res.body.contains("line 2") && res.body.contains("nothing was imported"),
        "{}",
        res.body
    );
    let good = format!("{header_row}\nD20269999,P01,Neuer Kunde,ordered,,,,,,Webex Desk\n");
    assert_eq!(
        b.send(upload("forged", &good)).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(env
        .app
        .store
        .shipments_by_loan(&[trialdesk::domain::LoanNumber::from_normalized(
            "D20269999".into()
        )])
        .await
        .unwrap()
        .is_empty());
    let res = b.send(upload(&csrf, &good)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(
        res.body.contains("Imported 1 shipments from s.csv"),
        "{}",
        res.body
    );
    let audit = b.get("/audit?action=import").await;
    assert!(audit.body.contains("imported 1 shipments from s.csv"));
}

/// A browser on `env`'s router, with the app's clock replaced by a manual one.
fn browser_with_clock(env: &TestEnv, clock: &ManualClock) -> Browser {
    let mut app = env.app.clone();
    app.clock = Arc::new(clock.clone());
    Browser::with_router(app.web_router(Arc::new(Notify::new())).unwrap())
}

const MINUTE: Duration = Duration::from_secs(60);

fn sent_to_sign_in(page: &Page) -> bool {
    page.status == StatusCode::SEE_OTHER && page.location().is_some_and(|l| l.starts_with("/login"))
}

#[tokio::test]
async fn an_idle_session_ends_after_the_idle_timeout() {
    let env = TestEnv::new(
        "[web]\nlisten = \"127.0.0.1:0\"\nsession_idle_timeout = \"30m\"\nsession_lifetime = \"12h\"\n",
    )
    .await;
    add_user(&env, "alice").await;
    let clock = ManualClock::new("2026-11-26T09:00:00Z".parse().unwrap());
    let mut b = browser_with_clock(&env, &clock);
    assert_eq!(
        b.login("alice", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    // Activity keeps the session alive well past one idle timeout in total.
    for _ in 0..3 {
        clock.advance(29 * MINUTE);
        let page = b.get("/queue").await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.location());
    }
    // Then 31 minutes without a request: the session is over.
    clock.advance(31 * MINUTE);
    let page = b.get("/queue").await;
    assert!(
        sent_to_sign_in(&page),
        "{} {:?}",
        page.status,
        page.location()
    );
    assert_eq!(page.location(), Some("/login?next=%2Fqueue"));
    // And stays over: the cookie alone does not bring it back.
    assert!(b.cookies.contains_key("td_session"));
    assert!(sent_to_sign_in(&b.get("/queue").await));
}

#[tokio::test]
async fn an_active_session_ends_after_its_lifetime() {
    let env = TestEnv::new(
        "[web]\nlisten = \"127.0.0.1:0\"\nsession_idle_timeout = \"1h\"\nsession_lifetime = \"3h\"\n",
    )
    .await;
    add_user(&env, "alice").await;
    let clock = ManualClock::new("2026-11-26T09:00:00Z".parse().unwrap());
    let mut b = browser_with_clock(&env, &clock);
    assert_eq!(
        b.login("alice", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    // A request every 50 minutes never lets the session idle out…
    for _ in 0..3 {
        clock.advance(50 * MINUTE);
        assert_eq!(b.get("/queue").await.status, StatusCode::OK);
    }
    clock.advance(20 * MINUTE); // 2 h 50 min after signing in
    assert_eq!(b.get("/queue").await.status, StatusCode::OK);
    // …but 3 h 10 min after signing in it is over, 20 minutes after the last request.
    clock.advance(20 * MINUTE);
    let page = b.get("/queue").await;
    assert!(
        sent_to_sign_in(&page),
        "{} {:?}",
        page.status,
        page.location()
    );
    // Signing in again starts a new session.
    assert_eq!(
        b.login("alice", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(b.get("/queue").await.status, StatusCode::OK);
}

#[tokio::test]
async fn dead_letters_can_be_discarded_from_the_page() {
    let env = TestEnv::new("").await;
    let (item, outbox) = seed_dead_letter(&env, "dl-discard@huadong.example.cn").await;
    let mut b = signed_in(&env, "alice").await;
    let page = b.get(&format!("/items/{item}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let res = b
        .post(&format!("/items/{item}/discard"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        res.location(),
        Some(format!("/queue?done=discarded&item={item}&outbox={outbox}").as_str())
    );
    let store = &env.app.store;
    assert_eq!(
        store.outbox_row(outbox).await.unwrap().unwrap().state,
        "discarded"
    );
    assert_eq!(
        store.review_item(item).await.unwrap().unwrap().state,
        "resolved"
    );
    // A second discard of the settled item is refused and changes nothing.
    let again = b
        .post(&format!("/items/{item}/discard"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(
        store.outbox_row(outbox).await.unwrap().unwrap().state,
        "discarded"
    );
    let actions: Vec<String> = store
        .audit_entries(&AuditFilter {
            actor: Some("alice".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, vec!["discard", "login"]);
}

#[tokio::test]
async fn reprocessing_from_the_page_answers_what_the_rules_now_can() {
    let env = TestEnv::new("").await;
    // A request from a partner admin about its own loan, held back for a reason that no
    // longer applies: run through the rules again, it is answered.
    let (item, inbound) = seed(
        &env,
        Seed {
            message_id: "reprocess-web@huadong.example.cn",
            ..Seed::default()
        },
    )
    .await;
    let mut b = signed_in(&env, "alice").await;
    let page = b.get(&format!("/items/{item}")).await;
    let res = b
        .post(
            &format!("/items/{item}/reprocess"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let to = res.location().unwrap().to_string();
    assert!(
        to.starts_with(&format!("/items/{item}?done=reprocessed_answered&outbox=")),
        "{to}"
    );
    let store = &env.app.store;
    assert_eq!(
        store.review_item(item).await.unwrap().unwrap().state,
        "resolved"
    );
    let decisions = store.decisions_for_inbound(inbound).await.unwrap();
    assert_eq!(decisions.last().unwrap().decided_by, "reprocess:alice");
    let outbox: i64 = to.rsplit('=').next().unwrap().parse().unwrap();
    let row = store.outbox_row(outbox).await.unwrap().unwrap();
    assert_eq!(
        (row.purpose.as_str(), row.inbound_id, row.state.as_str()),
        ("reply", Some(inbound), "queued")
    );
    // The page it lands on shows the item as done.
    assert_eq!(b.get(&to).await.status, StatusCode::OK);
    // Reprocessing the closed item again is refused: no second answer.
    let again = b
        .post(
            &format!("/items/{item}/reprocess"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
}
