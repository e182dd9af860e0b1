//! Diff: a changed tree back into an OCI layer tar, deterministically.
//!
//! Two sources of change, one output format ([`writer`]):
//!
//! - [`diff_overlay_upper`]: an overlayfs upper directory *is* the change. Every entry in it is
//!   emitted; 0/0 character devices (overlayfs whiteouts) become `.wh.NAME`, directories with
//!   `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`) get a `.wh..wh..opq` entry.
//! - [`diff_trees`]: two full trees (native, btrfs). An entry of `new` is emitted when it is
//!   new or changed; a path of `old` missing from `new` becomes one `.wh.NAME` (one for a
//!   removed directory, none for its children). "Changed" is containerd's rule: type, mode,
//!   owner, device number, xattrs or symlink target differ; for other non-directories also
//!   size or mtime (seconds), and when both mtimes have zero nanoseconds — as after a tar
//!   extraction, where equal times prove nothing — the contents are compared. That content
//!   comparison reads both files: it is the expensive part of a diff, and it happens for every
//!   same-size file unpacked from a tar that the change did not touch. Directories compare
//!   mode, owner and xattrs (their mtime changes whenever a child does).
//!
//! Output order is a depth-first walk with each directory's entries sorted bytewise by their
//! tar names (a whiteout sorts as `.wh.NAME`): parents before children, subtrees contiguous.
//! The root itself is not emitted; the parent directories of every emitted entry are (as
//! containerd does), so a layer never relies on directories being created implicitly.
//! Hardlinks: the first path of an inode in that order is emitted as the file, later paths as
//! hardlink entries to it (mode, owner and mtime kept, no data, no xattrs). Sockets are
//! skipped. Sparse files are emitted with their holes as zeros.
//!
//! The trees are walked through directory fds (`strata-fs`): paths of any length, any depth,
//! and a tree that changes while it is read — a running container's — cannot lead the walk
//! out of it. Each entry is listed, then opened once without following it (`O_PATH|
//! O_NOFOLLOW`) and its header, symlink target, data and children all come from that open
//! inode; a directory swapped for a symlink to `/` in between is written as the symlink it has
//! become. A file whose size changes while it is read is still an error (`Changed`): the tar
//! would be inconsistent.

#[cfg(test)]
mod tests;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Stat};
use strata_fs::Entry;
use strata_types::Digest;

use writer::{OutEntry, OutKind, TarWriter};

use crate::apply::xattr_allowed;
use crate::error::ArchiveError;
use crate::sys;

/// What a diff wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffStats {
    /// sha256 of the tar written.
    pub diff_id: Digest,
    /// Bytes written.
    pub bytes: u64,
    /// Tar entries written (PAX extended headers not counted).
    pub entries: u64,
}

/// Writes the layer tar of an overlayfs upper directory to `w`.
///
/// Overlay whiteouts (0/0 character devices) become `.wh.NAME`, opaque directories
/// (`trusted.overlay.opaque=y`) get `.wh..wh..opq`, and every other entry of `upper` is emitted
/// as it is (overlayfs's own `trusted.*` xattrs filtered out). Redirected or metacopy-only
/// entries (`redirect_dir`, `metacopy` mount options) are not understood; strata's overlay
/// mounts do not enable them.
pub fn diff_overlay_upper(upper: &Path, w: impl Write) -> Result<DiffStats, ArchiveError> {
    let mut e = Emitter::new(w, Mode::Upper);
    e.run(None, upper)?;
    e.finish()
}

/// Writes the layer tar that turns `old` into `new` (two full trees) to `w`. See the module
/// doc for what counts as a change and what that costs.
pub fn diff_trees(old: &Path, new: &Path, w: impl Write) -> Result<DiffStats, ArchiveError> {
    let mut e = Emitter::new(w, Mode::Trees);
    e.run(Some(old), new)?;
    e.finish()
}

/// Writes the whole tree `root` (everything in it is new) to `w`: `export`.
pub fn tar_tree(root: &Path, w: impl Write) -> Result<DiffStats, ArchiveError> {
    let mut e = Emitter::new(w, Mode::Trees);
    e.run(None, root)?;
    e.finish()
}

fn walk_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.to_owned();
    move |source| ArchiveError::Walk { op, path, source }
}

/// One directory entry of a tree, with what the diff needs to know about it. The listing's
/// view: before anything of it is written or read, it is opened and checked ([`settle`]).
#[derive(Debug)]
struct Node {
    name: Vec<u8>,
    /// For messages only: nothing is ever opened by this path.
    path: PathBuf,
    st: Stat,
    /// Allowed xattrs, sorted.
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Overlayfs marked this directory opaque.
    opaque: bool,
}

impl Node {
    /// `name` in `dir` as it is now (`None`: gone).
    fn read(
        dir: BorrowedFd<'_>,
        name: Vec<u8>,
        path: PathBuf,
    ) -> Result<Option<Node>, ArchiveError> {
        let st = match strata_fs::lstat_at(dir, &name) {
            Ok(st) => st,
            Err(e) if sys::is_errno(&e, rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(walk_err("lstat", &path)(e)),
        };
        Self::with_stat(dir, name, path, st).map(Some)
    }

    fn with_stat(
        dir: BorrowedFd<'_>,
        name: Vec<u8>,
        path: PathBuf,
        st: Stat,
    ) -> Result<Node, ArchiveError> {
        let all = match sys::xattrs_at(dir, &name) {
            Ok(all) => all,
            // Gone since the stat: nothing will be emitted for it anyway.
            Err(e) if sys::is_errno(&e, rustix::io::Errno::NOENT) => Vec::new(),
            Err(e) => return Err(walk_err("read xattrs of", &path)(e)),
        };
        Ok(Self::with_xattrs(name, path, st, all))
    }

    fn with_xattrs(name: Vec<u8>, path: PathBuf, st: Stat, all: Vec<(Vec<u8>, Vec<u8>)>) -> Node {
        let opaque = all.iter().any(|(k, v)| {
            (k == b"trusted.overlay.opaque" || k == b"user.overlay.opaque") && v == b"y"
        });
        let xattrs = all.into_iter().filter(|(k, _)| xattr_allowed(k)).collect();
        Node {
            name,
            path,
            st,
            xattrs,
            opaque,
        }
    }

    fn file_type(&self) -> FileType {
        strata_fs::file_type(&self.st)
    }

    fn is_dir(&self) -> bool {
        self.file_type() == FileType::Directory
    }

    fn is_overlay_whiteout(&self) -> bool {
        self.file_type() == FileType::CharacterDevice && self.st.st_rdev == 0
    }

    /// The tar entry for this node at `rel`; `None` for sockets. `entry` is this node opened
    /// (the symlink target is read from it).
    fn entry(&self, entry: &Entry, rel: Vec<u8>) -> Result<Option<OutEntry>, ArchiveError> {
        let (kind, link) = match self.file_type() {
            FileType::Directory => (OutKind::Dir, Vec::new()),
            FileType::RegularFile => (OutKind::Regular, Vec::new()),
            FileType::Symlink => (
                OutKind::Symlink,
                entry
                    .read_link()
                    .map_err(walk_err("read symlink", &self.path))?,
            ),
            FileType::CharacterDevice => (OutKind::Char, Vec::new()),
            FileType::BlockDevice => (OutKind::Block, Vec::new()),
            FileType::Fifo => (OutKind::Fifo, Vec::new()),
            _ => {
                tracing::debug!(path = %self.path.display(), "socket skipped in diff");
                return Ok(None);
            }
        };
        let rdev = self.st.st_rdev;
        Ok(Some(OutEntry {
            kind,
            path: rel,
            link,
            mode: self.st.st_mode & 0o7777,
            uid: u64::from(self.st.st_uid),
            gid: u64::from(self.st.st_gid),
            size: if kind == OutKind::Regular {
                u64::try_from(self.st.st_size).unwrap_or(0)
            } else {
                0
            },
            mtime: self.st.st_mtime,
            major: rustix::fs::major(rdev),
            minor: rustix::fs::minor(rdev),
            xattrs: self.xattrs.clone(),
        }))
    }
}

/// Opens the entry `node` was listed as and returns it with a node that describes exactly the
/// inode opened (re-read when the name now holds another one); `None`: it is gone. Whatever
/// a live tree does after this, what is written comes from this one open inode: a directory
/// swapped for a symlink to `/` is a symlink here, never a way out of the tree.
fn settle(dir: BorrowedFd<'_>, node: Node) -> Result<Option<(Node, Entry)>, ArchiveError> {
    let Some(entry) = Entry::open(dir, &node.name).map_err(walk_err("open", &node.path))? else {
        return Ok(None);
    };
    let (st, was) = (&entry.stat, &node.st);
    if (st.st_dev, st.st_ino, st.st_mode) == (was.st_dev, was.st_ino, was.st_mode) {
        return Ok(Some((
            Node {
                st: entry.stat,
                ..node
            },
            entry,
        )));
    }
    let all = if entry.file_type() == FileType::Symlink {
        // A symlink's own xattrs can only be read by name; the name may have changed again,
        // but those are metadata of the tree's own inodes, never data.
        sys::xattrs_at(dir, &node.name)
    } else {
        sys::xattrs_of_fd(entry.fd())
    }
    .map_err(walk_err("read xattrs of", &node.path))?;
    let fresh = Node::with_xattrs(node.name, node.path, entry.stat, all);
    Ok(Some((fresh, entry)))
}

/// The entries of the open directory `dir`, in no particular order.
fn children(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<Node>, ArchiveError> {
    let mut out = Vec::new();
    for (name, _) in strata_fs::list(dir).map_err(walk_err("read directory", path))? {
        let p = path.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&name));
        if let Some(node) = Node::read(dir, name, p)? {
            out.push(node);
        }
    }
    Ok(out)
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(rel.len() + 1 + name.len());
    if !rel.is_empty() {
        p.extend_from_slice(rel);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn whiteout_name(name: &[u8]) -> Vec<u8> {
    let mut n = b".wh.".to_vec();
    n.extend_from_slice(name);
    n
}

const OPAQUE: &[u8] = b".wh..wh..opq";

/// What the walk reads: an overlay upper directory, or full trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Upper,
    Trees,
}

enum Item {
    /// A whiteout or opaque marker.
    Marker,
    /// An entry of the new tree, with the same name in the old one.
    Present(Box<Node>, Option<Box<Node>>),
}

/// A directory being walked: its open fd (and the old tree's), what is left to write.
struct Frame {
    new: OwnedFd,
    old: Option<OwnedFd>,
    rel: Vec<u8>,
    items: std::vec::IntoIter<(Vec<u8>, Item)>,
}

/// Walks trees and writes what they say, in order.
struct Emitter<W: Write> {
    tar: TarWriter<W>,
    mode: Mode,
    /// `(dev, ino)` of emitted files with more than one link → the path emitted first.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// The directories on the current walk path that have not been emitted yet (`None`: they
    /// have been). Emitted lazily, before their first emitted descendant.
    pending: Vec<Option<OutEntry>>,
}

impl<W: Write> std::fmt::Debug for Emitter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter").finish_non_exhaustive()
    }
}

impl<W: Write> Emitter<W> {
    fn new(w: W, mode: Mode) -> Self {
        Emitter {
            tar: TarWriter::new(w),
            mode,
            links: HashMap::new(),
            pending: Vec::new(),
        }
    }

    fn finish(self) -> Result<DiffStats, ArchiveError> {
        let (diff_id, bytes, entries) = self
            .tar
            .finish()
            .map_err(|source| ArchiveError::Write { source })?;
        Ok(DiffStats {
            diff_id,
            bytes,
            entries,
        })
    }

    fn write(&mut self, e: &OutEntry, file: Option<(File, &Path)>) -> Result<(), ArchiveError> {
        for i in 0..self.pending.len() {
            if let Some(dir) = self.pending[i].take() {
                self.write_one(&dir, None)?;
            }
        }
        self.write_one(e, file)
    }

    fn write_one(&mut self, e: &OutEntry, file: Option<(File, &Path)>) -> Result<(), ArchiveError> {
        let (mut f, path) = match file {
            Some((f, p)) => (Some(f), p.to_owned()),
            None => (None, PathBuf::new()),
        };
        let r = self.tar.append(e, f.as_mut().map(|f| f as &mut dyn Read));
        match r {
            Ok(()) => Ok(()),
            Err(writer::CopyError::Write(source)) => Err(ArchiveError::Write { source }),
            Err(writer::CopyError::Read(source)) => Err(ArchiveError::Walk {
                op: "read",
                path,
                source,
            }),
            Err(writer::CopyError::Size) => Err(ArchiveError::Changed {
                path,
                expected: e.size,
            }),
        }
    }

    /// Emits `node` (opened as `entry`) at `rel`: a hardlink entry if its inode was emitted
    /// already; a regular file's data is read from `entry` itself.
    fn emit(&mut self, node: &Node, entry: &Entry, rel: Vec<u8>) -> Result<(), ArchiveError> {
        let Some(mut e) = node.entry(entry, rel)? else {
            return Ok(());
        };
        if e.kind != OutKind::Dir && node.st.st_nlink > 1 {
            let key = (node.st.st_dev, node.st.st_ino);
            if let Some(first) = self.links.get(&key) {
                e.kind = OutKind::Hardlink;
                e.link = first.clone();
                e.size = 0;
                e.xattrs.clear();
                e.major = 0;
                e.minor = 0;
                return self.write(&e, None);
            }
            self.links.insert(key, e.path.clone());
        }
        let file = if e.kind == OutKind::Regular && e.size > 0 {
            let f = entry.open_file().map_err(walk_err("open", &node.path))?;
            Some((f, node.path.as_path()))
        } else {
            None
        };
        self.write(&e, file)
    }

    /// What to write for the directory `new` (and the same directory of the old tree), in
    /// output order.
    fn items(
        &self,
        new: BorrowedFd<'_>,
        old: Option<BorrowedFd<'_>>,
        new_path: &Path,
        old_path: &Path,
        opaque: bool,
    ) -> Result<Vec<(Vec<u8>, Item)>, ArchiveError> {
        let mut items: Vec<(Vec<u8>, Item)> = Vec::new();
        if self.mode == Mode::Upper {
            if opaque {
                items.push((OPAQUE.to_vec(), Item::Marker));
            }
            let listed = children(new, new_path)?;
            #[cfg(test)]
            tests::after_listing(new_path);
            for node in listed {
                if node.is_overlay_whiteout() {
                    items.push((whiteout_name(&node.name), Item::Marker));
                } else {
                    items.push((node.name.clone(), Item::Present(Box::new(node), None)));
                }
            }
        } else {
            let mut old_nodes: HashMap<Vec<u8>, Node> = match old {
                Some(o) => children(o, old_path)?
                    .into_iter()
                    .map(|n| (n.name.clone(), n))
                    .collect(),
                None => HashMap::new(),
            };
            let listed = children(new, new_path)?;
            #[cfg(test)]
            tests::after_listing(new_path);
            for node in listed {
                let before = old_nodes.remove(&node.name).map(Box::new);
                items.push((node.name.clone(), Item::Present(Box::new(node), before)));
            }
            for name in old_nodes.into_keys() {
                items.push((whiteout_name(&name), Item::Marker));
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(items)
    }

    /// Walks `new` (against `old`), depth first with an explicit stack: depth is the tree's
    /// to choose, and each level holds one directory fd (two for two trees), never a path.
    fn run(&mut self, old: Option<&Path>, new: &Path) -> Result<(), ArchiveError> {
        let new_fd = strata_fs::open_dir(new).map_err(walk_err("open", new))?;
        let old_fd = old
            .map(|p| strata_fs::open_dir(p).map_err(walk_err("open", p)))
            .transpose()?;
        let opaque = self.mode == Mode::Upper
            && sys::xattrs_at(new_fd.as_fd(), b"")
                .map_err(walk_err("read xattrs of", new))?
                .iter()
                .any(|(k, v)| {
                    (k == b"trusted.overlay.opaque" || k == b"user.overlay.opaque") && v == b"y"
                });
        let old_path = old.unwrap_or(new);
        let items = self.items(
            new_fd.as_fd(),
            old_fd.as_ref().map(|f| f.as_fd()),
            new,
            old_path,
            opaque,
        )?;
        let mut stack = vec![Frame {
            new: new_fd,
            old: old_fd,
            rel: Vec::new(),
            items: items.into_iter(),
        }];
        let (new, old_path) = (new.to_owned(), old_path.to_owned());
        while let Some(frame) = stack.last_mut() {
            let Some((name, item)) = frame.items.next() else {
                stack.pop();
                if !stack.is_empty() {
                    self.pending.pop();
                }
                continue;
            };
            let rel = join(&frame.rel, &name);
            let Item::Present(node, before) = item else {
                self.write(&OutEntry::marker(rel), None)?;
                continue;
            };
            if let Some(child) = self.process(frame, *node, before, rel, &new, &old_path)? {
                stack.push(child);
            }
        }
        Ok(())
    }

    /// Writes what `node` (listed in `frame`) needs; for a directory, returns its frame to
    /// walk next (its pending entry pushed).
    fn process(
        &mut self,
        frame: &Frame,
        node: Node,
        before: Option<Box<Node>>,
        rel: Vec<u8>,
        new_top: &Path,
        old_top: &Path,
    ) -> Result<Option<Frame>, ArchiveError> {
        if !node.is_dir()
            && let (Some(b), Some(old)) = (&before, &frame.old)
            && !file_changed(old.as_fd(), b, frame.new.as_fd(), &node)?
        {
            return Ok(None);
        }
        let Some((node, entry)) = settle(frame.new.as_fd(), node)? else {
            return Ok(None);
        };
        if !node.is_dir() {
            self.emit(&node, &entry, rel)?;
            return Ok(None);
        }
        let old = match (before, &frame.old) {
            (Some(b), Some(old)) if b.is_dir() => {
                settle(old.as_fd(), *b)?.filter(|(b, _)| b.is_dir())
            }
            _ => None,
        };
        match &old {
            Some((b, _)) if !dir_changed(b, &node) => {
                let pending = node.entry(&entry, rel.clone())?;
                self.pending.push(pending);
            }
            _ => {
                self.emit(&node, &entry, rel.clone())?;
                self.pending.push(None);
            }
        }
        let opened = (|| -> Result<Frame, ArchiveError> {
            let new = entry
                .open_dir()
                .map_err(walk_err("open directory", &node.path))?;
            let old = match &old {
                Some((b, e)) => Some(e.open_dir().map_err(walk_err("open directory", &b.path))?),
                None => None,
            };
            let rel_os = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&rel);
            let items = self.items(
                new.as_fd(),
                old.as_ref().map(|f| f.as_fd()),
                &new_top.join(rel_os),
                &old_top.join(rel_os),
                node.opaque,
            )?;
            Ok(Frame {
                new,
                old,
                rel,
                items: items.into_iter(),
            })
        })();
        if opened.is_err() {
            self.pending.pop();
        }
        opened.map(Some)
    }
}

fn same_attrs(a: &Node, b: &Node) -> bool {
    a.st.st_mode == b.st.st_mode
        && a.st.st_uid == b.st.st_uid
        && a.st.st_gid == b.st.st_gid
        && a.xattrs == b.xattrs
}

fn dir_changed(old: &Node, new: &Node) -> bool {
    !same_attrs(old, new)
}

/// containerd's rule for non-directories (see the module doc); `old_dir` and `new_dir` hold
/// the two nodes.
fn file_changed(
    old_dir: BorrowedFd<'_>,
    old: &Node,
    new_dir: BorrowedFd<'_>,
    new: &Node,
) -> Result<bool, ArchiveError> {
    if !same_attrs(old, new) || old.st.st_rdev != new.st.st_rdev {
        return Ok(true);
    }
    if new.file_type() == FileType::Symlink {
        let target = |dir, n: &Node| {
            rustix::fs::readlinkat(dir, n.name.as_slice(), Vec::new())
                .map(|t| t.into_bytes())
                .map_err(|e| walk_err("read symlink", &n.path)(sys::errno(e)))
        };
        return Ok(target(old_dir, old)? != target(new_dir, new)?);
    }
    if old.st.st_size != new.st.st_size || old.st.st_mtime != new.st.st_mtime {
        return Ok(true);
    }
    let (on, nn) = (old.st.st_mtime_nsec, new.st.st_mtime_nsec);
    if on == 0 && nn == 0 {
        if new.file_type() == FileType::RegularFile && new.st.st_size > 0 {
            return Ok(!same_content(old_dir, old, new_dir, new)?);
        }
        return Ok(false);
    }
    Ok(on != nn)
}

/// Whether the two regular files hold the same bytes; one that is no longer the file listed
/// counts as changed.
fn same_content(
    old_dir: BorrowedFd<'_>,
    old: &Node,
    new_dir: BorrowedFd<'_>,
    new: &Node,
) -> Result<bool, ArchiveError> {
    let open = |dir, n: &Node| -> Result<Option<File>, ArchiveError> {
        let Some(e) = Entry::open(dir, &n.name).map_err(walk_err("open", &n.path))? else {
            return Ok(None);
        };
        if e.id() != (n.st.st_dev, n.st.st_ino) || e.file_type() != FileType::RegularFile {
            return Ok(None);
        }
        e.open_file().map(Some).map_err(walk_err("open", &n.path))
    };
    let (Some(mut fa), Some(mut fb)) = (open(old_dir, old)?, open(new_dir, new)?) else {
        return Ok(false);
    };
    let mut ba = vec![0u8; 256 << 10];
    let mut bb = vec![0u8; 256 << 10];
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(walk_err("read", &old.path))?;
        let nb = read_full(&mut fb, &mut bb).map_err(walk_err("read", &new.path))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
