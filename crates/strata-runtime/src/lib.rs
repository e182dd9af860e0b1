//! The OCI runtime side of a container.
//!
//! strata has no daemon: every container gets a small *monitor* process (the role of Podman's
//! conmon or containerd's shim) that starts the OCI runtime, holds the container's stdio or
//! pseudo-terminal, writes its log, reaps its exit status and records it, and outlives the
//! `strata` command that started it.
//!
//! - [`spec`]: the runtime spec (`config.json`) from an image config plus the user's flags,
//!   on Docker's default spec (namespaces, capabilities, masked and read-only paths).
//! - [`security`]: capabilities, seccomp, no-new-privileges, AppArmor, `--privileged`; the
//!   seccomp policy itself in [`seccomp`] (Docker's default as our own data) and
//!   capability names in [`caps`].
//! - [`runc`]: the runtime binary (runc by default, crun or another by name) driven by its CLI,
//!   with its state under the store root.
//! - [`monitor`]: the per-container monitor, attached (`run`) or detached (`run -d`, `start`).
//! - [`state`]: what the monitor records (`state.json`) and how others wait on it.
//! - [`cleanup`]: removing a container when the runtime fails to (through its cgroup).
//! - [`logs`]: the container log (Docker's `json-file` format, rotated by size) and reading
//!   it back.
//!
//! ```text
//! <root>/containers/<id>/      one per container (the bundle)
//! ├── config.json              the OCI runtime spec (0600: it holds the environment)
//! ├── rootfs/                  mount point of the writable layer while it runs
//! ├── hostname, hosts, resolv.conf   bind-mounted into the container (0644)
//! ├── state.json               status, pid, start/finish times, exit code (monitor-written)
//! ├── monitor.lock             flock held by the live monitor: `wait` blocks on it
//! ├── lifecycle.lock           flock held by start, cleanup and removal (see [`state`])
//! ├── <id>-json.log            stdout/stderr of a container started by a monitor
//! └── <id>-json.log.N[.gz]     its rotated files (`--log-opt max-size`, `max-file`)
//! <root>/runtime/<name>/       the runtime's own state (`runc --root`)
//! ```
//!
//! Directories are 0700 and files 0600 (the log 0640), see [`files`]; the `-t` console
//! socket lives in a fresh 0700 directory of its own, so no other user can connect to it
//! or put one there first.

pub mod apparmor;
pub mod caps;
pub mod cleanup;
pub mod files;
pub mod logs;
pub mod monitor;
pub mod runc;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod state;
