//! The quote stripper on arbitrary text: never panics, and the fresh part is made of lines of
//! the input, in order (it only drops, never invents; line ends aside).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trialdesk::fuzzing::quotes(data));
