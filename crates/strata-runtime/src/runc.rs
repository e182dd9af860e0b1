//! An OCI runtime with runc's command line (runc, crun, youki), found on the PATH by name and
//! run with `--root <store>/runtime/<name>` so its state lives under the store root.
//!
//! Driven through its CLI, as containerd's go-runc does: the CLI is the runtime's stable
//! interface, and it keeps strata free of any runtime library.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::files::private_dir;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error("OCI runtime {0:?} not found on PATH (install runc, or pick another with --runtime)")]
    NotFound(String),
    #[error("run the OCI runtime {}", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The runtime's own message, as Docker shows it.
    #[error("OCI runtime {op} failed: {message}")]
    Failed { op: &'static str, message: String },
    /// The runtime failed; the container was killed through its cgroup and its runtime
    /// state removed instead (`left`: what of that failed too).
    #[error("{runtime}; {}", bypass_outcome(.left))]
    Bypassed {
        runtime: Box<RuntimeError>,
        left: Vec<String>,
    },
    #[error("cannot kill through the cgroup {0:?}: not an absolute cgroupfs path")]
    CgroupPath(String),
    #[error("{count} processes still in the cgroup {cgroup} after SIGKILL")]
    ProcessesLeft { cgroup: String, count: usize },
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl RuntimeError {
    /// Docker's exit code for a container that could not start because of this: 127 the
    /// command was not found, 126 it could not be invoked, 125 anything else.
    pub fn exit_code(&self) -> i32 {
        let RuntimeError::Failed { message, .. } = self else {
            return 125;
        };
        let m = message.to_ascii_lowercase();
        if m.contains("executable file not found") || m.contains("no such file or directory") {
            127
        } else if m.contains("permission denied")
            || m.contains("exec format error")
            || m.contains("is a directory")
        {
            126
        } else {
            125
        }
    }
}

fn bypass_outcome(left: &[String]) -> String {
    if left.is_empty() {
        "killed the container through its cgroup and removed its runtime state instead".into()
    } else {
        format!("the fallback failed too: {}", left.join("; "))
    }
}

/// An I/O error on `path` while doing `what`.
pub(crate) fn io_err(
    what: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> RuntimeError + use<> {
    let path = path.to_owned();
    move |source| RuntimeError::Io { what, path, source }
}

/// What `state` says about a container the runtime knows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct RuntimeState {
    pub status: String,
    pub pid: i32,
}

/// How `exec` runs its process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecOptions {
    pub detach: bool,
    pub tty: bool,
    pub interactive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOutcome {
    pub exit_code: i32,
}

#[derive(Debug, Clone)]
pub struct Runtime {
    name: String,
    binary: PathBuf,
    root: PathBuf,
}

/// Directories searched after `$PATH`: root's usual sbin directories, where Debian puts runc.
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

impl Runtime {
    /// The runtime `name` (or a path), with its state under `state_root`.
    pub fn find(name: &str, state_root: &Path) -> Result<Runtime, RuntimeError> {
        let binary = find_binary(name).ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        Ok(Runtime {
            name: name.to_owned(),
            binary,
            root: state_root.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// A command for the runtime with `--root` (and a JSON error log in `log_dir` if given).
    pub fn command(&self, log_dir: Option<&Path>) -> Command {
        let mut c = Command::new(&self.binary);
        if let Some(d) = log_dir {
            c.arg("--log")
                .arg(d.join("runtime.log"))
                .arg("--log-format")
                .arg("json");
        }
        c.arg("--root").arg(&self.root);
        c
    }

    fn output(&self, op: &'static str, mut c: Command) -> Result<Output, RuntimeError> {
        let _ = private_dir(&self.root);
        let out = c
            .stdin(Stdio::null())
            .output()
            .map_err(|source| RuntimeError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        if out.status.success() {
            return Ok(out);
        }
        Err(RuntimeError::Failed {
            op,
            message: message(&out.stderr),
        })
    }

    /// The first line of `<runtime> --version`.
    pub fn version(&self) -> Result<String, RuntimeError> {
        let mut c = Command::new(&self.binary);
        c.arg("--version");
        let out = self.output("version", c)?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned())
    }

    /// The mount options `<runtime> features` lists (runc ≥ 1.1 has it); empty for a
    /// runtime without that command, which so supports nothing beyond the basics.
    pub fn mount_options(&self) -> Result<Vec<String>, RuntimeError> {
        #[derive(serde::Deserialize)]
        struct Features {
            #[serde(default, rename = "mountOptions")]
            mount_options: Vec<String>,
        }
        let mut c = Command::new(&self.binary);
        c.arg("features");
        match self.output("features", c) {
            Ok(out) => Ok(serde_json::from_slice::<Features>(&out.stdout)
                .map(|f| f.mount_options)
                .unwrap_or_default()),
            Err(RuntimeError::Failed { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// `None` when the runtime does not know `id`.
    pub fn state(&self, id: &str) -> Result<Option<RuntimeState>, RuntimeError> {
        let mut c = self.command(None);
        c.args(["state", id]);
        match self.output("state", c) {
            Ok(out) => {
                serde_json::from_slice(&out.stdout)
                    .map(Some)
                    .map_err(|e| RuntimeError::Failed {
                        op: "state",
                        message: e.to_string(),
                    })
            }
            Err(RuntimeError::Failed { message, .. }) if not_exist(&message) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        let mut c = self.command(None);
        c.arg("kill");
        if all {
            c.arg("--all");
        }
        c.args([id, &signal.to_string()]);
        self.output("kill", c).map(drop)
    }

    /// Freezes every process of `id` (cgroup freezer).
    pub fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        let mut c = self.command(None);
        c.args(["pause", id]);
        self.output("pause", c).map(drop)
    }

    pub fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        let mut c = self.command(None);
        c.args(["resume", id]);
        self.output("resume", c).map(drop)
    }

    /// Forgets `id` (with `force`, killing what is left); an unknown id is fine.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let mut c = self.command(None);
        c.arg("delete");
        if force {
            c.arg("--force");
        }
        c.arg(id);
        match self.output("delete", c) {
            Ok(_) => Ok(()),
            Err(RuntimeError::Failed { message, .. }) if not_exist(&message) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Drops the runtime's own record of `id` (its state directory under `--root`) without
    /// asking the runtime: for a runtime whose `delete` fails, once the container's processes
    /// are gone.
    pub fn forget(&self, id: &str) -> Result<(), RuntimeError> {
        let plain = !id.is_empty() && id != "." && id != ".." && !id.contains('/');
        let dir = self.root.join(id);
        if !plain {
            return Err(io_err("refuse to remove", &dir)(io::Error::from(
                io::ErrorKind::InvalidInput,
            )));
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &dir)(e)),
        }
    }

    /// Runs `process` in the running container `id`: in the foreground with this process's
    /// stdio (a terminal is proxied by the runtime itself), or detached with no stdio.
    pub fn exec(
        &self,
        id: &str,
        process: &oci_spec::runtime::Process,
        opts: &ExecOptions,
    ) -> Result<ExecOutcome, RuntimeError> {
        private_dir(&self.root).map_err(|source| RuntimeError::Io {
            what: "create",
            path: self.root.clone(),
            source,
        })?;
        let file = tempfile_in(&self.root, process)?;
        let log_dir = self.root.join(format!("exec-{}", std::process::id()));
        private_dir(&log_dir).map_err(|source| RuntimeError::Io {
            what: "create",
            path: log_dir.clone(),
            source,
        })?;
        let mut c = self.command(Some(&log_dir));
        c.arg("exec").arg("--process").arg(&file);
        if opts.detach {
            c.arg("--detach");
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        } else if !opts.interactive && !opts.tty {
            c.stdin(Stdio::null());
        }
        c.arg(id);
        let status = c.status().map_err(|source| RuntimeError::Spawn {
            binary: self.binary.clone(),
            source,
        });
        let _ = fs::remove_file(&file);
        let logged = last_error(&log_dir.join("runtime.log"));
        let _ = fs::remove_dir_all(&log_dir);
        let status = status?;
        match status.code() {
            // runc exits 255 when it could not start the process; its log says why.
            Some(255) if logged.is_some() => Err(RuntimeError::Failed {
                op: "exec",
                message: logged.unwrap_or_default(),
            }),
            Some(code) => Ok(ExecOutcome { exit_code: code }),
            None => Ok(ExecOutcome { exit_code: 255 }),
        }
    }
}

fn tempfile_in(dir: &Path, process: &oci_spec::runtime::Process) -> Result<PathBuf, RuntimeError> {
    let path = dir.join(format!("process-{}-{}.json", std::process::id(), nanos()));
    let bytes = serde_json::to_vec(process).map_err(|e| RuntimeError::Io {
        what: "encode",
        path: path.clone(),
        source: io::Error::other(e),
    })?;
    // The process holds the exec's environment: the owner's only, like the bundle's spec.
    crate::files::create_new(&path, crate::files::PRIVATE)
        .and_then(|mut f| io::Write::write_all(&mut f, &bytes))
        .map_err(|source| RuntimeError::Io {
            what: "write",
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn not_exist(message: &str) -> bool {
    message.contains("does not exist")
        || message.contains("not exist")
        || message.contains("not found")
}

/// The runtime's error text: its last non-empty stderr line, without runc's `time=… level=error msg=` dressing.
pub fn message(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    match line.find("msg=") {
        Some(i) => line[i + 4..].trim().trim_matches('"').replace("\\\"", "\""),
        None => line.trim().to_owned(),
    }
}

/// The last `"level":"error"` message of a runtime's JSON log.
pub fn last_error(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .and_then(|v| v["msg"].as_str().map(str::to_owned))
}

fn find_binary(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_exe(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_exe(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_docker_exit_codes() {
        let failed = |m: &str| RuntimeError::Failed {
            op: "start",
            message: m.into(),
        };
        assert_eq!(
            failed("exec: \"nosuch\": executable file not found in $PATH").exit_code(),
            127
        );
        assert_eq!(
            failed("exec: \"/no/such\": stat /no/such: no such file or directory").exit_code(),
            127
        );
        assert_eq!(
            failed("exec: \"/etc/passwd\": permission denied").exit_code(),
            126
        );
        assert_eq!(failed("cgroup trouble").exit_code(), 125);
        assert_eq!(RuntimeError::NotFound("x".into()).exit_code(), 125);
    }

    #[test]
    fn runc_messages_lose_their_dressing() {
        let stderr = b"time=\"2026-01-01T00:00:00Z\" level=error msg=\"container \\\"x\\\" does not exist\"\n";
        assert_eq!(message(stderr), "container \"x\" does not exist");
        assert_eq!(message(b"plain error\n\n"), "plain error");
    }

    #[test]
    fn unknown_runtime_is_a_clear_error() {
        let err = Runtime::find("no-such-runtime-xyz", Path::new("/tmp")).unwrap_err();
        assert!(err.to_string().contains("not found on PATH"), "{err}");
    }
}
