//! Looking things up in lower layers (overlay mode only).
//!
//! A layer unpacked into its own overlay layer directory may refer to files it does not
//! contain: a hardlink to a file of a lower layer (the link is made to a copy of that file in
//! this layer, as overlayfs copy-up would), or a parent directory it does not list (created
//! with the lower directory's owner, mode, xattrs and times, so that the merged view does not
//! change them). Lowers are searched topmost first with overlayfs's rules: a whiteout (0/0
//! character device) or a non-directory on the way hides everything below it, and an opaque
//! directory hides the layers under the one that has it. Every path is resolved inside the
//! lower with `RESOLVE_IN_ROOT`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{FileType, Stat, Timestamps};
use rustix::io::Errno;

use super::entry::Applier;
use super::meta::{Ctx, Failure};
use crate::path::split;
use crate::sys::{self, errno, file_type, is_errno, lstat_at};
use crate::tarstream::Time;

/// A path found in a lower layer: its parent directory (`O_PATH`, inside that lower), its
/// name there and what `lstat` says about it.
#[derive(Debug)]
pub(super) struct Found {
    pub dir: OwnedFd,
    pub name: Vec<u8>,
    pub st: Stat,
}

fn is_whiteout(st: &Stat) -> bool {
    file_type(st) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Finds `rel` (normalized, non-empty) in `lowers`, topmost first.
pub(super) fn find(lowers: &[OwnedFd], rel: &[u8]) -> io::Result<Option<Found>> {
    let (parent, base) = split(rel);
    for lower in lowers {
        match sys::open_dir_in(lower.as_fd(), parent) {
            Ok(dir) => match lstat_at(dir.as_fd(), base) {
                Ok(st) if is_whiteout(&st) => return Ok(None),
                Ok(st) => {
                    return Ok(Some(Found {
                        dir,
                        name: base.to_vec(),
                        st,
                    }));
                }
                Err(e) if is_errno(&e, Errno::NOENT) => {}
                Err(e) => return Err(e),
            },
            // A whiteout or file on the way hides the lower layers' directories.
            Err(e) if is_errno(&e, Errno::NOTDIR) => return Ok(None),
            Err(e) if is_errno(&e, Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
        if opaque_on_path(lower, parent)? {
            return Ok(None);
        }
    }
    Ok(None)
}

/// Whether `rel` or one of its ancestors is an opaque directory in `lower`.
fn opaque_on_path(lower: &OwnedFd, rel: &[u8]) -> io::Result<bool> {
    let mut end = 0;
    while end < rel.len() {
        end = rel[end..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(rel.len(), |i| end + i);
        let dir = match sys::open_dir_in(lower.as_fd(), &rel[..end]) {
            Ok(d) => d,
            Err(e) if is_errno(&e, Errno::NOENT) || is_errno(&e, Errno::NOTDIR) => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let opaque = sys::xattrs_at(dir.as_fd(), b"")?.iter().any(|(k, v)| {
            (k == b"trusted.overlay.opaque" || k == b"user.overlay.opaque") && v == b"y"
        });
        if opaque {
            return Ok(true);
        }
        end += 1;
    }
    Ok(false)
}

pub(super) fn stat_times(st: &Stat) -> Timestamps {
    let t = |sec: i64, nsec: i64| {
        super::meta::timespec(Time {
            sec,
            nsec: nsec as u32,
        })
    };
    Timestamps {
        last_access: t(st.st_atime, st.st_atime_nsec as i64),
        last_modification: t(st.st_mtime, st.st_mtime_nsec as i64),
    }
}

impl Applier<'_> {
    /// Copies `target` (normalized) up from the topmost lower that has it into this layer, so
    /// a hardlink can point at it. Returns false when no lower has it.
    pub(super) fn copy_up(&mut self, ctx: Ctx<'_>, target: &[u8]) -> Result<bool, Failure> {
        let op = "copy hardlink target up from a lower layer";
        self.lower_lookups += 1;
        let Some(found) = find(&self.lowers, target).map_err(ctx.io(op))? else {
            return Ok(false);
        };
        let ft = file_type(&found.st);
        if ft == FileType::Directory {
            return Err(ctx.refuse("hardlink target is a directory"));
        }
        let (tparent, tbase) = split(target);
        let dir = self.parent(ctx, tparent)?;
        let st = &found.st;
        let mode = rustix::fs::Mode::from_raw_mode(st.st_mode & 0o7777);
        let io = |e: Errno| ctx.io(op)(errno(e));
        match ft {
            FileType::RegularFile => {
                let src = rustix::fs::openat(
                    found.dir.as_fd(),
                    found.name.as_slice(),
                    rustix::fs::OFlags::RDONLY
                        | rustix::fs::OFlags::NOFOLLOW
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(io)?;
                let dst = rustix::fs::openat(
                    dir.fd(),
                    tbase,
                    rustix::fs::OFlags::WRONLY
                        | rustix::fs::OFlags::CREATE
                        | rustix::fs::OFlags::EXCL
                        | rustix::fs::OFlags::NOFOLLOW
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::from_raw_mode(0o600),
                )
                .map_err(io)?;
                let mut src = std::fs::File::from(src);
                let mut dst = std::fs::File::from(dst);
                io::copy(&mut src, &mut dst).map_err(ctx.io(op))?;
            }
            FileType::Symlink => {
                let link =
                    rustix::fs::readlinkat(found.dir.as_fd(), found.name.as_slice(), Vec::new())
                        .map_err(io)?;
                rustix::fs::symlinkat(link.as_bytes(), dir.fd(), tbase).map_err(io)?;
            }
            _ => {
                rustix::fs::mknodat(dir.fd(), tbase, ft, mode, st.st_rdev).map_err(io)?;
            }
        }
        if self.opts.same_owner {
            rustix::fs::chownat(
                dir.fd(),
                tbase,
                Some(rustix::fs::Uid::from_raw(st.st_uid)),
                Some(rustix::fs::Gid::from_raw(st.st_gid)),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(io)?;
        }
        if ft != FileType::Symlink {
            // Just created by us: not a symlink, so following is harmless.
            rustix::fs::chmodat(dir.fd(), tbase, mode, rustix::fs::AtFlags::empty()).map_err(io)?;
        }
        let xattrs = sys::xattrs_at(found.dir.as_fd(), &found.name).map_err(ctx.io(op))?;
        ctx.set_xattrs_at(dir.fd(), tbase, &xattrs)?;
        rustix::fs::utimensat(
            dir.fd(),
            tbase,
            &stat_times(st),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io)?;
        self.record(&dir, tbase);
        Ok(true)
    }
}
