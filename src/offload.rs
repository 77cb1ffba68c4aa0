//! CPU-heavy work on untrusted data (parsing received mail, sanitising its HTML), run off the
//! async worker threads.
//!
//! The async threads serve every page, `/healthz` and the workers' I/O; one crafted mail
//! parsed or sanitised on them stalls all of it. [`run`] moves a closure onto tokio's blocking
//! pool; with a [`Semaphore`] it also bounds how many run at once, so a burst of heavy pages
//! queues instead of taking every core. A panic in the closure comes back as an error.

use tokio::sync::Semaphore;

/// Received-mail pages (message, item, attachment, inline-image, answer preview) render at most
/// this many mails at once; the rest wait their turn without holding a thread.
pub static PAGE_WORK: Semaphore = Semaphore::const_new(2);

/// The work did not finish: it panicked (the panic is logged by the hook) or the runtime is
/// shutting down.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("work on the blocking pool did not finish: {0}")]
pub struct OffloadError(String);

/// Runs `work` on the blocking pool, after taking a slot of `slots` when given.
pub async fn run<T, F>(slots: Option<&'static Semaphore>, work: F) -> Result<T, OffloadError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let permit = match slots {
        Some(s) => Some(s.acquire().await.map_err(|e| OffloadError(e.to_string()))?),
        None => None,
    };
    // The blocking task holds the slot, not this future: a page request dropped by its client
    // mid-render must not free a slot while the parse goes on.
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| OffloadError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_and_a_panic_is_an_error() {
        assert_eq!(run(None, || 2 + 2).await, Ok(4));
        let r: Result<(), _> = run(Some(&PAGE_WORK), || panic!("boom")).await;
        assert!(r.is_err());
        // The slot came back.
        assert_eq!(run(Some(&PAGE_WORK), || 1).await, Ok(1));
        assert_eq!(PAGE_WORK.available_permits(), 2);
    }

    #[tokio::test]
    async fn a_dropped_request_keeps_its_slot_until_the_work_ends() {
        static ONE: Semaphore = Semaphore::const_new(1);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let request = tokio::spawn(run(Some(&ONE), move || {
            started_tx.send(()).unwrap();
            finish_rx.recv().unwrap();
            done_tx.send(()).unwrap();
        }));
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        // The client goes away mid-render; the parse goes on and still holds the slot.
        request.abort();
        let _ = request.await;
        assert_eq!(ONE.available_permits(), 0);
        finish_tx.send(()).unwrap();
        tokio::task::spawn_blocking(move || done_rx.recv().unwrap())
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while ONE.available_permits() == 0 && std::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert_eq!(ONE.available_permits(), 1);
    }
}
