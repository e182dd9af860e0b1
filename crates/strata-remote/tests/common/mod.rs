//! Shared pieces of the integration tests: a client with throw-away configuration, seeding
//! images with strata-testutil's independent pusher, a registry with authentication, a
//! token server, and strata-testutil's fault-injecting proxy and server for registry doubles.

// Test scaffolding: a failed setup step is a failed test, so helpers panic with a message.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use strata_remote::{Reference, Remote, RemoteError, RemoteOptions};
use strata_types::{Descriptor, Digest};

/// Every test registers the ring provider for the raw reqwest clients the helpers use
/// (strata-remote itself brings its own configuration).
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client whose Docker config and hosts dir are empty temp dirs (never the user's), with
/// quick retries.
pub struct Client {
    pub remote: Remote,
    pub config_dir: tempfile::TempDir,
    pub hosts_dir: tempfile::TempDir,
}

pub fn options(config_dir: &Path, hosts_dir: &Path) -> RemoteOptions {
    RemoteOptions {
        hosts_dir: Some(hosts_dir.to_owned()),
        docker_config: Some(config_dir.to_owned()),
        credential_helper_path: Some(config_dir.as_os_str().to_owned()),
        retries: 3,
        retry_delay: Duration::from_millis(20),
        ..RemoteOptions::default()
    }
}

pub fn client() -> Client {
    client_with(|_| {})
}

pub fn client_with(tweak: impl FnOnce(&mut RemoteOptions)) -> Client {
    init();
    let config_dir = tempfile::tempdir().expect("tempdir");
    let hosts_dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(config_dir.path(), hosts_dir.path());
    tweak(&mut opts);
    Client {
        remote: Remote::new(opts).expect("remote"),
        config_dir,
        hosts_dir,
    }
}

pub fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub fn descriptor(blob: &strata_testutil::Blob) -> Descriptor {
    Descriptor::new(
        blob.media_type.clone(),
        blob.digest.parse::<Digest>().expect("digest"),
        blob.size(),
    )
}

/// Pushes `image` to `r` through `c` (blobs the registry lacks, then the manifest), for
/// registries that want credentials the testutil pusher does not send.
pub async fn push(
    c: &Client,
    r: &Reference,
    image: &strata_testutil::Image,
) -> Result<(), RemoteError> {
    for blob in image.blobs() {
        let d = descriptor(blob);
        if !c.remote.blob_exists(r, &d.digest).await? {
            c.remote
                .push_blob(r, &d, Bytes::from(blob.bytes.clone()), None)
                .await?;
        }
    }
    c.remote
        .push_manifest(
            r,
            r.tag().unwrap_or("latest"),
            &image.manifest.media_type,
            &image.manifest.bytes,
        )
        .await?;
    Ok(())
}

/// Resolves `r` and fetches every blob of its manifest; returns the manifest.
pub async fn pull(c: &Client, r: &Reference) -> Result<Vec<u8>, RemoteError> {
    let (d, _) = c.remote.resolve(r).await?;
    let manifest = c.remote.fetch_manifest(r, &d).await?;
    let m: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest json");
    let mut blobs = vec![m["config"].clone()];
    blobs.extend(m["layers"].as_array().cloned().unwrap_or_default());
    for b in blobs {
        let d: strata_types::Descriptor = serde_json::from_value(b).expect("descriptor");
        c.remote.fetch_blob(r, &d, 0).await?.bytes().await?;
    }
    Ok(manifest)
}

/// Pushes with strata-testutil's own (blocking) client.
pub async fn seed_image(url: &str, repo: &str, tag: &str, image: &strata_testutil::Image) {
    let (url, repo, tag, image) = (
        url.to_owned(),
        repo.to_owned(),
        tag.to_owned(),
        image.clone(),
    );
    tokio::task::spawn_blocking(move || strata_testutil::push_image(&url, &repo, &tag, &image))
        .await
        .expect("join")
        .expect("seeding the registry");
}

pub async fn seed_index(url: &str, repo: &str, tag: &str, index: &strata_testutil::Index) {
    let (url, repo, tag, index) = (
        url.to_owned(),
        repo.to_owned(),
        tag.to_owned(),
        index.clone(),
    );
    tokio::task::spawn_blocking(move || strata_testutil::push_index(&url, &repo, &tag, &index))
        .await
        .expect("join")
        .expect("seeding the registry");
}

/// A small two-layer image (gzip + zstd), OCI or Docker media types.
pub fn sample_image(docker: bool, salt: &str) -> strata_testutil::Image {
    use strata_testutil::{Compression, ImageBuilder, LayerBuilder};
    let a = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/salt", salt.as_bytes(), 0o644)
        .build(Compression::Gzip);
    let b = LayerBuilder::new()
        .file("data", &pseudo_random(200_000, salt), 0o644)
        .build(Compression::Zstd);
    let mut builder = ImageBuilder::new().layer(a).layer(b);
    if docker {
        builder = builder.docker_media_types();
    }
    builder.build()
}

/// Deterministic incompressible-ish bytes.
pub fn pseudo_random(len: usize, seed: &str) -> Vec<u8> {
    let mut state: u64 = seed.bytes().fold(0x9E37_79B9_7F4A_7C15, |a, b| {
        a.rotate_left(5) ^ u64::from(b)
    });
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub async fn skopeo_raw(addr: &str, reference: &str) -> anyhow::Result<Vec<u8>> {
    let target = format!("docker://{addr}/{reference}");
    let out = tokio::process::Command::new("skopeo")
        .args([
            "--insecure-policy",
            "inspect",
            "--raw",
            "--tls-verify=false",
            &target,
        ])
        .output()
        .await
        .context("running skopeo")?;
    if !out.status.success() {
        bail!(
            "skopeo inspect {target} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

// ---------------------------------------------------------------------------------------
// A registry with authentication.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `docker-registry serve` with an `auth:` section, on a free port.
pub struct AuthRegistry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl AuthRegistry {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the registry with `auth` (YAML, indented two spaces under `auth:`) and waits
    /// until `/v2/` answers at all.
    pub async fn start(auth: &str, dir: tempfile::TempDir) -> anyhow::Result<AuthRegistry> {
        let port = free_port();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\nauth:\n{auth}",
                storage.display()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd.spawn().context("spawning docker-registry")?;
        let reg = AuthRegistry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(reg);
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(reg.dir.path().join("registry.log"))
                    .unwrap_or_default();
                bail!("docker-registry did not listen on {port}: {log}");
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry that wants Basic auth (htpasswd) for `alice:wonderland`; `None` (the test
/// skips) without docker-registry.
pub async fn htpasswd_registry() -> Option<AuthRegistry> {
    if !strata_testutil::require_tool("docker-registry") {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, htpasswd_line("alice", "wonderland")).expect("htpasswd");
    let auth = format!(
        "  htpasswd:\n    realm: strata-test\n    path: {}\n",
        file.display()
    );
    Some(AuthRegistry::start(&auth, dir).await.expect("registry"))
}

/// A bcrypt htpasswd line.
pub fn htpasswd_line(user: &str, password: &str) -> String {
    let hash = bcrypt::hash(password, 5).expect("bcrypt");
    format!("{user}:{hash}\n")
}

// ---------------------------------------------------------------------------------------
// An HTTP server on a free loopback port, and a fault-injecting proxy: strata-testutil's.

pub use strata_testutil::proxy::{Proxy, Server};

// ---------------------------------------------------------------------------------------
// A token server for `auth: token`, signing RS256 JWTs with openssl.

pub const SERVICE: &str = "strata-test-registry";
pub const ISSUER: &str = "strata-test-issuer";

pub struct TokenServer {
    pub server: Server,
    pub state: Arc<TokenState>,
}

pub struct TokenState {
    key: PathBuf,
    x5c: String,
    /// user → password
    pub users: HashMap<String, String>,
    /// refresh token → user
    pub refresh_tokens: HashMap<String, String>,
    /// Every request: (method, user or "", scopes).
    pub requests: Mutex<Vec<(String, String, Vec<String>)>>,
}

impl TokenServer {
    /// Generates a key and self-signed certificate in `dir` (`cert.pem` is the registry's
    /// `rootcertbundle`) and serves `/token`. Anonymous users may pull `public/*`; known
    /// users may pull and push everything but `bob/*`.
    pub async fn start(dir: &Path) -> anyhow::Result<TokenServer> {
        init();
        let key = dir.join("token-key.pem");
        let cert = dir.join("cert.pem");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-subj", "/CN=strata-test-token-signer"])
            .output()
            .context("running openssl req")?;
        if !out.status.success() {
            bail!("openssl req: {}", String::from_utf8_lossy(&out.stderr));
        }
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .context("running openssl x509")?;
        if !der.status.success() {
            bail!("openssl x509: {}", String::from_utf8_lossy(&der.stderr));
        }
        let state = Arc::new(TokenState {
            key,
            x5c: STANDARD.encode(&der.stdout),
            users: HashMap::from([("alice".to_owned(), "wonderland".to_owned())]),
            refresh_tokens: HashMap::from([("alice-refresh".to_owned(), "alice".to_owned())]),
            requests: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new()
            .route(
                "/token",
                axum::routing::get(token_handler).post(token_handler),
            )
            .with_state(state.clone());
        Ok(TokenServer {
            server: Server::start(router).await,
            state,
        })
    }

    pub fn realm(&self) -> String {
        format!("{}/token", self.server.url())
    }

    /// The registry's `auth:` section for this token server.
    pub fn registry_auth(&self, dir: &Path) -> String {
        format!(
            "  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm(),
            dir.join("cert.pem").display()
        )
    }

    pub fn requests(&self) -> Vec<(String, String, Vec<String>)> {
        self.state.requests.lock().expect("lock").clone()
    }
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn token_handler(State(st): State<Arc<TokenState>>, req: Request) -> Response {
    let method = req.method().to_string();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let headers: HeaderMap = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let params = if method == "POST" {
        query_pairs(&String::from_utf8_lossy(&body))
    } else {
        query_pairs(&query)
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let unauthorized = || {
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .body(Body::from(
                r#"{"details":"incorrect username or password"}"#,
            ))
            .expect("response")
    };
    let mut scopes: Vec<String> = Vec::new();
    let user = if method == "POST" {
        if get("grant_type").as_deref() != Some("refresh_token") {
            return unauthorized();
        }
        for s in get("scope").unwrap_or_default().split(' ') {
            if !s.is_empty() {
                scopes.push(s.to_owned());
            }
        }
        match get("refresh_token").and_then(|t| st.refresh_tokens.get(&t).cloned()) {
            Some(u) => u,
            None => return unauthorized(),
        }
    } else {
        scopes = params
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.clone())
            .collect();
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            None => String::new(),
            Some(h) => {
                let decoded = h
                    .strip_prefix("Basic ")
                    .and_then(|b| STANDARD.decode(b).ok())
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default();
                let (u, p) = decoded.split_once(':').unwrap_or(("", ""));
                if st.users.get(u).map(String::as_str) != Some(p) {
                    return unauthorized();
                }
                u.to_owned()
            }
        }
    };
    st.requests
        .lock()
        .expect("lock")
        .push((method.clone(), user.clone(), scopes.clone()));
    let mut access = Vec::new();
    for scope in &scopes {
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|a| {
                if user.is_empty() {
                    *a == "pull" && name.starts_with("public/")
                } else {
                    !name.starts_with("bob/")
                }
            })
            .collect();
        access.push(serde_json::json!({"type": kind, "name": name, "actions": granted}));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [st.x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": user,
        "aud": SERVICE,
        "exp": now + 600,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", st.requests.lock().expect("lock").len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = st.key.clone();
    let input = signing_input.clone();
    let signature = tokio::task::spawn_blocking(move || sign(&key, input.as_bytes()))
        .await
        .expect("join");
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    let field = if method == "POST" {
        "access_token"
    } else {
        "token"
    };
    let body = serde_json::json!({ field: token, "expires_in": 600 });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("response")
}

fn sign(key: &Path, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl dgst");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write");
    let out = child.wait_with_output().expect("openssl dgst");
    assert!(out.status.success(), "openssl dgst failed");
    out.stdout
}

pub fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header value")
}
