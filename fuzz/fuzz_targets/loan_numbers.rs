//! The loan-number extractor on arbitrary text: never panics, never loops, and everything it
//! returns is a normalised number that the configured pattern matches whole.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trialdesk::fuzzing::loan_numbers(data));
