//! Unit tests of [`super::fingerprint`]: what makes two mails with one Message-ID the same
//! mail. Moved out of `pipeline/mod.rs` to keep that file under 600 lines; the name
//! `fingerprint_tests` is kept (docs/reliability.md cites it).

use super::fingerprint;

#[test]
fn same_mail_same_fingerprint_other_content_other() {
    let base = fingerprint(Some("a@x.example"), "Order 1", "D50261001");
    let cases = [
        (
            fingerprint(Some("a@x.example"), "Order 1", "D50261001"),
            true,
        ),
        (
            fingerprint(Some("a@x.example"), "Order 1", "D50261002"),
            false,
        ),
        (
            fingerprint(Some("b@x.example"), "Order 1", "D50261001"),
            false,
        ),
        (
            fingerprint(Some("a@x.example"), "Order 2", "D50261001"),
            false,
        ),
        (fingerprint(None, "Order 1", "D50261001"), false),
        // Field boundaries count: moving text between fields is another mail.
        (
            fingerprint(Some("a@x.example"), "Order 1D", "50261001"),
            false,
        ),
    ];
    for (i, (fp, same)) in cases.iter().enumerate() {
        assert_eq!(*fp == base, *same, "case {i}");
    }
}
