//! Failures between the client and the real registry, injected by a proxy: server errors,
//! rate limits, bodies cut in the middle, `Range` ignored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use common::*;
use strata_remote::RemoteError;
use strata_testutil::{Registry, require_tool};
use strata_types::ErrorKind;

async fn setup(salt: &str) -> Option<(Registry, Proxy, strata_testutil::Image)> {
    if !require_tool("docker-registry") {
        return None;
    }
    let reg = Registry::start().expect("starting docker-registry");
    let image = sample_image(false, salt);
    seed_image(&reg.url(), "app", "latest", &image).await;
    let proxy = Proxy::start(&reg.addr()).await;
    Some((reg, proxy, image))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_server_errors_a_bounded_number_of_times() {
    let Some((_reg, proxy, image)) = setup("5xx").await else {
        return;
    };
    let r = reference(&format!("{}/app", proxy.host()));
    let c = client(); // 3 retries
    proxy.fail(3, 503, "/v2/", None);
    let (d, _) = c
        .remote
        .resolve(&r)
        .await
        .expect("resolves after three 503s");
    assert_eq!(d.digest.to_string(), image.manifest.digest);
    let statuses: Vec<u16> = proxy.requests().iter().map(|l| l.status).collect();
    assert_eq!(statuses, [503, 503, 503, 200]);

    proxy.fail(4, 502, "/v2/", None);
    let e = c.remote.resolve(&r).await.unwrap_err();
    assert!(
        matches!(e, RemoteError::Registry { status: 502, .. }),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(proxy.requests().len(), 4 + 4, "1 try + 3 retries");

    proxy.fail(2, 429, "/blobs/", None);
    let layer = descriptor(&image.layers[0].blob);
    let got = c
        .remote
        .fetch_blob(&r, &layer, 0)
        .await
        .expect("after 429s")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(got, image.layers[0].blob.bytes);

    // A 4xx is never retried (a refused HEAD is asked again as a GET, once).
    let before = proxy.requests().len();
    proxy.fail(2, 400, "/manifests/", None);
    let e = c.remote.resolve(&r).await.unwrap_err();
    assert!(
        matches!(e, RemoteError::Registry { status: 400, .. }),
        "{e}"
    );
    let tail: Vec<(String, u16)> = proxy.requests()[before..]
        .iter()
        .map(|l| (l.method.clone(), l.status))
        .collect();
    assert_eq!(tail, [("HEAD".to_owned(), 400), ("GET".to_owned(), 400)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_cut_in_the_middle_is_resumed_and_verified() {
    let Some((_reg, proxy, image)) = setup("cut").await else {
        return;
    };
    let r = reference(&format!("{}/app", proxy.host()));
    let c = client();
    let layer = &image.layers[1].blob;
    assert!(layer.size() > 150_000);
    proxy.faults.cut_after.store(100_000, Ordering::SeqCst);
    proxy.faults.cut_count.store(2, Ordering::SeqCst);
    let d = descriptor(layer);
    let got = c
        .remote
        .fetch_blob(&r, &d, 0)
        .await
        .expect("fetch")
        .bytes()
        .await
        .expect("resumed twice");
    assert_eq!(got, layer.bytes);
    let gets: Vec<String> = proxy
        .requests()
        .iter()
        .filter(|l| l.method == "GET")
        .map(|l| format!("{} {}", l.status, l.path))
        .collect();
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert!(
        gets[1].starts_with("206") && gets[2].starts_with("206"),
        "ranged resumes: {gets:?}"
    );

    // Too many cuts: the error names the blob and the reference.
    proxy.faults.cut_after.store(10, Ordering::SeqCst);
    proxy.faults.cut_count.store(10, Ordering::SeqCst);
    let e = c
        .remote
        .fetch_blob(&r, &d, 0)
        .await
        .expect("fetch")
        .bytes()
        .await
        .unwrap_err();
    assert!(matches!(e, RemoteError::Transfer { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!("reading blob {} of {r} from {}", d.digest, proxy.host())
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_range_is_skipped_through() {
    let Some((_reg, proxy, image)) = setup("norange").await else {
        return;
    };
    let r = reference(&format!("{}/app", proxy.host()));
    let c = client();
    *proxy.faults.ignore_range.lock().expect("lock") = true;
    let layer = &image.layers[1].blob;
    let d = descriptor(layer);
    let got = c
        .remote
        .fetch_blob(&r, &d, 5000)
        .await
        .expect("fetch")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(got, layer.bytes[5000..]);
    let statuses: Vec<u16> = proxy.requests().iter().map(|l| l.status).collect();
    assert_eq!(statuses, [200], "whole blob sent, prefix skipped");

    // Cut while the registry ignores Range: every resume starts over and is skipped through.
    proxy.faults.cut_after.store(70_000, Ordering::SeqCst);
    proxy.faults.cut_count.store(1, Ordering::SeqCst);
    let got = c
        .remote
        .fetch_blob(&r, &d, 0)
        .await
        .expect("fetch")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(got, layer.bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_body_fails_the_digest_check() {
    common::init();
    // A registry double serving the wrong bytes of the right length.
    let good = b"the real layer bytes".to_vec();
    let digest = strata_types::Digest::sha256_of(&good);
    let router = axum::Router::new().fallback(|| async {
        axum::response::Response::builder()
            .header("content-length", "20")
            .body(axum::body::Body::from("the fake layer bytes"))
            .expect("response")
    });
    let server = Server::start(router).await;
    let c = client();
    let r = reference(&format!("{}/x", server.host()));
    let d = strata_types::Descriptor::new(strata_remote::media::OCI_LAYER, digest.clone(), 20);
    let e = c
        .remote
        .fetch_blob(&r, &d, 0)
        .await
        .expect("fetch")
        .bytes()
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{r}: digest mismatch: expected {digest}, got {}",
            strata_types::Digest::sha256_of(b"the fake layer bytes")
        )
    );
    assert_eq!(e.kind(), ErrorKind::DataMismatch);
}

/// Blob storage behind a redirect (as with S3 or a CDN): the registry wants Basic auth, the
/// storage host must not get the credentials, and the range survives the redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_another_host_drop_credentials_and_keep_the_range() {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;

    common::init();
    let data = pseudo_random(50_000, "redirect");
    let digest = strata_types::Digest::sha256_of(&data);
    type Seen = Vec<(Option<String>, Option<String>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();

    let storage_seen = seen.clone();
    let storage_data = bytes::Bytes::from(data.clone());
    let storage = Server::start(axum::Router::new().fallback(move |req: Request| {
        let seen = storage_seen.clone();
        let data = storage_data.clone();
        async move {
            let header = |k: &str| {
                req.headers()
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let range = header("range");
            seen.lock()
                .expect("lock")
                .push((header("authorization"), range.clone()));
            let start: usize = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            let mut resp = Response::builder();
            if start > 0 {
                resp = resp.status(206).header(
                    "content-range",
                    format!("bytes {start}-{}/{}", data.len() - 1, data.len()),
                );
            }
            resp.body(Body::from(data.slice(start..)))
                .expect("response")
        }
    }))
    .await;

    let target = format!("{}/storage/blob", storage.url());
    let registry = Server::start(axum::Router::new().fallback(move |req: Request| {
        let target = target.clone();
        async move {
            let authorized = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                == Some("Basic dXNlcjpwYXNz");
            if !authorized {
                return Response::builder()
                    .status(401)
                    .header("www-authenticate", "Basic realm=\"double\"")
                    .body(Body::empty())
                    .expect("response");
            }
            Response::builder()
                .status(307)
                .header("location", target)
                .body(Body::empty())
                .expect("response")
        }
    }))
    .await;

    let c = client();
    std::fs::write(
        c.config_dir.path().join("config.json"),
        serde_json::json!({"auths": {registry.host(): {"username": "user", "password": "pass"}}})
            .to_string(),
    )
    .expect("config.json");
    let r = reference(&format!("{}/x", registry.host()));
    let d =
        strata_types::Descriptor::new(strata_remote::media::OCI_LAYER, digest, data.len() as u64);
    let got = c
        .remote
        .fetch_blob(&r, &d, 0)
        .await
        .expect("fetch")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(got, data);
    let got = c
        .remote
        .fetch_blob(&r, &d, 1234)
        .await
        .expect("fetch")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(got, data[1234..]);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen, [(None, None), (None, Some("bytes=1234-".to_owned()))]);
}

/// A body without a length that goes on past the descriptor's size fails at the chunk that
/// crosses it, not at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_body_fails_at_once() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use futures_util::StreamExt as _;

    common::init();
    let produced = Arc::new(AtomicU64::new(0));
    let p = produced.clone();
    let router = axum::Router::new().fallback(move || {
        let produced = p.clone();
        async move {
            let chunk = bytes::Bytes::from(vec![7u8; 16 << 10]);
            let stream = futures_util::stream::iter(0..4096).map(move |_| {
                produced.fetch_add(16 << 10, Ordering::SeqCst);
                Ok::<_, std::io::Error>(chunk.clone())
            });
            axum::response::Response::builder()
                .body(axum::body::Body::from_stream(stream))
                .expect("response")
        }
    });
    let server = Server::start(router).await;
    let c = client();
    let r = reference(&format!("{}/x", server.host()));
    let d = strata_types::Descriptor::new(
        strata_remote::media::OCI_LAYER,
        strata_types::Digest::sha256_of(b"whatever"),
        100_000,
    );
    let mut s = c.remote.fetch_blob(&r, &d, 0).await.expect("fetch");
    let mut got = 0;
    let e = loop {
        match s.next().await {
            Some(Ok(chunk)) => got += chunk.len(),
            Some(Err(e)) => break e,
            None => panic!("the stream ended without an error"),
        }
    };
    assert!(
        matches!(
            e,
            RemoteError::Overflow {
                expected: 100_000,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        got <= 100_000,
        "no byte past the size was handed out: {got}"
    );
    assert!(s.next().await.is_none(), "the stream ends after the error");
    drop(s);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        produced.load(Ordering::SeqCst) < 32 << 20,
        "the download stopped early"
    );
}
