//! Garbage collection: what no root reaches is removed from the content store and the
//! snapshotters, as containerd's metadata collector does, in its parts:
//!
//! - `gc/mark.rs`: the tri-colour mark, a pure function of the roots and each node's references;
//! - `gc/graph.rs`: the metadata as that graph (images, containers, leases, blobs, snapshots,
//!   ingests), and the cache of what unlabelled blobs reference;
//! - `gc/leases.rs`: which leases are live roots and which are over;
//! - `gc/sweep.rs`: collection per backend (leases, blob records and files, snapshot records and
//!   directories, ingests).
//!
//! The lease helpers at the top of this file are what flows use to protect their writes.
//!
//! ```text
//! roots                               edges (followed from every marked object)
//! ─────                               ─────
//! image records ── target ─────────►  blob labels  containerd.io/gc.ref.content[.*|/*] ─► blob
//! containers ──── snapshot ────────►               containerd.io/gc.ref.snapshot.<sn>[/*] ─► snapshot
//! unexpired leases of live owners:    snapshot ──── parent ─► snapshot (and its labels, as blobs')
//!   content, snapshots, ingests       unlabelled index / manifest / config (stores written before
//! containerd.io/gc.root labels          these labels): parsed ─► manifests, config + layers,
//!                                       every chainID of the diff_ids in every snapshotter
//! ```
//!
//! # Leases of dead processes
//!
//! A lease names the process that made it ([`owner`]). Once that process is gone, its lease
//! pins nothing: a killed pull's half-unpacked snapshot and its blobs go at the next
//! collection, not a day later. Its ingests (partial downloads) stay until the lease expires,
//! for the next pull to resume, unless the collection is asked not to keep them
//! ([`GcOptions::keep_resumable`]: `system prune` and `fsck --repair` free them too). A dead
//! owner's lease that holds no ingest is deleted.
//!
//! # Order of operations
//!
//! 0. **A read transaction** marks from the roots, reading and parsing the blobs without
//!    `gc.ref` labels it meets (a store written before strata set them), so that the write
//!    transaction reads no blob: writers do not wait on it.
//! 1. **One write transaction** (`BEGIN IMMEDIATE`: no pull, load or rmi can record anything
//!    meanwhile) marks from the roots again, with the parsed references of step 0; if it meets
//!    an unlabelled blob step 0 did not (a writer referenced it in between) it changes nothing
//!    and the collection goes back to step 0 (after three tries it keeps every blob
//!    and snapshot this time). Then it deletes expired leases (their resources go with
//!    them), unmarked blob records, unmarked snapshot records (children before parents), and
//!    discards the ingests no live lease holds that an expired lease held or nobody touched for
//!    the grace period (an ingest a process is writing is locked, and stays). A pull adds each
//!    blob, ingest and snapshot to its lease in its own transactions *before* it writes it, so
//!    whatever it has written is marked whichever transaction comes first.
//! 2. **Blob files**, after the commit, in a second write transaction that deletes only files
//!    that still have no record: a writer that found the file and is recording it again
//!    checks that the file exists under the same lock, so a blob is never recorded without its
//!    file. A crash in between leaves orphan files, never records without data.
//! 3. **Snapshot directories**: the usage of each removed record's directory is measured, then
//!    each snapshotter's `cleanup` removes the directories no record names (the snapshotter's
//!    own crash-safe protocol for that).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use strata_metadata::{Labels, LeaseResource, MetaError, SnapshotKind, Tx};
use strata_types::labels::{ContentEdge, SnapshotEdge};
use strata_types::oci::Manifest;
use strata_types::{Digest, ErrorKind};

use crate::store::Store;

mod graph;
mod leases;
mod mark;
mod owner;
mod sweep;

use graph::{MetaGraph, Node, Parsed, Records, Source};
pub(crate) use leases::{LeaseState, read_leases};
pub use owner::{owner_dead, owner_labels, owner_pid};

/// How long an ingest no lease holds is left alone after its last write.
pub const INGEST_GRACE: Duration = Duration::from_secs(3600);
/// Starts a lease `<prefix>/<unique>` of this process (see [`owner`]) that expires after
/// `expiry`; it ends when the guard goes (see [`strata_metadata::LeaseGuard`]).
pub fn lease(
    db: &std::sync::Arc<strata_metadata::Db>,
    prefix: &str,
    expiry: Duration,
) -> Result<strata_metadata::LeaseGuard, MetaError> {
    strata_metadata::LeaseGuard::create(db, prefix, expiry, &owner_labels())
}

/// Garbage-collection settings.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Ingests that no lease holds are discarded once untouched this long.
    pub ingest_grace: Duration,
    /// Keep the ingests of leases whose process died until those leases expire, so that a
    /// pull can resume them; false discards them now (see the module doc).
    pub keep_resumable: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            ingest_grace: INGEST_GRACE,
            keep_resumable: true,
        }
    }
}

impl GcOptions {
    /// An explicit cleanup (`system prune`, `fsck --repair`): partial downloads nobody is
    /// writing go too, whether idle or left by a process that died.
    pub fn free_everything() -> GcOptions {
        GcOptions {
            ingest_grace: Duration::ZERO,
            keep_resumable: false,
        }
    }
}

/// A blob the collector removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedBlob {
    pub digest: Digest,
    pub size: u64,
    /// Its file was deleted (false: already gone, or re-recorded by a writer meanwhile).
    pub file_deleted: bool,
}

/// A snapshot the collector removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedSnapshot {
    pub snapshotter: String,
    pub key: String,
    pub kind: SnapshotKind,
    /// Disk usage of its directory just before cleanup removed it.
    pub size: u64,
}

/// An ingest the collector discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedIngest {
    pub r#ref: String,
    pub size: u64,
}

/// What one collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    pub leases: Vec<String>,
    pub blobs: Vec<RemovedBlob>,
    pub snapshots: Vec<RemovedSnapshot>,
    pub ingests: Vec<RemovedIngest>,
    /// Directories the snapshotters' cleanup removed (the removed snapshots', and leftovers
    /// of crashed operations).
    pub cleaned: Vec<PathBuf>,
}

impl Collected {
    /// Bytes freed: blob files, snapshot directories, ingest data.
    pub fn reclaimed(&self) -> u64 {
        let blobs: u64 = self
            .blobs
            .iter()
            .filter(|b| b.file_deleted)
            .map(|b| b.size)
            .sum();
        let snaps: u64 = self.snapshots.iter().map(|s| s.size).sum();
        let ingests: u64 = self.ingests.iter().map(|i| i.size).sum();
        blobs + snaps + ingests
    }

    /// The unpacked layers removed: committed snapshots named by a chainID, as Docker lists
    /// the layers an `rmi` deletes.
    pub fn removed_layers(&self) -> impl Iterator<Item = &str> {
        self.snapshots
            .iter()
            .filter(|s| s.kind == SnapshotKind::Committed && s.key.parse::<Digest>().is_ok())
            .map(|s| s.key.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcError {
    #[error("garbage collection")]
    Meta(#[from] MetaError),
    #[error("garbage collection")]
    Snapshot(#[from] strata_snapshot::SnapshotError),
}

impl GcError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            GcError::Meta(e) => e.kind(),
            GcError::Snapshot(e) => e.kind(),
        }
    }
}

/// How many times a collection marks again after writers referenced blobs without labels
/// while it read, before it keeps every blob and snapshot this time (see [`sweep`]).
const MARK_ATTEMPTS: usize = 3;

/// Runs one collection over the whole store: every snapshotter, the content store, ingests
/// and leases. Safe beside pulls, loads and other collections in other processes.
pub fn collect(store: &Store, opts: &GcOptions) -> Result<Collected, GcError> {
    let mut parsed = Parsed::default();
    let mut attempt = 1;
    let swept = loop {
        // Unlabelled blobs are read and parsed here, in a read transaction, so that the
        // write transaction's mark reads records only.
        store.db().read(|tx| {
            let leases = read_leases(tx, SystemTime::now(), opts.keep_resumable)?;
            let records = Records::read(tx)?;
            mark(tx, &leases, &records, &mut parsed, Source::Read(store)).map(drop)
        })?;
        let last = attempt == MARK_ATTEMPTS;
        match store
            .db()
            .write(|tx| sweep(tx, store, opts, &mut parsed, last))?
        {
            Sweep::Done(swept) => break swept,
            Sweep::Unparsed(digests) => {
                tracing::debug!(
                    ?digests,
                    "unlabelled blobs referenced meanwhile: marking again"
                );
            }
        }
        attempt += 1;
    };
    let Swept {
        mut collected,
        mut snapshots,
    } = swept;
    sweep::content_files(store, &mut collected.blobs)?;
    collected.cleaned = sweep::snapshot_dirs(store, &mut snapshots)?;
    collected.snapshots = snapshots.into_iter().map(|(s, _)| s).collect();
    tracing::debug!(
        leases = collected.leases.len(),
        blobs = collected.blobs.len(),
        snapshots = collected.snapshots.len(),
        ingests = collected.ingests.len(),
        reclaimed = collected.reclaimed(),
        "garbage collected"
    );
    Ok(collected)
}

/// The mark phase: every node the roots reach, and the unlabelled blobs met that `parsed`
/// lacks (always none with [`Source::Read`]).
fn mark(
    tx: &Tx<'_>,
    leases: &LeaseState,
    records: &Records,
    parsed: &mut Parsed,
    source: Source<'_>,
) -> Result<(HashSet<Node>, Vec<Digest>), MetaError> {
    let mut graph = MetaGraph::new(tx, leases, parsed, source)?;
    let roots = graph.roots(records);
    let marked = mark::tricolor(roots, |n| graph.refs(n))?;
    Ok((marked, graph.unparsed))
}

/// What leases that are over (expired, or of a process that died) left behind and nothing
/// else keeps: half-unpacked snapshots, blobs, partial downloads (those no live lease holds),
/// each with its lease. What the next collection with [`GcOptions::free_everything`] removes;
/// `fsck` reports them.
pub fn leftovers(store: &Store) -> Result<Vec<(strata_metadata::Lease, LeaseResource)>, MetaError> {
    store.db().read(|tx| {
        let leases = read_leases(tx, SystemTime::now(), false)?;
        let records = Records::read(tx)?;
        // A read transaction: blobs may be parsed as the mark meets them.
        let (marked, _) = mark(
            tx,
            &leases,
            &records,
            &mut Parsed::default(),
            Source::Read(store),
        )?;
        let recorded = |sn: &str, key: &str| {
            records
                .snapshots
                .get(sn)
                .is_some_and(|recs| recs.iter().any(|r| r.key == key))
        };
        Ok(leases
            .left
            .into_iter()
            .filter(|(_, r)| match r {
                LeaseResource::Content(d) => {
                    !marked.contains(&Node::Content(d.clone()))
                        && records.blobs.iter().any(|b| b.digest == *d)
                }
                LeaseResource::Snapshot { snapshotter, key } => {
                    !marked.contains(&Node::Snapshot(snapshotter.clone(), key.clone()))
                        && recorded(snapshotter, key)
                }
                LeaseResource::Ingest(i) => leases.ended_ingests.contains(i),
            })
            .collect())
    })
}

/// What the write transaction decided, for the steps after it.
struct Swept {
    collected: Collected,
    /// The removed snapshots, with their record ids.
    snapshots: Vec<sweep::SweptSnapshot>,
}

enum Sweep {
    Done(Swept),
    /// Blobs without `gc.ref` labels a writer referenced since the read transaction's
    /// mark: mark again (nothing was changed).
    Unparsed(Vec<Digest>),
}

/// Mark and sweep the records, inside the collection's write transaction. No blob is read
/// here: an unlabelled blob `parsed` lacks ends the attempt, unless it is the `last`, which
/// then keeps every blob and snapshot (it cannot tell what that blob keeps).
fn sweep(
    tx: &Tx<'_>,
    store: &Store,
    opts: &GcOptions,
    parsed: &mut Parsed,
    last: bool,
) -> Result<Sweep, MetaError> {
    let now = SystemTime::now();
    let leases = read_leases(tx, now, opts.keep_resumable)?;
    let records = Records::read(tx)?;
    let (marked, unparsed) = mark(tx, &leases, &records, parsed, Source::Cached)?;
    let complete = unparsed.is_empty();
    if !complete && !last {
        return Ok(Sweep::Unparsed(unparsed));
    }
    if !complete {
        tracing::warn!(
            blobs = unparsed.len(),
            "garbage collection keeps every blob and snapshot this time: blobs without labels \
             keep being referenced while it runs"
        );
    }
    let Records { blobs, snapshots } = records;

    // Leases that are over first: nothing they hold is marked through them.
    let mut collected = Collected {
        leases: sweep::leases(tx, leases.over)?,
        ..Collected::default()
    };
    let mut swept_snapshots = Vec::new();
    if complete {
        collected.blobs = sweep::content(tx, blobs, &marked)?;
        swept_snapshots = sweep::snapshots(tx, snapshots, &marked)?;
    }
    collected.ingests = sweep::ingests(tx, store, &marked, &leases.ended_ingests, opts, now)?;
    Ok(Sweep::Done(Swept {
        collected,
        snapshots: swept_snapshots,
    }))
}

/// The labels of an index: an edge to each of its manifests (those this store keeps).
pub fn index_labels<'a>(manifests: impl IntoIterator<Item = &'a Digest>) -> Labels {
    manifests
        .into_iter()
        .enumerate()
        .map(|(i, d)| (ContentEdge::Manifest(i).key(), d.to_string()))
        .collect()
}

/// The labels of a manifest: edges to its config and each layer.
pub fn manifest_labels(manifest: &Manifest) -> Labels {
    let mut labels = Labels::new();
    labels.insert(
        ContentEdge::Config.key(),
        manifest.config.digest.to_string(),
    );
    for (i, l) in manifest.layers.iter().enumerate() {
        labels.insert(ContentEdge::Layer(i).key(), l.digest.to_string());
    }
    labels
}

/// The labels of a config unpacked by `snapshotter`: an edge to its top snapshot. (A
/// snapshotter's name is one of [`strata_snapshot::SNAPSHOTTERS`], which always make a key.)
pub fn config_labels(snapshotter: &str, top: Option<&Digest>) -> Labels {
    top.zip(SnapshotEdge::new(snapshotter).key())
        .map(|(t, key)| (key, t.to_string()))
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests;
