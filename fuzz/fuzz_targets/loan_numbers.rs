//! The loan-number extractor on arbitrary text: never panics, never loops, and everything it
//! returns is a normalised number that the configured pattern matches whole.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use trialdesk::classify::loan_numbers::LoanExtractor;

fuzz_target!(|data: &[u8]| {
    static EX: OnceLock<(LoanExtractor, regex::Regex)> = OnceLock::new();
    let (ex, whole) = EX.get_or_init(|| {
        (
            LoanExtractor::new(r"D[0-9]{6,10}", 50).expect("pattern"),
            regex::Regex::new(r"^D[0-9]{6,10}$").expect("pattern"),
        )
    });
    let text = String::from_utf8_lossy(data);
    let found = ex.extract(&text);
    assert!(found.numbers.len() <= 50);
    for n in &found.numbers {
        assert!(whole.is_match(n.as_str()), "{n}");
    }
    let mut seen = std::collections::HashSet::new();
    assert!(found.numbers.iter().all(|n| seen.insert(n.clone())), "duplicates");
});
