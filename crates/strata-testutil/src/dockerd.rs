//! A real Docker Engine (Debian's `docker.io`) on its own data root and unix socket, for
//! tests that need what dockerd writes (a classic overlay2 store) or reads (`docker load`).
//! Started without touching the host's network setup (no bridge, no iptables); stopped with
//! SIGTERM, so that it shuts its own containerd down and leaves a consistent data root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::root::find_tool;

/// A running dockerd; stopped when dropped.
#[derive(Debug)]
pub struct Dockerd {
    child: Option<Child>,
    socket: PathBuf,
    client: PathBuf,
    log: PathBuf,
    data_root: PathBuf,
    _run: tempfile::TempDir,
}

impl Dockerd {
    /// Starts dockerd with the overlay2 driver on `data_root` and waits until it answers.
    pub fn start(data_root: &Path) -> anyhow::Result<Dockerd> {
        let dockerd = find_tool("dockerd").context("dockerd is not installed")?;
        // Debian's client matches its daemon; another on the PATH may be too new for it.
        let client = find_tool("/usr/bin/docker")
            .or_else(|| find_tool("docker"))
            .context("the docker client is not installed")?;
        // Unix socket paths are short: a directory of our own under /tmp.
        let run = tempfile::Builder::new()
            .prefix("dockerd")
            .tempdir_in("/tmp")?;
        let socket = run.path().join("d.sock");
        let log = run.path().join("log");
        let child = Command::new(dockerd)
            .arg("--data-root")
            .arg(data_root)
            .arg("--exec-root")
            .arg(run.path().join("exec"))
            .arg("--pidfile")
            .arg(run.path().join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--storage-driver",
                "overlay2",
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--ip-forward=false",
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("start dockerd")?;
        let mut d = Dockerd {
            child: Some(child),
            socket,
            client,
            log,
            data_root: data_root.to_owned(),
            _run: run,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if d.docker(&["info"]).is_ok_and(|o| o.status.success()) {
                return Ok(d);
            }
            if let Some(child) = d.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("dockerd exited ({status}):\n{}", d.log_tail());
            }
            if Instant::now() > deadline {
                bail!("dockerd did not answer within 60 s:\n{}", d.log_tail());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    /// Runs the docker client against this daemon.
    pub fn docker(&self, args: &[&str]) -> std::io::Result<Output> {
        Command::new(&self.client)
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    /// Runs the docker client, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.docker(args)?;
        if !out.status.success() {
            bail!(
                "docker {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Stops dockerd (SIGTERM, then SIGKILL after 30 s) and waits for it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = i32::try_from(child.id())?;
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                bail!("dockerd ignored SIGTERM for 30 s:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("stopping dockerd: {e:#}");
        }
    }
}
