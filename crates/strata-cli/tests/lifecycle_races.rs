//! Container lifecycle under concurrency and runtime failures (issue 17, defects 4 and 10,
//! and the zombies of `exec -d`): concurrent starts start a container once, a runtime that
//! fails never leaves a container that cannot be removed or a mount behind, and detached
//! exec processes are reaped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Strata;
use common::containers::{busybox, busybox_store, ready, run, until};

/// The container's id.
fn id_of(s: &Strata, name: &str) -> String {
    s.ok(&["container", "inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_owned()
}

fn status(s: &Strata, name: &str) -> String {
    s.ok(&["container", "inspect", "-f", "{{.State.Status}}", name])
        .trim()
        .to_owned()
}

/// How many mounts sit at the container's rootfs (stacked mounts count each).
fn rootfs_mounts(s: &Strata, id: &str) -> usize {
    let rootfs = s.root().join("containers").join(id).join("rootfs");
    let rootfs = rootfs.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(rootfs))
        .count()
}

/// Any mount whose mount point mentions the container.
fn mounted_anywhere(id: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(id)
}

/// The pids whose command line contains every one of `words`.
fn processes_with(words: &[&str]) -> Vec<i32> {
    let mut out = Vec::new();
    for (pid, cmdline) in proc_files("cmdline") {
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if words.iter().all(|w| args.iter().any(|a| a == w)) {
            out.push(pid);
        }
    }
    out
}

/// `/proc/PID/<file>` of every process still there when it is read: (pid, contents).
fn proc_files(file: &str) -> impl Iterator<Item = (i32, Vec<u8>)> + '_ {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(move |e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            Some((pid, std::fs::read(e.path().join(file)).ok()?))
        })
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| !st.contains(") Z"))
}

/// Runs `strata start NAME` `n` times at once while `ps -a` and `inspect` probe the
/// container; every start's (code, stdout, stderr).
fn start_concurrently(s: &Strata, name: &str, n: usize) -> Vec<(i32, String, String)> {
    let barrier = std::sync::Barrier::new(n + 2);
    let ps = ["ps", "-a"];
    let inspect = ["container", "inspect", name];
    std::thread::scope(|scope| {
        let starts: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    run(s, &["start", name])
                })
            })
            .collect();
        for probe in [&ps[..], &inspect[..]] {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                for _ in 0..10 {
                    run(s, probe);
                }
            });
        }
        starts.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// Ten concurrent starts: every one succeeds and prints the name (Docker: starting a running
/// container is a success), the container's command ran once, one monitor owns it, its
/// rootfs is mounted once and its record is intact.
fn assert_started_once(s: &Strata, name: &str, log: &Path, runs_before: usize) -> String {
    let results = start_concurrently(s, name, 10);
    for (code, out, err) in &results {
        assert_eq!(
            (*code, out.as_str()),
            (0, format!("{name}\n").as_str()),
            "a start failed: {err}"
        );
    }
    let id = id_of(s, name);
    assert_eq!(status(s, name), "running");
    until("the container's command", Duration::from_secs(10), || {
        std::fs::read_to_string(log).is_ok_and(|l| l.lines().count() > runs_before)
    });
    std::thread::sleep(Duration::from_millis(500));
    let runs = std::fs::read_to_string(log).unwrap().lines().count();
    assert_eq!(runs, runs_before + 1, "the container ran more than once");
    assert_eq!(rootfs_mounts(s, &id), 1, "rootfs not mounted exactly once");
    assert_eq!(
        processes_with(&["container-monitor", &id]).len(),
        1,
        "one monitor"
    );
    id
}

/// A `busybox` container NAME that appends a line to `<scratch>/data/starts` each time it
/// starts, then sleeps; the log's path.
fn counting_container(s: &Strata, name: &str, extra: &[&str]) -> PathBuf {
    let data = s.scratch("data");
    let bind = format!("{}:/data", data.display());
    let mut args = vec!["create", "--name", name, "-v", &bind];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "busybox",
        "sh",
        "-c",
        "echo started >> /data/starts; exec sleep 1000",
    ]);
    s.ok(&args);
    data.join("starts")
}

#[test]
fn concurrent_starts_start_a_container_once() {
    let Some(s) = busybox_store() else { return };
    let log = counting_container(&s, "racer", &[]);
    let id = assert_started_once(&s, "racer", &log, 0);
    // Once more from exited: the same.
    s.ok(&["stop", "-t", "0", "racer"]);
    assert_eq!(status(&s, "racer"), "exited");
    assert_eq!(
        rootfs_mounts(&s, &id),
        0,
        "stop leaves the rootfs unmounted"
    );
    assert_eq!(assert_started_once(&s, "racer", &log, 1), id);
    s.ok(&["rm", "-f", "racer"]);
    assert!(!mounted_anywhere(&id));
    assert!(processes_with(&["container-monitor", &id]).is_empty());
}

#[test]
fn concurrent_starts_of_an_rm_container_keep_it() {
    let Some(s) = busybox_store() else { return };
    let log = counting_container(&s, "once", &["--rm"]);
    let id = assert_started_once(&s, "once", &log, 0);
    // It is removed when it exits, not before.
    s.ok(&["kill", "once"]);
    // The record goes before the directory (an interrupted `rm` finishes from the record).
    until(
        "the --rm container's removal",
        Duration::from_secs(10),
        || {
            s.ok(&["ps", "-a", "-q", "--no-trunc"]).trim().is_empty()
                && !s.root().join("containers").join(&id).exists()
        },
    );
    assert!(!mounted_anywhere(&id));
}

const FAKE_RUNC: &str = r##"#!/bin/sh
log=; prev=
for a in "$@"; do [ "$prev" = --log ] && log=$a; prev=$a; done
for a in "$@"; do
  case "$a" in create|start|delete|kill|exec|state|pause|resume)
    if grep -qx "$a" "@FAIL@" 2>/dev/null; then
      echo "fake runtime: $a fails" >&2
      [ -n "$log" ] && echo "{\"level\":\"error\",\"msg\":\"fake runtime: $a fails\"}" >> "$log"
      exit 1
    fi
    break;;
  esac
done
exec @REAL@ "$@"
"##;

/// A `runc` first on the PATH that forwards to the real one, except that the operations
/// listed in the file `fail` beside it (one per line) fail with "fake runtime: OP fails".
struct FakeRuntime {
    dir: tempfile::TempDir,
}

/// A runtime that fails on demand, and a store using it with `busybox:latest` loaded; `None`
/// when the test skips.
fn fake_busybox_store() -> Option<(FakeRuntime, Strata)> {
    if !ready() {
        return None;
    }
    let fake = FakeRuntime::new();
    let s = fake.strata();
    busybox(&s).then_some((fake, s))
}

impl FakeRuntime {
    fn new() -> FakeRuntime {
        let out = Command::new("sh")
            .args(["-c", "command -v runc"])
            .output()
            .unwrap();
        let real = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(!real.is_empty(), "runc on the PATH");
        let dir = tempfile::tempdir().unwrap();
        // Like runc, the failure goes to stderr and, with --log, to the JSON log.
        let script = FAKE_RUNC
            .replace("@FAIL@", &dir.path().join("fail").display().to_string())
            .replace("@REAL@", &real);
        let path = dir.path().join("runc");
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeRuntime { dir }
    }

    /// The operations that fail from now on.
    fn fail(&self, ops: &[&str]) {
        std::fs::write(self.dir.path().join("fail"), ops.join("\n") + "\n").unwrap();
    }

    /// A `strata` whose runtime is this one.
    fn strata(&self) -> Strata {
        let path = std::env::var("PATH").unwrap_or_default();
        let path = format!("{}:{path}", self.dir.path().display());
        Strata::new().env("PATH", Path::new(&path))
    }
}

/// Everything of a removed container is gone: record, directory, mounts, runtime state,
/// cgroup and processes.
fn assert_gone(s: &Strata, id: &str, pids: &[i64]) {
    assert!(
        s.ok(&["ps", "-a", "-q", "--no-trunc"]).trim().is_empty(),
        "record left"
    );
    assert!(!s.root().join("containers").join(id).exists(), "dir left");
    assert!(!mounted_anywhere(id), "a mount left");
    assert!(
        !s.root().join("runtime/runc").join(id).exists(),
        "runtime state left"
    );
    for pid in pids {
        assert!(!alive(*pid), "process {pid} left");
    }
    let procs = format!("/sys/fs/cgroup/pids/strata/{id}/cgroup.procs");
    assert!(
        std::fs::read_to_string(&procs).map_or(true, |p| p.trim().is_empty()),
        "processes left in the cgroup"
    );
}

fn init_pid(s: &Strata, name: &str) -> i64 {
    s.ok(&["container", "inspect", "-f", "{{.State.Pid}}", name])
        .trim()
        .parse()
        .unwrap()
}

/// A container started while the runtime fails `at_start`, then `rm -f` while it fails
/// `at_rm`: it succeeds, warns with `warning`, and leaves nothing of the container.
fn rm_f_removes_despite(at_start: &[&str], at_rm: &[&str], warning: &str) {
    let Some((fake, s)) = fake_busybox_store() else {
        return;
    };
    fake.fail(at_start);
    s.ok(&["create", "--name", "box", "busybox", "sleep", "1000"]);
    let id = id_of(&s, "box");
    // A failing cleanup of a stale runtime record before `create` is a warning, not a
    // failed start.
    s.ok(&["start", "box"]);
    assert_eq!(status(&s, "box"), "running");
    let pid = init_pid(&s, "box");
    fake.fail(at_rm);
    let (code, _, err) = run(&s, &["rm", "-f", "box"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(warning), "warned: {err}");
    assert_gone(&s, &id, &[pid]);
}

#[test]
fn rm_f_removes_when_the_runtime_fails_delete() {
    rm_f_removes_despite(&["delete"], &["delete"], "fake runtime: delete fails");
}

#[test]
fn rm_f_kills_through_the_cgroup_when_the_runtime_fails_kill() {
    rm_f_removes_despite(&[], &["kill", "delete"], "fake runtime: kill fails");
}

#[test]
fn a_failed_start_leaves_nothing_mounted_and_rm_works() {
    let Some((fake, s)) = fake_busybox_store() else {
        return;
    };
    for (n, ops) in [
        &["create"][..],
        &["start"],
        &["create", "delete"],
        &["start", "delete"],
    ]
    .into_iter()
    .enumerate()
    {
        fake.fail(ops);
        let name = format!("c{n}");
        s.ok(&["create", "--name", &name, "busybox", "sleep", "1000"]);
        let id = id_of(&s, &name);
        let (code, _, err) = run(&s, &["start", &name]);
        let failed = format!("fake runtime: {} fails", ops[0]);
        assert_eq!(code, 125, "{ops:?}: {err}");
        assert!(err.contains(&failed), "{ops:?}: {err}");
        assert_eq!(status(&s, &name), "created", "{ops:?}");
        assert!(!mounted_anywhere(&id), "{ops:?}: the rootfs stays mounted");
        assert!(
            processes_with(&["container-monitor", &id]).is_empty(),
            "{ops:?}: a monitor left"
        );
        let procs = format!("/sys/fs/cgroup/pids/strata/{id}/cgroup.procs");
        assert!(
            std::fs::read_to_string(&procs).map_or(true, |p| p.trim().is_empty()),
            "{ops:?}: processes left in the cgroup"
        );
        s.ok(&["rm", &name]);
        assert_gone(&s, &id, &[]);
    }
}

/// The zombies (state Z) on the host: (pid, parent pid, parent's executable).
fn zombies() -> Vec<(i32, i32, PathBuf)> {
    let mut out = Vec::new();
    for (pid, status) in proc_files("status") {
        let status = String::from_utf8_lossy(&status);
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(str::trim)
                .unwrap_or_default()
                .to_owned()
        };
        if field("State:").starts_with('Z') {
            let ppid: i32 = field("PPid:").parse().unwrap_or(0);
            let exe = std::fs::read_link(format!("/proc/{ppid}/exe")).unwrap_or_default();
            out.push((pid, ppid, exe));
        }
    }
    out
}

#[test]
fn exec_d_processes_are_reaped() {
    let Some(s) = busybox_store() else { return };
    // Orphans of the commands run here come to this process, which never reaps them: as
    // under an init that does not reap (a container's, a sandbox's). Nextest runs each test
    // in a process of its own.
    // SAFETY: prctl(2) with integer arguments.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
    s.ok(&["run", "-d", "--name", "zz", "busybox", "sleep", "1000"]);
    let id = id_of(&s, "zz");
    for _ in 0..3 {
        s.ok(&["exec", "-d", "zz", "sleep", "1"]);
    }
    std::thread::sleep(Duration::from_millis(2500));
    let strata = std::fs::canonicalize(Strata::bin()).unwrap();
    let ours: Vec<_> = zombies()
        .into_iter()
        .filter(|(_, _, exe)| *exe == strata)
        .collect();
    assert!(ours.is_empty(), "zombies of strata processes: {ours:?}");
    let (code, inside, err) = run(
        &s,
        &[
            "exec",
            "zz",
            "sh",
            "-c",
            "grep -l '^State:.*Z' /proc/[0-9]*/status; true",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(inside.trim(), "", "zombies in the container");
    // The exec monitors are gone with their processes.
    assert!(processes_with(&["container-monitor", "--exec", &id]).is_empty());
    // A command that cannot start is still an error, as Docker's `exec -d`.
    let (code, _, err) = run(&s, &["exec", "-d", "zz", "/no/such/command"]);
    assert_ne!(code, 0);
    assert!(err.contains("no such file"), "{err}");
    s.ok(&["rm", "-f", "zz"]);
}
