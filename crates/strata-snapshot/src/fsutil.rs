//! Small filesystem helpers the engine and backends share.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, CWD, FlockOperation, Gid, Mode, OFlags, Uid};

use crate::error::FsError;

/// Deletes a tree, tolerating entries that vanish meanwhile (another process deleting the
/// same leftover). Walks through directory fds (any depth or path length), never follows a
/// symlink and never enters another mount (a mount point inside fails, its content untouched).
pub(crate) fn remove_tree(path: &Path) -> Result<(), FsError> {
    strata_fs::remove_tree(path).map_err(FsError::at("remove", path))
}

/// `syncfs(2)` on the filesystem holding `path`: every dirty page and inode of it reaches the
/// disk before this returns.
pub(crate) fn sync_filesystem(path: &Path) -> Result<(), FsError> {
    let dir = fs::File::open(path).map_err(FsError::at("open for sync", path))?;
    rustix::fs::syncfs(&dir).map_err(|e| FsError::at("sync the filesystem of", path)(e.into()))
}

/// Creates the directory `path` with exactly `mode` (no umask).
pub(crate) fn mkdir(path: &Path, mode: u32) -> Result<(), FsError> {
    fs::DirBuilder::new()
        .mode(mode)
        .create(path)
        .map_err(FsError::at("create directory", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(FsError::at("set mode of", path))
}

/// Gives `dst` the owner and mode of `src`'s root (a new upper dir over a parent whose root
/// is not root-owned 0755 must not change how the merged root looks).
pub(crate) fn copy_owner_and_mode(src: &Path, dst: &Path) -> Result<(), FsError> {
    let meta = fs::symlink_metadata(src).map_err(FsError::at("inspect", src))?;
    set_owner_and_mode(dst, &meta)
}

/// Gives `dst` the owner and permission bits in `meta`: owner first, since chown clears
/// setuid/setgid; symlinks have no mode of their own.
pub(crate) fn set_owner_and_mode(dst: &Path, meta: &fs::Metadata) -> Result<(), FsError> {
    rustix::fs::chownat(
        CWD,
        dst,
        Some(Uid::from_raw(meta.uid())),
        Some(Gid::from_raw(meta.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| FsError::new("set owner of", dst, e.into()))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(FsError::at("set mode of", dst))
}

/// A unique name with `prefix` for this process: `<prefix>-<pid>-<seq>-<time>`.
pub(crate) fn unique_name(prefix: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// An open directory holding an exclusive `flock`, released on drop.
#[derive(Debug)]
pub(crate) struct DirLock {
    fd: rustix::fd::OwnedFd,
}

impl DirLock {
    /// Opens `dir` and locks it: waiting for the lock if `wait`, else `Ok(None)` when another
    /// holder has it.
    pub fn lock(dir: &Path, wait: bool) -> Result<Option<DirLock>, FsError> {
        let fd = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::new("open", dir, e.into()))?;
        let op = if wait {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::NonBlockingLockExclusive
        };
        match rustix::fs::flock(&fd, op) {
            Ok(()) => Ok(Some(DirLock { fd })),
            Err(rustix::io::Errno::WOULDBLOCK) if !wait => Ok(None),
            Err(e) => Err(FsError::new("lock", dir, e.into())),
        }
    }

    /// Whether `path` still names the locked directory (and not, say, nothing).
    pub fn is_at(&self, path: &Path) -> bool {
        let Ok(locked) = rustix::fs::fstat(&self.fd) else {
            return false;
        };
        fs::symlink_metadata(path)
            .is_ok_and(|m| m.dev() == locked.st_dev && m.ino() == locked.st_ino)
    }
}

/// `dir/<name>` for each entry of `dir`, with names that are not UTF-8 skipped (strata never
/// makes such names there).
pub(crate) fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, FsError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(FsError::at("list", dir))? {
        let entry = entry.map_err(FsError::at("list", dir))?;
        match entry.file_name().into_string() {
            Ok(name) => out.push((name, entry.path())),
            Err(name) => tracing::warn!(dir = %dir.display(), ?name, "unexpected entry"),
        }
    }
    Ok(out)
}
