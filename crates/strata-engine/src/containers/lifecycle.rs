//! start, stop, kill, wait, rm — through the OCI runtime and the monitor's record.
//!
//! The monitor ([`strata_runtime::monitor`]) owns a running container: it holds
//! `monitor.lock` for its whole life and writes `state.json`. Everything here reads that
//! record, signals through the runtime, and waits on the lock. A record that says running
//! while no monitor holds the lock is what a crash or reboot leaves behind; [`reconcile`]
//! (called by every command that touches a container) kills what is left of it in the
//! runtime, unmounts its root filesystem (and releases its filesystem volumes, see
//! [`crate::volumes::local`]) and records it as exited.

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use strata_metadata::ContainerRecord;
use strata_runtime::cleanup;
use strata_runtime::monitor::{self, MonitorConfig};
use strata_runtime::runc::{Runtime, RuntimeError};
use strata_runtime::state::{self, ContainerState, Status};
use strata_snapshot::Snapshotter;
use strata_types::ErrorKind;

use super::config::ContainerConfig;
use super::{ContainerError, dir, ro_binds, rootfs};
use crate::store::Store;
use crate::volumes;

/// Docker's default for `stop -t`.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The log file of a container: Docker's `<id>-json.log` in its directory.
pub fn log_path(root: &Path, id: &str) -> std::path::PathBuf {
    dir(root, id).join(format!("{id}-json.log"))
}

/// The runtime a container was created with, its state under `<root>/runtime/<name>`.
pub fn runtime_for(root: &Path, name: &str) -> Result<Runtime, ContainerError> {
    Ok(Runtime::find(name, &root.join("runtime").join(name))?)
}

pub fn monitor_config(
    store: &Store,
    record: &ContainerRecord,
) -> Result<MonitorConfig, ContainerError> {
    monitor_config_of(store, record, &read_config(store, record)?)
}

fn read_config(store: &Store, record: &ContainerRecord) -> Result<ContainerConfig, ContainerError> {
    ContainerConfig::read(&dir(store.root(), &record.id))
        .map_err(|e| ContainerError::io("read container.json", e))
}

/// [`monitor_config`] of a container.json already read.
fn monitor_config_of(
    store: &Store,
    record: &ContainerRecord,
    config: &ContainerConfig,
) -> Result<MonitorConfig, ContainerError> {
    Ok(MonitorConfig {
        id: record.id.clone(),
        dir: dir(store.root(), &record.id),
        runtime: runtime_for(store.root(), &record.runtime)?,
        tty: config.tty,
        open_stdin: config.open_stdin,
        log_path: log_path(store.root(), &record.id),
        log: config.log_config.driver()?,
    })
}

/// How [`start`] ran the container.
#[derive(Debug)]
pub enum Started {
    /// Running under its own monitor, with this pid.
    Detached(i32),
    /// Ran attached to this process and exited.
    Exited(ContainerState),
}

/// The container's lifecycle lock (see [`strata_runtime::state`]), held while alive; taken
/// only while the container still exists (a `--rm` monitor or an `rm` may have removed it
/// while this waited).
#[must_use]
#[derive(Debug)]
pub struct Locked(#[allow(dead_code)] Option<fs::File>);

pub fn lock(store: &Store, record: &ContainerRecord) -> Result<Locked, ContainerError> {
    let guard = state::lock_lifecycle(&dir(store.root(), &record.id))?;
    if store.db().read(|tx| tx.container(&record.id))?.is_none() {
        return Err(ContainerError::NotFound(record.name.clone()));
    }
    Ok(Locked(guard))
}

/// Starts a created or exited container. Detached: a monitor process is spawned (the
/// `strata` binary at `monitor_exe` with `monitor_args`) and this returns once the container
/// runs. Attached: this process is the monitor; returns when the container exits (and, for
/// `--rm`, after it is removed).
///
/// The lifecycle lock is held from the look at the state until the monitor has recorded
/// `running`, so of concurrent starts one starts the container and the others find it
/// running ([`ContainerError::AlreadyRunning`]).
pub fn start(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
    attach: bool,
    monitor_exe: &Path,
    monitor_args: &[OsString],
) -> Result<Started, ContainerError> {
    let d = dir(store.root(), &record.id);
    let guard = loop {
        let guard = lock(store, record)?;
        let st = reconcile_locked(store, sn, record)?;
        if !state::monitor_alive(&d) {
            break guard;
        }
        if st.status == Status::Running {
            return Err(ContainerError::AlreadyRunning(record.name.clone()));
        }
        // A monitor finishing (unmount, --rm) waits for this lock: let it, then look again.
        drop(guard);
        state::wait(&d, None)?;
    };
    let config = read_config(store, record)?;
    let cfg = monitor_config_of(store, record, &config)?;
    if config.privileged {
        strata_runtime::spec::refresh_host_devices(&d)?;
    }
    rootfs::mount(store, sn, record)?;
    // A monitor that failed has exited and left the root filesystem and volumes to us.
    let unmount = || {
        if let Err(u) = rootfs::unmount(store.root(), &record.id) {
            tracing::warn!("container {}: {u}", record.id);
        }
        volumes::local::release(store, record);
    };
    if let Err(e) = volumes::local::acquire(store, record) {
        unmount();
        return Err(e.into());
    }
    // After the volumes: a read-only volume's copy must hold its mount.
    if let Err(e) = ro_binds::stage(store.root(), &record.id, &config.staged_ro_binds) {
        unmount();
        return Err(e);
    }
    // A runtime record of an earlier run would make `create` fail with "already exists".
    if let Err(e) = cleanup::force_delete(&cfg.runtime, &record.id, &d) {
        tracing::warn!("container {}: {e}", record.id);
    }
    let unmount_after = |e: RuntimeError| {
        unmount();
        ContainerError::from(e)
    };
    if !attach {
        let pid =
            monitor::start_detached(monitor_exe, monitor_args, &cfg).map_err(unmount_after)?;
        drop(guard);
        return Ok(Started::Detached(pid));
    }
    let mut guard = Some(guard);
    let finished = monitor::run_attached(&cfg, || drop(guard.take())).map_err(unmount_after)?;
    after_exit(store, sn, record, finished.lock);
    match finished.error {
        Some(e) => Err(e.into()),
        None => Ok(Started::Exited(finished.state)),
    }
}

/// What the monitor does once the container has exited and the runtime forgot it: unmount
/// the root filesystem, release `monitor_lock` (the container no longer runs) and, for
/// `--rm`, remove the container — under the lifecycle lock, so that no `start` comes between.
pub fn after_exit(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
    monitor_lock: fs::File,
) {
    let _guard = match lock(store, record) {
        Ok(g) => g,
        Err(e) => {
            // Removed by `rm -f` that gave up waiting for us: nothing left to do.
            tracing::debug!("container {}: {e}", record.id);
            return;
        }
    };
    if let Err(e) = rootfs::unmount(store.root(), &record.id) {
        tracing::warn!("container {}: {e}", record.id);
    }
    volumes::local::release(store, record);
    drop(monitor_lock);
    let auto_remove =
        ContainerConfig::read(&dir(store.root(), &record.id)).is_ok_and(|c| c.auto_remove);
    if auto_remove && let Err(e) = remove_stopped(store, sn, record, true) {
        tracing::warn!("remove container {}: {e}", record.id);
    }
}

/// The container's state, after cleaning up what a dead monitor left behind.
pub fn reconcile(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
) -> Result<ContainerState, ContainerError> {
    let d = dir(store.root(), &record.id);
    let st = state::read(&d)?;
    if st.status != Status::Running || state::monitor_alive(&d) {
        return Ok(st);
    }
    let _guard = lock(store, record)?;
    reconcile_locked(store, sn, record)
}

/// [`reconcile`] under the lifecycle lock.
fn reconcile_locked(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
) -> Result<ContainerState, ContainerError> {
    let d = dir(store.root(), &record.id);
    let mut st = state::read(&d)?;
    if st.status != Status::Running || state::monitor_alive(&d) {
        return Ok(st);
    }
    tracing::info!("container {}: its monitor is gone; cleaning up", record.id);
    if let Ok(rt) = runtime_for(store.root(), &record.runtime) {
        if let Err(e) = rt.kill(&record.id, libc::SIGKILL, true) {
            tracing::debug!("kill {}: {e}", record.id);
        }
        if let Err(e) = cleanup::force_delete(&rt, &record.id, &d) {
            tracing::warn!("container {}: {e}", record.id);
        }
    }
    rootfs::unmount(store.root(), &record.id)?;
    volumes::local::release(store, record);
    st.status = Status::Exited;
    st.pid = None;
    st.exit_code = Some(st.exit_code.unwrap_or(255));
    st.finished_at = Some(SystemTime::now());
    st.error = Some("the container's monitor process died (crash or reboot)".into());
    state::write(&d, &st)?;
    if ContainerConfig::read(&d).is_ok_and(|c| c.auto_remove) {
        remove_stopped(store, sn, record, true)?;
    }
    Ok(st)
}

/// `stop`: the stop signal, then SIGKILL after `timeout`. A container that is not running is
/// left as it is.
pub fn stop(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
    timeout: Duration,
    signal: Option<i32>,
) -> Result<(), ContainerError> {
    let d = dir(store.root(), &record.id);
    if reconcile(store, sn, record)?.status != Status::Running {
        return Ok(());
    }
    let rt = runtime_for(store.root(), &record.runtime)?;
    let signal = match signal {
        Some(s) => s,
        None => {
            let config = ContainerConfig::read(&d).unwrap_or_default();
            parse_signal(&config.stop_signal).unwrap_or(libc::SIGTERM)
        }
    };
    if !timeout.is_zero() {
        signal_running(&rt, &d, &record.id, signal)?;
        if state::wait(&d, Some(timeout))?.is_some() {
            return Ok(());
        }
    }
    signal_running(&rt, &d, &record.id, libc::SIGKILL)?;
    state::wait(&d, None)?;
    Ok(())
}

/// Sends `signal`; a container that exits meanwhile is not an error. SIGKILL that the
/// runtime fails to deliver goes through the container's cgroup.
fn signal_running(rt: &Runtime, d: &Path, id: &str, signal: i32) -> Result<(), ContainerError> {
    match rt.kill(id, signal, signal == libc::SIGKILL) {
        Ok(()) => Ok(()),
        Err(_) if !state::monitor_alive(d) => Ok(()),
        Err(e) if signal == libc::SIGKILL => {
            tracing::warn!("container {id}: {e}; killing it through its cgroup");
            let path = cleanup::cgroups_path(d).ok_or(e)?;
            Ok(cleanup::kill_cgroup(&path)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// `kill -s SIGNAL`.
pub fn kill(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
    signal: i32,
) -> Result<(), ContainerError> {
    if reconcile(store, sn, record)?.status != Status::Running {
        return Err(ContainerError::NotRunning(record.id.clone()));
    }
    let rt = runtime_for(store.root(), &record.runtime)?;
    signal_running(&rt, &dir(store.root(), &record.id), &record.id, signal)
}

/// `wait`: blocks until the container is not running; its exit code.
pub fn wait(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
) -> Result<i32, ContainerError> {
    let d = dir(store.root(), &record.id);
    let st = match state::wait(&d, None)? {
        Some(st) => st,
        None => reconcile(store, sn, record)?,
    };
    Ok(st.exit_code.unwrap_or(0))
}

/// `rm [-f] [-v]`: a running container is refused unless `force` (then killed first:
/// through the runtime, else through its cgroup); `volumes` also removes its anonymous
/// volumes. With `force`, what the runtime fails to do is done without it and warned about.
pub fn remove(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
    force: bool,
    volumes: bool,
) -> Result<(), ContainerError> {
    let d = dir(store.root(), &record.id);
    let mut killed = false;
    loop {
        let guard = match lock(store, record) {
            // Killed here, removed by its own monitor (`--rm`).
            Err(ContainerError::NotFound(_)) if killed => return Ok(()),
            other => other?,
        };
        let st = reconcile_locked(store, sn, record)?;
        if !state::monitor_alive(&d) {
            return remove_stopped(store, sn, record, volumes);
        }
        // Under the lock a live monitor has recorded `running`, or is finishing and waits
        // for this lock.
        if st.status == Status::Running {
            if !force {
                return Err(ContainerError::RemoveRunning(record.name.clone()));
            }
            let rt = runtime_for(store.root(), &record.runtime)?;
            signal_running(&rt, &d, &record.id, libc::SIGKILL)?;
            killed = true;
        }
        drop(guard);
        if state::wait(&d, Some(MONITOR_EXIT_PATIENCE))?.is_none() {
            tracing::warn!(
                "container {}: its monitor did not exit {}s after SIGKILL; removing it anyway",
                record.id,
                MONITOR_EXIT_PATIENCE.as_secs()
            );
            let _guard = lock(store, record)?;
            return remove_stopped(store, sn, record, volumes);
        }
    }
}

/// How long `rm -f` waits for the monitor of a killed container.
const MONITOR_EXIT_PATIENCE: Duration = Duration::from_secs(30);

/// Removes a container that is not running (the caller holds its lifecycle lock): runtime
/// state, mount, writable layer, record, directory — in that order, so an interrupted `rm`
/// leaves a record that `rm` finishes — and then, with `volumes`, the anonymous volumes no
/// other container uses. A runtime that fails is bypassed with a warning.
fn remove_stopped(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
    volumes: bool,
) -> Result<(), ContainerError> {
    let anonymous: Vec<String> = ContainerConfig::read(&dir(store.root(), &record.id))
        .map(|c| {
            c.mounts
                .into_iter()
                .filter(|m| m.anonymous)
                .map(|m| m.name)
                .collect()
        })
        .unwrap_or_default();
    let d = dir(store.root(), &record.id);
    match runtime_for(store.root(), &record.runtime) {
        Ok(rt) => {
            if let Err(e) = cleanup::force_delete(&rt, &record.id, &d) {
                tracing::warn!("container {}: {e}", record.id);
            }
        }
        Err(e) => tracing::warn!("container {}: {e}", record.id),
    }
    rootfs::unmount(store.root(), &record.id)?;
    crate::volumes::local::release(store, record);
    if let Some(key) = &record.snapshot_key {
        let init = super::create::init_name(&record.id);
        for k in [key.as_str(), &format!("{}-init-active", record.id), &init] {
            match sn.remove(k) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    match store.db().write(|tx| tx.delete_container(&record.id)) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    // Through directory fds (any depth) and never into a mount still under it. A waiter on
    // the lifecycle lock may have made a new lock file meanwhile: once more.
    strata_fs::remove_tree(&d)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::DirectoryNotEmpty => strata_fs::remove_tree(&d),
            _ => Err(e),
        })
        .map_err(|e| ContainerError::io("remove the container directory", e))?;
    if volumes {
        for name in anonymous {
            match crate::volumes::remove(store, &name, true) {
                Ok(()) | Err(crate::volumes::VolumeError::InUse { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Undoes a failed `create`: best effort, the first error was already reported.
pub(crate) fn remove_parts(store: &Store, sn: &dyn Snapshotter, record: &ContainerRecord) {
    if let Err(e) = remove_stopped(store, sn, record, true) {
        tracing::warn!("undo create of {}: {e}", record.id);
    }
}

/// `SIGTERM`, `TERM`, `15` → 15.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" | "CLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            let rt = name.strip_prefix("RTMIN")?;
            let off = if rt.is_empty() {
                0
            } else {
                rt.strip_prefix('+')?.parse().ok()?
            };
            let n = libc::SIGRTMIN() + off;
            return (n <= libc::SIGRTMAX()).then_some(n);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("KILL"), Some(9));
        assert_eq!(parse_signal("RTMIN+1"), Some(libc::SIGRTMIN() + 1));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("SIGNOPE"), None);
    }
}

/// What `exec` runs.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub detach: bool,
}

/// `exec`: runs another process in the running container, attached to this process's stdio;
/// its exit code. Detached, through an exec monitor (`monitor_exe monitor_args`) that reaps
/// the process when it exits.
pub fn exec(
    store: &Store,
    record: &ContainerRecord,
    req: ExecRequest,
    monitor_exe: &Path,
    monitor_args: &[OsString],
) -> Result<i32, ContainerError> {
    let d = dir(store.root(), &record.id);
    let base = oci_spec::runtime::Spec::load(d.join("config.json"))
        .map_err(|e| ContainerError::io("read config.json", std::io::Error::other(e)))?;
    let process = strata_runtime::spec::exec_process(
        &base,
        &rootfs::path(store, &record.id),
        req.args,
        &req.env,
        req.workdir.as_deref(),
        req.user.as_deref(),
        req.tty,
    )?;
    if req.detach {
        let cfg = monitor_config(store, record)?;
        return Ok(monitor::exec_detached(
            monitor_exe,
            monitor_args,
            &cfg,
            &process,
        )?);
    }
    let rt = runtime_for(store.root(), &record.runtime)?;
    let outcome = rt.exec(
        &record.id,
        &process,
        &strata_runtime::runc::ExecOptions {
            detach: false,
            tty: req.tty,
            interactive: req.interactive,
        },
    )?;
    Ok(outcome.exit_code)
}

/// Freezes a running container (for a consistent `commit`); false when it is not running.
pub fn pause(store: &Store, record: &ContainerRecord) -> Result<bool, ContainerError> {
    if !state::monitor_alive(&dir(store.root(), &record.id)) {
        return Ok(false);
    }
    runtime_for(store.root(), &record.runtime)?.pause(&record.id)?;
    Ok(true)
}

pub fn resume(store: &Store, record: &ContainerRecord) -> Result<(), ContainerError> {
    Ok(runtime_for(store.root(), &record.runtime)?.resume(&record.id)?)
}
