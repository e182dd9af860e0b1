//! Pushing blobs and manifests.
//!
//! A blob goes up in one of three ways, cheapest first:
//!
//! 1. **Cross-repository mount**, when the caller names a repository on the same registry
//!    that has the blob (`POST …/blobs/uploads/?mount=<digest>&from=<repo>`, with a token that
//!    also grants `pull` on that repository). `201` means done without sending a byte. A
//!    registry that cannot mount (no access to the source, mounting disabled) answers `202`
//!    with a fresh upload, or an error; either way the blob is uploaded instead.
//! 2. **Monolithic upload** for blobs up to `chunk_size`: `POST` to open an upload, then one
//!    `PUT <location>?digest=<digest>` with the whole body.
//! 3. **Chunked upload** for bigger blobs: `PATCH <location>` with `Content-Range: a-b` per
//!    chunk (each answer gives the next location and the bytes received so far), then the
//!    last chunk in the closing `PUT ?digest=`.
//!
//! Uploads resume: when a chunk fails (dropped connection, `5xx`, `416`), the upload's status
//! (`GET <location>`, `Range: 0-<last byte>`) says where to go on from, and if the upload is
//! gone the blob is checked for (a lost `201`) or the upload started over — within `retries`.
//! The registry verifies the digest at the closing `PUT`; its `Docker-Content-Digest` answer
//! is checked too.
//!
//! Manifests are `PUT` last, by tag or by digest, with their media type as `Content-Type`,
//! and come back as the descriptor the registry stored.

use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};
use strata_types::{Descriptor, Digest};

use crate::auth::repository_scope;
use crate::client::{Action, BodyFn, Call, Remote, add_namespace};
use crate::error::RemoteError;
use crate::hosts::RegistryHost;
use crate::media;
use crate::reference::{Reference, valid_repository, valid_tag};
use crate::resolve::MAX_MANIFEST_SIZE;
use crate::speed::UploadWatch;

/// How much a body stream reads from its source at a time.
const PIECE: usize = 1 << 20;

/// The bytes of a blob to push, readable at any offset (so chunks can be sent again).
///
/// `read_at` may block (it runs on tokio's blocking pool); it returns at most `len` bytes
/// from `offset`, fewer only at the end of the data.
pub trait BlobSource: Send + Sync + 'static {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes>;
}

impl BlobSource for Bytes {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let end = start.saturating_add(len).min(self.len());
        Ok(self.slice(start..end))
    }
}

impl BlobSource for Vec<u8> {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let end = start.saturating_add(len).min(self.len());
        Ok(Bytes::copy_from_slice(&self[start..end]))
    }
}

impl BlobSource for std::fs::File {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0; len];
        let mut filled = 0;
        while filled < len {
            match FileExt::read_at(self, &mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        Ok(Bytes::from(buf))
    }
}

impl<T: BlobSource + ?Sized> BlobSource for Arc<T> {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        (**self).read_at(offset, len)
    }
}

/// How a blob got to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPushed {
    /// Mounted from another repository of the registry: no bytes sent.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// What one upload request achieved.
enum Step {
    /// The registry holds bytes `0..offset`; go on at `location`.
    Progress(Url, u64),
    Done,
    /// Worth retrying after finding out where the upload stands.
    Retry(RemoteError),
}

/// Everything an upload needs to name in requests and errors.
struct Upload<'a> {
    remote: &'a Remote,
    r: &'a Reference,
    reference: String,
    host: &'a RegistryHost,
    d: &'a Descriptor,
    source: Arc<dyn BlobSource>,
    scopes: Vec<String>,
    /// A read error of the source, kept aside so it is not mistaken for a network failure.
    source_error: Arc<Mutex<Option<io::Error>>>,
}

impl Remote {
    /// Uploads blob `d` (its bytes from `data`) to `r`'s repository, trying a cross-repository
    /// mount from `mount_from` (a repository path on the same registry) first. Call
    /// [`Remote::blob_exists`] before: this always sends.
    pub async fn push_blob(
        &self,
        r: &Reference,
        d: &Descriptor,
        data: impl BlobSource,
        mount_from: Option<&str>,
    ) -> Result<BlobPushed, RemoteError> {
        let reference = r.to_string();
        let hosts = self.hosts_with(r, "push", |h| h.capabilities.push)?;
        let host = &hosts[0];
        let push_scope = repository_scope(r.repository(), true);
        let up = Upload {
            remote: self,
            r,
            reference: reference.clone(),
            host,
            d,
            source: Arc::new(data),
            scopes: vec![push_scope.clone()],
            source_error: Arc::new(Mutex::new(None)),
        };
        let mut location = None;
        if let Some(from) = mount_from.filter(|f| *f != r.repository()) {
            if !valid_repository(from) {
                return Err(RemoteError::InvalidReference {
                    reference: format!("{}/{from}", r.registry()),
                    reason: "invalid repository to mount from".into(),
                });
            }
            let mut url = self.url(host, r, "blobs/uploads/")?;
            url.query_pairs_mut()
                .append_pair("mount", &d.digest.to_string())
                .append_pair("from", from);
            let call = Call::new(
                &reference,
                r.registry(),
                Action::Push,
                host,
                Method::POST,
                url,
                vec![push_scope.clone(), repository_scope(from, false)],
            )
            .header(CONTENT_LENGTH, "0");
            match self.send(&call).await {
                Ok(resp) if resp.status() == StatusCode::CREATED => {
                    tracing::debug!(digest = %d.digest, from, "mounted");
                    return Ok(BlobPushed::Mounted);
                }
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                    location = Some(up.location(&call.url, resp.headers())?);
                }
                Ok(resp) => {
                    tracing::debug!(status = %resp.status(), from, "mount refused, uploading");
                }
                Err(
                    e @ (RemoteError::AuthRequired { .. }
                    | RemoteError::AuthRefused { .. }
                    | RemoteError::Denied { .. }),
                ) => {
                    tracing::debug!(error = %e, from, "no access to the mount source, uploading");
                }
                Err(e) => return Err(e),
            }
        }
        up.run(location).await?;
        Ok(BlobPushed::Uploaded)
    }

    /// Stores a manifest or index under `tag_or_digest` in `r`'s repository and returns its
    /// descriptor. Everything it references must be pushed already.
    pub async fn push_manifest(
        &self,
        r: &Reference,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Descriptor, RemoteError> {
        let separator = if tag_or_digest.contains(':') {
            '@'
        } else {
            ':'
        };
        let reference = format!("{}{separator}{tag_or_digest}", r.name());
        media::check_manifest_type(&reference, media_type)?;
        let size = bytes.len() as u64;
        if size > MAX_MANIFEST_SIZE {
            return Err(RemoteError::ManifestTooLarge {
                reference,
                size,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let digest = Digest::sha256_of(bytes);
        if tag_or_digest.contains(':') {
            let wanted: Digest =
                tag_or_digest
                    .parse()
                    .map_err(
                        |e: strata_types::DigestError| RemoteError::InvalidReference {
                            reference: reference.clone(),
                            reason: e.to_string(),
                        },
                    )?;
            if wanted != digest {
                return Err(RemoteError::DigestMismatch {
                    reference,
                    expected: wanted,
                    actual: digest,
                });
            }
        } else if !valid_tag(tag_or_digest) {
            return Err(RemoteError::InvalidReference {
                reference,
                reason: "invalid tag: expected [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}".into(),
            });
        }
        let hosts = self.hosts_with(r, "push", |h| h.capabilities.push)?;
        let host = &hosts[0];
        let url = self.url(host, r, &format!("manifests/{tag_or_digest}"))?;
        let body = Bytes::copy_from_slice(bytes);
        let call = Call::new(
            &reference,
            r.registry(),
            Action::Push,
            host,
            Method::PUT,
            url,
            vec![repository_scope(r.repository(), true)],
        )
        .header(CONTENT_TYPE, media_type)
        .body(Arc::new(move || reqwest::Body::from(body.clone())));
        let resp = self.send(&call).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.unexpected(&call, resp).await);
        }
        if let Some(got) = header_digest(resp.headers())
            && got != digest
        {
            return Err(RemoteError::DigestMismatch {
                reference,
                expected: digest,
                actual: got,
            });
        }
        Ok(Descriptor::new(media_type, digest, size))
    }
}

fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

impl Upload<'_> {
    fn call(&self, method: Method, url: Url) -> Call<'_> {
        Call::new(
            &self.reference,
            self.r.registry(),
            Action::Push,
            self.host,
            method,
            url,
            self.scopes.clone(),
        )
    }

    fn protocol(&self, message: String) -> RemoteError {
        RemoteError::Protocol {
            reference: self.reference.clone(),
            host: self.host.host.clone(),
            message,
        }
    }

    /// The `Location` of an upload answer, resolved against the request URL.
    fn location(&self, request: &Url, headers: &HeaderMap) -> Result<Url, RemoteError> {
        let loc = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.protocol("upload answer without a Location".into()))?;
        let mut url = request
            .join(loc)
            .map_err(|e| self.protocol(format!("unreadable upload Location {loc:?}: {e}")))?;
        add_namespace(&mut url, self.host, self.r.registry());
        Ok(url)
    }

    /// Whether requests to `url` may carry credentials: only on the registry's own host.
    fn same_host(&self, url: &Url) -> bool {
        let authority = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return false,
        };
        authority == self.host.host && url.scheme() == self.host.scheme
    }

    /// A body of the source's bytes `start..end`, made anew for each send, telling `watch`
    /// when it waits on the connection.
    fn body(&self, start: u64, end: u64, watch: &UploadWatch) -> BodyFn {
        let source = self.source.clone();
        let failure = self.source_error.clone();
        let watch = watch.clone();
        Arc::new(move || {
            let source = source.clone();
            let failure = failure.clone();
            watch.restart();
            let watch = watch.clone();
            let stream = futures_util::stream::try_unfold(start, move |pos| {
                let source = source.clone();
                let failure = failure.clone();
                let watch = watch.clone();
                async move {
                    watch.pulled();
                    if pos >= end {
                        watch.finished();
                        return Ok(None);
                    }
                    let len = usize::try_from(end - pos).unwrap_or(PIECE).min(PIECE);
                    let read = tokio::task::spawn_blocking(move || source.read_at(pos, len))
                        .await
                        .unwrap_or_else(|e| Err(io::Error::other(e)));
                    let bytes = match read {
                        Ok(b) if b.is_empty() => Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the data ends at byte {pos}, before its size {end}"),
                        )),
                        Ok(b) => Ok(b.slice(..b.len().min(len))),
                        Err(e) => Err(e),
                    };
                    match bytes {
                        Ok(b) => {
                            let next = pos + b.len() as u64;
                            // The client may not ask past the last byte: done once it is out.
                            if next >= end {
                                watch.finished();
                            } else {
                                watch.sent(b.len());
                            }
                            Ok(Some((b, next)))
                        }
                        Err(e) => {
                            let message = e.to_string();
                            if let Ok(mut slot) = failure.lock() {
                                slot.get_or_insert(e);
                            }
                            Err(io::Error::other(message))
                        }
                    }
                }
            });
            reqwest::Body::wrap_stream(stream)
        })
    }

    /// Sends `call`, whose body `watch` follows: a body the registry takes slower than the
    /// low-speed limit is given up (not retried: a slow server stays slow).
    async fn send_watched(
        &self,
        call: &Call<'_>,
        watch: &UploadWatch,
    ) -> Result<Response, RemoteError> {
        tokio::select! {
            sent = self.remote.send(call) => sent,
            (limit, seconds) = watch.stalled() => Err(RemoteError::Stalled {
                reference: self.reference.clone(),
                what: format!("upload of blob {}", self.d.digest),
                upload: true,
                host: self.host.host.clone(),
                limit,
                seconds,
            }),
        }
    }

    fn take_source_error(&self) -> Option<RemoteError> {
        let e = self.source_error.lock().ok()?.take()?;
        Some(RemoteError::Source {
            reference: self.reference.clone(),
            digest: self.d.digest.clone(),
            source: e,
        })
    }

    /// `POST …/blobs/uploads/`: a new upload's location.
    async fn start(&self) -> Result<Url, RemoteError> {
        let url = self.remote.url(self.host, self.r, "blobs/uploads/")?;
        let call = self.call(Method::POST, url).header(CONTENT_LENGTH, "0");
        let resp = self.remote.send(&call).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.remote.unexpected(&call, resp).await);
        }
        self.location(&call.url, resp.headers())
    }

    /// Runs the upload to its end, from `location` when a mount attempt opened one.
    async fn run(&self, mut location: Option<Url>) -> Result<(), RemoteError> {
        let size = self.d.size;
        let chunk = self.remote.options().chunk_size.max(1);
        let mut offset = 0;
        let mut failures = 0;
        loop {
            let loc = match location.take() {
                Some(l) => l,
                None => {
                    offset = 0;
                    self.start().await?
                }
            };
            let step = if size - offset <= chunk {
                self.finish(&loc, offset).await?
            } else {
                self.patch(&loc, offset, offset + chunk).await?
            };
            match step {
                Step::Done => return Ok(()),
                Step::Progress(next, received) => {
                    location = Some(next);
                    offset = received;
                }
                Step::Retry(error) => {
                    failures += 1;
                    if failures > self.remote.options().retries {
                        return Err(error);
                    }
                    tracing::info!(digest = %self.d.digest, offset, error = %error, "upload interrupted, resuming");
                    tokio::time::sleep(self.remote.backoff(failures - 1, None)).await;
                    match self.status(&loc).await {
                        Some((next, received)) => {
                            location = Some(next);
                            offset = received;
                        }
                        None => {
                            // The upload is gone: finished (its 201 lost) or expired.
                            if self.remote.blob_exists(self.r, &self.d.digest).await? {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
    }

    /// Classifies a failed send of a chunk or of the closing `PUT`.
    fn failed(&self, e: RemoteError) -> Result<Step, RemoteError> {
        if let Some(source) = self.take_source_error() {
            return Err(source);
        }
        match e {
            RemoteError::Unreachable { .. } => Ok(Step::Retry(e)),
            e => Err(e),
        }
    }

    /// Classifies an unexpected answer to a chunk or to the closing `PUT`.
    async fn refused(&self, call: &Call<'_>, resp: Response) -> Result<Step, RemoteError> {
        let status = resp.status().as_u16();
        let e = self.remote.unexpected(call, resp).await;
        match status {
            // Unknown upload (expired or finished), range trouble, server trouble.
            404 | 408 | 416 | 429 | 500..=599 => Ok(Step::Retry(e)),
            _ => Err(e),
        }
    }

    /// `PATCH` bytes `start..end`.
    async fn patch(&self, loc: &Url, start: u64, end: u64) -> Result<Step, RemoteError> {
        let watch = self.remote.upload_watch();
        let mut call = self
            .call(Method::PATCH, loc.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, &(end - start).to_string())
            .header(
                reqwest::header::CONTENT_RANGE,
                &format!("{start}-{}", end - 1),
            )
            .body(self.body(start, end, &watch));
        call.retry = false;
        call.authorize = self.same_host(loc);
        let resp = match self.send_watched(&call, &watch).await {
            Ok(r) => r,
            Err(e) => return self.failed(e),
        };
        if resp.status() != StatusCode::ACCEPTED {
            return self.refused(&call, resp).await;
        }
        let next = self.location(loc, resp.headers())?;
        let received = received(resp.headers()).unwrap_or(end);
        if received < start || received > end {
            return Ok(Step::Retry(self.protocol(format!(
                "after sending bytes {start}-{} the registry reports {received} received",
                end - 1
            ))));
        }
        Ok(Step::Progress(next, received))
    }

    /// The closing `PUT ?digest=` with bytes `start..size`.
    async fn finish(&self, loc: &Url, start: u64) -> Result<Step, RemoteError> {
        let size = self.d.size;
        // A body small enough to hold goes out in one write: only a streamed one is watched.
        let mut watch = UploadWatch::new(0, std::time::Duration::ZERO);
        let mut url = loc.clone();
        url.query_pairs_mut()
            .append_pair("digest", &self.d.digest.to_string());
        let body = if size - start <= PIECE as u64 * 16 {
            // Small enough to hold: a plain body, which survives redirects and retries.
            let source = self.source.clone();
            let len = usize::try_from(size - start).unwrap_or(usize::MAX);
            let read = tokio::task::spawn_blocking(move || source.read_at(start, len))
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e)));
            let bytes = match read {
                Ok(b) if b.len() == len => b,
                Ok(b) => {
                    return Err(RemoteError::Source {
                        reference: self.reference.clone(),
                        digest: self.d.digest.clone(),
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "the data ends at byte {}, before its size {size}",
                                start + b.len() as u64
                            ),
                        ),
                    });
                }
                Err(source) => {
                    return Err(RemoteError::Source {
                        reference: self.reference.clone(),
                        digest: self.d.digest.clone(),
                        source,
                    });
                }
            };
            let body: BodyFn = Arc::new(move || reqwest::Body::from(bytes.clone()));
            body
        } else {
            watch = self.remote.upload_watch();
            self.body(start, size, &watch)
        };
        let mut call = self
            .call(Method::PUT, url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, &(size - start).to_string())
            .body(body);
        call.retry = false;
        call.authorize = self.same_host(loc);
        let resp = match self.send_watched(&call, &watch).await {
            Ok(r) => r,
            Err(e) => return self.failed(e),
        };
        if resp.status() != StatusCode::CREATED {
            return self.refused(&call, resp).await;
        }
        if let Some(got) = header_digest(resp.headers())
            && got != self.d.digest
        {
            return Err(RemoteError::DigestMismatch {
                reference: self.reference.clone(),
                expected: self.d.digest.clone(),
                actual: got,
            });
        }
        Ok(Step::Done)
    }

    /// Where an upload stands (`GET <location>` → `204`, `Range: 0-<last>`), `None` when the
    /// registry no longer knows it.
    async fn status(&self, loc: &Url) -> Option<(Url, u64)> {
        let mut call = self.call(Method::GET, loc.clone());
        call.authorize = self.same_host(loc);
        let resp = self.remote.send(&call).await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let next = self
            .location(loc, resp.headers())
            .unwrap_or_else(|_| loc.clone());
        Some((next, received(resp.headers()).unwrap_or(0)))
    }
}

/// Bytes received so far from a `Range: 0-<last>` (or `bytes=0-<last>`) answer. A registry
/// that has nothing says `0-0` (distribution) or nothing at all.
fn received(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get("range")?.to_str().ok()?.trim();
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (start, end) = v.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    if start != 0 {
        return None;
    }
    Some(if end == 0 { 0 } else { end + 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn sources_read_at_offsets() {
        let b = Bytes::from_static(b"0123456789");
        assert_eq!(b.read_at(3, 4).unwrap(), Bytes::from_static(b"3456"));
        assert_eq!(b.read_at(8, 4).unwrap(), Bytes::from_static(b"89"));
        assert!(b.read_at(20, 4).unwrap().is_empty());
        let v = b"abc".to_vec();
        assert_eq!(v.read_at(1, 10).unwrap(), Bytes::from_static(b"bc"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello world").unwrap();
        let f = std::fs::File::open(&p).unwrap();
        assert_eq!(f.read_at(6, 100).unwrap(), Bytes::from_static(b"world"));
        let a: Arc<dyn BlobSource> = Arc::new(b);
        assert_eq!(a.read_at(0, 2).unwrap(), Bytes::from_static(b"01"));
    }

    #[test]
    fn reads_upload_ranges() {
        let mut h = HeaderMap::new();
        assert_eq!(received(&h), None);
        h.insert("range", HeaderValue::from_static("0-1023"));
        assert_eq!(received(&h), Some(1024));
        h.insert("range", HeaderValue::from_static("bytes=0-9"));
        assert_eq!(received(&h), Some(10));
        h.insert("range", HeaderValue::from_static("0-0"));
        assert_eq!(received(&h), Some(0));
        h.insert("range", HeaderValue::from_static("5-9"));
        assert_eq!(received(&h), None);
    }
}
