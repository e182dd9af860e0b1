//! OCI whiteouts, in the two ways a snapshotter needs them.
//!
//! | entry | [`Overlay`](WhiteoutMode::Overlay) | [`Delete`](WhiteoutMode::Delete) |
//! |---|---|---|
//! | `d/.wh.NAME` | 0/0 character device `d/NAME` (what overlayfs reads as a whiteout) | removes `d/NAME`, recursively; nothing there is fine |
//! | `d/.wh..wh..opq` | xattr `trusted.overlay.opaque=y` on `d` | removes every entry below `d` that this layer did not create, whatever the entry order |
//! | `d/.wh..wh.*` (other AUFS metadata: `.wh..wh.plnk`, `.wh..wh.aufs`) | ignored | ignored |
//! | `.wh.`, `.wh..`, `.wh...` (no name, `.`, `..`) | refused | refused |
//!
//! The directory `d` is resolved inside the root like any parent, so a whiteout reached
//! through a symlinked directory acts on the symlink's target *inside the root*. In delete
//! mode a missing `d` means there is nothing to white out; in overlay mode `d` is created (the
//! layer directory holds only this layer).

use std::os::fd::AsFd;

use rustix::fs::{FileType, Mode};
use rustix::io::Errno;

use super::WhiteoutMode;
use super::entry::Applier;
use super::meta::{Ctx, Failure};
use crate::sys::{self, errno, is_errno};

const OPAQUE: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

impl Applier<'_> {
    /// Handles `parent/base`, where `base` is `.wh.` followed by `target`.
    pub(super) fn whiteout(
        &mut self,
        ctx: Ctx<'_>,
        parent: &[u8],
        base: &[u8],
        target: &[u8],
    ) -> Result<(), Failure> {
        if base == OPAQUE {
            return self.opaque(ctx, parent);
        }
        if target.starts_with(b".wh.") {
            tracing::debug!(layer = ctx.layer, entry = %ctx.entry_name(), "AUFS metadata entry ignored");
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(ctx.refuse("whiteout names no file (empty, . or ..)"));
        }
        match self.opts.whiteouts {
            WhiteoutMode::Overlay => {
                let dir = self.parent(ctx, parent)?;
                let dev = rustix::fs::makedev(0, 0);
                let made = match rustix::fs::mknodat(
                    dir.fd(),
                    target,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    dev,
                ) {
                    Err(Errno::EXIST) => {
                        self.replace(ctx, &dir, target, false)?;
                        rustix::fs::mknodat(
                            dir.fd(),
                            target,
                            FileType::CharacterDevice,
                            Mode::empty(),
                            dev,
                        )
                    }
                    r => r,
                };
                match made {
                    Ok(()) => Ok(()),
                    Err(Errno::PERM) => Err(ctx.needs_root("an overlay whiteout")),
                    Err(e) => Err(ctx.io("create overlay whiteout")(errno(e))),
                }
            }
            WhiteoutMode::Delete => {
                let dir = match self.root.open(parent) {
                    Ok(d) => d,
                    Err(e) if is_errno(&e, Errno::NOENT) || is_errno(&e, Errno::NOTDIR) => {
                        return Ok(());
                    }
                    Err(e) => return Err(ctx.io("open whiteout directory")(e)),
                };
                self.root.invalidate();
                sys::remove_all_at(dir.fd(), target).map_err(ctx.io("remove whited-out entry"))
            }
        }
    }

    fn opaque(&mut self, ctx: Ctx<'_>, dir_path: &[u8]) -> Result<(), Failure> {
        match self.opts.whiteouts {
            WhiteoutMode::Overlay => {
                let dir = self.parent(ctx, dir_path)?;
                match sys::set_xattr_at(dir.fd(), b"", OPAQUE_XATTR, b"y") {
                    Ok(()) => Ok(()),
                    Err(e) if is_errno(&e, Errno::PERM) => {
                        Err(ctx.needs_root("an overlay opaque directory"))
                    }
                    Err(e) => Err(ctx.io("mark directory opaque")(e)),
                }
            }
            WhiteoutMode::Delete => {
                let dir = match self.root.open(dir_path) {
                    Ok(d) => d,
                    Err(e) if is_errno(&e, Errno::NOENT) || is_errno(&e, Errno::NOTDIR) => {
                        return Ok(());
                    }
                    Err(e) => return Err(ctx.io("open opaque directory")(e)),
                };
                self.root.invalidate();
                let rd =
                    sys::open_subdir(dir.fd(), b".").map_err(ctx.io("open opaque directory"))?;
                self.clear_opaque(rd.as_fd(), dir.ino)
                    .map_err(ctx.io("clear opaque directory"))
            }
        }
    }

    /// Removes everything below the open directory `dir` (inode `ino`) that this layer did not
    /// create; descends into directories it did create or keep.
    fn clear_opaque(&self, dir: std::os::fd::BorrowedFd<'_>, ino: u64) -> std::io::Result<()> {
        for (name, ft) in sys::list_dir(dir)? {
            let key = (ino, name.into_boxed_slice());
            if !self.created.contains(&key) {
                sys::remove_all_at(dir, &key.1)?;
                continue;
            }
            let is_dir = match ft {
                FileType::Directory => true,
                FileType::Unknown => {
                    sys::file_type(&sys::lstat_at(dir, &key.1)?) == FileType::Directory
                }
                _ => false,
            };
            if is_dir {
                let sub = sys::open_subdir(dir, &key.1)?;
                let st = rustix::fs::fstat(&sub).map_err(errno)?;
                self.clear_opaque(sub.as_fd(), st.st_ino)?;
            }
        }
        Ok(())
    }
}
