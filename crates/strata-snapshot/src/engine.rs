//! What every snapshotter shares: records in the metadata database, one directory per record
//! id, the crash-safe order of operations described in the crate docs, and cleanup. A
//! [`Backend`] supplies what differs: how a snapshot's directory is filled, mounted, frozen
//! and deleted.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use strata_metadata::{Db, MetaError, SnapshotRecord, Tx};

use crate::error::FsError;
use crate::fsutil::{self, DirLock};
use crate::usage::disk_usage;
use crate::{
    ApplyTarget, Filter, Info, Labels, Mount, SnapshotError, SnapshotKind, Snapshotter, Usage,
};

/// How long an unlocked `new-…` directory is left alone by cleanup: its maker locks it
/// right after creating it, and keeps it locked until it is a snapshot.
const STAGING_GRACE: Duration = Duration::from_secs(10);

/// The longest parent chain followed; deeper means a corrupt database (a cycle).
const MAX_DEPTH: usize = 10_000;

/// What differs between snapshotters. `dir` is a snapshot's directory (`<id>/` or a staging
/// directory); `parents` are the `fs/` directories of its committed ancestors, topmost first.
pub(crate) trait Backend: Send + Sync + fmt::Debug + 'static {
    fn name(&self) -> &'static str;

    /// Checks that the snapshotter can work in `root` (its directory, just created).
    fn init(&self, _root: &Path) -> Result<(), SnapshotError> {
        Ok(())
    }

    /// Fills the empty directory `dir` for a new snapshot of `kind` on `parents`: at least
    /// `dir/fs`.
    fn create(&self, dir: &Path, kind: SnapshotKind, parents: &[PathBuf]) -> Result<(), FsError>;

    /// The mounts of the active snapshot or view in `dir`.
    fn mounts(&self, dir: &Path, kind: SnapshotKind, parents: &[PathBuf]) -> Vec<Mount>;

    /// Where an unpacker writes a layer into the active snapshot in `dir`.
    fn apply_target(&self, dir: &Path, parents: &[PathBuf]) -> ApplyTarget;

    /// Whether an active snapshot may move onto another parent (see
    /// [`Snapshotter::rebase`](crate::Snapshotter::rebase)).
    fn can_rebase(&self) -> bool {
        false
    }

    /// Called when the active snapshot in `dir` moved onto `parents`, inside the transaction
    /// that moves it.
    fn rebased(&self, _dir: &Path, _parents: &[PathBuf]) -> Result<(), FsError> {
        Ok(())
    }

    /// Called after the snapshot in `dir` was committed (and by cleanup for every committed
    /// snapshot): freeze it, where the backend can.
    fn committed(&self, _dir: &Path) -> Result<(), FsError> {
        Ok(())
    }

    /// Deletes a snapshot directory no record references; parts already gone are fine.
    fn remove(&self, dir: &Path) -> Result<(), FsError> {
        fsutil::remove_tree(dir)
    }
}

/// A snapshotter: the records of `backend.name()` in `db`, their directories under `root`.
#[derive(Debug)]
pub(crate) struct Engine<B> {
    root: PathBuf,
    db: Arc<Db>,
    backend: B,
    /// `syncfs` before recording a commit (see [`crate::Options::sync_commits`]).
    sync_commits: bool,
}

/// An error inside a write transaction: a metadata one, or a filesystem step that must roll
/// the transaction back.
enum TxError {
    Meta(MetaError),
    Fs(FsError),
}

impl From<MetaError> for TxError {
    fn from(e: MetaError) -> Self {
        TxError::Meta(e)
    }
}

impl<B: Backend> Engine<B> {
    pub fn open(
        root: PathBuf,
        db: Arc<Db>,
        backend: B,
        opts: &crate::Options,
    ) -> Result<Engine<B>, SnapshotError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(|source| SnapshotError::Open {
                name: backend.name(),
                what: "create directory",
                path: root.clone(),
                source,
            })?;
        backend.init(&root)?;
        Ok(Engine {
            root,
            db,
            backend,
            sync_commits: opts.sync_commits,
        })
    }

    fn dir(&self, id: i64) -> PathBuf {
        self.root.join(id.to_string())
    }

    fn fs_dir(&self, id: i64) -> PathBuf {
        self.dir(id).join("fs")
    }

    /// Measures the committed snapshot record `id` and stores the figure (a committed tree
    /// never changes), so each layer is walked once in its life. Errors are logged: the
    /// figure is then measured again next time.
    fn measure(&self, id: i64, key: &str) -> Usage {
        let usage = match disk_usage(&self.fs_dir(id)) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(snapshot = key, error = %e.source, path = %e.path.display(), "could not measure a snapshot");
                return Usage::default();
            }
        };
        if let Err(e) = self
            .db
            .write(|tx| tx.set_snapshot_usage(id, usage.size, usage.inodes))
        {
            tracing::debug!(snapshot = key, error = %e, "could not store a snapshot's usage");
        }
        usage
    }

    /// The backend's apply target for the snapshot in `dir`, saying whether commits sync.
    fn target(&self, dir: &Path, parents: &[PathBuf]) -> ApplyTarget {
        ApplyTarget {
            synced: self.sync_commits,
            ..self.backend.apply_target(dir, parents)
        }
    }

    fn trash_path(&self, what: &str) -> PathBuf {
        self.root.join(fsutil::unique_name(&format!("rm-{what}")))
    }

    fn sn(&self) -> &'static str {
        self.backend.name()
    }

    /// Runs `f` in a write transaction; a filesystem error inside rolls it back and is
    /// reported as itself.
    fn write<T>(
        &self,
        op: &'static str,
        key: &str,
        f: impl FnOnce(&Tx<'_>) -> Result<T, TxError>,
    ) -> Result<T, SnapshotError> {
        let mut fs_error = None;
        let result = self.db.write(|tx| match f(tx) {
            Ok(v) => Ok(v),
            Err(TxError::Meta(e)) => Err(e),
            Err(TxError::Fs(e)) => {
                fs_error = Some(e);
                Err(MetaError::FailedPrecondition {
                    what: "snapshot",
                    id: key.to_owned(),
                    reason: "filesystem step failed".to_owned(),
                })
            }
        });
        result.map_err(|source| match fs_error.take() {
            Some(e) => e.for_snapshot(op, key),
            None => SnapshotError::Metadata {
                op,
                key: key.to_owned(),
                source: Box::new(source),
            },
        })
    }

    fn read<T>(
        &self,
        op: &'static str,
        key: &str,
        f: impl FnOnce(&Tx<'_>) -> Result<T, MetaError>,
    ) -> Result<T, SnapshotError> {
        self.db.read(f).map_err(|source| SnapshotError::Metadata {
            op,
            key: key.to_owned(),
            source: Box::new(source),
        })
    }

    /// The record `key`, or `NotFound`.
    fn record(&self, op: &'static str, key: &str) -> Result<SnapshotRecord, SnapshotError> {
        self.read(op, key, |tx| tx.snapshot(self.sn(), key))?
            .ok_or_else(|| SnapshotError::NotFound {
                op,
                key: key.to_owned(),
            })
    }

    /// The record `key` and the `fs/` directories of its ancestors, topmost first.
    fn record_and_parents(
        &self,
        op: &'static str,
        key: &str,
    ) -> Result<(SnapshotRecord, Vec<PathBuf>), SnapshotError> {
        let (rec, chain) = self.read(op, key, |tx| {
            let Some(rec) = tx.snapshot(self.sn(), key)? else {
                return Ok((None, Vec::new()));
            };
            let chain = chain(tx, self.sn(), rec.parent.as_deref())?;
            Ok((Some(rec), chain))
        })?;
        let rec = rec.ok_or_else(|| SnapshotError::NotFound {
            op,
            key: key.to_owned(),
        })?;
        Ok((rec, chain.iter().map(|p| self.fs_dir(p.id)).collect()))
    }

    fn create(
        &self,
        op: &'static str,
        kind: SnapshotKind,
        key: &str,
        parent: Option<&str>,
        labels: &Labels,
    ) -> Result<Vec<Mount>, SnapshotError> {
        check_name(op, key)?;
        // Fail early, before any copying, on a taken key or a missing or active parent; the
        // insert below checks again under the write lock.
        let parents = self.read(op, key, |tx| {
            if tx.snapshot(self.sn(), key)?.is_some() {
                return Err(MetaError::AlreadyExists {
                    what: "snapshot",
                    id: format!("{}/{key}", self.sn()),
                });
            }
            let Some(parent) = parent else {
                return Ok(Vec::new());
            };
            match tx.snapshot(self.sn(), parent)? {
                Some(p) if p.kind == SnapshotKind::Committed => {}
                Some(p) => {
                    return Err(MetaError::FailedPrecondition {
                        what: "snapshot",
                        id: format!("{}/{key}", self.sn()),
                        reason: format!("parent {parent} is {}, not committed", p.kind.as_str()),
                    });
                }
                None => {
                    return Err(MetaError::NotFound {
                        what: "parent snapshot",
                        id: format!("{}/{parent}", self.sn()),
                    });
                }
            }
            chain(tx, self.sn(), Some(parent))
        })?;
        let parent_dirs: Vec<PathBuf> = parents.iter().map(|p| self.fs_dir(p.id)).collect();

        let staging =
            Staging::new(&self.root, &self.backend).map_err(|e| e.for_snapshot(op, key))?;
        self.backend
            .create(&staging.path, kind, &parent_dirs)
            .map_err(|e| e.for_snapshot(op, key))?;

        let mut leftover = None;
        let rec = self.write(op, key, |tx| {
            let rec = tx.insert_snapshot(self.sn(), key, kind, parent, labels)?;
            let dir = self.dir(rec.id);
            // Only a rolled-back transaction that got this id before us can have left a
            // directory here (SQLite reuses an id whose insert was rolled back): garbage.
            if fs::symlink_metadata(&dir).is_ok() {
                let trash = self.trash_path(&rec.id.to_string());
                fs::rename(&dir, &trash)
                    .map_err(|e| TxError::Fs(FsError::new("move aside leftover", &dir, e)))?;
                leftover = Some(trash);
            }
            fs::rename(&staging.path, &dir)
                .map_err(|e| TxError::Fs(FsError::new("move into place", &dir, e)))?;
            Ok(rec)
        })?;
        staging.placed();
        if let Some(trash) = leftover {
            tracing::warn!(path = %trash.display(), "removing a leftover snapshot directory");
            if let Err(e) = self.backend.remove(&trash) {
                tracing::warn!(error = %e.source, path = %e.path.display(), "leftover stays for cleanup");
            }
        }
        Ok(self.backend.mounts(&self.dir(rec.id), kind, &parent_dirs))
    }
}

impl<B: Backend> Snapshotter for Engine<B> {
    fn name(&self) -> &'static str {
        self.backend.name()
    }

    fn prepare(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: &Labels,
    ) -> Result<Vec<Mount>, SnapshotError> {
        self.create("prepare", SnapshotKind::Active, key, parent, labels)
    }

    fn view(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: &Labels,
    ) -> Result<Vec<Mount>, SnapshotError> {
        self.create("view", SnapshotKind::View, key, parent, labels)
    }

    fn commit(&self, name: &str, key: &str, labels: &Labels) -> Result<(), SnapshotError> {
        check_name("commit", name)?;
        if self.sync_commits {
            // Power loss must not leave a record of a layer whose files never reached the
            // disk: the next pull would trust it. One syncfs writes back the whole filesystem
            // (every layer of the pull in flight too), and is skipped if nothing is dirty. Every
            // snapshot lives on the filesystem of the snapshotter's root (btrfs subvolumes
            // share it), so that is the one synced.
            fsutil::sync_filesystem(&self.root).map_err(|e| e.for_snapshot("commit", key))?;
        }
        let rec = self.write("commit", key, |tx| {
            Ok(tx.commit_snapshot_with_labels(self.sn(), key, name, labels)?)
        })?;
        // Measured once, now that the tree can no longer change and is hot in the page cache;
        // a failure only leaves it to be measured when asked for.
        self.measure(rec.id, name);
        // The record is committed: a failure to freeze is not a failed commit. Cleanup
        // freezes every committed snapshot again.
        if let Err(e) = self.backend.committed(&self.dir(rec.id)) {
            tracing::warn!(snapshot = name, error = %e.source, path = %e.path.display(), "could not freeze a committed snapshot");
        }
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let rec = self.write("remove", key, |tx| Ok(tx.remove_snapshot(self.sn(), key)?))?;
        // The record's deletion is committed and its id is never handed out again, so the
        // directory is ours alone (or a concurrent cleanup's, which then deletes it).
        let dir = self.dir(rec.id);
        // A process killed while it had the snapshot mounted left that mount behind.
        strata_mount::mountinfo::detach_writers_of(&dir);
        let trash = self.trash_path(&rec.id.to_string());
        // Locked while being deleted, so a cleanup leaves the `rm-…` to us.
        let _lock = match DirLock::lock(&dir, true) {
            Ok(lock) => lock,
            Err(e) if e.source.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                tracing::warn!(snapshot = key, error = %e.source, path = %dir.display(), "removed snapshot's files stay for cleanup");
                return Ok(());
            }
        };
        match fs::rename(&dir, &trash) {
            Ok(()) => {
                if let Err(e) = self.backend.remove(&trash) {
                    tracing::warn!(snapshot = key, error = %e.source, path = %e.path.display(), "removed snapshot's files stay for cleanup");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(snapshot = key, error = %e, path = %dir.display(), "removed snapshot's files stay for cleanup");
            }
        }
        Ok(())
    }

    fn stat(&self, key: &str) -> Result<Info, SnapshotError> {
        self.record("stat", key).map(info)
    }

    fn update(&self, key: &str, labels: &Labels) -> Result<Info, SnapshotError> {
        self.write("update", key, |tx| {
            Ok(tx.update_snapshot_labels(self.sn(), key, labels)?)
        })
        .map(info)
    }

    fn usage(&self, key: &str) -> Result<Usage, SnapshotError> {
        let (rec, stored) = self.read("usage", key, |tx| {
            let Some(rec) = tx.snapshot(self.sn(), key)? else {
                return Ok((None, None));
            };
            let stored = match rec.kind {
                SnapshotKind::Committed => tx.snapshot_usage(rec.id)?,
                _ => None,
            };
            Ok((Some(rec), stored))
        })?;
        let rec = rec.ok_or_else(|| SnapshotError::NotFound {
            op: "usage",
            key: key.to_owned(),
        })?;
        match stored {
            Some((size, inodes)) => Ok(Usage { size, inodes }),
            None if rec.kind == SnapshotKind::Committed => Ok(self.measure(rec.id, key)),
            None => disk_usage(&self.fs_dir(rec.id)).map_err(|e| e.for_snapshot("usage", key)),
        }
    }

    fn committed_usage(&self) -> Result<HashMap<String, Usage>, SnapshotError> {
        let (stored, unmeasured) = self.read("usage", "", |tx| {
            Ok((
                tx.snapshot_usages(self.sn())?,
                tx.unmeasured_snapshots(self.sn())?,
            ))
        })?;
        let mut out: HashMap<String, Usage> = stored
            .into_iter()
            .map(|(key, size, inodes)| (key, Usage { size, inodes }))
            .collect();
        for (id, key) in unmeasured {
            let usage = self.measure(id, &key);
            out.insert(key, usage);
        }
        Ok(out)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let (rec, parents) = self.record_and_parents("mounts", key)?;
        if rec.kind == SnapshotKind::Committed {
            return Err(SnapshotError::FailedPrecondition {
                op: "mounts",
                key: key.to_owned(),
                reason: "is committed: only active snapshots and views have mounts; make a view"
                    .to_owned(),
            });
        }
        Ok(self.backend.mounts(&self.dir(rec.id), rec.kind, &parents))
    }

    fn walk(
        &self,
        filter: &Filter,
        f: &mut dyn FnMut(&Info) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        // Collect first: `f` may call back into the snapshotter (and the database).
        let infos: Vec<Info> = self
            .read("walk", "*", |tx| tx.snapshots(self.sn()))?
            .into_iter()
            .map(info)
            .filter(|i| filter.matches(i))
            .collect();
        infos.iter().try_for_each(f)
    }

    fn check(&self) -> Result<crate::Check, SnapshotError> {
        // Directories first: one made after the listing cannot look unrecorded.
        let dirs = fsutil::list(&self.root).map_err(|e| e.for_snapshot("check", "*"))?;
        let records = self.read("check", "*", |tx| tx.snapshots(self.sn()))?;
        let live: HashSet<i64> = records.iter().map(|r| r.id).collect();
        let mut out = crate::Check::default();
        for (name, path) in dirs {
            if garbage(&name, &path, &live)
                .map_err(|e| e.for_snapshot("check", "*"))?
                .is_some()
            {
                out.unrecorded.push(path);
            }
        }
        for r in records {
            if !self.fs_dir(r.id).is_dir() {
                out.missing.push(r.key);
            }
        }
        Ok(out)
    }

    fn cleanup(&self) -> Result<Vec<PathBuf>, SnapshotError> {
        // Decide, and claim what is garbage by renaming it, under the write lock: no snapshot
        // is made or removed meanwhile, so "no record" really means garbage.
        let mut claimed: Vec<(PathBuf, PathBuf)> = Vec::new();
        let committed = self.write("clean up", "*", |tx| {
            let records = tx.snapshots(self.sn())?;
            let live: HashSet<i64> = records.iter().map(|r| r.id).collect();
            for (name, path) in fsutil::list(&self.root).map_err(TxError::Fs)? {
                // Held until the directory is renamed away.
                let Some(_lock) = garbage(&name, &path, &live).map_err(TxError::Fs)? else {
                    continue;
                };
                if name.starts_with("rm-") {
                    claimed.push((path.clone(), path));
                    continue;
                }
                let trash = self.trash_path(&name);
                match fs::rename(&path, &trash) {
                    Ok(()) => claimed.push((path, trash)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(TxError::Fs(FsError::new("claim", &path, e))),
                }
            }
            Ok(records
                .into_iter()
                .filter(|r| r.kind == SnapshotKind::Committed)
                .map(|r| r.id)
                .collect::<Vec<_>>())
        })?;
        let mut removed = Vec::new();
        let mut first_error = None;
        for (original, trash) in claimed {
            match self.backend.remove(&trash) {
                Ok(()) => removed.push(original),
                Err(e) => {
                    tracing::warn!(error = %e.source, path = %e.path.display(), "cleanup could not remove");
                    first_error.get_or_insert(e);
                }
            }
        }
        for id in committed {
            if let Err(e) = self.backend.committed(&self.dir(id)) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e.for_cleanup()),
            None => Ok(removed),
        }
    }

    fn can_rebase(&self) -> bool {
        self.backend.can_rebase()
    }

    fn rebase(&self, key: &str, parent: Option<&str>) -> Result<ApplyTarget, SnapshotError> {
        let op = "rebase";
        if !self.backend.can_rebase() {
            return Err(SnapshotError::FailedPrecondition {
                op,
                key: key.to_owned(),
                reason: format!(
                    "the {} snapshotter cannot move a snapshot onto another parent",
                    self.sn()
                ),
            });
        }
        let (dir, parents) = self.write(op, key, |tx| {
            let rec = tx.set_snapshot_parent(self.sn(), key, parent)?;
            let chain = chain(tx, self.sn(), parent)?;
            let parents: Vec<PathBuf> = chain.iter().map(|p| self.fs_dir(p.id)).collect();
            let dir = self.dir(rec.id);
            self.backend.rebased(&dir, &parents).map_err(TxError::Fs)?;
            Ok((dir, parents))
        })?;
        Ok(self.target(&dir, &parents))
    }

    fn layer_dir(&self, name: &str) -> Result<PathBuf, SnapshotError> {
        let rec = self
            .read("layer dir of", name, |tx| tx.snapshot(self.sn(), name))?
            .ok_or_else(|| SnapshotError::NotFound {
                op: "layer dir of",
                key: name.to_owned(),
            })?;
        if rec.kind != SnapshotKind::Committed {
            return Err(SnapshotError::FailedPrecondition {
                op: "layer dir of",
                key: name.to_owned(),
                reason: format!("is {}, not committed", rec.kind.as_str()),
            });
        }
        Ok(self.fs_dir(rec.id))
    }

    fn apply_target(&self, key: &str) -> Result<ApplyTarget, SnapshotError> {
        let (rec, parents) = self.record_and_parents("apply to", key)?;
        if rec.kind != SnapshotKind::Active {
            return Err(SnapshotError::FailedPrecondition {
                op: "apply to",
                key: key.to_owned(),
                reason: format!(
                    "is {}: layers are applied to active snapshots",
                    rec.kind.as_str()
                ),
            });
        }
        Ok(self.target(&self.dir(rec.id), &parents))
    }
}

/// Whether `path` changed within [`STAGING_GRACE`] (or cannot be inspected: leave it be).
/// Whether `name` (at `path`) in the snapshotter's directory is garbage, given the ids of the
/// records (`live`): what `cleanup` removes and `check` reports. `Some(lock)`: garbage, with
/// the lock that keeps a `new-` directory's maker away until it is renamed (`None` for the
/// others); `None`: in use or not ours.
fn garbage(
    name: &str,
    path: &Path,
    live: &HashSet<i64>,
) -> Result<Option<Option<DirLock>>, FsError> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok((!live.contains(&id)).then_some(None));
    }
    if name.starts_with("new-") {
        // Being made right now if its maker holds the lock, or is about to take it (it was
        // created moments ago).
        if recently_modified(path) {
            return Ok(None);
        }
        return match DirLock::lock(path, false) {
            Ok(Some(lock)) => Ok(Some(Some(lock))),
            Ok(None) => Ok(None),
            Err(e) if e.source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
    }
    if name.starts_with("rm-") {
        // Being deleted right now if its remover holds the lock.
        return Ok(match DirLock::lock(path, false) {
            Ok(Some(_)) => Some(None),
            Ok(None) => None,
            // Not a directory (a file cannot be locked this way): garbage too.
            Err(e) if e.source.kind() == io::ErrorKind::NotADirectory => Some(None),
            // Gone, or going: a btrfs subvolume being deleted by its remover can fail to
            // open with other errors than "not found". The next cleanup looks again.
            Err(_) => None,
        });
    }
    tracing::debug!(path = %path.display(), "not a snapshot directory, left alone");
    Ok(None)
}

fn recently_modified(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().map_or(true, |age| age < STAGING_GRACE))
        .unwrap_or(true)
}

/// The committed chain from `parent` down to the base layer, topmost first.
fn chain(tx: &Tx<'_>, sn: &str, parent: Option<&str>) -> Result<Vec<SnapshotRecord>, MetaError> {
    let mut out: Vec<SnapshotRecord> = Vec::new();
    let mut next = parent.map(str::to_owned);
    while let Some(key) = next {
        if out.len() >= MAX_DEPTH {
            return Err(MetaError::Corrupt {
                what: "snapshot parent chain",
                value: key,
            });
        }
        let rec = tx.snapshot(sn, &key)?.ok_or_else(|| MetaError::NotFound {
            what: "parent snapshot",
            id: format!("{sn}/{key}"),
        })?;
        next = rec.parent.clone();
        out.push(rec);
    }
    Ok(out)
}

fn check_name(op: &'static str, key: &str) -> Result<(), SnapshotError> {
    if key.is_empty() {
        return Err(SnapshotError::InvalidArgument {
            op,
            key: key.to_owned(),
            reason: "a snapshot key or name must not be empty",
        });
    }
    Ok(())
}

fn info(r: SnapshotRecord) -> Info {
    Info {
        kind: r.kind,
        name: r.key,
        parent: r.parent,
        labels: r.labels,
        created: r.created,
        updated: r.updated,
    }
}

/// A snapshot directory under construction: `new-…`, locked against cleanup, deleted on drop
/// unless [`placed`](Staging::placed).
struct Staging<'a> {
    path: PathBuf,
    backend: &'a dyn Backend,
    _lock: DirLock,
    placed: bool,
}

impl<'a> Staging<'a> {
    fn new(root: &Path, backend: &'a dyn Backend) -> Result<Staging<'a>, FsError> {
        loop {
            let path = root.join(fsutil::unique_name("new"));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(FsError::new("create directory", &path, e)),
            }
            // A cleanup may claim it before we hold the lock (only if it is older than the
            // grace period, so in practice never): then start over.
            let lock = match DirLock::lock(&path, true) {
                Ok(Some(lock)) => lock,
                Ok(None) => continue,
                Err(e) if e.source.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if lock.is_at(&path) {
                return Ok(Staging {
                    path,
                    backend,
                    _lock: lock,
                    placed: false,
                });
            }
        }
    }

    fn placed(mut self) {
        self.placed = true;
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if !self.placed
            && let Err(e) = self.backend.remove(&self.path)
        {
            tracing::warn!(error = %e.source, path = %e.path.display(), "unfinished snapshot stays for cleanup");
        }
    }
}
