//! Collection, one backend at a time, of what the mark left white: leases that are over,
//! blob records then their files, snapshot records then their directories, ingests. The
//! record steps run inside the collector's write transaction; the file and directory steps
//! after it commits (the store's rule: a record is written before its file and deleted
//! before it).

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use strata_metadata::{BlobRecord, LeaseResource, MetaError, SnapshotRecord, Tx};
use strata_snapshot::SNAPSHOTTERS;
use strata_types::Digest;

use super::graph::Node;
use super::{GcError, GcOptions, RemovedBlob, RemovedIngest, RemovedSnapshot};
use crate::store::Store;

/// Deletes the leases that are over; returns their ids.
pub(super) fn leases(tx: &Tx<'_>, over: Vec<String>) -> Result<Vec<String>, MetaError> {
    for id in &over {
        tx.delete_lease(id)?;
    }
    Ok(over)
}

/// Deletes the records of unmarked blobs (their files go in [`content_files`]).
pub(super) fn content(
    tx: &Tx<'_>,
    blobs: Vec<BlobRecord>,
    marked: &HashSet<Node>,
) -> Result<Vec<RemovedBlob>, MetaError> {
    let mut removed = Vec::new();
    for b in blobs {
        if !marked.contains(&Node::Content(b.digest.clone())) {
            tx.delete_blob(&b.digest)?;
            removed.push(RemovedBlob {
                digest: b.digest,
                size: b.size,
                file_deleted: false,
            });
        }
    }
    Ok(removed)
}

/// After the records' commit: deletes the files of removed blobs that still have no record
/// (a writer may have recorded one again meanwhile) and notes which went.
pub(super) fn content_files(store: &Store, blobs: &mut [RemovedBlob]) -> Result<(), GcError> {
    let digests: Vec<Digest> = blobs.iter().map(|b| b.digest.clone()).collect();
    if digests.is_empty() {
        return Ok(());
    }
    let deleted: HashSet<Digest> = store
        .content()
        .delete_unrecorded_files(&digests)?
        .into_iter()
        .collect();
    for b in blobs {
        b.file_deleted = deleted.contains(&b.digest);
    }
    Ok(())
}

/// A removed snapshot and its record id (for measuring its directory).
pub(super) type SweptSnapshot = (RemovedSnapshot, i64);

/// Deletes the records of unmarked snapshots, children before parents (their directories go
/// in [`snapshot_dirs`]).
pub(super) fn snapshots(
    tx: &Tx<'_>,
    snapshots: impl IntoIterator<Item = (&'static str, Vec<SnapshotRecord>)>,
    marked: &HashSet<Node>,
) -> Result<Vec<SweptSnapshot>, MetaError> {
    let mut removed = Vec::new();
    for (sn, recs) in snapshots {
        // A marked snapshot's parent is marked, so the unmarked ones are closed under
        // children: remove leaves first, until none is left.
        let mut unmarked: HashMap<String, SnapshotRecord> = recs
            .into_iter()
            .filter(|r| !marked.contains(&Node::Snapshot(sn.to_owned(), r.key.clone())))
            .map(|r| (r.key.clone(), r))
            .collect();
        while !unmarked.is_empty() {
            let parents: HashSet<&str> = unmarked
                .values()
                .filter_map(|r| r.parent.as_deref())
                .collect();
            let leaves: Vec<String> = unmarked
                .keys()
                .filter(|k| !parents.contains(k.as_str()))
                .cloned()
                .collect();
            if leaves.is_empty() {
                return Err(MetaError::Corrupt {
                    what: "snapshot parent chain (a cycle)",
                    value: unmarked.keys().next().cloned().unwrap_or_default(),
                });
            }
            for key in leaves {
                let Some(rec) = unmarked.remove(&key) else {
                    continue;
                };
                tx.remove_snapshot(sn, &key)?;
                let snapshot = RemovedSnapshot {
                    snapshotter: sn.to_owned(),
                    key,
                    kind: rec.kind,
                    size: 0,
                };
                removed.push((snapshot, rec.id));
            }
        }
    }
    Ok(removed)
}

/// After the records' commit: measures each removed snapshot's directory, then lets every
/// snapshotter's `cleanup` remove the directories no record names; returns those.
pub(super) fn snapshot_dirs(
    store: &Store,
    removed: &mut [SweptSnapshot],
) -> Result<Vec<std::path::PathBuf>, GcError> {
    for (snap, id) in removed.iter_mut() {
        snap.size = strata_snapshot::unrecorded_usage(store.root(), &snap.snapshotter, *id)
            .map_or(0, |u| u.size);
    }
    let mut cleaned = Vec::new();
    for sn in SNAPSHOTTERS {
        if !store.root().join("snapshots").join(sn).is_dir() {
            continue;
        }
        match strata_snapshot::open(sn, store.root(), store.db().clone()) {
            Ok(s) => cleaned.extend(s.cleanup()?),
            // A btrfs store moved off btrfs: its records went, its directories wait for fsck.
            Err(e) => tracing::warn!("garbage collection: {e}"),
        }
    }
    Ok(cleaned)
}

/// Discards the ingests no live lease holds (unmarked) that only leases that are over held,
/// or, held by none, were untouched for the grace period. One being written is locked and
/// `abort` leaves it.
pub(super) fn ingests(
    tx: &Tx<'_>,
    store: &Store,
    marked: &HashSet<Node>,
    ended: &HashSet<String>,
    opts: &GcOptions,
    now: SystemTime,
) -> Result<Vec<RemovedIngest>, MetaError> {
    let mut removed = Vec::new();
    for ingest in store.content().ingests()? {
        if marked.contains(&Node::Ingest(ingest.r#ref.clone())) {
            continue;
        }
        let idle = now
            .duration_since(ingest.updated)
            .is_ok_and(|age| age >= opts.ingest_grace);
        if !ended.contains(&ingest.r#ref) && !idle {
            continue;
        }
        match store.content().local().abort(&ingest.r#ref) {
            Ok(()) => {
                tx.forget_resource(&LeaseResource::Ingest(ingest.r#ref.clone()))?;
                removed.push(RemovedIngest {
                    r#ref: ingest.r#ref,
                    size: ingest.offset,
                });
            }
            Err(e) => tracing::debug!(r#ref = ingest.r#ref, "ingest stays: {e}"),
        }
    }
    Ok(removed)
}
