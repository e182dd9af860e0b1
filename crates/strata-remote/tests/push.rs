//! Pushing to the real registry, checked with skopeo as an independent reader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::*;
use strata_remote::{BlobPushed, RemoteError, media};
use strata_testutil::{Registry, require_tool};
use strata_types::{Descriptor, Digest, ErrorKind};

fn tools() -> Option<Registry> {
    if !require_tool("docker-registry") || !require_tool("skopeo") {
        return None;
    }
    Some(Registry::start().expect("starting docker-registry"))
}

async fn push_image(
    c: &Client,
    r: &strata_remote::Reference,
    image: &strata_testutil::Image,
) -> Descriptor {
    for blob in image.blobs() {
        let d = descriptor(blob);
        if !c.remote.blob_exists(r, &d.digest).await.expect("exists") {
            let how = c
                .remote
                .push_blob(r, &d, Bytes::from(blob.bytes.clone()), None)
                .await
                .expect("push blob");
            assert_eq!(how, BlobPushed::Uploaded);
        }
    }
    c.remote
        .push_manifest(
            r,
            r.tag().expect("tag"),
            &image.manifest.media_type,
            &image.manifest.bytes,
        )
        .await
        .expect("push manifest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_monolithic_and_skopeo_reads_it() {
    let Some(reg) = tools() else { return };
    let c = client();
    for (docker, repo) in [(false, "pushed/oci"), (true, "pushed/docker")] {
        let image = sample_image(docker, repo);
        let r = reference(&format!("{}/{repo}:v1", reg.addr()));
        let d = push_image(&c, &r, &image).await;
        assert_eq!(d.digest.to_string(), image.manifest.digest);
        assert_eq!(d.media_type, image.manifest.media_type);
        let raw = skopeo_raw(&reg.addr(), &format!("{repo}:v1"))
            .await
            .expect("skopeo");
        assert_eq!(raw, image.manifest.bytes);
        // And by digest.
        let by_digest = skopeo_raw(&reg.addr(), &format!("{repo}@{}", d.digest))
            .await
            .expect("skopeo by digest");
        assert_eq!(by_digest, image.manifest.bytes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_big_blobs_in_chunks() {
    let Some(reg) = tools() else { return };
    let proxy = Proxy::start(&reg.addr()).await;
    let c = client_with(|o| o.chunk_size = 64 << 10);
    let data = pseudo_random(300_000, "chunks");
    let d = Descriptor::new(
        media::OCI_LAYER,
        Digest::sha256_of(&data),
        data.len() as u64,
    );
    let r = reference(&format!("{}/chunked:v1", proxy.host()));
    let how = c
        .remote
        .push_blob(&r, &d, data.clone(), None)
        .await
        .expect("chunked push");
    assert_eq!(how, BlobPushed::Uploaded);
    let methods: Vec<String> = proxy.requests().iter().map(|l| l.method.clone()).collect();
    assert_eq!(
        methods.iter().filter(|m| *m == "PATCH").count(),
        4,
        "{methods:?}"
    );
    assert_eq!(methods.last().map(String::as_str), Some("PUT"));
    let got = c
        .remote
        .fetch_blob(&r, &d, 0)
        .await
        .expect("fetch")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(got, data);

    // From a file, with a manifest referencing it, read back by skopeo.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("layer");
    let layer = pseudo_random(200_000, "file");
    std::fs::write(&path, &layer).expect("write");
    let ld = Descriptor::new(
        media::OCI_LAYER,
        Digest::sha256_of(&layer),
        layer.len() as u64,
    );
    let file = std::fs::File::open(&path).expect("open");
    c.remote
        .push_blob(&r, &ld, file, None)
        .await
        .expect("file push");
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = Descriptor::new(
        media::OCI_CONFIG,
        Digest::sha256_of(config),
        config.len() as u64,
    );
    c.remote
        .push_blob(&r, &cd, config.to_vec(), None)
        .await
        .expect("config");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": cd,
        "layers": [ld],
    })
    .to_string();
    let md = c
        .remote
        .push_manifest(&r, "v1", media::OCI_MANIFEST, manifest.as_bytes())
        .await
        .expect("manifest");
    let raw = skopeo_raw(&reg.addr(), "chunked:v1").await.expect("skopeo");
    assert_eq!(raw, manifest.as_bytes());
    assert_eq!(md.digest, Digest::sha256_of(manifest.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_resumes_after_a_failed_chunk() {
    let Some(reg) = tools() else { return };
    let proxy = Proxy::start(&reg.addr()).await;
    let c = client_with(|o| o.chunk_size = 64 << 10);
    let data = pseudo_random(250_000, "resume-upload");
    let d = Descriptor::new(
        media::OCI_LAYER,
        Digest::sha256_of(&data),
        data.len() as u64,
    );
    let r = reference(&format!("{}/resumed", proxy.host()));
    // The second PATCH fails; the upload goes on from what the registry acknowledged.
    proxy
        .faults
        .fail_skip
        .store(1, std::sync::atomic::Ordering::SeqCst);
    proxy.fail(1, 503, "/blobs/uploads/", Some("PATCH"));
    c.remote
        .push_blob(&r, &d, data.clone(), None)
        .await
        .expect("push survives a failed chunk");
    let log = proxy.requests();
    let patches: Vec<u16> = log
        .iter()
        .filter(|l| l.method == "PATCH")
        .map(|l| l.status)
        .collect();
    assert_eq!(
        patches,
        [202, 503, 202, 202],
        "the second chunk failed once: {log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.method == "GET" && l.path.contains("/blobs/uploads/")),
        "the upload status was asked: {log:?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.method == "POST").count(),
        1,
        "resumed, not restarted: {log:?}"
    );
    let got = c
        .remote
        .fetch_blob(&r, &d, 0)
        .await
        .expect("fetch")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(got, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_repository_mount_sends_no_bytes() {
    let Some(reg) = tools() else { return };
    let image = sample_image(false, "mount");
    seed_image(&reg.url(), "base/image", "latest", &image).await;
    let proxy = Proxy::start(&reg.addr()).await;
    let c = client();
    let r = reference(&format!("{}/derived/image:latest", proxy.host()));
    let layer = descriptor(&image.layers[1].blob);
    let how = c
        .remote
        .push_blob(&r, &layer, Bytes::new(), Some("base/image"))
        .await
        .expect("mount");
    assert_eq!(how, BlobPushed::Mounted);
    let log = proxy.requests();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].method, "POST");
    assert!(
        log[0].path.contains("mount=sha256%3A") && log[0].path.contains("from=base%2Fimage"),
        "{log:?}"
    );
    assert_eq!(log[0].status, 201);
    assert!(c.remote.blob_exists(&r, &layer.digest).await.expect("head"));

    // Nothing to mount from there: the registry opens an upload instead, and it is used.
    let fresh = pseudo_random(1000, "not-there");
    let fd = Descriptor::new(
        media::OCI_LAYER,
        Digest::sha256_of(&fresh),
        fresh.len() as u64,
    );
    let how = c
        .remote
        .push_blob(&r, &fd, fresh.clone(), Some("base/image"))
        .await
        .expect("fallback upload");
    assert_eq!(how, BlobPushed::Uploaded);
    let log = proxy.requests();
    let tail: Vec<(String, u16)> = log[2..]
        .iter()
        .map(|l| (l.method.clone(), l.status))
        .collect();
    assert_eq!(
        tail,
        [("POST".to_owned(), 202), ("PUT".to_owned(), 201)],
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_refuses_bad_input() {
    let Some(reg) = tools() else { return };
    let c = client();
    let r = reference(&format!("{}/bad:v1", reg.addr()));
    let data = b"some bytes".to_vec();
    // The digest does not match the data: the registry refuses the upload.
    let d = Descriptor::new(
        media::OCI_LAYER,
        Digest::sha256_of(b"other"),
        data.len() as u64,
    );
    let e = c
        .remote
        .push_blob(&r, &d, data.clone(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DataMismatch, "{e}");
    // The data is shorter than the descriptor.
    let d = Descriptor::new(media::OCI_LAYER, Digest::sha256_of(&data), 100);
    let e = c
        .remote
        .push_blob(&r, &d, data.clone(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, RemoteError::Source { .. }), "{e}");
    // A manifest whose blobs are missing.
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": Descriptor::new(media::OCI_CONFIG, Digest::sha256_of(b"{}"), 2),
        "layers": [],
    })
    .to_string();
    let e = c
        .remote
        .push_manifest(&r, "v1", media::OCI_MANIFEST, manifest.as_bytes())
        .await
        .unwrap_err();
    assert!(
        matches!(e, RemoteError::Registry { status: 400, .. }),
        "{e}"
    );
    // Schema 1 is not pushed either, nor a digest that is not the manifest's.
    let e = c
        .remote
        .push_manifest(&r, "v1", media::DOCKER_SCHEMA1_MANIFEST, b"{}")
        .await
        .unwrap_err();
    assert!(matches!(e, RemoteError::Schema1 { .. }), "{e}");
    let e = c
        .remote
        .push_manifest(
            &r,
            &Digest::sha256_of(b"x").to_string(),
            media::OCI_MANIFEST,
            manifest.as_bytes(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, RemoteError::DigestMismatch { .. }), "{e}");
}

/// A registry that opens an upload, takes the first piece of its body and then stops reading:
/// the push is given up under the low-speed limit instead of hanging until the read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_the_registry_stops_reading_is_given_up() {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::{Method, StatusCode};
    use axum::response::Response;
    use futures_util::StreamExt as _;

    init();
    let router = axum::Router::new().fallback(|req: Request| async move {
        if req.method() == Method::POST {
            return Response::builder()
                .status(StatusCode::ACCEPTED)
                .header("Location", "/v2/stall/blobs/uploads/1")
                .body(Body::empty())
                .unwrap();
        }
        let mut body = req.into_body().into_data_stream();
        let _ = body.next().await;
        // Holds the connection open without reading another byte.
        std::future::pending::<()>().await;
        unreachable!()
    });
    let server = Server::start(router).await;
    let c = client_with(|o| {
        o.low_speed_limit = 1 << 20;
        o.low_speed_time = std::time::Duration::from_secs(1);
        o.chunk_size = 1 << 30;
    });
    let r = reference(&format!("{}/stall:latest", server.host()));
    let data = Bytes::from(vec![7u8; 64 << 20]);
    let d = Descriptor::new(
        media::OCI_LAYER,
        Digest::sha256_of(&data),
        data.len() as u64,
    );
    let pushed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        c.remote.push_blob(&r, &d, data, None),
    )
    .await
    .expect("the push is given up, not held until the read timeout");
    let e = pushed.unwrap_err();
    assert!(matches!(e, RemoteError::Stalled { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("upload of blob {} to {}", d.digest, server.host())),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable);
}
