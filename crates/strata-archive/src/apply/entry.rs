//! Creating each kind of entry, and replacing what is already there.
//!
//! Replacement rules (the same as containerd's): a non-directory over anything removes what
//! is there first (`unlinkat`; a directory recursively) and creates a fresh inode — never
//! writes through an existing file, symlink or hardlink; a directory over a directory keeps it
//! and updates its metadata; a directory over a non-directory replaces it. New files are
//! created with `O_EXCL|O_NOFOLLOW`, so even a racing symlink could not redirect a write.
//!
//! Directories' modes and times are set at the end, deepest first, after all their children
//! exist (creating a child changes the parent's mtime, and a read-only mode would stop an
//! unprivileged apply from creating them).

use std::collections::HashSet;
use std::io;
use std::mem;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timestamps, Uid};
use rustix::io::Errno;

use super::file::{FileMeta, finish_file, open_new, write_all};
use super::meta::{Ctx, Failure, timestamps};
use super::space::{PER_ENTRY, SpaceGuard};
use super::{ApplyOptions, WhiteoutMode};
use crate::error::ArchiveError;
use crate::path::{normalize, split};
use crate::root::{Dir, Root};
use crate::stream::CHUNK;
use crate::sys::{self, errno, file_type, is_errno, lstat_at};
use crate::tarstream::{EntryHeader, Kind, TarStream};

/// Files at least this big have their writeback started as soon as their data is written.
const WRITEBACK_AT: usize = 256 << 10;

/// A directory whose mode and times are set at the end.
#[derive(Debug)]
struct DeferredDir {
    path: Vec<u8>,
    /// The inode created (or kept) for it: if a later entry replaced the directory, the
    /// record no longer applies.
    ino: u64,
    mode: u32,
    times: Option<Timestamps>,
}

/// The state of one apply.
#[derive(Debug)]
pub(crate) struct Applier<'a> {
    pub(super) opts: &'a ApplyOptions,
    pub(super) root: Root,
    pub(super) lowers: Vec<OwnedFd>,
    umask: u32,
    euid: Uid,
    egid: Gid,
    /// `(parent directory inode, name)` of every entry this layer created, for opaque
    /// directories in delete mode. Empty in overlay mode.
    pub(super) created: HashSet<(u64, Box<[u8]>)>,
    dirs: Vec<DeferredDir>,
    /// How often the result depended on what `lowers` hold (see
    /// [`ApplyStats::lower_lookups`](super::ApplyStats::lower_lookups)).
    pub(super) lower_lookups: u64,
    /// Files of the same layer elsewhere to clone or link ([`ApplyOptions::reuse_from`]).
    pub(super) reuse: Option<super::reuse::Reuse>,
    /// Free space kept on the destination's filesystem ([`ApplyOptions::min_free`]).
    space: SpaceGuard,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(
        dest: OwnedFd,
        lowers: Vec<OwnedFd>,
        reuse: Option<OwnedFd>,
        opts: &'a ApplyOptions,
    ) -> io::Result<Self> {
        Ok(Applier {
            reuse: reuse.map(|fd| super::reuse::Reuse::new(fd, dest.as_fd(), opts.same_owner)),
            opts,
            root: Root::new(dest)?,
            lowers,
            umask: sys::current_umask(),
            euid: rustix::process::geteuid(),
            egid: rustix::process::getegid(),
            created: HashSet::new(),
            dirs: Vec::new(),
            lower_lookups: 0,
            space: SpaceGuard::new(opts.min_free),
        })
    }

    /// Applies one entry. Its data, if any, is read from `tar`.
    pub(crate) fn apply(&mut self, tar: &mut TarStream, h: &EntryHeader) -> Result<(), Failure> {
        let opts = self.opts;
        let ctx = Ctx {
            layer: &opts.layer,
            entry: &h.name,
        };
        let name = normalize(&h.name).map_err(|reason| ctx.refuse(reason))?;
        self.spend(ctx, PER_ENTRY)?;
        if name.is_empty() {
            tracing::debug!(layer = ctx.layer, entry = %ctx.entry_name(), "entry for the root ignored");
            return Ok(());
        }
        let (parent, base) = split(&name);
        if let Some(target) = base.strip_prefix(b".wh.") {
            return self.whiteout(ctx, parent, base, target);
        }
        match h.kind {
            Kind::Regular => self.regular(ctx, tar, h, parent, base),
            Kind::Dir => self.directory(ctx, h, &name),
            Kind::Symlink => self.symlink(ctx, h, parent, base),
            Kind::Hardlink => self.hardlink(ctx, h, parent, base),
            Kind::Char | Kind::Block | Kind::Fifo => self.node(ctx, h, parent, base),
        }
    }

    /// Accounts for `n` bytes about to be written (see [`SpaceGuard`]).
    fn spend(&mut self, ctx: Ctx<'_>, n: u64) -> Result<(), Failure> {
        Ok(self.space.spend(n, self.root.fd(), ctx.layer, ctx.entry)?)
    }

    /// The directory `rel`, created (with its missing ancestors) when it does not exist.
    pub(super) fn parent(&mut self, ctx: Ctx<'_>, rel: &[u8]) -> Result<Rc<Dir>, Failure> {
        match self.root.dir(rel) {
            Ok(d) => Ok(d),
            Err(e) if is_errno(&e, Errno::NOENT) => {
                let dir = Rc::new(self.make_dirs(ctx, rel)?);
                self.root.remember(rel, Rc::clone(&dir));
                Ok(dir)
            }
            Err(e) => Err(ctx.io("open parent directory")(e)),
        }
    }

    /// Creates `rel` and its missing ancestors, as `mkdir -p` inside the root. A missing
    /// directory gets mode 0755 and the process's owner, or in overlay mode the metadata of
    /// the same directory in the topmost lower layer that has it. Something other than a
    /// directory in the way (a file, a dangling symlink) is an error, never followed.
    fn make_dirs(&mut self, ctx: Ctx<'_>, rel: &[u8]) -> Result<Dir, Failure> {
        let op = "create parent directories";
        match self.root.open(rel) {
            Ok(d) => return Ok(d),
            Err(e) if is_errno(&e, Errno::NOENT) => {}
            Err(e) => return Err(ctx.io(op)(e)),
        }
        let (pp, base) = split(rel);
        let parent = if pp.is_empty() {
            self.root.root_dir()
        } else {
            Rc::new(self.make_dirs(ctx, pp)?)
        };
        match rustix::fs::mkdirat(parent.fd(), base, Mode::from_raw_mode(0o755)) {
            Ok(()) => {}
            // Something that is not a directory (a file, a dangling symlink) is in the way.
            Err(Errno::EXIST) => return Err(ctx.io(op)(errno(Errno::NOTDIR))),
            Err(e) => return Err(ctx.io(op)(errno(e))),
        }
        self.record(&parent, base);
        let fd = rustix::fs::openat(
            parent.fd(),
            base,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ctx.io(op)(errno(e)))?;
        let dir = Dir::from_fd(fd).map_err(ctx.io(op))?;
        let mut deferred = DeferredDir {
            path: rel.to_vec(),
            ino: dir.ino,
            mode: 0o755,
            times: None,
        };
        let overlay = self.opts.whiteouts == WhiteoutMode::Overlay;
        self.lower_lookups += u64::from(overlay);
        if overlay
            && let Some(found) = super::lowers::find(&self.lowers, rel).map_err(ctx.io(op))?
            && file_type(&found.st) == FileType::Directory
        {
            if self.opts.same_owner {
                rustix::fs::chownat(
                    parent.fd(),
                    base,
                    Some(Uid::from_raw(found.st.st_uid)),
                    Some(Gid::from_raw(found.st.st_gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| ctx.io(op)(errno(e)))?;
            }
            let xattrs = sys::xattrs_at(found.dir.as_fd(), &found.name).map_err(ctx.io(op))?;
            ctx.set_xattrs_at(parent.fd(), base, &xattrs)?;
            deferred.mode = found.st.st_mode & 0o7777;
            deferred.times = Some(super::lowers::stat_times(&found.st));
        }
        self.dirs.push(deferred);
        Ok(dir)
    }

    /// Notes that this layer created `name` in `dir` (delete mode needs it for opaque
    /// directories).
    pub(super) fn record(&mut self, dir: &Dir, name: &[u8]) {
        if self.opts.whiteouts == WhiteoutMode::Delete {
            self.created.insert((dir.ino, name.into()));
        }
    }

    /// Clears the way for a new entry at `name`: returns true if an existing directory is to
    /// be kept (the new entry is a directory too); otherwise removes what is there.
    pub(super) fn replace(
        &mut self,
        ctx: Ctx<'_>,
        dir: &Dir,
        name: &[u8],
        new_is_dir: bool,
    ) -> Result<bool, Failure> {
        let st = match lstat_at(dir.fd(), name) {
            Ok(st) => st,
            Err(e) if is_errno(&e, Errno::NOENT) => return Ok(false),
            Err(e) => return Err(ctx.io("inspect existing entry")(e)),
        };
        if file_type(&st) == FileType::Directory {
            if new_is_dir {
                return Ok(true);
            }
            self.root.invalidate();
            sys::remove_all_at(dir.fd(), name).map_err(ctx.io("remove replaced directory"))?;
        } else {
            rustix::fs::unlinkat(dir.fd(), name, AtFlags::empty())
                .map_err(|e| ctx.io("remove replaced entry")(errno(e)))?;
        }
        Ok(false)
    }

    /// Runs `create` (an `*at` call that fails with `EEXIST` when something is in the way),
    /// replacing what is there once.
    fn create_replacing<T>(
        &mut self,
        ctx: Ctx<'_>,
        dir: &Dir,
        name: &[u8],
        op: &'static str,
        mut create: impl FnMut(BorrowedFd<'_>) -> rustix::io::Result<T>,
    ) -> Result<T, Failure> {
        match create(dir.fd()) {
            Err(Errno::EXIST) => {
                self.replace(ctx, dir, name, false)?;
                create(dir.fd()).map_err(|e| ctx.io(op)(errno(e)))
            }
            r => r.map_err(|e| ctx.io(op)(errno(e))),
        }
    }

    fn regular(
        &mut self,
        ctx: Ctx<'_>,
        tar: &mut TarStream,
        h: &EntryHeader,
        parent: &[u8],
        base: &[u8],
    ) -> Result<(), Failure> {
        let dir = self.parent(ctx, parent)?;
        let create_mode = h.mode & 0o777;
        let ids = if self.opts.same_owner {
            Some(ctx.ids(h)?)
        } else {
            None
        };
        // A link keeps the source's owner: only where the tar's owners are applied anyway.
        if let (Some(reuse), Some(ids)) = (&mut self.reuse, ids)
            && !dir.setgid
            && reuse.link(
                &name_of(parent, base),
                h,
                tar.remaining(),
                ids,
                dir.fd(),
                base,
            )
        {
            self.record(&dir, base);
            return skip_data(tar);
        }
        let owner = ids.and_then(|(uid, gid)| {
            (uid != self.euid || gid != self.egid || dir.setgid).then_some((uid, gid))
        });
        let meta = FileMeta {
            owner,
            mode: h.mode,
            chmod: h.mode & 0o7000 != 0 || create_mode & self.umask != 0,
            xattrs: h
                .xattrs
                .iter()
                .filter(|(k, _)| super::xattr_allowed(k))
                .cloned()
                .collect(),
            times: timestamps(h),
        };
        // `open_new` replaces a non-directory; a directory in the way is removed here, where
        // the parent cache (which it may be in) lives.
        let fd = match open_new(dir.fd(), base, create_mode).map_err(ctx.io("create file"))? {
            Some(fd) => fd,
            None => {
                self.replace(ctx, &dir, base, false)?;
                open_new(dir.fd(), base, create_mode)
                    .map_err(ctx.io("create file"))?
                    .ok_or_else(|| ctx.io("create file")(errno(Errno::ISDIR)))?
            }
        };
        self.record(&dir, base);
        if let Some(reuse) = &mut self.reuse
            && reuse.clone_into(&name_of(parent, base), h, tar.remaining(), &fd)
        {
            skip_data(tar)?;
            return finish_file(ctx, &fd, &meta);
        }
        match &h.sparse {
            None => {
                let mut written = 0;
                loop {
                    let s = tar.data(CHUNK as u64)?;
                    if s.is_empty() {
                        break;
                    }
                    let n = s.len();
                    self.spend(ctx, n as u64)?;
                    write_all(&fd, s, None).map_err(ctx.io("write file"))?;
                    tar.consume(n);
                    written += n;
                }
                // A big file's data starts for the disk now, while the layer goes on
                // unpacking: the sync before the commit then has little left to wait for.
                if self.opts.writeback
                    && written >= WRITEBACK_AT
                    && let Err(e) = strata_fs::start_writeback(fd.as_fd(), 0, 0)
                {
                    tracing::trace!("sync_file_range: {e}");
                }
            }
            Some(sparse) => {
                // Holes stay holes: only the stored regions are written, at their offsets.
                for &(offset, len) in &sparse.map {
                    let mut pos = offset;
                    let mut left = len;
                    while left > 0 {
                        let s = tar.data(left.min(CHUNK as u64))?;
                        let n = s.len();
                        self.spend(ctx, n as u64)?;
                        write_all(&fd, s, Some(pos)).map_err(ctx.io("write sparse file"))?;
                        tar.consume(n);
                        pos += n as u64;
                        left -= n as u64;
                    }
                }
                rustix::fs::ftruncate(&fd, sparse.real_size)
                    .map_err(|e| ctx.io("set sparse file size")(errno(e)))?;
            }
        }
        finish_file(ctx, &fd, &meta)
    }

    fn directory(&mut self, ctx: Ctx<'_>, h: &EntryHeader, name: &[u8]) -> Result<(), Failure> {
        let (parent, base) = split(name);
        let dir = self.parent(ctx, parent)?;
        // Owner-writable until the end, so an unprivileged apply can fill it.
        let mode = Mode::from_raw_mode((h.mode | 0o700) & 0o777);
        let created = match rustix::fs::mkdirat(dir.fd(), base, mode) {
            Ok(()) => true,
            Err(Errno::EXIST) => {
                if self.replace(ctx, &dir, base, true)? {
                    false
                } else {
                    rustix::fs::mkdirat(dir.fd(), base, mode)
                        .map_err(|e| ctx.io("create directory")(errno(e)))?;
                    true
                }
            }
            Err(e) => return Err(ctx.io("create directory")(errno(e))),
        };
        if created {
            self.record(&dir, base);
        }
        let st = lstat_at(dir.fd(), base).map_err(ctx.io("inspect directory"))?;
        if self.opts.same_owner {
            let (uid, gid) = ctx.ids(h)?;
            if uid.as_raw() != st.st_uid || gid.as_raw() != st.st_gid {
                rustix::fs::chownat(
                    dir.fd(),
                    base,
                    Some(uid),
                    Some(gid),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| ctx.io("chown directory")(errno(e)))?;
            }
        }
        ctx.set_xattrs_at(dir.fd(), base, &h.xattrs)?;
        self.dirs.push(DeferredDir {
            path: name.to_vec(),
            ino: st.st_ino,
            mode: h.mode,
            times: Some(timestamps(h)),
        });
        Ok(())
    }

    fn symlink(
        &mut self,
        ctx: Ctx<'_>,
        h: &EntryHeader,
        parent: &[u8],
        base: &[u8],
    ) -> Result<(), Failure> {
        if h.link.contains(&0) {
            return Err(ctx.refuse("symlink target contains a NUL byte"));
        }
        let dir = self.parent(ctx, parent)?;
        // The target is stored verbatim: it is only ever resolved inside the root (here) or
        // inside the container (at run time).
        self.create_replacing(ctx, &dir, base, "create symlink", |d| {
            rustix::fs::symlinkat(h.link.as_slice(), d, base)
        })?;
        self.record(&dir, base);
        self.finish_at(ctx, &dir, base, h, false)
    }

    fn node(
        &mut self,
        ctx: Ctx<'_>,
        h: &EntryHeader,
        parent: &[u8],
        base: &[u8],
    ) -> Result<(), Failure> {
        let (ft, what) = match h.kind {
            Kind::Char => (FileType::CharacterDevice, "a character device"),
            Kind::Block => (FileType::BlockDevice, "a block device"),
            _ => (FileType::Fifo, "a fifo"),
        };
        let dir = self.parent(ctx, parent)?;
        let create_mode = h.mode & 0o777;
        let dev = rustix::fs::makedev(h.major, h.minor);
        let made = self.create_replacing(ctx, &dir, base, "create device node", |d| {
            rustix::fs::mknodat(d, base, ft, Mode::from_raw_mode(create_mode), dev)
        });
        match made {
            Ok(()) => {}
            Err(Failure::Archive(ArchiveError::Apply { source, .. }))
                if source.raw_os_error() == Some(libc::EPERM) =>
            {
                return Err(ctx.needs_root(what));
            }
            Err(e) => return Err(e),
        }
        self.record(&dir, base);
        self.finish_at(
            ctx,
            &dir,
            base,
            h,
            h.mode & 0o7000 != 0 || create_mode & self.umask != 0,
        )
    }

    /// Owner, mode (when `chmod` is set; never for symlinks), xattrs and times of `name` in
    /// `dir`, none of them following a symlink.
    fn finish_at(
        &mut self,
        ctx: Ctx<'_>,
        dir: &Dir,
        name: &[u8],
        h: &EntryHeader,
        chmod: bool,
    ) -> Result<(), Failure> {
        if self.opts.same_owner {
            let (uid, gid) = ctx.ids(h)?;
            if uid != self.euid || gid != self.egid || dir.setgid {
                rustix::fs::chownat(
                    dir.fd(),
                    name,
                    Some(uid),
                    Some(gid),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| ctx.io("chown")(errno(e)))?;
            }
        }
        if chmod {
            // Only called for nodes this apply just created: `name` is not a symlink.
            rustix::fs::chmodat(
                dir.fd(),
                name,
                Mode::from_raw_mode(h.mode),
                AtFlags::empty(),
            )
            .map_err(|e| ctx.io("chmod")(errno(e)))?;
        }
        ctx.set_xattrs_at(dir.fd(), name, &h.xattrs)?;
        rustix::fs::utimensat(dir.fd(), name, &timestamps(h), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| ctx.io("set times")(errno(e)))
    }

    fn hardlink(
        &mut self,
        ctx: Ctx<'_>,
        h: &EntryHeader,
        parent: &[u8],
        base: &[u8],
    ) -> Result<(), Failure> {
        let target = normalize(&h.link).map_err(|reason| ctx.refuse(reason))?;
        if target.is_empty() {
            return Err(ctx.refuse("hardlink target is the root directory"));
        }
        let (tparent, tbase) = split(&target);
        // The target, resolved inside the root like any path (no cache: it is elsewhere).
        let mut found = match self.root.open(tparent) {
            Ok(d) => match lstat_at(d.fd(), tbase) {
                Ok(st) => Some((d, st)),
                Err(e) if is_errno(&e, Errno::NOENT) => None,
                Err(e) => return Err(ctx.io("inspect hardlink target")(e)),
            },
            Err(e) if is_errno(&e, Errno::NOENT) || is_errno(&e, Errno::NOTDIR) => None,
            Err(e) => return Err(ctx.io("open hardlink target directory")(e)),
        };
        if found.is_none()
            && self.opts.whiteouts == WhiteoutMode::Overlay
            && self.copy_up(ctx, &target)?
        {
            let d = self
                .root
                .open(tparent)
                .map_err(ctx.io("open hardlink target directory"))?;
            let st = lstat_at(d.fd(), tbase).map_err(ctx.io("inspect hardlink target"))?;
            found = Some((d, st));
        }
        let Some((tdir, tst)) = found else {
            return Err(ArchiveError::HardlinkTarget {
                layer: ctx.layer.to_owned(),
                entry: ctx.entry_name(),
                target: String::from_utf8_lossy(&h.link).into_owned(),
            }
            .into());
        };
        if file_type(&tst) == FileType::Directory {
            return Err(ctx.refuse("hardlink target is a directory"));
        }
        let dir = self.parent(ctx, parent)?;
        match lstat_at(dir.fd(), base) {
            Ok(st) if st.st_ino == tst.st_ino && st.st_dev == tst.st_dev => return Ok(()),
            _ => {}
        }
        // linkat without AT_SYMLINK_FOLLOW links a symlink itself, never its target.
        self.create_replacing(ctx, &dir, base, "create hardlink", |d| {
            rustix::fs::linkat(tdir.fd(), tbase, d, base, AtFlags::empty())
        })?;
        self.record(&dir, base);
        Ok(())
    }

    /// Sets the deferred modes and times of directories, deepest first.
    pub(crate) fn finish(&mut self) -> Result<(), Failure> {
        let mut dirs = mem::take(&mut self.dirs);
        dirs.sort_by(|a, b| b.path.cmp(&a.path));
        for d in dirs {
            let err = |op: &'static str| {
                let layer = self.opts.layer.clone();
                let entry = String::from_utf8_lossy(&d.path).into_owned();
                move |source| ArchiveError::Apply {
                    layer,
                    entry,
                    op,
                    source,
                }
            };
            let fd = match sys::openat2_in_root(
                self.root.fd(),
                d.path.as_slice(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            ) {
                Ok(fd) => fd,
                // Replaced or removed by a later entry.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(err("open directory")(errno(e)).into()),
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| err("inspect directory")(errno(e)))?;
            if st.st_ino != d.ino {
                continue;
            }
            if st.st_mode & 0o7777 != d.mode {
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(d.mode))
                    .map_err(|e| err("chmod directory")(errno(e)))?;
            }
            if let Some(times) = &d.times {
                rustix::fs::futimens(&fd, times)
                    .map_err(|e| err("set directory times")(errno(e)))?;
            }
        }
        Ok(())
    }
}

/// `parent/base`, the entry's normalized name.
fn name_of(parent: &[u8], base: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return base.to_vec();
    }
    let mut name = Vec::with_capacity(parent.len() + 1 + base.len());
    name.extend_from_slice(parent);
    name.push(b'/');
    name.extend_from_slice(base);
    name
}

/// Reads a file's data through (hashed and, with a split, recorded) without writing it: the
/// file came from [`ApplyOptions::reuse_from`] instead.
fn skip_data(tar: &mut TarStream) -> Result<(), Failure> {
    loop {
        let n = tar.data(CHUNK as u64)?.len();
        if n == 0 {
            return Ok(());
        }
        tar.consume(n);
    }
}
