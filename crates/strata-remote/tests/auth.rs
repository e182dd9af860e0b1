//! Authentication against the real registry: htpasswd (Basic), the Bearer token flow with a
//! token server written here, credentials from config.json and helpers, login and logout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::*;
use strata_remote::{BlobPushed, RemoteError};
use strata_testutil::require_tool;
use strata_types::ErrorKind;

fn write_config(c: &Client, json: serde_json::Value) {
    std::fs::write(c.config_dir.path().join("config.json"), json.to_string()).expect("config.json");
}

fn basic(user: &str, password: &str) -> serde_json::Value {
    serde_json::json!({ "auth": STANDARD.encode(format!("{user}:{password}")) })
}

/// Distribution 2.8 accepts htpasswd over plain HTTP (it only warns); Basic credentials
/// from config.json are sent after the first challenge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_with_htpasswd() {
    let Some(reg) = htpasswd_registry().await else {
        return;
    };
    let image = sample_image(false, "basic");
    let r = reference(&format!("{}/team/app:v1", reg.addr()));

    let anonymous = client();
    let e = anonymous.remote.resolve(&r).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "pull access denied for {r}: the repository does not exist or {0} requires \
             authentication (strata login {0})",
            reg.addr()
        )
    );
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);

    let wrong = client();
    write_config(
        &wrong,
        serde_json::json!({"auths": {reg.addr(): basic("alice", "nope")}}),
    );
    let e = wrong.remote.resolve(&r).await.unwrap_err();
    assert!(matches!(e, RemoteError::AuthRefused { .. }), "{e}");
    assert!(e.to_string().contains("credentials rejected"), "{e}");

    let alice = client();
    write_config(
        &alice,
        serde_json::json!({"auths": {format!("http://{}/v2/", reg.addr()): basic("alice", "wonderland")}}),
    );
    push(&alice, &r, &image)
        .await
        .expect("push with basic auth");
    let manifest = pull(&alice, &r).await.expect("pull with basic auth");
    assert_eq!(manifest, image.manifest.bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_stores_and_logout_erases() {
    let Some(reg) = htpasswd_registry().await else {
        return;
    };
    let c = client();
    let config = c.config_dir.path().join("config.json");
    let e = c
        .remote
        .login(&reg.addr(), "alice", "bad")
        .await
        .unwrap_err();
    assert!(matches!(e, RemoteError::AuthRefused { .. }), "{e}");
    assert!(!config.exists(), "nothing stored after a refused login");

    c.remote
        .login(&reg.addr(), "alice", "wonderland")
        .await
        .expect("login");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).expect("read")).expect("json");
    assert_eq!(stored["auths"][reg.addr()], basic("alice", "wonderland"));
    assert_eq!(
        std::fs::metadata(&config)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let r = reference(&format!("{}/after/login:v1", reg.addr()));
    push(&c, &r, &sample_image(true, "login"))
        .await
        .expect("push after login");

    assert!(
        c.remote
            .erase_credentials(&reg.addr())
            .await
            .expect("logout")
    );
    let fresh = strata_remote::Remote::new(options(c.config_dir.path(), c.hosts_dir.path()))
        .expect("remote");
    let e = fresh.resolve(&r).await.unwrap_err();
    assert!(matches!(e, RemoteError::AuthRequired { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_a_helper() {
    let Some(reg) = htpasswd_registry().await else {
        return;
    };
    let c = client();
    let helper = c.config_dir.path().join("docker-credential-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n\
             if [ \"$server\" = \"{}\" ]; then echo '{{\"Username\":\"alice\",\"Secret\":\"wonderland\"}}';\n\
             else echo 'credentials not found in native keychain'; exit 1; fi\n",
            reg.addr()
        ),
    )
    .expect("helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    write_config(&c, serde_json::json!({"credsStore": "test"}));
    let r = reference(&format!("{}/helped:v1", reg.addr()));
    let image = sample_image(false, "helper");
    push(&c, &r, &image)
        .await
        .expect("push with helper credentials");
    assert_eq!(pull(&c, &r).await.expect("pull"), image.manifest.bytes);

    // A helper that is configured but missing is an error naming it.
    let missing = client();
    write_config(
        &missing,
        serde_json::json!({"credHelpers": {reg.addr(): "absent"}}),
    );
    let e = missing.remote.resolve(&r).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("docker-credential-absent get for"),
        "{e}"
    );
}

struct TokenSetup {
    token: TokenServer,
    reg: AuthRegistry,
}

async fn token_registry() -> Option<TokenSetup> {
    if !require_tool("docker-registry") || !require_tool("openssl") {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let token = TokenServer::start(dir.path()).await.expect("token server");
    let auth = token.registry_auth(dir.path());
    let reg = AuthRegistry::start(&auth, dir).await.expect("registry");
    Some(TokenSetup { token, reg })
}

fn alice(addr: &str) -> Client {
    let c = client();
    write_config(
        &c,
        serde_json::json!({"auths": {addr: basic("alice", "wonderland")}}),
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_flow() {
    let Some(TokenSetup { token, reg }) = token_registry().await else {
        return;
    };
    let image = sample_image(false, "token");
    let private = reference(&format!("{}/team/app:v1", reg.addr()));
    let public = reference(&format!("{}/public/app:v1", reg.addr()));

    let a = alice(&reg.addr());
    push(&a, &private, &image).await.expect("alice pushes");
    push(&a, &public, &image)
        .await
        .expect("alice pushes public");
    let pushes = token.requests();
    assert!(
        pushes.iter().all(|(_, user, _)| user == "alice"),
        "{pushes:?}"
    );
    assert!(
        pushes
            .iter()
            .any(|(_, _, s)| s == &["repository:team/app:pull,push"]),
        "{pushes:?}"
    );
    // Tokens are reused: one per scope set, not one per request.
    let mut scope_sets: Vec<&Vec<String>> = pushes.iter().map(|(_, _, s)| s).collect();
    let n = scope_sets.len();
    scope_sets.dedup();
    assert_eq!(
        scope_sets.len(),
        n,
        "no scope set asked for twice: {pushes:?}"
    );

    // Anonymous: public pulls work with one anonymous token; private ones are denied.
    let anon = client();
    let before = token.requests().len();
    assert_eq!(
        pull(&anon, &public).await.expect("anonymous pull"),
        image.manifest.bytes
    );
    let anon_requests = &token.requests()[before..];
    assert_eq!(
        anon_requests.len(),
        1,
        "one token for the whole pull: {anon_requests:?}"
    );
    assert_eq!(anon_requests[0].1, "", "anonymous");
    let e = anon.remote.resolve(&private).await.unwrap_err();
    assert!(matches!(e, RemoteError::AuthRequired { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("pull access denied for {private}")),
        "{e}"
    );

    // Wrong password: the token server refuses.
    let wrong = client();
    write_config(
        &wrong,
        serde_json::json!({"auths": {reg.addr(): basic("alice", "x")}}),
    );
    let e = wrong.remote.resolve(&private).await.unwrap_err();
    assert!(matches!(e, RemoteError::AuthRefused { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("token server refused the credentials"),
        "{e}"
    );

    // Known user, repository she may not push to.
    let bob = reference(&format!("{}/bob/app:v1", reg.addr()));
    let blob = &image.layers[0].blob;
    let e = a
        .remote
        .push_blob(
            &bob,
            &descriptor(blob),
            Bytes::from(blob.bytes.clone()),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, RemoteError::AuthRefused { .. }), "{e}");
    assert!(e.to_string().contains("do not grant push access"), "{e}");

    // An identity token (OAuth refresh token) is exchanged with a POST.
    let idt = client();
    write_config(
        &idt,
        serde_json::json!({"auths": {reg.addr(): {"identitytoken": "alice-refresh"}}}),
    );
    let before = token.requests().len();
    assert_eq!(
        pull(&idt, &private)
            .await
            .expect("pull with identity token"),
        image.manifest.bytes
    );
    let posts = &token.requests()[before..];
    assert!(
        posts.iter().all(|(m, u, _)| m == "POST" && u == "alice"),
        "{posts:?}"
    );
    assert!(!posts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_repository_mount_with_tokens() {
    let Some(TokenSetup { token, reg }) = token_registry().await else {
        return;
    };
    let a = alice(&reg.addr());
    let image = sample_image(false, "mount-token");
    let base = reference(&format!("{}/team/base:v1", reg.addr()));
    push(&a, &base, &image).await.expect("push base");
    let derived = reference(&format!("{}/team/derived:v1", reg.addr()));
    let layer = descriptor(&image.layers[0].blob);
    let how = a
        .remote
        .push_blob(&derived, &layer, Bytes::new(), Some("team/base"))
        .await
        .expect("mount");
    assert_eq!(how, BlobPushed::Mounted);
    assert!(
        token.requests().iter().any(|(_, _, s)| s
            .contains(&"repository:team/base:pull".to_owned())
            && s.contains(&"repository:team/derived:pull,push".to_owned())),
        "the token asked for pull on the source too: {:?}",
        token.requests()
    );

    // No pull access on the source: the mount is refused and the blob uploaded instead.
    let other = sample_image(false, "bob-only");
    let blob = &other.layers[0].blob;
    let d = descriptor(blob);
    let how = a
        .remote
        .push_blob(
            &derived,
            &d,
            Bytes::from(blob.bytes.clone()),
            Some("bob/secret"),
        )
        .await
        .expect("fallback upload");
    assert_eq!(how, BlobPushed::Uploaded);
    assert!(
        a.remote
            .blob_exists(&derived, &d.digest)
            .await
            .expect("head")
    );
}

/// A token that stops working in the middle of a pull (revoked, expired) is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthenticates_after_a_401_mid_operation() {
    let Some(TokenSetup { token, reg }) = token_registry().await else {
        return;
    };
    let a = alice(&reg.addr());
    let image = sample_image(false, "reauth");
    let r = reference(&format!("{}/team/app:v1", reg.addr()));
    push(&a, &r, &image).await.expect("push");

    let proxy = Proxy::start(&reg.addr()).await;
    let c = alice(&proxy.host());
    let via = reference(&format!("{}/team/app:v1", proxy.host()));
    let (d, _) = c.remote.resolve(&via).await.expect("resolve");
    let before = token.requests().len();
    *proxy.faults.unauthorized_challenge.lock().expect("lock") = format!(
        "Bearer realm=\"{}\",service=\"{SERVICE}\",scope=\"repository:team/app:pull\",error=\"invalid_token\"",
        token.realm()
    );
    *proxy.faults.fail_path.lock().expect("lock") = "/blobs/".into();
    proxy.faults.unauthorized_count.store(1, Ordering::SeqCst);
    let layer = descriptor(&image.layers[1].blob);
    let got = c
        .remote
        .fetch_blob(&via, &layer, 0)
        .await
        .expect("fetch")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(got, image.layers[1].blob.bytes);
    assert_eq!(token.requests().len(), before + 1, "exactly one new token");
    let statuses: Vec<u16> = proxy
        .requests()
        .iter()
        .filter(|l| l.path.contains("/blobs/"))
        .map(|l| l.status)
        .collect();
    assert_eq!(statuses, [401, 200]);
    c.remote
        .fetch_manifest(&via, &d)
        .await
        .expect("manifest with the new token");
    assert_eq!(token.requests().len(), before + 1);
}
