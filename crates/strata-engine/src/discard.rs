//! No double storage: a layer's compressed blob let go once its snapshot is unpacked and
//! verified, and brought back when something needs its bytes.
//!
//! ```text
//! discard (pull --discard-compressed, or the store setting `discard-compressed`)
//!   unpack with the tar split recorded ─► commit the layer snapshot
//!   rebuild the tar from the snapshot + split, sha256 == diffID? ── no ─► keep the blob
//!   │ yes
//!   split ─► content store (application/vnd.strata.layer.tar-split.v1+zstd)
//!   layer blob record: label containerd.io/gc.ref.content.strata.split = split digest,
//!                      marked discarded, file deleted
//!
//! restore (push, save, an unpack that needs the blob)
//!   1. fetch it again from a repository its containerd.io/distribution.source.* label names
//!      (same digest: nothing else changes)
//!   2. else rebuild the tar from a snapshot of the layer + split and gzip it again: a new
//!      blob with a new digest, so the manifest that carries it is rewritten (the caller says so)
//! ```
//!
//! The blob's record stays through all of this: its labels (sources, the split), its size,
//! the references manifests hold to it. Garbage collection follows the split label like any
//! other edge, so the split lives exactly as long as the record.

mod restore;

use std::io::Write as _;

use strata_archive::{ArchiveError, RecordedSplit, split_diff_id};
use strata_content::{ContentError, WriterOptions};
use strata_metadata::{ContentStore, Labels, LeaseGuard, MetaError};
use strata_snapshot::{SnapshotError, Snapshotter};
use strata_types::{Descriptor, Digest, ErrorKind};

pub use restore::{Rebuilt, RestoreError, Restorer};

/// The store setting that makes every pull discard (`strata system settings`).
pub const SETTING: &str = "discard-compressed";
/// The media type of a stored tar split.
pub const SPLIT_MEDIA_TYPE: &str = "application/vnd.strata.layer.tar-split.v1+zstd";

/// Why a layer's blob could not be discarded, or brought back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscardError {
    #[error("layer {digest}: no tar split was recorded ({reason})")]
    NoSplit { digest: Digest, reason: String },
    #[error(
        "layer {digest}: the unpacked snapshot rebuilds to {actual}, not its diffID {expected}"
    )]
    Mismatch {
        digest: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {digest}: rebuild from its snapshot")]
    Rebuild {
        digest: Digest,
        #[source]
        source: Box<ArchiveError>,
    },
    #[error("layer {digest}")]
    Snapshot {
        digest: Digest,
        #[source]
        source: Box<SnapshotError>,
    },
    #[error("layer {digest}")]
    Store {
        digest: Digest,
        #[source]
        source: Box<MetaError>,
    },
}

impl DiscardError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DiscardError::NoSplit { .. } => ErrorKind::FailedPrecondition,
            DiscardError::Mismatch { .. } => ErrorKind::DataMismatch,
            DiscardError::Rebuild { source, .. } => source.kind(),
            DiscardError::Snapshot { source, .. } => source.kind(),
            DiscardError::Store { source, .. } => source.kind(),
        }
    }
}

/// Whether a `discard-compressed` value asks for discarding.
pub fn setting_enabled(value: Option<&str>) -> bool {
    matches!(
        value.map(str::to_ascii_lowercase).as_deref(),
        Some("1" | "true" | "yes" | "on")
    )
}

/// Lets the compressed blob of `layer` go, its snapshot `chain` being committed from it with
/// the tar split `split` recorded: rebuilds the layer from the snapshot and the split, checks
/// the diffID, stores the split and marks the blob discarded. Returns the bytes freed. On
/// error nothing was discarded (the blob stays, which is always safe).
pub fn discard_layer(
    content: &ContentStore,
    sn: &dyn Snapshotter,
    layer: &Descriptor,
    diff_id: &Digest,
    chain: &Digest,
    split: Option<RecordedSplit>,
    lease: Option<&LeaseGuard>,
) -> Result<u64, DiscardError> {
    let digest = &layer.digest;
    let labels = store_split(content, sn, digest, diff_id, chain, split, false, lease)?;
    // The layer was verified against its descriptor: its size is the record's.
    let marked = content
        .discard(digest, &labels)
        .map_err(|source| DiscardError::Store {
            digest: digest.clone(),
            source: Box::new(source),
        })?;
    Ok(if marked { layer.size } else { 0 })
}

/// Checks that the tar split `split`, recorded while the layer blob `digest` was applied,
/// rebuilds the committed snapshot `chain` to `diff_id` (unless the caller did already:
/// `verified`), and stores it (under `lease`). Returns the labels that tie the blob's record
/// to the split.
#[allow(clippy::too_many_arguments)]
pub(crate) fn store_split(
    content: &ContentStore,
    sn: &dyn Snapshotter,
    digest: &Digest,
    diff_id: &Digest,
    chain: &Digest,
    split: Option<RecordedSplit>,
    verified: bool,
    lease: Option<&LeaseGuard>,
) -> Result<Labels, DiscardError> {
    let split = match split {
        Some(Ok(s)) => s,
        Some(Err(reason)) => {
            return Err(DiscardError::NoSplit {
                digest: digest.clone(),
                reason,
            });
        }
        None => {
            return Err(DiscardError::NoSplit {
                digest: digest.clone(),
                reason: "not asked for".into(),
            });
        }
    };
    if !verified {
        let tree = sn
            .layer_dir(&chain.to_string())
            .map_err(|source| DiscardError::Snapshot {
                digest: digest.clone(),
                source: Box::new(source),
            })?;
        let actual = split_diff_id(&split, &tree).map_err(|source| DiscardError::Rebuild {
            digest: digest.clone(),
            source: Box::new(source),
        })?;
        if actual != *diff_id {
            return Err(DiscardError::Mismatch {
                digest: digest.clone(),
                expected: diff_id.clone(),
                actual,
            });
        }
    }
    let split_digest = put(content, &split, lease).map_err(|source| DiscardError::Store {
        digest: digest.clone(),
        source: Box::new(source),
    })?;
    Ok(Labels::from([(
        strata_types::labels::SPLIT.to_owned(),
        split_digest.to_string(),
    )]))
}

/// What [`discard_layer`] freed, its error logged instead: for pull and unpack, whose work is
/// done whether or not the blob goes.
pub(crate) fn freed_or_kept(discarded: Result<u64, DiscardError>) -> u64 {
    match discarded {
        Ok(freed) => freed,
        Err(e) => {
            tracing::warn!(
                "keeping the compressed blob: {}",
                strata_types::ErrorChain(&e)
            );
            0
        }
    }
}

/// Stores `bytes` as a blob (under `lease`), returning its digest.
pub(crate) fn put(
    content: &ContentStore,
    bytes: &[u8],
    lease: Option<&LeaseGuard>,
) -> Result<Digest, MetaError> {
    let digest = Digest::sha256_of(bytes);
    let opts = WriterOptions {
        expected: Some(digest.clone()),
        total: Some(bytes.len() as u64),
        wait: true,
    };
    let r#ref = format!("put-{}-{}", digest.hex(), crate::unique_suffix());
    let mut w = match content.writer(&r#ref, opts, lease.map(LeaseGuard::id)) {
        Ok(w) => w,
        Err(MetaError::Content(ContentError::AlreadyExists(_))) => return Ok(digest),
        Err(e) => return Err(e),
    };
    w.write_all(bytes).map_err(|source| {
        MetaError::Content(ContentError::Io(strata_types::PathIoError::new(
            "write blob",
            content.local().blob_path(&digest),
            source,
        )))
    })?;
    content.commit(
        w,
        Some(bytes.len() as u64),
        Some(&digest),
        &Labels::new(),
        lease.map(LeaseGuard::id),
    )?;
    Ok(digest)
}

/// The tar split of a discarded layer blob (its digest and bytes), read from the store.
pub fn split_of(
    content: &ContentStore,
    layer: &Digest,
) -> Result<Option<(Digest, Vec<u8>)>, MetaError> {
    let rec = content.info(layer)?;
    let Some(split) = rec.labels.get(strata_types::labels::SPLIT) else {
        return Ok(None);
    };
    let Ok(split) = split.parse::<Digest>() else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut content.reader(&split)?, &mut bytes).map_err(|source| {
        MetaError::Content(ContentError::Io(strata_types::PathIoError::new(
            "read tar split",
            content.local().blob_path(&split),
            source,
        )))
    })?;
    Ok(Some((split, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_values() {
        assert!(!setting_enabled(None));
        for on in ["1", "true", "YES", "on"] {
            assert!(setting_enabled(Some(on)), "{on}");
        }
        for off in ["0", "false", "", "maybe"] {
            assert!(!setting_enabled(Some(off)), "{off}");
        }
    }
}
