//! Snapshotters: where unpacked layers and containers' writable layers live.
//!
//! The interface is containerd's ([`Snapshotter`]); the three implementations are
//! `overlayfs` (the default: one directory per layer, stacked by overlayfs), `native` (a full
//! copy per snapshot; slow and large, works on any filesystem) and `btrfs` (subvolumes and
//! their snapshots). Records live in the metadata database ([`strata_metadata::Db`]), the
//! files under the store root. A snapshot is handed out as a list of [`Mount`]s, never as "a
//! directory"; [`strata_mount`] mounts them.
//!
//! # On disk
//!
//! ```text
//! <root>/snapshots/<snapshotter>/        mode 0700, one per snapshotter name
//! ├── <id>/                              one snapshot; <id> = its record's id, never reused
//! │   ├── fs/                            its files: the overlay upper dir / the full copy /
//! │   │                                  the btrfs subvolume (read-only once committed)
//! │   └── work/                          overlayfs only, active snapshots: overlay's workdir
//! ├── new-<pid>-<n>-<t>/                 a snapshot being made, flock()ed by its maker
//! └── rm-<id>-<pid>-<n>-<t>/             a snapshot being deleted, flock()ed by its remover
//! ```
//!
//! # Order of operations, and why `kill -9` is harmless
//!
//! The database says what exists; a directory without a record is garbage, and [`cleanup`]
//! can always tell which is which:
//!
//! 1. **Make** (`prepare`, `view`): the directory is built under `new-…` (holding an
//!    exclusive `flock` on it, so a concurrent `cleanup` leaves it alone); then one write
//!    transaction inserts the record and renames `new-…` to `<id>` before committing. A crash
//!    before the rename leaves an unlocked `new-…`; between rename and commit, an `<id>`
//!    without a record. Both are garbage. (SQLite hands a rolled-back id out again: a maker
//!    that finds `<id>` already there moves the leftover aside, inside its transaction.)
//! 2. **Commit** changes only the record (the id, so the directory, stays); btrfs then marks
//!    the subvolume read-only, and `cleanup` re-asserts that should a crash fall in between.
//! 3. **Remove**: the record is deleted first (committed), then `<id>` is locked, renamed
//!    to `rm-…` and deleted. A crash leaves an `<id>` or `rm-…` without a record: garbage. Ids of
//!    deleted records are never handed out again (`AUTOINCREMENT`), so this is safe outside
//!    the lock.
//! 4. **Cleanup** decides inside a write transaction (no snapshot can be made or removed
//!    meanwhile): `<id>` dirs without a record, and `new-…` dirs that are unlocked and
//!    untouched for 10 seconds (a maker locks its directory right after `mkdir`; the grace
//!    covers that instant, and a maker that loses its directory anyway starts over), are
//!    renamed to `rm-…` there and deleted after it. A half-made snapshot never has a record,
//!    so it never looks complete.
//!
//! Writes into a snapshot are not fsynced one by one: a `kill -9` loses nothing the page cache
//! holds. Power loss would, so by default `commit` first writes the snapshot's filesystem
//! back (`syncfs`) and only then records the commit: a committed record never stands for files
//! that were not on disk ([`Options::sync_commits`]; the unpacker starts big files' writeback
//! early so that sync finds little left to do).
//!
//! [`cleanup`]: Snapshotter::cleanup

mod btrfs;
mod copy;
mod engine;
mod error;
mod filter;
mod fsutil;
mod native;
mod overlay;
mod usage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

pub use error::SnapshotError;
pub use filter::Filter;
pub use strata_metadata::{Labels, SnapshotKind};
pub use strata_mount::Mount;

/// The snapshotters [`open`] knows, the default first.
pub const SNAPSHOTTERS: &[&str] = &["overlayfs", "native", "btrfs"];

/// Allocates, layers and mounts filesystem trees: containerd's snapshotter model.
///
/// # Words
///
/// A snapshot is a filesystem tree. Every snapshot has at most one *parent*, the snapshot it
/// starts from; `None` is the empty directory. Snapshots come in three kinds
/// ([`SnapshotKind`]):
///
/// - **active**: writable, made by [`prepare`](Self::prepare). Named by a *key*.
/// - **view**: read-only, made by [`view`](Self::view); changes to it cannot be committed.
/// - **committed**: immutable, made by [`commit`](Self::commit) of an active snapshot. Named
///   by a *name*. Only a committed snapshot can be a parent.
///
/// Keys and names share one namespace per snapshotter: an active snapshot cannot have the
/// key of a committed one. The methods take `key` where an active snapshot or view is meant,
/// `name`/`parent` where a committed one is; [`stat`](Self::stat), [`remove`](Self::remove)
/// and friends take either.
///
/// # Importing a layer
///
/// ```no_run
/// # use strata_snapshot::*;
/// # fn unpack(_: &std::path::Path) -> std::io::Result<()> { Ok(()) }
/// # fn f(sn: &dyn Snapshotter, labels: &Labels) -> Result<(), Box<dyn std::error::Error>> {
/// // A fresh active snapshot on the empty parent, under a key unique to this unpack.
/// let mounts = sn.prepare("extract-1 sha256:l1", None, labels)?;
/// // Mount it somewhere and unpack the layer's tar into it.
/// strata_mount::with_temp_mount(&mounts, |dir| unpack(dir))??;
/// // Verified? Then commit it under the layer's chainID. The key is gone afterwards.
/// sn.commit("sha256:chain1", "extract-1 sha256:l1", labels)?;
/// # Ok(()) }
/// ```
///
/// The next layer does the same with `parent = Some("sha256:chain1")`: after mounting, the
/// directory starts with the parent's content, and what the unpack changes is all the new
/// snapshot holds. (An unpacker that can write layers directly, without a mount, asks
/// [`apply_target`](Self::apply_target) where; overlayfs then unpacks all layers of an image
/// in parallel.)
///
/// # Running a container
///
/// ```no_run
/// # use strata_snapshot::*;
/// # fn f(sn: &dyn Snapshotter, labels: &Labels) -> Result<(), SnapshotError> {
/// // The container's writable layer, on the image's top chainID.
/// let rootfs: Vec<Mount> = sn.prepare("container-abc", Some("sha256:chain3"), labels)?;
/// // ... hand `rootfs` to the OCI runtime; later, to keep the changes as an image layer:
/// sn.commit("sha256:new-chain", "container-abc", labels)?;
/// // or, the usual end of a container, throw them away:
/// // sn.remove("container-abc")?;
/// # Ok(()) }
/// ```
///
/// Implementations are safe to share between threads and between processes on one store.
pub trait Snapshotter: Send + Sync {
    /// The snapshotter's name: `"overlayfs"`, `"native"` or `"btrfs"`; the `snapshotter`
    /// column of its records.
    fn name(&self) -> &'static str;

    /// Creates the active snapshot `key` on `parent` (which must be committed) and returns
    /// the mounts of its writable tree. Fails with `AlreadyExists` if `key` is taken.
    fn prepare(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: &Labels,
    ) -> Result<Vec<Mount>, SnapshotError>;

    /// Like [`prepare`](Self::prepare), but the mounts are read-only and the snapshot can
    /// never be committed: a view of `parent`, tracked under `key` until removed.
    fn view(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: &Labels,
    ) -> Result<Vec<Mount>, SnapshotError>;

    /// Turns the active snapshot `key` into the committed snapshot `name`, with the same
    /// parent and exactly `labels` (the active snapshot's labels are not inherited). `key` no
    /// longer exists afterwards. The caller unmounts it first.
    fn commit(&self, name: &str, key: &str, labels: &Labels) -> Result<(), SnapshotError>;

    /// Removes the snapshot `key` (any kind) and its files. Refuses a snapshot that is the
    /// parent of another (`FailedPrecondition`). The caller unmounts it first.
    fn remove(&self, key: &str) -> Result<(), SnapshotError>;

    /// What is known about the snapshot `key`.
    fn stat(&self, key: &str) -> Result<Info, SnapshotError>;

    /// Sets each label in `labels` on `key`, removing those whose value is empty; other
    /// labels stay. Kind, parent and creation time never change. Returns the new info.
    fn update(&self, key: &str, labels: &Labels) -> Result<Info, SnapshotError>;

    /// The disk space and inodes of the snapshot's own tree, not its parents': blocks actually
    /// allocated (`st_blocks * 512`), a file with several hard links counted once. For
    /// overlayfs, the layer's own directory; for native and btrfs, the snapshot's full tree
    /// (what it shares with its parent through reflinks or btrfs extents is counted too).
    /// A committed snapshot is measured once, when committed, and the figure stored with its
    /// record (a committed tree never changes), so asking is cheap; active snapshots and
    /// views are measured on each call.
    fn usage(&self, key: &str) -> Result<Usage, SnapshotError>;

    /// The usage of every committed snapshot, by name: one read of the stored figures (those
    /// without one, from stores older than the figures, are measured and stored now). What
    /// accounting over many images asks for instead of calling [`usage`](Self::usage) per layer.
    fn committed_usage(&self) -> Result<HashMap<String, Usage>, SnapshotError>;

    /// The mounts of an active snapshot or view, as `prepare`/`view` returned them.
    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError>;

    /// Calls `f` with each snapshot that matches `filter`, parents before children. `f` may
    /// call this snapshotter's other methods. An error from `f` stops the walk and is
    /// returned.
    fn walk(
        &self,
        filter: &Filter,
        f: &mut dyn FnMut(&Info) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError>;

    /// Removes the directories (and subvolumes) no record references: leftovers of crashed or
    /// failed operations. Returns the paths it removed. Safe to run beside other processes
    /// using the store.
    fn cleanup(&self) -> Result<Vec<PathBuf>, SnapshotError>;

    /// Compares records and directories without changing either, for `fsck`: directories no
    /// record names (what [`cleanup`](Self::cleanup) would remove; one a concurrent operation
    /// is making may show up too) and records whose directory is gone (a layer that looks
    /// unpacked but is not). Run it on a quiet store for an exact answer.
    fn check(&self) -> Result<Check, SnapshotError>;

    /// Where an archive applier should unpack a layer into the active snapshot `key`, and how,
    /// with no mount needed:
    ///
    /// - overlayfs: the snapshot's own `fs` directory (the overlay upper dir); whiteouts are
    ///   written as overlay whiteouts (0/0 character devices, `trusted.overlay.opaque`), and
    ///   `lowers` lists the parents' directories (topmost first) so hard links to files of
    ///   lower layers can be resolved. Layers of one image can unpack in parallel. Do not
    ///   write there while the snapshot is mounted.
    /// - native and btrfs: the snapshot's full tree; whiteouts are plain deletions, `lowers`
    ///   is empty.
    fn apply_target(&self, key: &str) -> Result<ApplyTarget, SnapshotError>;

    /// The directory the committed snapshot `name`'s layer was applied into (the
    /// [`ApplyTarget::dir`] it had while active): overlayfs, that layer's own files;
    /// native and btrfs, the full tree. For reading only — rebuilding a layer's tar from its
    /// files — never for writing: other snapshots and containers build on it.
    fn layer_dir(&self, name: &str) -> Result<PathBuf, SnapshotError>;

    /// Whether [`rebase`](Self::rebase) works: true for overlayfs only.
    fn can_rebase(&self) -> bool;

    /// Moves the active snapshot `key` onto the committed snapshot `parent` (or the empty
    /// directory), and returns its apply target on the new parents. This is how the layers of
    /// one image unpack in parallel: each is prepared on no parent, filled, then moved onto
    /// its parent once that is committed, and committed itself. Correct only for a layer
    /// whose apply did not consult its lowers (`ApplyStats::lower_lookups == 0` in
    /// strata-archive). Snapshotters that copy their parent (native, btrfs) refuse with
    /// `FailedPrecondition`.
    fn rebase(&self, key: &str, parent: Option<&str>) -> Result<ApplyTarget, SnapshotError>;
}

/// See [`Snapshotter::apply_target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyTarget {
    /// The directory to unpack into.
    pub dir: PathBuf,
    /// Whiteouts become overlay whiteouts (true) or deletions (false).
    pub overlay_whiteouts: bool,
    /// The parents' directories, topmost first (overlayfs only).
    pub lowers: Vec<PathBuf>,
    /// The snapshot's filesystem is written back to disk before its commit is recorded
    /// ([`Options::sync_commits`]): an unpacker may start that writeback as it writes.
    pub synced: bool,
}

/// What a snapshotter knows about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub kind: SnapshotKind,
    /// The key (active, view) or name (committed).
    pub name: String,
    pub parent: Option<String>,
    pub labels: Labels,
    pub created: SystemTime,
    pub updated: SystemTime,
}

/// See [`Snapshotter::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Check {
    /// Directories without a record: leftovers of crashed operations.
    pub unrecorded: Vec<PathBuf>,
    /// Keys of records whose tree (`<id>/fs`) is missing.
    pub missing: Vec<String>,
}

/// See [`Snapshotter::usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Bytes allocated on disk.
    pub size: u64,
    /// Inodes, the root directory included.
    pub inodes: u64,
}

/// How a snapshotter is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Write the snapshot's filesystem back to disk (`syncfs`) before a commit is recorded, so
    /// a power loss never leaves a committed record whose files are not on disk. On by
    /// default; off trades that for speed (a kernel crash or power cut can then leave layers
    /// that look complete but hold empty or missing files).
    pub sync_commits: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { sync_commits: true }
    }
}

/// Opens the snapshotter `name` (one of [`SNAPSHOTTERS`]) on the store at `root`, creating
/// `<root>/snapshots/<name>` if needed. `btrfs` requires that directory to be on btrfs.
pub fn open(
    name: &str,
    root: &Path,
    db: Arc<strata_metadata::Db>,
) -> Result<Box<dyn Snapshotter>, SnapshotError> {
    open_with(name, root, db, &Options::default())
}

/// [`open`] with options.
pub fn open_with(
    name: &str,
    root: &Path,
    db: Arc<strata_metadata::Db>,
    opts: &Options,
) -> Result<Box<dyn Snapshotter>, SnapshotError> {
    let dir = root.join("snapshots").join(name);
    Ok(match name {
        "overlayfs" => Box::new(engine::Engine::open(dir, db, overlay::Overlay, opts)?),
        "native" => Box::new(engine::Engine::open(dir, db, native::Native, opts)?),
        "btrfs" => Box::new(engine::Engine::open(dir, db, btrfs::Btrfs, opts)?),
        _ => {
            return Err(SnapshotError::UnknownSnapshotter {
                name: name.to_owned(),
            });
        }
    })
}

/// The disk usage of the tree (`fs/`) of the snapshot record `id` of `snapshotter` in the store
/// at `root`, as [`Snapshotter::usage`] counts it (blocks allocated, hard links once), but
/// found by the record's id: for a garbage collector that has deleted the record and wants
/// to know what the next [`Snapshotter::cleanup`] frees. A directory already gone is `None`.
pub fn unrecorded_usage(root: &Path, snapshotter: &str, id: i64) -> Option<Usage> {
    let dir = root
        .join("snapshots")
        .join(snapshotter)
        .join(id.to_string())
        .join("fs");
    usage::disk_usage(&dir).ok()
}
