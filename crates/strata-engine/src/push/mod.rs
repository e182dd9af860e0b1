//! `push`: an image of the store to a registry, as Docker with the containerd image store
//! does it.
//!
//! The image's name points at a manifest or an index in the content store. What goes up:
//!
//! - **A manifest**: its config and distributable layers (non-distributable "foreign" layers
//!   never leave the machine), then the manifest bytes exactly as stored.
//! - **An index whose every platform (and attestation) is present locally**: all of it, each
//!   platform's manifest by digest, then the index under the tag — byte-identical, so the
//!   registry's digest is the local one.
//! - **An index with platforms missing locally** (a pull of the host's platform only keeps the
//!   others' manifests and layers away): when the target repository holds the missing
//!   manifests already (`HEAD` by digest; a push back to where the image came from), what is
//!   present goes up and then the whole index, so the tag keeps every platform. Otherwise the
//!   index cannot go up, since a registry refuses an index whose manifests it lacks: as Docker
//!   25+ does, the one present platform is pushed instead — the host's when several are
//!   present — and [`Pushed::index`] and [`Pushed::missing`] say which index was replaced and
//!   which platforms were missing. (Docker goes straight to that fallback, which replaces a
//!   multi-platform tag by one platform even where the registry had the rest.)
//! - **`--platform`**: only that platform's manifest.
//!
//! Each blob: `HEAD` first and skip it if the registry has it; else a cross-repository mount
//! when the blob's `containerd.io/distribution.source.<registry>` label names another
//! repository of the same registry (containerd's label, written by pull and by every push),
//! else an upload. Blobs go up concurrently (at most `max_concurrent_uploads`), manifests one
//! by one after them, the index last.

use std::time::Duration;

use strata_metadata::{ContentStore, LeaseGuard, LeaseResource, MetaError};
use strata_remote::media::is_index;
use strata_remote::{Reference, Remote, RemoteError};
use strata_types::{Descriptor, Digest, ErrorKind, Platform};

use crate::store::Store;
use crate::unpack::UnpackError;

/// How long a push's lease protects what it sends if the process dies before it ends.
const PUSH_LEASE: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    #[error("An image does not exist locally with the tag: {0}")]
    NotFound(String),
    #[error("{name}")]
    Restore {
        name: String,
        #[source]
        source: Box<crate::discard::RestoreError>,
    },
    #[error("{name}: blob {digest} is not present locally")]
    Missing { name: String, digest: Digest },
    #[error(
        "{name}: no manifest for platform {platform} present locally (present: {})",
        list(available)
    )]
    NoPlatform {
        name: String,
        platform: String,
        available: Vec<String>,
    },
    #[error(
        "{name}: index {index} is not complete locally (missing: {}) and none of the platforms \
         present ({}) is this host's: push one with --platform",
        list(missing),
        list(present)
    )]
    Ambiguous {
        name: String,
        index: Digest,
        missing: Vec<String>,
        present: Vec<String>,
    },
    #[error("{name}: media type {media_type:?} of {digest} is neither a manifest nor an index")]
    MediaType {
        name: String,
        digest: Digest,
        media_type: String,
    },
    #[error("{name}")]
    Read {
        name: String,
        #[source]
        source: UnpackError,
    },
    #[error("{name}: open blob {digest}")]
    Open {
        name: String,
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("{name}: an upload task failed: {message}")]
    Task { name: String, message: String },
    #[error(transparent)]
    Remote(Box<RemoteError>),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl PushError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PushError::NotFound(_) | PushError::Missing { .. } | PushError::NoPlatform { .. } => {
                ErrorKind::NotFound
            }
            PushError::Ambiguous { .. } => ErrorKind::FailedPrecondition,
            PushError::MediaType { .. } => ErrorKind::InvalidArgument,
            PushError::Read { source, .. } => source.kind(),
            PushError::Restore { source, .. } => source.kind(),
            PushError::Open { .. } | PushError::Task { .. } => ErrorKind::Internal,
            PushError::Remote(e) => e.kind(),
            PushError::Meta(e) => e.kind(),
        }
    }
}

impl From<RemoteError> for PushError {
    fn from(e: RemoteError) -> Self {
        PushError::Remote(Box::new(e))
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Push only the manifest of this platform.
    pub platform: Option<Platform>,
    /// How many blobs go up at once (dockerd's `--max-concurrent-uploads`, default 5).
    pub max_concurrent_uploads: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            platform: None,
            max_concurrent_uploads: 5,
        }
    }
}

/// What happened to one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The registry had it already.
    Exists,
    /// Mounted from this repository of the same registry.
    Mounted(String),
    /// Uploaded.
    Pushed,
}

/// Progress of a push.
#[derive(Debug)]
pub enum PushEvent<'a> {
    /// Before anything is sent: one for each blob of the push, in order.
    Preparing { desc: &'a Descriptor },
    /// Bytes of a blob read for upload so far (every [`PROGRESS_TICK`] while it changes).
    Uploading { desc: &'a Descriptor, sent: u64 },
    /// A blob is done, in the order they finish.
    Blob {
        desc: &'a Descriptor,
        outcome: &'a BlobOutcome,
    },
}

/// How often [`PushEvent::Uploading`] reports.
pub const PROGRESS_TICK: Duration = Duration::from_millis(100);

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Where it went.
    pub reference: Reference,
    /// The manifest or index now under the reference's tag (or digest).
    pub target: Descriptor,
    /// The local index that was replaced by one of its platforms' manifests, because not all
    /// of its content is present locally.
    pub index: Option<Descriptor>,
    /// The platforms of the index missing locally: with `index`, those left out; without, the
    /// ones the registry had already (the index went up whole).
    pub missing: Vec<String>,
    /// Discarded layers that could not be re-fetched and were rebuilt under new digests
    /// (then `target` is a rewritten manifest or index, not the local image's).
    pub rebuilt: Vec<crate::discard::Rebuilt>,
    /// The local image's own manifest or index, when `target` is a rewrite of it.
    pub local_target: Option<Descriptor>,
}

/// The descriptor an image name stands for locally: the image of that name, or for a
/// `name@digest` reference a manifest or index of that digest under an image of that
/// repository (the image's own target, or one of its index's manifests).
pub fn local_target(store: &Store, r: &Reference) -> Result<Descriptor, PushError> {
    let not_found = || PushError::NotFound(r.familiar());
    let Some(digest) = r.digest() else {
        let image = store.db().read(|tx| tx.image(&r.to_string()))?;
        return image.map(|i| i.target).ok_or_else(not_found);
    };
    let images = store.db().read(|tx| tx.images())?;
    let mut same_repo: Vec<Descriptor> = images
        .into_iter()
        .filter(|i| Reference::parse(&i.name).is_ok_and(|n| n.name() == r.name()))
        .map(|i| i.target)
        .collect();
    same_repo.sort_by(|a, b| a.digest.cmp(&b.digest));
    same_repo.dedup();
    if let Some(t) = same_repo.iter().find(|t| t.digest == *digest) {
        return Ok(t.clone());
    }
    for target in same_repo.iter().filter(|t| is_index(&t.media_type)) {
        if !present(store.content(), &target.digest)? {
            continue;
        }
        let (index, _) = read_index(store.content(), &r.familiar(), target)?;
        if let Some(e) = index
            .manifests
            .iter()
            .find(|e| e.descriptor.digest == *digest)
        {
            return Ok(e.descriptor.clone());
        }
    }
    Err(not_found())
}

/// Pushes the local image `r` stands for to `r` (see the module documentation). `progress`
/// hears about each blob as it is done.
pub fn push(
    store: &Store,
    remote: &Remote,
    rt: &tokio::runtime::Runtime,
    r: &Reference,
    opts: &PushOptions,
    progress: &mut dyn FnMut(PushEvent<'_>),
) -> Result<Pushed, PushError> {
    let local = local_target(store, r)?;
    // What is being sent stays, whatever removes images meanwhile, until it is sent.
    let lease = crate::gc::lease(store.db(), "push", PUSH_LEASE)?;
    // Discarded layers come back first: from their source (the destination's registry is
    // tried for a source host it shares), else rebuilt.
    let mut restorer = crate::discard::Restorer::new(store, &lease, vec![r.registry().to_owned()]);
    // Those the destination has, or mounts from another of its repositories, need no bytes.
    match restorer.discarded_layers(&local) {
        Ok(discarded) if !discarded.is_empty() => {
            restorer.skip(rt.block_on(at_destination(store.content(), remote, r, &discarded)));
        }
        Ok(_) => {}
        Err(e) => tracing::debug!("discarded layers of {}: {e}", r.familiar()),
    }
    let result = restorer
        .image(&local)
        .map_err(|source| PushError::Restore {
            name: r.familiar(),
            source: Box::new(source),
        })
        .and_then(|target| {
            let plan = plan_leased(store, remote, rt, r, opts, &lease, &target)?;
            rt.block_on(send(
                remote,
                r,
                &plan,
                opts.max_concurrent_uploads,
                progress,
            ))?;
            record_source(store.content(), r, &plan);
            Ok(Pushed {
                reference: r.clone(),
                target: plan.target,
                index: plan.index,
                missing: plan.missing,
                rebuilt: Vec::new(),
                local_target: None,
            })
        });
    let rebuilt = std::mem::take(&mut restorer.rebuilt);
    restorer.finish();
    drop(lease);
    let mut pushed = result?;
    if !rebuilt.is_empty() {
        pushed.local_target = Some(local);
    }
    pushed.rebuilt = rebuilt;
    Ok(pushed)
}

/// What to send for `target`, each blob of it added to `lease`.
fn plan_leased(
    store: &Store,
    remote: &Remote,
    rt: &tokio::runtime::Runtime,
    r: &Reference,
    opts: &PushOptions,
    lease: &LeaseGuard,
    target: &Descriptor,
) -> Result<Plan, PushError> {
    let choice = plan(
        store.content(),
        &r.familiar(),
        target,
        opts.platform.as_ref(),
        r,
    )?;
    let registry_has_absent = match &choice {
        Choice::IfRegistryHas { absent, .. } => rt.block_on(registry_has(remote, r, absent)),
        Choice::Plan(_) => false,
    };
    let plan = choice.decide(registry_has_absent)?;
    lease.add_all(plan.digests().map(|d| LeaseResource::Content(d.clone())))?;
    Ok(plan)
}

/// Whether the blob can be sent: recorded with its file, or discarded (then it was brought
/// back, or the destination has it: see [`at_destination`]).
fn present(content: &ContentStore, digest: &Digest) -> Result<bool, PushError> {
    Ok(match content.db().read(|tx| tx.blob(digest))? {
        Some(b) => b.discarded || content.local().exists(digest),
        None => false,
    })
}

/// The discarded `layers` the destination has, or has just mounted from another of its
/// repositories (their source labels say which): those need not be brought back.
async fn at_destination(
    content: &ContentStore,
    remote: &Remote,
    r: &Reference,
    layers: &[Descriptor],
) -> Vec<Digest> {
    let mut there = Vec::new();
    for layer in layers {
        if remote.blob_exists(r, &layer.digest).await.unwrap_or(false) {
            there.push(layer.digest.clone());
            continue;
        }
        let Ok(rec) = content.info(&layer.digest) else {
            continue;
        };
        for repo in mount_sources(&rec.labels, r.registry(), r.repository()) {
            // No bytes to offer: a registry that refuses the mount gets an upload that fails
            // at once, and the blob is brought back as any other.
            if let Ok(strata_remote::BlobPushed::Mounted) =
                remote.push_blob(r, layer, NoBytes, Some(&repo)).await
            {
                there.push(layer.digest.clone());
                break;
            }
        }
    }
    there
}

/// A blob source with nothing in it, for a mount attempt.
struct NoBytes;

impl strata_remote::BlobSource for NoBytes {
    fn read_at(&self, _offset: u64, _len: usize) -> std::io::Result<bytes::Bytes> {
        Err(std::io::Error::other(
            "the blob was discarded: no bytes to upload",
        ))
    }
}

mod plan;
mod send;

use plan::*;
use send::*;
pub(crate) use send::{distribution_source_key, label_host};
#[cfg(test)]
mod tests;
