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
//! skipped. Sparse files are emitted with their holes as zeros. The trees must not change
//! during the diff (a file whose size changes while read is an error); it walks with `lstat`
//! and opens files with `O_NOFOLLOW`, so symlinks in the trees are never followed.

mod writer;

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
    let mut e = Emitter::new(w);
    e.walk_upper(upper, &[])?;
    e.finish()
}

/// Writes the layer tar that turns `old` into `new` (two full trees) to `w`. See the module
/// doc for what counts as a change and what that costs.
pub fn diff_trees(old: &Path, new: &Path, w: impl Write) -> Result<DiffStats, ArchiveError> {
    let mut e = Emitter::new(w);
    e.walk_trees(Some(old), new, &[])?;
    e.finish()
}

fn walk_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.to_owned();
    move |source| ArchiveError::Walk { op, path, source }
}

/// One directory entry of a tree, with what the diff needs to know about it.
#[derive(Debug)]
struct Node {
    name: Vec<u8>,
    path: PathBuf,
    md: Metadata,
    /// Allowed xattrs, sorted.
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Overlayfs marked this directory opaque.
    opaque: bool,
}

impl Node {
    fn read(path: PathBuf, name: Vec<u8>) -> Result<Node, ArchiveError> {
        let md = fs::symlink_metadata(&path).map_err(walk_err("lstat", &path))?;
        let all = sys::xattrs_of_path(path.as_os_str().as_bytes())
            .map_err(walk_err("read xattrs of", &path))?;
        let opaque = all.iter().any(|(k, v)| {
            (k == b"trusted.overlay.opaque" || k == b"user.overlay.opaque") && v == b"y"
        });
        let xattrs = all.into_iter().filter(|(k, _)| xattr_allowed(k)).collect();
        Ok(Node {
            name,
            path,
            md,
            xattrs,
            opaque,
        })
    }

    fn is_dir(&self) -> bool {
        self.md.file_type().is_dir()
    }

    fn is_overlay_whiteout(&self) -> bool {
        self.md.file_type().is_char_device() && self.md.rdev() == 0
    }

    fn link_target(&self) -> Result<Vec<u8>, ArchiveError> {
        fs::read_link(&self.path)
            .map(|t| t.into_os_string().into_vec())
            .map_err(walk_err("read symlink", &self.path))
    }

    /// The tar entry for this node at `rel`; `None` for sockets.
    fn entry(&self, rel: Vec<u8>) -> Result<Option<OutEntry>, ArchiveError> {
        let ft = self.md.file_type();
        let (kind, link) = if ft.is_dir() {
            (OutKind::Dir, Vec::new())
        } else if ft.is_file() {
            (OutKind::Regular, Vec::new())
        } else if ft.is_symlink() {
            (OutKind::Symlink, self.link_target()?)
        } else if ft.is_char_device() {
            (OutKind::Char, Vec::new())
        } else if ft.is_block_device() {
            (OutKind::Block, Vec::new())
        } else if ft.is_fifo() {
            (OutKind::Fifo, Vec::new())
        } else {
            tracing::debug!(path = %self.path.display(), "socket skipped in diff");
            return Ok(None);
        };
        let rdev = self.md.rdev();
        Ok(Some(OutEntry {
            kind,
            path: rel,
            link,
            mode: self.md.mode() & 0o7777,
            uid: u64::from(self.md.uid()),
            gid: u64::from(self.md.gid()),
            size: if kind == OutKind::Regular {
                self.md.len()
            } else {
                0
            },
            mtime: self.md.mtime(),
            major: rustix::fs::major(rdev),
            minor: rustix::fs::minor(rdev),
            xattrs: self.xattrs.clone(),
        }))
    }
}

/// The entries of directory `dir`, in no particular order.
fn children(dir: &Path) -> Result<Vec<Node>, ArchiveError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(walk_err("read directory", dir))? {
        let entry = entry.map_err(walk_err("read directory", dir))?;
        let name = entry.file_name().into_vec();
        out.push(Node::read(entry.path(), name)?);
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

/// Walks trees and writes what they say, in order.
struct Emitter<W: Write> {
    tar: TarWriter<W>,
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
    fn new(w: W) -> Self {
        Emitter {
            tar: TarWriter::new(w),
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

    fn write(&mut self, e: &OutEntry, file: Option<&Path>) -> Result<(), ArchiveError> {
        for i in 0..self.pending.len() {
            if let Some(dir) = self.pending[i].take() {
                self.write_one(&dir, None)?;
            }
        }
        self.write_one(e, file)
    }

    fn write_one(&mut self, e: &OutEntry, file: Option<&Path>) -> Result<(), ArchiveError> {
        let mut f = match file {
            Some(p) if e.kind == OutKind::Regular && e.size > 0 => Some(
                File::options()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(p)
                    .map_err(walk_err("open", p))?,
            ),
            _ => None,
        };
        let r = self.tar.append(e, f.as_mut().map(|f| f as &mut dyn Read));
        match r {
            Ok(()) => Ok(()),
            Err(writer::CopyError::Write(source)) => Err(ArchiveError::Write { source }),
            Err(writer::CopyError::Read(source)) => Err(ArchiveError::Walk {
                op: "read",
                path: file.map(Path::to_owned).unwrap_or_default(),
                source,
            }),
            Err(writer::CopyError::Size) => Err(ArchiveError::Changed {
                path: file.map(Path::to_owned).unwrap_or_default(),
                expected: e.size,
            }),
        }
    }

    /// Emits `node` at `rel` (a hardlink entry if its inode was emitted already).
    fn emit(&mut self, node: &Node, rel: Vec<u8>) -> Result<(), ArchiveError> {
        let Some(mut e) = node.entry(rel)? else {
            return Ok(());
        };
        if e.kind != OutKind::Dir && node.md.nlink() > 1 {
            let key = (node.md.dev(), node.md.ino());
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
        self.write(&e, Some(&node.path))
    }

    fn walk_upper(&mut self, dir: &Path, rel: &[u8]) -> Result<(), ArchiveError> {
        enum Item {
            Marker,
            Node(Box<Node>),
        }
        let mut items: Vec<(Vec<u8>, Item)> = Vec::new();
        let here = Node::read(dir.to_owned(), Vec::new())?;
        if here.opaque {
            items.push((OPAQUE.to_vec(), Item::Marker));
        }
        for node in children(dir)? {
            if node.is_overlay_whiteout() {
                items.push((whiteout_name(&node.name), Item::Marker));
            } else {
                items.push((node.name.clone(), Item::Node(Box::new(node))));
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, item) in items {
            let path = join(rel, &name);
            match item {
                Item::Marker => self.write(&OutEntry::marker(path), None)?,
                Item::Node(node) => {
                    self.emit(&node, path.clone())?;
                    if node.is_dir() {
                        self.pending.push(None);
                        self.walk_upper(&node.path, &path)?;
                        self.pending.pop();
                    }
                }
            }
        }
        Ok(())
    }

    fn walk_trees(
        &mut self,
        old: Option<&Path>,
        new: &Path,
        rel: &[u8],
    ) -> Result<(), ArchiveError> {
        enum Item {
            Removed,
            Present(Box<Node>, Option<Box<Node>>),
        }
        let mut old_nodes: HashMap<Vec<u8>, Node> = match old {
            Some(o) => children(o)?
                .into_iter()
                .map(|n| (n.name.clone(), n))
                .collect(),
            None => HashMap::new(),
        };
        let mut items: Vec<(Vec<u8>, Item)> = Vec::new();
        for node in children(new)? {
            let before = old_nodes.remove(&node.name).map(Box::new);
            items.push((node.name.clone(), Item::Present(Box::new(node), before)));
        }
        for name in old_nodes.into_keys() {
            items.push((whiteout_name(&name), Item::Removed));
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, item) in items {
            let path = join(rel, &name);
            match item {
                Item::Removed => self.write(&OutEntry::marker(path), None)?,
                Item::Present(node, before) if node.is_dir() => match before {
                    Some(b) if b.is_dir() => {
                        if dir_changed(&b, &node) {
                            self.emit(&node, path.clone())?;
                            self.pending.push(None);
                        } else {
                            self.pending.push(node.entry(path.clone())?);
                        }
                        self.walk_trees(Some(&b.path), &node.path, &path)?;
                        self.pending.pop();
                    }
                    _ => {
                        self.emit(&node, path.clone())?;
                        self.pending.push(None);
                        self.walk_trees(None, &node.path, &path)?;
                        self.pending.pop();
                    }
                },
                Item::Present(node, before) => {
                    let changed = match &before {
                        None => true,
                        Some(b) => file_changed(b, &node)?,
                    };
                    if changed {
                        self.emit(&node, path)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn same_attrs(a: &Node, b: &Node) -> bool {
    a.md.mode() == b.md.mode()
        && a.md.uid() == b.md.uid()
        && a.md.gid() == b.md.gid()
        && a.xattrs == b.xattrs
}

fn dir_changed(old: &Node, new: &Node) -> bool {
    !same_attrs(old, new)
}

/// containerd's rule for non-directories (see the module doc).
fn file_changed(old: &Node, new: &Node) -> Result<bool, ArchiveError> {
    if !same_attrs(old, new) || old.md.rdev() != new.md.rdev() {
        return Ok(true);
    }
    if new.md.file_type().is_symlink() {
        return Ok(old.link_target()? != new.link_target()?);
    }
    if old.md.len() != new.md.len() || old.md.mtime() != new.md.mtime() {
        return Ok(true);
    }
    let (on, nn) = (old.md.mtime_nsec(), new.md.mtime_nsec());
    if on == 0 && nn == 0 {
        if new.md.file_type().is_file() && new.md.len() > 0 {
            return Ok(!same_content(&old.path, &new.path)?);
        }
        return Ok(false);
    }
    Ok(on != nn)
}

fn same_content(a: &Path, b: &Path) -> Result<bool, ArchiveError> {
    let open = |p: &Path| {
        File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(p)
            .map_err(walk_err("open", p))
    };
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let mut ba = vec![0u8; 256 << 10];
    let mut bb = vec![0u8; 256 << 10];
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(walk_err("read", a))?;
        let nb = read_full(&mut fb, &mut bb).map_err(walk_err("read", b))?;
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
