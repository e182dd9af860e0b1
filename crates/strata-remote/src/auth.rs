//! Registry authentication: challenges, the token flow, and the token cache.
//!
//! A registry that wants credentials answers `401` with a `WWW-Authenticate` challenge:
//!
//! - `Basic realm="…"`: send `Authorization: Basic base64(user:password)` on every request.
//! - `Bearer realm="https://auth.example/token",service="registry.example",scope="…"`: ask the
//!   token server at `realm` for a token for `service` and the scopes the operation needs
//!   (`repository:library/ubuntu:pull`, `repository:me/app:pull,push`, plus
//!   `repository:<source>:pull` for a cross-repository mount) and send
//!   `Authorization: Bearer <token>`. Anonymous clients `GET` the token; with a username and
//!   password the `GET` carries them as Basic auth; with an identity token (an OAuth refresh
//!   token from `config.json`) the client `POST`s a `grant_type=refresh_token` form.
//!
//! What a host asked for is remembered per host, and tokens per host and scope set until
//! they expire (`expires_in`, 60 s when absent), so later requests are authorized up front
//! instead of collecting a 401 each. A 401 in the middle of an operation (an expired or
//! revoked token) drops the cached token and fetches a new one, once per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderMap;

use crate::credentials::Credential;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lower-cased: `basic`, `bearer`.
    pub scheme: String,
    /// Parameter names lower-cased.
    pub params: HashMap<String, String>,
}

impl Challenge {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// All challenges of a response (several headers, or several challenges in one).
pub(crate) fn challenges(headers: &HeaderMap) -> Vec<Challenge> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .collect()
}

/// Parses one header value: `Scheme k=v, k="v", Scheme2 k=v`.
pub(crate) fn parse_challenges(value: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        let token_end = rest.find([' ', '\t', '=', ',']).unwrap_or(rest.len());
        let token = &rest[..token_end];
        if token.is_empty() {
            break;
        }
        let after = rest[token_end..].trim_start_matches([' ', '\t']);
        if after.starts_with('=') && !out.is_empty() {
            // A parameter of the current challenge.
            let mut value_part = after[1..].trim_start_matches([' ', '\t']);
            let value = if let Some(q) = value_part.strip_prefix('"') {
                let mut v = String::new();
                let mut chars = q.char_indices();
                let mut end = q.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                v.push(n);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => v.push(c),
                    }
                }
                value_part = &q[end.min(q.len())..];
                v
            } else {
                let end = value_part.find(',').unwrap_or(value_part.len());
                let v = value_part[..end].trim().to_owned();
                value_part = &value_part[end..];
                v
            };
            if let Some(c) = out.last_mut() {
                c.params.insert(token.to_ascii_lowercase(), value);
            }
            rest = value_part;
        } else {
            out.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: HashMap::new(),
            });
            rest = after;
        }
    }
    out
}

/// `repository:<name>:pull` or `…:pull,push`.
pub(crate) fn repository_scope(repository: &str, push: bool) -> String {
    let actions = if push { "pull,push" } else { "pull" };
    format!("repository:{repository}:{actions}")
}

/// How a host wants to be authenticated, learned from its first challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostAuth {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct CachedToken {
    value: String,
    expires: Instant,
}

/// Per-host schemes and per-(host, scopes) tokens.
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    hosts: Mutex<HashMap<String, HostAuth>>,
    tokens: Mutex<HashMap<String, CachedToken>>,
}

fn token_key(host: &str, scopes: &[String]) -> String {
    let mut sorted: Vec<&str> = scopes.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    format!("{host} {}", sorted.join(" "))
}

impl AuthCache {
    pub(crate) fn host_auth(&self, host: &str) -> Option<HostAuth> {
        lock(&self.hosts).get(host).cloned()
    }

    pub(crate) fn set_host_auth(&self, host: &str, auth: HostAuth) {
        lock(&self.hosts).insert(host.to_owned(), auth);
    }

    pub(crate) fn token(&self, host: &str, scopes: &[String]) -> Option<String> {
        let key = token_key(host, scopes);
        let mut tokens = lock(&self.tokens);
        match tokens.get(&key) {
            Some(t) if t.expires > Instant::now() => Some(t.value.clone()),
            Some(_) => {
                tokens.remove(&key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn put_token(
        &self,
        host: &str,
        scopes: &[String],
        token: String,
        lifetime: Duration,
    ) {
        lock(&self.tokens).insert(
            token_key(host, scopes),
            CachedToken {
                value: token,
                expires: Instant::now() + lifetime,
            },
        );
    }

    pub(crate) fn drop_token(&self, host: &str, scopes: &[String]) {
        lock(&self.tokens).remove(&token_key(host, scopes));
    }
}

/// A poisoned lock only means another thread panicked mid-update of a cache: the data is
/// still a valid cache.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `Basic base64(user:password)`.
pub(crate) fn basic_header(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{username}:{password}"))
    )
}

/// The token server's answer.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long to keep it: `expires_in` (at least 60 s, as the spec says),
    /// less a margin for clock skew and latency.
    pub(crate) fn into_token(self) -> Option<(String, Duration)> {
        let token = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        let secs = self.expires_in.unwrap_or(60).max(60);
        Some((token, Duration::from_secs(secs - secs / 10)))
    }
}

/// How to ask the token server: the request is built by the caller from this.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TokenRequest {
    /// `GET realm?service=…&scope=…`, with Basic auth when a username and password are known.
    Get {
        url: reqwest::Url,
        basic: Option<String>,
    },
    /// `POST realm` with a `grant_type=refresh_token` form.
    Post { url: reqwest::Url, form: String },
}

/// The client id strata names itself with at token servers.
pub(crate) const CLIENT_ID: &str = "strata";

pub(crate) fn token_request(
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credential: Option<&Credential>,
) -> Result<TokenRequest, String> {
    let mut url =
        reqwest::Url::parse(realm).map_err(|e| format!("invalid realm {realm:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("invalid realm {realm:?}: not an http(s) URL"));
    }
    match credential {
        Some(Credential::IdentityToken(refresh)) => {
            let mut form = reqwest::Url::parse("http://form.invalid/")
                .map_err(|e| format!("building the token form: {e}"))?;
            {
                let mut q = form.query_pairs_mut();
                q.append_pair("grant_type", "refresh_token");
                q.append_pair("refresh_token", refresh);
                q.append_pair("client_id", CLIENT_ID);
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                if !scopes.is_empty() {
                    q.append_pair("scope", &scopes.join(" "));
                }
            }
            Ok(TokenRequest::Post {
                url,
                form: form.query().unwrap_or_default().to_owned(),
            })
        }
        other => {
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
                if let Some(Credential::Basic { username, .. }) = other {
                    q.append_pair("account", username);
                }
            }
            let basic = match other {
                Some(Credential::Basic { username, password }) => {
                    Some(basic_header(username, password))
                }
                _ => None,
            };
            Ok(TokenRequest::Get { url, basic })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull",error="insufficient_scope""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/ubuntu:pull"));
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn parses_several_and_odd_spacing() {
        let c = parse_challenges(
            r#"Basic realm="Registry Realm", Bearer  realm = "https://a/t?x=1" , service=svc,scope="a:b:pull,push""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        assert_eq!(c[1].param("realm"), Some("https://a/t?x=1"));
        assert_eq!(c[1].param("service"), Some("svc"));
        assert_eq!(c[1].param("scope"), Some("a:b:pull,push"));
        let q = parse_challenges(r#"Bearer realm="a\"b""#);
        assert_eq!(q[0].param("realm"), Some("a\"b"));
        assert!(parse_challenges("").is_empty());
        assert_eq!(parse_challenges("Negotiate")[0].scheme, "negotiate");
    }

    #[test]
    fn caches_tokens_per_host_and_scope_set() {
        let cache = AuthCache::default();
        let a = vec![repository_scope("x", false), repository_scope("y", true)];
        let b = vec![a[1].clone(), a[0].clone()];
        cache.put_token("h", &a, "t1".into(), Duration::from_secs(60));
        assert_eq!(cache.token("h", &b).as_deref(), Some("t1"));
        assert_eq!(cache.token("other", &a), None);
        assert_eq!(cache.token("h", &a[..1]), None);
        cache.drop_token("h", &b);
        assert_eq!(cache.token("h", &a), None);
        cache.put_token("h", &a, "old".into(), Duration::ZERO);
        assert_eq!(cache.token("h", &a), None);
    }

    #[test]
    fn token_requests() {
        let scopes = vec![
            "repository:a:pull".to_owned(),
            "repository:b:pull".to_owned(),
        ];
        let anon = token_request("https://auth/token", Some("reg"), &scopes, None).unwrap();
        let TokenRequest::Get { url, basic: None } = anon else {
            panic!("{anon:?}")
        };
        assert_eq!(
            url.as_str(),
            "https://auth/token?service=reg&scope=repository%3Aa%3Apull&scope=repository%3Ab%3Apull"
        );
        let basic = Credential::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        let TokenRequest::Get { basic: Some(h), .. } =
            token_request("https://auth/token", None, &scopes, Some(&basic)).unwrap()
        else {
            panic!()
        };
        assert_eq!(h, "Basic dTpw");
        let idt = Credential::IdentityToken("rt".into());
        let TokenRequest::Post { form, .. } =
            token_request("https://auth/token", Some("reg"), &scopes, Some(&idt)).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            form,
            "grant_type=refresh_token&refresh_token=rt&client_id=strata&service=reg&scope=repository%3Aa%3Apull+repository%3Ab%3Apull"
        );
        assert!(token_request("file:///x", None, &scopes, None).is_err());
    }

    #[test]
    fn token_lifetimes() {
        let r: TokenResponse = serde_json::from_str(r#"{"token":"t","expires_in":300}"#).unwrap();
        assert_eq!(r.into_token(), Some(("t".into(), Duration::from_secs(270))));
        let r: TokenResponse = serde_json::from_str(r#"{"access_token":"a"}"#).unwrap();
        assert_eq!(r.into_token(), Some(("a".into(), Duration::from_secs(54))));
        let r: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert_eq!(r.into_token(), None);
    }
}
