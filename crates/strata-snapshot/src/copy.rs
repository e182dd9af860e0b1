//! Copying a whole tree faithfully: contents (reflinked where the filesystem can), hard links,
//! symlinks, device nodes, FIFOs and sockets, owners, modes (setuid included), extended
//! attributes (overlay's `trusted.*`, capabilities, ACLs) and timestamps.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::error::FsError;
use crate::fsutil::set_owner_and_mode;

/// `name` in the open directory `dir`, as a path of constant length (`dir` is reached through
/// its /proc link): the trees copied can be deeper than `PATH_MAX`.
fn at(dir: &OwnedFd, name: &[u8]) -> PathBuf {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    PathBuf::from(OsString::from_vec(p))
}

/// A directory being copied: both fds, the names left, its own metadata (set last: copying
/// its children changes its times).
struct Frame {
    src: OwnedFd,
    dst: OwnedFd,
    names: std::vec::IntoIter<(Vec<u8>, FileType)>,
    rel: Vec<u8>,
    meta: fs::Metadata,
}

/// Copies `src` (a directory) to `dst`, which must not exist. Iterative, through directory
/// fds: any depth, any path length.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<(), FsError> {
    let meta = fs::symlink_metadata(src).map_err(FsError::at("inspect", src))?;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dst)
        .map_err(FsError::at("create directory", dst))?;
    let open = |p: &Path| strata_fs::open_dir(p).map_err(FsError::at("open", p));
    let (src_fd, dst_fd) = (open(src)?, open(dst)?);
    let mut copier = Copier {
        links: HashMap::new(),
        reflink: true,
        dst_top: open(dst)?,
    };
    let names = strata_fs::list(src_fd.as_fd()).map_err(FsError::at("list", src))?;
    let mut stack = vec![Frame {
        src: src_fd,
        dst: dst_fd,
        names: names.into_iter(),
        rel: Vec::new(),
        meta,
    }];
    while let Some(frame) = stack.last_mut() {
        let Some((name, _)) = frame.names.next() else {
            if let Some(done) = stack.pop() {
                set_metadata(&at(&done.src, b"."), &at(&done.dst, b"."), &done.meta)?;
            }
            continue;
        };
        let (s, d) = (at(&frame.src, &name), at(&frame.dst, &name));
        let mut rel = frame.rel.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&name);
        let m = fs::symlink_metadata(&s).map_err(FsError::at("inspect", &s))?;
        if !m.is_dir() {
            copier.copy(&s, &d, &m, rel)?;
            continue;
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&d)
            .map_err(FsError::at("create directory", &d))?;
        let sub_src =
            strata_fs::open_subdir(frame.src.as_fd(), &name).map_err(FsError::at("open", &s))?;
        let sub_dst =
            strata_fs::open_subdir(frame.dst.as_fd(), &name).map_err(FsError::at("open", &d))?;
        let names = strata_fs::list(sub_src.as_fd()).map_err(FsError::at("list", &s))?;
        stack.push(Frame {
            src: sub_src,
            dst: sub_dst,
            names: names.into_iter(),
            rel,
            meta: m,
        });
    }
    Ok(())
}

struct Copier {
    /// (device, inode) of multiply linked files already copied → the copy's path in `dst`.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Still worth trying `FICLONE` (cleared at the first "not supported").
    reflink: bool,
    dst_top: OwnedFd,
}

impl Copier {
    /// Copies the non-directory `src` to `dst` (`rel` in the copy).
    fn copy(
        &mut self,
        src: &Path,
        dst: &Path,
        meta: &fs::Metadata,
        rel: Vec<u8>,
    ) -> Result<(), FsError> {
        let ft = meta.file_type();
        if meta.nlink() > 1 {
            let id = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&id) {
                return self.link_to(first, dst);
            }
            self.links.insert(id, rel);
        }
        if ft.is_file() {
            self.copy_file(src, dst, meta)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(src).map_err(FsError::at("read link", src))?;
            std::os::unix::fs::symlink(target, dst).map_err(FsError::at("create symlink", dst))?;
        } else {
            // Character and block devices (overlay whiteouts among them), FIFOs, sockets.
            rustix::fs::mknodat(
                CWD,
                dst,
                FileType::from_raw_mode(meta.mode()),
                Mode::from_raw_mode(meta.mode() & 0o7777),
                meta.rdev(),
            )
            .map_err(|e| FsError::new("create node", dst, e.into()))?;
        }
        set_metadata(src, dst, meta)
    }

    /// Hard links the copy at `first` (relative to the copy's top) as `dst`.
    fn link_to(&self, first: &[u8], dst: &Path) -> Result<(), FsError> {
        let first_path = PathBuf::from(OsStr::from_bytes(first));
        let entry = strata_fs::entry_beneath(self.dst_top.as_fd(), first)
            .map_err(FsError::at("find hard link target", &first_path))?
            .ok_or_else(|| {
                FsError::new(
                    "find hard link target",
                    &first_path,
                    io::Error::from(io::ErrorKind::NotFound),
                )
            })?;
        let proc = format!("/proc/self/fd/{}", entry.fd().as_raw_fd());
        rustix::fs::linkat(CWD, proc.as_str(), CWD, dst, AtFlags::SYMLINK_FOLLOW)
            .map_err(|e| FsError::new("hard link", dst, e.into()))
    }

    fn copy_file(&mut self, src: &Path, dst: &Path, meta: &fs::Metadata) -> Result<(), FsError> {
        let mut from = File::open(src).map_err(FsError::at("open", src))?;
        let mut to = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)
            .map_err(FsError::at("create", dst))?;
        if self.reflink && meta.len() > 0 {
            match rustix::fs::ioctl_ficlone(&to, &from) {
                Ok(()) => return Ok(()),
                Err(
                    Errno::OPNOTSUPP | Errno::XDEV | Errno::INVAL | Errno::NOTTY | Errno::NOSYS,
                ) => self.reflink = false,
                Err(e) => return Err(FsError::new("clone into", dst, e.into())),
            }
        }
        let mut remaining = meta.len();
        while remaining > 0 {
            let chunk = usize::try_from(remaining.min(1 << 30)).unwrap_or(1 << 30);
            match rustix::fs::copy_file_range(&from, None, &to, None, chunk) {
                Ok(0) => break,
                Ok(n) => remaining = remaining.saturating_sub(n as u64),
                Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) => {
                    // Both offsets moved with what was copied so far: continue from there.
                    io::copy(&mut from, &mut to).map_err(FsError::at("copy into", dst))?;
                    break;
                }
                Err(e) => return Err(FsError::new("copy into", dst, e.into())),
            }
        }
        Ok(())
    }
}

/// Owner, then mode (chown clears setuid bits), then xattrs (chown clears capabilities),
/// then times (everything before changed them).
fn set_metadata(src: &Path, dst: &Path, meta: &fs::Metadata) -> Result<(), FsError> {
    set_owner_and_mode(dst, meta)?;
    copy_xattrs(src, dst)?;
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec(),
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    };
    rustix::fs::utimensat(CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| FsError::new("set times of", dst, e.into()))
}

fn copy_xattrs(src: &Path, dst: &Path) -> Result<(), FsError> {
    let names = match read_grow(|buf| rustix::fs::llistxattr(src, buf)) {
        Ok(names) => names,
        Err(Errno::OPNOTSUPP) => return Ok(()),
        Err(e) => return Err(FsError::new("list xattrs of", src, e.into())),
    };
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let value = match read_grow(|buf| rustix::fs::lgetxattr(src, name, buf)) {
            Ok(v) => v,
            // Removed meanwhile.
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(FsError::new("read xattr of", src, e.into())),
        };
        match rustix::fs::lsetxattr(dst, name, &value, XattrFlags::empty()) {
            Ok(()) => {}
            Err(Errno::OPNOTSUPP) => {
                tracing::debug!(path = %dst.display(), ?name, "xattr not supported here, skipped");
            }
            Err(e) => return Err(FsError::new("write xattr of", dst, e.into())),
        }
    }
    Ok(())
}

/// Calls `f` with a growing buffer until the result fits (`ERANGE` means "too small").
fn read_grow(mut f: impl FnMut(&mut [u8]) -> Result<usize, Errno>) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 1024];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            // xattr values are at most 64 KiB, name lists about that: the loop is short.
            Err(Errno::RANGE) if buf.len() < 1 << 24 => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn copies_contents_links_modes_times_and_xattrs() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("d/e")).unwrap();
        fs::write(src.join("d/f"), b"hello").unwrap();
        fs::set_permissions(src.join("d/f"), fs::Permissions::from_mode(0o4750)).unwrap();
        fs::hard_link(src.join("d/f"), src.join("link")).unwrap();
        std::os::unix::fs::symlink("d/f", src.join("sym")).unwrap();
        fs::write(src.join("big"), vec![3u8; 300_000]).unwrap();
        fs::set_permissions(src.join("d/e"), fs::Permissions::from_mode(0o701)).unwrap();
        let xattr = rustix::fs::lsetxattr(src.join("d/f"), "user.k", b"v", XattrFlags::empty());
        let past = Timestamps {
            last_access: Timespec {
                tv_sec: 1_000_000,
                tv_nsec: 5,
            },
            last_modification: Timespec {
                tv_sec: 2_000_000,
                tv_nsec: 7,
            },
        };
        rustix::fs::utimensat(CWD, src.join("d"), &past, AtFlags::empty()).unwrap();
        rustix::fs::utimensat(CWD, src.join("sym"), &past, AtFlags::SYMLINK_NOFOLLOW).unwrap();

        let dst = t.path().join("dst");
        copy_tree(&src, &dst).unwrap();

        assert_eq!(fs::read(dst.join("d/f")).unwrap(), b"hello");
        assert_eq!(fs::read(dst.join("big")).unwrap(), vec![3u8; 300_000]);
        let f = fs::metadata(dst.join("d/f")).unwrap();
        assert_eq!(f.mode() & 0o7777, 0o4750);
        assert_eq!(f.ino(), fs::metadata(dst.join("link")).unwrap().ino());
        assert_eq!(fs::read_link(dst.join("sym")).unwrap(), Path::new("d/f"));
        assert_eq!(
            fs::metadata(dst.join("d/e")).unwrap().mode() & 0o7777,
            0o701
        );
        let d = fs::metadata(dst.join("d")).unwrap();
        assert_eq!((d.mtime(), d.mtime_nsec()), (2_000_000, 7));
        let s = fs::symlink_metadata(dst.join("sym")).unwrap();
        assert_eq!((s.mtime(), s.mtime_nsec()), (2_000_000, 7));
        if xattr.is_ok() {
            let v = read_grow(|b| rustix::fs::lgetxattr(dst.join("d/f"), "user.k", b)).unwrap();
            assert_eq!(v, b"v");
        }
        // The source is untouched.
        assert_eq!(fs::read(src.join("d/f")).unwrap(), b"hello");
        assert_ne!(
            fs::metadata(src.join("d/f")).unwrap().ino(),
            f.ino(),
            "a copy, not a link"
        );
    }
}
