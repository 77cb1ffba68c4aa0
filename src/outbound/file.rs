//! The `file` transport: each mail becomes an `.eml` file in a folder (lettre's file
//! transport). The embedded default and the demo use it; so do tests that read replies back.

use std::path::{Path, PathBuf};

use lettre::address::Envelope;
use lettre::AsyncTransport;

use super::{Outgoing, SendError, SendFuture, Transport};

pub struct FileTransport {
    dir: PathBuf,
    inner: lettre::AsyncFileTransport<lettre::Tokio1Executor>,
}

impl FileTransport {
    /// Creates the folder if needed.
    pub fn new(dir: &Path) -> std::io::Result<FileTransport> {
        std::fs::create_dir_all(dir)?;
        Ok(FileTransport {
            dir: dir.to_path_buf(),
            inner: lettre::AsyncFileTransport::new(dir),
        })
    }
}

impl Transport for FileTransport {
    fn send<'a>(&'a self, mail: Outgoing<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            let envelope = envelope(&mail)?;
            self.inner
                .send_raw(&envelope, mail.body)
                .await
                .map(|_id| ())
                // A full or read-only disk may recover; nothing about the mail itself is wrong.
                .map_err(|e| {
                    SendError::Transient(format!("writing to {}: {e}", self.dir.display()))
                })
        })
    }

    fn describe(&self) -> String {
        format!("file:{}", self.dir.display())
    }
}

/// The SMTP envelope for a queued mail; an address lettre cannot parse is a permanent error.
pub(crate) fn envelope(mail: &Outgoing<'_>) -> Result<Envelope, SendError> {
    let from = mail.envelope_from.parse().map_err(|e| {
        SendError::Permanent(format!("bad envelope sender {:?}: {e}", mail.envelope_from))
    })?;
    let to = mail
        .recipients
        .iter()
        .map(|r| {
            r.parse()
                .map_err(|e| SendError::Permanent(format!("bad recipient {r:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(from), to).map_err(|e| SendError::Permanent(format!("bad envelope: {e}")))
}
