//! The OCI runtime side of a container.
//!
//! strata has no daemon: every container gets a small *monitor* process (the role of Podman's
//! conmon or containerd's shim) that starts the OCI runtime, holds the container's stdio or
//! pseudo-terminal, writes its log, reaps its exit status and records it, and outlives the
//! `strata` command that started it.
//!
//! - [`spec`]: the runtime spec (`config.json`) from an image config plus the user's flags,
//!   on Docker's default spec (namespaces, capabilities, masked and read-only paths).
//! - [`runc`]: the runtime binary (runc by default, crun or another by name) driven by its CLI,
//!   with its state under the store root.
//! - [`monitor`]: the per-container monitor, attached (`run`) or detached (`run -d`, `start`).
//! - [`state`]: what the monitor records (`state.json`) and how others wait on it.
//! - [`logs`]: the container log (Docker's `json-file` format, rotated by size) and reading
//!   it back.
//!
//! ```text
//! <root>/containers/<id>/      one per container (the bundle)
//! ├── config.json              the OCI runtime spec
//! ├── rootfs/                  mount point of the writable layer while it runs
//! ├── hostname, hosts, resolv.conf   bind-mounted into the container
//! ├── state.json               status, pid, start/finish times, exit code (monitor-written)
//! ├── monitor.lock             flock held by the live monitor: `wait` blocks on it
//! ├── <id>-json.log            stdout/stderr of a container started by a monitor
//! └── <id>-json.log.N[.gz]     its rotated files (`--log-opt max-size`, `max-file`)
//! <root>/runtime/<name>/       the runtime's own state (`runc --root`)
//! ```

pub mod logs;
pub mod monitor;
pub mod runc;
pub mod spec;
pub mod state;
