//! The shape every background worker shares.
//!
//! A worker exposes one unit of work (`step`) that reports whether it did something. The loop
//! around it runs steps back to back while there is work, waits when idle, backs off
//! exponentially (with jitter) when a step fails, and checks the cancellation token only
//! *between* steps: a message in hand is finished, never abandoned half-way.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Did some work; call again at once.
    Done,
    /// Nothing to do right now.
    Idle,
}

/// Exponential backoff with full jitter between `base` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            failures: 0,
        }
    }

    /// The next delay: `base * 2^failures`, capped, then a random point in its upper half (so
    /// instances that failed together do not retry together).
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.base.saturating_mul(1u32 << exp).min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// How long a unit of work in hand may still run after a stop was asked for, before it is
/// abandoned (dropped). Every worker stops between units; this bounds the wait for one that
/// hangs (a silent server), so `run` stops within the unit's `TimeoutStopSec` (60 s, deploy/):
/// at most this grace plus closing the connections.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(40);

/// Resolves [`SHUTDOWN_GRACE`] after `cancel` fired: race a unit of work against it.
pub async fn grace_over(cancel: &CancellationToken) {
    cancel.cancelled().await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}

/// A worker as [`run_worker`] drives it: one unit of work, and a way to wait for more.
pub trait Worker {
    type Error: std::error::Error + 'static;
    /// One unit of work. `cancel` may be checked between the parts of a unit that can stop
    /// cleanly there (the mails of a fetched batch); a part in hand is finished.
    fn step(
        &mut self,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<Outcome, Self::Error>>;
    /// Returns when new work may be there: a notification, a timer, IDLE from the server.
    fn wait(&mut self) -> impl Future<Output = ()>;
}

/// The one loop of every worker: runs `worker`'s steps back to back while there is work,
/// waits when it is idle, backs off (exponentially, with jitter) after a failed step, and
/// stops on `cancel` between steps (a step in hand gets [`SHUTDOWN_GRACE`], then is dropped).
pub async fn run_worker<W: Worker>(
    name: &str,
    cancel: &CancellationToken,
    mut backoff: Backoff,
    worker: &mut W,
) {
    while !cancel.is_cancelled() {
        let result = tokio::select! {
            r = worker.step(cancel) => r,
            _ = grace_over(cancel) => {
                tracing::warn!(worker = name, "work in hand abandoned at shutdown");
                break;
            }
        };
        match result {
            Ok(Outcome::Done) => backoff.reset(),
            Ok(Outcome::Idle) => {
                backoff.reset();
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = worker.wait() => {}
                }
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(worker = name, error = %crate::telemetry::ErrorChain(&e), retry_in = ?delay, failures = backoff.failures(), "step failed; backing off");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    tracing::debug!(worker = name, "stopped");
}

/// [`run_worker`] for a worker given as two closures: `step` (one unit of work) and `wait`
/// (awaited when a step reports `Idle`).
pub async fn run_loop<S, SF, W, WF, E>(
    name: &str,
    cancel: &CancellationToken,
    backoff: Backoff,
    step: S,
    wait: W,
) where
    S: FnMut() -> SF,
    SF: Future<Output = Result<Outcome, E>>,
    W: FnMut() -> WF,
    WF: Future<Output = ()>,
    E: std::error::Error + 'static,
{
    struct Closures<S, W> {
        step: S,
        wait: W,
    }
    impl<S, SF, W, WF, E> Worker for Closures<S, W>
    where
        S: FnMut() -> SF,
        SF: Future<Output = Result<Outcome, E>>,
        W: FnMut() -> WF,
        WF: Future<Output = ()>,
        E: std::error::Error + 'static,
    {
        type Error = E;
        fn step(
            &mut self,
            _cancel: &CancellationToken,
        ) -> impl Future<Output = Result<Outcome, E>> {
            (self.step)()
        }
        fn wait(&mut self) -> impl Future<Output = ()> {
            (self.wait)()
        }
    }
    run_worker(name, cancel, backoff, &mut Closures { step, wait }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(500) && delays[0] <= Duration::from_secs(1));
        assert!(delays[3] >= Duration::from_secs(4) && delays[3] <= Duration::from_secs(8));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(60)));
        assert!(delays[9] >= Duration::from_secs(30));
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn loop_stops_on_cancel_between_steps() {
        let cancel = CancellationToken::new();
        let mut steps = 0;
        let c2 = cancel.clone();
        run_loop(
            "t",
            &cancel,
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
            || {
                steps += 1;
                if steps == 3 {
                    c2.cancel();
                }
                async { Ok::<_, std::io::Error>(Outcome::Done) }
            },
            || async {},
        )
        .await;
        assert_eq!(steps, 3);
    }
}
