//! The [`Remote`]: HTTP clients per TLS setup, host lists per registry, credentials, and the
//! one request loop every operation goes through.
//!
//! A request is sent to one [`RegistryHost`] and comes back as a response the caller reads,
//! after the loop has dealt with what is not the caller's business:
//!
//! - **Authorization.** Up front when the host's scheme is known (a cached Bearer token for
//!   the request's scopes, fetched now if missing, or Basic credentials); on a `401` the
//!   challenge is read, the cached token dropped, a new one fetched and the request sent
//!   again, once. A second `401` is an authentication error naming the reference and host.
//!   Only the registry host's own challenges count: a `401` from the host a redirect led to
//!   (blob storage) is that host's business, and credentials never go there. Credentials go
//!   to a plain-HTTP token realm only for a host configured insecure (plain HTTP or
//!   `skip_verify`).
//! - **Retries.** Dropped connections, timeouts, `408`, `429` and `5xx` are retried with
//!   exponential backoff (`retry_delay` × 2ⁿ, at most 10 s, or longer when `Retry-After`
//!   says so, at most 60 s), `retries` times. Other `4xx` never are. Mirrors get no retries
//!   (the next host is the retry), and requests that are not idempotent (a chunk `PATCH`)
//!   are never resent here: their callers resume from what the registry acknowledges.
//! - **Redirects** are followed; `Authorization` is dropped when one leaves the host's origin
//!   (scheme, host and port: reqwest's rule, kept by the redirect tests).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Response, StatusCode, Url};

use crate::auth::{self, AuthCache, HostAuth, TokenRequest};
use crate::credentials::{Credential, CredentialStore, registry_of};
use crate::error::RemoteError;
use crate::hosts::{self, RegistryHost};
use crate::reference::Reference;
use crate::speed::{ChunkError, LowSpeed, UploadWatch};
use crate::tls;

/// The default low-speed limit: 1 KiB/s…
pub const DEFAULT_LOW_SPEED_LIMIT: u64 = 1024;
/// …averaged over 30 s.
pub const DEFAULT_LOW_SPEED_TIME: Duration = Duration::from_secs(30);

/// How a [`Remote`] behaves.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// containerd-style host configuration directory (`<dir>/<registry>/hosts.toml`); `None`:
    /// defaults only (see [`crate::hosts`]).
    pub hosts_dir: Option<PathBuf>,
    /// The directory holding Docker's `config.json`; `None`: `$DOCKER_CONFIG`, else
    /// `~/.docker`.
    pub docker_config: Option<PathBuf>,
    /// Where to look for `docker-credential-*` helpers; `None`: the process's `PATH`.
    pub credential_helper_path: Option<OsString>,
    pub user_agent: String,
    /// How many times a failed request (or a broken-off blob body) is tried again.
    pub retries: u32,
    /// The first backoff delay; it doubles with each retry.
    pub retry_delay: Duration,
    pub connect_timeout: Duration,
    /// How long a response may stall between two reads.
    pub read_timeout: Duration,
    /// A body (blob, manifest, token; or an uploaded blob the registry takes) moving at under
    /// this many bytes/s, averaged over `low_speed_time`, is given up (curl's
    /// `--speed-limit`); 0 disables the check.
    pub low_speed_limit: u64,
    pub low_speed_time: Duration,
    /// Blobs up to this size are uploaded in one `PUT`; bigger ones in `PATCH` chunks of this
    /// size, each resumable.
    pub chunk_size: u64,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            hosts_dir: None,
            docker_config: None,
            credential_helper_path: None,
            user_agent: format!("strata/{}", env!("CARGO_PKG_VERSION")),
            retries: 5,
            retry_delay: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            low_speed_limit: DEFAULT_LOW_SPEED_LIMIT,
            low_speed_time: DEFAULT_LOW_SPEED_TIME,
            chunk_size: 16 << 20,
        }
    }
}

/// A registry client: cheap to clone (an `Arc` inside), safe to share between tasks. It
/// caches host lists, TLS clients, credentials and tokens for its lifetime.
#[derive(Clone)]
pub struct Remote {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) opts: RemoteOptions,
    pub(crate) credentials: CredentialStore,
    hosts: Mutex<HashMap<String, Arc<[RegistryHost]>>>,
    clients: Mutex<HashMap<tls::TlsKey, reqwest::Client>>,
    creds: tokio::sync::Mutex<HashMap<String, Option<Credential>>>,
    auth: AuthCache,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

/// What an operation is, for scopes and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Pull,
    Push,
}

impl Action {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
        }
    }
}

/// A request body that can be made again for a retry.
pub(crate) type BodyFn = Arc<dyn Fn() -> reqwest::Body + Send + Sync>;

/// One request to one host.
#[derive(Clone)]
pub(crate) struct Call<'a> {
    /// The reference the request serves, for error messages.
    pub reference: &'a str,
    pub registry: &'a str,
    pub action: Action,
    pub host: &'a RegistryHost,
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<BodyFn>,
    /// Token scopes the request needs.
    pub scopes: Vec<String>,
    /// Idempotent: may be resent after a dropped connection or a 5xx.
    pub retry: bool,
    /// Send credentials (false for an upload location on another host).
    pub authorize: bool,
}

impl<'a> Call<'a> {
    pub(crate) fn new(
        reference: &'a str,
        registry: &'a str,
        action: Action,
        host: &'a RegistryHost,
        method: Method,
        url: Url,
        scopes: Vec<String>,
    ) -> Call<'a> {
        Call {
            reference,
            registry,
            action,
            host,
            method,
            url,
            headers: Vec::new(),
            body: None,
            scopes,
            retry: true,
            authorize: true,
        }
    }

    pub(crate) fn header(mut self, name: HeaderName, value: &str) -> Call<'a> {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    pub(crate) fn body(mut self, body: BodyFn) -> Call<'a> {
        self.body = Some(body);
        self
    }
}

/// Whether a status is worth another try.
fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// Whether a transport error may go away: everything but malformed requests, redirect loops
/// and TLS failures (a bad certificate stays bad).
pub(crate) fn transient(e: &reqwest::Error) -> bool {
    if e.is_builder() || e.is_redirect() {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return false;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return false;
        }
        source = s.source();
    }
    true
}

impl Remote {
    /// A client with `opts`. Nothing is read or contacted until an operation needs it.
    pub fn new(opts: RemoteOptions) -> Result<Remote, RemoteError> {
        let credentials = CredentialStore::new(
            opts.docker_config.clone(),
            opts.credential_helper_path.clone(),
        );
        Ok(Remote {
            inner: Arc::new(Inner {
                opts,
                credentials,
                hosts: Mutex::new(HashMap::new()),
                clients: Mutex::new(HashMap::new()),
                creds: tokio::sync::Mutex::new(HashMap::new()),
                auth: AuthCache::default(),
            }),
        })
    }

    pub fn options(&self) -> &RemoteOptions {
        &self.inner.opts
    }

    /// A fresh low-speed check for one response body.
    pub(crate) fn low_speed(&self) -> LowSpeed {
        LowSpeed::new(
            self.inner.opts.low_speed_limit,
            self.inner.opts.low_speed_time,
        )
    }

    /// The low-speed limit for one request body (an upload).
    pub(crate) fn upload_watch(&self) -> UploadWatch {
        UploadWatch::new(
            self.inner.opts.low_speed_limit,
            self.inner.opts.low_speed_time,
        )
    }

    /// The hosts serving `registry`, mirrors first (see [`crate::hosts`]); read once per
    /// registry and cached.
    pub fn hosts(&self, registry: &str) -> Result<Arc<[RegistryHost]>, RemoteError> {
        if let Some(h) = lock(&self.inner.hosts).get(registry) {
            return Ok(h.clone());
        }
        let loaded: Arc<[RegistryHost]> =
            hosts::load_hosts(self.inner.opts.hosts_dir.as_deref(), registry)?.into();
        lock(&self.inner.hosts).insert(registry.to_owned(), loaded.clone());
        Ok(loaded)
    }

    /// The hosts of `r`'s registry that have a capability, in order.
    pub(crate) fn hosts_with(
        &self,
        r: &Reference,
        capability: &'static str,
        has: impl Fn(&RegistryHost) -> bool,
    ) -> Result<Vec<RegistryHost>, RemoteError> {
        let hosts: Vec<RegistryHost> = self
            .hosts(r.registry())?
            .iter()
            .filter(|h| has(h))
            .cloned()
            .collect();
        if hosts.is_empty() {
            return Err(RemoteError::NoHost {
                reference: r.to_string(),
                capability,
            });
        }
        Ok(hosts)
    }

    pub(crate) fn client(&self, host: &RegistryHost) -> Result<reqwest::Client, RemoteError> {
        let key = tls::TlsKey::of(host);
        if let Some(c) = lock(&self.inner.clients).get(&key) {
            return Ok(c.clone());
        }
        let opts = &self.inner.opts;
        let config = tls::client_config(host)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .user_agent(opts.user_agent.clone())
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .build()
            .map_err(|source| RemoteError::Client {
                host: host.host.clone(),
                source,
            })?;
        lock(&self.inner.clients).insert(key, client.clone());
        Ok(client)
    }

    /// The API URL `base/<repository>/<tail>` on `host`, with `?ns=` for mirrors.
    pub(crate) fn url(
        &self,
        host: &RegistryHost,
        r: &Reference,
        tail: &str,
    ) -> Result<Url, RemoteError> {
        let text = format!("{}/{}/{tail}", host.base_url(), r.repository());
        let mut url = Url::parse(&text).map_err(|e| RemoteError::Protocol {
            reference: r.to_string(),
            host: host.host.clone(),
            message: format!("invalid url {text:?}: {e}"),
        })?;
        add_namespace(&mut url, host, r.registry());
        Ok(url)
    }

    /// The credential for a host, looked up once.
    pub(crate) async fn credential(&self, host: &str) -> Result<Option<Credential>, RemoteError> {
        let registry = registry_of(host);
        let mut cache = self.inner.creds.lock().await;
        if let Some(c) = cache.get(&registry) {
            return Ok(c.clone());
        }
        let c = self.inner.credentials.get(&registry).await?;
        cache.insert(registry, c.clone());
        Ok(c)
    }

    /// Drops the cached credential of `server` (after `login` or `logout` changed it).
    pub(crate) async fn forget_credential(&self, server: &str) {
        self.inner.creds.lock().await.remove(&registry_of(server));
    }

    /// Sends `call`, handling authorization and retries (see the module documentation). Any
    /// status but a `401` comes back as a response; retried statuses come back once the
    /// retries are spent.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Response, RemoteError> {
        let client = self.client(call.host)?;
        let max_attempts = if call.retry && !call.host.mirror {
            self.inner.opts.retries
        } else {
            0
        };
        let mut attempt = 0;
        let mut reauthorized = false;
        loop {
            let authorization = if call.authorize {
                self.authorization(call).await?
            } else {
                None
            };
            let mut request = client.request(call.method.clone(), call.url.clone());
            for (k, v) in &call.host.headers {
                request = request.header(k.as_str(), v.as_str());
            }
            for (k, v) in &call.headers {
                request = request.header(k.clone(), v.clone());
            }
            if let Some(a) = &authorization {
                request = request.header(AUTHORIZATION, a.as_str());
            }
            if let Some(body) = &call.body {
                request = request.body(body());
            }
            tracing::debug!(method = %call.method, url = %call.url, attempt, "request");
            match request.send().await {
                Err(e) => {
                    if attempt < max_attempts && transient(&e) {
                        tracing::debug!(error = %e, "retrying after a transport error");
                        tokio::time::sleep(self.backoff(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(RemoteError::Unreachable {
                        reference: call.reference.to_owned(),
                        host: call.host.host.clone(),
                        source: e,
                    });
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && call.authorize => {
                    own_challenge(call, &resp)?;
                    let challenges = auth::challenges(resp.headers());
                    if reauthorized {
                        return Err(self.auth_failure(call, &challenges).await?);
                    }
                    reauthorized = true;
                    self.answer_challenge(call, &challenges).await?;
                }
                Ok(resp) if retryable_status(resp.status()) && attempt < max_attempts => {
                    let delay = self.backoff(attempt, retry_after(resp.headers()));
                    tracing::debug!(status = %resp.status(), ?delay, "retrying");
                    drop(resp);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }

    /// `retry_delay × 2^attempt` (at most 10 s), or the server's `Retry-After` (at most 60 s).
    pub(crate) fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let base = self.inner.opts.retry_delay;
        let exp = base
            .saturating_mul(1u32 << attempt.min(16))
            .min(Duration::from_secs(10));
        match retry_after {
            Some(r) => r.min(Duration::from_secs(60)).max(exp),
            None => exp,
        }
    }

    /// The `Authorization` header for `call`, if the host is known to want one.
    async fn authorization(&self, call: &Call<'_>) -> Result<Option<String>, RemoteError> {
        let host = &call.host.host;
        match self.inner.auth.host_auth(host) {
            None => Ok(None),
            Some(HostAuth::Basic) => match self.credential(host).await? {
                Some(Credential::Basic { username, password }) => {
                    Ok(Some(auth::basic_header(&username, &password)))
                }
                _ => Ok(None),
            },
            Some(HostAuth::Bearer { realm, service }) => {
                if let Some(t) = self.inner.auth.token(host, &call.scopes) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self
                    .fetch_token(call, &realm, service.as_deref(), &call.scopes)
                    .await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Learns from a 401: remembers the scheme, drops a stale token, fetches a new one.
    async fn answer_challenge(
        &self,
        call: &Call<'_>,
        challenges: &[auth::Challenge],
    ) -> Result<(), RemoteError> {
        let host = &call.host.host;
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer")
            && let Some(realm) = bearer.param("realm")
        {
            let service = bearer.param("service").map(str::to_owned);
            self.inner.auth.set_host_auth(
                host,
                HostAuth::Bearer {
                    realm: realm.to_owned(),
                    service: service.clone(),
                },
            );
            self.inner.auth.drop_token(host, &call.scopes);
            self.fetch_token(call, realm, service.as_deref(), &call.scopes)
                .await?;
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            if let Some(Credential::Basic { .. }) = self.credential(host).await? {
                self.inner.auth.set_host_auth(host, HostAuth::Basic);
                return Ok(());
            }
            return Err(self.auth_required(call));
        }
        Err(self.auth_required(call))
    }

    /// The error for a 401 that survived a fresh authorization.
    async fn auth_failure(
        &self,
        call: &Call<'_>,
        challenges: &[auth::Challenge],
    ) -> Result<RemoteError, RemoteError> {
        let Some(credential) = self.credential(&call.host.host).await? else {
            return Ok(self.auth_required(call));
        };
        let detail = challenges
            .iter()
            .find_map(|c| c.param("error_description").or(c.param("error")))
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let message = match (credential, self.inner.auth.host_auth(&call.host.host)) {
            (_, Some(HostAuth::Basic)) => format!("credentials rejected{detail}"),
            _ => format!(
                "the repository does not exist or the credentials do not grant {} access{detail}",
                call.action.as_str()
            ),
        };
        Ok(RemoteError::AuthRefused {
            reference: call.reference.to_owned(),
            host: call.host.host.clone(),
            message,
        })
    }

    pub(crate) fn auth_required(&self, call: &Call<'_>) -> RemoteError {
        RemoteError::AuthRequired {
            action: call.action.as_str(),
            reference: call.reference.to_owned(),
            host: call.host.host.clone(),
            registry: call.registry.to_owned(),
        }
    }

    /// Gets a token from the token server and caches it.
    async fn fetch_token(
        &self,
        call: &Call<'_>,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, RemoteError> {
        let credential = self.credential(&call.host.host).await?;
        let token_err = |message: String| RemoteError::Token {
            realm: realm.to_owned(),
            message,
        };
        if credential.is_some() {
            realm_may_have_credentials(call, realm)?;
        }
        let request =
            auth::token_request(realm, service, scopes, credential.as_ref()).map_err(token_err)?;
        let client = self.client(call.host)?;
        let mut attempt = 0;
        let resp = loop {
            let builder = match &request {
                TokenRequest::Get { url, basic } => {
                    let b = client.get(url.clone());
                    match basic {
                        Some(h) => b.header(AUTHORIZATION, h.as_str()),
                        None => b,
                    }
                }
                TokenRequest::Post { url, form } => client
                    .post(url.clone())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form.clone()),
            };
            let realm_host = Url::parse(realm)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| realm.to_owned());
            match builder.send().await {
                Err(e) if attempt < self.inner.opts.retries && transient(&e) => {
                    tokio::time::sleep(self.backoff(attempt, None)).await;
                    attempt += 1;
                }
                Err(source) => {
                    return Err(RemoteError::Unreachable {
                        reference: call.reference.to_owned(),
                        host: realm_host,
                        source,
                    });
                }
                Ok(r) if retryable_status(r.status()) && attempt < self.inner.opts.retries => {
                    tokio::time::sleep(self.backoff(attempt, retry_after(r.headers()))).await;
                    attempt += 1;
                }
                Ok(r) => break r,
            }
        };
        let status = resp.status();
        if matches!(status.as_u16(), 401 | 403) {
            let (_, message) = error_detail(resp).await;
            return Err(match credential {
                None => self.auth_required(call),
                Some(_) => RemoteError::AuthRefused {
                    reference: call.reference.to_owned(),
                    host: call.host.host.clone(),
                    message: if message.is_empty() {
                        format!("the token server refused the credentials ({status})")
                    } else {
                        format!("the token server refused the credentials: {message}")
                    },
                },
            });
        }
        if !status.is_success() {
            let (code, message) = error_detail(resp).await;
            return Err(token_err(
                format!("answered {status} {code} {message}")
                    .trim()
                    .to_owned(),
            ));
        }
        let body = read_limited(resp, 1 << 20, self.low_speed())
            .await
            .map_err(|e| match e {
                ChunkError::Http(e) => token_err(format!("reading the answer: {e}")),
                ChunkError::Stalled { limit, seconds } => token_err(format!(
                    "the answer stalled (under {limit} bytes/s for {seconds} s)"
                )),
            })?;
        let (token, lifetime) = serde_json::from_slice::<auth::TokenResponse>(&body)
            .ok()
            .and_then(auth::TokenResponse::into_token)
            .ok_or_else(|| token_err("the answer has no token".into()))?;
        self.inner
            .auth
            .put_token(&call.host.host, scopes, token.clone(), lifetime);
        Ok(token)
    }

    /// The error for an unexpected response: `403` → [`RemoteError::Denied`], anything else
    /// → [`RemoteError::Registry`] with the registry's error code and message.
    pub(crate) async fn unexpected(&self, call: &Call<'_>, resp: Response) -> RemoteError {
        let status = resp.status();
        let (code, message) = error_detail(resp).await;
        if status == StatusCode::FORBIDDEN {
            return RemoteError::Denied {
                reference: call.reference.to_owned(),
                host: call.host.host.clone(),
                message: if message.is_empty() { code } else { message },
            };
        }
        RemoteError::Registry {
            reference: call.reference.to_owned(),
            method: call.method.to_string(),
            url: redact(&call.url),
            status: status.as_u16(),
            code,
            message,
        }
    }
}

/// A `401` is the registry's challenge only when the registry host itself answered it, not
/// a host a redirect led to (whose realm must never get the registry's credentials).
pub(crate) fn own_challenge(call: &Call<'_>, resp: &Response) -> Result<(), RemoteError> {
    if same_origin(resp.url(), &call.url) {
        return Ok(());
    }
    Err(RemoteError::RedirectAuth {
        reference: call.reference.to_owned(),
        host: call.host.host.clone(),
        target: origin(resp.url()),
    })
}

/// Credentials go to an `https` realm, or to any realm of a host configured insecure.
pub(crate) fn realm_may_have_credentials(call: &Call<'_>, realm: &str) -> Result<(), RemoteError> {
    if call.host.insecure() || realm_is_https(realm) {
        return Ok(());
    }
    Err(RemoteError::InsecureRealm {
        reference: call.reference.to_owned(),
        host: call.host.host.clone(),
        realm: realm.to_owned(),
    })
}

/// Same scheme, host and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `scheme://host[:port]`, for messages.
fn origin(u: &Url) -> String {
    u.origin().ascii_serialization()
}

/// Whether a token realm is an `https` URL (anything else carries no credentials unless the
/// registry host is configured insecure).
fn realm_is_https(realm: &str) -> bool {
    Url::parse(realm).is_ok_and(|u| u.scheme() == "https")
}

/// `?ns=<registry>` on requests to mirrors, so one mirror can serve several registries.
pub(crate) fn add_namespace(url: &mut Url, host: &RegistryHost, registry: &str) {
    if host.mirror && !url.query_pairs().any(|(k, _)| k == "ns") {
        url.query_pairs_mut().append_pair("ns", registry);
    }
}

/// A URL for messages: without query (upload `_state` tokens are long and secret-ish).
pub(crate) fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Reads at most `limit` bytes of a body.
pub(crate) async fn read_limited(
    mut resp: Response,
    limit: usize,
    mut speed: LowSpeed,
) -> Result<Vec<u8>, ChunkError> {
    let mut out = Vec::new();
    while let Some(chunk) = speed.chunk(&mut resp).await? {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// The registry's error code and message from an error body
/// (`{"errors":[{"code","message","detail"}]}`), or the start of a plain-text body. Only a
/// diagnostic: a body that trickles is cut short by a fixed low-speed limit.
pub(crate) async fn error_detail(resp: Response) -> (String, String) {
    let speed = LowSpeed::new(DEFAULT_LOW_SPEED_LIMIT, Duration::from_secs(10));
    let body = read_limited(resp, 64 << 10, speed)
        .await
        .unwrap_or_default();
    parse_error_body(&body)
}

fn parse_error_body(body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body)
        && let Some(first) = e.errors.into_iter().next()
    {
        return (first.code, first.message);
    }
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    (String::new(), line.chars().take(200).collect())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_errors() {
        assert_eq!(
            parse_error_body(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#
            ),
            ("MANIFEST_UNKNOWN".into(), "manifest unknown".into())
        );
        assert_eq!(
            parse_error_body(b"\n  <html>oops</html>\nmore"),
            (String::new(), "<html>oops</html>".into())
        );
        assert_eq!(parse_error_body(b""), (String::new(), String::new()));
    }

    #[test]
    fn backoff_doubles_and_honours_retry_after() {
        let r = Remote::new(RemoteOptions {
            retry_delay: Duration::from_millis(100),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.backoff(0, None), Duration::from_millis(100));
        assert_eq!(r.backoff(3, None), Duration::from_millis(800));
        assert_eq!(r.backoff(30, None), Duration::from_secs(10));
        assert_eq!(
            r.backoff(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            r.backoff(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn origins() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(
            &u("https://r/v2/a"),
            &u("https://r:443/v2/b?x")
        ));
        assert!(!same_origin(&u("http://r:5000/a"), &u("http://r:5001/a")));
        assert!(!same_origin(&u("https://r/a"), &u("http://r/a")));
        assert!(!same_origin(&u("https://r/a"), &u("https://s/a")));
        assert_eq!(
            origin(&u("http://127.0.0.1:8080/v2/x")),
            "http://127.0.0.1:8080"
        );
        assert!(realm_is_https("https://auth.docker.io/token"));
        assert!(!realm_is_https("http://auth/token"));
        assert!(!realm_is_https("not a url"));
    }

    #[test]
    fn plain_http_realms_get_credentials_only_from_insecure_hosts() {
        let check = |host: &RegistryHost, realm: &str| {
            let url = Url::parse(&format!("{}/", host.base_url())).unwrap();
            let call = Call::new("r", "reg", Action::Pull, host, Method::GET, url, Vec::new());
            realm_may_have_credentials(&call, realm)
        };
        let mut tls = RegistryHost::default_for("registry.example");
        assert!(check(&tls, "https://auth.example/token").is_ok());
        let e = check(&tls, "http://auth.example/token").unwrap_err();
        assert!(matches!(e, RemoteError::InsecureRealm { .. }), "{e}");
        assert!(e.to_string().contains("http://auth.example/token"), "{e}");
        assert!(check(&tls, "auth.example/token").is_err());
        tls.skip_verify = true;
        assert!(check(&tls, "http://auth.example/token").is_ok());
        let plain = RegistryHost::default_for("127.0.0.1:5000");
        assert!(check(&plain, "http://127.0.0.1:5001/token").is_ok());
    }

    #[test]
    fn mirrors_get_a_namespace() {
        let mut host = RegistryHost::default_for("docker.io");
        let mut u = Url::parse("https://m/v2/library/x/manifests/latest").unwrap();
        add_namespace(&mut u, &host, "docker.io");
        assert_eq!(u.query(), None);
        host.mirror = true;
        add_namespace(&mut u, &host, "docker.io");
        add_namespace(&mut u, &host, "docker.io");
        assert_eq!(u.query(), Some("ns=docker.io"));
        assert_eq!(redact(&u), "https://m/v2/library/x/manifests/latest");
    }
}
