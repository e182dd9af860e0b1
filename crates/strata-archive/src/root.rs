//! The destination directory and the one way paths inside it are reached.
//!
//! Every entry is created by first opening its *parent* directory with
//! `openat2(root, parent, O_PATH|O_DIRECTORY, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV)`
//! — any symlink on the way, absolute or full of `..`, resolves as if the root were `/`, so the
//! parent is always inside the root — and then acting on the final component with `*at` calls
//! that never follow it (`O_NOFOLLOW|O_EXCL`, `AT_SYMLINK_NOFOLLOW`, `mkdirat`, `mknodat`,
//! `symlinkat`, `linkat` without `AT_SYMLINK_FOLLOW`, `unlinkat`).
//!
//! Entries of one directory come together in real layers, so the last parent opened is kept
//! (one `openat2` and one `fstat` per directory change instead of per entry). Anything that
//! removes a directory invalidates it, so the cache can never hold a directory that a later
//! entry replaced.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{Mode, OFlags};

use crate::sys::{self, errno};

/// An open directory inside the root: an `O_PATH` fd and what apply needs to know about it.
#[derive(Debug)]
pub(crate) struct Dir {
    pub fd: OwnedFd,
    pub ino: u64,
    /// New files inherit the directory's group: ownership must be set even when it matches
    /// the process's.
    pub setgid: bool,
}

impl Dir {
    pub(crate) fn from_fd(fd: OwnedFd) -> io::Result<Dir> {
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        Ok(Dir {
            fd,
            ino: st.st_ino,
            setgid: st.st_mode & libc::S_ISGID != 0,
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The destination root and the cached last parent.
#[derive(Debug)]
pub(crate) struct Root {
    root: Rc<Dir>,
    cache: Option<(Vec<u8>, Rc<Dir>)>,
}

/// Opens `path` as a root directory (`O_PATH`; the path itself may be a symlink the caller
/// chose, but nothing below it is followed outside it).
pub(crate) fn open_root(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

impl Root {
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Root> {
        Ok(Root {
            root: Rc::new(Dir::from_fd(fd)?),
            cache: None,
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.root.fd()
    }

    pub(crate) fn root_dir(&self) -> Rc<Dir> {
        Rc::clone(&self.root)
    }

    /// The directory `rel` (normalized; empty for the root), resolved inside the root, from the
    /// cache when it was the last one asked for. Not created when missing.
    pub(crate) fn dir(&mut self, rel: &[u8]) -> io::Result<Rc<Dir>> {
        if rel.is_empty() {
            return Ok(self.root_dir());
        }
        if let Some((path, dir)) = &self.cache
            && path == rel
        {
            return Ok(Rc::clone(dir));
        }
        let dir = Rc::new(self.open(rel)?);
        self.remember(rel, Rc::clone(&dir));
        Ok(dir)
    }

    /// Opens `rel` inside the root, bypassing the cache.
    pub(crate) fn open(&self, rel: &[u8]) -> io::Result<Dir> {
        Dir::from_fd(sys::open_dir_in(self.fd(), rel)?)
    }

    pub(crate) fn remember(&mut self, rel: &[u8], dir: Rc<Dir>) {
        self.cache = Some((rel.to_vec(), dir));
    }

    /// Forgets the cached parent: call after removing anything that might be a directory.
    pub(crate) fn invalidate(&mut self) {
        self.cache = None;
    }
}
