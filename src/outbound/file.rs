//! The `file` transport: each mail becomes an `.eml` file in a folder. The embedded default
//! and the demo use it; so do tests that read replies back. Files are written whole under a
//! temporary name and renamed, mode 0600 ([`crate::private_file`]).

use std::path::{Path, PathBuf};

use lettre::address::Envelope;

use super::{Outgoing, SendError, SendFuture, Transport};

pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    /// Creates the folder if needed.
    pub fn new(dir: &Path) -> std::io::Result<FileTransport> {
        std::fs::create_dir_all(dir)?;
        Ok(FileTransport {
            dir: dir.to_path_buf(),
        })
    }
}

impl Transport for FileTransport {
    fn send<'a>(&'a self, mail: Outgoing<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            envelope(&mail)?;
            let path = self
                .dir
                .join(format!("{:032x}.eml", rand::random::<u128>()));
            let body = mail.body.to_vec();
            tokio::task::spawn_blocking(move || crate::private_file::write_new(&path, &body))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
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
