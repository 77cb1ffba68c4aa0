//! The three CSV importers (`import::parse_partners/parse_shipments/parse_trials`): the first
//! byte picks the importer, the rest is the file. Never panics; every error names a line that
//! exists in the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trialdesk::fuzzing::csv_import(data));
