//! Raw bytes → `classify::inspect` → `classify::decide` with a fixed partner and lookup: the
//! whole inbound decision, as `explain` and the pipeline run it (checks in
//! `trialdesk::fuzzing::inbound`).
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // mail-parser has `debug_assert!(false, …)`s on some hostile structures; fuzz builds
        // enable debug assertions (for our overflow checks), release builds do not. `inspect`
        // catches such a panic and re-reads the mail; only panics elsewhere are crashes here.
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_mail_parser = info
                .location()
                .is_some_and(|l| l.file().contains("/mail-parser-"));
            if !in_mail_parser {
                abort_hook(info);
            }
        }));
    });
    trialdesk::fuzzing::inbound(raw);
});
