//! The layers of one manifest: downloaded and unpacked at once, up to the concurrency limit.
//!
//! **overlayfs** (a snapshotter that can [rebase](Snapshotter::rebase)): each missing layer
//! is a job. A worker opens the layer's ingest, prepares a snapshot on no parent, and feeds
//! the download through a [`Tee`]: each chunk is appended to the ingest and handed to the
//! archive applier, so the bytes come off the network once and are never read back from
//! disk. At the end of the stream the blob is committed (size and digest checked) and the
//! diffID compared with the config. The calling thread meanwhile takes the finished layers
//! in order, moves each onto its parent's snapshot and commits it under its chainID. A layer
//! whose apply consulted its lowers (a directory it implies without an entry, a hardlink to
//! a file below it) would differ on its real parent: it is thrown away and unpacked again
//! from the store, on that parent.
//!
//! **native, btrfs** (a layer starts as a copy of its parent, so it needs the parent): the
//! workers only download; the calling thread unpacks each layer from the store, in order,
//! as soon as its blob and its parent are there.
//!
//! A job that finds another process fetching the same blob waits on that ingest's lock
//! ([`LayerState::Waiting`]), then finds the blob, and usually the snapshot, made.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use bytes::{Buf as _, Bytes};
use futures_util::StreamExt as _;
use strata_archive::{ApplyOptions, ArchiveError, RecordedSplit, WhiteoutMode, apply_layer};
use strata_content::Writer;
use strata_metadata::Labels;
use strata_snapshot::Snapshotter;
use strata_types::oci::{ImageConfig, Manifest};
use strata_types::{Descriptor, Digest, ErrorKind, chain_id};

use super::{Ctx, LayerState, PullError, blobs, lease_snapshots};
use crate::unpack::{UnpackError, unpack_layer};

/// Chunks in flight between a download and its unpacker: bounds a layer's memory (a few
/// MiB) whatever its size.
const CHANNEL_CHUNKS: usize = 16;

struct Job<'m> {
    desc: &'m Descriptor,
    diff_id: &'m Digest,
    chain: Digest,
    parent: Option<Digest>,
}

/// What a worker leaves for the committing thread.
enum Finished {
    /// Applied into the active snapshot `key`, which is on no parent yet; with its tar split
    /// when the pull discards compressed layers.
    Applied {
        key: String,
        lower_lookups: u64,
        split: Option<RecordedSplit>,
    },
    /// In the content store, not unpacked.
    Downloaded,
    /// Its snapshot appeared meanwhile (another pull made it).
    Exists,
}

/// Unpacks every layer of `manifest`, returning the chainIDs, bottom first.
pub(super) fn unpack_layers(
    ctx: &Ctx<'_>,
    manifest: &Manifest,
    config: &ImageConfig,
) -> Result<Vec<Digest>, PullError> {
    let diff_ids = &config.rootfs.diff_ids;
    let n = manifest.layers.len();
    let chains: Vec<Digest> = (0..n)
        .filter_map(|i| diff_ids.get(..=i).and_then(chain_id))
        .collect();
    if diff_ids.len() != n || chains.len() != n {
        return Err(UnpackError::LayerCount {
            layers: n,
            diff_ids: diff_ids.len(),
        }
        .into());
    }
    if let Some(l) = manifest
        .layers
        .iter()
        .find(|l| !strata_remote::media::is_layer(&l.media_type))
    {
        return Err(UnpackError::MediaType {
            digest: l.digest.clone(),
            media_type: l.media_type.clone(),
        }
        .into());
    }
    let jobs: Vec<Job<'_>> = (0..n)
        .map(|i| Job {
            desc: &manifest.layers[i],
            diff_id: &diff_ids[i],
            chain: chains[i].clone(),
            parent: i.checked_sub(1).map(|p| chains[p].clone()),
        })
        .collect();
    // Leased before they are looked at: one found now stays while this pull needs it.
    lease_snapshots(ctx, chains.iter().map(Digest::to_string))?;
    // Chains nest: when layer i's snapshot exists, so do those below it.
    let first_missing = (0..n)
        .find(|&i| ctx.sn.stat(&chains[i].to_string()).is_err())
        .unwrap_or(n);
    for job in &jobs[..first_missing] {
        report(ctx, job, LayerState::Exists, job.desc.size);
    }
    for job in &jobs[first_missing..] {
        report(ctx, job, LayerState::Waiting, 0);
    }
    run_jobs(ctx, &jobs, first_missing)?;
    Ok(chains)
}

fn report(ctx: &Ctx<'_>, job: &Job<'_>, state: LayerState, current: u64) {
    tracing::debug!(layer = %job.desc.digest, ?state, "layer");
    ctx.progress
        .layer(&job.desc.digest, state, current, job.desc.size);
}

/// Workers take jobs `first..` in order; this thread commits their results in order.
fn run_jobs(ctx: &Ctx<'_>, jobs: &[Job<'_>], first: usize) -> Result<(), PullError> {
    let rebase = ctx.sn.can_rebase();
    let next = AtomicUsize::new(first);
    let cancel = AtomicBool::new(false);
    let workers = ctx
        .opts
        .max_concurrent_downloads
        .clamp(1, 64)
        .min(jobs.len() - first);
    let mut results: Vec<Option<Result<Finished, PullError>>> = Vec::new();
    results.resize_with(jobs.len(), || None);
    let mut error = None;
    thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, cancel) = (&next, &cancel);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs.len() || cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let job = &jobs[i];
                    let r = if rebase {
                        fetch_and_apply(ctx, job, cancel)
                    } else {
                        blobs::download(ctx, job.desc, true).map(|()| Finished::Downloaded)
                    };
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut committed = first;
        for (i, r) in rx {
            results[i] = Some(r);
            while error.is_none()
                && let Some(r) = results.get_mut(committed).and_then(Option::take)
            {
                match r.and_then(|f| finish(ctx, &jobs[committed], f)) {
                    Ok(()) => committed += 1,
                    Err(e) => {
                        cancel.store(true, Ordering::Relaxed);
                        error = Some(e);
                    }
                }
            }
        }
    });
    // Layers applied but never committed (an earlier layer failed) are not wanted.
    for r in results.into_iter().flatten() {
        if let Ok(Finished::Applied { key, .. }) = r {
            remove_quietly(ctx.sn, &key);
        }
    }
    error.map_or(Ok(()), Err)
}

/// Commits a finished layer on its parent (which is committed by now).
fn finish(ctx: &Ctx<'_>, job: &Job<'_>, finished: Finished) -> Result<(), PullError> {
    let parent = job.parent.as_ref().map(Digest::to_string);
    let existed = matches!(finished, Finished::Exists);
    match finished {
        Finished::Exists => {}
        Finished::Applied {
            key,
            lower_lookups: 0,
            split,
        } => {
            let moved = ctx.sn.rebase(&key, parent.as_deref());
            let committed = moved.and_then(|_| {
                match ctx.sn.commit(&job.chain.to_string(), &key, &Labels::new()) {
                    // Another process committed the same chain meanwhile: as good as ours.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => ctx.sn.remove(&key),
                    other => other,
                }
            });
            if let Err(e) = committed {
                remove_quietly(ctx.sn, &key);
                return Err(UnpackError::Snapshot {
                    digest: job.desc.digest.clone(),
                    source: Box::new(e),
                }
                .into());
            }
            if ctx.discard {
                ctx.note_discarded(crate::discard::freed_or_kept(
                    crate::discard::discard_layer(
                        ctx.store.content(),
                        ctx.sn,
                        job.desc,
                        job.diff_id,
                        &job.chain,
                        split,
                        Some(ctx.lease),
                    ),
                ));
            }
        }
        Finished::Applied {
            key, lower_lookups, ..
        } => {
            // It needs its parents' files: again, on them, from the store.
            tracing::info!(layer = %job.desc.digest, lower_lookups, "layer depends on its parents: unpacking it again on them");
            remove_quietly(ctx.sn, &key);
            unpack_from_store(ctx, job)?;
        }
        Finished::Downloaded => {
            if ctx.sn.stat(&job.chain.to_string()).is_err() {
                unpack_from_store(ctx, job)?;
            } else {
                report(ctx, job, LayerState::Extracting, job.desc.size);
            }
        }
    }
    if !existed {
        ctx.unpacked.fetch_add(1, Ordering::Relaxed);
    }
    report(ctx, job, LayerState::Done, job.desc.size);
    Ok(())
}

/// Unpacks a layer whose blob is in the store, on its committed parent.
fn unpack_from_store(ctx: &Ctx<'_>, job: &Job<'_>) -> Result<(), PullError> {
    report(ctx, job, LayerState::Extracting, job.desc.size);
    let freed = unpack_layer(
        ctx.store.content(),
        ctx.sn,
        job.desc,
        job.diff_id,
        &job.chain,
        job.parent.as_ref(),
        Some(ctx.lease),
        ctx.discard,
    )?;
    ctx.note_discarded(freed);
    Ok(())
}

fn remove_quietly(sn: &dyn Snapshotter, key: &str) {
    if let Err(e) = sn.remove(key) {
        tracing::warn!("remove unfinished layer snapshot {key}: {e}");
    }
}

/// A worker's job on overlayfs: download into the ingest and apply in the same pass.
fn fetch_and_apply(
    ctx: &Ctx<'_>,
    job: &Job<'_>,
    cancel: &AtomicBool,
) -> Result<Finished, PullError> {
    // Blocks while another process fetches this blob.
    let writer = blobs::open_writer(ctx, job.desc)?;
    if ctx.sn.stat(&job.chain.to_string()).is_ok() {
        return Ok(Finished::Exists);
    }
    let key = format!("extract-{} {}", crate::unique_suffix(), job.chain);
    let snap = |source| UnpackError::Snapshot {
        digest: job.desc.digest.clone(),
        source: Box::new(source),
    };
    // Under the lease, so that a pull killed now leaves garbage the collector can tell.
    lease_snapshots(ctx, [key.clone()])?;
    ctx.sn.prepare(&key, None, &Labels::new()).map_err(snap)?;
    match apply(ctx, job, &key, writer, cancel) {
        Ok((lower_lookups, split)) => Ok(Finished::Applied {
            key,
            lower_lookups,
            split,
        }),
        Err(e) => {
            remove_quietly(ctx.sn, &key);
            Err(e)
        }
    }
}

/// Applies the layer into `key` (from the network through `writer`, or from the store when
/// the blob is there already), verifies it, and returns the apply's lower lookups and tar
/// split (when the pull discards).
fn apply(
    ctx: &Ctx<'_>,
    job: &Job<'_>,
    key: &str,
    writer: Option<Writer>,
    cancel: &AtomicBool,
) -> Result<(u64, Option<RecordedSplit>), PullError> {
    let digest = &job.desc.digest;
    let target = ctx
        .sn
        .apply_target(key)
        .map_err(|source| UnpackError::Snapshot {
            digest: digest.clone(),
            source: Box::new(source),
        })?;
    let whiteouts = if target.overlay_whiteouts {
        WhiteoutMode::Overlay
    } else {
        WhiteoutMode::Delete
    };
    // No lowers: the parents may not exist yet (see `lower_lookups`).
    let mut opts = ApplyOptions::new(digest.to_string(), whiteouts);
    opts.writeback = target.synced;
    opts.record_split = ctx.discard;
    opts.min_free = crate::space::min_free_bytes(ctx.store.db(), &target.dir);
    let apply_err = |source| UnpackError::Apply {
        digest: digest.clone(),
        source: Box::new(source),
    };
    let stats = match writer {
        None => {
            report(ctx, job, LayerState::Extracting, job.desc.size);
            let blob = ctx
                .store
                .content()
                .reader(digest)
                .map_err(PullError::store(digest))?;
            apply_layer(blob, &target.dir, &opts).map_err(apply_err)?
        }
        Some(writer) => {
            let mut tee = Tee::start(ctx, job, writer, cancel)?;
            let applied = apply_layer(&mut tee, &target.dir, &opts);
            // Every byte goes to the ingest, whatever the applier made of them: a layer that
            // would not apply may be a corrupt download, and the digest tells which. A network
            // or store failure shows through the applier as a read error; the failure itself
            // is what gets reported. A full disk stops the download too.
            let mut failed = tee.failed.take();
            let full = matches!(&applied, Err(e) if crate::space::is_out_of_space(e));
            let drained = match failed {
                Some(_) => Ok(0),
                None if full => Ok(0),
                None => io::copy(&mut tee, &mut io::sink()),
            };
            failed = failed.or_else(|| tee.failed.take());
            let writer = tee.finish(ctx)?;
            if let Some(e) = failed {
                return Err(blobs::discard_if_corrupt(ctx, job.desc, writer, e));
            }
            let applied = match applied {
                Err(e) if full => {
                    return Err(blobs::discard_if_corrupt(
                        ctx,
                        job.desc,
                        writer,
                        apply_err(e).into(),
                    ));
                }
                other => other,
            };
            drained.map_err(|e| {
                apply_err(ArchiveError::Read {
                    layer: digest.to_string(),
                    source: e,
                })
            })?;
            report(ctx, job, LayerState::Verifying, job.desc.size);
            ctx.store
                .content()
                .commit(
                    writer,
                    Some(job.desc.size),
                    Some(digest),
                    &Labels::new(),
                    Some(ctx.lease.id()),
                )
                .map_err(PullError::store(digest))?;
            blobs::label(ctx, job.desc, Labels::new())?;
            match applied {
                Ok(stats) => stats,
                // Without its lowers a hardlink to a file below cannot resolve: the blob is
                // stored, so the layer can be unpacked again on its parents.
                Err(ArchiveError::HardlinkTarget { .. }) => return Ok((1, None)),
                Err(e) => return Err(apply_err(e).into()),
            }
        }
    };
    if stats.diff_id != *job.diff_id {
        return Err(UnpackError::DiffIdMismatch {
            digest: digest.clone(),
            expected: job.diff_id.clone(),
            actual: stats.diff_id,
        }
        .into());
    }
    Ok((stats.lower_lookups, stats.split))
}

/// The stream a layer is applied from: the bytes an interrupted pull left in the ingest,
/// then the rest from the registry. The download task appends each chunk to the ingest
/// (hashing it) before handing it on, so the thread that decompresses does only that.
struct Tee<'a> {
    prefix: Option<io::Take<std::fs::File>>,
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, PullError>>,
    pending: Bytes,
    /// Bytes of the blob passed on so far (from its start).
    received: u64,
    /// Downloads into the ingest; gives the writer back when it ends.
    task: tokio::task::JoinHandle<Writer>,
    cancel: &'a AtomicBool,
    progress: &'a dyn super::Progress,
    desc: &'a Descriptor,
    /// The failure behind a read error, reported instead of it.
    failed: Option<PullError>,
}

impl<'a> Tee<'a> {
    fn start(
        ctx: &'a Ctx<'_>,
        job: &'a Job<'_>,
        mut writer: Writer,
        cancel: &'a AtomicBool,
    ) -> Result<Tee<'a>, PullError> {
        let offset = writer.offset();
        let prefix = if offset > 0 {
            Some(
                writer
                    .read_back()
                    .map_err(|e| PullError::store(&job.desc.digest)(e.into()))?,
            )
        } else {
            None
        };
        let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
        let (remote, reference, desc) =
            (ctx.remote.clone(), ctx.reference.clone(), job.desc.clone());
        // Ends when the stream does, or when the Tee (the receiver) is gone.
        let task = ctx.runtime.spawn(async move {
            match remote.fetch_blob(&reference, &desc, offset).await {
                Ok(mut stream) => {
                    while let Some(item) = stream.next().await {
                        let item = match item {
                            Ok(chunk) => match writer.write_chunk(&chunk) {
                                Ok(()) => Ok(chunk),
                                Err(e) => Err(PullError::store(&desc.digest)(e.into())),
                            },
                            Err(e) => Err(PullError::remote(e)),
                        };
                        let last = item.is_err();
                        if tx.send(item).await.is_err() || last {
                            break;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(PullError::remote(e))).await;
                }
            }
            writer
        });
        ctx.progress.layer(
            &job.desc.digest,
            LayerState::Downloading,
            offset,
            job.desc.size,
        );
        Ok(Tee {
            prefix,
            rx,
            pending: Bytes::new(),
            received: offset,
            task,
            cancel,
            progress: ctx.progress,
            desc: job.desc,
            failed: None,
        })
    }

    /// Stops the download (if it still runs) and takes the ingest's writer back.
    fn finish(self, ctx: &Ctx<'_>) -> Result<Writer, PullError> {
        drop(self.rx);
        ctx.runtime
            .block_on(self.task)
            .map_err(|e| PullError::Runtime(io::Error::other(e)))
    }

    fn fail(&mut self, e: PullError) -> io::Error {
        let err = io::Error::other(e.to_string());
        self.failed = Some(e);
        err
    }
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(prefix) = &mut self.prefix {
            match prefix.read(buf)? {
                0 => self.prefix = None,
                n => return Ok(n),
            }
        }
        while self.pending.is_empty() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(io::Error::other("pull cancelled: another layer failed"));
            }
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.received += chunk.len() as u64;
                    self.progress.layer(
                        &self.desc.digest,
                        LayerState::Downloading,
                        self.received,
                        self.desc.size,
                    );
                    self.pending = chunk;
                }
                Some(Err(e)) => return Err(self.fail(e)),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.advance(n);
        Ok(n)
    }
}
