//! `strata fsck`: does what the database says match what is on disk?
//!
//! ```text
//! metadata.db      SQLite's integrity check
//! content/         blob records ↔ blob files (sizes; digests with --verify-content),
//!                  ingests no live lease holds and nobody wrote to for an hour
//! leases           what expired leases, and leases of processes that died (a killed pull),
//!                  left that nothing else keeps: snapshots, blobs, partial downloads
//! snapshots/       per snapshotter: directories without records, records without trees
//! containers/      records ↔ directories, mounts left under the store by dead containers
//! ```
//!
//! Each finding is an **orphan** (something no record names: harmless, space to reclaim) or a
//! **problem** (a record whose data is gone or wrong: what uses it will fail). `--repair`
//! removes orphans, and for problems removes the broken record, so that the next pull or load
//! fetches or unpacks the data again instead of trusting it; it never removes what a
//! container uses, and says so. Files, directories and ingests go through the same crash-safe
//! paths as garbage collection (`cleanup`, `delete_unrecorded_files`, `abort`), and what
//! dead or expired leases left is removed by a garbage collection; mounts of a
//! container being started could be taken for leaked ones, so run `--repair` on a quiet store
//! (as `e2fsck` wants an unmounted filesystem).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use strata_metadata::{LeaseResource, MetaError};
use strata_snapshot::SNAPSHOTTERS;
use strata_types::{Digest, ErrorKind};

use crate::gc::{GcOptions, INGEST_GRACE};
use crate::store::Store;

#[derive(Debug, Clone, Copy, Default)]
pub struct FsckOptions {
    pub repair: bool,
    /// Re-hash every blob file against its digest.
    pub verify_content: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Not referenced by any record: reclaimable, harmless.
    Orphan,
    /// A record whose data is missing or wrong.
    Problem,
}

/// One thing `fsck` found, and what `--repair` did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// What it is about: `blob sha256:…`, `snapshot overlayfs/sha256:…`, a path.
    pub subject: String,
    pub detail: String,
    /// What `--repair` did (`None` without `--repair`, or when it could not act).
    pub repaired: Option<String>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Blobs, snapshots and containers looked at.
    pub checked: usize,
}

impl Report {
    /// Problems `--repair` did not fix.
    pub fn unresolved_problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Problem && f.repaired.is_none())
            .count()
    }

    fn add(&mut self, severity: Severity, subject: String, detail: String) -> &mut Finding {
        self.findings.push(Finding {
            severity,
            subject,
            detail,
            repaired: None,
        });
        let last = self.findings.len() - 1;
        &mut self.findings[last]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Snapshot(#[from] strata_snapshot::SnapshotError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl FsckError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            FsckError::Meta(e) => e.kind(),
            FsckError::Snapshot(e) => e.kind(),
            FsckError::Io { .. } => ErrorKind::Internal,
        }
    }
}

/// Checks the store (and repairs it with `opts.repair`).
pub fn fsck(store: &Store, opts: &FsckOptions) -> Result<Report, FsckError> {
    let mut report = Report::default();
    for line in store.db().integrity_check()? {
        if line != "ok" {
            report.add(
                Severity::Problem,
                "metadata.db".into(),
                format!("SQLite integrity check: {line}"),
            );
        }
    }
    blobs(store, opts, &mut report)?;
    ingests(store, opts, &mut report)?;
    leftovers(store, opts, &mut report)?;
    snapshots(store, opts, &mut report)?;
    containers(store, opts, &mut report)?;
    Ok(report)
}

fn blobs(store: &Store, opts: &FsckOptions, report: &mut Report) -> Result<(), FsckError> {
    let content = store.content();
    let records: HashMap<Digest, (u64, bool)> = content
        .sizes()?
        .into_iter()
        .map(|b| (b.digest, (b.size, b.discarded)))
        .collect();
    let files = content.local().list().map_err(MetaError::from)?;
    report.checked += records.len();
    // What a repair acts on: the finding's index and its blob.
    let (mut orphans, mut broken, mut leftovers) = (Vec::new(), Vec::new(), Vec::new());
    let add = |report: &mut Report, severity, digest: &Digest, detail: String| {
        report.add(severity, format!("blob {digest}"), detail);
        (report.findings.len() - 1, digest.clone())
    };
    let on_disk: HashSet<&Digest> = files.iter().map(|f| &f.digest).collect();
    // A discarded blob has no file by design (its layer's snapshot and tar split stand in).
    for digest in records
        .iter()
        .filter(|(d, (_, discarded))| !discarded && !on_disk.contains(d))
        .map(|(d, _)| d)
    {
        let detail = "recorded, but its file is missing".into();
        broken.push(add(report, Severity::Problem, digest, detail));
    }
    for file in &files {
        let detail = match records.get(&file.digest) {
            None => {
                let detail = format!("file without a record ({} bytes)", file.size);
                orphans.push(add(report, Severity::Orphan, &file.digest, detail));
                continue;
            }
            Some(&(_, true)) => {
                // Discarding marks the record, then deletes the file: a crash in between.
                let detail = format!(
                    "discarded, but its file is still here ({} bytes)",
                    file.size
                );
                leftovers.push(add(report, Severity::Orphan, &file.digest, detail));
                continue;
            }
            Some(&(size, _)) if size != file.size => {
                format!("recorded as {size} bytes, the file has {}", file.size)
            }
            Some(_) if opts.verify_content => {
                match hash_file(&content.local().blob_path(&file.digest)) {
                    Ok(actual) if actual == file.digest => continue,
                    Ok(actual) => {
                        format!("content does not match its digest (it hashes to {actual})")
                    }
                    Err(e) => {
                        // Not removed by a repair: unreadable is not known to be wrong.
                        add(
                            report,
                            Severity::Problem,
                            &file.digest,
                            format!("cannot be read: {e}"),
                        );
                        continue;
                    }
                }
            }
            Some(_) => continue,
        };
        broken.push(add(report, Severity::Problem, &file.digest, detail));
    }
    if !opts.repair {
        return Ok(());
    }
    // Orphan files: deleted only if still unrecorded, decided under the write lock.
    let digests: Vec<Digest> = orphans.iter().map(|(_, d)| d.clone()).collect();
    let deleted: HashSet<Digest> = content
        .delete_unrecorded_files(&digests)?
        .into_iter()
        .collect();
    for (i, d) in orphans {
        if deleted.contains(&d) {
            report.findings[i].repaired = Some("file removed".into());
        }
    }
    for (i, d) in leftovers {
        match content.delete_discarded_file(&d) {
            Ok(()) => report.findings[i].repaired = Some("file removed".into()),
            Err(e) => tracing::warn!("fsck: remove discarded blob file {d}: {e}"),
        }
    }
    // The record goes (and the bad file with it), so a pull fetches it again.
    for (i, d) in broken {
        match content.delete(&d) {
            Ok(()) | Err(MetaError::NotFound { .. }) => {
                report.findings[i].repaired =
                    Some("record removed: pull or load the image again to restore it".into());
            }
            Err(e) => tracing::warn!("fsck: remove blob {d}: {e}"),
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> std::io::Result<Digest> {
    use sha2::Digest as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = strata_types::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Digest::from_hasher(hasher))
}

fn ingests(store: &Store, opts: &FsckOptions, report: &mut Report) -> Result<(), FsckError> {
    let now = SystemTime::now();
    // Leases whose process died keep their ingests from no one here.
    let leases = store
        .db()
        .read(|tx| crate::gc::read_leases(tx, now, false))?;
    let left: HashMap<&str, &strata_metadata::Lease> = leases
        .left
        .iter()
        .filter_map(|(lease, r)| match r {
            LeaseResource::Ingest(i) => Some((i.as_str(), lease)),
            _ => None,
        })
        .collect();
    for ingest in store.content().ingests()? {
        let idle = now
            .duration_since(ingest.updated)
            .is_ok_and(|age| age >= INGEST_GRACE);
        let detail = match left.get(ingest.r#ref.as_str()) {
            Some(lease) if leases.ended_ingests.contains(&ingest.r#ref) => format!(
                "partial download of {} bytes, {}",
                ingest.offset,
                left_by(lease)
            ),
            _ if leases.live_ingests.contains(&ingest.r#ref) || !idle => continue,
            _ => format!(
                "partial download of {} bytes, no live lease, idle for over an hour",
                ingest.offset
            ),
        };
        let f = report.add(Severity::Orphan, format!("ingest {}", ingest.r#ref), detail);
        if opts.repair {
            match store.content().abort(&ingest.r#ref) {
                Ok(()) => f.repaired = Some("discarded".into()),
                Err(e) => tracing::warn!("fsck: discard ingest {}: {e}", ingest.r#ref),
            }
        }
    }
    Ok(())
}

/// Why what a lease held is left over: the lease expired, or its process is gone.
fn left_by(lease: &strata_metadata::Lease) -> String {
    match crate::gc::owner_pid(&lease.labels) {
        Some(pid) if crate::gc::owner_dead(&lease.labels) => {
            format!("left by {} (process {pid} is gone)", lease.id)
        }
        _ => format!("left by {} (expired)", lease.id),
    }
}

/// Snapshots and blobs that only an expired lease, or the lease of a process that died, held
/// (a killed pull's half-unpacked layer): orphans, removed by a garbage collection.
fn leftovers(store: &Store, opts: &FsckOptions, report: &mut Report) -> Result<(), FsckError> {
    let first = report.findings.len();
    for (lease, r) in crate::gc::leftovers(store)? {
        let subject = match r {
            LeaseResource::Snapshot { snapshotter, key } => format!("snapshot {snapshotter}/{key}"),
            LeaseResource::Content(d) => format!("blob {d}"),
            // Reported with the other ingests.
            LeaseResource::Ingest(_) => continue,
        };
        report.add(
            Severity::Orphan,
            subject,
            format!("nothing uses it: {}", left_by(&lease)),
        );
    }
    if !opts.repair || report.findings.len() == first {
        return Ok(());
    }
    let gc = GcOptions {
        ingest_grace: INGEST_GRACE,
        keep_resumable: false,
    };
    let collected = crate::gc::collect(store, &gc).map_err(|e| match e {
        crate::gc::GcError::Meta(e) => FsckError::Meta(e),
        crate::gc::GcError::Snapshot(e) => FsckError::Snapshot(e),
    })?;
    let removed: HashSet<String> = collected
        .snapshots
        .iter()
        .map(|s| format!("snapshot {}/{}", s.snapshotter, s.key))
        .chain(collected.blobs.iter().map(|b| format!("blob {}", b.digest)))
        .collect();
    for f in &mut report.findings[first..] {
        if removed.contains(&f.subject) {
            f.repaired = Some("removed".into());
        }
    }
    Ok(())
}

fn snapshots(store: &Store, opts: &FsckOptions, report: &mut Report) -> Result<(), FsckError> {
    // Snapshots containers use: never removed by a repair.
    let used: HashSet<String> = store.db().read(|tx| {
        Ok(tx
            .containers()?
            .into_iter()
            .filter_map(|c| c.snapshot_key)
            .collect())
    })?;
    for name in SNAPSHOTTERS {
        if !store.root().join("snapshots").join(name).is_dir() {
            continue;
        }
        let sn = strata_snapshot::open(name, store.root(), store.db().clone())?;
        let check = sn.check()?;
        report.checked += store.db().read(|tx| tx.snapshots(name))?.len();
        let first = report.findings.len();
        for path in &check.unrecorded {
            report.add(
                Severity::Orphan,
                path.display().to_string(),
                format!("{name} snapshot directory without a record"),
            );
        }
        if opts.repair && !check.unrecorded.is_empty() {
            let removed: HashSet<PathBuf> = sn.cleanup()?.into_iter().collect();
            for f in &mut report.findings[first..] {
                if removed.contains(Path::new(&f.subject)) {
                    f.repaired = Some("removed".into());
                }
            }
        }
        for key in &check.missing {
            let f = report.add(
                Severity::Problem,
                format!("snapshot {name}/{key}"),
                "recorded, but its files are missing".into(),
            );
            if opts.repair {
                f.repaired = remove_with_children(&*sn, key, &used);
            }
        }
    }
    Ok(())
}

/// Removes the snapshot `key` and every snapshot on it, children first, unless a container
/// uses one of them; what a repair did, or `None`.
fn remove_with_children(
    sn: &dyn strata_snapshot::Snapshotter,
    key: &str,
    used: &HashSet<String>,
) -> Option<String> {
    let mut order = vec![key.to_owned()];
    let mut i = 0;
    while i < order.len() {
        let filter = strata_snapshot::Filter::all().parent(Some(&order[i]));
        let mut children = Vec::new();
        if let Err(e) = sn.walk(&filter, &mut |info| {
            children.push(info.name.clone());
            Ok(())
        }) {
            tracing::warn!("fsck: children of {key}: {e}");
            return None;
        }
        order.extend(children);
        i += 1;
    }
    if let Some(user) = order.iter().find(|k| used.contains(*k)) {
        tracing::warn!(
            "fsck: snapshot {key} is under container snapshot {user}: remove the container"
        );
        return None;
    }
    for k in order.iter().rev() {
        if let Err(e) = sn.remove(k) {
            tracing::warn!("fsck: remove snapshot {k}: {e}");
            return None;
        }
    }
    Some(format!(
        "record removed with {} snapshot(s) on it: pull or load the image again to unpack it",
        order.len() - 1
    ))
}

fn containers(store: &Store, opts: &FsckOptions, report: &mut Report) -> Result<(), FsckError> {
    let records = store.db().read(|tx| tx.containers())?;
    report.checked += records.len();
    let ids: HashSet<&str> = records.iter().map(|c| c.id.as_str()).collect();
    let base = store.root().join("containers");
    for c in &records {
        if crate::containers::dir(store.root(), &c.id)
            .join("config.json")
            .is_file()
        {
            continue;
        }
        // The record is written first, then the bundle: a create killed in between.
        let f = report.add(
            Severity::Orphan,
            format!("container {}", c.name),
            "an interrupted create: no bundle (config.json), it cannot start".into(),
        );
        if opts.repair {
            let removed = store
                .snapshotter()
                .map_err(|e| e.to_string())
                .and_then(|sn| {
                    crate::containers::lifecycle::remove(store, &*sn, c, true, true)
                        .map_err(|e| e.to_string())
                });
            match removed {
                Ok(()) => f.repaired = Some("container removed".into()),
                Err(e) => tracing::warn!("fsck: remove container {}: {e}", c.name),
            }
        }
    }
    let entries = match std::fs::read_dir(&base) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(FsckError::Io {
                what: "list",
                path: base,
                source,
            });
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ids.contains(name.as_str()) {
            continue;
        }
        let path = entry.path();
        let f = report.add(
            Severity::Orphan,
            path.display().to_string(),
            "container directory without a record".into(),
        );
        if opts.repair {
            let _ = crate::containers::rootfs::unmount(store.root(), &name);
            match strata_fs::remove_tree(&path) {
                Ok(()) => f.repaired = Some("removed".into()),
                Err(e) => tracing::warn!("fsck: remove {}: {e}", path.display()),
            }
        }
    }
    leaked_mounts(store, opts, report, &records)
}

/// Mounts under the store root that no running container holds.
fn leaked_mounts(
    store: &Store,
    opts: &FsckOptions,
    report: &mut Report,
    records: &[strata_metadata::ContainerRecord],
) -> Result<(), FsckError> {
    let root = std::fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().to_owned());
    let running: HashSet<PathBuf> = records
        .iter()
        .filter(|c| {
            strata_runtime::state::monitor_alive(&crate::containers::dir(store.root(), &c.id))
        })
        .map(|c| root.join("containers").join(&c.id))
        .collect();
    for m in strata_mount::mountinfo::mounts() {
        let point = m.point;
        if !point.starts_with(&root) || point == root {
            continue;
        }
        if running.iter().any(|c| point.starts_with(c)) {
            continue;
        }
        let f = report.add(
            Severity::Orphan,
            point.display().to_string(),
            "mounted under the store, but no running container holds it".into(),
        );
        if opts.repair {
            match strata_mount::unmount(&point, strata_mount::UnmountFlags::DETACH) {
                Ok(()) => f.repaired = Some("unmounted".into()),
                Err(e) => tracing::warn!("fsck: unmount {}: {e}", point.display()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
