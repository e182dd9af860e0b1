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

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use strata_metadata::{ContentStore, Labels, LeaseResource, MetaError};
use strata_remote::media::{is_distributable, is_index, is_manifest};
use strata_remote::{BlobPushed, BlobSource, Reference, Remote, RemoteError};
use strata_types::is_attestation;
use strata_types::oci::{ImageConfig, Index, Manifest};
use strata_types::{Descriptor, Digest, ErrorKind, Matcher, Platform};

use crate::store::Store;
use crate::unpack::{UnpackError, read_json};

/// containerd's label recording the repositories of a registry a blob is known to be in:
/// `containerd.io/distribution.source.<host>=<repo>[,<repo>…]`.
pub const DISTRIBUTION_SOURCE: &str = "containerd.io/distribution.source.";

/// How long a push's lease protects what it sends if the process dies before it ends.
const PUSH_LEASE: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    #[error("An image does not exist locally with the tag: {0}")]
    NotFound(String),
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
}

/// A blob to send.
#[derive(Debug, Clone)]
struct BlobJob {
    desc: Descriptor,
    path: PathBuf,
    /// Another repository of the target registry known to hold the blob.
    mount_from: Option<String>,
}

/// Everything a push sends, decided before the first request.
#[derive(Debug)]
struct Plan {
    target: Descriptor,
    /// Manifests and indexes to `PUT`, children first; the last is `target`.
    documents: Vec<(Descriptor, Vec<u8>)>,
    blobs: Vec<BlobJob>,
    index: Option<Descriptor>,
    missing: Vec<String>,
}

/// What to send: decided from the store alone, or also on what the registry holds.
#[derive(Debug)]
enum Choice {
    Plan(Plan),
    /// An index with manifests absent locally: all of it if the registry holds every manifest
    /// in `absent` already (a push back to where it came from), else `fallback`.
    IfRegistryHas {
        absent: Vec<Digest>,
        whole: Box<Plan>,
        fallback: Result<Plan, PushError>,
    },
}

impl Choice {
    fn decide(self, registry_has_absent: bool) -> Result<Plan, PushError> {
        match self {
            Choice::Plan(p) => Ok(p),
            Choice::IfRegistryHas { whole, .. } if registry_has_absent => Ok(*whole),
            Choice::IfRegistryHas { fallback, .. } => fallback,
        }
    }
}

impl Plan {
    /// Every blob, manifest and index the plan sends.
    fn digests(&self) -> impl Iterator<Item = &Digest> {
        self.blobs
            .iter()
            .map(|b| &b.desc.digest)
            .chain(self.documents.iter().map(|(d, _)| &d.digest))
    }
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
    let target = local_target(store, r)?;
    let choice = plan(
        store.content(),
        &r.familiar(),
        &target,
        opts.platform.as_ref(),
        r,
    )?;
    let registry_has_absent = match &choice {
        Choice::IfRegistryHas { absent, .. } => rt.block_on(registry_has(remote, r, absent)),
        Choice::Plan(_) => false,
    };
    let plan = choice.decide(registry_has_absent)?;
    // What is being sent stays, whatever removes images meanwhile, until it is sent.
    let db = store.db();
    let lease = format!("push/{}", crate::unique_suffix());
    db.write(|tx| {
        tx.create_lease(&lease, Some(SystemTime::now() + PUSH_LEASE), &Labels::new())?;
        for digest in plan.digests() {
            tx.add_lease_resource(&lease, &LeaseResource::Content(digest.clone()))?;
        }
        Ok(())
    })?;
    let sent = rt.block_on(send(
        remote,
        r,
        &plan,
        opts.max_concurrent_uploads,
        progress,
    ));
    if let Err(e) = db.write(|tx| tx.delete_lease(&lease)) {
        tracing::warn!("removing lease {lease}: {e}");
    }
    sent?;
    record_source(store.content(), r, &plan);
    Ok(Pushed {
        reference: r.clone(),
        target: plan.target,
        index: plan.index,
        missing: plan.missing,
    })
}

fn present(content: &ContentStore, digest: &Digest) -> Result<bool, PushError> {
    Ok(content.db().read(|tx| tx.blob(digest))?.is_some() && content.local().exists(digest))
}

fn read_index(
    content: &ContentStore,
    name: &str,
    desc: &Descriptor,
) -> Result<(Index, Vec<u8>), PushError> {
    read_json(content, "index", desc).map_err(|source| PushError::Read {
        name: name.to_owned(),
        source,
    })
}

/// A manifest or index and what it needs, as far as it is present locally.
#[derive(Debug, Default)]
struct Part {
    documents: Vec<(Descriptor, Vec<u8>)>,
    blobs: Vec<Descriptor>,
    /// The first thing it needs that is not present locally.
    absent: Option<Digest>,
}

impl Part {
    fn absent(digest: &Digest) -> Part {
        Part {
            absent: Some(digest.clone()),
            ..Part::default()
        }
    }

    fn add(&mut self, other: Part) {
        self.documents.extend(other.documents);
        self.blobs.extend(other.blobs);
        if self.absent.is_none() {
            self.absent = other.absent;
        }
    }
}

/// Reads `desc` and everything under it that is present.
fn walk(content: &ContentStore, name: &str, desc: &Descriptor) -> Result<Part, PushError> {
    if !present(content, &desc.digest)? {
        return Ok(Part::absent(&desc.digest));
    }
    let read = |source| PushError::Read {
        name: name.to_owned(),
        source,
    };
    let mut part = Part::default();
    if is_manifest(&desc.media_type) {
        let (manifest, bytes): (Manifest, _) =
            read_json(content, "manifest", desc).map_err(read)?;
        let needed = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .filter(|b| is_distributable(&b.media_type));
        for blob in needed {
            if present(content, &blob.digest)? {
                part.blobs.push(blob.clone());
            } else if part.absent.is_none() {
                part.absent = Some(blob.digest.clone());
            }
        }
        part.documents.push((desc.clone(), bytes));
    } else if is_index(&desc.media_type) {
        let (index, bytes) = read_index(content, name, desc)?;
        for entry in &index.manifests {
            part.add(walk(content, name, &entry.descriptor)?);
        }
        part.documents.push((desc.clone(), bytes));
    } else {
        return Err(PushError::MediaType {
            name: name.to_owned(),
            digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
        });
    }
    Ok(part)
}

/// The platform a single-image manifest's config says it is for.
fn config_platform(
    content: &ContentStore,
    name: &str,
    manifest: &Descriptor,
) -> Result<Platform, PushError> {
    let read = |source| PushError::Read {
        name: name.to_owned(),
        source,
    };
    let (m, _): (Manifest, _) = read_json(content, "manifest", manifest).map_err(read)?;
    let (c, _): (ImageConfig, _) = read_json(content, "config", &m.config).map_err(read)?;
    Ok(Platform::new(&c.os, &c.architecture, c.variant.as_deref()))
}

fn platform_name(p: Option<&Platform>) -> String {
    p.map_or_else(|| "unknown".to_owned(), |p| p.normalize().to_string())
}

/// Decides what to send for `target` (see the module documentation).
fn plan(
    content: &ContentStore,
    name: &str,
    target: &Descriptor,
    platform: Option<&Platform>,
    dest: &Reference,
) -> Result<Choice, PushError> {
    let missing_err = |digest: Digest| PushError::Missing {
        name: name.to_owned(),
        digest,
    };
    if !is_index(&target.media_type) {
        let part = walk(content, name, target)?;
        if let Some(d) = part.absent {
            return Err(missing_err(d));
        }
        if let Some(p) = platform {
            let own = config_platform(content, name, target)?;
            if !Matcher::exact(p).matches(&own) {
                return Err(PushError::NoPlatform {
                    name: name.to_owned(),
                    platform: platform_name(Some(p)),
                    available: vec![platform_name(Some(&own))],
                });
            }
        }
        return finish(content, dest, target.clone(), part, None, Vec::new()).map(Choice::Plan);
    }
    if !present(content, &target.digest)? {
        return Err(missing_err(target.digest.clone()));
    }
    let (index, index_bytes) = read_index(content, name, target)?;
    let mut parts = Vec::with_capacity(index.manifests.len());
    for entry in &index.manifests {
        parts.push(walk(content, name, &entry.descriptor)?);
    }
    let missing: Vec<String> = index
        .manifests
        .iter()
        .zip(&parts)
        .filter(|(_, p)| p.absent.is_some())
        .map(|(e, _)| {
            if is_attestation(&e.descriptor.annotations) {
                format!("attestation {}", e.descriptor.digest.short())
            } else {
                platform_name(e.platform.as_ref())
            }
        })
        .collect();
    if platform.is_none() && missing.is_empty() {
        let part = walk(content, name, target)?;
        return finish(content, dest, target.clone(), part, None, Vec::new()).map(Choice::Plan);
    }
    if platform.is_some() {
        return one_platform(
            content, name, dest, target, &index, parts, platform, missing,
        )
        .map(Choice::Plan);
    }
    // The whole index if the registry has what is absent here: what is present, then it.
    let absent = index
        .manifests
        .iter()
        .zip(&parts)
        .filter(|(_, p)| p.absent.is_some())
        .map(|(e, _)| e.descriptor.digest.clone())
        .collect();
    let mut whole = Part::default();
    for p in parts.iter().filter(|p| p.absent.is_none()) {
        whole.documents.extend(p.documents.iter().cloned());
        whole.blobs.extend(p.blobs.iter().cloned());
    }
    whole.documents.push((target.clone(), index_bytes));
    let whole = finish(content, dest, target.clone(), whole, None, missing.clone())?;
    Ok(Choice::IfRegistryHas {
        absent,
        whole: Box::new(whole),
        fallback: one_platform(content, name, dest, target, &index, parts, None, missing),
    })
}

/// One platform's manifest of `index` instead of the index: `platform`'s, or without one the
/// only one present or else the host's (as Docker decides).
#[allow(clippy::too_many_arguments)]
fn one_platform(
    content: &ContentStore,
    name: &str,
    dest: &Reference,
    target: &Descriptor,
    index: &Index,
    mut parts: Vec<Part>,
    platform: Option<&Platform>,
    missing: Vec<String>,
) -> Result<Plan, PushError> {
    let missing_err = |digest: Digest| PushError::Missing {
        name: name.to_owned(),
        digest,
    };
    let complete: Vec<usize> = (0..parts.len())
        .filter(|&i| {
            parts[i].absent.is_none() && is_manifest(&index.manifests[i].descriptor.media_type)
        })
        .collect();
    let present_names = |entries: &[usize]| -> Vec<String> {
        entries
            .iter()
            .filter(|&&i| !is_attestation(&index.manifests[i].descriptor.annotations))
            .map(|&i| platform_name(index.manifests[i].platform.as_ref()))
            .collect()
    };
    let matcher = match platform {
        Some(p) => Matcher::exact(p),
        None => Matcher::host(),
    };
    let ranked = matcher.order(complete.iter().map(|&i| {
        (
            index.manifests[i].platform.as_ref(),
            &index.manifests[i].descriptor.annotations,
        )
    }));
    let candidates = present_names(&complete);
    let chosen = match (platform, ranked.first(), candidates.len()) {
        (_, Some(&best), _) => complete[best],
        (None, None, 1) => complete
            .iter()
            .copied()
            .find(|&i| !is_attestation(&index.manifests[i].descriptor.annotations))
            .ok_or_else(|| missing_err(target.digest.clone()))?,
        (Some(p), None, _) => {
            return Err(PushError::NoPlatform {
                name: name.to_owned(),
                platform: platform_name(Some(p)),
                available: candidates,
            });
        }
        (None, None, 0) => {
            return Err(PushError::NoPlatform {
                name: name.to_owned(),
                platform: "any".to_owned(),
                available: candidates,
            });
        }
        (None, None, _) => {
            return Err(PushError::Ambiguous {
                name: name.to_owned(),
                index: target.digest.clone(),
                missing,
                present: candidates,
            });
        }
    };
    let entry = &index.manifests[chosen];
    let mut chosen_desc = entry.descriptor.clone();
    // The index entry's annotations describe the entry, not the manifest.
    chosen_desc.annotations.clear();
    let part = std::mem::take(&mut parts[chosen]);
    let replaced = platform.is_none().then(|| target.clone());
    let missing = if platform.is_none() {
        missing
    } else {
        Vec::new()
    };
    finish(content, dest, chosen_desc, part, replaced, missing)
}

/// Deduplicates a part's blobs and documents and finds where each blob can be mounted from.
fn finish(
    content: &ContentStore,
    dest: &Reference,
    target: Descriptor,
    part: Part,
    index: Option<Descriptor>,
    missing: Vec<String>,
) -> Result<Plan, PushError> {
    let mut seen = HashSet::new();
    let mut blobs = Vec::new();
    for desc in part.blobs {
        if !seen.insert(desc.digest.clone()) {
            continue;
        }
        let labels = content
            .db()
            .read(|tx| tx.blob(&desc.digest))?
            .map(|b| b.labels)
            .unwrap_or_default();
        blobs.push(BlobJob {
            path: content.local().blob_path(&desc.digest),
            mount_from: mount_sources(&labels, dest.registry(), dest.repository())
                .into_iter()
                .next(),
            desc,
        });
    }
    let mut documents = Vec::new();
    let mut seen = HashSet::new();
    for (desc, bytes) in part.documents {
        if seen.insert(desc.digest.clone()) {
            documents.push((desc, bytes));
        }
    }
    Ok(Plan {
        target,
        documents,
        blobs,
        index,
        missing,
    })
}

/// `registry` without its port: containerd's labels name the host only.
fn label_host(registry: &str) -> &str {
    match registry.find(']') {
        Some(end) => &registry[..=end],
        None => registry.split(':').next().unwrap_or(registry),
    }
}

/// The repositories of `registry` other than `target_repo` that `labels` say hold the blob,
/// from `containerd.io/distribution.source.<registry or its host>` labels.
fn mount_sources(labels: &Labels, registry: &str, target_repo: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for host in [registry, label_host(registry)] {
        let Some(value) = labels.get(&format!("{DISTRIBUTION_SOURCE}{host}")) else {
            continue;
        };
        for repo in value.split(',').map(str::trim) {
            if !repo.is_empty() && repo != target_repo && !out.iter().any(|r| r == repo) {
                out.push(repo.to_owned());
            }
        }
    }
    out
}

/// `labels` with `repo` added to the distribution source of `registry`; `None` when it is
/// there already.
fn with_source(labels: &Labels, registry: &str, repo: &str) -> Option<(String, String)> {
    let key = format!("{DISTRIBUTION_SOURCE}{}", label_host(registry));
    match labels.get(&key).map(String::as_str) {
        Some(v) if v.split(',').any(|r| r.trim() == repo) => None,
        Some(v) if !v.is_empty() => Some((key, format!("{v},{repo}"))),
        _ => Some((key, repo.to_owned())),
    }
}

/// Notes on every blob and manifest sent that `dest`'s repository now holds it, so a later
/// push to another repository of the registry mounts instead of uploading. Best effort.
fn record_source(content: &ContentStore, dest: &Reference, plan: &Plan) {
    let result = content.db().write(|tx| {
        for digest in plan.digests() {
            let Some(blob) = tx.blob(digest)? else {
                continue;
            };
            if let Some((k, v)) = with_source(&blob.labels, dest.registry(), dest.repository()) {
                tx.update_blob_labels(digest, &Labels::from([(k, v)]))?;
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        tracing::warn!("recording the distribution source of {dest}: {e}");
    }
}

/// Whether `r`'s repository holds every manifest in `digests` (any failure to say so is a no:
/// the push that follows reports what is wrong with the registry).
async fn registry_has(remote: &Remote, r: &Reference, digests: &[Digest]) -> bool {
    for digest in digests {
        if let Err(e) = remote.resolve(&r.with_digest(digest.clone())).await {
            tracing::debug!("{digest} not in the registry: {e}");
            return false;
        }
    }
    true
}

async fn send(
    remote: &Remote,
    r: &Reference,
    plan: &Plan,
    max_concurrent: usize,
    progress: &mut dyn FnMut(PushEvent<'_>),
) -> Result<(), PushError> {
    let limit = Arc::new(tokio::sync::Semaphore::new(max_concurrent.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let name = r.familiar();
    let sent: Vec<Arc<AtomicU64>> = plan.blobs.iter().map(|_| Arc::default()).collect();
    for (i, job) in plan.blobs.iter().enumerate() {
        progress(PushEvent::Preparing { desc: &job.desc });
        let (remote, r, job, limit, name, sent) = (
            remote.clone(),
            r.clone(),
            job.clone(),
            limit.clone(),
            name.clone(),
            sent[i].clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            push_blob(&remote, &r, &job, &name, sent)
                .await
                .map(|o| (i, o))
        });
    }
    let mut reported = vec![Some(0); plan.blobs.len()];
    loop {
        match tokio::time::timeout(PROGRESS_TICK, tasks.join_next()).await {
            Ok(None) => break,
            Ok(Some(joined)) => {
                let (i, outcome) = joined.map_err(|e| PushError::Task {
                    name: name.clone(),
                    message: e.to_string(),
                })??;
                reported[i] = None;
                progress(PushEvent::Blob {
                    desc: &plan.blobs[i].desc,
                    outcome: &outcome,
                });
            }
            Err(_) => {}
        }
        for (i, last) in reported.iter_mut().enumerate() {
            let now = sent[i].load(Ordering::Relaxed);
            if let Some(last) = last.as_mut().filter(|l| now > **l) {
                *last = now;
                progress(PushEvent::Uploading {
                    desc: &plan.blobs[i].desc,
                    sent: now,
                });
            }
        }
    }
    let Some(((target, target_bytes), children)) = plan.documents.split_last() else {
        return Ok(());
    };
    for (desc, bytes) in children {
        remote
            .push_manifest(r, &desc.digest.to_string(), &desc.media_type, bytes)
            .await?;
    }
    remote
        .push_manifest(r, &r.object(), &target.media_type, target_bytes)
        .await?;
    Ok(())
}

/// A blob file that notes how far uploads have read it.
struct Counted {
    file: std::fs::File,
    sent: Arc<AtomicU64>,
}

impl BlobSource for Counted {
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<bytes::Bytes> {
        let bytes = BlobSource::read_at(&self.file, offset, len)?;
        self.sent
            .fetch_max(offset + bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }
}

async fn push_blob(
    remote: &Remote,
    r: &Reference,
    job: &BlobJob,
    name: &str,
    sent: Arc<AtomicU64>,
) -> Result<BlobOutcome, PushError> {
    if remote.blob_exists(r, &job.desc.digest).await? {
        return Ok(BlobOutcome::Exists);
    }
    let file = std::fs::File::open(&job.path).map_err(|source| PushError::Open {
        name: name.to_owned(),
        digest: job.desc.digest.clone(),
        source,
    })?;
    let file = Counted { file, sent };
    Ok(
        match remote
            .push_blob(r, &job.desc, file, job.mount_from.as_deref())
            .await?
        {
            BlobPushed::Mounted => BlobOutcome::Mounted(job.mount_from.clone().unwrap_or_default()),
            BlobPushed::Uploaded => BlobOutcome::Pushed,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;
    use strata_content::WriterOptions;
    use strata_remote::media;

    /// A store in a temp dir; blobs go in with [`put`].
    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root"), "native").unwrap();
        (dir, store)
    }

    fn put(store: &Store, media_type: &str, bytes: &[u8], labels: &Labels) -> Descriptor {
        let digest = Digest::sha256_of(bytes);
        let size = bytes.len() as u64;
        let opts = WriterOptions {
            expected: Some(digest.clone()),
            total: Some(size),
            wait: true,
        };
        let content = store.content();
        let mut w = content
            .writer(&format!("test-{digest}"), opts, None)
            .unwrap();
        w.write_all(bytes).unwrap();
        content
            .commit(w, Some(size), Some(&digest), labels, None)
            .unwrap();
        Descriptor::new(media_type, digest, size)
    }

    fn desc_json(d: &Descriptor) -> serde_json::Value {
        serde_json::to_value(d).unwrap()
    }

    /// A layer descriptor, stored or not.
    fn layer(store: &Store, text: &str, stored: bool) -> Descriptor {
        if stored {
            put(
                store,
                media::OCI_LAYER_GZIP,
                text.as_bytes(),
                &Labels::new(),
            )
        } else {
            let b = text.as_bytes();
            Descriptor::new(media::OCI_LAYER_GZIP, Digest::sha256_of(b), b.len() as u64)
        }
    }

    /// A manifest (stored) over a config for `arch` (stored) and `layers`.
    fn manifest(store: &Store, arch: &str, layers: &[Descriptor]) -> Descriptor {
        let config = json!({"architecture": arch, "os": "linux",
                            "rootfs": {"type": "layers", "diff_ids": []}});
        let config = put(
            store,
            media::OCI_CONFIG,
            config.to_string().as_bytes(),
            &Labels::new(),
        );
        let m = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
                       "config": desc_json(&config),
                       "layers": layers.iter().map(desc_json).collect::<Vec<_>>()});
        put(
            store,
            media::OCI_MANIFEST,
            m.to_string().as_bytes(),
            &Labels::new(),
        )
    }

    /// An index (stored) over `(manifest, arch)`, `arch` "attestation" marking one.
    fn index(store: &Store, entries: &[(&Descriptor, &str)]) -> Descriptor {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .map(|(d, arch)| {
                let mut v = desc_json(d);
                if *arch == "attestation" {
                    v["platform"] = json!({"architecture": "unknown", "os": "unknown"});
                    v["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest"});
                } else {
                    v["platform"] = json!({"architecture": arch, "os": "linux"});
                }
                v
            })
            .collect();
        let i = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests});
        put(
            store,
            media::OCI_INDEX,
            i.to_string().as_bytes(),
            &Labels::new(),
        )
    }

    fn dest() -> Reference {
        Reference::parse("127.0.0.1:5000/dest:1").unwrap()
    }

    fn plan_of(
        store: &Store,
        target: &Descriptor,
        platform: Option<&str>,
    ) -> Result<Plan, PushError> {
        plan_if(store, target, platform, false)
    }

    /// The plan when the registry holds (`registry_has`) the manifests absent locally, or not.
    fn plan_if(
        store: &Store,
        target: &Descriptor,
        platform: Option<&str>,
        registry_has: bool,
    ) -> Result<Plan, PushError> {
        let p = platform.map(|p| p.parse::<Platform>().unwrap());
        plan(store.content(), "img", target, p.as_ref(), &dest())?.decide(registry_has)
    }

    fn blob_digests(plan: &Plan) -> Vec<&Digest> {
        plan.blobs.iter().map(|b| &b.desc.digest).collect()
    }

    fn host() -> String {
        Platform::host().architecture
    }

    fn other() -> &'static str {
        if host() == "s390x" {
            "ppc64le"
        } else {
            "s390x"
        }
    }

    #[test]
    fn a_manifest_sends_its_config_and_distributable_layers_only() {
        let (_d, s) = store();
        let a = layer(&s, "a", true);
        // A foreign layer: never pushed, need not be present.
        let mut foreign = layer(&s, "foreign", false);
        foreign.media_type = media::OCI_LAYER_NONDISTRIBUTABLE_GZIP.to_owned();
        let m = manifest(&s, "amd64", &[a.clone(), foreign]);
        let plan = plan_of(&s, &m, None).unwrap();
        assert_eq!(plan.target, m);
        assert_eq!(plan.documents.len(), 1);
        assert_eq!(plan.documents[0].1.len() as u64, m.size);
        // --platform must be its platform.
        assert_eq!(plan_of(&s, &m, Some("linux/amd64")).unwrap().target, m);
        match plan_of(&s, &m, Some("linux/arm64")) {
            Err(e @ PushError::NoPlatform { .. }) => assert_eq!(
                e.to_string(),
                "img: no manifest for platform linux/arm64 present locally (present: linux/amd64)"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(blob_digests(&plan).len(), 2);
        assert_eq!(blob_digests(&plan)[1], &a.digest);
        assert!(plan.index.is_none() && plan.missing.is_empty());
    }

    #[test]
    fn a_manifest_missing_a_layer_is_refused_naming_it() {
        let (_d, s) = store();
        let absent = layer(&s, "absent", false);
        let m = manifest(&s, "amd64", std::slice::from_ref(&absent));
        match plan_of(&s, &m, None) {
            Err(PushError::Missing { digest, .. }) => assert_eq!(digest, absent.digest),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_complete_index_goes_whole_children_first_blobs_once() {
        let (_d, s) = store();
        let shared = layer(&s, "shared", true);
        let m1 = manifest(&s, &host(), &[shared.clone(), layer(&s, "one", true)]);
        let m2 = manifest(&s, other(), std::slice::from_ref(&shared));
        let att = manifest(&s, "unknown", &[layer(&s, "in-toto", true)]);
        let i = index(&s, &[(&m1, &host()), (&m2, other()), (&att, "attestation")]);
        let plan = plan_of(&s, &i, None).unwrap();
        assert_eq!(plan.target, i);
        let docs: Vec<&Digest> = plan.documents.iter().map(|(d, _)| &d.digest).collect();
        assert_eq!(docs, vec![&m1.digest, &m2.digest, &att.digest, &i.digest]);
        // 3 configs, shared + one + in-toto.
        assert_eq!(blob_digests(&plan).len(), 6);
        assert!(plan.index.is_none() && plan.missing.is_empty());
    }

    #[test]
    fn an_incomplete_index_falls_back_to_the_host_platform() {
        let (_d, s) = store();
        let m1 = manifest(&s, &host(), &[layer(&s, "one", true)]);
        let m2 = manifest(&s, other(), &[layer(&s, "two", false)]);
        let m3 = manifest(&s, "riscv64", &[layer(&s, "three", true)]);
        let i = index(&s, &[(&m2, other()), (&m3, "riscv64"), (&m1, &host())]);
        let plan = plan_of(&s, &i, None).unwrap();
        assert_eq!(plan.target.digest, m1.digest);
        assert_eq!(plan.index.as_ref(), Some(&i));
        assert_eq!(plan.missing, vec![format!("linux/{}", other())]);
        assert_eq!(plan.documents.len(), 1);

        // Unless the registry has what is absent here: then all that is present, and the index.
        let plan = plan_if(&s, &i, None, true).unwrap();
        assert_eq!(plan.target, i);
        assert!(plan.index.is_none());
        assert_eq!(plan.missing, vec![format!("linux/{}", other())]);
        let docs: Vec<&Digest> = plan.documents.iter().map(|(d, _)| &d.digest).collect();
        assert_eq!(docs, vec![&m3.digest, &m1.digest, &i.digest]);
        // --platform never asks the registry.
        let plan = plan_if(&s, &i, Some("linux/riscv64"), true).unwrap();
        assert_eq!(plan.target.digest, m3.digest);
    }

    #[test]
    fn an_incomplete_index_without_the_host_platform_is_ambiguous() {
        let (_d, s) = store();
        let m2 = manifest(&s, other(), &[layer(&s, "two", true)]);
        let m3 = manifest(&s, "riscv64", &[layer(&s, "three", true)]);
        let m4 = manifest(&s, "mips64le", &[layer(&s, "four", false)]);
        let i = index(&s, &[(&m2, other()), (&m3, "riscv64"), (&m4, "mips64le")]);
        match plan_of(&s, &i, None) {
            Err(e @ PushError::Ambiguous { .. }) => {
                assert!(e.to_string().contains("missing: linux/mips64le"), "{e}");
                assert!(e.to_string().contains("push one with --platform"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // A single present platform goes, whatever it is.
        let j = index(&s, &[(&m2, other()), (&m4, "mips64le")]);
        assert_eq!(plan_of(&s, &j, None).unwrap().target.digest, m2.digest);
        // --platform names one.
        let plan = plan_of(&s, &i, Some("linux/riscv64")).unwrap();
        assert_eq!(plan.target.digest, m3.digest);
        assert!(plan.index.is_none() && plan.missing.is_empty());
    }

    #[test]
    fn mounts_come_from_the_blob_labels_for_the_target_registry() {
        let (_d, s) = store();
        let labels = Labels::from([(
            "containerd.io/distribution.source.127.0.0.1".to_owned(),
            "dest,src/repo".to_owned(),
        )]);
        let a = put(&s, media::OCI_LAYER_GZIP, b"labelled", &labels);
        let m = manifest(&s, "amd64", std::slice::from_ref(&a));
        let plan = plan_of(&s, &m, None).unwrap();
        let job = plan
            .blobs
            .iter()
            .find(|b| b.desc.digest == a.digest)
            .unwrap();
        assert_eq!(job.mount_from.as_deref(), Some("src/repo"));
        assert!(plan.blobs.iter().filter(|b| b.mount_from.is_some()).count() == 1);
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_hosts_drop_the_port() {
        assert_eq!(label_host("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(label_host("docker.io"), "docker.io");
        assert_eq!(label_host("[::1]:5000"), "[::1]");
        assert_eq!(label_host("[::1]"), "[::1]");
    }

    #[test]
    fn mount_sources_read_both_label_spellings() {
        let l = labels(&[
            (
                "containerd.io/distribution.source.127.0.0.1",
                "a/b, c ,dest",
            ),
            ("containerd.io/distribution.source.127.0.0.1:5000", "x,a/b"),
            (
                "containerd.io/distribution.source.docker.io",
                "library/alpine",
            ),
        ]);
        assert_eq!(
            mount_sources(&l, "127.0.0.1:5000", "dest"),
            vec!["x", "a/b", "c"]
        );
        assert_eq!(
            mount_sources(&l, "docker.io", "library/alpine"),
            Vec::<String>::new()
        );
        assert!(mount_sources(&Labels::new(), "h", "r").is_empty());
    }

    #[test]
    fn sources_are_appended_once() {
        let key = "containerd.io/distribution.source.127.0.0.1";
        assert_eq!(
            with_source(&Labels::new(), "127.0.0.1:5000", "a"),
            Some((key.to_owned(), "a".to_owned()))
        );
        let l = labels(&[(key, "a")]);
        assert_eq!(
            with_source(&l, "127.0.0.1:5000", "b"),
            Some((key.to_owned(), "a,b".to_owned()))
        );
        assert_eq!(with_source(&l, "127.0.0.1:6000", "a"), None);
    }
}
