//! `state.json`: what the monitor records about a container, and waiting on it.
//!
//! The live monitor holds an exclusive `flock` on `monitor.lock` for its whole life, so
//! "is it running" is one non-blocking lock attempt and `wait` is one blocking one — no
//! polling of pids, which can be reused. A `state.json` that says running while nobody holds
//! the lock is what a crash (or reboot) of the monitor leaves; callers clean that up.
//!
//! `lifecycle.lock` serializes the changes of a container's state that are not the monitor's
//! own: a `start` holds it from its look at the state until its monitor has recorded
//! `running`, and cleanup, removal and the monitor's unmount after the exit hold it too. Lock
//! order: a monitor may wait for `lifecycle.lock` while it holds `monitor.lock`; nobody waits
//! for `monitor.lock` while holding `lifecycle.lock`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use crate::runc::{RuntimeError, io_err};

pub const STATE_FILE: &str = "state.json";
pub const LOCK_FILE: &str = "monitor.lock";
pub const LIFECYCLE_LOCK_FILE: &str = "lifecycle.lock";

/// How long a new monitor retries its lock: probes (`ps`, `wait`) hold it shared for an
/// instant, and must never make a monitor fail.
const MONITOR_LOCK_PATIENCE: Duration = Duration::from_secs(5);

/// Docker's `State.Status` values that strata has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Exited,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    pub status: Status,
    /// The container's init process, while it runs.
    pub pid: Option<i32>,
    pub monitor_pid: Option<i32>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// The command's status; 128 + N for a signal N, as Docker.
    pub exit_code: Option<i32>,
    /// Why it failed to start, or why the monitor's record was taken over.
    pub error: Option<String>,
}

/// The recorded state; a container never started has none yet (`Created`).
pub fn read(dir: &Path) -> Result<ContainerState, RuntimeError> {
    let path = dir.join(STATE_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| io_err("parse", &path)(io::Error::other(e)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ContainerState::default()),
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

/// Replaces the state (temporary file + rename: never half a record).
pub fn write(dir: &Path, state: &ContainerState) -> Result<(), RuntimeError> {
    let path = dir.join(STATE_FILE);
    let bytes =
        serde_json::to_vec(state).map_err(|e| io_err("encode", &path)(io::Error::other(e)))?;
    crate::files::write_atomic(&path, &bytes, crate::files::PRIVATE).map_err(io_err("write", &path))
}

fn open_lock(dir: &Path) -> io::Result<File> {
    open_lock_file(&dir.join(LOCK_FILE))
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(crate::files::PRIVATE)
        .open(path)
}

/// The monitor's lock, held exclusively for as long as the returned file is open. A probe
/// holding it shared is waited for; another monitor holding it is an error.
pub fn lock_for_monitor(dir: &Path) -> Result<File, RuntimeError> {
    lock_for_monitor_within(dir, MONITOR_LOCK_PATIENCE)
}

fn lock_for_monitor_within(dir: &Path, patience: Duration) -> Result<File, RuntimeError> {
    let path = dir.join(LOCK_FILE);
    let f = open_lock(dir).map_err(io_err("open", &path))?;
    let deadline = Instant::now() + patience;
    loop {
        match flock(&f, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(f),
            Err(rustix::io::Errno::WOULDBLOCK | rustix::io::Errno::INTR)
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => {
                return Err(io_err("lock (is another monitor running?)", &path)(
                    e.into(),
                ));
            }
        }
    }
}

/// The container's lifecycle lock (see the module doc), held until the file is dropped;
/// `None` when the container's directory is gone (it was removed, or never fully created).
pub fn lock_lifecycle(dir: &Path) -> Result<Option<File>, RuntimeError> {
    let path = dir.join(LIFECYCLE_LOCK_FILE);
    let f = match open_lock_file(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    loop {
        match flock(&f, FlockOperation::LockExclusive) {
            Ok(()) => return Ok(Some(f)),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(io_err("lock", &path)(e.into())),
        }
    }
}

/// True while a monitor holds the lock.
pub fn monitor_alive(dir: &Path) -> bool {
    let Ok(f) = open_lock(dir) else {
        return false;
    };
    match flock(&f, FlockOperation::NonBlockingLockShared) {
        Ok(()) => false,
        Err(e) => e == rustix::io::Errno::WOULDBLOCK,
    }
}

/// Blocks until no monitor holds the lock (the container is not running) and returns the
/// recorded state; with a timeout, `None` if it still runs then.
pub fn wait(dir: &Path, timeout: Option<Duration>) -> Result<Option<ContainerState>, RuntimeError> {
    let path = dir.join(LOCK_FILE);
    let f = open_lock(dir).map_err(io_err("open", &path))?;
    match timeout {
        None => {
            flock(&f, FlockOperation::LockShared).map_err(|e| io_err("wait on", &path)(e.into()))?
        }
        Some(t) => {
            let deadline = Instant::now() + t;
            loop {
                match flock(&f, FlockOperation::NonBlockingLockShared) {
                    Ok(()) => break,
                    Err(rustix::io::Errno::WOULDBLOCK) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
                    Err(e) => return Err(io_err("wait on", &path)(e.into())),
                }
            }
        }
    }
    read(dir).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_missing_is_created() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(read(t.path()).unwrap().status, Status::Created);
        let st = ContainerState {
            status: Status::Exited,
            exit_code: Some(137),
            finished_at: Some(SystemTime::now()),
            ..ContainerState::default()
        };
        write(t.path(), &st).unwrap();
        assert_eq!(read(t.path()).unwrap(), st);
    }

    #[test]
    fn the_lock_says_alive_and_wait_times_out_then_returns() {
        let t = tempfile::tempdir().unwrap();
        assert!(!monitor_alive(t.path()));
        let lock = lock_for_monitor(t.path()).unwrap();
        assert!(monitor_alive(t.path()));
        assert!(lock_for_monitor_within(t.path(), Duration::from_millis(30)).is_err());
        assert_eq!(
            wait(t.path(), Some(Duration::from_millis(50))).unwrap(),
            None
        );
        let dir = t.path().to_owned();
        let waiter = std::thread::spawn(move || wait(&dir, None).unwrap());
        std::thread::sleep(Duration::from_millis(50));
        write(
            t.path(),
            &ContainerState {
                status: Status::Exited,
                exit_code: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
        drop(lock);
        assert_eq!(waiter.join().unwrap().unwrap().exit_code, Some(3));
        assert!(!monitor_alive(t.path()));
    }

    #[test]
    fn a_probe_holding_the_lock_shared_does_not_fail_the_monitor() {
        let t = tempfile::tempdir().unwrap();
        // What `monitor_alive` and `wait` do, for longer than an instant.
        let probe = open_lock(t.path()).unwrap();
        flock(&probe, FlockOperation::NonBlockingLockShared).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(probe);
        });
        let lock = lock_for_monitor(t.path()).unwrap();
        releaser.join().unwrap();
        assert!(monitor_alive(t.path()));
        drop(lock);
    }

    #[test]
    fn the_lifecycle_lock_is_exclusive_and_absent_with_its_directory() {
        let t = tempfile::tempdir().unwrap();
        assert!(lock_lifecycle(&t.path().join("gone")).unwrap().is_none());
        let held = lock_lifecycle(t.path()).unwrap().unwrap();
        let dir = t.path().to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            let second = lock_lifecycle(&dir).unwrap();
            tx.send(()).unwrap();
            drop(second);
        });
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        drop(held);
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        other.join().unwrap();
    }
}
