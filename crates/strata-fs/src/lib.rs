//! Walking, measuring and removing trees through directory file descriptors.
//!
//! Two facts shape every function here:
//!
//! - **Paths in the store can be longer than `PATH_MAX`.** A container that nests 1,100
//!   directories makes one; so can a layer (tar's PAX `path` has no limit). Any call that hands
//!   the kernel a whole path then fails with `ENAMETOOLONG`, for ever. So the kernel is only
//!   ever given one component, relative to an open directory (`openat`, `fstatat`,
//!   `unlinkat`), and walks are iterative (an explicit stack, not recursion: depth is the
//!   user's to choose).
//! - **A tree may be changing while it is read**: a running container can swap a directory
//!   for a symlink to `/` between the listing of its parent and the opening of the entry. So
//!   no component is ever followed if it is a symlink (`O_NOFOLLOW` on each single
//!   component), an entry is opened once (`O_PATH`) and everything about it — its type, its
//!   metadata, its data, its children — comes from that one open file ([`Entry`]), never from
//!   a path looked up again.
//!
//! Only the top of a walk is opened by path: it is the caller's own (a store directory or a
//! mount point the caller made).
//!
//! [`start_writeback`] (early writeback of a file being written) lives here too, as the one
//! `unsafe` call of the crate, shared by the content store and the layer applier.

#![deny(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

mod writeback;

pub use writeback::start_writeback;

pub fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Opens the directory at `path` for reading (the top of a walk: `path` is the caller's).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// Opens the directory `name` (one component) in `dir` for reading; a symlink is refused
/// (`ELOOP`/`ENOTDIR`), never followed.
pub fn open_subdir(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// Like [`open_subdir`], but a mount point is refused too (`EXDEV`): removal must never
/// descend into a filesystem mounted inside the tree.
fn open_subdir_same_mount(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let how = ResolveFlags::NO_XDEV | ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
    loop {
        // EAGAIN: a rename somewhere raced the scoped lookup; it only asks us to try again.
        match rustix::fs::openat2(dir, name, flags, Mode::empty(), how) {
            Err(Errno::AGAIN) => std::thread::yield_now(),
            Err(Errno::NOSYS) => return rustix::fs::openat(dir, name, flags, Mode::empty()),
            r => return r,
        }
    }
}

/// `name` in `dir`, not following a symlink.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Stat> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)
}

pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// The names in the directory `dir` (any fd of it, `O_PATH` included) with the type the
/// directory reports (`Unknown` on filesystems that report none), without `.` and `..`.
pub fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, FileType)>> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let mut out = Vec::new();
    for entry in Dir::new(fd).map_err(errno)? {
        let entry = entry.map_err(errno)?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push((name.to_vec(), entry.file_type()));
        }
    }
    Ok(out)
}

/// One directory entry, opened once (`O_PATH|O_NOFOLLOW`): whatever replaces the name
/// afterwards, this is the inode that was there, and [`Entry::stat`] describes it.
#[derive(Debug)]
pub struct Entry {
    fd: OwnedFd,
    pub stat: Stat,
}

impl Entry {
    /// Opens `name` in `dir`. `Ok(None)`: nothing by that name any more.
    pub fn open(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Entry>> {
        let fd = match rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(errno(e)),
        };
        Self::from_fd(fd).map(Some)
    }

    /// The entry of an `O_PATH` (or any) fd the caller opened.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Entry> {
        let stat = rustix::fs::fstat(&fd).map_err(errno)?;
        Ok(Entry { fd, stat })
    }

    pub fn file_type(&self) -> FileType {
        file_type(&self.stat)
    }

    /// `(st_dev, st_ino)`: the identity of the inode.
    pub fn id(&self) -> (u64, u64) {
        (self.stat.st_dev, self.stat.st_ino)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// This directory, opened for reading (its children are then listed and opened relative
    /// to it).
    pub fn open_dir(&self) -> io::Result<OwnedFd> {
        rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)
    }

    /// This regular file, opened for reading. Refuses anything else: opening a device or a
    /// FIFO a container planted could block or read the host's device.
    pub fn open_file(&self) -> io::Result<File> {
        if self.file_type() != FileType::RegularFile {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // Reopening through the fd's /proc link reaches exactly this inode: no name is
        // looked up again.
        let path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let fd = rustix::fs::open(
            path.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(errno)?;
        Ok(File::from(fd))
    }

    /// This symlink's target.
    pub fn read_link(&self) -> io::Result<Vec<u8>> {
        rustix::fs::readlinkat(&self.fd, "", Vec::new())
            .map(|t| t.into_bytes())
            .map_err(errno)
    }
}

/// The entry at the relative path `rel` below the directory `top`, walked one component at a
/// time without following any symlink (a symlink on the way is `ENOTDIR`/`ELOOP`); for
/// paths of any length. An empty `rel` is `top` itself.
pub fn entry_beneath(top: BorrowedFd<'_>, rel: &[u8]) -> io::Result<Option<Entry>> {
    let mut parts = rel
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .peekable();
    let mut dir: Option<OwnedFd> = None;
    while let Some(part) = parts.next() {
        if part == b".." {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let at = dir.as_ref().map_or(top, |d| d.as_fd());
        if parts.peek().is_none() {
            return Entry::open(at, part);
        }
        dir = match open_subdir(at, part) {
            Ok(d) => Some(d),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
    }
    let fd = rustix::fs::openat(top, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(errno)?;
    Entry::from_fd(fd).map(Some)
}

/// Calls `visit` for every entry below `top` (not `top` itself), depth first; descends into a
/// directory when `visit` returns true. Entries that vanish or change type while walked are
/// skipped: a walk of a live tree sees each entry as it was at one moment or not at all.
pub fn walk(top: BorrowedFd<'_>, mut visit: impl FnMut(&Stat) -> bool) -> io::Result<()> {
    let mut stack: Vec<(OwnedFd, std::vec::IntoIter<(Vec<u8>, FileType)>)> = Vec::new();
    let mut names = list(top)?.into_iter();
    let mut current = rustix::fs::openat(top, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(errno)?;
    loop {
        let Some((name, _)) = names.next() else {
            let Some((fd, rest)) = stack.pop() else {
                return Ok(());
            };
            (current, names) = (fd, rest);
            continue;
        };
        let st = match rustix::fs::statat(&current, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(errno(e)),
        };
        if !visit(&st) || file_type(&st) != FileType::Directory {
            continue;
        }
        let sub = match open_subdir(current.as_fd(), &name) {
            Ok(sub) => sub,
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(e),
        };
        if rustix::fs::fstat(&sub).map_err(errno)?.st_ino != st.st_ino {
            continue;
        }
        let children = list(sub.as_fd())?.into_iter();
        stack.push((
            std::mem::replace(&mut current, sub),
            std::mem::replace(&mut names, children),
        ));
    }
}

/// The entry is gone, or is no longer a directory (a symlink now: not followed).
fn vanished(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
    )
}

/// Deletes `path` and, if it is a directory, everything below it. Missing is fine, and so
/// are entries that vanish meanwhile (another process deleting the same leftover). Never
/// follows a symlink below `path` and never enters a filesystem mounted inside (a mount
/// point fails with `EXDEV`, its content untouched).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to remove {}", path.display()),
        ));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir = match rustix::fs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => d,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(errno(e)),
    };
    remove_all_at(dir.as_fd(), std::os::unix::ffi::OsStrExt::as_bytes(name))
}

/// A directory being emptied: its fd, its name in its parent, the subdirectories still to
/// empty (`None`: not listed yet).
struct Frame {
    fd: OwnedFd,
    name: Vec<u8>,
    subdirs: Option<Vec<Vec<u8>>>,
    relists: u8,
}

/// Removes `name` in `dir` as [`remove_tree`] does.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(errno(e)),
    }
    let fd = match open_subdir_same_mount(dir, name) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(errno(e)),
    };
    let mut stack = vec![Frame {
        fd,
        name: name.to_vec(),
        subdirs: None,
        relists: 0,
    }];
    while let Some(top) = stack.last_mut() {
        let subdirs = match &mut top.subdirs {
            Some(s) => s,
            None => top.subdirs.insert(unlink_files(top.fd.as_fd())?),
        };
        if let Some(sub) = subdirs.pop() {
            match open_subdir_same_mount(top.fd.as_fd(), &sub) {
                Ok(fd) => stack.push(Frame {
                    fd,
                    name: sub,
                    subdirs: None,
                    relists: 0,
                }),
                Err(Errno::NOENT) => {}
                // Swapped for a non-directory meanwhile.
                Err(Errno::NOTDIR | Errno::LOOP) => {
                    match rustix::fs::unlinkat(top.fd.as_fd(), sub.as_slice(), AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(errno(e)),
                    }
                }
                Err(e) => return Err(errno(e)),
            }
            continue;
        }
        let Some(done) = stack.pop() else { break };
        let parent = stack.last().map_or(dir, |f| f.fd.as_fd());
        match rustix::fs::unlinkat(parent, done.name.as_slice(), AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            // Something was created in it meanwhile: list it again (a few times).
            Err(Errno::NOTEMPTY) if done.relists < 3 => stack.push(Frame {
                subdirs: None,
                relists: done.relists + 1,
                ..done
            }),
            Err(e) => return Err(errno(e)),
        }
    }
    Ok(())
}

/// Unlinks every non-directory in `dir`; returns the names of its subdirectories.
fn unlink_files(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut subdirs = Vec::new();
    for (name, ft) in list(dir)? {
        if ft == FileType::Directory {
            subdirs.push(name);
            continue;
        }
        match rustix::fs::unlinkat(dir, name.as_slice(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::ISDIR) => subdirs.push(name),
            Err(e) => return Err(errno(e)),
        }
    }
    Ok(subdirs)
}

/// Removes everything inside the directory `dir`.
pub fn clear_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    for (name, _) in list(dir)? {
        remove_all_at(dir, &name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
