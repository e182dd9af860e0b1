//! Metadata from tar headers onto files: which xattrs are allowed, owners, times, and the
//! error context every operation reports with.
//!
//! Order matters and is always: data, owner, mode, xattrs, times. `chown` clears setuid and
//! setgid bits (so the mode comes after it) and drops `security.capability` (so xattrs come
//! after both); setting xattrs or the mode changes only ctime, so times go last.

use std::io;
use std::os::fd::BorrowedFd;

use rustix::fs::{Gid, Timespec, Timestamps, Uid};

use crate::error::ArchiveError;
use crate::sys;
use crate::tarstream::{EntryHeader, TarError, Time};

/// Whether an xattr from a layer is applied.
///
/// Refused: the whole `trusted.*` namespace and `user.overlay.*`. `trusted.overlay.*` (and
/// `user.overlay.*` under the `userxattr` mount option) is overlayfs's own metadata —
/// `opaque`, `redirect`, `metacopy`, `origin`, `upper`, `whiteout` — and a layer that could set
/// it would forge whiteouts or redirect lookups into other layers' files; the rest of
/// `trusted.*` is privileged metadata of other filesystems and daemons that a layer has no
/// business setting on the host. `security.*` (file capabilities, SELinux labels), `system.*`
/// (POSIX ACLs) and other `user.*` xattrs are applied.
pub(crate) fn xattr_allowed(key: &[u8]) -> bool {
    !(key.starts_with(b"trusted.") || key.starts_with(b"user.overlay."))
}

/// Whether a failure to set an xattr is only worth a warning (as containerd treats it): the
/// filesystem does not support xattrs, or that namespace on that file type (`user.*` on a
/// symlink or device), or an unprivileged process may not set it.
pub(crate) fn xattr_error_is_benign(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTSUP) | Some(libc::EPERM) | Some(libc::EACCES)
    )
}

pub(crate) fn timespec(t: Time) -> Timespec {
    Timespec {
        tv_sec: t.sec,
        tv_nsec: i64::from(t.nsec),
    }
}

/// (atime, mtime) for an entry: atime defaults to mtime, as tar does.
pub(crate) fn timestamps(h: &EntryHeader) -> Timestamps {
    Timestamps {
        last_access: timespec(h.atime.unwrap_or(h.mtime)),
        last_modification: timespec(h.mtime),
    }
}

/// The error context of one entry: the layer and the entry's name as written in the tar.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub layer: &'a str,
    pub entry: &'a [u8],
}

/// A failure while applying an entry: either fully described, or a tar error the caller
/// describes with the stream's current entry.
#[derive(Debug)]
pub(crate) enum Failure {
    Archive(ArchiveError),
    Tar(TarError),
}

impl From<ArchiveError> for Failure {
    fn from(e: ArchiveError) -> Self {
        Failure::Archive(e)
    }
}

impl From<TarError> for Failure {
    fn from(e: TarError) -> Self {
        Failure::Tar(e)
    }
}

impl<'a> Ctx<'a> {
    pub(crate) fn entry_name(&self) -> String {
        String::from_utf8_lossy(self.entry).into_owned()
    }

    pub(crate) fn io(self, op: &'static str) -> impl FnOnce(io::Error) -> Failure + 'a {
        move |source| {
            Failure::Archive(ArchiveError::Apply {
                layer: self.layer.to_owned(),
                entry: self.entry_name(),
                op,
                source,
            })
        }
    }

    pub(crate) fn refuse(self, reason: &'static str) -> Failure {
        Failure::Archive(ArchiveError::UnsafeEntry {
            layer: self.layer.to_owned(),
            entry: self.entry_name(),
            reason,
        })
    }

    pub(crate) fn needs_root(self, what: &'static str) -> Failure {
        Failure::Archive(ArchiveError::NeedsRoot {
            layer: self.layer.to_owned(),
            entry: self.entry_name(),
            what,
        })
    }

    /// The entry's owner as kernel ids. `u32::MAX` means "unchanged" to `chown(2)` and larger
    /// values do not fit: both are refused.
    pub(crate) fn ids(self, h: &EntryHeader) -> Result<(Uid, Gid), Failure> {
        let uid = u32::try_from(h.uid).ok().filter(|&u| u != u32::MAX);
        let gid = u32::try_from(h.gid).ok().filter(|&g| g != u32::MAX);
        match (uid, gid) {
            (Some(u), Some(g)) => Ok((Uid::from_raw(u), Gid::from_raw(g))),
            _ => Err(self.refuse("uid or gid out of range")),
        }
    }

    /// Sets the entry's allowed xattrs on `name` in `dir` (empty `name`: `dir` itself).
    pub(crate) fn set_xattrs_at(
        self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), Failure> {
        for (key, value) in xattrs {
            if !xattr_allowed(key) {
                tracing::debug!(
                    layer = self.layer,
                    entry = %self.entry_name(),
                    key = %String::from_utf8_lossy(key),
                    "xattr filtered"
                );
                continue;
            }
            if let Err(e) = sys::set_xattr_at(dir, name, key, value) {
                self.xattr_failed(key, e)?;
            }
        }
        Ok(())
    }

    pub(crate) fn xattr_failed(self, key: &[u8], e: io::Error) -> Result<(), Failure> {
        if xattr_error_is_benign(&e) {
            tracing::warn!(
                layer = self.layer,
                entry = %self.entry_name(),
                key = %String::from_utf8_lossy(key),
                error = %e,
                "xattr not applied"
            );
            Ok(())
        } else {
            Err(self.io("set xattr")(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_overlay_and_trusted_xattrs() {
        for refused in [
            &b"trusted.overlay.opaque"[..],
            b"trusted.overlay.redirect",
            b"trusted.overlay.metacopy",
            b"trusted.foo",
            b"user.overlay.opaque",
        ] {
            assert!(!xattr_allowed(refused));
        }
        for allowed in [
            &b"security.capability"[..],
            b"security.selinux",
            b"system.posix_acl_access",
            b"user.mime_type",
        ] {
            assert!(xattr_allowed(allowed));
        }
    }
}
