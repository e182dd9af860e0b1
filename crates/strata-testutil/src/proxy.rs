//! A fault-injecting HTTP proxy in front of a registry, and the small axum [`Server`] it runs
//! on (also handy for registry doubles).
//!
//! The proxy forwards every request to the upstream registry and logs it ([`Logged`]:
//! method, path, status, `Range`); [`Faults`] says what to break: answer requests with an
//! error status, cut a blob body (connection dropped) or end it early (truncated), flip one
//! byte of a blob body, ignore `Range`, strip `Docker-Content-Digest`, answer with a `401`,
//! serve a manifest over the 4 MiB limit, trickle a blob body a few bytes at a time, or
//! redirect blob GETs to another server. Counters count down as faults are injected.
//!
//! It is async (axum + reqwest on tokio). [`Proxy::start`] runs on the caller's runtime;
//! [`Proxy::start_blocking`] brings its own, for synchronous tests.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let reg = strata_testutil::Registry::start()?;
//! let proxy = strata_testutil::Proxy::start_blocking(&reg.addr());
//! proxy.cut(1, 100_000, "/blobs/sha256:"); // the first blob GET breaks off after 100 kB
//! // … pull from `proxy.host()` …
//! assert!(proxy.requests().iter().any(|l| l.range.is_some()));
//! # Ok(())
//! # }
//! ```

// Test scaffolding: a broken lock or a failed setup step is a failed test.
#![allow(clippy::expect_used)]

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt as _;

/// The size of the manifest [`Proxy::oversize_manifests`] serves: over the 4 MiB limit.
pub const OVERSIZE_MANIFEST: usize = 5 << 20;

/// An HTTP server on a free loopback port, serving an axum router until dropped.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `127.0.0.1:0` and serves `router` on the current tokio runtime.
    pub async fn start(router: axum::Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Server { addr, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request the proxy saw, with the status it answered.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub status: u16,
    /// The request's `Range` header, as the client sent it.
    pub range: Option<String>,
}

/// What the proxy breaks. Counters count down as faults are injected.
#[derive(Debug, Default)]
pub struct Faults {
    /// Answer this many requests (whose path contains `fail_path`) with `fail_status`.
    pub fail_count: AtomicUsize,
    pub fail_status: Mutex<u16>,
    pub fail_path: Mutex<String>,
    pub fail_method: Mutex<Option<String>>,
    /// Let this many matching requests through before failing any.
    pub fail_skip: AtomicUsize,
    /// Cut and flip only blob GETs whose path contains this (empty: every blob GET).
    pub body_path: Mutex<String>,
    /// Cut this many blob GET bodies after `cut_after` bytes: the connection drops, or with
    /// `cut_clean` the body ends there as a complete chunked response (no `Content-Length`).
    pub cut_count: AtomicUsize,
    pub cut_after: AtomicUsize,
    pub cut_clean: AtomicBool,
    /// Flip (xor 0xff) the byte at `flip_at` of this many blob GET bodies.
    pub flip_count: AtomicUsize,
    pub flip_at: AtomicUsize,
    /// Drop `Range` from blob requests.
    pub ignore_range: Mutex<bool>,
    /// Drop `Docker-Content-Digest` from manifest HEAD answers.
    pub strip_digest: Mutex<bool>,
    /// Answer this many requests matching `fail_path` with a 401 and this challenge.
    pub unauthorized_count: AtomicUsize,
    pub unauthorized_challenge: Mutex<String>,
    /// Answer this many manifest requests (HEAD or GET) with a manifest of
    /// [`OVERSIZE_MANIFEST`] bytes, announced in `Content-Length` unless `oversize_chunked`.
    pub oversize_count: AtomicUsize,
    pub oversize_chunked: AtomicBool,
    /// Serve this many blob GET bodies (whose path contains `body_path`) `trickle_bytes` at
    /// a time, one piece every `trickle_interval`.
    pub trickle_count: AtomicUsize,
    pub trickle_bytes: AtomicUsize,
    pub trickle_interval: Mutex<Duration>,
    /// Answer blob GETs with a `307` to this base URL plus the request's path and query.
    pub redirect_blobs: Mutex<Option<String>>,
}

/// A fault-injecting proxy in front of a registry (see the module documentation).
#[derive(Debug)]
pub struct Proxy {
    pub server: Server,
    pub faults: Arc<Faults>,
    pub log: Arc<Mutex<Vec<Logged>>>,
}

/// A [`Proxy`] on its own tokio runtime, for synchronous tests; stops when dropped.
#[derive(Debug)]
pub struct ProxyHandle {
    // Dropped first: the server task is aborted before its runtime shuts down.
    proxy: Proxy,
    _runtime: tokio::runtime::Runtime,
}

impl Deref for ProxyHandle {
    type Target = Proxy;

    fn deref(&self) -> &Proxy {
        &self.proxy
    }
}

struct ProxyState {
    upstream: String,
    upstream_authority: String,
    client: reqwest::Client,
    faults: Arc<Faults>,
    log: Arc<Mutex<Vec<Logged>>>,
    own: Mutex<String>,
}

impl Proxy {
    /// Starts a proxy to `upstream_addr` (`host:port`, plain HTTP) on the current runtime.
    pub async fn start(upstream_addr: &str) -> Proxy {
        // reqwest may be built with rustls and no provider (strata-remote's features).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let faults = Arc::new(Faults::default());
        *faults.fail_status.lock().expect("lock") = 503;
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(ProxyState {
            upstream: format!("http://{upstream_addr}"),
            upstream_authority: upstream_addr.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("proxy client"),
            faults: faults.clone(),
            log: log.clone(),
            own: Mutex::new(String::new()),
        });
        let router = axum::Router::new()
            .fallback(proxy_handler)
            .with_state(state.clone());
        let server = Server::start(router).await;
        *state.own.lock().expect("lock") = server.host();
        Proxy {
            server,
            faults,
            log,
        }
    }

    /// Starts a proxy to `upstream_addr` on a runtime of its own (one worker thread).
    pub fn start_blocking(upstream_addr: &str) -> ProxyHandle {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let proxy = runtime.block_on(Proxy::start(upstream_addr));
        ProxyHandle {
            proxy,
            _runtime: runtime,
        }
    }

    /// `127.0.0.1:PORT`, to use as the registry host.
    pub fn host(&self) -> String {
        self.server.host()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().expect("lock").clone()
    }

    /// Answers the next `count` requests whose path contains `path` (and with `method`, if
    /// given) with `status`.
    pub fn fail(&self, count: usize, status: u16, path: &str, method: Option<&str>) {
        *self.faults.fail_status.lock().expect("lock") = status;
        *self.faults.fail_path.lock().expect("lock") = path.to_owned();
        *self.faults.fail_method.lock().expect("lock") = method.map(str::to_owned);
        self.faults.fail_count.store(count, Ordering::SeqCst);
    }

    /// Drops the connection after `after` bytes of the next `count` blob GETs whose path
    /// contains `path`.
    pub fn cut(&self, count: usize, after: usize, path: &str) {
        self.set_cut(count, after, path, false);
    }

    /// Ends the next `count` blob bodies whose path contains `path` after `after` bytes, as
    /// a complete (chunked, unannounced-length) response: a truncated body, no error.
    pub fn truncate(&self, count: usize, after: usize, path: &str) {
        self.set_cut(count, after, path, true);
    }

    fn set_cut(&self, count: usize, after: usize, path: &str, clean: bool) {
        *self.faults.body_path.lock().expect("lock") = path.to_owned();
        self.faults.cut_after.store(after, Ordering::SeqCst);
        self.faults.cut_clean.store(clean, Ordering::SeqCst);
        self.faults.cut_count.store(count, Ordering::SeqCst);
    }

    /// Flips the byte at `offset` (of the response body) in the next `count` blob GETs whose
    /// path contains `path`.
    pub fn flip(&self, count: usize, offset: usize, path: &str) {
        *self.faults.body_path.lock().expect("lock") = path.to_owned();
        self.faults.flip_at.store(offset, Ordering::SeqCst);
        self.faults.flip_count.store(count, Ordering::SeqCst);
    }

    /// Serves the next `count` blob bodies whose path contains `path` `bytes` at a time, one
    /// piece every `interval` (a server that trickles).
    pub fn trickle(&self, count: usize, bytes: usize, interval: Duration, path: &str) {
        *self.faults.body_path.lock().expect("lock") = path.to_owned();
        self.faults
            .trickle_bytes
            .store(bytes.max(1), Ordering::SeqCst);
        *self.faults.trickle_interval.lock().expect("lock") = interval;
        self.faults.trickle_count.store(count, Ordering::SeqCst);
    }

    /// Redirects every blob GET (`307`) to `base` + its path (blob storage on another host,
    /// as S3 or a CDN); `None` stops.
    pub fn redirect_blobs(&self, base: Option<&str>) {
        *self.faults.redirect_blobs.lock().expect("lock") = base.map(str::to_owned);
    }

    /// Answers the next `count` manifest requests with a manifest over the size limit, its
    /// length announced or (`chunked`) not.
    pub fn oversize_manifests(&self, count: usize, chunked: bool) {
        self.faults
            .oversize_chunked
            .store(chunked, Ordering::SeqCst);
        self.faults.oversize_count.store(count, Ordering::SeqCst);
    }
}

fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// A JSON manifest of [`OVERSIZE_MANIFEST`] bytes (padded in an annotation).
fn oversize_manifest(method: &Method, chunked: bool) -> Response {
    const MEDIA_TYPE: &str = crate::media::OCI_MANIFEST;
    let head = format!(r#"{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE}","annotations":{{"pad":""#);
    let tail = r#""}}"#;
    let mut body = head.into_bytes();
    body.resize(OVERSIZE_MANIFEST - tail.len(), b'x');
    body.extend_from_slice(tail.as_bytes());
    let mut resp = Response::builder()
        .status(200)
        .header("content-type", MEDIA_TYPE)
        .header("docker-content-digest", crate::sha256_digest(&body));
    if !chunked {
        resp = resp.header("content-length", body.len().to_string());
    }
    if *method == Method::HEAD {
        return resp.body(Body::empty()).expect("response");
    }
    let body = Bytes::from(body);
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..body.len())
        .step_by(64 << 10)
        .map(|i| Ok(body.slice(i..body.len().min(i + (64 << 10)))))
        .collect();
    resp.body(Body::from_stream(futures_util::stream::iter(chunks)))
        .expect("response")
}

async fn proxy_handler(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let record = |status: u16| {
        st.log.lock().expect("lock").push(Logged {
            method: method.to_string(),
            path: path.clone(),
            status,
            range: range.clone(),
        });
    };
    if path.contains("/manifests/") && take_one(&st.faults.oversize_count) {
        record(200);
        return oversize_manifest(&method, st.faults.oversize_chunked.load(Ordering::SeqCst));
    }
    let fail_path = st.faults.fail_path.lock().expect("lock").clone();
    let fail_method = st.faults.fail_method.lock().expect("lock").clone();
    let matches_fail =
        path.contains(&fail_path) && fail_method.as_deref().is_none_or(|m| m == method.as_str());
    if matches_fail && take_one(&st.faults.unauthorized_count) {
        record(401);
        let challenge = st
            .faults
            .unauthorized_challenge
            .lock()
            .expect("lock")
            .clone();
        return Response::builder()
            .status(401)
            .header("www-authenticate", challenge)
            .body(Body::from(
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"token revoked"}]}"#,
            ))
            .expect("response");
    }
    if matches_fail
        && st.faults.fail_count.load(Ordering::SeqCst) > 0
        && !take_one(&st.faults.fail_skip)
        && take_one(&st.faults.fail_count)
    {
        let status = *st.faults.fail_status.lock().expect("lock");
        record(status);
        return Response::builder()
            .status(status)
            .header("retry-after", "0")
            .body(Body::from("injected failure"))
            .expect("response");
    }
    let is_blob_get = method == Method::GET && path.contains("/blobs/sha256:");
    let redirect = st.faults.redirect_blobs.lock().expect("lock").clone();
    if let Some(base) = redirect.filter(|_| is_blob_get) {
        record(307);
        return Response::builder()
            .status(307)
            .header("location", format!("{base}{path}"))
            .body(Body::empty())
            .expect("response");
    }
    let mut headers = req.headers().clone();
    headers.remove("host");
    if is_blob_get && *st.faults.ignore_range.lock().expect("lock") {
        headers.remove("range");
    }
    let body = reqwest::Body::wrap_stream(req.into_body().into_data_stream());
    let resp = match st
        .client
        .request(method.clone(), format!("{}{path}", st.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            record(502);
            return Response::builder()
                .status(502)
                .body(Body::from(e.to_string()))
                .expect("response");
        }
    };
    let status = resp.status();
    record(status.as_u16());
    let body_fault = is_blob_get
        && status.is_success()
        && path.contains(st.faults.body_path.lock().expect("lock").as_str());
    let flip = body_fault && take_one(&st.faults.flip_count);
    let flip_at = st.faults.flip_at.load(Ordering::SeqCst);
    let cut = body_fault && take_one(&st.faults.cut_count);
    let cut_after = st.faults.cut_after.load(Ordering::SeqCst);
    let cut_clean = st.faults.cut_clean.load(Ordering::SeqCst);
    let trickle = body_fault && take_one(&st.faults.trickle_count);
    let own = st.own.lock().expect("lock").clone();
    let mut out = Response::builder().status(status);
    for (k, v) in resp.headers() {
        if k == "location" {
            let loc = v
                .to_str()
                .unwrap_or_default()
                .replace(&st.upstream_authority, &own);
            out = out.header(k, loc);
        } else if (k == "docker-content-digest"
            && method == Method::HEAD
            && path.contains("/manifests/")
            && *st.faults.strip_digest.lock().expect("lock"))
            || (k == "content-length" && cut && cut_clean)
        {
        } else {
            out = out.header(k, v);
        }
    }
    let mut stream = resp
        .bytes_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other))
        .boxed();
    if flip {
        let mut pos = 0usize;
        stream = stream
            .map(move |chunk| {
                let chunk = chunk?;
                let start = pos;
                pos += chunk.len();
                if (start..pos).contains(&flip_at) {
                    let mut bytes = chunk.to_vec();
                    bytes[flip_at - start] ^= 0xff;
                    return Ok(Bytes::from(bytes));
                }
                Ok(chunk)
            })
            .boxed();
    }
    if cut {
        stream = cut_body(stream, cut_after, cut_clean);
    }
    if trickle {
        let piece = st.faults.trickle_bytes.load(Ordering::SeqCst);
        let interval = *st.faults.trickle_interval.lock().expect("lock");
        stream = trickle_body(stream, piece, interval);
    }
    out.body(Body::from_stream(stream)).expect("response")
}

type ByteStream = futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>>;

/// `stream` re-cut into pieces of `piece` bytes, each sent `interval` after the one before.
fn trickle_body(stream: ByteStream, piece: usize, interval: Duration) -> ByteStream {
    futures_util::stream::unfold(
        (stream, Bytes::new()),
        move |(mut stream, mut pending)| async move {
            if pending.is_empty() {
                match stream.next().await? {
                    Ok(chunk) => pending = chunk,
                    Err(e) => return Some((Err(e), (stream, pending))),
                }
            }
            tokio::time::sleep(interval).await;
            let out = pending.split_to(piece.min(pending.len()));
            Some((Ok(out), (stream, pending)))
        },
    )
    .boxed()
}

/// `stream` up to `after` bytes; then its end (`clean`) or a broken connection.
fn cut_body(stream: ByteStream, after: usize, clean: bool) -> ByteStream {
    let limited = stream.scan(0usize, move |sent, chunk| {
        let item = match chunk {
            Err(e) => Some(Err(e)),
            Ok(_) if *sent >= after => None,
            Ok(chunk) => {
                let n = chunk.len().min(after - *sent);
                *sent += n;
                Some(Ok(chunk.slice(..n)))
            }
        };
        std::future::ready(item)
    });
    if clean {
        return limited.boxed();
    }
    limited
        .chain(futures_util::stream::once(async {
            Err(std::io::Error::other("injected cut"))
        }))
        .boxed()
}
