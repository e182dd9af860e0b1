//! The small blobs of a pull (manifests, indexes, configs, attestation blobs): read from the
//! store when present, else fetched and verified; then stored with their labels under the
//! pull's lease.

use std::io::Read;

use futures_util::StreamExt as _;
use strata_content::{ContentError, WriterOptions};
use strata_metadata::{Labels, LeaseResource, MetaError};
use strata_types::Descriptor;

use super::{Ctx, PullError};
use crate::unpack::{MAX_JSON_BLOB, UnpackError};

/// The ingest ref of a pulled blob: the same in every process, so two pulls of one blob
/// share one ingest (the second waits on the first's lock, then finds the blob).
pub(super) fn ingest_ref(desc: &Descriptor) -> String {
    format!("pull-{}", desc.digest)
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(
    desc: &Descriptor,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, PullError> {
    serde_json::from_slice(bytes).map_err(|source| {
        UnpackError::Parse {
            what,
            digest: desc.digest.clone(),
            source,
        }
        .into()
    })
}

/// The bytes of a blob already in the store, if it is (bounded like everything read whole).
fn local(
    ctx: &Ctx<'_>,
    desc: &Descriptor,
    what: &'static str,
) -> Result<Option<Vec<u8>>, PullError> {
    let content = ctx.store.content();
    if !content.local().exists(&desc.digest) {
        return Ok(None);
    }
    check_size(desc, what)?;
    let mut blob = match content.reader(&desc.digest) {
        Ok(b) => b,
        // A file without a record (a crash between the two): fetch it like a missing one.
        Err(MetaError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(PullError::store(&desc.digest)(e)),
    };
    let mut bytes = Vec::with_capacity(desc.size as usize);
    blob.read_to_end(&mut bytes).map_err(|e| {
        PullError::store(&desc.digest)(MetaError::Content(ContentError::Io(
            strata_types::PathIoError::new("read blob", content.local().blob_path(&desc.digest), e),
        )))
    })?;
    Ok(Some(bytes))
}

fn check_size(desc: &Descriptor, what: &'static str) -> Result<(), PullError> {
    if desc.size > MAX_JSON_BLOB {
        return Err(UnpackError::TooLarge {
            what,
            digest: desc.digest.clone(),
            size: desc.size,
        }
        .into());
    }
    Ok(())
}

/// A manifest or index: from the store, else from the registry (size-bounded, verified).
pub(super) fn fetch_manifest(ctx: &Ctx<'_>, desc: &Descriptor) -> Result<Vec<u8>, PullError> {
    if let Some(bytes) = local(ctx, desc, "manifest")? {
        return Ok(bytes);
    }
    ctx.runtime
        .block_on(ctx.remote.fetch_manifest(ctx.reference, desc))
        .map_err(PullError::remote)
}

/// An image config: from the store, else from the registry (size-bounded, verified).
pub(super) fn fetch_config(ctx: &Ctx<'_>, desc: &Descriptor) -> Result<Vec<u8>, PullError> {
    if let Some(bytes) = local(ctx, desc, "config")? {
        return Ok(bytes);
    }
    check_size(desc, "config")?;
    ctx.runtime
        .block_on(async {
            ctx.remote
                .fetch_blob(ctx.reference, desc, 0)
                .await?
                .bytes()
                .await
        })
        .map_err(PullError::remote)
}

/// Stores a small blob whose bytes were verified against `desc`, with `labels` and the
/// distribution source, under the pull's lease.
pub(super) fn store(
    ctx: &Ctx<'_>,
    desc: &Descriptor,
    bytes: &[u8],
    labels: Labels,
) -> Result<(), PullError> {
    let content = ctx.store.content();
    let err = PullError::store(&desc.digest);
    match open_writer(ctx, desc) {
        Ok(Some(mut w)) => {
            if w.offset() > 0 {
                w.truncate().map_err(|e| err(e.into()))?;
            }
            w.write_chunk(bytes).map_err(|e| err(e.into()))?;
            content
                .commit(
                    w,
                    Some(desc.size),
                    Some(&desc.digest),
                    &Labels::new(),
                    Some(ctx.lease.id()),
                )
                .map_err(err)?;
        }
        Ok(None) => {}
        Err(e) => return Err(e),
    }
    label(ctx, desc, labels)
}

/// Opens the pull's writer for `desc`, or `None` when the blob is already in the store (then
/// it is put under the lease right away).
pub(super) fn open_writer(
    ctx: &Ctx<'_>,
    desc: &Descriptor,
) -> Result<Option<strata_content::Writer>, PullError> {
    let opts = WriterOptions {
        expected: Some(desc.digest.clone()),
        total: Some(desc.size),
        wait: true,
    };
    match ctx
        .store
        .content()
        .writer(&ingest_ref(desc), opts, Some(ctx.lease.id()))
    {
        Ok(w) => Ok(Some(w)),
        Err(MetaError::Content(ContentError::AlreadyExists(_))) => {
            ctx.lease
                .add(&LeaseResource::Content(desc.digest.clone()))?;
            Ok(None)
        }
        Err(e) => Err(PullError::store(&desc.digest)(e)),
    }
}

/// Sets `labels` on a stored blob, and adds this repository to its distribution source.
pub(super) fn label(ctx: &Ctx<'_>, desc: &Descriptor, mut labels: Labels) -> Result<(), PullError> {
    let content = ctx.store.content();
    let info = content
        .info(&desc.digest)
        .map_err(PullError::store(&desc.digest))?;
    let (key, repo) = &ctx.source_label;
    let sources = match info.labels.get(key) {
        Some(v) if v.split(',').any(|r| r == repo) => v.clone(),
        Some(v) => format!("{v},{repo}"),
        None => repo.clone(),
    };
    labels.insert(key.clone(), sources);
    labels.retain(|k, v| info.labels.get(k) != Some(v));
    if !labels.is_empty() {
        content
            .update_labels(&desc.digest, &labels)
            .map_err(PullError::store(&desc.digest))?;
    }
    Ok(())
}

/// Streams a blob into the store without unpacking it (attestation layers; every layer on a
/// snapshotter that unpacks from the store), resuming an interrupted ingest. Reports
/// progress when `report` is set.
pub(super) fn download(ctx: &Ctx<'_>, desc: &Descriptor, report: bool) -> Result<(), PullError> {
    let err = PullError::store(&desc.digest);
    let Some(mut w) = open_writer(ctx, desc)? else {
        return label(ctx, desc, Labels::new());
    };
    let offset = w.offset();
    let progress = |current| {
        if report {
            ctx.progress.layer(
                &desc.digest,
                super::LayerState::Downloading,
                current,
                desc.size,
            );
        }
    };
    let fetched = ctx.runtime.block_on(async {
        let mut stream = ctx
            .remote
            .fetch_blob(ctx.reference, desc, offset)
            .await
            .map_err(PullError::remote)?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(PullError::remote)?;
            w.write_chunk(&chunk).map_err(|e| err(e.into()))?;
            progress(w.offset());
        }
        Ok::<(), PullError>(())
    });
    if let Err(e) = fetched {
        return Err(discard_if_corrupt(ctx, desc, w, e));
    }
    ctx.store
        .content()
        .commit(
            w,
            Some(desc.size),
            Some(&desc.digest),
            &Labels::new(),
            Some(ctx.lease.id()),
        )
        .map_err(PullError::store(&desc.digest))?;
    label(ctx, desc, Labels::new())
}

/// Ends a failed download: an ingest that broke off is kept for the next pull to resume, one
/// whose bytes are wrong (the registry sent a blob that does not match its digest) is
/// thrown away, so that the next pull starts over; so is one that ran out of disk, whose
/// bytes would only keep the disk full.
pub(super) fn discard_if_corrupt(
    ctx: &Ctx<'_>,
    desc: &Descriptor,
    writer: strata_content::Writer,
    e: PullError,
) -> PullError {
    let corrupt =
        matches!(&e, PullError::Remote(r) if r.kind() == strata_types::ErrorKind::DataMismatch);
    if corrupt || crate::space::is_out_of_space(&e) {
        drop(writer);
        if let Err(abort) = ctx.store.content().abort(&ingest_ref(desc)) {
            tracing::warn!("discard corrupt download of {}: {abort}", desc.digest);
        }
    }
    e
}
