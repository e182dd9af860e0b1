//! Unpacking an image: layer `i` of a manifest becomes the committed snapshot named by the
//! chainID of layers `0..=i`, so images that share a base share its snapshots.
//!
//! Per layer: skip it if its chain's snapshot exists; else prepare an active snapshot on the
//! parent chain, stream the blob from the content store through the archive applier into the
//! snapshotter's apply target (no mount), check the diffID the applier computed against the
//! config's `rootfs.diff_ids`, and commit under the chainID. Any failure removes the active
//! snapshot, so nothing half-unpacked is ever committed.

use std::io::Read;
use std::path::Path;

use strata_archive::{
    ApplyOptions, ArchiveError, RecordedSplit, Reused, WhiteoutMode, apply_layer, split_diff_id,
};
use strata_metadata::{ContentStore, Labels, LeaseGuard, LeaseResource, MetaError};
use strata_snapshot::{SnapshotError, Snapshotter};
use strata_types::oci::{ImageConfig, Manifest};
use strata_types::{Descriptor, Digest, ErrorKind, chain_id};

/// Manifests, indexes and configs are read whole; anything bigger is refused before reading.
pub const MAX_JSON_BLOB: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    #[error("read {what} {digest}")]
    Read {
        what: &'static str,
        digest: Digest,
        #[source]
        source: Box<MetaError>,
    },
    #[error("{what} {digest} is {size} bytes, more than the {MAX_JSON_BLOB} allowed")]
    TooLarge {
        what: &'static str,
        digest: Digest,
        size: u64,
    },
    #[error("parse {what} {digest}")]
    Parse {
        what: &'static str,
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("image has {layers} layers but its config lists {diff_ids} diff IDs")]
    LayerCount { layers: usize, diff_ids: usize },
    #[error("layer {digest}: unsupported media type {media_type:?}")]
    MediaType { digest: Digest, media_type: String },
    #[error("layer {digest}: unpacked to diffID {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        digest: Digest,
        expected: Digest,
        actual: Digest,
    },
    /// The archive error names the layer.
    #[error("unpack")]
    Apply {
        digest: Digest,
        #[source]
        source: Box<ArchiveError>,
    },
    /// Files reused from another copy of the layer do not make the layer the tar describes.
    #[error(
        "layer {digest}: the files reused from another copy of it differ from the layer: {reason}"
    )]
    Reused { digest: Digest, reason: String },
    #[error("layer {digest}")]
    Snapshot {
        digest: Digest,
        #[source]
        source: Box<SnapshotError>,
    },
}

impl UnpackError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            UnpackError::Read { source, .. } => source.kind(),
            UnpackError::Apply { source, .. } => source.kind(),
            UnpackError::Snapshot { source, .. } => source.kind(),
            UnpackError::DiffIdMismatch { .. }
            | UnpackError::TooLarge { .. }
            | UnpackError::Reused { .. } => ErrorKind::DataMismatch,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// Reads and parses a small JSON blob (manifest, index, config), refusing oversized ones.
pub fn read_json<T: serde::de::DeserializeOwned>(
    content: &ContentStore,
    what: &'static str,
    desc: &Descriptor,
) -> Result<(T, Vec<u8>), UnpackError> {
    json_blob(content, what, desc, false)
}

/// [`read_json`] of a blob the caller has just seen recorded (in a listing of the content
/// store): the file is read without looking the record up again, which listings of many
/// images would otherwise do once per manifest and config.
pub fn read_listed_json<T: serde::de::DeserializeOwned>(
    content: &ContentStore,
    what: &'static str,
    desc: &Descriptor,
) -> Result<(T, Vec<u8>), UnpackError> {
    json_blob(content, what, desc, true)
}

fn json_blob<T: serde::de::DeserializeOwned>(
    content: &ContentStore,
    what: &'static str,
    desc: &Descriptor,
    listed: bool,
) -> Result<(T, Vec<u8>), UnpackError> {
    let digest = desc.digest.clone();
    let read = |source| UnpackError::Read {
        what,
        digest: digest.clone(),
        source: Box::new(source),
    };
    let mut blob = if listed {
        content
            .local()
            .reader(&desc.digest)
            .map_err(|e| read(MetaError::Content(e)))?
    } else {
        content.reader(&desc.digest).map_err(read)?
    };
    if blob.size() > MAX_JSON_BLOB {
        return Err(UnpackError::TooLarge {
            what,
            digest,
            size: blob.size(),
        });
    }
    let mut bytes = Vec::with_capacity(blob.size() as usize);
    blob.read_to_end(&mut bytes).map_err(|e| {
        read(MetaError::Content(strata_content::ContentError::Io(
            strata_types::PathIoError::new("read blob", content.local().blob_path(&desc.digest), e),
        )))
    })?;
    let value = serde_json::from_slice(&bytes).map_err(|source| UnpackError::Parse {
        what,
        digest,
        source,
    })?;
    Ok((value, bytes))
}

/// What [`unpack`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The chainID of each layer, bottom first; the last is the image's top snapshot.
    pub chain_ids: Vec<Digest>,
    /// Layers unpacked now.
    pub unpacked: usize,
    /// Layers whose snapshot already existed.
    pub present: usize,
}

/// Unpacks every layer of `manifest` (whose config is `config`) into `sn`. Under `lease`,
/// every snapshot it looks at or makes is added to the lease first, so that garbage
/// collection leaves them alone until the image that needs them is recorded.
pub fn unpack(
    content: &ContentStore,
    sn: &dyn Snapshotter,
    manifest: &Manifest,
    config: &ImageConfig,
    lease: Option<&LeaseGuard>,
) -> Result<Unpacked, UnpackError> {
    let diff_ids = &config.rootfs.diff_ids;
    if manifest.layers.len() != diff_ids.len() {
        return Err(UnpackError::LayerCount {
            layers: manifest.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let mut out = Unpacked {
        chain_ids: Vec::new(),
        unpacked: 0,
        present: 0,
    };
    let mut parent: Option<Digest> = None;
    for (i, layer) in manifest.layers.iter().enumerate() {
        let Some(chain) = chain_id(&diff_ids[..=i]) else {
            continue;
        };
        hold(sn, lease, &chain.to_string(), &layer.digest)?;
        if sn.stat(&chain.to_string()).is_ok() {
            out.present += 1;
        } else {
            unpack_layer(
                content,
                sn,
                layer,
                &diff_ids[i],
                &chain,
                parent.as_ref(),
                lease,
                false,
            )?;
            out.unpacked += 1;
        }
        out.chain_ids.push(chain.clone());
        parent = Some(chain);
    }
    Ok(out)
}

/// Unpacks one layer onto its committed parent and commits it under `chain`; with `discard`
/// then lets the compressed blob go (see [`crate::discard`]) and returns the bytes freed.
/// Failing to discard is logged, never an error: the blob stays.
#[allow(clippy::too_many_arguments)]
pub(crate) fn unpack_layer(
    content: &ContentStore,
    sn: &dyn Snapshotter,
    layer: &Descriptor,
    diff_id: &Digest,
    chain: &Digest,
    parent: Option<&Digest>,
    lease: Option<&LeaseGuard>,
    discard: bool,
) -> Result<u64, UnpackError> {
    let digest = layer.digest.clone();
    if !strata_remote::media::is_layer(&layer.media_type) {
        return Err(UnpackError::MediaType {
            digest,
            media_type: layer.media_type.clone(),
        });
    }
    let blob = content
        .reader(&layer.digest)
        .map_err(|source| UnpackError::Read {
            what: "layer",
            digest: digest.clone(),
            source: Box::new(source),
        })?;
    let split = apply_stream(
        content, sn, blob, &digest, diff_id, chain, parent, lease, discard, None,
    )?
    .split;
    Ok(if discard {
        crate::discard::freed_or_kept(crate::discard::discard_layer(
            content, sn, layer, diff_id, chain, split, lease,
        ))
    } else {
        0
    })
}

/// What [`apply_stream`] did beyond the snapshot.
#[derive(Debug)]
pub(crate) struct Applied {
    /// The tar split, when asked for.
    pub split: Option<RecordedSplit>,
    /// Files taken from `reuse_from` instead of written.
    pub reused: Reused,
    /// The committed snapshot was checked against the diffID through the split (files were
    /// reused), so the split needs no second check.
    pub verified: bool,
}

/// Prepares an active snapshot on `parent`, applies the layer `tar` (the blob `digest`,
/// compressed or not) into it, and commits it as `chain` once its diffID is `diff_id`. On
/// any failure the active snapshot is removed, so nothing half-unpacked is ever committed.
/// With `reuse_from` (the same layer unpacked elsewhere, see [`ApplyOptions::reuse_from`]),
/// files are cloned or linked from there, and the tree is checked against the diffID through
/// the tar split before the commit (`record_split` is implied).
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply_stream(
    content: &ContentStore,
    sn: &dyn Snapshotter,
    tar: impl Read,
    digest: &Digest,
    diff_id: &Digest,
    chain: &Digest,
    parent: Option<&Digest>,
    lease: Option<&LeaseGuard>,
    record_split: bool,
    reuse_from: Option<&Path>,
) -> Result<Applied, UnpackError> {
    let snap = |source| UnpackError::Snapshot {
        digest: digest.clone(),
        source: Box::new(source),
    };
    let key = format!("extract-{} {chain}", crate::unique_suffix());
    let parent_name = parent.map(Digest::to_string);
    hold(sn, lease, &key, digest)?;
    hold(sn, lease, &chain.to_string(), digest)?;
    sn.prepare(&key, parent_name.as_deref(), &Labels::new())
        .map_err(snap)?;
    let result = apply_and_commit(
        content,
        sn,
        tar,
        digest,
        diff_id,
        chain,
        &key,
        record_split,
        reuse_from,
    );
    if result.is_err() {
        // Never leave a half-unpacked layer behind; the error that matters is the first.
        if let Err(e) = sn.remove(&key) {
            tracing::warn!("remove failed unpack {key}: {e}");
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn apply_and_commit(
    content: &ContentStore,
    sn: &dyn Snapshotter,
    tar: impl Read,
    digest: &Digest,
    diff_id: &Digest,
    chain: &Digest,
    key: &str,
    record_split: bool,
    reuse_from: Option<&Path>,
) -> Result<Applied, UnpackError> {
    let snap = |source| UnpackError::Snapshot {
        digest: digest.clone(),
        source: Box::new(source),
    };
    let target = sn.apply_target(key).map_err(snap)?;
    let mut opts = ApplyOptions::new(
        digest.to_string(),
        if target.overlay_whiteouts {
            WhiteoutMode::Overlay
        } else {
            WhiteoutMode::Delete
        },
    );
    opts.writeback = target.synced;
    opts.record_split = record_split || reuse_from.is_some();
    opts.reuse_from = reuse_from.map(Path::to_owned);
    opts.lowers = target.lowers.clone();
    opts.min_free = crate::space::min_free_bytes(content.db(), &target.dir);
    let stats = apply_layer(tar, &target.dir, &opts).map_err(|source| UnpackError::Apply {
        digest: digest.clone(),
        source: Box::new(source),
    })?;
    if stats.diff_id != *diff_id {
        return Err(UnpackError::DiffIdMismatch {
            digest: digest.clone(),
            expected: diff_id.clone(),
            actual: stats.diff_id,
        });
    }
    let verified = stats.reused.bytes > 0;
    if verified {
        // What was hashed is the tar; what is in the tree was cloned or linked: the tree
        // must rebuild to the same diffID.
        let rebuilt = match &stats.split {
            Some(Ok(split)) => split_diff_id(split, &target.dir).map_err(|e| e.to_string()),
            Some(Err(why)) => Err(why.clone()),
            None => Err("no tar split".to_owned()),
        };
        if rebuilt.as_ref() != Ok(diff_id) {
            return Err(UnpackError::Reused {
                digest: digest.clone(),
                reason: match rebuilt {
                    Ok(actual) => format!("the tree rebuilds to {actual}"),
                    Err(why) => why,
                },
            });
        }
    }
    let mut applied = Applied {
        split: stats.split,
        reused: stats.reused,
        verified,
    };
    match sn.commit(&chain.to_string(), key, &Labels::new()) {
        Ok(()) => Ok(applied),
        // Another process unpacked the same chain meanwhile: theirs is as good as ours.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            sn.remove(key).map_err(snap)?;
            // What was checked is gone; theirs was not checked against this split.
            applied.verified = false;
            Ok(applied)
        }
        Err(e) => Err(snap(e)),
    }
}

/// Adds the snapshot `key` to `lease`, if there is one.
pub(crate) fn hold(
    sn: &dyn Snapshotter,
    lease: Option<&LeaseGuard>,
    key: &str,
    layer: &Digest,
) -> Result<(), UnpackError> {
    let Some(lease) = lease else {
        return Ok(());
    };
    let resource = LeaseResource::Snapshot {
        snapshotter: sn.name().to_owned(),
        key: key.to_owned(),
    };
    lease
        .add(&resource)
        .map_err(|source| UnpackError::Snapshot {
            digest: layer.clone(),
            source: Box::new(SnapshotError::Metadata {
                op: "lease",
                key: key.to_owned(),
                source: Box::new(source),
            }),
        })
}
