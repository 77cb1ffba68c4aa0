//! Pipeline CPU per mail, in process: parse + classify + extract + authorise + render + compose
//! a reply, against `mail-parser` parsing the same mails alone (the floor: every mail must be
//! parsed at least once).
//!
//! ```sh
//! cargo bench --bench pipeline                 # criterion, 5 KB and 50 KB requests
//! cargo bench --bench pipeline -- --profile-time 10 'pipeline/full/5KB'   # for perf
//! ```
//!
//! The store is not involved: the lookup the pipeline would do is served from memory (the
//! partner by domain, the shipments by number), so the figure is the CPU of the rules and the
//! reply, per mail, on one core. Each iteration handles the whole set of 32 generated mails
//! (several charsets, text/HTML, quoting, attachments for the 50 KB ones); criterion reports
//! time per set, which `scripts/bench` divides by 32.

#[path = "support/mailgen.rs"]
mod mailgen;

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trialdesk::classify::{self, Action, Lookup, Rules};
use trialdesk::config::Config;
use trialdesk::domain::{Partner, Shipment};
use trialdesk::outbound::{Composer, Templates};
use trialdesk::pipeline::reply::{self, TrackingReplies};

/// Mails per size class (one criterion iteration handles all of them).
pub const SET: usize = 32;

struct Bench {
    rules: Rules,
    replies: TrackingReplies,
    composer: Composer,
    partners: HashMap<String, Partner>,
    shipments: HashMap<String, Shipment>,
}

impl Bench {
    fn new() -> Bench {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = format!(
            "[database]\nurl = \"sqlite::memory:\"\n[mail]\nfrom = \"{}\"\nfrom_name = \"Trial Helpdesk\"\n\
             [templates]\ndir = \"{}\"\nsignature = \"Partner Trial Helpdesk\"\n\
             [carriers]\nEMS = \"https://www.ems.example.cn/track?no={{tracking_number}}\"\n\
             DHL = \"https://www.dhl.example.de/track?piececode={{tracking_number}}\"\n",
            mailgen::HELPDESK,
            root.join("templates").display()
        );
        let config =
            Config::from_toml_str(&text, &root.join("bench.toml"), PathBuf::from(root), &[])
                .expect("bench config");
        let world = mailgen::world();
        Bench {
            rules: Rules::from_config(&config).expect("rules"),
            replies: TrackingReplies::new(
                &config,
                Arc::new(
                    Templates::load(&config.resolve_path(&config.templates.dir))
                        .expect("templates"),
                ),
            ),
            composer: Composer::new(&config.mail.from_name, &config.mail.from, "example.test")
                .expect("composer"),
            partners: world
                .partners
                .iter()
                .flat_map(|p| p.domains.iter().map(move |d| (d.clone(), p.clone())))
                .collect(),
            shipments: world
                .shipments
                .into_iter()
                .map(|s| (s.loan_number.to_string(), s))
                .collect(),
        }
    }

    /// What `Pipeline::process` computes for one mail, minus the database.
    fn process(&self, raw: &[u8]) -> usize {
        let inspection = classify::inspect(&self.rules, raw);
        let partner = inspection
            .from
            .as_ref()
            .and_then(|f| classify::address_domain(&f.address))
            .and_then(|d| self.partners.get(d))
            .cloned();
        let shipments = inspection
            .loan_numbers
            .iter()
            .filter_map(|n| self.shipments.get(n.as_str()).cloned())
            .collect();
        let lookup = Lookup {
            partner,
            shipments,
            ..Lookup::default()
        };
        let decision = classify::decide(&inspection, &lookup);
        if decision.action != Action::Reply {
            return 0;
        }
        let partner = lookup.partner.as_ref().expect("a reply has a partner");
        let to = decision.reply_to.as_ref().expect("a reply has an address");
        let queued = reply::compose_tracking_reply(
            &self.replies,
            &self.composer,
            &inspection,
            &decision,
            partner,
            to,
            jiff::Timestamp::from_second(1_795_000_000).unwrap(),
        )
        .expect("reply");
        queued.body.len()
    }
}

fn sets() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    vec![
        ("5KB", mailgen::sized_requests(SET, 5_000, 5)),
        ("50KB", mailgen::sized_requests(SET, 50_000, 50)),
    ]
}

/// `TRIALDESK_PIPELINE_ONCE=5KB` (or `50KB`): runs the full path over that set ten times and
/// exits, without criterion — for `valgrind --tool=callgrind`, whose instruction counts are
/// stable on a noisy machine.
fn once(size: &str) {
    let b = Bench::new();
    let (_, mails) = sets()
        .into_iter()
        .find(|(name, _)| *name == size)
        .expect("size 5KB or 50KB");
    for _ in 0..10 {
        for m in &mails {
            black_box(b.process(m));
        }
    }
}

fn bench(c: &mut Criterion) {
    if let Ok(size) = std::env::var("TRIALDESK_PIPELINE_ONCE") {
        once(&size);
        std::process::exit(0);
    }
    let b = Bench::new();
    for (name, mails) in sets() {
        // Every mail must be answered, or the set would measure something else.
        let answered = mails.iter().filter(|m| b.process(m) > 0).count();
        assert_eq!(
            answered,
            mails.len(),
            "{name}: not every request is answered"
        );
        let avg = mails.iter().map(Vec::len).sum::<usize>() / mails.len();
        eprintln!("{name}: {} mails, average {avg} bytes", mails.len());
        let mut group = c.benchmark_group("pipeline");
        group.throughput(Throughput::Elements(mails.len() as u64));
        group.bench_function(format!("parse/{name}"), |bench| {
            let parser = mail_parser::MessageParser::default();
            bench.iter(|| {
                for m in &mails {
                    black_box(parser.parse(black_box(m.as_slice())));
                }
            })
        });
        group.bench_function(format!("full/{name}"), |bench| {
            bench.iter(|| {
                for m in &mails {
                    black_box(b.process(black_box(m.as_slice())));
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
