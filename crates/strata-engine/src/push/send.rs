//! Sending a plan: blobs (HEAD, cross-repository mount, upload) concurrently, then the
//! manifests, then the index; and the distribution-source labels that make later pushes mount.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use strata_metadata::{ContentStore, Labels};
use strata_remote::{BlobPushed, BlobSource, Reference, Remote};
use strata_types::Digest;

use super::plan::*;
use super::*;

/// `registry` without its port: containerd's labels name the host only.
pub(crate) fn label_host(registry: &str) -> &str {
    match registry.find(']') {
        Some(end) => &registry[..=end],
        None => registry.split(':').next().unwrap_or(registry),
    }
}

/// The label that lists the repositories of `registry` a blob is in, keyed as containerd
/// keys it: by host, without the port.
pub(crate) fn distribution_source_key(registry: &str) -> String {
    strata_types::labels::distribution_source_key(label_host(registry))
}

/// The repositories of `registry` other than `target_repo` that `labels` say hold the blob,
/// from `containerd.io/distribution.source.<registry or its host>` labels.
pub(super) fn mount_sources(labels: &Labels, registry: &str, target_repo: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for host in [registry, label_host(registry)] {
        let Some(value) = labels.get(&strata_types::labels::distribution_source_key(host)) else {
            continue;
        };
        for repo in strata_types::labels::source_repos(value) {
            if repo != target_repo && !out.iter().any(|r| r == repo) {
                out.push(repo.to_owned());
            }
        }
    }
    out
}

/// `labels` with `repo` added to the distribution source of `registry`; `None` when it is
/// there already.
pub(super) fn with_source(labels: &Labels, registry: &str, repo: &str) -> Option<(String, String)> {
    let key = distribution_source_key(registry);
    match labels.get(&key).map(String::as_str) {
        Some(v) if strata_types::labels::source_repos(v).any(|r| r == repo) => None,
        Some(v) if !v.is_empty() => Some((key, format!("{v},{repo}"))),
        _ => Some((key, repo.to_owned())),
    }
}

/// Notes on every blob and manifest sent that `dest`'s repository now holds it, so a later
/// push to another repository of the registry mounts instead of uploading. Best effort.
pub(super) fn record_source(content: &ContentStore, dest: &Reference, plan: &Plan) {
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
pub(super) async fn registry_has(remote: &Remote, r: &Reference, digests: &[Digest]) -> bool {
    for digest in digests {
        if let Err(e) = remote.resolve(&r.with_digest(digest.clone())).await {
            tracing::debug!("{digest} not in the registry: {e}");
            return false;
        }
    }
    true
}

pub(super) async fn send(
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
pub(super) struct Counted {
    pub(super) file: std::fs::File,
    pub(super) sent: Arc<AtomicU64>,
}

impl BlobSource for Counted {
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<bytes::Bytes> {
        let bytes = BlobSource::read_at(&self.file, offset, len)?;
        self.sent
            .fetch_max(offset + bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }
}

pub(super) async fn push_blob(
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
