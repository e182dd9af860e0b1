//! The metadata as a graph for [`super::mark::tricolor`], in the shape of containerd's
//! `core/metadata/gc.go`: nodes are images, containers, leases, content blobs, snapshots and
//! ingests; roots are every image and container, the live leases and the objects labelled
//! `containerd.io/gc.root`; references come from records (an image's target, a container's
//! snapshot, a snapshot's parent, a lease's resources) and from `gc.ref` labels.
//!
//! A blob without `gc.ref` labels (stores written before strata set them) references what
//! its bytes name: an index its manifests, a manifest its config and layers, a config the
//! chainIDs of its layers. Those bytes are read and parsed into a [`Parsed`] cache *outside*
//! the collector's write transaction (a read transaction's mark fills it, see
//! [`Source::Read`]); under the write transaction a blob the cache lacks is reported
//! ([`MetaGraph::unparsed`]) and the collection marks again, so a reference a writer made
//! in between is never missed and no blob is parsed while every writer waits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

use strata_metadata::{
    BlobRecord, ContainerRecord, ImageRecord, Labels, LeaseResource, MetaError, SnapshotRecord, Tx,
};
use strata_snapshot::SNAPSHOTTERS;
use strata_types::labels::{self, ContentEdge, GcRef};
use strata_types::oci::Manifest;
use strata_types::{Descriptor, Digest, chain_id};

use super::leases::LeaseState;
use crate::store::Store;
use crate::unpack::MAX_JSON_BLOB;

/// Something the collector marks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    Image(String),
    Container(String),
    Lease(String),
    Content(Digest),
    /// (snapshotter, key)
    Snapshot(String, String),
    Ingest(String),
}

impl From<&LeaseResource> for Node {
    fn from(r: &LeaseResource) -> Node {
        match r {
            LeaseResource::Content(d) => Node::Content(d.clone()),
            LeaseResource::Snapshot { snapshotter, key } => {
                Node::Snapshot(snapshotter.clone(), key.clone())
            }
            LeaseResource::Ingest(i) => Node::Ingest(i.clone()),
        }
    }
}

/// The blob and snapshot records, as one collection reads them.
pub(super) struct Records {
    pub blobs: Vec<BlobRecord>,
    pub snapshots: BTreeMap<&'static str, Vec<SnapshotRecord>>,
}

impl Records {
    pub fn read(tx: &Tx<'_>) -> Result<Records, MetaError> {
        let mut snapshots = BTreeMap::new();
        for sn in SNAPSHOTTERS {
            snapshots.insert(*sn, tx.snapshots(sn)?);
        }
        Ok(Records {
            blobs: tx.blobs()?,
            snapshots,
        })
    }

    /// The objects labelled `containerd.io/gc.root`.
    fn labelled_roots(&self) -> impl Iterator<Item = Node> + '_ {
        let blobs = self
            .blobs
            .iter()
            .filter(|b| b.labels.contains_key(labels::GC_ROOT))
            .map(|b| Node::Content(b.digest.clone()));
        let snapshots = self.snapshots.iter().flat_map(|(sn, recs)| {
            recs.iter()
                .filter(|s| s.labels.contains_key(labels::GC_ROOT))
                .map(|s| Node::Snapshot((*sn).to_owned(), s.key.clone()))
        });
        blobs.chain(snapshots)
    }
}

/// A reference with the media type its descriptor gave, when one did.
type Child = (Node, Option<String>);

/// What unlabelled blobs reference, from their bytes (content is immutable: an entry never
/// goes stale).
#[derive(Debug, Default)]
pub(super) struct Parsed(HashMap<Digest, Vec<Child>>);

impl Parsed {
    /// Reads and parses a blob (outside any write transaction).
    pub(super) fn read(&mut self, store: &Store, digest: &Digest) {
        self.0.insert(digest.clone(), parse_blob(store, digest));
    }
}

/// Where an unlabelled blob's references come from.
pub(super) enum Source<'a> {
    /// Read and parse the blob on a miss: only where no write transaction is open.
    Read(&'a Store),
    /// The cache only; a miss is recorded in [`MetaGraph::unparsed`].
    Cached,
}

/// The metadata's graph, read through one transaction.
pub(super) struct MetaGraph<'a, 't> {
    tx: &'a Tx<'t>,
    leases: HashMap<&'a str, &'a [LeaseResource]>,
    images: HashMap<String, ImageRecord>,
    containers: HashMap<String, ContainerRecord>,
    parsed: &'a mut Parsed,
    source: Source<'a>,
    /// Media types referring descriptors gave (a layer is never parsed).
    media_types: HashMap<Digest, String>,
    /// Blobs a layer or tar-split edge names: not JSON, never parsed.
    opaque: HashSet<Digest>,
    /// Unlabelled blobs met that the cache lacks ([`Source::Cached`]).
    pub unparsed: Vec<Digest>,
}

impl<'a, 't> MetaGraph<'a, 't> {
    pub fn new(
        tx: &'a Tx<'t>,
        leases: &'a LeaseState,
        parsed: &'a mut Parsed,
        source: Source<'a>,
    ) -> Result<MetaGraph<'a, 't>, MetaError> {
        Ok(MetaGraph {
            tx,
            leases: leases
                .live
                .iter()
                .map(|(id, r)| (id.as_str(), r.as_slice()))
                .collect(),
            images: tx
                .images()?
                .into_iter()
                .map(|i| (i.name.clone(), i))
                .collect(),
            containers: tx
                .containers()?
                .into_iter()
                .map(|c| (c.id.clone(), c))
                .collect(),
            parsed,
            source,
            media_types: HashMap::new(),
            opaque: HashSet::new(),
            unparsed: Vec::new(),
        })
    }

    /// Every image, container and live lease, and what is labelled a root.
    pub fn roots(&self, records: &Records) -> Vec<Node> {
        let mut roots: Vec<Node> = self
            .leases
            .keys()
            .map(|id| Node::Lease((*id).to_owned()))
            .collect();
        roots.extend(self.images.keys().map(|n| Node::Image(n.clone())));
        roots.extend(self.containers.keys().map(|id| Node::Container(id.clone())));
        roots.extend(records.labelled_roots());
        roots
    }

    /// What `node` keeps.
    pub fn refs(&mut self, node: &Node) -> Result<Vec<Node>, MetaError> {
        let mut out = Vec::new();
        match node {
            Node::Lease(id) => {
                if let Some(resources) = self.leases.get(id.as_str()) {
                    out.extend(resources.iter().map(Node::from));
                }
            }
            Node::Image(name) => {
                if let Some(image) = self.images.get(name) {
                    let labels = image.labels.clone();
                    let target = image.target.clone();
                    self.descriptor(&target, &mut out);
                    self.label_refs(&labels, &mut out);
                }
            }
            Node::Container(id) => {
                if let Some(c) = self.containers.get(id).cloned() {
                    self.container_refs(&c, &mut out)?;
                }
            }
            Node::Content(digest) => {
                if let Some(rec) = self.tx.blob(digest)?
                    && !self.label_refs(&rec.labels, &mut out)
                {
                    self.parsed_refs(digest, rec.size, &mut out);
                }
            }
            Node::Snapshot(sn, key) => {
                if let Some(rec) = self.tx.snapshot(sn, key)? {
                    if let Some(parent) = rec.parent {
                        out.push(Node::Snapshot(sn.clone(), parent));
                    }
                    self.label_refs(&rec.labels, &mut out);
                }
            }
            Node::Ingest(_) => {}
        }
        Ok(out)
    }

    /// A container keeps its snapshot, what its labels name, and the image it was created
    /// from, even when that image's name has moved since.
    fn container_refs(
        &mut self,
        c: &ContainerRecord,
        out: &mut Vec<Node>,
    ) -> Result<(), MetaError> {
        if let Some(key) = &c.snapshot_key {
            out.push(Node::Snapshot(c.snapshotter.clone(), key.clone()));
        }
        self.label_refs(&c.labels, out);
        if let Some(id) = c.labels.get(labels::IMAGE_ID)
            && let Ok(digest) = id.parse::<Digest>()
            && let Some(rec) = self.tx.images_by_target(&digest)?.first()
        {
            let target = rec.target.clone();
            self.descriptor(&target, out);
        } else if let Ok(image) = crate::images::resolve(self.tx, &c.image) {
            self.descriptor(image.target(), out);
        }
        Ok(())
    }

    fn descriptor(&mut self, d: &Descriptor, out: &mut Vec<Node>) {
        self.media_types
            .entry(d.digest.clone())
            .or_insert_with(|| d.media_type.clone());
        out.push(Node::Content(d.digest.clone()));
    }

    /// Follows an object's `gc.ref` labels; returns whether it had any.
    fn label_refs(&mut self, labels: &Labels, out: &mut Vec<Node>) -> bool {
        let mut any = false;
        for (k, v) in labels {
            match GcRef::parse(k) {
                Some(GcRef::Content(edge)) => {
                    any = true;
                    match v.parse::<Digest>() {
                        Ok(d) => {
                            if matches!(edge, ContentEdge::Layer(_) | ContentEdge::Split) {
                                self.opaque.insert(d.clone());
                            }
                            out.push(Node::Content(d));
                        }
                        Err(_) => tracing::debug!(label = k, value = v, "not a digest"),
                    }
                }
                Some(GcRef::Snapshot(edge)) => {
                    any = true;
                    out.push(Node::Snapshot(edge.snapshotter.to_owned(), v.clone()));
                }
                None => {}
            }
        }
        any
    }

    /// The references of a blob without `gc.ref` labels, from its bytes. Layers and big blobs
    /// are not read.
    fn parsed_refs(&mut self, digest: &Digest, size: u64, out: &mut Vec<Node>) {
        let layer = self
            .media_types
            .get(digest)
            .is_some_and(|m| strata_remote::media::is_layer(m));
        if layer || size > MAX_JSON_BLOB || self.opaque.contains(digest) {
            return;
        }
        if !self.parsed.0.contains_key(digest) {
            match self.source {
                Source::Read(store) => self.parsed.read(store, digest),
                Source::Cached => {
                    self.unparsed.push(digest.clone());
                    return;
                }
            }
        }
        for (node, media_type) in self.parsed.0.get(digest).into_iter().flatten() {
            if let (Node::Content(d), Some(m)) = (node, media_type) {
                self.media_types
                    .entry(d.clone())
                    .or_insert_with(|| m.clone());
            }
            out.push(node.clone());
        }
    }
}

/// What a blob's bytes reference: an index's manifests, a manifest's config and layers, a
/// config's chainIDs (in every snapshotter). Nothing for other blobs, or one that cannot be
/// read.
fn parse_blob(store: &Store, digest: &Digest) -> Vec<Child> {
    let mut bytes = Vec::new();
    let read = store
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
        return Vec::new();
    }
    if bytes.first() != Some(&b'{') {
        return Vec::new();
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    let described = |d: Descriptor| (Node::Content(d.digest), Some(d.media_type));
    if let Some(manifests) = value.get("manifests").and_then(|m| m.as_array()) {
        manifests
            .iter()
            .filter_map(|m| serde_json::from_value::<Descriptor>(m.clone()).ok())
            .map(described)
            .collect()
    } else if value.get("layers").is_some() && value.get("config").is_some() {
        serde_json::from_value::<Manifest>(value)
            .map(|m| {
                std::iter::once(m.config)
                    .chain(m.layers)
                    .map(described)
                    .collect()
            })
            .unwrap_or_default()
    } else if let Some(ids) = value
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(|d| d.as_array())
    {
        let diff_ids: Vec<Digest> = ids
            .iter()
            .filter_map(|d| d.as_str()?.parse().ok())
            .collect();
        (0..diff_ids.len())
            .filter_map(|i| chain_id(&diff_ids[..=i]))
            .flat_map(|chain| {
                SNAPSHOTTERS
                    .iter()
                    .map(move |sn| (Node::Snapshot((*sn).to_owned(), chain.to_string()), None))
            })
            .collect()
    } else {
        Vec::new()
    }
}
