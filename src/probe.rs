//! A step of connecting to a server, as `trialdesk check` reports it. Its own module so the
//! adapters that probe (`inbound`, `outbound`) need not depend on `health`, which reads them.

/// One line of `trialdesk check`: a step of connecting to a server, passed or failed.
#[derive(Debug, Clone)]
pub struct ProbeStep {
    pub ok: bool,
    pub what: String,
    pub detail: String,
}

impl ProbeStep {
    pub fn ok(what: &str, detail: String) -> Self {
        ProbeStep {
            ok: true,
            what: what.to_string(),
            detail,
        }
    }

    pub fn fail(what: &str, detail: String) -> Self {
        ProbeStep {
            ok: false,
            what: what.to_string(),
            detail,
        }
    }
}
