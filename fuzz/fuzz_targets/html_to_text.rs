//! HTML → text on arbitrary markup: never panics, and the output stays proportional to the
//! input (nested `<blockquote>` must not multiply it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trialdesk::fuzzing::html_to_text(data));
