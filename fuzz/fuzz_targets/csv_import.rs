//! The three CSV importers (`import::parse_partners/parse_shipments/parse_trials`): the first
//! byte picks the importer, the rest is the file. Never panics; every error names a line that
//! exists in the file.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use trialdesk::import;

fuzz_target!(|data: &[u8]| {
    static PATTERN: OnceLock<regex::Regex> = OnceLock::new();
    let pattern = PATTERN.get_or_init(|| import::exact_loan_pattern(r"D[0-9]{6,10}").unwrap());
    let Some((&which, csv)) = data.split_first() else {
        return;
    };
    let mut progress = |done: u64, total: u64| assert!(done <= total);
    let errors = match which % 3 {
        0 => import::parse_partners(csv, &mut progress).err(),
        1 => import::parse_shipments(csv, pattern, &mut progress).err(),
        _ => import::parse_trials(csv, &mut progress).err(),
    };
    let lines = csv.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    for e in errors.unwrap_or_default() {
        assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}: {e}", e.line);
    }
});
