//! Leases: one instance at a time uses what only one should use — the IMAP session of the
//! helpdesk mailbox — while every instance sends, schedules reminders and serves the pages.
//!
//! A lease is a row in the database ([`crate::store::LeaseRow`]), taken or renewed by one
//! conditional upsert that succeeds only when the row is free, expired, or already ours. The
//! expiry is computed on the *database's* clock, so hosts whose clocks disagree still agree on
//! it. The holder renews every `renew_every`; the others try as often, and take it once it has
//! expired — or at once when its holder ran on this machine and its process is gone (same
//! kernel boot and PID namespace, and no live process with its PID and start time: a `kill -9`
//! or a crash is not waited out).
//!
//! The holder counts its lease on its own monotonic clock from the moment it *sent* the
//! request, and gives it up locally `renew_every` before that count ends. A holder that cannot
//! renew (database unreachable, process paused) therefore stops using IMAP before anyone else
//! may take the lease. The count is local; the expiry others see is later still.
//!
//! Correctness never depends on this exclusivity: the pipeline records each mail once under its
//! message key, so two readers of one mailbox answer nothing twice. The lease saves work and
//! avoids two sessions racing to file (MOVE) the same mail.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{ClusterConfig, ImapConfig};
use crate::store::{LeaseClaim, LeaseRow, Store, StoreError};

/// How long a lease lasts and how often it is renewed.
#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    pub ttl: Duration,
    pub renew_every: Duration,
}

impl LeaseSettings {
    pub fn imap(config: &ClusterConfig) -> LeaseSettings {
        LeaseSettings {
            ttl: config.imap_lease,
            renew_every: config.imap_lease_renew,
        }
    }

    /// How long after sending a successful request this process may use the resource.
    fn local_validity(&self) -> Duration {
        self.ttl.saturating_sub(self.renew_every)
    }
}

/// The lease guarding the IMAP session of the configured mailbox.
pub fn imap_lease_name(imap: &ImapConfig) -> String {
    format!("imap:{}@{}/{}", imap.username, imap.host, imap.mailbox)
}

/// What this process knows about a lease.
#[derive(Debug, Clone, Default)]
pub struct LeaseState {
    /// Until when (this process's monotonic clock) it may use the resource; `None` when the
    /// lease is not ours.
    held_until: Option<Instant>,
    /// The row as last seen: ours, someone else's, or `None` when free.
    pub row: Option<LeaseRow>,
    /// Rounds completed, successful or not (0: not decided yet).
    pub rounds: u64,
    /// Unix ms (local clock) of the last round that reached the database.
    pub last_ok_ms: i64,
    /// The last failed round: (Unix ms, error).
    pub last_error: Option<(i64, String)>,
}

impl LeaseState {
    fn held(&self) -> bool {
        self.held_until.is_some_and(|d| Instant::now() < d)
    }
}

/// A copy of the state for reports (`/healthz`, logs).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeaseSnapshot {
    pub name: String,
    /// Whether this process holds it now.
    pub held: bool,
    /// This process, as named in the lease row.
    pub me: String,
    /// Who holds it (by the last look), if anyone.
    pub holder: Option<String>,
    pub holder_since_ms: Option<i64>,
    /// When the holder's lease ends unless renewed (database clock).
    pub expires_at_ms: Option<i64>,
    pub last_ok_ms: i64,
    pub last_error_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// This process as a lease holder.
#[derive(Debug, Clone)]
struct Me {
    holder: String,
    token: String,
    process: Option<String>,
}

/// Takes, renews and releases one named lease; [`LeaseHandle`]s watch it.
#[derive(Debug)]
pub struct Lease {
    store: Store,
    name: Arc<str>,
    me: Me,
    settings: LeaseSettings,
    state: watch::Sender<LeaseState>,
}

/// What one attempt found.
enum Attempt {
    /// Ours now; `from` names a dead holder it was taken from.
    Ours { row: LeaseRow, from: Option<String> },
    /// Someone else's, or free after a release in between (`None`).
    Other(Option<LeaseRow>),
}

impl Lease {
    pub fn new(store: Store, name: String, settings: LeaseSettings) -> Lease {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        Lease {
            store,
            name: name.into(),
            me: Me {
                holder: format!("{host}:{}", std::process::id()),
                token: format!(
                    "{:016x}{:016x}",
                    rand::random::<u64>(),
                    rand::random::<u64>()
                ),
                process: process_key(),
            },
            settings,
            state: watch::channel(LeaseState::default()).0,
        }
    }

    pub fn handle(&self) -> LeaseHandle {
        LeaseHandle {
            name: self.name.clone(),
            me: self.me.holder.clone().into(),
            rx: self.state.subscribe(),
        }
    }

    fn claim(&self) -> LeaseClaim<'_> {
        LeaseClaim {
            name: &self.name,
            holder: &self.me.holder,
            token: &self.me.token,
            process: self.me.process.as_deref(),
            ttl_ms: self.settings.ttl.as_millis() as i64,
        }
    }

    async fn attempt(&self) -> Result<Attempt, StoreError> {
        let claim = self.claim();
        if let Some(row) = self.store.lease_acquire(&claim).await? {
            return Ok(Attempt::Ours { row, from: None });
        }
        let current = self.store.lease(&self.name).await?;
        if let Some(row) = &current {
            let gone =
                row.token != self.me.token && row.process.as_deref().is_some_and(process_gone);
            if gone {
                if let Some(new) = self.store.lease_take_over(&claim, &row.token).await? {
                    return Ok(Attempt::Ours {
                        row: new,
                        from: Some(row.holder.clone()),
                    });
                }
                // Someone else was quicker.
                return Ok(Attempt::Other(self.store.lease(&self.name).await?));
            }
        }
        Ok(Attempt::Other(current))
    }

    /// One round: take or renew the lease, or see who has it (and take it from a dead holder
    /// on this machine). Bounded by `renew_every`: a database that does not answer is a failed
    /// round, and the local count runs out on its own.
    #[tracing::instrument(skip_all, fields(lease = %self.name))]
    pub async fn round(&self) {
        let sent = Instant::now();
        let result = match tokio::time::timeout(self.settings.renew_every, self.attempt()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "no answer from the database within {}",
                humantime::format_duration(self.settings.renew_every)
            )),
        };
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let before = self.state.borrow().clone();
        let was_held = before.held();
        self.state.send_modify(|s| {
            s.rounds += 1;
            match &result {
                Ok(Attempt::Ours { row, .. }) => {
                    s.held_until = Some(sent + self.settings.local_validity());
                    s.row = Some(row.clone());
                    s.last_ok_ms = now_ms;
                }
                Ok(Attempt::Other(row)) => {
                    s.held_until = None;
                    s.row = row.clone();
                    s.last_ok_ms = now_ms;
                }
                Err(e) => s.last_error = Some((now_ms, e.clone())),
            }
        });
        match result {
            Ok(Attempt::Ours { from, .. }) if !was_held => match from {
                Some(dead) => tracing::info!(
                    previous = %dead,
                    "took over the lease from a holder whose process is gone"
                ),
                None => match before.row.filter(|r| r.token != self.me.token) {
                    Some(r) => tracing::info!(previous = %r.holder, "took over the expired lease"),
                    None => tracing::info!("took the lease"),
                },
            },
            Ok(Attempt::Other(Some(row))) if was_held || before.rounds == 0 => {
                if was_held {
                    tracing::warn!(holder = %row.holder, "lost the lease to another instance");
                } else {
                    tracing::info!(
                        holder = %row.holder,
                        expires_in_ms = row.expires_at - row.db_now,
                        "another instance holds the lease; standing by"
                    );
                }
            }
            // Said once per outage: at the first failure after a success.
            Err(e)
                if before
                    .last_error
                    .as_ref()
                    .is_none_or(|(t, _)| *t < before.last_ok_ms) =>
            {
                let left = before
                    .held_until
                    .map(|d| d.saturating_duration_since(Instant::now()));
                tracing::warn!(error = %e, held_for = ?left, "cannot renew or take the lease");
            }
            _ => {}
        }
    }

    /// Rounds every `renew_every` until `stop`, then gives the lease up so another instance
    /// takes it at once. Stop it only after the work it guards has stopped.
    pub async fn run(&self, stop: CancellationToken) {
        loop {
            self.round().await;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.settings.renew_every) => {}
            }
        }
        self.release().await;
    }

    /// Gives the lease up (when ours).
    pub async fn release(&self) {
        let was_held = self.state.borrow().held_until.is_some();
        self.state.send_modify(|s| s.held_until = None);
        if !was_held {
            return;
        }
        let release = self.store.lease_release(&self.name, &self.me.token);
        match tokio::time::timeout(Duration::from_secs(2), release).await {
            Ok(Ok(true)) => tracing::info!(lease = %self.name, "released the lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.name, error = %e, "cannot release the lease; it expires by itself")
            }
            Err(_) => {
                tracing::warn!(lease = %self.name, "no answer releasing the lease; it expires by itself")
            }
        }
    }
}

/// Watches a [`Lease`]: cheap to clone.
#[derive(Debug, Clone)]
pub struct LeaseHandle {
    name: Arc<str>,
    me: Arc<str>,
    rx: watch::Receiver<LeaseState>,
}

impl LeaseHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this process may use the resource now.
    pub fn is_held(&self) -> bool {
        self.rx.borrow().held()
    }

    /// Whether a first round has run (before it, "not held" means "not known yet").
    pub fn decided(&self) -> bool {
        self.rx.borrow().rounds > 0
    }

    /// Who holds the lease by the last look (this process or another).
    pub fn holder(&self) -> Option<String> {
        let s = self.rx.borrow();
        s.row
            .as_ref()
            .filter(|r| !r.expired() || s.held())
            .map(|r| r.holder.clone())
    }

    /// Resolves once the lease is ours (never, after the lease stopped).
    pub async fn held(&self) {
        let mut rx = self.rx.clone();
        loop {
            if rx.borrow_and_update().held() {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves once the lease is not ours: lost to another instance, given up, or run out
    /// on the local count because renewals failed.
    pub async fn lost(&self) {
        let mut rx = self.rx.clone();
        loop {
            let until = {
                let s = rx.borrow_and_update();
                match s.held_until {
                    Some(d) if Instant::now() < d => d,
                    _ => return,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }

    pub fn snapshot(&self) -> LeaseSnapshot {
        let s = self.rx.borrow();
        let held = s.held();
        let row = s.row.as_ref().filter(|r| !r.expired() || held);
        LeaseSnapshot {
            name: self.name.to_string(),
            held,
            me: self.me.to_string(),
            holder: row.map(|r| r.holder.clone()),
            holder_since_ms: row.map(|r| r.acquired_at),
            expires_at_ms: row.map(|r| r.expires_at),
            last_ok_ms: s.last_ok_ms,
            last_error_ms: s.last_error.as_ref().map(|(t, _)| *t),
            last_error: s.last_error.as_ref().map(|(_, e)| e.clone()),
        }
    }
}

/// This process on this machine: `boot id/PID namespace/PID/start time` (Linux), so another
/// process can later tell whether it is still alive. `None` where `/proc` does not say.
pub fn process_key() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let pid = std::process::id();
    let (_, start) = proc_stat(pid)?;
    Some(format!(
        "{}/{}/{pid}/{start}",
        boot.trim(),
        ns.to_string_lossy()
    ))
}

/// Whether the process named by `key` ([`process_key`] of another process) is certainly gone:
/// it ran on this machine since its last boot, in this PID namespace, and there is no live
/// process with its PID and start time. Anything uncertain (another machine or container, no
/// `/proc`) is "not gone": that holder is waited out until its lease expires.
pub fn process_gone(key: &str) -> bool {
    let Some(mine) = process_key() else {
        return false;
    };
    let theirs: Vec<&str> = key.split('/').collect();
    let ours: Vec<&str> = mine.split('/').collect();
    if theirs.len() != 4 || ours.len() != 4 || theirs[0] != ours[0] || theirs[1] != ours[1] {
        return false;
    }
    let (Ok(pid), Ok(start)) = (theirs[2].parse::<u32>(), theirs[3].parse::<u64>()) else {
        return false;
    };
    match proc_stat(pid) {
        // Zombies and dead tasks hold nothing; a different start time is a reused PID.
        Some((state, started)) => started != start || matches!(state, 'Z' | 'X' | 'x'),
        None => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// (state, start time in clock ticks since boot) from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_finished_child_is_gone() {
        let Some(me) = process_key() else {
            // No /proc here: the shortcut is off and holders are waited out.
            return;
        };
        assert!(!process_gone(&me));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let (_, start) = proc_stat(pid).unwrap_or((' ', 0));
        child.wait().unwrap();
        let parts: Vec<&str> = me.split('/').collect();
        let key = format!("{}/{}/{pid}/{start}", parts[0], parts[1]);
        assert!(process_gone(&key), "{key}");
        // Same PID, another start time: a reused PID, so the holder is gone.
        let reused = format!("{}/{}/{}/{}", parts[0], parts[1], std::process::id(), 1);
        assert!(process_gone(&reused));
        // Another machine (boot id) or PID namespace: cannot tell, never "gone".
        assert!(!process_gone(&format!(
            "other-boot/{}/{pid}/{start}",
            parts[1]
        )));
        assert!(!process_gone(&format!(
            "{}/pid:[1]/{pid}/{start}",
            parts[0]
        )));
        assert!(!process_gone("garbage"));
    }

    #[test]
    fn local_validity_ends_a_renewal_before_the_lease() {
        let s = LeaseSettings {
            ttl: Duration::from_secs(10),
            renew_every: Duration::from_secs(2),
        };
        assert_eq!(s.local_validity(), Duration::from_secs(8));
    }
}
