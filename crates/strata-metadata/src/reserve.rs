//! Reserved space for the database: a file of a few MiB beside `metadata.db`, given back to the
//! filesystem when it runs short, so that a write transaction (the one that removes a failed
//! pull's snapshot, or a prune's) can still commit on a full disk. Without it SQLite answers
//! "database or disk is full" to the very transactions that would free space, and the store
//! is wedged.
//!
//! The reserve is no record: releasing or re-creating it never touches what the database
//! says, so it cannot break the store's crash rule. It is made again by [`Reserve::ensure`]
//! (at every store open) once the filesystem has room for it and as much again.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The least a reserve holds; a larger database gets a reserve of its own size (up to
/// [`MAX_RESERVE`]), since a transaction that deletes much of it rewrites that many pages.
pub const MIN_RESERVE: u64 = 4 << 20;
/// The most a reserve holds.
pub const MAX_RESERVE: u64 = 64 << 20;

/// The reserve file of one store.
#[derive(Debug, Clone)]
pub struct Reserve {
    path: PathBuf,
    /// The database it is kept for (its size sets the reserve's).
    db: PathBuf,
}

impl Reserve {
    /// The reserve at `path`, kept for the database at `db`.
    pub fn new(path: PathBuf, db: PathBuf) -> Reserve {
        Reserve { path, db }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size the reserve should have now.
    fn wanted(&self) -> u64 {
        let db = fs::metadata(&self.db).map_or(0, |m| m.len());
        db.clamp(MIN_RESERVE, MAX_RESERVE)
    }

    /// Creates or completes the reserve if the filesystem has room for it and as much again
    /// (so that the next write does not release it at once). Failures only leave the store
    /// without a reserve: logged, never an error.
    pub fn ensure(&self) {
        let wanted = self.wanted();
        let have = fs::metadata(&self.path).map_or(0, |m| m.len());
        if have >= wanted {
            return;
        }
        let Some(free) = self.path.parent().and_then(|d| available(d).ok()) else {
            return;
        };
        if free < 2 * wanted + (wanted - have) {
            return;
        }
        let made = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .and_then(|f| {
                rustix::fs::fchmod(&f, rustix::fs::Mode::from_raw_mode(0o600))?;
                allocate(&f, wanted)
            });
        match made {
            Ok(()) => {
                tracing::debug!(path = %self.path.display(), size = wanted, "reserve in place")
            }
            Err(e) => {
                tracing::debug!(path = %self.path.display(), "cannot make the reserve: {e}");
                // A half-allocated reserve is worth keeping; one that failed to open is not there.
            }
        }
    }

    /// Gives the reserve back to the filesystem if less than its size is free: called before
    /// every write transaction. Returns whether it was released now.
    pub fn release_if_short(&self) -> bool {
        let Some(dir) = self.path.parent() else {
            return false;
        };
        let Ok(free) = available(dir) else {
            return false;
        };
        if free >= MIN_RESERVE {
            return false;
        }
        match fs::remove_file(&self.path) {
            Ok(()) => {
                tracing::info!(
                    path = %self.path.display(),
                    free,
                    "the store's filesystem is full: released the store's reserved space so its \
                     database can still record changes; free space (strata system prune) and \
                     the reserve is made again"
                );
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), "cannot release the reserve: {e}");
                false
            }
        }
    }
}

/// Bytes an unprivileged writer can still use on the filesystem of `dir` (`f_bavail`: root
/// may use a little more, which is kept for cleanup).
pub fn available(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The size of the filesystem of `dir`, in bytes.
pub fn capacity(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    Ok(st.f_blocks.saturating_mul(st.f_frsize))
}

/// Allocates `len` bytes to `file` for real (`fallocate`), writing zeros where the filesystem
/// cannot allocate without writing.
fn allocate(file: &fs::File, len: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) => {
            use std::io::Write as _;
            let have = file.metadata()?.len();
            let mut f = file;
            io::Seek::seek(&mut f, io::SeekFrom::Start(have))?;
            let zeros = vec![0u8; 1 << 20];
            let mut left = len.saturating_sub(have);
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                f.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            f.sync_all()
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_made_with_room_and_kept_when_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reserve::new(dir.path().join("reserve"), dir.path().join("m.db"));
        r.ensure();
        if available(dir.path()).unwrap() < 3 * MIN_RESERVE {
            strata_testutil::skip("the temporary filesystem is nearly full");
            return;
        }
        assert_eq!(fs::metadata(r.path()).unwrap().len(), MIN_RESERVE);
        assert!(!r.release_if_short(), "plenty of room: kept");
        assert!(r.path().exists());
    }
}
