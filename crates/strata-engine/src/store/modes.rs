//! Who may read a store: its owner only.
//!
//! A store other users can traverse lets any of them run what a container left in its
//! writable layer through the host path (`containers/<id>/rootfs/…`): a setuid-root copy of
//! a shell is root on the host. And they read the container's secrets (`config.json` holds
//! `-e`). Docker closed the same hole (CVE-2021-41091) by making its data root 0710. strata's
//! root is 0700 (it remaps no user namespace, so no group needs to traverse it), its
//! directories 0700, its files 0600 (logs 0640, blobs 0400), each set where it is made
//! whatever the umask, so that a root moved or bind-mounted elsewhere stays closed too.
//! Containers keep their setuid programs (`sudo`, `ping`): the host path is closed, the
//! container's own mounts get no `nosuid`.
//!
//! A store made by an older strata (root 0711, directories 0755, files 0644) is tightened
//! the first time it is opened. The root's mode is the marker, set last: an interrupted walk
//! runs again, and an up-to-date store costs one `stat` per command.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use strata_runtime::files;

/// The root's mode; any other mode means "not tightened yet".
pub(crate) const ROOT_MODE: u32 = 0o700;

/// The database and its SQLite companions, at the root.
const DB_FILES: &[&str] = &["metadata.db", "metadata.db-wal", "metadata.db-shm"];
/// The directories strata makes at the root. Only these are touched: a root that also
/// holds someone else's files keeps those as they are.
const DIRS: &[&str] = &["content", "containers", "runtime", "volumes", "snapshots"];

/// Tightens everything strata made under `root`, then the root itself.
pub(crate) fn tighten(root: &Path) -> io::Result<()> {
    for name in DB_FILES {
        set_path(&root.join(name), files::PRIVATE)?;
    }
    for name in DIRS {
        set_path(&root.join(name), files::DIR)?;
    }
    let content = root.join("content");
    each(&content, |p, _| set(p, files::DIR))?;
    each(&content.join("blobs"), |p, _| set(p, files::DIR))?;
    each(&content.join("blobs").join("sha256"), |p, m| {
        if m.is_file() {
            set(p, strata_content::BLOB_MODE)?;
        }
        Ok(())
    })?;
    each(&content.join("ingest"), |dir, _| {
        set(dir, files::DIR)?;
        each(dir, |p, _| set(p, files::PRIVATE))
    })?;
    // A container's directory: its files, not `rootfs` (a mount point: chmod would change
    // the running container's `/`).
    each(&root.join("containers"), |dir, _| {
        set(dir, files::DIR)?;
        each(dir, |p, m| match p.file_name().and_then(|n| n.to_str()) {
            Some(name) if m.is_file() => set(p, files::mode_of(name)),
            _ => Ok(()),
        })
    })?;
    // The runtime's own state directories are the runtime's; leftover exec specs are ours.
    each(&root.join("runtime"), |dir, _| {
        set(dir, files::DIR)?;
        each(dir, |p, m| {
            if m.is_file() {
                set(p, files::PRIVATE)?;
            }
            Ok(())
        })
    })?;
    // `volumes/<name>`, not its `_data`: that is what containers see at the mount point.
    each(&root.join("volumes"), |p, _| set(p, files::DIR))?;
    each(&root.join("snapshots"), |p, _| set(p, files::DIR))?;
    // The root itself may be a symlink to the store (`--root` is the user's to choose).
    set(root, ROOT_MODE)
}

/// Calls `f` on each directory (or regular file) in `dir`; symlinks are never followed, and
/// a missing `dir` or an entry removed meanwhile is skipped.
fn each(dir: &Path, mut f: impl FnMut(&Path, &fs::Metadata) -> io::Result<()>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() || m.is_file() => f(&path, &m)?,
            Ok(_) => {}
            Err(e) if gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sets the mode of `path` if it exists and is not a symlink.
fn set_path(path: &Path, mode: u32) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if !m.is_symlink() && m.mode() & 0o7777 != mode => set(path, mode),
        Ok(_) => Ok(()),
        Err(e) if gone(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

fn set(path: &Path, mode: u32) -> io::Result<()> {
    match fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        Err(e) if gone(&e) => Ok(()),
        r => r,
    }
}

fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn an_old_store_is_closed_but_what_containers_read_stays_readable() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let old = |p: &str, dir: bool| {
            let p = root.join(p);
            if dir {
                fs::create_dir_all(&p).unwrap();
            } else {
                fs::write(&p, b"x").unwrap();
            }
            let m = if dir { 0o755 } else { 0o644 };
            fs::set_permissions(&p, fs::Permissions::from_mode(m)).unwrap();
        };
        for d in [
            "content/blobs/sha256",
            "content/ingest/abc",
            "containers/c1/rootfs",
            "runtime/runc/c1",
            "volumes/v/_data",
            "snapshots/overlayfs/1/fs",
        ] {
            old(d, true);
        }
        for f in [
            "metadata.db",
            "metadata.db-wal",
            "content/blobs/sha256/aa",
            "content/ingest/abc/data",
            "containers/c1/config.json",
            "containers/c1/hosts",
            "containers/c1/c1-json.log",
            "runtime/runc/process-1.json",
            "not-ours",
        ] {
            old(f, false);
        }
        for d in [".", "content", "content/blobs", "containers", "volumes"] {
            fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let outside = tempfile::NamedTempFile::new().unwrap();
        fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("containers/c1/link")).unwrap();
        tighten(root).unwrap();
        let want = [
            (".", 0o700),
            ("metadata.db", 0o600),
            ("metadata.db-wal", 0o600),
            ("content", 0o700),
            ("content/blobs", 0o700),
            ("content/blobs/sha256", 0o700),
            ("content/blobs/sha256/aa", 0o400),
            ("content/ingest/abc", 0o700),
            ("content/ingest/abc/data", 0o600),
            ("containers/c1", 0o700),
            ("containers/c1/config.json", 0o600),
            ("containers/c1/c1-json.log", 0o640),
            // Bind-mounted into the container, for its non-root users.
            ("containers/c1/hosts", 0o644),
            ("containers/c1/rootfs", 0o755),
            ("runtime/runc", 0o700),
            ("runtime/runc/c1", 0o755),
            ("runtime/runc/process-1.json", 0o600),
            ("volumes/v", 0o700),
            ("volumes/v/_data", 0o755),
            ("snapshots/overlayfs", 0o700),
            ("not-ours", 0o644),
        ];
        for (p, m) in want {
            assert_eq!(mode(&root.join(p)), m, "{p}: {:o}", mode(&root.join(p)));
        }
        assert_eq!(mode(outside.path()), 0o644, "a symlink is not followed");
    }
}
