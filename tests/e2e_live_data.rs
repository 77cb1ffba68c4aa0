//! Live data out through the real Postfix + Dovecot stack: an RMA label request answered by
//! `trialdesk run --once` with the label attached, and a proactive shipment notice imported
//! with the CLI and delivered to the partner's admins.

mod common;

use std::time::Duration;

use common::mailstack::{unique, E2e, Setup, Stack};
use common::Reply;
use mail_parser::MimeHeaders;

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rma_label_request_through_postfix_is_answered_with_the_label() {
    let stack = Stack::get();
    let mut setup = Setup::plain(&stack);
    setup.extra = "[rma]\nlabels_dir = \"labels\"\n".into();
    let env = E2e::new(&stack, setup).await;
    let labels = env.dir.path().join("labels");
    std::fs::create_dir_all(&labels).unwrap();
    std::fs::write(labels.join("D30261002.pdf"), PDF).unwrap();

    // P02 owns D30261002 (return_requested): any address of its domain may ask.
    let partner = format!("{}@nordwind.example.de", unique("rma"));
    let id = format!("{}@nordwind.example.de", unique("req"));
    let request = format!(
        "From: Lager <{partner}>\r\nTo: {hd}\r\nSubject: =?UTF-8?B?{subject}?=\r\n\
         Message-ID: <{id}>\r\nDate: Thu, 26 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Bitte das Etikett für D30261002 noch einmal schicken.\r\n",
        hd = env.helpdesk,
        subject = base64_encode("Rücksendeetikett verloren".as_bytes()),
    );
    stack
        .send_smtp(&partner, &[&env.helpdesk], request.as_bytes())
        .await;
    assert_eq!(
        stack
            .wait_count(&env.helpdesk, "INBOX", 1, Duration::from_secs(20))
            .await,
        1,
        "the request reached the helpdesk mailbox"
    );
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("answered 1"), "{out}");
    assert!(out.contains("sent 1 mail(s)"), "{out}");

    assert_eq!(
        stack
            .wait_count(&partner, "INBOX", 1, Duration::from_secs(20))
            .await,
        1,
        "the answer reached the partner through Postfix"
    );
    let raw = stack.messages(&partner, "INBOX").await.remove(0);
    let reply = Reply::parse(raw.clone());
    assert_eq!(reply.in_reply_to.as_deref(), Some(id.as_str()));
    assert!(reply.text.contains("Rücksendeetikett"), "{}", reply.text);
    let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let files: Vec<_> = m.attachments().collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].attachment_name(), Some("D30261002.pdf"));
    assert!(files[0].is_content_type("application", "pdf"));
    assert_eq!(files[0].contents(), PDF);

    // The same request again (redelivered): nothing new goes out.
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("sent 0 mail(s)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipment_notice_reaches_the_partners_admins_through_postfix_once() {
    let stack = Stack::get();
    let env = E2e::new(&stack, Setup::plain(&stack)).await;
    let admin = format!("{}@pacrim.example.com", unique("admin"));
    let partners = env.dir.path().join("partners-optin.csv");
    std::fs::write(
        &partners,
        format!(
            "partner_id,name,domains,admin_emails,language,notify_shipment_updates\n\
             P04,Pacific Rim Networks,pacrim.example.com,{admin},en,true\n"
        ),
    )
    .unwrap();
    let shipments = env.dir.path().join("shipments-change.csv");
    std::fs::write(
        &shipments,
        "loan_number,partner_id,customer,status,carrier,tracking_number,shipped_on,eta,delivered_on,items\n\
         D50261001,P04,Harbor Freight Logistics,delivered,FedEx,771234567890,2026-11-10,2026-11-15,2026-11-20,Webex Room Kit Pro\n",
    )
    .unwrap();
    let (ok, out, err) = env.cli(&["import", "partners", partners.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = env.cli(&["import", "shipments", shipments.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("queued 1 shipment notice(s)"), "{out}");
    // Importing the same change again queues nothing more.
    let (ok, out, err) = env.cli(&["import", "shipments", shipments.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert!(!out.contains("shipment notice"), "{out}");
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("sent 1 mail(s)"), "{out}");
    assert_eq!(
        stack
            .wait_count(&admin, "INBOX", 1, Duration::from_secs(20))
            .await,
        1
    );
    let notice = Reply::parse(stack.messages(&admin, "INBOX").await.remove(0));
    assert_eq!(
        notice.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert!(
        notice
            .subject
            .starts_with("Trial endpoint status update: D50261001"),
        "{}",
        notice.subject
    );
    assert!(
        notice.text.contains("Delivered") && notice.text.contains("was: Delivery problem"),
        "{}",
        notice.text
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
