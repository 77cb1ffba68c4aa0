//! The quote stripper on arbitrary text: never panics, and the fresh part is made of lines of
//! the input, in order (it only drops, never invents; line ends aside).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trialdesk::classify::quotes;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let fresh = quotes::fresh_part(&text);
    let _ = quotes::has_quotes(&text);
    // `lines()` keeps a lone trailing `\r`; the fresh part ends each line with `\n`.
    let mut input = text.lines().map(|l| l.trim_end_matches('\r'));
    for line in fresh.lines().map(|l| l.trim_end_matches('\r')) {
        assert!(
            input.any(|l| l == line),
            "fresh line {line:?} is not an input line in order"
        );
    }
});
