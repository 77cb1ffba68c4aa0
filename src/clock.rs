//! Time, injectable: reminders and retries are tested by moving a fake clock, not by waiting.

use std::sync::{Arc, Mutex};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> jiff::Timestamp;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// A clock tests set and advance by hand.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<jiff::Timestamp>>);

impl ManualClock {
    pub fn new(start: jiff::Timestamp) -> Self {
        ManualClock(Arc::new(Mutex::new(start)))
    }

    pub fn set(&self, t: jiff::Timestamp) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t = t
            .checked_add(jiff::SignedDuration::try_from(by).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(*t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> jiff::Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub type SharedClock = Arc<dyn Clock>;
