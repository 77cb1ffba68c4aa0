//! Inbound: where mail comes from. A [`MailSource`] hands out raw mails and, only after their
//! decision is committed, acknowledges them (Maildir: `new/` → `cur/` with the `S` flag;
//! IMAP: moved to a folder per outcome). A crash between commit and acknowledgement means
//! the mail is offered again; the store recognises it by its key and it is only acknowledged.

pub mod imap;
pub mod maildir;

use std::collections::HashSet;
use std::future::Future;

/// Errors at the mail-source boundary.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("mail source I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Connection-level trouble (server down, TLS, timeouts): retried with backoff.
    #[error("mail server unavailable: {0}")]
    Unavailable(String),
    /// Credentials refused: retried, but loudly.
    #[error("mail server refused the login: {0}")]
    Auth(String),
    #[error("mail server protocol error: {0}")]
    Protocol(String),
    /// The source's own bookkeeping in the database failed (IMAP UID state).
    #[error("mail source bookkeeping failed: {0}")]
    Store(String),
}

/// One mail as read from the source.
#[derive(Debug, Clone)]
pub struct RawMail {
    /// Human-readable origin (`maildir:new/1700000000.x.host`, `imap:INBOX/7/42`).
    pub origin: String,
    /// The bytes (only the header section when the mail is larger than the limit).
    pub bytes: Vec<u8>,
    /// The full size of the mail as stored at the source.
    pub size: u64,
    /// Source-specific handle used by `ack`.
    pub handle: String,
}

impl RawMail {
    /// Whether `bytes` holds only the headers because the mail exceeded the size limit.
    pub fn is_truncated(&self) -> bool {
        (self.bytes.len() as u64) < self.size
    }

    /// The mail without its bytes: enough to acknowledge it later.
    pub fn handle_only(&self) -> RawMail {
        RawMail {
            origin: self.origin.clone(),
            bytes: Vec::new(),
            size: self.size,
            handle: self.handle.clone(),
        }
    }
}

/// What became of a mail, so the source can file it (IMAP folders per outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Answered,
    Review,
    Ignored,
}

/// A place mail is read from.
/// A mail a source listed but could not read (see [`MailSource::take_unreadable`]).
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// What the source can still hand out: origin, handle, and any bytes it did read.
    pub mail: RawMail,
    pub error: String,
}

pub trait MailSource: Send {
    /// Up to `max` mails not yet acknowledged, oldest first, leaving out those whose handle
    /// is in `skip` (set aside after failing) before they are read: they neither count
    /// against `max` or the source's own batch limits nor are downloaded again, so mail
    /// behind them is still offered. They stay unacknowledged and come back once no longer
    /// skipped.
    fn fetch(
        &mut self,
        max: usize,
        skip: &HashSet<String>,
    ) -> impl Future<Output = Result<Vec<RawMail>, SourceError>> + Send;

    /// Marks a mail as handled. Called only after its decision is committed.
    fn ack(
        &mut self,
        mail: &RawMail,
        disposition: Disposition,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Marks several mails as handled at once (all committed). One by one by default; the
    /// IMAP source files each outcome's share with one command.
    fn ack_all(
        &mut self,
        acks: &[(&RawMail, Disposition)],
    ) -> impl Future<Output = Result<(), SourceError>> + Send {
        async move {
            for (mail, disposition) in acks {
                self.ack(mail, *disposition).await?;
            }
            Ok(())
        }
    }

    /// Mails the last `fetch` listed but could not read (an unreadable file, a message the
    /// server lists but will not hand out): their handle, origin and the error. The worker
    /// sets each aside for review as `unprocessable` and acknowledges it, so one such mail
    /// never stalls the source. None by default.
    fn take_unreadable(&mut self) -> Vec<Unreadable> {
        Vec::new()
    }

    /// Whether the last `fetch` stopped listing at its per-round bound with mail above still
    /// unlisted (and so may have returned nothing although there is mail to read): the caller
    /// fetches again at once instead of waiting for new mail. False by default.
    fn more_to_list(&self) -> bool {
        false
    }

    /// Returns when new mail may have arrived (push notification or poll interval).
    fn wait(&mut self) -> impl Future<Output = ()> + Send;

    fn describe(&self) -> String;

    /// Ends the session politely on shutdown (IMAP LOGOUT). Nothing to do by default.
    fn close(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Reads at most `limit` bytes of a mail, stopping after the header section when the mail is
/// larger than `limit`: an oversize mail is judged by its headers and never loaded whole.
pub(crate) fn header_section(bytes: &[u8]) -> &[u8] {
    let end = find(bytes, b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| find(bytes, b"\n\n").map(|i| i + 2))
        .unwrap_or(bytes.len());
    &bytes[..end]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_section_stops_at_blank_line() {
        assert_eq!(
            header_section(b"A: 1\r\nB: 2\r\n\r\nbody"),
            b"A: 1\r\nB: 2\r\n\r\n"
        );
        assert_eq!(header_section(b"A: 1\n\nbody"), b"A: 1\n\n");
        assert_eq!(header_section(b"A: 1"), b"A: 1");
    }
}
