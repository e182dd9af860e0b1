//! Per-registry host configuration, read the way containerd reads its `hosts.toml` files.
//!
//! Which servers answer for a registry name, in which order, and how to talk to them:
//!
//! ```text
//! <hosts dir>/
//! ├── docker.io/hosts.toml          for references to docker.io/…
//! ├── localhost_5000_/hosts.toml    for localhost:5000 (containerd's spelling of a port)
//! ├── localhost:5000/hosts.toml     (also accepted)
//! ├── registry.example.com/         no hosts.toml: *.crt files are extra CAs, *.cert + *.key
//! │   ├── ca.crt                    client certificates (Docker's certs.d layout)
//! │   └── client.cert, client.key
//! └── _default/hosts.toml           for every registry without its own directory
//! ```
//!
//! ```toml
//! server = "https://registry-1.docker.io"    # the upstream; default: the registry itself
//!
//! [host."https://mirror.example.com"]         # tried first, in file order
//!   capabilities = ["pull", "resolve"]        # default: pull, resolve, push
//!   ca = "/etc/certs/mirror.pem"              # or a list; relative to the directory
//!   client = [["client.cert", "client.key"]]  # or "both.pem", or a list of files
//!   skip_verify = false
//!   override_path = false                     # true: the URL path is the API root (no /v2)
//!   [host."https://mirror.example.com".header]
//!     x-custom = "value"
//!
//! [host."http://10.0.0.2:5000"]               # plain HTTP when the URL says http
//!   capabilities = ["pull"]
//! ```
//!
//! Hosts are tried in order, the upstream (`server`) last. Without a configuration file the
//! only host is the registry itself over HTTPS, except that Docker Hub (`docker.io`) is served
//! by `registry-1.docker.io` and that `localhost`, `127.0.0.1` and `[::1]` (any port) are
//! spoken to over plain HTTP. `resolve` (tag → digest) is the capability to trust a host with
//! names; `pull` alone serves content by digest only. Requests to a host other than the
//! registry's own carry `?ns=<registry>`, so one mirror can serve several registries.
//!
//! Read but not honoured: `dial_timeout` (the client has one connect timeout).

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::error::RemoteError;
use crate::reference::DOCKER_HUB;

/// Docker Hub's API host.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// What a host may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// Fetch content by digest.
    pub pull: bool,
    /// Resolve a tag to a digest (trusting the host with names).
    pub resolve: bool,
    /// Upload.
    pub push: bool,
}

impl Capabilities {
    pub const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };
}

/// One server answering for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryHost {
    /// `https` or `http`.
    pub scheme: String,
    /// `host[:port]`.
    pub host: String,
    /// The API root, normally `/v2`.
    pub path: String,
    pub capabilities: Capabilities,
    /// Extra CA certificates (PEM files).
    pub ca: Vec<PathBuf>,
    /// Client certificates: (certificate PEM, key PEM; `None` when the key is in the same file).
    pub client_certs: Vec<(PathBuf, Option<PathBuf>)>,
    pub skip_verify: bool,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Not the registry's own host: requests carry `?ns=<registry>`.
    pub mirror: bool,
}

impl RegistryHost {
    /// The default (and upstream) host of `registry` when nothing is configured.
    pub fn default_for(registry: &str) -> RegistryHost {
        let (scheme, host) = if registry == DOCKER_HUB {
            ("https", DOCKER_HUB_HOST)
        } else if is_localhost(registry) {
            ("http", registry)
        } else {
            ("https", registry)
        };
        RegistryHost {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            path: "/v2".to_owned(),
            capabilities: Capabilities::ALL,
            ca: Vec::new(),
            client_certs: Vec::new(),
            skip_verify: false,
            headers: Vec::new(),
            mirror: false,
        }
    }

    /// `scheme://host/path`, the base of every API URL.
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
    }

    /// Configured to be spoken to without verified TLS (plain HTTP or `skip_verify`): the
    /// only hosts whose credentials may go to a plain-HTTP token realm.
    pub fn insecure(&self) -> bool {
        self.scheme == "http" || self.skip_verify
    }

    /// Whether the host needs a TLS client of its own.
    pub(crate) fn has_custom_tls(&self) -> bool {
        !self.ca.is_empty() || !self.client_certs.is_empty() || self.skip_verify
    }
}

/// `localhost`, `127.0.0.1`, `::1`, with or without a port.
pub fn is_localhost(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.split(':').next().unwrap_or_default()
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// Whether `host` is the registry's own (else a mirror, which gets `?ns=`).
fn is_own_host(registry: &str, host: &str) -> bool {
    host == registry || (registry == DOCKER_HUB && host == DOCKER_HUB_HOST)
}

/// The hosts for `registry`, mirrors first, upstream last, from `dir` (see the module
/// documentation); the defaults when `dir` is `None` or has nothing for it.
pub fn load_hosts(dir: Option<&Path>, registry: &str) -> Result<Vec<RegistryHost>, RemoteError> {
    let Some(dir) = dir else {
        return Ok(vec![RegistryHost::default_for(registry)]);
    };
    for candidate in host_dirs(dir, registry) {
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_dir() => return load_dir(&candidate, registry),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RemoteError::io("reading", candidate)(e)),
        }
    }
    Ok(vec![RegistryHost::default_for(registry)])
}

/// The directories that may configure `registry`, most specific first.
fn host_dirs(dir: &Path, registry: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(i) = registry.rfind(':')
        && i > 0
        && !registry.ends_with(']')
    {
        out.push(dir.join(format!("{}_{}_", &registry[..i], &registry[i + 1..])));
    }
    out.push(dir.join(registry));
    out.push(dir.join("_default"));
    out
}

fn load_dir(dir: &Path, registry: &str) -> Result<Vec<RegistryHost>, RemoteError> {
    let file = dir.join("hosts.toml");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return load_cert_files(dir, registry);
        }
        Err(e) => return Err(RemoteError::io("reading", file)(e)),
    };
    parse_hosts(&text, dir, &file, registry)
}

/// A directory without `hosts.toml`: `*.crt` are CAs, `*.cert` (with a matching `*.key`)
/// client certificates, all for the default host.
fn load_cert_files(dir: &Path, registry: &str) -> Result<Vec<RegistryHost>, RemoteError> {
    let mut host = RegistryHost::default_for(registry);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(RemoteError::io("reading", dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => host.ca.push(path),
            Some("cert") => {
                let key = path.with_extension("key");
                let key = key.exists().then_some(key);
                host.client_certs.push((path, key));
            }
            _ => {}
        }
    }
    Ok(vec![host])
}

fn parse_hosts(
    text: &str,
    dir: &Path,
    file: &Path,
    registry: &str,
) -> Result<Vec<RegistryHost>, RemoteError> {
    let invalid = |message: String| RemoteError::HostsInvalid {
        path: file.to_owned(),
        message,
    };
    let table: Table = text.parse().map_err(|e| RemoteError::HostsParse {
        path: file.to_owned(),
        source: Box::new(e),
    })?;
    let mut hosts = Vec::new();
    if let Some(mirrors) = table.get("host") {
        let mirrors = mirrors
            .as_table()
            .ok_or_else(|| invalid("\"host\" must be a table of [host.\"URL\"] sections".into()))?;
        for (url, config) in mirrors {
            let config = config
                .as_table()
                .ok_or_else(|| invalid(format!("[host.{url:?}] must be a table")))?;
            hosts.push(parse_host(Some(url), config, dir, registry).map_err(invalid)?);
        }
    }
    let server = match table.get("server") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(invalid("\"server\" must be a string".into())),
    };
    hosts.push(parse_host(server, &table, dir, registry).map_err(invalid)?);
    Ok(hosts)
}

/// One host from its URL (`None`: the registry's default host) and its settings.
fn parse_host(
    url: Option<&str>,
    config: &Table,
    dir: &Path,
    registry: &str,
) -> Result<RegistryHost, String> {
    let override_path = get_bool(config, "override_path")?.unwrap_or(false);
    let mut host = match url {
        None => RegistryHost::default_for(registry),
        Some(url) => {
            let with_scheme = if url.starts_with("http://") || url.starts_with("https://") {
                url.to_owned()
            } else {
                format!("https://{url}")
            };
            let parsed =
                reqwest::Url::parse(&with_scheme).map_err(|e| format!("host {url:?}: {e}"))?;
            let name = parsed
                .host_str()
                .ok_or_else(|| format!("host {url:?}: no host name"))?;
            let name = match parsed.port() {
                Some(p) => format!("{name}:{p}"),
                None => name.to_owned(),
            };
            let mut path = parsed.path().trim_end_matches('/').to_owned();
            if !override_path && !path.ends_with("/v2") {
                path.push_str("/v2");
            }
            RegistryHost {
                scheme: parsed.scheme().to_owned(),
                mirror: !is_own_host(registry, &name),
                host: name,
                path,
                ..RegistryHost::default_for(registry)
            }
        }
    };
    if let Some(caps) = config.get("capabilities") {
        let caps = caps.as_array().ok_or("\"capabilities\" must be a list")?;
        let mut parsed = Capabilities {
            pull: false,
            resolve: false,
            push: false,
        };
        for c in caps {
            match c.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("pull") => parsed.pull = true,
                Some("resolve") => parsed.resolve = true,
                Some("push") => parsed.push = true,
                // Known to containerd, meaningless here.
                Some("referrers") => {}
                _ => {
                    return Err(match c.as_str() {
                        Some(s) => format!("unknown capability {s:?}"),
                        None => format!("unknown capability {c:?}"),
                    });
                }
            }
        }
        host.capabilities = parsed;
    }
    if let Some(skip) = get_bool(config, "skip_verify")? {
        host.skip_verify = skip;
    }
    match config.get("ca") {
        None => {}
        Some(Value::String(p)) => host.ca.push(absolute(dir, p)),
        Some(Value::Array(list)) => {
            for p in list {
                let p = p.as_str().ok_or("\"ca\" entries must be strings")?;
                host.ca.push(absolute(dir, p));
            }
        }
        Some(_) => return Err("\"ca\" must be a path or a list of paths".into()),
    }
    match config.get("client") {
        None => {}
        Some(Value::String(p)) => host.client_certs.push((absolute(dir, p), None)),
        Some(Value::Array(list)) => {
            for item in list {
                match item {
                    Value::String(p) => host.client_certs.push((absolute(dir, p), None)),
                    Value::Array(pair) => match pair.as_slice() {
                        [Value::String(cert), Value::String(key)] => host
                            .client_certs
                            .push((absolute(dir, cert), Some(absolute(dir, key)))),
                        _ => return Err("\"client\" pairs must be [cert, key]".into()),
                    },
                    _ => return Err("\"client\" entries must be paths or [cert, key]".into()),
                }
            }
        }
        Some(_) => return Err("\"client\" must be a path or a list".into()),
    }
    if let Some(headers) = config.get("header") {
        let headers = headers.as_table().ok_or("\"header\" must be a table")?;
        for (name, value) in headers {
            match value {
                Value::String(v) => host.headers.push((name.clone(), v.clone())),
                Value::Array(vs) => {
                    for v in vs {
                        let v = v.as_str().ok_or("header values must be strings")?;
                        host.headers.push((name.clone(), v.to_owned()));
                    }
                }
                _ => return Err(format!("header {name:?} must be a string or a list")),
            }
        }
    }
    Ok(host)
}

fn get_bool(config: &Table, key: &str) -> Result<Option<bool>, String> {
    match config.get(key) {
        None => Ok(None),
        Some(Value::Boolean(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("{key:?} must be true or false")),
    }
}

fn absolute(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        dir.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let hub = load_hosts(None, "docker.io").unwrap();
        assert_eq!(hub.len(), 1);
        assert_eq!(hub[0].base_url(), "https://registry-1.docker.io/v2");
        assert!(!hub[0].mirror);
        for local in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:39999",
            "[::1]:5000",
        ] {
            let h = &load_hosts(None, local).unwrap()[0];
            assert_eq!(h.scheme, "http", "{local}");
            assert_eq!(h.host, local);
        }
        let other = &load_hosts(None, "ghcr.io").unwrap()[0];
        assert_eq!(other.base_url(), "https://ghcr.io/v2");
        assert_eq!(other.capabilities, Capabilities::ALL);
        assert!(!is_localhost("localhost.example.com"));
    }

    #[test]
    fn reads_mirrors_in_order_then_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let hub = dir.path().join("docker.io");
        std::fs::create_dir(&hub).unwrap();
        std::fs::write(
            hub.join("hosts.toml"),
            r#"
server = "https://registry-1.docker.io"

[host."https://z-mirror.example.com"]
  capabilities = ["pull", "resolve"]
  ca = "mirror-ca.pem"
  [host."https://z-mirror.example.com".header]
    x-one = "1"
    x-many = ["a", "b"]

[host."http://10.0.0.2:5000/prefix"]
  capabilities = ["pull"]
  skip_verify = true
  client = [["c.cert", "/abs/c.key"], "both.pem"]

[host."a-mirror.example.com/custom/api"]
  override_path = true
"#,
        )
        .unwrap();
        let hosts = load_hosts(Some(dir.path()), "docker.io").unwrap();
        let urls: Vec<String> = hosts.iter().map(RegistryHost::base_url).collect();
        assert_eq!(
            urls,
            [
                "https://z-mirror.example.com/v2",
                "http://10.0.0.2:5000/prefix/v2",
                "https://a-mirror.example.com/custom/api",
                "https://registry-1.docker.io/v2",
            ]
        );
        assert_eq!(
            hosts.iter().map(|h| h.mirror).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert_eq!(
            hosts[0].capabilities,
            Capabilities {
                pull: true,
                resolve: true,
                push: false
            }
        );
        assert_eq!(hosts[0].ca, [hub.join("mirror-ca.pem")]);
        assert_eq!(
            hosts[0].headers,
            [
                ("x-one".to_owned(), "1".to_owned()),
                ("x-many".to_owned(), "a".to_owned()),
                ("x-many".to_owned(), "b".to_owned())
            ]
        );
        assert!(hosts[1].skip_verify);
        assert_eq!(
            hosts[1].client_certs,
            [
                (hub.join("c.cert"), Some(PathBuf::from("/abs/c.key"))),
                (hub.join("both.pem"), None)
            ]
        );
        assert!(hosts[1].has_custom_tls());
        assert_eq!(hosts[3].capabilities, Capabilities::ALL);
    }

    #[test]
    fn port_directories_and_default() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("localhost_5000_");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("hosts.toml"),
            "server = \"https://localhost:5000\"\n",
        )
        .unwrap();
        let h = load_hosts(Some(dir.path()), "localhost:5000").unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].base_url(), "https://localhost:5000/v2");
        assert!(!h[0].mirror);

        let d = dir.path().join("_default");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("hosts.toml"),
            "[host.\"http://127.0.0.1:1234\"]\ncapabilities = [\"pull\", \"resolve\"]\n",
        )
        .unwrap();
        let h = load_hosts(Some(dir.path()), "quay.io").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].base_url(), "http://127.0.0.1:1234/v2");
        assert!(h[0].mirror);
        assert_eq!(h[1].base_url(), "https://quay.io/v2");
    }

    #[test]
    fn certs_d_layout() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("reg.example.com");
        std::fs::create_dir(&d).unwrap();
        for f in ["ca.crt", "client.cert", "client.key", "README"] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        let h = load_hosts(Some(dir.path()), "reg.example.com").unwrap();
        assert_eq!(h[0].ca, [d.join("ca.crt")]);
        assert_eq!(
            h[0].client_certs,
            [(d.join("client.cert"), Some(d.join("client.key")))]
        );
    }

    #[test]
    fn bad_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("x.io");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("hosts.toml"), "server = [").unwrap();
        let e = load_hosts(Some(dir.path()), "x.io").unwrap_err();
        assert!(matches!(e, RemoteError::HostsParse { .. }), "{e}");
        assert!(e.to_string().contains("x.io/hosts.toml"), "{e}");
        std::fs::write(
            d.join("hosts.toml"),
            "[host.\"https://m\"]\ncapabilities = [\"fly\"]\n",
        )
        .unwrap();
        let e = load_hosts(Some(dir.path()), "x.io").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "invalid hosts config {}: unknown capability \"fly\"",
                d.join("hosts.toml").display()
            )
        );
    }
}
