//! Files trialdesk writes hold mail and partner data: the SQLite database (and its WAL/SHM
//! files, which SQLite creates with the database file's mode), `export` dumps, `backup`
//! copies and the `file` transport's outbox. Each is created with mode 0600 (owner read/write
//! only) whatever the process umask: opened with `create_new` and mode 0600, then set to
//! exactly 0600 (a umask can only take bits away, e.g. 0277 would leave 0400).

use std::fs::File;
use std::io;
use std::path::Path;

/// The mode of every file trialdesk creates.
pub const MODE: u32 = 0o600;

/// Creates `path` (which must not exist) for writing, readable by its owner only.
pub fn create(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(MODE);
    }
    let file = options.open(path)?;
    restrict(&file)?;
    Ok(file)
}

/// Sets an open file to mode 0600.
pub fn restrict(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(MODE))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Writes `bytes` to a new file `path` (mode 0600) via a temporary name in the same folder,
/// so a reader never sees a partial file.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension(format!("tmp{:016x}", rand::random::<u64>()));
    let result = (|| {
        let mut f = create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_are_0600_whatever_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        create(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(create(&p).is_err(), "never overwrites");
        let q = dir.path().join("b.eml");
        write_new(&q, b"x").unwrap();
        assert_eq!(std::fs::read(&q).unwrap(), b"x");
        let mode = std::fs::metadata(&q).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary left"
        );
    }
}
