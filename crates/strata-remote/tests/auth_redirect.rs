//! Credentials and redirects: the registry (behind strata-testutil's proxy) redirects blob
//! GETs to another host, a fake "storage" server here. Whatever that host answers, it never
//! gets the registry's credentials: not on the redirected request, not at a token realm it
//! names in a challenge of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::*;
use strata_remote::{Reference, RemoteError};
use strata_testutil::require_tool;
use strata_types::ErrorKind;

/// What the storage host answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// `401` with `Basic realm="storage"`.
    Basic,
    /// `401` with a Bearer challenge whose realm is the storage host's own `/token`, which
    /// hands out a token to anyone.
    Bearer,
    /// The blob, to anyone.
    Serve,
}

/// The storage host: every request's path and `Authorization`, in order.
struct StorageHost {
    server: Server,
    seen: Arc<Mutex<Vec<(String, Option<String>)>>>,
}

impl StorageHost {
    async fn start(mode: Storage, blobs: Vec<(String, Bytes)>) -> StorageHost {
        let seen: Arc<Mutex<Vec<(String, Option<String>)>>> = Arc::default();
        let own: Arc<Mutex<String>> = Arc::default();
        let (log, me) = (seen.clone(), own.clone());
        let router = axum::Router::new().fallback(move |req: Request| {
            let (log, me, blobs) = (log.clone(), me.clone(), blobs.clone());
            async move {
                let path = req.uri().path().to_owned();
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                log.lock().expect("lock").push((path.clone(), auth));
                let me = me.lock().expect("lock").clone();
                let resp = Response::builder();
                if path == "/token" {
                    return resp
                        .header("content-type", "application/json")
                        .body(Body::from(r#"{"token":"storage-token"}"#))
                        .expect("response");
                }
                let challenge = match mode {
                    Storage::Basic => r#"Basic realm="storage""#.to_owned(),
                    Storage::Bearer => format!(r#"Bearer realm="{me}/token",service="storage""#),
                    Storage::Serve => {
                        let blob = blobs.iter().find(|(d, _)| path.ends_with(d.as_str()));
                        return match blob {
                            Some((_, bytes)) => resp.body(Body::from(bytes.clone())),
                            None => resp.status(404).body(Body::empty()),
                        }
                        .expect("response");
                    }
                };
                resp.status(401)
                    .header("www-authenticate", challenge)
                    .body(Body::empty())
                    .expect("response")
            }
        });
        let server = Server::start(router).await;
        *own.lock().expect("lock") = server.url();
        StorageHost { server, seen }
    }

    fn seen(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().expect("lock").clone()
    }

    /// Asserts the host was asked for blobs and never got credentials of any kind.
    fn assert_never_authorized(&self) {
        let seen = self.seen();
        assert!(
            seen.iter().any(|(p, _)| p.contains("/blobs/sha256:")),
            "the redirect was followed: {seen:?}"
        );
        assert!(
            seen.iter().all(|(_, auth)| auth.is_none()),
            "the storage host got credentials: {seen:?}"
        );
    }
}

fn write_basic(c: &Client, host: &str, user: &str, password: &str) {
    let auth = STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        c.config_dir.path().join("config.json"),
        serde_json::json!({"auths": {host: {"auth": auth}}}).to_string(),
    )
    .expect("config.json");
}

fn blobs_of(image: &strata_testutil::Image) -> Vec<(String, Bytes)> {
    image
        .blobs()
        .map(|b| (b.digest.clone(), Bytes::from(b.bytes.clone())))
        .collect()
}

/// A registry (behind `reg_addr`, wanting alice's credentials) holding `image` at
/// `team/app:v1`, a proxy in front of it that redirects blob GETs to a storage host
/// answering `mode`, and a client with alice's credentials for the proxy.
struct Setup {
    proxy: Proxy,
    storage: StorageHost,
    client: Client,
    r: Reference,
}

async fn redirected(reg_addr: &str, mode: Storage, salt: &str) -> Setup {
    let image = sample_image(false, salt);
    let seeder = client();
    write_basic(&seeder, reg_addr, "alice", "wonderland");
    let origin = reference(&format!("{reg_addr}/team/app:v1"));
    push(&seeder, &origin, &image)
        .await
        .expect("seed the origin");

    let proxy = Proxy::start(reg_addr).await;
    let storage = StorageHost::start(mode, blobs_of(&image)).await;
    proxy.redirect_blobs(Some(&storage.server.url()));
    let c = client();
    write_basic(&c, &proxy.host(), "alice", "wonderland");
    let r = reference(&format!("{}/team/app:v1", proxy.host()));
    Setup {
        proxy,
        storage,
        client: c,
        r,
    }
}

fn assert_redirect_auth(e: &RemoteError, s: &Setup) {
    assert!(matches!(e, RemoteError::RedirectAuth { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    let text = e.to_string();
    assert!(text.contains(&s.storage.server.url()), "{text}");
    assert!(text.contains(&s.proxy.host()), "{text}");
    assert!(text.contains("credentials"), "{text}");
}

/// The storage host's Bearer challenge names its own token realm: the registry's Basic
/// credentials must not go there (before the fix they did: `GET /token` with
/// `Authorization: Basic alice:wonderland`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_targets_bearer_realm_gets_no_credentials() {
    let Some(reg) = htpasswd_registry().await else {
        return;
    };
    let s = redirected(&reg.addr(), Storage::Bearer, "redirect-bearer").await;
    let e = pull(&s.client, &s.r).await.unwrap_err();
    s.storage.assert_never_authorized();
    assert!(
        !s.storage.seen().iter().any(|(p, _)| p == "/token"),
        "the storage host's realm was asked for a token: {:?}",
        s.storage.seen()
    );
    assert_redirect_auth(&e, &s);
}

/// A Basic challenge from the storage host is not the registry's: no credentials are sent
/// to it, and the error says where the redirect led.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_targets_basic_challenge_gets_no_credentials() {
    let Some(reg) = htpasswd_registry().await else {
        return;
    };
    let s = redirected(&reg.addr(), Storage::Basic, "redirect-basic").await;
    let e = pull(&s.client, &s.r).await.unwrap_err();
    s.storage.assert_never_authorized();
    assert_redirect_auth(&e, &s);
}

/// Storage that serves anyone: the pull succeeds, and the redirected requests carried no
/// credentials although the registry's requests did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_storage_behind_a_redirect_serves_the_pull() {
    let Some(reg) = htpasswd_registry().await else {
        return;
    };
    let s = redirected(&reg.addr(), Storage::Serve, "redirect-serve").await;
    pull(&s.client, &s.r)
        .await
        .expect("pull through the redirect");
    s.storage.assert_never_authorized();
    assert!(
        s.proxy.requests().iter().any(|l| l.status == 307),
        "{:?}",
        s.proxy.requests()
    );
}

/// With the Bearer token flow, the registry's token is not sent on the redirected request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_is_not_sent_to_the_redirect_target() {
    if !require_tool("docker-registry") || !require_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let token = TokenServer::start(dir.path()).await.expect("token server");
    let auth = token.registry_auth(dir.path());
    let reg = AuthRegistry::start(&auth, dir).await.expect("registry");
    let s = redirected(&reg.addr(), Storage::Serve, "redirect-token").await;
    pull(&s.client, &s.r)
        .await
        .expect("pull through the redirect");
    s.storage.assert_never_authorized();
    assert!(
        token.requests().iter().any(|(_, user, _)| user == "alice"),
        "the registry's own flow used the credentials: {:?}",
        token.requests()
    );
}
