//! Resolving a reference to a descriptor, and fetching manifests.
//!
//! **Resolve** asks `HEAD /v2/<name>/manifests/<tag or digest>` with an `Accept` of the four
//! manifest types and builds the descriptor from `Docker-Content-Digest`, `Content-Length`
//! and `Content-Type`. When the answer lacks one of them (or says `application/json`), or
//! the registry refuses `HEAD`, it `GET`s the manifest instead and computes them from the
//! body. A reference with a digest is checked against what the registry reports. Hosts with
//! the `resolve` capability (by tag) or `pull` (by digest) are tried in order; the error
//! reported when all fail is the most telling one (a 404 beats an unreachable mirror, an
//! authentication error beats a 404 from a mirror).
//!
//! **Manifests are bounded**: nothing over [`MAX_MANIFEST_SIZE`] (4 MiB) is read, whether
//! the registry announces the size or streams without one. Fetching by descriptor verifies
//! the size and the digest before returning a byte.

use bytes::BytesMut;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Response, StatusCode};
use strata_types::{Descriptor, Digest};

use crate::auth::repository_scope;
use crate::client::{Action, Call, Remote};
use crate::error::RemoteError;
use crate::hosts::RegistryHost;
use crate::media;
use crate::reference::Reference;
use crate::speed::{ChunkError, LowSpeed};

/// The largest manifest or index strata reads (containerd's limit).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

const DIGEST_HEADER: &str = "docker-content-digest";

/// Keeps the most telling error of several hosts.
#[derive(Default)]
struct BestError(Option<(u8, RemoteError)>);

impl BestError {
    fn offer(&mut self, e: RemoteError) {
        use RemoteError::*;
        let rank = match &e {
            Unreachable { .. } | NoHost { .. } => 1,
            ManifestUnknown { .. } | BlobUnknown { .. } => 2,
            Registry { .. } => 3,
            _ => 4,
        };
        if self.0.as_ref().is_none_or(|(r, _)| rank > *r) {
            self.0 = Some((rank, e));
        }
    }

    fn into_error(self, fallback: impl FnOnce() -> RemoteError) -> RemoteError {
        self.0.map_or_else(fallback, |(_, e)| e)
    }
}

impl Remote {
    /// Resolves `r` to the descriptor of its manifest or index, and the host that answered.
    ///
    /// `HEAD` first, `GET` when `HEAD` lacks a digest or size or is refused. Schema 1 and
    /// other media types are refused; so is a manifest over 4 MiB.
    pub async fn resolve(&self, r: &Reference) -> Result<(Descriptor, String), RemoteError> {
        let reference = r.to_string();
        let by_digest = r.digest().is_some();
        let hosts = if by_digest {
            self.hosts_with(r, "pull", |h| h.capabilities.pull)?
        } else {
            self.hosts_with(r, "resolve", |h| h.capabilities.resolve)?
        };
        let scopes = vec![repository_scope(r.repository(), false)];
        let mut best = BestError::default();
        for host in &hosts {
            match self.resolve_on(r, &reference, host, &scopes).await {
                Ok(d) => return Ok((d, host.host.clone())),
                // What another host may answer better: try the next one.
                Err(
                    e @ (RemoteError::Unreachable { .. }
                    | RemoteError::ManifestUnknown { .. }
                    | RemoteError::Registry { .. }
                    | RemoteError::AuthRequired { .. }
                    | RemoteError::AuthRefused { .. }
                    | RemoteError::Denied { .. }),
                ) => {
                    tracing::info!(host = %host.host, error = %e, "resolve failed on this host");
                    best.offer(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(best.into_error(|| RemoteError::ManifestUnknown { reference }))
    }

    async fn resolve_on(
        &self,
        r: &Reference,
        reference: &str,
        host: &RegistryHost,
        scopes: &[String],
    ) -> Result<Descriptor, RemoteError> {
        let url = self.url(host, r, &format!("manifests/{}", r.object()))?;
        let head = Call::new(
            reference,
            r.registry(),
            Action::Pull,
            host,
            Method::HEAD,
            url.clone(),
            scopes.to_vec(),
        )
        .header(ACCEPT, media::MANIFEST_ACCEPT);
        let resp = self.send(&head).await?;
        match resp.status() {
            s if s.is_success() => {
                if let Some(d) = descriptor_from_headers(r, reference, resp.headers())? {
                    return Ok(d);
                }
            }
            StatusCode::NOT_FOUND => {
                return Err(RemoteError::ManifestUnknown {
                    reference: reference.to_owned(),
                });
            }
            // Some registries do not do HEAD on manifests, or refuse it oddly: try GET.
            StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED
            | StatusCode::BAD_REQUEST => {}
            _ => return Err(self.unexpected(&head, resp).await),
        }
        let get = Call {
            method: Method::GET,
            ..head
        };
        let resp = self.send(&get).await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(RemoteError::ManifestUnknown {
                    reference: reference.to_owned(),
                });
            }
            _ => return Err(self.unexpected(&get, resp).await),
        }
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str())
            .map(media::strip_parameters)
            .unwrap_or_default();
        if media::is_schema1(&content_type) {
            return Err(RemoteError::Schema1 {
                reference: reference.to_owned(),
            });
        }
        let body = read_manifest(&get, resp, MAX_MANIFEST_SIZE, None, self.low_speed()).await?;
        let media_type = if media::is_generic(&content_type) {
            media::sniff(&body).unwrap_or(content_type)
        } else {
            content_type
        };
        media::check_manifest_type(reference, &media_type)?;
        let actual = Digest::sha256_of(&body);
        if let Some(expected) = r.digest()
            && *expected != actual
        {
            return Err(RemoteError::DigestMismatch {
                reference: reference.to_owned(),
                expected: expected.clone(),
                actual,
            });
        }
        Ok(Descriptor::new(media_type, actual, body.len() as u64))
    }

    /// Fetches the manifest or index `d` points at (from any host with `pull`), refusing
    /// sizes over 4 MiB before reading and verifying size and digest.
    pub async fn fetch_manifest(
        &self,
        r: &Reference,
        d: &Descriptor,
    ) -> Result<Vec<u8>, RemoteError> {
        let reference = r.to_string();
        if d.size > MAX_MANIFEST_SIZE {
            return Err(RemoteError::ManifestTooLarge {
                reference,
                size: d.size,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        media::check_manifest_type(&reference, &d.media_type)?;
        let hosts = self.hosts_with(r, "pull", |h| h.capabilities.pull)?;
        let scopes = vec![repository_scope(r.repository(), false)];
        let accept = format!("{}, {}", d.media_type, media::MANIFEST_ACCEPT);
        let mut best = BestError::default();
        for host in &hosts {
            let url = self.url(host, r, &format!("manifests/{}", d.digest))?;
            let call = Call::new(
                &reference,
                r.registry(),
                Action::Pull,
                host,
                Method::GET,
                url,
                scopes.clone(),
            )
            .header(ACCEPT, &accept);
            let resp = match self.send(&call).await {
                Ok(resp) => resp,
                Err(e @ RemoteError::Unreachable { .. }) if host.mirror => {
                    best.offer(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match resp.status() {
                s if s.is_success() => {}
                StatusCode::NOT_FOUND => {
                    best.offer(RemoteError::ManifestUnknown {
                        reference: r.with_digest(d.digest.clone()).to_string(),
                    });
                    continue;
                }
                _ => {
                    let e = self.unexpected(&call, resp).await;
                    if host.mirror {
                        best.offer(e);
                        continue;
                    }
                    return Err(e);
                }
            }
            let body = read_manifest(&call, resp, d.size, Some(d), self.low_speed()).await?;
            let actual = Digest::sha256_of(&body);
            if actual != d.digest {
                return Err(RemoteError::DigestMismatch {
                    reference,
                    expected: d.digest.clone(),
                    actual,
                });
            }
            return Ok(body);
        }
        Err(best.into_error(|| RemoteError::ManifestUnknown { reference }))
    }
}

/// A descriptor from a `HEAD` (or `GET`) answer's headers, `None` when they do not say
/// enough (no digest, no size, a generic content type).
fn descriptor_from_headers(
    r: &Reference,
    reference: &str,
    headers: &HeaderMap,
) -> Result<Option<Descriptor>, RemoteError> {
    let content_type = header_str(headers, CONTENT_TYPE.as_str())
        .map(media::strip_parameters)
        .unwrap_or_default();
    if media::is_schema1(&content_type) {
        return Err(RemoteError::Schema1 {
            reference: reference.to_owned(),
        });
    }
    let size = header_str(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = size
        && size > MAX_MANIFEST_SIZE
    {
        return Err(RemoteError::ManifestTooLarge {
            reference: reference.to_owned(),
            size,
            limit: MAX_MANIFEST_SIZE,
        });
    }
    let header_digest = header_str(headers, DIGEST_HEADER).and_then(|v| v.parse::<Digest>().ok());
    if let (Some(expected), Some(got)) = (r.digest(), &header_digest)
        && expected != got
    {
        return Err(RemoteError::DigestMismatch {
            reference: reference.to_owned(),
            expected: expected.clone(),
            actual: got.clone(),
        });
    }
    let digest = header_digest.or_else(|| r.digest().cloned());
    match (digest, size) {
        (Some(digest), Some(size)) if size > 0 && !media::is_generic(&content_type) => {
            media::check_manifest_type(reference, &content_type)?;
            Ok(Some(Descriptor::new(content_type, digest, size)))
        }
        _ => Ok(None),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads a manifest body of at most `limit` bytes: a larger `Content-Length` is refused
/// before reading, a body that goes on past the limit is cut at once. With `expected`, the
/// size must match it exactly.
async fn read_manifest(
    call: &Call<'_>,
    mut resp: Response,
    limit: u64,
    expected: Option<&Descriptor>,
    mut speed: LowSpeed,
) -> Result<Vec<u8>, RemoteError> {
    let reference = call.reference;
    let too_big = |size: u64| match expected {
        Some(d) => RemoteError::Overflow {
            reference: reference.to_owned(),
            digest: d.digest.clone(),
            expected: d.size,
        },
        None => RemoteError::ManifestTooLarge {
            reference: reference.to_owned(),
            size,
            limit,
        },
    };
    if let Some(len) = resp.content_length() {
        if len > limit {
            return Err(too_big(len));
        }
        if let Some(d) = expected
            && len != d.size
        {
            return Err(RemoteError::SizeMismatch {
                reference: reference.to_owned(),
                digest: d.digest.clone(),
                expected: d.size,
                actual: len,
            });
        }
    }
    let mut body = BytesMut::new();
    loop {
        let chunk = speed
            .chunk(&mut resp)
            .await
            .map_err(|e| match (e, expected) {
                (ChunkError::Stalled { limit, seconds }, _) => RemoteError::Stalled {
                    reference: reference.to_owned(),
                    what: match expected {
                        Some(d) => format!("manifest {}", d.digest),
                        None => "manifest".to_owned(),
                    },
                    host: call.host.host.clone(),
                    upload: false,
                    limit,
                    seconds,
                },
                (ChunkError::Http(source), Some(d)) => RemoteError::Transfer {
                    reference: reference.to_owned(),
                    digest: d.digest.clone(),
                    host: call.host.host.clone(),
                    source,
                },
                (ChunkError::Http(source), None) => RemoteError::Unreachable {
                    reference: reference.to_owned(),
                    host: call.host.host.clone(),
                    source,
                },
            })?;
        let Some(chunk) = chunk else { break };
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_big((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    if let Some(d) = expected
        && body.len() as u64 != d.size
    {
        return Err(RemoteError::SizeMismatch {
            reference: reference.to_owned(),
            digest: d.digest.clone(),
            expected: d.size,
            actual: body.len() as u64,
        });
    }
    Ok(body.to_vec())
}
