//! Resolving and fetching against the real CNCF distribution registry (and, for what it will
//! not serve, a registry double).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::body::Body;
use axum::response::Response;
use common::*;
use futures_util::StreamExt as _;
use strata_remote::{RemoteError, media};
use strata_testutil::{ImageBuilder, Registry, build_index, require_tool};
use strata_types::{Descriptor, Digest, ErrorKind, Matcher, Platform};

fn registry() -> Option<Registry> {
    if !require_tool("docker-registry") {
        return None;
    }
    Some(Registry::start().expect("starting docker-registry"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_by_tag_and_digest_oci_and_docker() {
    let Some(reg) = registry() else { return };
    let c = client();
    for (docker, repo) in [(false, "oci/app"), (true, "docker/app")] {
        let image = sample_image(docker, repo);
        seed_image(&reg.url(), repo, "v1", &image).await;
        let by_tag = reference(&format!("{}/{repo}:v1", reg.addr()));
        let (d, host) = c.remote.resolve(&by_tag).await.expect("resolve by tag");
        assert_eq!(host, reg.addr());
        assert_eq!(d.digest.to_string(), image.manifest.digest);
        assert_eq!(d.size, image.manifest.size());
        assert_eq!(d.media_type, image.manifest.media_type);
        if docker {
            assert_eq!(d.media_type, media::DOCKER_MANIFEST);
        }

        let by_digest = by_tag.with_digest(d.digest.clone());
        let (d2, _) = c
            .remote
            .resolve(&by_digest)
            .await
            .expect("resolve by digest");
        assert_eq!(d2, d);

        let bytes = c
            .remote
            .fetch_manifest(&by_tag, &d)
            .await
            .expect("manifest");
        assert_eq!(
            bytes, image.manifest.bytes,
            "original bytes, not re-serialized"
        );

        let config = descriptor(&image.config);
        let got = c
            .remote
            .fetch_blob(&by_tag, &config, 0)
            .await
            .expect("config")
            .bytes()
            .await
            .expect("config bytes");
        assert_eq!(got, image.config.bytes);
        for layer in &image.layers {
            let d = descriptor(&layer.blob);
            let mut stream = c.remote.fetch_blob(&by_tag, &d, 0).await.expect("layer");
            assert_eq!(stream.size(), layer.blob.size());
            let mut got = Vec::new();
            while let Some(chunk) = stream.next().await {
                got.extend_from_slice(&chunk.expect("chunk"));
            }
            assert_eq!(got, layer.blob.bytes);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_an_index_and_picks_a_platform() {
    let Some(reg) = registry() else { return };
    let c = client();
    let amd = ImageBuilder::new()
        .layer(sample_image(false, "a").layers[0].clone())
        .build();
    let arm = ImageBuilder::new()
        .platform("linux", "arm64", Some("v8"))
        .layer(sample_image(false, "b").layers[0].clone())
        .build();
    let armv7 = ImageBuilder::new()
        .platform("linux", "arm", Some("v7"))
        .build();
    let index = build_index(vec![amd.clone(), arm.clone(), armv7], Some(1));
    seed_index(&reg.url(), "multi", "latest", &index).await;

    let r = reference(&format!("{}/multi", reg.addr()));
    let (d, _) = c.remote.resolve(&r).await.expect("resolve");
    assert_eq!(d.media_type, media::OCI_INDEX);
    assert_eq!(d.digest.to_string(), index.digest());
    let bytes = c.remote.fetch_manifest(&r, &d).await.expect("index");

    #[derive(serde::Deserialize)]
    struct Idx {
        manifests: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(flatten)]
        descriptor: Descriptor,
        platform: Option<Platform>,
    }
    let idx: Idx = serde_json::from_slice(&bytes).expect("index json");
    assert_eq!(idx.manifests.len(), 4);
    let pick = |m: Matcher| {
        m.order(
            idx.manifests
                .iter()
                .map(|e| (e.platform.as_ref(), &e.descriptor.annotations)),
        )
    };
    let arm64 = pick(Matcher::only(&"linux/arm64".parse().expect("platform")));
    assert_eq!(
        arm64,
        [1, 2],
        "arm64 first, then 32-bit arm; never the attestation"
    );
    let chosen = &idx.manifests[arm64[0]].descriptor;
    assert_eq!(chosen.digest.to_string(), arm.digest());
    assert_eq!(pick(Matcher::all()), [0, 1, 2]);

    let m = c
        .remote
        .fetch_manifest(&r, chosen)
        .await
        .expect("arm64 manifest");
    assert_eq!(m, arm.manifest.bytes);
    // The attestation manifest itself is fetchable by digest like any other.
    let att = &idx.manifests[3].descriptor;
    c.remote.fetch_manifest(&r, att).await.expect("attestation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_blobs_from_an_offset() {
    let Some(reg) = registry() else { return };
    let c = client();
    let image = sample_image(false, "resume");
    seed_image(&reg.url(), "resume", "latest", &image).await;
    let r = reference(&format!("{}/resume", reg.addr()));
    let layer = &image.layers[1].blob;
    let d = descriptor(layer);
    for offset in [1, 1000, layer.size() - 1] {
        let s = c
            .remote
            .fetch_blob(&r, &d, offset)
            .await
            .expect("ranged fetch");
        assert_eq!(s.offset(), offset);
        let got = s.bytes().await.expect("bytes");
        assert_eq!(got, layer.bytes[offset as usize..]);
    }
    let end = c.remote.fetch_blob(&r, &d, d.size).await.expect("at end");
    assert!(end.bytes().await.expect("empty").is_empty());
    let e = c.remote.fetch_blob(&r, &d, d.size + 1).await.unwrap_err();
    assert!(matches!(e, RemoteError::BadOffset { .. }), "{e}");

    // As an AsyncRead.
    use tokio::io::AsyncReadExt as _;
    let mut reader = c
        .remote
        .fetch_blob(&r, &d, 0)
        .await
        .expect("fetch")
        .into_reader();
    let mut all = Vec::new();
    reader.read_to_end(&mut all).await.expect("read");
    assert_eq!(all, layer.bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifies_digest_and_size() {
    let Some(reg) = registry() else { return };
    let c = client();
    let image = sample_image(false, "verify");
    seed_image(&reg.url(), "verify", "latest", &image).await;
    let r = reference(&format!("{}/verify", reg.addr()));
    let real = descriptor(&image.layers[0].blob);

    // Same bytes, wrong digest claimed: the registry does not have it.
    let wrong_digest = Descriptor::new(real.media_type.clone(), Digest::sha256_of(b"x"), real.size);
    let e = c.remote.fetch_blob(&r, &wrong_digest, 0).await.unwrap_err();
    assert!(matches!(e, RemoteError::BlobUnknown { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound);

    // Descriptor says fewer bytes than the registry has: refused before reading.
    let short = Descriptor::new(real.media_type.clone(), real.digest.clone(), real.size - 1);
    let e = c.remote.fetch_blob(&r, &short, 0).await.unwrap_err();
    assert!(matches!(e, RemoteError::Overflow { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::DataMismatch);
    let long = Descriptor::new(real.media_type.clone(), real.digest.clone(), real.size + 10);
    let e = c.remote.fetch_blob(&r, &long, 0).await.unwrap_err();
    assert!(matches!(e, RemoteError::SizeMismatch { .. }), "{e}");

    // A manifest descriptor with the wrong size.
    let (md, _) = c.remote.resolve(&r).await.expect("resolve");
    let bad = Descriptor::new(md.media_type.clone(), md.digest.clone(), md.size + 1);
    let e = c.remote.fetch_manifest(&r, &bad).await.unwrap_err();
    assert!(matches!(e, RemoteError::SizeMismatch { .. }), "{e}");
    // A digest in the reference that the tag does not point at.
    let pinned = r.with_digest(Digest::sha256_of(b"other"));
    let e = c.remote.resolve(&pinned).await.unwrap_err();
    assert!(matches!(e, RemoteError::ManifestUnknown { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_exists_answers_yes_and_no() {
    let Some(reg) = registry() else { return };
    let c = client();
    let image = sample_image(true, "exists");
    seed_image(&reg.url(), "exists", "latest", &image).await;
    let r = reference(&format!("{}/exists", reg.addr()));
    let digest: Digest = image.config.digest.parse().expect("digest");
    assert!(c.remote.blob_exists(&r, &digest).await.expect("head"));
    assert!(
        !c.remote
            .blob_exists(&r, &Digest::sha256_of(b"absent"))
            .await
            .expect("head")
    );
    let other = reference(&format!("{}/never/pushed", reg.addr()));
    assert!(!c.remote.blob_exists(&other, &digest).await.expect("head"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tag_repository_and_host() {
    let Some(reg) = registry() else { return };
    let c = client();
    seed_image(&reg.url(), "known", "v1", &sample_image(false, "known")).await;
    let tag = reference(&format!("{}/known:nosuch", reg.addr()));
    let e = c.remote.resolve(&tag).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("manifest unknown: {}/known:nosuch", reg.addr())
    );
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let repo = reference(&format!("{}/nosuch", reg.addr()));
    let e = c.remote.resolve(&repo).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("manifest unknown: {}/nosuch:latest", reg.addr())
    );

    // Nothing listens on port 1.
    let c = client_with(|o| o.retries = 1);
    let gone = reference("127.0.0.1:1/x");
    let e = c.remote.resolve(&gone).await.unwrap_err();
    assert!(matches!(e, RemoteError::Unreachable { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let chain = format!("{:#}", anyhow::Error::new(e));
    assert!(
        chain.starts_with("registry 127.0.0.1:1 unreachable for 127.0.0.1:1/x:latest: "),
        "{chain}"
    );
    assert!(
        chain.to_lowercase().contains("connect"),
        "the cause is in the chain: {chain}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_without_digest_falls_back_to_get() {
    let Some(reg) = registry() else { return };
    let image = sample_image(true, "noheader");
    seed_image(&reg.url(), "noheader", "latest", &image).await;
    let proxy = Proxy::start(&reg.addr()).await;
    *proxy.faults.strip_digest.lock().expect("lock") = true;
    let c = client();
    let r = reference(&format!("{}/noheader", proxy.host()));
    let (d, _) = c.remote.resolve(&r).await.expect("resolve");
    assert_eq!(d.digest.to_string(), image.manifest.digest);
    assert_eq!(d.media_type, media::DOCKER_MANIFEST);
    let methods: Vec<String> = proxy
        .requests()
        .iter()
        .filter(|l| l.path.contains("/manifests/"))
        .map(|l| l.method.clone())
        .collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

/// What the real registry refuses to store: a manifest over 4 MiB, and one without a size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_over_4_mib_are_refused_before_reading() {
    common::init();
    const BIG: u64 = 64 << 20;
    let produced = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (p, n) = (produced.clone(), requests.clone());
    let router = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (produced, requests) = (p.clone(), n.clone());
        async move {
            requests.fetch_add(1, Ordering::SeqCst);
            let path = req.uri().path().to_owned();
            let chunked = path.contains("/chunked/");
            let mut resp = Response::builder()
                .status(200)
                .header("content-type", media::OCI_MANIFEST);
            if !chunked {
                resp = resp.header("content-length", BIG.to_string()).header(
                    "docker-content-digest",
                    Digest::sha256_of(b"big").to_string(),
                );
            }
            if req.method() == axum::http::Method::HEAD {
                return resp.body(Body::empty()).expect("response");
            }
            let chunk = bytes::Bytes::from(vec![b' '; 64 << 10]);
            let stream = futures_util::stream::iter(0..(BIG / (64 << 10))).map(move |_| {
                produced.fetch_add(64 << 10, Ordering::SeqCst);
                Ok::<_, std::io::Error>(chunk.clone())
            });
            resp.body(Body::from_stream(stream)).expect("response")
        }
    });
    let server = Server::start(router).await;
    let c = client();

    let r = reference(&format!("{}/sized/app:latest", server.host()));
    let e = c.remote.resolve(&r).await.unwrap_err();
    assert!(
        matches!(e, RemoteError::ManifestTooLarge { size: BIG, .. }),
        "{e}"
    );
    assert_eq!(produced.load(Ordering::SeqCst), 0, "a HEAD answered it");

    let before = requests.load(Ordering::SeqCst);
    let d = Descriptor::new(media::OCI_MANIFEST, Digest::sha256_of(b"big"), BIG);
    let e = c.remote.fetch_manifest(&r, &d).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}/sized/app:latest: manifest of {BIG} bytes refused, the limit is 4194304",
            server.host()
        )
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        before,
        "refused without asking"
    );

    // No size announced: reading stops at the limit.
    let r = reference(&format!("{}/chunked/app:latest", server.host()));
    let e = c.remote.resolve(&r).await.unwrap_err();
    assert!(matches!(e, RemoteError::ManifestTooLarge { .. }), "{e}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let sent = produced.load(Ordering::SeqCst);
    assert!(
        sent < BIG / 2,
        "the client stopped reading early, server produced {sent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema1_and_foreign_types_are_refused() {
    common::init();
    let router = axum::Router::new().fallback(|req: axum::extract::Request| async move {
        let path = req.uri().path().to_owned();
        let (ct, body): (&str, &[u8]) = if path.contains("/old/") {
            (
                media::DOCKER_SCHEMA1_SIGNED_MANIFEST,
                br#"{"schemaVersion":1}"#,
            )
        } else if path.contains("/sniffed/") {
            ("application/json", br#"{"schemaVersion":1,"fsLayers":[]}"#)
        } else {
            ("text/html", b"<html></html>")
        };
        Response::builder()
            .header("content-type", ct)
            .body(Body::from(body))
            .expect("response")
    });
    let server = Server::start(router).await;
    let c = client();
    for (repo, schema1) in [("old", true), ("sniffed", true), ("html", false)] {
        let r = reference(&format!("{}/{repo}/x:1", server.host()));
        let e = c.remote.resolve(&r).await.unwrap_err();
        if schema1 {
            assert_eq!(
                e.to_string(),
                format!(
                    "schema 1 manifests are not supported: {}/{repo}/x:1, re-push the image with a current Docker",
                    server.host()
                )
            );
        } else {
            assert!(matches!(e, RemoteError::UnsupportedMediaType { .. }), "{e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_first_then_upstream() {
    let Some(upstream) = registry() else { return };
    let Some(mirror) = registry() else { return };
    let image = sample_image(false, "mirror");
    seed_image(&mirror.url(), "team/app", "v1", &image).await;
    seed_image(&upstream.url(), "team/app", "v1", &image).await;
    let only_upstream = sample_image(false, "upstream-only");
    seed_image(&upstream.url(), "team/app", "v2", &only_upstream).await;

    let proxy = Proxy::start(&mirror.addr()).await;
    // The registry name is a made-up one served by the upstream; the mirror answers first.
    let c = client();
    let name = "registry.strata.test";
    let dir = c.hosts_dir.path().join(name);
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(
        dir.join("hosts.toml"),
        format!(
            "server = \"http://{}\"\n\n[host.\"http://127.0.0.1:1\"]\ncapabilities = [\"pull\", \"resolve\"]\n\n[host.\"http://{}\"]\ncapabilities = [\"pull\", \"resolve\"]\n",
            upstream.addr(),
            proxy.host()
        ),
    )
    .expect("hosts.toml");

    let r = reference(&format!("{name}/team/app:v1"));
    let (d, host) = c.remote.resolve(&r).await.expect("resolve via mirror");
    assert_eq!(
        host,
        proxy.host(),
        "the dead mirror is skipped, the live one answers"
    );
    let layer = descriptor(&image.layers[0].blob);
    let s = c
        .remote
        .fetch_blob(&r, &layer, 0)
        .await
        .expect("blob via mirror");
    assert_eq!(s.host(), proxy.host());
    assert_eq!(s.bytes().await.expect("bytes"), image.layers[0].blob.bytes);
    assert_eq!(d.digest.to_string(), image.manifest.digest);
    assert!(
        proxy
            .requests()
            .iter()
            .all(|l| l.path.contains(&format!("ns={name}"))),
        "mirror requests carry ns=: {:?}",
        proxy.requests()
    );

    // Not on the mirror: the upstream answers.
    let r2 = reference(&format!("{name}/team/app:v2"));
    let (d2, host2) = c.remote.resolve(&r2).await.expect("resolve via upstream");
    assert_eq!(host2, upstream.addr());
    assert_eq!(d2.digest.to_string(), only_upstream.manifest.digest);
}
