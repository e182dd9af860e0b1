//! Disk accounting for `system df`: what images, and what nothing at all, hold on disk.
//!
//! ```text
//! image ─► index blob ─► manifest, config, layer blobs      content/ (compressed)
//!       └► chainIDs of its layers ─► committed snapshots    snapshots/ (unpacked)
//! ```
//!
//! Every blob and layer snapshot an image reaches is one *resource*, sized once: a blob by its
//! recorded size, a snapshot by its measured usage (stored at commit, see
//! [`strata_snapshot::Snapshotter::usage`], so this walks no trees). An image's SIZE is the sum
//! of its resources, its SHARED SIZE the part other images reach too, and the Images total
//! counts each resource once, so the totals add up to what `du` finds. Blobs, layer snapshots
//! and partial downloads that no image reaches are reported apart (`image prune`/`system
//! prune` reclaim them), with the compressed/unpacked split that shows the cost of keeping both.

use std::collections::{HashMap, HashSet};

use strata_metadata::{ImageRecord, MetaError};
use strata_snapshot::Snapshotter;
use strata_types::{Digest, Matcher};

use crate::images::{self, ImageSummary, Sizer};
use crate::store::Store;
use crate::unpack::UnpackError;

/// What takes space: a blob of the content store or a layer snapshot (by chainID).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Resource {
    Blob(Digest),
    Layer(Digest),
}

/// One image (one target; all its names).
#[derive(Debug, Clone)]
pub struct ImageUsage {
    pub summary: ImageSummary,
    /// Its records' names (dangling ones included).
    pub records: Vec<ImageRecord>,
    /// Bytes of its blobs and unpacked layers, each once.
    pub size: u64,
    /// The part of `size` that other images use too.
    pub shared_size: u64,
    /// How many containers use it.
    pub containers: usize,
}

impl ImageUsage {
    /// What removing this image alone would free.
    pub fn unique_size(&self) -> u64 {
        self.size - self.shared_size
    }
}

/// Bytes on disk split by where they live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    /// Blobs of the content store (compressed layers, manifests, configs, indexes).
    pub content: u64,
    /// Unpacked layer snapshots.
    pub unpacked: u64,
}

impl Split {
    pub fn total(&self) -> u64 {
        self.content + self.unpacked
    }
}

/// The images' part of the store.
#[derive(Debug, Clone, Default)]
pub struct ImagesUsage {
    /// In no particular order.
    pub images: Vec<ImageUsage>,
    /// Everything images reach, each blob and layer once.
    pub total: Split,
    /// What images no container uses hold alone: freed by removing them all.
    pub reclaimable: u64,
    /// Blobs and layer snapshots no image reaches (an interrupted pull's, a removed image's
    /// before garbage collection), and partial downloads (`ingests`).
    pub unreferenced: Split,
    pub ingests: u64,
    /// Compressed layer bytes not on disk (discarded after unpacking).
    pub discarded: u64,
}

impl ImagesUsage {
    /// How many images some container uses.
    pub fn active(&self) -> usize {
        self.images.iter().filter(|i| i.containers > 0).count()
    }
}

/// Accounts for every image of the store, and for what no image reaches.
pub fn images_usage(store: &Store, sn: Option<&dyn Snapshotter>) -> Result<ImagesUsage, DfError> {
    let (records, users) = store.db().read(images::records_and_users)?;
    let mut groups: HashMap<Digest, Vec<ImageRecord>> = HashMap::new();
    for rec in records {
        groups
            .entry(rec.target.digest.clone())
            .or_default()
            .push(rec);
    }
    let mut sizer = Sizer::new(store.content(), sn)?;
    let matcher = Matcher::host();
    // Each image's resources, and how many images reach each resource.
    let mut per_image = Vec::with_capacity(groups.len());
    let mut reach: HashMap<Resource, (u64, usize)> = HashMap::new();
    for (digest, records) in groups {
        let target = records[0].target.clone();
        let summary = sizer.summarize_lenient(&target, &matcher);
        let mut resources: HashMap<Resource, u64> = HashMap::new();
        if sizer.is_present(&target.digest) {
            resources.insert(Resource::Blob(target.digest.clone()), target.size);
        }
        for m in &summary.manifests {
            for (blob, size) in &m.blobs {
                resources.insert(Resource::Blob(blob.clone()), *size);
            }
            for chain in &m.chain_ids {
                if let Some(size) = sizer.usage(chain) {
                    resources.insert(Resource::Layer(chain.clone()), size);
                }
            }
        }
        for (r, size) in &resources {
            reach.entry(r.clone()).or_insert((*size, 0)).1 += 1;
        }
        let containers = users.get(&digest).copied().unwrap_or(0);
        per_image.push((summary, records, resources, containers));
    }

    let mut out = ImagesUsage::default();
    let mut in_use: HashSet<&Resource> = HashSet::new();
    for (r, (size, _)) in &reach {
        match r {
            Resource::Blob(_) => out.total.content += size,
            Resource::Layer(_) => out.total.unpacked += size,
        }
    }
    for (_, _, resources, containers) in &per_image {
        if *containers > 0 {
            in_use.extend(resources.keys());
        }
    }
    let used: u64 = in_use.iter().map(|r| reach[*r].0).sum();
    out.reclaimable = out.total.total() - used;
    for (summary, records, resources, containers) in per_image {
        let size = resources.values().sum();
        let shared_size = resources
            .iter()
            .filter(|(r, _)| reach.get(*r).is_some_and(|(_, n)| *n > 1))
            .map(|(_, s)| s)
            .sum();
        out.images.push(ImageUsage {
            summary,
            records,
            size,
            shared_size,
            containers,
        });
    }
    // What no image reaches.
    for (digest, size) in sizer.blobs() {
        if !reach.contains_key(&Resource::Blob(digest.clone())) {
            out.unreferenced.content += size;
        }
    }
    // Layers only (named by chainID): containers' snapshots and init layers are theirs.
    if let Some(layers) = sizer.layers() {
        out.unreferenced.unpacked = layers
            .filter(|(chain, _)| !reach.contains_key(&Resource::Layer((*chain).clone())))
            .map(|(_, size)| size)
            .sum();
    }
    out.ingests = store.content().ingests()?.iter().map(|i| i.offset).sum();
    out.discarded = sizer.discarded_bytes();
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum DfError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
}

#[cfg(test)]
mod tests;
