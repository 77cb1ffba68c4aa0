//! What the IMAP source reports about its connection, shared with health and `check`.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::Mutex;

use super::now_ms;
use crate::lease::{LeaseHandle, LeaseSnapshot};

/// Connection state shared with health and `check`.
#[derive(Debug, Default)]
pub struct ImapStatus {
    pub(super) connected: AtomicBool,
    /// Unix ms of the last successful connect (0 = never).
    pub(super) connected_since_ms: AtomicI64,
    /// Connection attempts failed since the last success.
    pub(super) failures: AtomicU32,
    /// Whether IDLE push is in use on the current connection.
    pub(super) push: AtomicBool,
    pub(super) last_error: Mutex<Option<(i64, String)>>,
    pub(super) capabilities: Mutex<String>,
    /// The lease that decides which instance reads the mailbox, when there is one.
    lease: Mutex<Option<LeaseHandle>>,
}

/// A copy of [`ImapStatus`] for reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImapStatusSnapshot {
    pub connected: bool,
    pub connected_since_ms: Option<i64>,
    pub consecutive_failures: u32,
    pub push: bool,
    pub last_error_ms: Option<i64>,
    pub last_error: Option<String>,
    pub capabilities: String,
    /// Which instance reads the mailbox (present when reading is leased).
    pub lease: Option<LeaseSnapshot>,
}

impl ImapStatus {
    pub fn snapshot(&self) -> ImapStatusSnapshot {
        let err = self.last_error.lock().map(|e| e.clone()).unwrap_or(None);
        let since = self.connected_since_ms.load(Ordering::Relaxed);
        ImapStatusSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            connected_since_ms: (since > 0).then_some(since),
            consecutive_failures: self.failures.load(Ordering::Relaxed),
            push: self.push.load(Ordering::Relaxed),
            last_error_ms: err.as_ref().map(|(t, _)| *t),
            last_error: err.map(|(_, e)| e),
            capabilities: self
                .capabilities
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default(),
            lease: self
                .lease
                .lock()
                .ok()
                .and_then(|l| l.as_ref().map(LeaseHandle::snapshot)),
        }
    }

    /// Reports `lease` (the one deciding whether this instance reads the mailbox).
    pub fn set_lease(&self, lease: LeaseHandle) {
        if let Ok(mut l) = self.lease.lock() {
            *l = Some(lease);
        }
    }

    pub(super) fn set_error(&self, message: &str) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some((now_ms(), message.to_string()));
        }
    }
}
