//! Registry credentials from Docker's `config.json` and its credential helpers.
//!
//! ```text
//! $DOCKER_CONFIG/config.json   (default ~/.docker/config.json)
//! {
//!   "auths": {
//!     "https://index.docker.io/v1/": { "auth": "base64(user:password)" },
//!     "registry.example.com":        { "username": "u", "password": "p" },
//!     "ghcr.io":                     { "identitytoken": "<OAuth refresh token>" },
//!     "quay.io":                     {}                  ← kept by a credsStore
//!   },
//!   "credsStore": "pass",                                ← docker-credential-pass
//!   "credHelpers": { "123.dkr.ecr.eu-west-1.amazonaws.com": "ecr-login" }
//! }
//! ```
//!
//! Lookup for a registry host, as the Docker CLI does it: a `credHelpers` entry for the host
//! wins, then `credsStore`, then the file's own `auths`. A helper is the program
//! `docker-credential-<name>`: `get` reads the server URL on stdin and prints
//! `{"Username": …, "Secret": …}` (a username of `<token>` means the secret is an identity
//! token), or fails with "credentials not found"; `store` reads
//! `{"ServerURL", "Username", "Secret"}`; `erase` reads the server URL. Docker Hub's entries
//! are keyed `https://index.docker.io/v1/`, every other registry by its host name; keys
//! written as URLs (`https://host/…`) match their host.
//!
//! Writing (`strata login` / `logout`) keeps every other field of the file, writes it
//! atomically with mode 0600, and leaves secrets to the helper when one is configured.
//!
//! This is written here rather than with the `docker_credential` crate: that crate only reads
//! (login and logout need `store` and `erase`, and a writer of the same file), looks helpers
//! up on the process `PATH` only, and its errors drop the helper's own message.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use crate::error::RemoteError;
use crate::hosts::DOCKER_HUB_HOST;
use crate::reference::DOCKER_HUB;

/// The key Docker Hub's credentials are stored under.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// A secret for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Username and password (or personal access token).
    Basic { username: String, password: String },
    /// An OAuth refresh token (`identitytoken`), exchanged at the token server.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Where credentials are read from and written to.
#[derive(Debug, Clone)]
pub(crate) struct CredentialStore {
    /// The directory holding `config.json`.
    dir: Option<PathBuf>,
    /// The search path for `docker-credential-*` helpers (`None`: the process's `PATH`).
    helper_path: Option<OsString>,
}

/// The registry name a host (or a server address the user typed) stands for: Docker Hub's
/// aliases fold into `docker.io`; URLs lose their scheme and path.
pub(crate) fn registry_of(server: &str) -> String {
    let s = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = s.split('/').next().unwrap_or_default();
    match host {
        "index.docker.io" | DOCKER_HUB_HOST | DOCKER_HUB => DOCKER_HUB.to_owned(),
        other => other.to_owned(),
    }
}

/// The key the credentials of `registry` are stored under (and given to helpers).
pub(crate) fn server_key(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_SERVER.to_owned()
    } else {
        registry.to_owned()
    }
}

impl CredentialStore {
    pub(crate) fn new(dir: Option<PathBuf>, helper_path: Option<OsString>) -> CredentialStore {
        let dir = dir.or_else(|| {
            std::env::var_os("DOCKER_CONFIG")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))
        });
        CredentialStore { dir, helper_path }
    }

    pub(crate) fn config_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("config.json"))
    }

    /// The whole file; an empty object when there is none.
    async fn read_config(&self) -> Result<Map<String, Value>, RemoteError> {
        let Some(path) = self.config_path() else {
            return Ok(Map::new());
        };
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => return Err(RemoteError::io("reading", path)(e)),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(RemoteError::Credentials {
                server: "every registry".into(),
                path,
                message: "the file is not a JSON object".into(),
            }),
            Err(source) => Err(RemoteError::DockerConfig { path, source }),
        }
    }

    /// The credential for a registry host (`docker.io`, `localhost:5000`, a mirror's host),
    /// `None` when there is none.
    pub(crate) async fn get(&self, host: &str) -> Result<Option<Credential>, RemoteError> {
        let registry = registry_of(host);
        let server = server_key(&registry);
        let config = self.read_config().await?;
        if let Some(helper) = helper_for(&config, &registry)
            && let Some(c) = self.helper_get(&helper, &server).await?
        {
            return Ok(Some(c));
        }
        let Some(entry) = auth_entry(&config, &registry) else {
            return Ok(None);
        };
        let path = self.config_path().unwrap_or_default();
        decode_entry(entry, &server, &path)
    }

    async fn helper_get(
        &self,
        helper: &str,
        server: &str,
    ) -> Result<Option<Credential>, RemoteError> {
        let out = self
            .run_helper(helper, "get", server, server.as_bytes())
            .await?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if text.contains("credentials not found") {
                return Ok(None);
            }
            return Err(helper_failure(helper, "get", server, &out));
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Reply {
            #[serde(default)]
            username: String,
            #[serde(default)]
            secret: String,
        }
        let reply: Reply =
            serde_json::from_slice(&out.stdout).map_err(|e| RemoteError::CredentialHelper {
                helper: helper.to_owned(),
                action: "get",
                server: server.to_owned(),
                message: format!("unreadable answer: {e}"),
            })?;
        Ok(match (reply.username.as_str(), reply.secret) {
            (_, s) if s.is_empty() => None,
            ("<token>", s) => Some(Credential::IdentityToken(s)),
            (u, s) => Some(Credential::Basic {
                username: u.to_owned(),
                password: s,
            }),
        })
    }

    /// Runs `docker-credential-<helper> <action>` with `input` on stdin.
    async fn run_helper(
        &self,
        helper: &str,
        action: &'static str,
        server: &str,
        input: &[u8],
    ) -> Result<std::process::Output, RemoteError> {
        let fail = |message: String| RemoteError::CredentialHelper {
            helper: helper.to_owned(),
            action,
            server: server.to_owned(),
            message,
        };
        if helper.is_empty() || helper.contains('/') {
            return Err(fail("invalid helper name".into()));
        }
        let program = format!("docker-credential-{helper}");
        let program = match &self.helper_path {
            Some(path) => std::env::split_paths(path)
                .map(|d| d.join(&program))
                .find(|p| p.is_file())
                .ok_or_else(|| fail(format!("{program} not found")))?,
            None => PathBuf::from(program),
        };
        let mut child = tokio::process::Command::new(&program)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", program.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading is answered by its exit status.
            let _ = stdin.write_all(input).await;
        }
        child
            .wait_with_output()
            .await
            .map_err(|e| fail(format!("waiting for {}: {e}", program.display())))
    }

    /// Stores credentials for `server` (a registry name or URL): in the configured helper,
    /// or base64-encoded in `config.json`.
    pub(crate) async fn store(
        &self,
        server: &str,
        username: &str,
        password: &str,
    ) -> Result<(), RemoteError> {
        let registry = registry_of(server);
        let key = server_key(&registry);
        let mut config = self.read_config().await?;
        let helper = helper_for(&config, &registry);
        if let Some(helper) = &helper {
            let input = serde_json::json!({
                "ServerURL": key,
                "Username": username,
                "Secret": password,
            })
            .to_string();
            let out = self
                .run_helper(helper, "store", &key, input.as_bytes())
                .await?;
            if !out.status.success() {
                return Err(helper_failure(helper, "store", &key, &out));
            }
        }
        let auths = config
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Value::Object(auths) = auths {
            remove_entries(auths, &registry);
            let entry = match helper {
                Some(_) => Map::new(),
                None => {
                    let mut m = Map::new();
                    m.insert(
                        "auth".into(),
                        Value::String(STANDARD.encode(format!("{username}:{password}"))),
                    );
                    m
                }
            };
            auths.insert(key, Value::Object(entry));
        }
        self.write_config(&config).await
    }

    /// Forgets the credentials of `server`, in the helper and in `config.json`. Returns
    /// whether there was anything to forget in the file.
    pub(crate) async fn erase(&self, server: &str) -> Result<bool, RemoteError> {
        let registry = registry_of(server);
        let key = server_key(&registry);
        let mut config = self.read_config().await?;
        if let Some(helper) = helper_for(&config, &registry) {
            let out = self
                .run_helper(&helper, "erase", &key, key.as_bytes())
                .await?;
            let text = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() && !text.contains("credentials not found") {
                return Err(helper_failure(&helper, "erase", &key, &out));
            }
        }
        let removed = match config.get_mut("auths") {
            Some(Value::Object(auths)) => remove_entries(auths, &registry),
            _ => false,
        };
        if removed {
            self.write_config(&config).await?;
        }
        Ok(removed)
    }

    async fn write_config(&self, config: &Map<String, Value>) -> Result<(), RemoteError> {
        let Some(path) = self.config_path() else {
            return Err(RemoteError::Io(strata_types::PathIoError::new(
                "locating the docker config (set DOCKER_CONFIG or HOME)",
                PathBuf::from("config.json"),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )));
        };
        let mut bytes =
            serde_json::to_vec_pretty(config).map_err(|source| RemoteError::DockerConfig {
                path: path.clone(),
                source,
            })?;
        bytes.push(b'\n');
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| {
                RemoteError::Io(strata_types::PathIoError::new(
                    "writing the docker config",
                    PathBuf::from("config.json"),
                    std::io::Error::other(e),
                ))
            })?
    }
}

/// The helper configured for `registry`, if any: `credHelpers` first, then `credsStore`.
fn helper_for(config: &Map<String, Value>, registry: &str) -> Option<String> {
    if let Some(Value::Object(helpers)) = config.get("credHelpers") {
        let found = helpers.iter().find_map(|(k, v)| {
            (registry_of(k) == registry)
                .then(|| v.as_str().filter(|s| !s.is_empty()))
                .flatten()
        });
        if let Some(h) = found {
            return Some(h.to_owned());
        }
    }
    config
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The `auths` entry for `registry`: the exact key first, then any key naming the same host.
fn auth_entry<'a>(
    config: &'a Map<String, Value>,
    registry: &str,
) -> Option<&'a Map<String, Value>> {
    let Value::Object(auths) = config.get("auths")? else {
        return None;
    };
    auths
        .get(&server_key(registry))
        .or_else(|| {
            auths
                .iter()
                .find(|(k, _)| registry_of(k) == registry)
                .map(|(_, v)| v)
        })
        .and_then(Value::as_object)
}

/// Removes every `auths` key naming `registry`; whether any was there.
fn remove_entries(auths: &mut Map<String, Value>, registry: &str) -> bool {
    let keys: Vec<String> = auths
        .keys()
        .filter(|k| registry_of(k) == registry)
        .cloned()
        .collect();
    for k in &keys {
        auths.remove(k);
    }
    !keys.is_empty()
}

fn decode_entry(
    entry: &Map<String, Value>,
    server: &str,
    path: &Path,
) -> Result<Option<Credential>, RemoteError> {
    let field = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(token) = field("identitytoken") {
        return Ok(Some(Credential::IdentityToken(token.to_owned())));
    }
    if let Some(auth) = field("auth") {
        let lenient = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let bad = |message: &str| RemoteError::Credentials {
            server: server.to_owned(),
            path: path.to_owned(),
            message: message.to_owned(),
        };
        let decoded = lenient
            .decode(auth.trim())
            .map_err(|_| bad("\"auth\" is not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad("\"auth\" is not UTF-8"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| bad("\"auth\" is not username:password"))?;
        return Ok(Some(Credential::Basic {
            username: username.to_owned(),
            password: password.trim_end_matches('\n').to_owned(),
        }));
    }
    match (field("username"), field("password")) {
        (Some(u), Some(p)) => Ok(Some(Credential::Basic {
            username: u.to_owned(),
            password: p.to_owned(),
        })),
        _ => Ok(None),
    }
}

fn helper_failure(
    helper: &str,
    action: &'static str,
    server: &str,
    out: &std::process::Output,
) -> RemoteError {
    let mut message = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if message.is_empty() {
        message = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    if message.is_empty() {
        message = format!("exited with {}", out.status);
    }
    let message: String = message.lines().collect::<Vec<_>>().join("; ");
    RemoteError::CredentialHelper {
        helper: helper.to_owned(),
        action,
        server: server.to_owned(),
        message,
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory (mode 0600),
/// fsynced, then renamed over the old file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RemoteError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(RemoteError::io("creating", dir))?;
    let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(RemoteError::io("writing", path)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn store_in(dir: &Path) -> CredentialStore {
        CredentialStore::new(Some(dir.to_owned()), Some(OsString::from(dir)))
    }

    #[test]
    fn names_fold_like_docker() {
        for s in [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "https://index.docker.io/v1/",
        ] {
            assert_eq!(registry_of(s), "docker.io", "{s}");
        }
        assert_eq!(server_key("docker.io"), DOCKER_HUB_SERVER);
        assert_eq!(registry_of("https://localhost:5000/v2/"), "localhost:5000");
        assert_eq!(server_key("localhost:5000"), "localhost:5000");
    }

    #[tokio::test]
    async fn reads_auths_entries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{
              "auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNzOndvcmQ="},
                "https://reg.example.com/v2/": {"username": "u", "password": "p"},
                "ghcr.io": {"auth": "", "identitytoken": "refresh"},
                "bad.example.com": {"auth": "!!!"}
              },
              "psFormat": "keep me"
            }"#,
        )
        .unwrap();
        let s = store_in(dir.path());
        assert_eq!(
            s.get("registry-1.docker.io").await.unwrap(),
            Some(Credential::Basic {
                username: "user".into(),
                password: "pass:word".into()
            })
        );
        assert_eq!(
            s.get("reg.example.com").await.unwrap(),
            Some(Credential::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(
            s.get("ghcr.io").await.unwrap(),
            Some(Credential::IdentityToken("refresh".into()))
        );
        assert_eq!(s.get("quay.io").await.unwrap(), None);
        let e = s.get("bad.example.com").await.unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
        assert!(!format!("{:?}", s.get("ghcr.io").await).contains("refresh"));
    }

    #[tokio::test]
    async fn missing_or_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = store_in(dir.path());
        assert_eq!(s.get("docker.io").await.unwrap(), None);
        std::fs::write(dir.path().join("config.json"), "{nope").unwrap();
        let e = s.get("docker.io").await.unwrap_err();
        assert!(matches!(e, RemoteError::DockerConfig { .. }), "{e}");
    }

    #[tokio::test]
    async fn store_and_erase_keep_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"other.io":{"auth":"eDp5"}},"detachKeys":"ctrl-x"}"#,
        )
        .unwrap();
        let s = store_in(dir.path());
        s.store("docker.io", "me", "secret").await.unwrap();
        s.store("localhost:5000", "a", "b").await.unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["detachKeys"], "ctrl-x");
        assert_eq!(v["auths"]["other.io"]["auth"], "eDp5");
        assert_eq!(
            v["auths"][DOCKER_HUB_SERVER]["auth"],
            STANDARD.encode("me:secret")
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            s.get("localhost:5000").await.unwrap(),
            Some(Credential::Basic {
                username: "a".into(),
                password: "b".into()
            })
        );
        assert!(s.erase("https://index.docker.io/v1/").await.unwrap());
        assert!(!s.erase("docker.io").await.unwrap());
        assert_eq!(s.get("docker.io").await.unwrap(), None);
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["auths"]["other.io"]["auth"], "eDp5");
    }

    fn fake_helper(dir: &Path, name: &str, script: &str) {
        let p = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn helpers_get_store_erase() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        fake_helper(
            dir.path(),
            "test",
            &format!(
                r#"input=$(cat); echo "$1 $input" >> {log}
case "$1" in
  get) case "$input" in
         localhost:5000) echo '{{"ServerURL":"localhost:5000","Username":"hu","Secret":"hs"}}' ;;
         tok.io) echo '{{"Username":"<token>","Secret":"rt"}}' ;;
         *) echo "credentials not found in native keychain"; exit 1 ;;
       esac ;;
  store|erase) ;;
esac"#,
                log = log.display()
            ),
        );
        fake_helper(dir.path(), "broken", "echo 'boom' >&2; exit 3");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"credsStore":"test","credHelpers":{"broken.io":"broken"},
                "auths":{"fallback.io":{"auth":"eDp5"}}}"#,
        )
        .unwrap();
        let s = store_in(dir.path());
        assert_eq!(
            s.get("localhost:5000").await.unwrap(),
            Some(Credential::Basic {
                username: "hu".into(),
                password: "hs".into()
            })
        );
        assert_eq!(
            s.get("tok.io").await.unwrap(),
            Some(Credential::IdentityToken("rt".into()))
        );
        // Not in the store: the file's own entry still counts.
        assert_eq!(
            s.get("fallback.io").await.unwrap(),
            Some(Credential::Basic {
                username: "x".into(),
                password: "y".into()
            })
        );
        assert_eq!(s.get("none.io").await.unwrap(), None);
        let e = s.get("broken.io").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "docker-credential-broken get for broken.io: boom"
        );

        s.store("docker.io", "me", "pw").await.unwrap();
        let v: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(v["auths"][DOCKER_HUB_SERVER], serde_json::json!({}));
        s.erase("docker.io").await.unwrap();
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(log.contains("get localhost:5000"), "{log}");
        assert!(
            log.contains(
                r#"store {"Secret":"pw","ServerURL":"https://index.docker.io/v1/","Username":"me"}"#
            ),
            "{log}"
        );
        assert!(log.contains("erase https://index.docker.io/v1/"), "{log}");
    }
}
