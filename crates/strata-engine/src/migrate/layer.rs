//! One Docker layer into strata: its exact tar rebuilt from `tar-split.json.gz` and the
//! `diff` directory, streamed through the applier into a new snapshot (diffID checked before
//! the commit), and recorded as an uncompressed layer blob that is discarded from the start:
//! the tar split the applier recorded rebuilds those very bytes from the snapshot when push or
//! save need them, so nothing is stored twice.

use std::io::{self, Write};
use std::thread;

use strata_archive::{ArchiveError, Reused, rebuild_docker_layer_prefetched};
use strata_content::WriterOptions;
use strata_metadata::{ContentStore, Labels, LeaseGuard, LeaseResource};
use strata_snapshot::Snapshotter;

use super::MigrateError;
use super::source::SourceLayer;
use crate::unpack::{Applied, UnpackError, apply_stream, hold};

/// What importing one layer did.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Imported {
    /// The size of the layer's tar.
    pub size: u64,
    /// The layer was brought in now (false: strata had it already).
    pub new: bool,
    /// Files cloned or hardlinked from Docker's copy rather than written.
    pub reused: Reused,
}

/// The size of `layer`'s tar when strata has the layer already (its snapshot and its blob
/// record): then there is nothing to bring in.
pub(super) fn present(
    content: &ContentStore,
    sn: &dyn Snapshotter,
    layer: &SourceLayer,
) -> Option<u64> {
    if sn.stat(&layer.chain_id.to_string()).is_err() {
        return None;
    }
    content.info(&layer.diff_id).ok().map(|rec| rec.size)
}

/// Makes `layer` a snapshot (its parent done already) and a layer blob record, under
/// `lease`. Files are cloned or hardlinked from Docker's `diff` directory where the
/// filesystem and their metadata allow (`reuse`), else copied. A layer strata has already
/// (snapshot and blob record) is left as it is.
pub(super) fn import_layer(
    content: &ContentStore,
    sn: &dyn Snapshotter,
    layer: &SourceLayer,
    lease: &LeaseGuard,
    reuse: bool,
) -> Result<Imported, MigrateError> {
    let chain = layer.chain_id.to_string();
    let diff_id = &layer.diff_id;
    hold(sn, Some(lease), &chain, diff_id)?;
    if let Some(size) = present(content, sn, layer) {
        lease.add(&LeaseResource::Content(diff_id.clone()))?;
        return Ok(Imported {
            size,
            new: false,
            reused: Reused::default(),
        });
    }
    let (applied, size) = match apply(content, sn, layer, lease, reuse) {
        // The files of Docker's copy do not make the layer (one changed between the read
        // and the reuse, or a path the layer writes twice): copy them instead.
        Err(MigrateError::Unpack(e)) if reuse && matches!(*e, UnpackError::Reused { .. }) => {
            tracing::warn!("{e}; copying its files instead");
            apply(content, sn, layer, lease, false)?
        }
        r => r?,
    };
    match crate::discard::store_split(
        content,
        sn,
        diff_id,
        diff_id,
        &layer.chain_id,
        applied.split,
        applied.verified,
        Some(lease),
    ) {
        Ok(labels) => {
            content.record_discarded(diff_id, size, &labels, Some(lease.id()))?;
        }
        Err(e) => {
            // The snapshot does not rebuild its own tar (a path twice in one layer): keep the
            // tar itself, rebuilt once more from the source.
            tracing::warn!(
                "layer {diff_id}: storing its tar ({size} bytes): {}",
                strata_types::ErrorChain(&e)
            );
            store_tar(content, layer, size, lease)?;
        }
    }
    Ok(Imported {
        size,
        new: true,
        reused: applied.reused,
    })
}

/// Streams the layer's rebuilt tar into a new snapshot; returns what the apply did and the
/// tar's size.
fn apply(
    content: &ContentStore,
    sn: &dyn Snapshotter,
    layer: &SourceLayer,
    lease: &LeaseGuard,
    reuse: bool,
) -> Result<(Applied, u64), MigrateError> {
    let diff_id = &layer.diff_id;
    let (reader, mut writer) =
        io::pipe().map_err(|source| MigrateError::io(&layer.diff_dir, source))?;
    let source = layer.clone();
    let producer = thread::spawn(move || rebuild(&source, &mut writer));
    let applied = apply_stream(
        content,
        sn,
        reader,
        diff_id,
        diff_id,
        &layer.chain_id,
        layer.parent.as_ref(),
        Some(lease),
        true,
        reuse.then_some(layer.diff_dir.as_path()),
    );
    let rebuilt = producer.join().unwrap_or_else(|_| {
        Err(MigrateError::Rebuild {
            chain_id: layer.chain_id.clone(),
            source: Box::new(ArchiveError::Split {
                reason: "the rebuilding thread panicked".into(),
            }),
        })
    });
    match (applied, rebuilt) {
        (Ok(applied), Ok(size)) => Ok((applied, size)),
        // The source's fault (a file changed, a damaged split) explains the applier's.
        (_, Err(e)) if !e.is_broken_pipe() => Err(e),
        (Err(e), _) => Err(MigrateError::Unpack(Box::new(e))),
        (Ok(_), Err(e)) => Err(e),
    }
}

/// Writes `layer`'s exact tar to `out`; returns its size. The files are read ahead by a few
/// threads: Docker's tree is usually cold, and of many small files.
fn rebuild(layer: &SourceLayer, out: &mut dyn Write) -> Result<u64, MigrateError> {
    rebuild_docker_layer_prefetched(&layer.tar_split, &layer.diff_dir, out).map_err(|source| {
        MigrateError::Rebuild {
            chain_id: layer.chain_id.clone(),
            source: Box::new(source),
        }
    })
}

/// Stores `layer`'s tar as a blob, verified against its diffID.
fn store_tar(
    content: &ContentStore,
    layer: &SourceLayer,
    size: u64,
    lease: &LeaseGuard,
) -> Result<(), MigrateError> {
    let opts = WriterOptions {
        expected: Some(layer.diff_id.clone()),
        total: Some(size),
        wait: true,
    };
    let r#ref = format!("migrate-{}", layer.diff_id.hex());
    let mut w = match content.writer(&r#ref, opts, Some(lease.id())) {
        Ok(w) => w,
        Err(strata_metadata::MetaError::Content(strata_content::ContentError::AlreadyExists(
            _,
        ))) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if let Err(e) = rebuild(layer, &mut w) {
        // A half-written tar is no use to anyone: drop the ingest now rather than at expiry.
        drop(w);
        if let Err(abort) = content.abort(&r#ref) {
            tracing::debug!("drop ingest {ref}: {abort}");
        }
        return Err(e);
    }
    content.commit(
        w,
        Some(size),
        Some(&layer.diff_id),
        &Labels::new(),
        Some(lease.id()),
    )?;
    Ok(())
}
