//! Replays `tests/fixtures/fuzz/TARGET/*` through the checks of the fuzz target of the same
//! name (`trialdesk::fuzzing`), and the specific outcome each finding must now have.

use std::path::Path;

use trialdesk::classify::ReviewReason;
use trialdesk::fuzzing;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fuzz");

fn files(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(DIR).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_finding_passes_its_target_checks() {
    let mut replayed = 0;
    for target in [
        "inbound",
        "loan_numbers",
        "quotes",
        "html_to_text",
        "csv_import",
        "reply",
        "review_pages",
    ] {
        for (name, data) in files(target) {
            let check: fn(&[u8]) = match target {
                "inbound" => |d| {
                    fuzzing::inbound(d);
                },
                "loan_numbers" => fuzzing::loan_numbers,
                "quotes" => fuzzing::quotes,
                "html_to_text" => fuzzing::html_to_text,
                "reply" => fuzzing::reply,
                "review_pages" => fuzzing::review_pages,
                _ => fuzzing::csv_import,
            };
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}/{name} fails again");
            replayed += 1;
        }
    }
    // Every target folder under tests/fixtures/fuzz is known to this test.
    for entry in std::fs::read_dir(DIR).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                [
                    "inbound",
                    "loan_numbers",
                    "quotes",
                    "html_to_text",
                    "csv_import",
                    "reply",
                    "review_pages"
                ]
                .contains(&name.as_str()),
                "unknown target folder {name}"
            );
        }
    }
    assert!(replayed >= 7, "{replayed}");
}

#[test]
fn inbound_findings_have_their_outcomes() {
    for (name, data) in files("inbound") {
        let (ins, d) = fuzzing::inbound(&data);
        match name.as_str() {
            "mime_depth_25.eml" => assert_eq!(d.review, [ReviewReason::MimeTooDeep]),
            // Each nested message is a part, too.
            "rfc822_nesting_3000.eml" => assert_eq!(
                d.review,
                [ReviewReason::MimeTooDeep, ReviewReason::TooManyParts]
            ),
            "parts_600.eml" => assert_eq!(d.review, [ReviewReason::TooManyParts], "{name}"),
            "references_5000.eml" => {
                assert_eq!(ins.references.len(), 100);
                assert_eq!(ins.references[0], "r0@x.example");
                assert_eq!(ins.loan_numbers.len(), 1);
            }
            "from_domain_trailing_dot.eml" => {
                assert_eq!(d.action, trialdesk::classify::Action::Reply);
                let to = d.reply_to.expect("reply target").address;
                assert_eq!(to, "wangzhe@huadong.example.cn");
            }
            other => panic!("add the expected outcome of {other} here"),
        }
    }
}

#[test]
fn html_finding_stays_small() {
    for (_, data) in files("html_to_text") {
        let text = trialdesk::classify::text::html_to_text(&String::from_utf8_lossy(&data));
        // 2000 lines of at most 8 markers each.
        assert!(text.len() <= 2000 * 20, "{}", text.len());
    }
}
