//! HTML → text on arbitrary markup: never panics, and the output stays proportional to the
//! input (nested `<blockquote>` must not multiply it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trialdesk::classify::text;

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    let out = text::html_to_text(&html);
    assert!(
        out.len() <= 64 * html.len() + 64,
        "{} bytes of text from {} bytes of HTML",
        out.len(),
        html.len()
    );
});
