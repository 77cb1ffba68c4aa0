//! The embedded default source: a Maildir (`new/`, `cur/`, `tmp/`).
//!
//! Mail waiting in `new/` is unread. After its decision is committed, a mail is renamed into
//! `cur/` with the `S` (seen) flag, as any Maildir client would; the rename is atomic, so a
//! crash leaves it either still new (and offered again) or done.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{header_section, Disposition, MailSource, RawMail, SourceError};

pub struct MaildirSource {
    root: PathBuf,
    poll_interval: Duration,
    max_message_bytes: u64,
    /// Listed by the last fetch but not readable.
    unreadable: Vec<super::Unreadable>,
    /// Fault injection for tests: an error to return instead of reading this file.
    read_fault: Option<ReadFault>,
}

/// A test hook: the error reading the named file should fail with (None: read it).
pub type ReadFault = std::sync::Arc<dyn Fn(&str) -> Option<std::io::Error> + Send + Sync>;

impl MaildirSource {
    /// Opens a Maildir, creating `new/`, `cur/` and `tmp/` when missing.
    pub fn open(
        root: &Path,
        poll_interval: Duration,
        max_message_bytes: u64,
    ) -> Result<MaildirSource, SourceError> {
        for sub in ["new", "cur", "tmp"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(|source| SourceError::Io {
                path: p.display().to_string(),
                source,
            })?;
        }
        Ok(MaildirSource {
            root: root.to_path_buf(),
            poll_interval,
            max_message_bytes,
            unreadable: Vec::new(),
            read_fault: None,
        })
    }

    /// Installs a read fault (tests: root reads any file whatever its mode, so an unreadable
    /// file is simulated).
    #[doc(hidden)]
    pub fn with_read_fault(mut self, fault: ReadFault) -> Self {
        self.read_fault = Some(fault);
        self
    }

    fn io(&self, path: &Path, source: std::io::Error) -> SourceError {
        SourceError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    fn read_mail(&self, path: &Path) -> std::io::Result<(Vec<u8>, u64)> {
        if let (Some(fault), Some(name)) = (&self.read_fault, path.file_name()) {
            if let Some(e) = fault(&name.to_string_lossy()) {
                return Err(e);
            }
        }
        let mut file = std::fs::File::open(path)?;
        let size = file.metadata()?.len();
        if size <= self.max_message_bytes {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes)?;
            return Ok((bytes, size));
        }
        // Too large: read a bounded prefix and keep only its header section.
        let mut prefix = Vec::new();
        file.take(256 * 1024).read_to_end(&mut prefix)?;
        let headers = header_section(&prefix).to_vec();
        Ok((headers, size))
    }
}

/// `name` → `name:2,S` (or adds `S` to existing `:2,` flags, keeping them sorted).
pub fn seen_name(name: &str) -> String {
    match name.split_once(":2,") {
        Some((base, flags)) => {
            let mut f: Vec<char> = flags.chars().collect();
            if !f.contains(&'S') {
                f.push('S');
            }
            f.sort_unstable();
            f.dedup();
            format!("{base}:2,{}", f.into_iter().collect::<String>())
        }
        None => format!("{name}:2,S"),
    }
}

impl MailSource for MaildirSource {
    async fn fetch(
        &mut self,
        max: usize,
        skip: &HashSet<String>,
    ) -> Result<Vec<RawMail>, SourceError> {
        self.unreadable.clear();
        let new_dir = self.root.join("new");
        let entries = std::fs::read_dir(&new_dir).map_err(|e| self.io(&new_dir, e))?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            // Set aside by the caller: not read, and not taking a place in the batch.
            .filter(|n| !skip.contains(n))
            .collect();
        // Maildir names start with the delivery time: name order is arrival order.
        names.sort();
        names.truncate(max);
        let mut mails = Vec::with_capacity(names.len());
        for name in names {
            let path = new_dir.join(&name);
            match self.read_mail(&path) {
                Ok((bytes, size)) => mails.push(RawMail {
                    origin: format!("maildir:new/{name}"),
                    bytes,
                    size,
                    handle: name,
                }),
                // Taken by another reader between listing and opening: not ours any more.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // Unreadable (permissions, I/O error): this one mail is set aside, the rest
                // flows.
                Err(e) => self.unreadable.push(super::Unreadable {
                    mail: RawMail {
                        origin: format!("maildir:new/{name}"),
                        bytes: Vec::new(),
                        size: 0,
                        handle: name,
                    },
                    error: format!("cannot read {}: {e}", path.display()),
                }),
            }
        }
        Ok(mails)
    }

    async fn ack(&mut self, mail: &RawMail, _disposition: Disposition) -> Result<(), SourceError> {
        let from = self.root.join("new").join(&mail.handle);
        let to = self.root.join("cur").join(seen_name(&mail.handle));
        match std::fs::rename(&from, &to) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(&from, e)),
        }
    }

    fn take_unreadable(&mut self) -> Vec<super::Unreadable> {
        std::mem::take(&mut self.unreadable)
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.poll_interval).await;
    }

    fn describe(&self) -> String {
        format!("maildir:{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_flag_is_added_once_and_sorted() {
        assert_eq!(seen_name("1700.M1.host"), "1700.M1.host:2,S");
        assert_eq!(seen_name("1700.M1.host:2,F"), "1700.M1.host:2,FS");
        assert_eq!(seen_name("1700.M1.host:2,S"), "1700.M1.host:2,S");
        assert_eq!(seen_name("1700.M1.host:2,"), "1700.M1.host:2,S");
    }

    #[tokio::test]
    async fn fetch_and_ack_move_new_to_cur() {
        let dir = std::env::temp_dir().join(format!(
            "td-md-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut src = MaildirSource::open(&dir, Duration::from_millis(10), 100).unwrap();
        std::fs::write(dir.join("new/2.b"), b"Subject: b\r\n\r\nhi").unwrap();
        std::fs::write(dir.join("new/1.a"), b"Subject: a\r\n\r\nhi").unwrap();
        let big = format!("Subject: big\r\n\r\n{}", "x".repeat(500));
        std::fs::write(dir.join("new/3.c"), big.as_bytes()).unwrap();
        let mails = src.fetch(10, &HashSet::new()).await.unwrap();
        let names: Vec<&str> = mails.iter().map(|m| m.handle.as_str()).collect();
        assert_eq!(names, vec!["1.a", "2.b", "3.c"]);
        assert!(!mails[0].is_truncated());
        assert!(mails[2].is_truncated());
        assert_eq!(mails[2].bytes, b"Subject: big\r\n\r\n");
        src.ack(&mails[0], Disposition::Answered).await.unwrap();
        assert!(dir.join("cur/1.a:2,S").exists());
        assert!(!dir.join("new/1.a").exists());
        // A second ack of a mail already moved is not an error.
        src.ack(&mails[0], Disposition::Answered).await.unwrap();
        assert_eq!(src.fetch(10, &HashSet::new()).await.unwrap().len(), 2);
        // A skipped mail takes no place in the batch and stays in `new/`.
        let skip: HashSet<String> = ["2.b".to_string()].into();
        let mails = src.fetch(1, &skip).await.unwrap();
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].handle, "3.c");
        assert!(dir.join("new/2.b").exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
