//! One bad mail never stalls a source: a Maildir file that cannot be read is set aside for
//! review as `unprocessable` (with where it was and why) and filed, and the mail around it is
//! answered in the same round. Tests run as root, which reads any file whatever its mode, so
//! the unreadable file is simulated with the source's read-fault hook.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{mail, TestEnv};
use tokio::sync::Notify;

#[tokio::test]
async fn an_unreadable_maildir_file_is_set_aside_and_the_rest_flows() {
    use std::sync::atomic::Ordering::SeqCst;
    let env = TestEnv::new("").await;
    for (n, loan) in [(1, "D50261001"), (2, "D50261002"), (3, "D50261003")] {
        env.deliver(
            &format!("{n}.a.host"),
            &mail(
                "ops@pacrim.example.com",
                "Trial Endpoint Tracking Request",
                &format!("q-{n}@pacrim.example.com"),
                "",
                loan,
            ),
        );
    }
    let fault: trialdesk::inbound::maildir::ReadFault = Arc::new(|name: &str| {
        (name == "2.a.host").then(|| std::io::Error::from(std::io::ErrorKind::PermissionDenied))
    });
    let source = trialdesk::inbound::maildir::MaildirSource::open(
        &env.maildir(),
        Duration::from_millis(10),
        1 << 20,
    )
    .unwrap()
    .with_read_fault(fault);
    let pipeline = env.app.pipeline(Arc::new(Notify::new())).unwrap();
    let mut worker = trialdesk::pipeline::InboundWorker::new(source, Arc::new(pipeline));
    worker.drain().await.unwrap();
    let stats = worker.stats();
    assert_eq!(stats.replied.load(SeqCst), 2);
    let items = env
        .app
        .store
        .review_items(&Default::default())
        .await
        .unwrap()
        .into_iter()
        // Items about the loans' shipments (the fixture's exceptions) are not the point here.
        .filter(|i| i.reason != "shipment_attention")
        .collect::<Vec<_>>();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].reason, "unprocessable");
    assert!(items[0].detail.contains("cannot read"), "{items:?}");
    assert!(items[0].detail.contains("2.a.host"), "{items:?}");
    // Filed like any mail sent to review: nothing is left in new/.
    let left: Vec<_> = std::fs::read_dir(env.maildir().join("new"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
