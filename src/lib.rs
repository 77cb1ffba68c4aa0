//! trialdesk answers a partner helpdesk's mailbox for hardware trials.
//! (architecture documentation: written with the pipeline)

pub mod classify;
pub mod config;
pub mod domain;
