//! Files of a container's directory and their modes.
//!
//! The store keeps everything to its owner (Docker does the same with its data root): the
//! bundle's `config.json` holds the container's environment (`-e SECRET=…`), `state.json`
//! and the log what it did. Only the files the container itself reads through bind mounts
//! ([`SHARED_FILES`]) are world-readable, because the container's own non-root users must
//! read them; their directory still keeps other host users out.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Files of the store only its owner reads: specs, records, state.
pub const PRIVATE: u32 = 0o600;
/// Logs, as Docker's `json-file` driver keeps them.
pub const LOG: u32 = 0o640;
/// Directories of the store.
pub const DIR: u32 = 0o700;

/// The bundle's files bind-mounted into the container (`/etc/hostname`, `/etc/hosts`,
/// `/etc/resolv.conf`), readable by every user inside it.
pub const SHARED_FILES: &[&str] = &["hostname", "hosts", "resolv.conf"];

/// The mode of a file named `name` in a container's directory.
pub fn mode_of(name: &str) -> u32 {
    if SHARED_FILES.contains(&name) {
        0o644
    } else if name.contains("-json.log") {
        LOG
    } else {
        PRIVATE
    }
}

/// Creates `dir` and its missing parents (those at [`DIR`]); an existing `dir` is fine.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(DIR).create(dir)
}

/// Replaces `path` with `bytes` at exactly `mode` (whatever the umask): a temporary file,
/// synced, renamed over, so readers see the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let write = || {
        let mut f = create_new(&tmp, mode)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Creates `path`, which must not exist, at exactly `mode`.
pub fn create_new(path: &Path, mode: u32) -> io::Result<fs::File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    // The umask may have taken bits away; the mode is ours to decide.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_at_the_mode_asked_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        write_atomic(&p, b"{}", PRIVATE).unwrap();
        write_atomic(&p, b"{\"a\":1}", PRIVATE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{\"a\":1}");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
        let hosts = dir.path().join("hosts");
        write_atomic(&hosts, b"127.0.0.1 localhost\n", mode_of("hosts")).unwrap();
        assert_eq!(fs::metadata(&hosts).unwrap().mode() & 0o7777, 0o644);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        assert_eq!(mode_of("0123-json.log.1"), 0o640);
    }
}
