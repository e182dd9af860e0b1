//! Garbage collection: what no root reaches is removed from the content store and the
//! snapshotters, as containerd's metadata collector does.
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
//! 1. **One write transaction** (`BEGIN IMMEDIATE`: no pull, load or rmi can record anything
//!    meanwhile) marks from the roots, then deletes expired leases (their resources go with
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use strata_metadata::{Labels, LeaseResource, MetaError, SnapshotKind, Tx};
use strata_snapshot::SNAPSHOTTERS;
use strata_types::oci::Manifest;
use strata_types::{Digest, ErrorKind, chain_id};

use crate::store::Store;
use crate::unpack::MAX_JSON_BLOB;

mod owner;

pub use owner::{owner_dead, owner_labels, owner_pid};

/// Any object carrying this label is a root.
pub const LABEL_ROOT: &str = "containerd.io/gc.root";
/// `containerd.io/gc.ref.content[.name|/name]` = digest: the object keeps that blob.
pub const LABEL_REF_CONTENT: &str = "containerd.io/gc.ref.content";
/// `containerd.io/gc.ref.snapshot.<snapshotter>[/name]` = key: the object keeps that snapshot.
pub const LABEL_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.";
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

/// Something the collector marks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Node {
    Content(Digest),
    Snapshot(String, String),
}

/// The mark phase: reachable objects from the roots.
struct Marker<'a, 't> {
    tx: &'a Tx<'t>,
    store: &'a Store,
    marked: HashSet<Node>,
    /// To visit, with the media type the referring descriptor gave (when known).
    queue: Vec<(Node, Option<String>)>,
}

impl Marker<'_, '_> {
    fn mark(&mut self, node: Node, media_type: Option<&str>) {
        if self.marked.insert(node.clone()) {
            self.queue.push((node, media_type.map(str::to_owned)));
        }
    }

    /// Follows the reference labels of an object; returns whether it had any.
    fn labels(&mut self, labels: &Labels) -> bool {
        let mut any = false;
        for (k, v) in labels {
            if let Some(rest) = k.strip_prefix(LABEL_REF_CONTENT)
                && (rest.is_empty() || rest.starts_with('.') || rest.starts_with('/'))
            {
                any = true;
                match v.parse::<Digest>() {
                    Ok(d) => self.mark(Node::Content(d), None),
                    Err(_) => tracing::debug!(label = k, value = v, "not a digest"),
                }
            } else if let Some(rest) = k.strip_prefix(LABEL_REF_SNAPSHOT) {
                any = true;
                let sn = rest.split('/').next().unwrap_or(rest);
                self.mark(Node::Snapshot(sn.to_owned(), v.clone()), None);
            }
        }
        any
    }

    fn run(&mut self) -> Result<(), MetaError> {
        while let Some((node, media_type)) = self.queue.pop() {
            match node {
                Node::Content(digest) => {
                    let Some(rec) = self.tx.blob(&digest)? else {
                        continue;
                    };
                    if !self.labels(&rec.labels) {
                        self.parse_refs(&digest, rec.size, media_type.as_deref());
                    }
                }
                Node::Snapshot(sn, key) => {
                    let Some(rec) = self.tx.snapshot(&sn, &key)? else {
                        continue;
                    };
                    if let Some(parent) = rec.parent {
                        self.mark(Node::Snapshot(sn, parent), None);
                    }
                    self.labels(&rec.labels);
                }
            }
        }
        Ok(())
    }

    /// The references of a blob without reference labels, read from the blob itself: an
    /// index's manifests, a manifest's config and layers, a config's chainIDs. Layers and big
    /// blobs are not read.
    fn parse_refs(&mut self, digest: &Digest, size: u64, media_type: Option<&str>) {
        if media_type.is_some_and(strata_remote::media::is_layer) || size > MAX_JSON_BLOB {
            return;
        }
        let mut bytes = Vec::new();
        let read = self
            .store
            .content()
            .local()
            .reader(digest)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                b.take(MAX_JSON_BLOB)
                    .read_to_end(&mut bytes)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = read {
            tracing::warn!(%digest, "garbage collection cannot read a referenced blob: {e}");
            return;
        }
        if bytes.first() != Some(&b'{') {
            return;
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return;
        };
        if let Some(manifests) = value.get("manifests").and_then(|m| m.as_array()) {
            for m in manifests {
                if let Ok(d) = serde_json::from_value::<strata_types::Descriptor>(m.clone()) {
                    self.mark(Node::Content(d.digest), Some(&d.media_type));
                }
            }
        } else if value.get("layers").is_some() && value.get("config").is_some() {
            if let Ok(m) = serde_json::from_value::<Manifest>(value) {
                self.mark(Node::Content(m.config.digest), Some(&m.config.media_type));
                for l in m.layers {
                    self.mark(Node::Content(l.digest), Some(&l.media_type));
                }
            }
        } else if let Some(ids) = value
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .and_then(|d| d.as_array())
        {
            let diff_ids: Vec<Digest> = ids
                .iter()
                .filter_map(|d| d.as_str()?.parse().ok())
                .collect();
            for i in 0..diff_ids.len() {
                if let Some(chain) = chain_id(&diff_ids[..=i]) {
                    for sn in SNAPSHOTTERS {
                        self.mark(Node::Snapshot((*sn).to_owned(), chain.to_string()), None);
                    }
                }
            }
        }
    }
}

/// What the transaction decided, for the steps after it.
struct Swept {
    collected: Collected,
    /// (snapshotter, record id) of each removed snapshot, in `collected.snapshots` order.
    snapshot_ids: Vec<(String, i64)>,
}

/// Runs one collection over the whole store: every snapshotter, the content store, ingests
/// and leases. Safe beside pulls, loads and other collections in other processes.
pub fn collect(store: &Store, opts: &GcOptions) -> Result<Collected, GcError> {
    let swept = store.db().write(|tx| sweep(tx, store, opts))?;
    let Swept {
        mut collected,
        snapshot_ids,
    } = swept;

    let digests: Vec<Digest> = collected.blobs.iter().map(|b| b.digest.clone()).collect();
    if !digests.is_empty() {
        let deleted: HashSet<Digest> = store
            .content()
            .delete_unrecorded_files(&digests)?
            .into_iter()
            .collect();
        for b in &mut collected.blobs {
            b.file_deleted = deleted.contains(&b.digest);
        }
    }

    for (snap, (sn, id)) in collected.snapshots.iter_mut().zip(&snapshot_ids) {
        snap.size = strata_snapshot::unrecorded_usage(store.root(), sn, *id).map_or(0, |u| u.size);
    }
    for sn in SNAPSHOTTERS {
        if !store.root().join("snapshots").join(sn).is_dir() {
            continue;
        }
        match strata_snapshot::open(sn, store.root(), store.db().clone()) {
            Ok(s) => collected.cleaned.extend(s.cleanup()?),
            // A btrfs store moved off btrfs: its records went, its directories wait for fsck.
            Err(e) => tracing::warn!("garbage collection: {e}"),
        }
    }
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

/// The blob and snapshot records, as one collection reads them.
struct Records {
    blobs: Vec<strata_metadata::BlobRecord>,
    snapshots: BTreeMap<&'static str, Vec<strata_metadata::SnapshotRecord>>,
}

impl Records {
    fn read(tx: &Tx<'_>) -> Result<Records, MetaError> {
        let mut snapshots = BTreeMap::new();
        for sn in SNAPSHOTTERS {
            snapshots.insert(*sn, tx.snapshots(sn)?);
        }
        Ok(Records {
            blobs: tx.blobs()?,
            snapshots,
        })
    }
}

/// The mark phase: everything the roots reach.
fn mark(
    tx: &Tx<'_>,
    store: &Store,
    leases: &LeaseState,
    records: &Records,
) -> Result<HashSet<Node>, MetaError> {
    let mut marker = Marker {
        tx,
        store,
        marked: HashSet::new(),
        queue: Vec::new(),
    };
    for r in &leases.roots {
        match r {
            LeaseResource::Content(d) => marker.mark(Node::Content(d.clone()), None),
            LeaseResource::Snapshot { snapshotter, key } => {
                marker.mark(Node::Snapshot(snapshotter.clone(), key.clone()), None)
            }
            LeaseResource::Ingest(_) => {}
        }
    }
    for image in tx.images()? {
        marker.mark(
            Node::Content(image.target.digest.clone()),
            Some(&image.target.media_type),
        );
        marker.labels(&image.labels);
    }
    for c in tx.containers()? {
        if let Some(key) = &c.snapshot_key {
            marker.mark(Node::Snapshot(c.snapshotter.clone(), key.clone()), None);
        }
        marker.labels(&c.labels);
        // The image it was created from, even when its name has moved since.
        if let Some(id) = c.labels.get(crate::containers::create::LABEL_IMAGE_ID)
            && let Ok(digest) = id.parse::<Digest>()
            && let Some(rec) = tx.images_by_target(&digest)?.first()
        {
            marker.mark(Node::Content(digest), Some(&rec.target.media_type));
        } else if let Ok(image) = crate::images::resolve(tx, &c.image) {
            let target = image.target();
            marker.mark(
                Node::Content(target.digest.clone()),
                Some(&target.media_type),
            );
        }
    }
    for b in &records.blobs {
        if b.labels.contains_key(LABEL_ROOT) {
            marker.mark(Node::Content(b.digest.clone()), None);
        }
    }
    for (sn, recs) in &records.snapshots {
        for s in recs {
            if s.labels.contains_key(LABEL_ROOT) {
                marker.mark(Node::Snapshot((*sn).to_owned(), s.key.clone()), None);
            }
        }
    }
    marker.run()?;
    Ok(marker.marked)
}

/// What leases that are over (expired, or of a process that died) left behind and nothing
/// else keeps: half-unpacked snapshots, blobs, partial downloads (those no live lease holds),
/// each with its lease. What the next collection with [`GcOptions::free_everything`] removes;
/// `fsck` reports them.
pub fn leftovers(store: &Store) -> Result<Vec<(strata_metadata::Lease, LeaseResource)>, MetaError> {
    store.db().read(|tx| {
        let leases = read_leases(tx, SystemTime::now(), false)?;
        let records = Records::read(tx)?;
        let marked = mark(tx, store, &leases, &records)?;
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

/// Mark and sweep the records, inside the collection's write transaction.
fn sweep(tx: &Tx<'_>, store: &Store, opts: &GcOptions) -> Result<Swept, MetaError> {
    let now = SystemTime::now();
    let leases = read_leases(tx, now, opts.keep_resumable)?;
    let records = Records::read(tx)?;
    let marked = mark(tx, store, &leases, &records)?;
    let Records { blobs, snapshots } = records;

    // Sweep. Leases that are over first: nothing they hold is marked through them.
    let mut collected = Collected::default();
    for id in leases.over {
        tx.delete_lease(&id)?;
        collected.leases.push(id);
    }
    for b in blobs {
        if !marked.contains(&Node::Content(b.digest.clone())) {
            tx.delete_blob(&b.digest)?;
            collected.blobs.push(RemovedBlob {
                digest: b.digest,
                size: b.size,
                file_deleted: false,
            });
        }
    }
    let mut snapshot_ids = Vec::new();
    for (sn, recs) in snapshots {
        // A marked snapshot's parent is marked, so the unmarked ones are closed under
        // children: remove leaves first, until none is left.
        let mut unmarked: HashMap<String, _> = recs
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
                snapshot_ids.push((sn.to_owned(), rec.id));
                collected.snapshots.push(RemovedSnapshot {
                    snapshotter: sn.to_owned(),
                    key,
                    kind: rec.kind,
                    size: 0,
                });
            }
        }
    }

    // Ingests: kept while a live lease holds them; discarded when only an expired lease did,
    // or, held by none, once untouched for the grace period. One being written is locked and
    // `abort` leaves it.
    for ingest in store.content().ingests()? {
        if leases.live_ingests.contains(&ingest.r#ref) {
            continue;
        }
        let idle = now
            .duration_since(ingest.updated)
            .is_ok_and(|age| age >= opts.ingest_grace);
        if !leases.ended_ingests.contains(&ingest.r#ref) && !idle {
            continue;
        }
        match store.content().local().abort(&ingest.r#ref) {
            Ok(()) => {
                tx.forget_resource(&LeaseResource::Ingest(ingest.r#ref.clone()))?;
                collected.ingests.push(RemovedIngest {
                    r#ref: ingest.r#ref,
                    size: ingest.offset,
                });
            }
            Err(e) => tracing::debug!(r#ref = ingest.r#ref, "ingest stays: {e}"),
        }
    }
    Ok(Swept {
        collected,
        snapshot_ids,
    })
}

/// What the leases say, for one collection.
#[derive(Debug, Default)]
pub(crate) struct LeaseState {
    /// What live leases hold, ingests aside.
    pub roots: Vec<LeaseResource>,
    /// Ingests a live lease holds (or a dead owner's, kept resumable).
    pub live_ingests: HashSet<String>,
    /// Ingests only leases that are over held.
    pub ended_ingests: HashSet<String>,
    /// Leases that are over (expired, or of a dead owner and holding nothing kept): deleted.
    pub over: Vec<String>,
    /// What leases that are over (or of a dead owner) held, by lease: for `fsck`.
    pub left: Vec<(strata_metadata::Lease, LeaseResource)>,
}

/// Reads the leases: which are roots, which are over. A lease is live until it expires or
/// its owner dies (see the module doc); with `keep_resumable`, a dead owner's ingests stay
/// live until the expiry, and so does the lease that holds them.
pub(crate) fn read_leases(
    tx: &Tx<'_>,
    now: SystemTime,
    keep_resumable: bool,
) -> Result<LeaseState, MetaError> {
    let mut state = LeaseState::default();
    for lease in tx.leases()? {
        let expired = lease.expires.is_some_and(|e| e <= now);
        let dead = !expired && owner_dead(&lease.labels);
        let resources = tx.lease_resources(&lease.id)?;
        let mut kept = false;
        for r in resources {
            match r {
                LeaseResource::Ingest(i) if !expired && (!dead || keep_resumable) => {
                    kept |= dead;
                    state.live_ingests.insert(i);
                }
                LeaseResource::Ingest(i) => {
                    state.ended_ingests.insert(i.clone());
                    state.left.push((lease.clone(), LeaseResource::Ingest(i)));
                }
                r if expired || dead => state.left.push((lease.clone(), r)),
                r => state.roots.push(r),
            }
        }
        if expired || (dead && !kept) {
            state.over.push(lease.id);
        }
    }
    // An ingest a live lease holds is not over because a dead one held it too.
    state
        .ended_ingests
        .retain(|i| !state.live_ingests.contains(i));
    Ok(state)
}

/// The labels of an index: an edge to each of its manifests (those this store keeps).
pub fn index_labels<'a>(manifests: impl IntoIterator<Item = &'a Digest>) -> Labels {
    manifests
        .into_iter()
        .enumerate()
        .map(|(i, d)| (format!("{LABEL_REF_CONTENT}.m.{i}"), d.to_string()))
        .collect()
}

/// The labels of a manifest: edges to its config and each layer.
pub fn manifest_labels(manifest: &Manifest) -> Labels {
    let mut labels = Labels::new();
    labels.insert(
        format!("{LABEL_REF_CONTENT}.config"),
        manifest.config.digest.to_string(),
    );
    for (i, l) in manifest.layers.iter().enumerate() {
        labels.insert(format!("{LABEL_REF_CONTENT}.l.{i}"), l.digest.to_string());
    }
    labels
}

/// The labels of a config unpacked by `snapshotter`: an edge to its top snapshot.
pub fn config_labels(snapshotter: &str, top: Option<&Digest>) -> Labels {
    top.map(|t| (format!("{LABEL_REF_SNAPSHOT}{snapshotter}"), t.to_string()))
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests;
