//! Reusing the files of the same layer unpacked elsewhere ([`ApplyOptions::reuse_from`]:
//! Docker's overlay2 `diff` directory, for `strata migrate`) instead of writing their data.
//!
//! For a regular file the tar carries data for (any size: a link also saves the small file's
//! block and metadata calls), the file of the same name there, if it is a regular file of
//! the same size, is
//! - cloned into the new file (`FICLONE`: shared extents, an inode of our own), where the
//!   filesystem can; else
//! - hardlinked, when its owner, mode and mtime are already the header's and neither it nor
//!   the header has xattrs (so nothing about the shared inode needs changing); else
//! - not used: the data is written as usual.
//!
//! The tar's data is read and hashed either way, so the diffID covers what the layer says;
//! the caller checks the finished tree against it (a source changed between the read and the
//! clone would show there). A "not supported" or "cross-device" answer stops that method for
//! the rest of the layer.
//!
//! [`ApplyOptions::reuse_from`]: super::ApplyOptions::reuse_from

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, OFlags};
use rustix::io::Errno;

use crate::tarstream::EntryHeader;

/// What one apply reused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reused {
    /// Files whose data was cloned (shared extents).
    pub cloned: u64,
    /// Files hardlinked to the source.
    pub linked: u64,
    /// Bytes of file data not written.
    pub bytes: u64,
}

impl std::ops::AddAssign for Reused {
    fn add_assign(&mut self, other: Reused) {
        self.cloned += other.cloned;
        self.linked += other.linked;
        self.bytes += other.bytes;
    }
}

#[derive(Debug)]
pub(crate) struct Reuse {
    root: OwnedFd,
    clone: bool,
    link: bool,
    pub(crate) done: Reused,
}

impl Reuse {
    /// Reuse from the directory `root` into `dest`; hardlinks only when `link` (the apply sets
    /// owners from the tar, so a linked file's owner is what a written one's would be).
    /// Clones are tried first, and only on filesystems that share extents: elsewhere the
    /// first file would be lost to a failed attempt before links take over.
    pub(crate) fn new(root: OwnedFd, dest: BorrowedFd<'_>, link: bool) -> Reuse {
        Reuse {
            root,
            clone: shares_extents(dest),
            link,
            done: Reused::default(),
        }
    }

    /// The source file for `name`, if it is a regular file of `size` bytes worth reusing.
    fn source(
        &self,
        name: &[u8],
        h: &EntryHeader,
        size: u64,
    ) -> Option<(OwnedFd, rustix::fs::Stat)> {
        if h.sparse.is_some() || size == 0 || !(self.clone || self.link) {
            return None;
        }
        let fd = crate::sys::openat2_in_root(
            self.root.as_fd(),
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        )
        .ok()?;
        let st = rustix::fs::fstat(&fd).ok()?;
        (FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
            && u64::try_from(st.st_size).ok() == Some(size))
        .then_some((fd, st))
    }

    /// Hardlinks the source of `name` (`size` bytes) as `base` in `dir` when its metadata is
    /// already what the header (with owner `ids`) asks for. True when linked.
    pub(crate) fn link(
        &mut self,
        name: &[u8],
        h: &EntryHeader,
        size: u64,
        ids: (rustix::fs::Uid, rustix::fs::Gid),
        dir: BorrowedFd<'_>,
        base: &[u8],
    ) -> bool {
        // A clone gives the layer an inode of its own: links only where clones do not work.
        if !self.link || self.clone {
            return false;
        }
        let Some((src, st)) = self.source(name, h, size) else {
            return false;
        };
        let mtime = super::meta::timestamps(h).last_modification;
        let same = (st.st_uid, st.st_gid) == (ids.0.as_raw(), ids.1.as_raw())
            && st.st_mode & 0o7777 == h.mode & 0o7777
            && (st.st_mtime, st.st_mtime_nsec as i64) == (mtime.tv_sec, mtime.tv_nsec)
            && h.xattrs.is_empty()
            && rustix::fs::flistxattr(&src, &mut [0u8; 0]).is_ok_and(|n| n == 0);
        if !same {
            return false;
        }
        match rustix::fs::linkat(&src, "", dir, base, AtFlags::EMPTY_PATH) {
            Ok(()) => {
                self.done.linked += 1;
                self.done.bytes += size;
                true
            }
            // Something is in the way: the usual path replaces it.
            Err(Errno::EXIST) => false,
            Err(e) => {
                tracing::debug!("hardlinks from the reused layer stop: {e}");
                self.link = false;
                false
            }
        }
    }

    /// Clones the source of `name` (`size` bytes) into `dst`, new and empty. True when
    /// cloned.
    pub(crate) fn clone_into(
        &mut self,
        name: &[u8],
        h: &EntryHeader,
        size: u64,
        dst: &OwnedFd,
    ) -> bool {
        if !self.clone {
            return false;
        }
        let Some((src, _)) = self.source(name, h, size) else {
            return false;
        };
        match rustix::fs::ioctl_ficlone(dst, &src) {
            Ok(()) => {
                self.done.cloned += 1;
                self.done.bytes += size;
                true
            }
            Err(e) => {
                tracing::debug!("clones from the reused layer stop: {e}");
                self.clone = false;
                false
            }
        }
    }
}

/// Whether the filesystem of `dir` can share extents between files (`FICLONE`): btrfs, XFS
/// (when made with reflink, the default for years) and bcachefs.
fn shares_extents(dir: BorrowedFd<'_>) -> bool {
    const BTRFS: i64 = 0x9123_683e;
    const XFS: i64 = 0x5846_5342;
    const BCACHEFS: i64 = 0xca45_1a4e;
    // `f_type`'s width differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::fstatfs(dir).is_ok_and(|st| matches!(st.f_type as i64, BTRFS | XFS | BCACHEFS))
}
