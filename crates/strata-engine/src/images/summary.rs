//! What an image is made of and how much space it takes: each manifest of its index (or the
//! one manifest), with the bytes of its blobs present in the content store and the unpacked
//! size of its layers, as Docker 29 with the containerd image store counts them.

use std::collections::HashMap;

use strata_metadata::ContentStore;
use strata_remote::media::{is_index, is_manifest};
use strata_snapshot::Snapshotter;
use strata_types::oci::{ImageConfig, Index, IndexEntry, Manifest};
use strata_types::{Descriptor, Digest, Matcher, Platform, chain_id, is_attestation};

use crate::unpack::{UnpackError, read_json, read_listed_json};

/// The annotation on an attestation entry naming the manifest it describes.
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// The manifest for `platform`: `target` itself when it is a manifest, else the best match in
/// its index (never an attestation); `None` when nothing matches or `target` is neither.
pub fn platform_manifest(
    content: &ContentStore,
    target: &Descriptor,
    platform: &Matcher,
) -> Result<Option<Descriptor>, UnpackError> {
    if is_manifest(&target.media_type) {
        return Ok(Some(target.clone()));
    }
    if !is_index(&target.media_type) {
        return Ok(None);
    }
    let (index, _): (Index, _) = read_json(content, "index", target)?;
    let order = platform.order(
        index
            .manifests
            .iter()
            .map(|e| (e.platform.as_ref(), &e.descriptor.annotations)),
    );
    Ok(order
        .first()
        .map(|&i| index.manifests[i].descriptor.clone())
        .filter(|d| is_manifest(&d.media_type)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestKind {
    Image,
    /// A BuildKit attestation (provenance, SBOM) for the manifest `subject`.
    Attestation {
        subject: Option<Digest>,
    },
}

/// One manifest of an image.
#[derive(Debug, Clone)]
pub struct ManifestSummary {
    pub descriptor: Descriptor,
    pub kind: ManifestKind,
    /// From the index entry, else from the config.
    pub platform: Option<Platform>,
    /// The manifest, its config and all its layers are in the content store.
    pub available: bool,
    /// Bytes of the manifest, config and layer blobs present.
    pub content_size: u64,
    /// The manifest, config and layer blobs present, with their sizes: what
    /// `content_size` counts, for accounting that counts a blob shared by images once.
    pub blobs: Vec<(Digest, u64)>,
    /// The chain's snapshots' usage, when its top snapshot exists.
    pub unpacked_size: u64,
    /// The top snapshot (the chainID of all layers) exists.
    pub unpacked: bool,
    pub config: Option<ImageConfig>,
    pub chain_ids: Vec<Digest>,
}

impl ManifestSummary {
    pub fn size(&self) -> u64 {
        self.content_size + self.unpacked_size
    }

    pub fn platform_string(&self) -> String {
        self.platform
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), |p| p.normalize().to_string())
    }
}

/// An image: its target and manifests.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    pub target: Descriptor,
    pub manifests: Vec<ManifestSummary>,
    /// The available image manifest that best matches the platform asked for (or any
    /// available one when none matches).
    pub best: Option<usize>,
}

impl ImageSummary {
    pub fn best(&self) -> Option<&ManifestSummary> {
        self.best.map(|i| &self.manifests[i])
    }

    pub fn content_size(&self) -> u64 {
        self.manifests.iter().map(|m| m.content_size).sum()
    }

    pub fn unpacked_size(&self) -> u64 {
        self.manifests.iter().map(|m| m.unpacked_size).sum()
    }

    /// Docker's image `Size`: content plus unpacked size of every platform.
    pub fn size(&self) -> u64 {
        self.content_size() + self.unpacked_size()
    }

    /// The platform of the image manifest `digest` (for an attestation's subject).
    pub fn platform_of(&self, digest: &Digest) -> Option<String> {
        self.manifests
            .iter()
            .find(|m| m.descriptor.digest == *digest)
            .map(ManifestSummary::platform_string)
    }
}

/// Summarizes images, remembering blob presence and snapshot usage across images.
pub struct Sizer<'a> {
    content: &'a ContentStore,
    sn: Option<&'a dyn Snapshotter>,
    /// Every blob of the content store, with its size on disk (0 for a discarded blob, which
    /// is present all the same: its bytes can be brought back).
    present: HashMap<Digest, u64>,
    /// The recorded size of the discarded blobs: compressed bytes not kept.
    discarded: u64,
    /// Discarded layer blob → its tar split (which the image then holds in its place).
    splits: HashMap<Digest, Digest>,
    usage: HashMap<Digest, Option<u64>>,
    /// `usage` holds every committed layer snapshot: one it lacks does not exist.
    complete: bool,
}

impl std::fmt::Debug for Sizer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sizer").finish_non_exhaustive()
    }
}

impl<'a> Sizer<'a> {
    /// `sn` is `None` when the snapshotter cannot be opened: unpacked sizes are then 0.
    pub fn new(
        content: &'a ContentStore,
        sn: Option<&'a dyn Snapshotter>,
    ) -> Result<Sizer<'a>, strata_metadata::MetaError> {
        let mut discarded = 0;
        let present = content
            .sizes()?
            .into_iter()
            .map(|b| {
                if b.discarded {
                    discarded += b.size;
                }
                (b.digest, if b.discarded { 0 } else { b.size })
            })
            .collect();
        let splits = if discarded > 0 {
            content
                .db()
                .read(|tx| tx.blobs_labelled(strata_types::labels::SPLIT))?
                .into_iter()
                .filter_map(|(layer, split)| Some((layer, split.parse().ok()?)))
                .collect()
        } else {
            HashMap::new()
        };
        // Every layer's figure in one read; a snapshotter that cannot say is asked per layer.
        let usage = sn
            .and_then(|sn| {
                sn.committed_usage()
                    .map_err(|e| tracing::debug!("snapshot usage: {e}"))
                    .ok()
            })
            .map(|all| {
                all.into_iter()
                    .filter_map(|(k, u)| Some((k.parse().ok()?, Some(u.size))))
                    .collect::<HashMap<Digest, Option<u64>>>()
            });
        Ok(Sizer {
            content,
            sn,
            present,
            discarded,
            splits,
            complete: usage.is_some(),
            usage: usage.unwrap_or_default(),
        })
    }

    /// Whether the blob `digest` is in the content store.
    pub fn is_present(&self, digest: &Digest) -> bool {
        self.present.contains_key(digest)
    }

    /// Every blob of the content store and its size on disk, as read when the sizer was made.
    pub fn blobs(&self) -> impl Iterator<Item = (&Digest, u64)> {
        self.present.iter().map(|(d, s)| (d, *s))
    }

    /// The compressed bytes of discarded blobs (not on disk; see `--discard-compressed`).
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded
    }

    /// Usage of the snapshot `chain`, `None` if it does not exist.
    pub fn usage(&mut self, chain: &Digest) -> Option<u64> {
        let sn = self.sn?;
        if self.complete {
            return self.usage.get(chain).copied().flatten();
        }
        *self
            .usage
            .entry(chain.clone())
            .or_insert_with(|| sn.usage(&chain.to_string()).ok().map(|u| u.size))
    }

    /// Every committed layer snapshot (named by its chainID) and its usage, when the
    /// snapshotter could list them; `None` otherwise.
    pub fn layers(&self) -> Option<impl Iterator<Item = (&Digest, u64)>> {
        self.complete
            .then(|| self.usage.iter().filter_map(|(d, u)| Some((d, (*u)?))))
    }

    /// The image whose target is `target`; `platform` chooses the best manifest.
    pub fn summarize(
        &mut self,
        target: &Descriptor,
        platform: &Matcher,
    ) -> Result<ImageSummary, UnpackError> {
        let entries = if is_index(&target.media_type) && self.present.contains_key(&target.digest) {
            let (index, _): (Index, _) = read_listed_json(self.content, "index", target)?;
            index.manifests
        } else if is_manifest(&target.media_type) {
            vec![IndexEntry {
                descriptor: target.clone(),
                platform: None,
            }]
        } else {
            Vec::new()
        };
        let mut manifests = Vec::new();
        for entry in entries
            .iter()
            .filter(|e| is_manifest(&e.descriptor.media_type))
        {
            manifests.push(self.manifest(entry)?);
        }
        let candidates = |m: &ManifestSummary| m.kind == ManifestKind::Image && m.available;
        let order = |matcher: &Matcher| {
            let picked: Vec<usize> = (0..manifests.len())
                .filter(|&i| candidates(&manifests[i]))
                .collect();
            let empty = Default::default();
            matcher
                .order(
                    picked
                        .iter()
                        .map(|&i| (manifests[i].platform.as_ref(), &empty)),
                )
                .first()
                .map(|&k| picked[k])
        };
        let best = order(platform).or_else(|| order(&Matcher::all()));
        Ok(ImageSummary {
            target: target.clone(),
            manifests,
            best,
        })
    }

    /// [`summarize`](Self::summarize), but an unreadable image is logged and summarized as
    /// having no manifests: one broken image does not hide the others from a listing.
    pub fn summarize_lenient(&mut self, target: &Descriptor, platform: &Matcher) -> ImageSummary {
        self.summarize(target, platform).unwrap_or_else(|e| {
            tracing::warn!("image {}: {}", target.digest, strata_types::ErrorChain(&e));
            ImageSummary {
                target: target.clone(),
                manifests: Vec::new(),
                best: None,
            }
        })
    }

    fn manifest(&mut self, entry: &IndexEntry) -> Result<ManifestSummary, UnpackError> {
        let desc = &entry.descriptor;
        let kind = if is_attestation(&desc.annotations) {
            ManifestKind::Attestation {
                subject: desc
                    .annotations
                    .get(REFERENCE_DIGEST)
                    .and_then(|d| d.parse().ok()),
            }
        } else {
            ManifestKind::Image
        };
        let mut m = ManifestSummary {
            descriptor: desc.clone(),
            platform: entry.platform.clone(),
            kind,
            available: false,
            content_size: 0,
            blobs: Vec::new(),
            unpacked_size: 0,
            unpacked: false,
            config: None,
            chain_ids: Vec::new(),
        };
        if !self.present.contains_key(&desc.digest) {
            return Ok(m);
        }
        let (manifest, _): (Manifest, _) = read_listed_json(self.content, "manifest", desc)?;
        m.content_size = desc.size;
        m.blobs.push((desc.digest.clone(), desc.size));
        m.available = true;
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if let Some(&on_disk) = self.present.get(&blob.digest) {
                m.content_size += on_disk;
                m.blobs.push((blob.digest.clone(), on_disk));
                if let Some(split) = self.splits.get(&blob.digest)
                    && let Some(&size) = self.present.get(split)
                {
                    m.content_size += size;
                    m.blobs.push((split.clone(), size));
                }
            } else {
                m.available = false;
            }
        }
        if m.kind != ManifestKind::Image || !self.present.contains_key(&manifest.config.digest) {
            return Ok(m);
        }
        let (config, _): (ImageConfig, _) =
            read_listed_json(self.content, "config", &manifest.config)?;
        let diff_ids = &config.rootfs.diff_ids;
        m.chain_ids = (1..=diff_ids.len())
            .filter_map(|n| chain_id(&diff_ids[..n]))
            .collect();
        if m.platform.is_none() {
            m.platform = Some(Platform {
                architecture: config.architecture.clone(),
                os: config.os.clone(),
                os_version: config.os_version.clone(),
                os_features: Vec::new(),
                variant: config.variant.clone(),
            });
        }
        if let Some(top) = m.chain_ids.last().cloned()
            && self.usage(&top).is_some()
        {
            m.unpacked = true;
            let chains = m.chain_ids.clone();
            m.unpacked_size = chains.iter().filter_map(|c| self.usage(c)).sum();
        }
        m.config = Some(config);
        Ok(m)
    }

    /// The usage of the snapshot of each layer of `m` (0 for one that does not exist), bottom
    /// first: what `history` shows per layer.
    pub fn layer_sizes(&mut self, m: &ManifestSummary) -> Vec<u64> {
        m.chain_ids
            .iter()
            .map(|c| self.usage(c).unwrap_or(0))
            .collect()
    }
}
