//! `trialdesk::fuzzing::reply`: see its documentation for the checks.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // As in the inbound target: mail-parser's debug assertions are caught by `inspect`.
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
    // A panic outside mail-parser aborts in the hook above (a crash); one of mail-parser's
    // debug assertions is contained, as the pages contain it (offload: "cannot display").
    let _ = std::panic::catch_unwind(|| trialdesk::fuzzing::reply(raw));
});
