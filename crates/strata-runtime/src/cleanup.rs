//! Getting rid of a container when its runtime will not: every process in its cgroup killed,
//! the cgroup and the runtime's state directory removed.
//!
//! The runtime is asked first (`delete --force`); this is the fallback for a runtime that
//! fails, so that `rm -f` always removes and a failed start leaves nothing behind. The
//! cgroup is the one place that holds every process of the container, whatever forked or
//! escaped its init, and it needs nothing from the runtime: `cgroup.kill` on cgroup v2,
//! else SIGKILL to every pid listed until none is left (a frozen cgroup is thawed first, as
//! frozen tasks do not die).

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::runc::{Runtime, RuntimeError, io_err};

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How long the processes of a cgroup get to die after SIGKILL.
const KILL_PATIENCE: Duration = Duration::from_secs(10);

/// Removes `id` from the runtime whatever the runtime does: `delete --force`, and when that
/// fails, the container killed through its cgroup (read from the bundle's `config.json`), the
/// cgroup and the runtime's state directory removed. An error says that the runtime failed
/// (and what the fallback could not do); the caller warns and goes on.
pub fn force_delete(rt: &Runtime, id: &str, bundle: &Path) -> Result<(), RuntimeError> {
    let Err(failure) = rt.delete(id, true) else {
        return Ok(());
    };
    let mut left = Vec::new();
    match cgroups_path(bundle) {
        Some(path) => {
            if let Err(e) = kill_cgroup(&path) {
                left.push(e.to_string());
            }
        }
        None => left.push(format!(
            "no cgroupsPath in {}",
            bundle.join("config.json").display()
        )),
    }
    if let Err(e) = rt.forget(id) {
        left.push(e.to_string());
    }
    Err(RuntimeError::Bypassed {
        runtime: Box::new(failure),
        left,
    })
}

/// `linux.cgroupsPath` of the bundle's `config.json`.
pub fn cgroups_path(bundle: &Path) -> Option<String> {
    let bytes = fs::read(bundle.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v["linux"]["cgroupsPath"].as_str().map(str::to_owned)
}

/// The cgroup's directories: one on cgroup v2, one per mounted hierarchy on v1 (and the v2
/// `unified` of a hybrid setup). Only absolute paths with no `..` are taken (a systemd
/// `slice:prefix:name` path is not a directory).
fn cgroup_dirs(cgroups_path: &str) -> Result<Vec<PathBuf>, RuntimeError> {
    let rel = Path::new(cgroups_path);
    let plain = rel.is_absolute()
        && !cgroups_path.contains(':')
        && rel
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    let rel = match rel.strip_prefix("/") {
        Ok(r) if plain && r.components().next().is_some() => r,
        _ => return Err(RuntimeError::CgroupPath(cgroups_path.to_owned())),
    };
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        let d = root.join(rel);
        return Ok(if d.is_dir() { vec![d] } else { Vec::new() });
    }
    let hierarchies = fs::read_dir(root).map_err(io_err("list", root))?;
    Ok(hierarchies
        .flatten()
        .map(|h| h.path().join(rel))
        .filter(|d| d.is_dir())
        .collect())
}

/// Kills every process in the cgroup `cgroups_path` and removes its directories; an error
/// when processes are still there after [`KILL_PATIENCE`].
pub fn kill_cgroup(cgroups_path: &str) -> Result<(), RuntimeError> {
    let dirs = cgroup_dirs(cgroups_path)?;
    for d in &dirs {
        // A paused container (freezer) is thawed, or SIGKILL waits for the thaw.
        let _ = fs::write(d.join("freezer.state"), "THAWED");
        let _ = fs::write(d.join("cgroup.freeze"), "0");
        let _ = fs::write(d.join("cgroup.kill"), "1");
    }
    let deadline = Instant::now() + KILL_PATIENCE;
    loop {
        let pids: Vec<i32> = dirs.iter().flat_map(|d| procs(d)).collect();
        if pids.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(RuntimeError::ProcessesLeft {
                cgroup: cgroups_path.to_owned(),
                count: pids.len(),
            });
        }
        for pid in pids {
            // SAFETY: kill(2); a pid that already exited is ESRCH, ignored.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for d in &dirs {
        remove_tree(d);
    }
    Ok(())
}

/// The pids in the cgroup `d` and its children.
fn procs(d: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = fs::read_to_string(d.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for child in subdirs(d) {
        out.extend(procs(&child));
    }
    out
}

fn subdirs(d: &Path) -> Vec<PathBuf> {
    fs::read_dir(d)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// An empty cgroup's directory and its children (cgroupfs removes with rmdir, children first).
fn remove_tree(d: &Path) {
    for child in subdirs(d) {
        remove_tree(&child);
    }
    let _ = fs::remove_dir(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_absolute_cgroup_paths_are_used() {
        for bad in [
            "",
            "/",
            "strata/x",
            "/strata/../../etc",
            "system.slice:docker:x",
        ] {
            assert!(
                matches!(cgroup_dirs(bad), Err(RuntimeError::CgroupPath(_))),
                "{bad}"
            );
        }
        assert!(cgroup_dirs("/strata/no-such-container-here").is_ok_and(|d| d.is_empty()));
    }

    #[test]
    fn the_cgroups_path_comes_from_config_json() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(cgroups_path(t.path()), None);
        fs::write(
            t.path().join("config.json"),
            br#"{"linux":{"cgroupsPath":"/strata/abc"}}"#,
        )
        .unwrap();
        assert_eq!(cgroups_path(t.path()).as_deref(), Some("/strata/abc"));
    }
}
