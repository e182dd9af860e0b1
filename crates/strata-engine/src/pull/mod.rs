//! `pull`: an image from a registry into the store, unpacked.
//!
//! ```text
//! resolve NAME ──► index ──► platform manifests (--platform / host / --all-platforms)
//!   (HEAD/GET)       │        ├── config                         ≤ 4 MiB, verified
//!                    │        └── layers ─► layers.rs: download ⇒ ingest + apply, in parallel
//!                    └─────► attestation manifests and their blobs: content only, never unpacked
//! one transaction names the image; the pull's lease ends
//! ```
//!
//! Everything lands under one lease (`pull/<pid>-<nanos>`, 24 hours) from the first blob to
//! the transaction that records the name, so garbage collection beside a pull never takes
//! what it wrote, and an interrupted pull's leftovers go once the lease expires. Every blob
//! is verified against its descriptor (size while streaming, digest before commit); every
//! layer's diffID against the config; manifests, indexes and configs are refused over 4 MiB
//! before they are read.
//!
//! Blobs get containerd's labels: `containerd.io/distribution.source.<registry>` (where a
//! push can mount it from), and the garbage-collection edges `containerd.io/gc.ref.content.*`
//! (index → manifests, manifest → config and layers) and
//! `containerd.io/gc.ref.snapshot.<snapshotter>` (config → the top snapshot).
//!
//! A second pull of the same image while the first runs waits on the first's ingest locks
//! and finds the blobs (and then the snapshots) made: nothing is downloaded twice.

mod blobs;
mod error;
mod layers;

use std::time::Duration;

use strata_metadata::{Labels, LeaseGuard, LeaseResource};
use strata_remote::media::{is_index, is_manifest};
use strata_remote::{Reference, Remote};
use strata_snapshot::Snapshotter;
use strata_types::is_attestation;
use strata_types::labels::ContentEdge;
use strata_types::oci::{ImageConfig, Index, Manifest};
use strata_types::{Descriptor, Digest, Matcher, Platform};

pub use error::PullError;

use crate::store::Store;

/// How long a pull's lease protects what it wrote if the process dies before recording
/// ([`Store::with_lease_expiry`] overrides it).
const PULL_LEASE: Duration = Duration::from_secs(24 * 3600);
/// An attestation manifest names the manifest it is about with this annotation.
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Which platform to unpack from an index (the best match for it is taken); `None`: this
    /// machine's.
    pub platform: Option<Platform>,
    /// Every platform of an index, each unpacked.
    pub all_platforms: bool,
    /// Layers downloaded (and unpacked) at once.
    pub max_concurrent_downloads: usize,
    /// Let each layer's compressed blob go once its snapshot is unpacked and verified (see
    /// [`crate::discard`]); `None`: as the store's `discard-compressed` setting says.
    pub discard_compressed: Option<bool>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            all_platforms: false,
            max_concurrent_downloads: 3,
            discard_compressed: None,
        }
    }
}

/// What a layer is doing, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    /// Queued behind the concurrency limit, or behind another process fetching it.
    Waiting,
    /// Bytes arriving; on overlayfs they are unpacked as they arrive.
    Downloading,
    /// Downloaded; being unpacked from the content store.
    Extracting,
    /// Checking digest and diffID, committing.
    Verifying,
    /// Unpacked and committed.
    Done,
    /// Its snapshot was already in the store: nothing to do.
    Exists,
}

/// What a pull reports as it goes. Called from several threads.
pub trait Progress: Sync {
    /// The reference resolved to `digest`; `layers` follow.
    fn resolved(&self, _reference: &Reference, _digest: &Digest) {}
    /// A layer changed state or made progress: `current` of `total` bytes.
    fn layer(&self, _digest: &Digest, _state: LayerState, _current: u64, _total: u64) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug)]
pub struct NoProgress;
impl Progress for NoProgress {}

impl Ctx<'_> {
    /// Counts a layer blob discarded (`freed` bytes; 0: kept).
    fn note_discarded(&self, freed: u64) {
        if freed > 0
            && let Ok(mut d) = self.discarded.lock()
        {
            d.0 += 1;
            d.1 += freed;
        }
    }
}

/// One platform's image the pull unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledManifest {
    pub descriptor: Descriptor,
    pub platform: Option<Platform>,
    /// The chainID of its top layer: the snapshot a container starts from.
    pub top: Option<Digest>,
}

/// The outcome of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The name recorded (the reference as given, normalized).
    pub name: Reference,
    /// What the name points at: an index or a manifest.
    pub target: Descriptor,
    pub manifests: Vec<PulledManifest>,
    /// Whether the name already pointed at `target` before (Docker's "Image is up to date").
    pub up_to_date: bool,
    /// Compressed layer blobs let go after unpacking (`--discard-compressed`): how many, and
    /// their bytes.
    pub discarded: (usize, u64),
}

/// Everything one pull's steps share.
struct Ctx<'a> {
    store: &'a Store,
    sn: &'a dyn Snapshotter,
    remote: &'a Remote,
    reference: &'a Reference,
    runtime: &'a tokio::runtime::Runtime,
    lease: &'a LeaseGuard,
    progress: &'a dyn Progress,
    opts: &'a PullOptions,
    /// `containerd.io/distribution.source.<registry>` = repository, for every blob.
    source_label: (String, String),
    /// Layers this pull unpacked (not found already there).
    unpacked: std::sync::atomic::AtomicUsize,
    /// Whether compressed layer blobs go once unpacked.
    discard: bool,
    /// Layer blobs discarded, and their bytes.
    discarded: std::sync::Mutex<(usize, u64)>,
}

/// Pulls `reference` into `store`, unpacking it with `sn`; the registry client runs on
/// `runtime` (as push's does), which must not be the calling thread's.
pub fn pull(
    store: &Store,
    sn: &dyn Snapshotter,
    remote: &Remote,
    runtime: &tokio::runtime::Runtime,
    reference: &Reference,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Pulled, PullError> {
    let lease = crate::gc::lease(store.db(), "pull", store.lease_expiry(PULL_LEASE))?;
    let ctx = Ctx {
        store,
        sn,
        remote,
        reference,
        runtime,
        lease: &lease,
        progress,
        opts,
        source_label: (
            crate::push::distribution_source_key(reference.registry()),
            reference.repository().to_owned(),
        ),
        unpacked: Default::default(),
        discard: match opts.discard_compressed {
            Some(d) => d,
            None => store.discard_compressed()?,
        },
        discarded: Default::default(),
    };
    // The lease ends as it goes, after this: recorded images then hold what they need, and
    // the rest is for garbage collection.
    pull_leased(&ctx)
}

fn pull_leased(ctx: &Ctx<'_>) -> Result<Pulled, PullError> {
    let name = ctx.reference.to_string();
    let (target, _host) = ctx
        .runtime
        .block_on(ctx.remote.resolve(ctx.reference))
        .map_err(PullError::remote)?;
    tracing::debug!(reference = %ctx.reference, digest = %target.digest, "resolved");
    ctx.progress.resolved(ctx.reference, &target.digest);
    let before = ctx.store.db().read(|tx| tx.image(&name))?;
    let bytes = blobs::fetch_manifest(ctx, &target)?;

    let mut manifests = Vec::new();
    if is_index(&target.media_type) {
        let index: Index = blobs::parse(&target, "index", &bytes)?;
        let (wanted, attestations) = select(ctx, &index)?;
        let children = index_labels(ctx, &target, wanted.iter().chain(&attestations))?;
        for entry in &attestations {
            let manifest_bytes = blobs::fetch_manifest(ctx, &entry.descriptor)?;
            let manifest: Manifest = blobs::parse(&entry.descriptor, "manifest", &manifest_bytes)?;
            // Kept as content for push and save; an attestation is never unpacked.
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                blobs::download(ctx, blob, false)?;
            }
            blobs::store(
                ctx,
                &entry.descriptor,
                &manifest_bytes,
                crate::gc::manifest_labels(&manifest),
            )?;
        }
        for entry in &wanted {
            manifests.push(pull_manifest(
                ctx,
                &entry.descriptor,
                entry.platform.clone(),
            )?);
        }
        blobs::store(ctx, &target, &bytes, children)?;
    } else if is_manifest(&target.media_type) {
        // A lone manifest must still be what `--platform` asked for, as Docker checks.
        let check = ctx.opts.platform.as_ref();
        manifests.push(pull_manifest_bytes(ctx, &target, &bytes, None, check)?);
    } else {
        return Err(PullError::MediaType {
            reference: name,
            media_type: target.media_type.clone(),
        });
    }

    ctx.store.db().write(|tx| {
        crate::images::set_image_name(tx, &name, &target)?;
        tracing::debug!(name, "image recorded");
        Ok(())
    })?;
    Ok(Pulled {
        up_to_date: before.is_some_and(|b| b.target.digest == target.digest)
            && ctx.unpacked.load(std::sync::atomic::Ordering::Relaxed) == 0,
        name: ctx.reference.clone(),
        target,
        manifests,
        discarded: ctx.discarded.lock().map(|d| *d).unwrap_or_default(),
    })
}

/// The index entries to pull: the wanted platforms (the best one, or all), and the
/// attestation manifests about them.
fn select<'i>(
    ctx: &Ctx<'_>,
    index: &'i Index,
) -> Result<
    (
        Vec<&'i strata_types::oci::IndexEntry>,
        Vec<&'i strata_types::oci::IndexEntry>,
    ),
    PullError,
> {
    let wanted_platform = ctx.opts.platform.clone().unwrap_or_else(Platform::host);
    let matcher = if ctx.opts.all_platforms {
        Matcher::all()
    } else {
        Matcher::only(&wanted_platform)
    };
    let order = matcher.order(
        index
            .manifests
            .iter()
            .map(|e| (e.platform.as_ref(), &e.descriptor.annotations)),
    );
    let wanted: Vec<_> = if ctx.opts.all_platforms {
        order.iter().map(|&i| &index.manifests[i]).collect()
    } else {
        order
            .first()
            .map(|&i| &index.manifests[i])
            .into_iter()
            .collect()
    };
    if wanted.is_empty() {
        let available = index
            .manifests
            .iter()
            .filter(|e| !is_attestation(&e.descriptor.annotations))
            .filter_map(|e| e.platform.as_ref().map(ToString::to_string))
            .collect::<Vec<_>>();
        return Err(PullError::NoPlatform {
            reference: ctx.reference.to_string(),
            wanted: wanted_platform.to_string(),
            available,
        });
    }
    let wanted_digests: Vec<String> = wanted
        .iter()
        .map(|e| e.descriptor.digest.to_string())
        .collect();
    let attestations = index
        .manifests
        .iter()
        .filter(|e| is_attestation(&e.descriptor.annotations))
        .filter(|e| {
            e.descriptor
                .annotations
                .get(REFERENCE_DIGEST)
                .is_some_and(|d| wanted_digests.contains(d))
        })
        .collect();
    Ok((wanted, attestations))
}

fn pull_manifest(
    ctx: &Ctx<'_>,
    desc: &Descriptor,
    platform: Option<Platform>,
) -> Result<PulledManifest, PullError> {
    let bytes = blobs::fetch_manifest(ctx, desc)?;
    pull_manifest_bytes(ctx, desc, &bytes, platform, None)
}

/// Config, then layers (unpacked), then the manifest itself: a manifest in the store means
/// everything below it is there.
fn pull_manifest_bytes(
    ctx: &Ctx<'_>,
    desc: &Descriptor,
    bytes: &[u8],
    platform: Option<Platform>,
    check: Option<&Platform>,
) -> Result<PulledManifest, PullError> {
    let manifest: Manifest = blobs::parse(desc, "manifest", bytes)?;
    let config_bytes = blobs::fetch_config(ctx, &manifest.config)?;
    let config: ImageConfig = blobs::parse(&manifest.config, "config", &config_bytes)?;
    let actual = (!config.os.is_empty())
        .then(|| Platform::new(&config.os, &config.architecture, config.variant.as_deref()));
    if let (Some(wanted), Some(actual)) = (check, &actual)
        && !Matcher::only(wanted).matches(actual)
    {
        return Err(PullError::PlatformMismatch {
            reference: ctx.reference.to_string(),
            wanted: wanted.to_string(),
            actual: actual.to_string(),
        });
    }
    let chain_ids = layers::unpack_layers(ctx, &manifest, &config)?;
    let top = chain_ids.last().cloned();
    let config_labels = crate::gc::config_labels(ctx.sn.name(), top.as_ref());
    blobs::store(ctx, &manifest.config, &config_bytes, config_labels)?;
    blobs::store(ctx, desc, bytes, crate::gc::manifest_labels(&manifest))?;
    Ok(PulledManifest {
        descriptor: desc.clone(),
        platform: platform.or(actual),
        top,
    })
}

/// An index's garbage-collection edges: to the manifests pulled now and to those an earlier
/// pull (of another platform) recorded, so that neither loses its edge.
fn index_labels<'e>(
    ctx: &Ctx<'_>,
    index: &Descriptor,
    pulled: impl Iterator<Item = &'e &'e strata_types::oci::IndexEntry>,
) -> Result<Labels, PullError> {
    let mut digests: Vec<String> = match ctx.store.content().info(&index.digest) {
        Ok(info) => info
            .labels
            .into_iter()
            .filter(|(k, _)| matches!(ContentEdge::parse(k), Some(ContentEdge::Manifest(_))))
            .map(|(_, v)| v)
            .collect(),
        Err(_) => Vec::new(),
    };
    for entry in pulled {
        let d = entry.descriptor.digest.to_string();
        if !digests.contains(&d) {
            digests.push(d);
        }
    }
    let digests: Vec<Digest> = digests.iter().filter_map(|d| d.parse().ok()).collect();
    Ok(crate::gc::index_labels(&digests))
}

/// Puts snapshots under the pull's lease — before they are looked at, made or committed, so
/// that a garbage collection beside the pull can never take one between two steps.
fn lease_snapshots(ctx: &Ctx<'_>, keys: impl IntoIterator<Item = String>) -> Result<(), PullError> {
    let snapshotter = ctx.sn.name();
    ctx.lease
        .add_all(keys.into_iter().map(|key| LeaseResource::Snapshot {
            snapshotter: snapshotter.to_owned(),
            key,
        }))?;
    Ok(())
}
