//! A real CNCF distribution registry (Debian's `docker-registry`) for tests.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::root::find_tool;

/// Name of the registry binary (and of the Debian package shipping it).
pub const REGISTRY_BINARY: &str = "docker-registry";
/// Where Debian installs it, used when it is not on `$PATH`.
pub const REGISTRY_FALLBACK_PATH: &str = "/usr/bin/docker-registry";

/// The user of [`Registry::start_with_auth`].
pub const TEST_USER: &str = "strata";
/// Its password.
pub const TEST_PASSWORD: &str = "wonderland";
/// Its htpasswd line: bcrypt (cost 5) of [`TEST_PASSWORD`], computed once (`htpasswd -nbB`
/// would do) so that the harness needs no bcrypt implementation.
pub const TEST_HTPASSWD: &str =
    "strata:$2y$05$abcdefghijklmnopqrstuuA0vov2GDneHB3.8.cv9UF9g.RdvScIW\n";

/// How long [`Registry::start`] waits for `GET /v2/` to answer 200.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts with a fresh port when the chosen one was taken in between.
const PORT_ATTEMPTS: usize = 5;
/// Response header (set through the registry config) carrying a per-instance
/// nonce, so the readiness probe cannot be fooled by another server that
/// grabbed the same port.
const ID_HEADER: &str = "X-Strata-Registry-Id";

/// A running `docker-registry` on `127.0.0.1:<free port>`, storing into its
/// own temporary directory. Killed (and reaped) on drop; the directory is
/// removed afterwards.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    port: u16,
    storage: PathBuf,
    log: PathBuf,
    // Dropped after `Drop::drop` killed the child.
    _dir: tempfile::TempDir,
}

enum Failure {
    /// The port was taken between picking and binding it: retry.
    PortTaken,
    Other(anyhow::Error),
}

impl Registry {
    /// Starts Debian's CNCF distribution registry (`docker-registry`, found
    /// on `$PATH` or at `/usr/bin/docker-registry`) on 127.0.0.1 with a free
    /// port, its own generated config file (version 0.1, filesystem storage in
    /// a temp dir, delete enabled, log level warn, no auth) and waits (≤ 15 s)
    /// until `GET http://ADDR/v2/` answers 200.
    ///
    /// The registry's stdout/stderr go to `registry.log` in its temp dir; the
    /// tail of that log is part of the error when startup fails.
    pub fn start() -> anyhow::Result<Registry> {
        Registry::start_with_htpasswd(None)
    }

    /// Like [`Registry::start`], with Basic authentication: the registry asks for the one
    /// user [`TEST_USER`] with password [`TEST_PASSWORD`] (an `htpasswd` file, which
    /// distribution accepts over plain HTTP) and answers `/v2/` with `401` until it gets
    /// them.
    pub fn start_with_auth() -> anyhow::Result<Registry> {
        Registry::start_with_htpasswd(Some(TEST_HTPASSWD))
    }

    /// [`Registry::start`] with `htpasswd` (the lines of an htpasswd file, bcrypt hashes)
    /// as its Basic authentication, or none.
    pub fn start_with_htpasswd(htpasswd: Option<&str>) -> anyhow::Result<Registry> {
        let binary = find_tool(REGISTRY_BINARY)
            .or_else(|| find_tool(REGISTRY_FALLBACK_PATH))
            .with_context(|| {
                format!(
                    "`{REGISTRY_BINARY}` not found on PATH nor at {REGISTRY_FALLBACK_PATH}: \
                     install the Debian package `docker-registry` (apt-get install docker-registry)"
                )
            })?;
        let dir = tempfile::Builder::new()
            .prefix("strata-registry-")
            .tempdir()
            .context("creating the registry's temp dir")?;
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).with_context(|| format!("creating {}", storage.display()))?;
        let config = dir.path().join("config.yml");
        let log = dir.path().join("registry.log");
        let auth = match htpasswd {
            Some(lines) => {
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, lines)
                    .with_context(|| format!("writing {}", file.display()))?;
                Some(file)
            }
            None => None,
        };

        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let nonce = nonce();
            std::fs::write(
                &config,
                config_yaml(&storage, port, &nonce, auth.as_deref()),
            )
            .with_context(|| format!("writing {}", config.display()))?;
            let child = spawn(&binary, &config, &log)?;
            match wait_ready(child, port, &nonce, &log, auth.is_some()) {
                Ok(child) => {
                    return Ok(Registry {
                        child,
                        port,
                        storage,
                        log,
                        _dir: dir,
                    });
                }
                Err(Failure::PortTaken) => {
                    last_err = Some(anyhow::anyhow!(
                        "port {port} was taken before the registry could bind it; log tail:\n{}",
                        log_tail(&log)
                    ));
                }
                Err(Failure::Other(e)) => return Err(e),
            }
        }
        Err(last_err
            .unwrap_or_else(|| anyhow::anyhow!("registry did not start"))
            .context(format!(
                "starting {} failed {PORT_ATTEMPTS} times because its port was taken",
                binary.display()
            )))
    }

    /// `"127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `"http://127.0.0.1:PORT"`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port the registry listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry's filesystem storage root (`rootdirectory`).
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// The registry's combined stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Process id of the registry.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to pick a free port")?;
    Ok(l.local_addr().context("reading the picked port")?.port())
}

fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{t}", std::process::id())
}

fn config_yaml(storage: &Path, port: u16, nonce: &str, htpasswd: Option<&Path>) -> String {
    // JSON string escaping is valid YAML double-quoted string escaping.
    let quote = |p: &Path| serde_json::Value::String(p.to_string_lossy().into_owned());
    let root = quote(storage);
    let auth = htpasswd.map_or_else(String::new, |file| {
        format!(
            "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
            quote(file)
        )
    });
    format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  headers:
    {ID_HEADER}: [\"{nonce}\"]
{auth}"
    )
}

fn spawn(binary: &Path, config: &Path, log: &Path) -> anyhow::Result<Child> {
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("duplicating {}", log.display()))?;
    let mut cmd = Command::new(binary);
    cmd.arg("serve")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // REGISTRY_* variables override the config file; keep them out.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(k);
        }
    }
    cmd.spawn()
        .with_context(|| format!("spawning {} serve {}", binary.display(), config.display()))
}

fn wait_ready(
    mut child: Child,
    port: u16,
    nonce: &str,
    log: &Path,
    auth: bool,
) -> Result<Child, Failure> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(2)))
            .build(),
    );
    let url = format!("http://127.0.0.1:{port}/v2/");
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let tail = log_tail(log);
                if tail.contains("address already in use") {
                    return Err(Failure::PortTaken);
                }
                return Err(Failure::Other(anyhow::anyhow!(
                    "docker-registry exited with {status} before answering on {url}; log tail:\n{tail}"
                )));
            }
            Ok(None) => {}
            Err(e) => {
                kill(&mut child);
                return Err(Failure::Other(
                    anyhow::Error::new(e).context("waiting for docker-registry"),
                ));
            }
        }
        match agent.get(&url).call() {
            Ok(resp) => {
                let ours = resp
                    .headers()
                    .get(ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v == nonce);
                if !ours {
                    // Someone else answers on this port: ours will fail to bind.
                    last = format!("a foreign server answered {} on {url}", resp.status());
                } else if resp.status() == 200 || auth && resp.status() == 401 {
                    return Ok(child);
                } else {
                    last = format!("GET {url} answered {}", resp.status());
                }
            }
            Err(e) => last = format!("GET {url}: {e}"),
        }
        if Instant::now() >= deadline {
            kill(&mut child);
            return Err(Failure::Other(anyhow::anyhow!(
                "docker-registry did not answer 200 on {url} within {READY_TIMEOUT:?} ({last}); log tail:\n{}",
                log_tail(log)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Last ~40 lines of the log, or a note that it could not be read.
fn log_tail(log: &Path) -> String {
    match std::fs::read(log) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(40);
            if lines.is_empty() {
                "(log is empty)".to_string()
            } else {
                lines[start..].join("\n")
            }
        }
        Err(e) => format!("(could not read {}: {e})", log.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::require_tool;
    use std::net::TcpStream;

    #[test]
    fn start_answers_v2_and_stops_on_drop() -> anyhow::Result<()> {
        if !require_tool(REGISTRY_BINARY) {
            return Ok(());
        }
        let a = Registry::start()?;
        let b = Registry::start()?;
        assert_ne!(a.addr(), b.addr());
        assert!(a.url().starts_with("http://127.0.0.1:"));
        assert!(a.storage_dir().is_dir());

        for r in [&a, &b] {
            let mut resp = ureq::get(format!("{}/v2/", r.url())).call()?;
            assert_eq!(resp.status(), 200);
            let body = resp.body_mut().read_to_string()?;
            assert_eq!(body.trim(), "{}");
        }

        let addr = a.addr();
        let storage = a.storage_dir().to_path_buf();
        drop(a);
        assert!(
            TcpStream::connect(&addr).is_err(),
            "registry still answers on {addr} after drop"
        );
        assert!(!storage.exists(), "storage dir survives drop");
        // The other one is unaffected.
        assert_eq!(ureq::get(format!("{}/v2/", b.url())).call()?.status(), 200);
        Ok(())
    }

    #[test]
    fn auth_registry_wants_the_test_user() -> anyhow::Result<()> {
        if !require_tool(REGISTRY_BINARY) {
            return Ok(());
        }
        let r = Registry::start_with_auth()?;
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        let url = format!("{}/v2/", r.url());
        assert_eq!(agent.get(&url).call()?.status(), 401);
        // base64("strata:wonderland") and base64("strata:wrong")
        for (auth, status) in [("c3RyYXRhOndvbmRlcmxhbmQ=", 200), ("c3RyYXRhOndyb25n", 401)] {
            let resp = agent
                .get(&url)
                .header("Authorization", format!("Basic {auth}"))
                .call()?;
            assert_eq!(resp.status(), status, "{auth}");
        }
        assert_eq!(format!("{TEST_USER}:{TEST_PASSWORD}"), "strata:wonderland");
        Ok(())
    }

    #[test]
    fn port_in_use_by_foreign_server_is_not_mistaken() -> anyhow::Result<()> {
        // A config pointing at a port held by a plain listener must not be
        // reported ready by a probe that reaches the listener.
        if !require_tool(REGISTRY_BINARY) {
            return Ok(());
        }
        let Some(binary) = find_tool(REGISTRY_BINARY) else {
            return Ok(());
        };
        let dir = tempfile::tempdir()?;
        let holder = TcpListener::bind("127.0.0.1:0")?;
        let port = holder.local_addr()?.port();
        let config = dir.path().join("config.yml");
        let log = dir.path().join("registry.log");
        std::fs::write(&config, config_yaml(dir.path(), port, "n", None))?;
        let child = spawn(&binary, &config, &log)?;
        match wait_ready(child, port, "n", &log, false) {
            Err(Failure::PortTaken) => {}
            Err(Failure::Other(e)) => panic!("expected PortTaken, got {e:#}"),
            Ok(mut c) => {
                kill(&mut c);
                panic!("registry reported ready on a taken port");
            }
        }
        Ok(())
    }
}
