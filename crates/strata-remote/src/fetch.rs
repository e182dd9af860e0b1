//! Fetching blobs as verified streams.
//!
//! [`Remote::fetch_blob`] returns a [`BlobStream`] that enforces the descriptor while the
//! bytes flow: a `Content-Length` that disagrees with the descriptor fails before the first
//! byte, a body that goes past the expected size fails at the chunk that crosses it, a body
//! that ends short fails at its end, and when the stream has seen the blob from its first
//! byte its last item is the digest check. Callers (the content store's ingest) therefore
//! never hold unverified bytes longer than a chunk, and still verify again at commit.
//!
//! Starting at an offset sends `Range: bytes=<offset>-`; a registry that ignores it answers
//! the whole blob, and the stream skips the bytes before the offset itself (hashing them, so
//! the digest is still checked). A body that breaks off (connection reset, unexpected EOF)
//! is resumed with a new ranged request from where it stopped, up to `retries` times, so one
//! dropped connection does not cost a whole layer. A body that trickles under the low-speed
//! limit fails with [`RemoteError::Stalled`] and is not resumed here (a slow server stays
//! slow); the caller keeps what it has and a later fetch goes on from its offset. Redirects (to blob storage on other
//! hosts) are followed; `Authorization` is not sent to other hosts.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, Response, StatusCode, Url};
use sha2::Digest as _;
use strata_types::{Descriptor, Digest, Sha256};

use crate::auth::repository_scope;
use crate::client::{Action, Call, Remote, transient};
use crate::error::RemoteError;
use crate::hosts::RegistryHost;
use crate::reference::Reference;
use crate::speed::{ChunkError, LowSpeed};

/// A blob's bytes from an offset to its end, verified as they come (see the module
/// documentation). A `Stream` of `Bytes` chunks; [`BlobStream::into_reader`] makes it an
/// `AsyncRead`.
pub struct BlobStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, RemoteError>> + Send>>,
    offset: u64,
    size: u64,
    host: String,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("offset", &self.offset)
            .field("size", &self.size)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl BlobStream {
    /// Where the stream starts in the blob.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The blob's total size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The host serving it (a mirror or the registry).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Collects the rest of the stream (for configs and other small blobs).
    pub async fn bytes(mut self) -> Result<Vec<u8>, RemoteError> {
        use futures_util::StreamExt as _;
        // The size comes from a manifest: reserve for small blobs only, grow for the rest.
        let expected = usize::try_from(self.size - self.offset).unwrap_or(0);
        let mut out = Vec::with_capacity(expected.min(4 << 20));
        while let Some(chunk) = self.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// The stream as a `tokio::io::AsyncRead`; errors become `io::Error`s wrapping the
    /// [`RemoteError`] (`get_ref()` and downcast to see it).
    pub fn into_reader(self) -> impl tokio::io::AsyncRead + Send + Unpin {
        use futures_util::TryStreamExt as _;
        tokio_util::io::StreamReader::new(self.map_err(std::io::Error::other))
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, RemoteError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// The state of one blob download across resumes.
struct Fetch {
    remote: Remote,
    host: RegistryHost,
    reference: String,
    registry: String,
    repository_scope: String,
    url: Url,
    digest: Digest,
    size: u64,
    /// The next byte of the blob the caller gets.
    pos: u64,
    /// Bytes at the front of the current body to drop (a registry that ignored `Range`).
    skip: u64,
    /// Whether dropped bytes are hashed (the current body started at byte 0 and the hash
    /// did not cover them yet).
    hash_skipped: bool,
    /// Present when the bytes seen so far start at byte 0.
    hasher: Option<Sha256>,
    body: Option<Response>,
    /// The low-speed check of the current body.
    speed: LowSpeed,
    resumes: u32,
    finished: bool,
}

enum Opened {
    Ok,
    NotFound,
}

impl Fetch {
    fn call(&self) -> Call<'_> {
        let mut call = Call::new(
            &self.reference,
            &self.registry,
            Action::Pull,
            &self.host,
            Method::GET,
            self.url.clone(),
            vec![self.repository_scope.clone()],
        );
        if self.pos > 0 {
            call = call.header(RANGE, &format!("bytes={}-", self.pos));
        }
        call
    }

    fn size_mismatch(&self, actual: u64) -> RemoteError {
        RemoteError::SizeMismatch {
            reference: self.reference.clone(),
            digest: self.digest.clone(),
            expected: self.size,
            actual,
        }
    }

    fn overflow(&self) -> RemoteError {
        RemoteError::Overflow {
            reference: self.reference.clone(),
            digest: self.digest.clone(),
            expected: self.size,
        }
    }

    fn protocol(&self, message: String) -> RemoteError {
        RemoteError::Protocol {
            reference: self.reference.clone(),
            host: self.host.host.clone(),
            message,
        }
    }

    /// Sends the (ranged) request from `pos` and checks the answer's framing.
    async fn open(&mut self) -> Result<Opened, RemoteError> {
        let call = self.call();
        let resp = self.remote.send(&call).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(Opened::NotFound);
        }
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            // The registry holds fewer bytes than the descriptor says.
            return Err(self.size_mismatch(self.pos));
        }
        if !status.is_success() {
            return Err(self.remote.unexpected(&call, resp).await);
        }
        let length = resp.content_length();
        if status == StatusCode::PARTIAL_CONTENT {
            let range = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let (start, end, total) = parse_content_range(&range).ok_or_else(|| {
                self.protocol(format!("206 with an unreadable Content-Range {range:?}"))
            })?;
            if start != self.pos {
                return Err(self.protocol(format!(
                    "asked for bytes from {} and got Content-Range {range:?}",
                    self.pos
                )));
            }
            if let Some(total) = total
                && total != self.size
            {
                return Err(self.size_mismatch(total));
            }
            if end >= self.size {
                return Err(self.overflow());
            }
            if let Some(len) = length
                && len != end - start + 1
            {
                return Err(self.protocol(format!(
                    "Content-Length {len} disagrees with Content-Range {range:?}"
                )));
            }
            self.skip = 0;
            self.hash_skipped = false;
        } else {
            // The whole blob, whatever we asked for.
            if let Some(len) = length {
                if len > self.size {
                    return Err(self.overflow());
                }
                if len < self.size {
                    return Err(self.size_mismatch(len));
                }
            }
            self.skip = self.pos;
            self.hash_skipped = self.hasher.is_none();
            if self.hash_skipped {
                self.hasher = Some(Sha256::new());
            }
        }
        self.body = Some(resp);
        self.speed = self.remote.low_speed();
        Ok(Opened::Ok)
    }

    /// After a broken body: waits, then reopens from `pos`, or gives up with `error`.
    async fn resume(&mut self, error: RemoteError) -> Result<(), RemoteError> {
        self.body = None;
        if self.resumes >= self.remote.options().retries {
            return Err(error);
        }
        tracing::info!(digest = %self.digest, pos = self.pos, error = %error, "resuming blob download");
        tokio::time::sleep(self.remote.backoff(self.resumes, None)).await;
        self.resumes += 1;
        match self.open().await? {
            Opened::Ok => Ok(()),
            Opened::NotFound => Err(RemoteError::BlobUnknown {
                reference: self.reference.clone(),
                digest: self.digest.clone(),
            }),
        }
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, RemoteError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let Some(body) = self.body.as_mut() else {
                // Only after a failed resume, which already returned its error.
                return Ok(None);
            };
            match self.speed.chunk(body).await {
                Ok(Some(mut chunk)) => {
                    if self.skip > 0 {
                        let n = usize::try_from(self.skip)
                            .unwrap_or(usize::MAX)
                            .min(chunk.len());
                        if self.hash_skipped
                            && let Some(h) = self.hasher.as_mut()
                        {
                            h.update(&chunk[..n]);
                        }
                        self.skip -= n as u64;
                        chunk = chunk.slice(n..);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    if self.pos + chunk.len() as u64 > self.size {
                        self.finished = true;
                        return Err(self.overflow());
                    }
                    if let Some(h) = self.hasher.as_mut() {
                        h.update(&chunk);
                    }
                    self.pos += chunk.len() as u64;
                    return Ok(Some(chunk));
                }
                Ok(None) => {
                    if self.pos < self.size || self.skip > 0 {
                        // Ended early without an error: treat it as a dropped connection.
                        let short = self.size_mismatch(self.pos);
                        if let Err(e) = self.resume(short).await {
                            self.finished = true;
                            return Err(e);
                        }
                        continue;
                    }
                    self.finished = true;
                    self.body = None;
                    if let Some(h) = self.hasher.take() {
                        let actual = Digest::from_hasher(h);
                        if actual != self.digest {
                            return Err(RemoteError::DigestMismatch {
                                reference: self.reference.clone(),
                                expected: self.digest.clone(),
                                actual,
                            });
                        }
                    }
                    return Ok(None);
                }
                Err(ChunkError::Stalled { limit, seconds }) => {
                    // A slow server stays slow: no resume; the caller's partial data stays
                    // resumable by a later fetch from its offset.
                    self.finished = true;
                    self.body = None;
                    return Err(RemoteError::Stalled {
                        reference: self.reference.clone(),
                        what: format!("blob {}", self.digest),
                        upload: false,
                        host: self.host.host.clone(),
                        limit,
                        seconds,
                    });
                }
                Err(ChunkError::Http(e)) => {
                    let retry = transient(&e);
                    let error = RemoteError::Transfer {
                        reference: self.reference.clone(),
                        digest: self.digest.clone(),
                        host: self.host.host.clone(),
                        source: e,
                    };
                    let resumed = if retry {
                        self.resume(error).await
                    } else {
                        Err(error)
                    };
                    if let Err(e) = resumed {
                        self.finished = true;
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`).
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, end, total))
}

impl Remote {
    /// Streams the blob `d` of `r`'s repository from `offset` (see the module documentation).
    /// Hosts with `pull` are tried in order until one has it.
    pub async fn fetch_blob(
        &self,
        r: &Reference,
        d: &Descriptor,
        offset: u64,
    ) -> Result<BlobStream, RemoteError> {
        let reference = r.to_string();
        if offset > d.size {
            return Err(RemoteError::BadOffset {
                reference,
                digest: d.digest.clone(),
                offset,
                size: d.size,
            });
        }
        let hosts = self.hosts_with(r, "pull", |h| h.capabilities.pull)?;
        if offset == d.size && offset > 0 {
            return Ok(BlobStream {
                inner: Box::pin(futures_util::stream::empty()),
                offset,
                size: d.size,
                host: hosts[0].host.clone(),
            });
        }
        let mut last_error = None;
        for host in hosts {
            let url = self.url(&host, r, &format!("blobs/{}", d.digest))?;
            let mut fetch = Fetch {
                remote: self.clone(),
                host: host.clone(),
                reference: reference.clone(),
                registry: r.registry().to_owned(),
                repository_scope: repository_scope(r.repository(), false),
                url,
                digest: d.digest.clone(),
                size: d.size,
                pos: offset,
                skip: 0,
                hash_skipped: false,
                hasher: (offset == 0).then(Sha256::new),
                body: None,
                speed: self.low_speed(),
                resumes: 0,
                finished: false,
            };
            match fetch.open().await {
                Ok(Opened::Ok) => {
                    let stream = futures_util::stream::try_unfold(fetch, |mut f| async move {
                        Ok(f.next_chunk().await?.map(|chunk| (chunk, f)))
                    });
                    return Ok(BlobStream {
                        inner: Box::pin(stream),
                        offset,
                        size: d.size,
                        host: host.host.clone(),
                    });
                }
                Ok(Opened::NotFound) => {
                    last_error = Some(RemoteError::BlobUnknown {
                        reference: reference.clone(),
                        digest: d.digest.clone(),
                    });
                }
                Err(
                    e @ (RemoteError::Unreachable { .. }
                    | RemoteError::Registry { .. }
                    | RemoteError::Denied { .. }
                    | RemoteError::AuthRequired { .. }),
                ) if host.mirror => {
                    tracing::info!(host = %host.host, error = %e, "mirror failed, trying the next host");
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(RemoteError::BlobUnknown {
            reference,
            digest: d.digest.clone(),
        }))
    }

    /// Whether the registry holds blob `digest` in `r`'s repository (`HEAD`, asked of the
    /// first host with `push`: this serves push decisions).
    pub async fn blob_exists(&self, r: &Reference, digest: &Digest) -> Result<bool, RemoteError> {
        let reference = r.to_string();
        let hosts = self.hosts_with(r, "push", |h| h.capabilities.push)?;
        let host = &hosts[0];
        let url = self.url(host, r, &format!("blobs/{digest}"))?;
        // A pull scope is enough to ask, but a refusal is one to push.
        let call = Call::new(
            &reference,
            r.registry(),
            Action::Push,
            host,
            Method::HEAD,
            url,
            vec![repository_scope(r.repository(), false)],
        );
        let resp = self.send(&call).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.unexpected(&call, resp).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 10-19/20"),
            Some((10, 19, Some(20)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, 0, None)));
        assert_eq!(parse_content_range("bytes 5-4/9"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range(""), None);
    }
}
