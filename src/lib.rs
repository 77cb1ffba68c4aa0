//! trialdesk answers a partner helpdesk's mailbox for hardware trials.
//! (architecture documentation: written with the pipeline)

pub mod app;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod import;
pub mod inbound;
pub mod outbound;
pub mod pipeline;
pub mod store;
pub mod telemetry;
pub mod worker;
