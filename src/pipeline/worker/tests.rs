use super::*;
use crate::inbound::RawMail;

/// Hands out its mails oldest first, at most `batch` per fetch (like `imap.batch_size`),
/// leaving out skipped handles as the real sources do; records what it was asked.
struct Fake {
    mails: Vec<RawMail>,
    batch: usize,
    acked: Vec<String>,
    offered: Vec<String>,
    /// Fetches that come back empty first, with more to list (a listing bound reached).
    unlisted_rounds: usize,
    more: bool,
}

impl MailSource for Fake {
    async fn fetch(
        &mut self,
        max: usize,
        skip: &HashSet<String>,
    ) -> Result<Vec<RawMail>, SourceError> {
        self.more = self.unlisted_rounds > 0;
        if self.more {
            self.unlisted_rounds -= 1;
            return Ok(Vec::new());
        }
        let out: Vec<RawMail> = self
            .mails
            .iter()
            .filter(|m| !self.acked.contains(&m.handle) && !skip.contains(&m.handle))
            .take(max.min(self.batch))
            .cloned()
            .collect();
        self.offered.extend(out.iter().map(|m| m.handle.clone()));
        Ok(out)
    }

    async fn ack(&mut self, mail: &RawMail, _d: Disposition) -> Result<(), SourceError> {
        self.acked.push(mail.handle.clone());
        Ok(())
    }

    fn more_to_list(&self) -> bool {
        self.more
    }

    async fn wait(&mut self) {}

    fn describe(&self) -> String {
        "fake".into()
    }
}

async fn pipeline() -> Pipeline {
    let text = "[database]\nurl = \"sqlite::memory:\"\nmax_connections = 1\n\
         [security]\ntrusted_authserv_ids = [\"mx.helpdesk.example.test\"]\n\
         [mail]\nfrom = \"helpdesk@example.test\"\n";
    let mut config = crate::config::Config::from_toml_str(
        text,
        std::path::Path::new("test.toml"),
        ".".into(),
        &[],
    )
    .unwrap();
    config.templates.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates").into();
    let app = crate::app::App::open(config).await.unwrap();
    app.pipeline(Arc::new(tokio::sync::Notify::new())).unwrap()
}

fn mail(n: usize) -> RawMail {
    let bytes = format!(
        "From: someone{n}@example.org\r\nTo: helpdesk@example.test\r\n\
         Message-ID: <m{n}@example.org>\r\nSubject: hello {n}\r\n\r\nhi\r\n"
    )
    .into_bytes();
    RawMail {
        origin: format!("fake:{n}"),
        size: bytes.len() as u64,
        bytes,
        handle: format!("h{n}"),
    }
}

/// Set-aside mails oldest in the source, enough to fill a whole batch: the healthy mail
/// behind them is still processed in the same round, and they are not handed out again.
#[tokio::test]
async fn quarantined_mails_filling_a_batch_do_not_hide_the_next_one() {
    let batch = 3;
    let source = Fake {
        mails: (1..=batch + 1).map(mail).collect(),
        batch,
        acked: Vec::new(),
        offered: Vec::new(),
        unlisted_rounds: 0,
        more: false,
    };
    let mut worker = InboundWorker::new(source, Arc::new(pipeline().await));
    for n in 1..=batch {
        worker
            .rounds
            .quarantine
            .insert(format!("h{n}"), Instant::now());
    }
    let cancel = CancellationToken::new();
    assert_eq!(settled(&mut worker, &cancel).await, Outcome::Done);
    let healthy = format!("h{}", batch + 1);
    assert_eq!(worker.source.offered, vec![healthy.clone()]);
    assert_eq!(worker.source.acked, vec![healthy]);
    assert_eq!(worker.rounds.stats.fetched.load(Ordering::Relaxed), 1);
    // Nothing else to do while they are set aside; they are still there, unacknowledged.
    assert_eq!(settled(&mut worker, &cancel).await, Outcome::Idle);
    assert_eq!(worker.source.offered.len(), 1);
    // Once the quarantine is over (as its expiry does), they are offered again.
    worker.rounds.quarantine.clear();
    assert_eq!(settled(&mut worker, &cancel).await, Outcome::Done);
    assert_eq!(worker.source.offered.len(), 1 + batch);
}

/// One step, then the filing the next step would do: what a round decided, acknowledged.
async fn settled(worker: &mut InboundWorker<Fake>, cancel: &CancellationToken) -> Outcome {
    let outcome = worker.step(cancel).await.unwrap();
    worker.file_unfiled().await.unwrap();
    outcome
}

/// A round's mails are filed while the next round is processed, and left out of its
/// listing meanwhile: each mail is offered once, and all are filed by the idle step.
#[tokio::test]
async fn a_round_is_filed_during_the_next_and_not_listed_again() {
    let mut source = fake(3);
    source.batch = 2;
    let mut worker = InboundWorker::new(source, Arc::new(pipeline().await))
        .with_filing_batch(2, Duration::from_secs(3600));
    let cancel = CancellationToken::new();
    assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
    assert!(worker.source.acked.is_empty(), "filed with the next round");
    assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
    assert_eq!(worker.source.acked, ["h1", "h2"]);
    assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Idle);
    assert_eq!(worker.source.acked, ["h1", "h2", "h3"]);
    assert_eq!(
        worker.source.offered,
        ["h1", "h2", "h3"],
        "none offered twice"
    );
    assert_eq!(worker.rounds.stats.duplicates.load(Ordering::Relaxed), 0);
}

/// Recorded mails wait to be filed until enough of them wait, or the oldest has waited long
/// enough, and are always filed before the worker idles: a Maildir server rescans the whole
/// folder after each change, so filing every round made a long backlog quadratic there.
#[tokio::test]
async fn recorded_mails_are_filed_in_batches_by_count_or_age_and_before_idling() {
    let mut source = fake(5);
    source.batch = 1;
    let mut worker = InboundWorker::new(source, Arc::new(pipeline().await))
        .with_filing_batch(3, Duration::from_secs(3600));
    let cancel = CancellationToken::new();
    for _ in 0..3 {
        assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
    }
    assert!(worker.source.acked.is_empty(), "three wait; none filed yet");
    assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
    assert_eq!(worker.source.acked, ["h1", "h2", "h3"], "filed at three");
    assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
    assert_eq!(worker.source.acked.len(), 3, "two wait");
    assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Idle);
    assert_eq!(
        worker.source.acked,
        ["h1", "h2", "h3", "h4", "h5"],
        "filed before idling"
    );
    assert_eq!(
        worker.source.offered,
        ["h1", "h2", "h3", "h4", "h5"],
        "none offered twice"
    );

    // By age: a mail that has waited long enough is filed with the next round.
    let mut source = fake(2);
    source.batch = 1;
    let mut worker = InboundWorker::new(source, Arc::new(pipeline().await))
        .with_filing_batch(1000, Duration::ZERO);
    assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
    assert!(worker.source.acked.is_empty());
    assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
    assert_eq!(worker.source.acked, ["h1"]);
}

fn fake(n: usize) -> Fake {
    Fake {
        mails: (1..=n).map(mail).collect(),
        batch: 100,
        acked: Vec::new(),
        offered: Vec::new(),
        unlisted_rounds: 0,
        more: false,
    }
}

/// A source that stopped listing at its per-round bound returns nothing but has more to
/// list: the round counts as work done, so the worker (and `run --once`'s drain) goes on
/// at once instead of waiting for new mail, and reaches the mail above.
#[tokio::test]
async fn an_empty_round_with_more_to_list_is_followed_at_once() {
    let mut source = fake(1);
    source.unlisted_rounds = 2;
    let mut worker = InboundWorker::new(source, Arc::new(pipeline().await));
    let cancel = CancellationToken::new();
    assert_eq!(settled(&mut worker, &cancel).await, Outcome::Done);
    assert_eq!(settled(&mut worker, &cancel).await, Outcome::Done);
    worker.drain().await.unwrap();
    assert_eq!(worker.source.acked, vec!["h1".to_string()]);
    assert_eq!(settled(&mut worker, &cancel).await, Outcome::Idle);
}

async fn open_items(worker: &InboundWorker<Fake>) -> Vec<(String, String)> {
    worker
        .rounds
        .pipeline
        .store()
        .review_items(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.reason, i.detail))
        .collect()
}

/// A panic while processing one mail costs that mail (set aside as `unprocessable`, raw
/// bytes kept), not the batch and not the worker.
#[tokio::test]
async fn a_panic_on_one_mail_sets_it_aside_and_the_batch_goes_on() {
    let hook: super::super::FaultHook = Arc::new(|m: &RawMail| {
        if m.handle == "h2" {
            panic!("injected fault for h2");
        }
        Ok(())
    });
    let pipeline = pipeline().await.with_fault(hook);
    let mut worker = InboundWorker::new(fake(3), Arc::new(pipeline));
    let cancel = CancellationToken::new();
    assert_eq!(settled(&mut worker, &cancel).await, Outcome::Done);
    assert_eq!(worker.source.acked, vec!["h1", "h2", "h3"]);
    let items = open_items(&worker).await;
    let set_aside: Vec<_> = items.iter().filter(|(r, _)| r == "unprocessable").collect();
    assert_eq!(set_aside.len(), 1, "{items:?}");
    assert!(
        set_aside[0].1.contains("injected fault for h2"),
        "{items:?}"
    );
    let store = worker.rounds.pipeline.store();
    let item = store
        .review_items(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.reason == "unprocessable")
        .unwrap();
    let raw = store.inbound_raw(item.inbound_id.unwrap()).await.unwrap();
    assert_eq!(raw.as_deref(), Some(&mail(2).bytes[..]), "raw bytes kept");
    // The worker lives on: the next round works.
    worker.source.mails.push(mail(4));
    assert_eq!(settled(&mut worker, &cancel).await, Outcome::Done);
    assert_eq!(worker.source.acked.len(), 4);
}

/// A mail failing for a non-transient reason is retried after its quarantine, and set
/// aside after `max_failures`; the others flow meanwhile.
#[tokio::test]
async fn a_mail_failing_three_times_is_set_aside() {
    let hook: super::super::FaultHook = Arc::new(|m: &RawMail| match m.handle.as_str() {
        "h1" => Err(PipelineError::Failed("injected failure".into())),
        _ => Ok(()),
    });
    let pipeline = pipeline().await.with_fault(hook);
    let mut worker = InboundWorker::new(fake(2), Arc::new(pipeline)).with_max_failures(3);
    let cancel = CancellationToken::new();
    settled(&mut worker, &cancel).await;
    assert_eq!(worker.source.acked, vec!["h2"]);
    for round in 2..=3 {
        worker.rounds.quarantine.clear();
        settled(&mut worker, &cancel).await;
        let items = open_items(&worker).await;
        let set_aside = items.iter().any(|(r, _)| r == "unprocessable");
        assert_eq!(set_aside, round == 3, "round {round}: {items:?}");
    }
    assert_eq!(worker.source.acked, vec!["h2", "h1"]);
    let items = open_items(&worker).await;
    assert!(
        items
            .iter()
            .any(|(r, d)| r == "unprocessable" && d.contains("failed 3 times")),
        "{items:?}"
    );
}
