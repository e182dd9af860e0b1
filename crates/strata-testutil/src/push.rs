//! A minimal distribution-API pusher over plain HTTP, independent of strata's
//! own client, to seed test registries.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::image::{Blob, Image, Index};

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(120)))
            .build(),
    )
}

fn base(registry_url: &str) -> &str {
    registry_url.trim_end_matches('/')
}

/// Reads the body of an unexpected response for an error message.
fn body_text(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_else(|e| format!("(unreadable body: {e})"));
    text.trim().to_string()
}

fn header<'a>(resp: &'a ureq::http::Response<ureq::Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Resolves a `Location` header against the URL of the request it answered.
pub(crate) fn resolve_location(request_url: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let (scheme, rest) = request_url
        .split_once("://")
        .unwrap_or(("http", request_url));
    if let Some(l) = location.strip_prefix("//") {
        return format!("{scheme}://{l}");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    // Relative path: relative to the request path's directory.
    let path_and_query = &rest[authority.len()..];
    let path = path_and_query.split(['?', '#']).next().unwrap_or("");
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    format!("{scheme}://{authority}{dir}{location}")
}

/// Uploads `blob` to `repo` unless `HEAD /v2/<repo>/blobs/<digest>` finds it:
/// `POST /v2/<repo>/blobs/uploads/`, then a monolithic
/// `PUT <location>?digest=<digest>`.
pub fn push_blob(registry_url: &str, repo: &str, blob: &Blob) -> anyhow::Result<()> {
    let agent = agent();
    let base = base(registry_url);
    let digest = &blob.digest;

    let head_url = format!("{base}/v2/{repo}/blobs/{digest}");
    let head = agent
        .head(&head_url)
        .call()
        .with_context(|| format!("HEAD {head_url}"))?;
    match head.status().as_u16() {
        200 => return Ok(()),
        404 => {}
        s => bail!("HEAD {head_url} answered {s}"),
    }

    let post_url = format!("{base}/v2/{repo}/blobs/uploads/");
    let mut post = agent
        .post(&post_url)
        .send_empty()
        .with_context(|| format!("POST {post_url}"))?;
    if post.status().as_u16() != 202 {
        bail!(
            "POST {post_url} answered {}: {}",
            post.status(),
            body_text(&mut post)
        );
    }
    let location = header(&post, "Location")
        .with_context(|| format!("POST {post_url} answered 202 without a Location header"))?;
    let upload = resolve_location(&post_url, location);
    let sep = if upload.contains('?') { '&' } else { '?' };
    let put_url = format!("{upload}{sep}digest={}", digest.replace(':', "%3A"));
    let mut put = agent
        .put(&put_url)
        .header("Content-Type", "application/octet-stream")
        .send(&blob.bytes[..])
        .with_context(|| format!("PUT {put_url}"))?;
    if put.status().as_u16() != 201 {
        bail!(
            "PUT {put_url} ({} bytes) answered {}: {}",
            blob.bytes.len(),
            put.status(),
            body_text(&mut put)
        );
    }
    if let Some(got) = header(&put, "Docker-Content-Digest")
        && got != digest
    {
        bail!("registry stored blob {digest} as {got}");
    }
    Ok(())
}

/// PUTs `manifest` (with its media type as Content-Type) as
/// `/v2/<repo>/manifests/<reference>`; `reference` is a tag or a digest. The
/// referenced blobs/manifests must already be there. Checks the digest the
/// registry reports.
pub fn push_manifest(
    registry_url: &str,
    repo: &str,
    reference: &str,
    manifest: &Blob,
) -> anyhow::Result<()> {
    let url = format!("{}/v2/{repo}/manifests/{reference}", base(registry_url));
    let mut resp = agent()
        .put(&url)
        .header("Content-Type", &manifest.media_type)
        .send(&manifest.bytes[..])
        .with_context(|| format!("PUT {url}"))?;
    if resp.status().as_u16() != 201 {
        bail!(
            "PUT {url} ({}) answered {}: {}",
            manifest.media_type,
            resp.status(),
            body_text(&mut resp)
        );
    }
    if let Some(got) = header(&resp, "Docker-Content-Digest")
        && got != manifest.digest
    {
        bail!("registry stored manifest {} as {got}", manifest.digest);
    }
    Ok(())
}

/// Pushes the config and layer blobs (skipping those already present), then
/// the manifest under `reference` (a tag or a digest).
pub fn push_image(
    registry_url: &str,
    repo: &str,
    reference: &str,
    image: &Image,
) -> anyhow::Result<()> {
    for blob in image.blobs() {
        push_blob(registry_url, repo, blob)
            .with_context(|| format!("pushing blob {} of image {}", blob.digest, image.digest()))?;
    }
    push_manifest(registry_url, repo, reference, &image.manifest)
}

/// Pushes every image (by digest), every attestation (by digest), then the
/// index under `tag`.
pub fn push_index(registry_url: &str, repo: &str, tag: &str, index: &Index) -> anyhow::Result<()> {
    for img in index.images.iter().chain(&index.attestations) {
        push_image(registry_url, repo, img.digest(), img)?;
    }
    push_manifest(registry_url, repo, tag, &index.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_locations() {
        let req = "http://127.0.0.1:5000/v2/a/b/blobs/uploads/";
        assert_eq!(
            resolve_location(req, "http://x:1/v2/up?_state=1"),
            "http://x:1/v2/up?_state=1"
        );
        assert_eq!(
            resolve_location(req, "/v2/a/b/blobs/uploads/u1?_state=s"),
            "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u1?_state=s"
        );
        assert_eq!(
            resolve_location(req, "u2"),
            "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u2"
        );
        assert_eq!(resolve_location(req, "//h:2/p"), "http://h:2/p");
        assert_eq!(resolve_location("http://h:1", "/v2/x"), "http://h:1/v2/x");
        assert_eq!(resolve_location("http://h:1", "x"), "http://h:1/x");
    }
}
