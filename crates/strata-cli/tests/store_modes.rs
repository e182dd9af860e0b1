//! The store is its owner's: other users on the host can neither read it nor run what
//! containers leave in it, while setuid programs keep working inside containers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Strata;
use common::containers::{busybox_store, until};
use strata_testutil::require_tool;

/// A store whose root's parent other users may traverse (a temp dir is 0700 itself), with
/// busybox loaded as `busybox:latest`; `None` when the test skips.
fn store() -> Option<Strata> {
    if !require_tool("setpriv") {
        return None;
    }
    let s = busybox_store()?;
    let parent = s.root().parent().unwrap().to_owned();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(s)
}

/// Runs `argv` on the host as `nobody` (no supplementary groups, no capabilities), as
/// `su nobody -c` would: (exit code, stdout+stderr).
fn as_nobody(argv: &[&Path]) -> (i32, String) {
    let out = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            // Through a shell: setpriv itself looks its command up while still privileged.
            "/bin/sh",
            "-c",
            "exec \"$0\" \"$@\"",
        ])
        .args(argv)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn container_dir(s: &Strata, name: &str) -> PathBuf {
    let id = s.ok(&["container", "inspect", "--format", "{{.Id}}", name]);
    s.root().join("containers").join(id.trim())
}

/// Every file and directory strata keeps under `root` that another user could read, write
/// or traverse: not the container's own files (root filesystems, volume data, the
/// runtime's state) and not the files bind-mounted into containers.
fn open_to_others(root: &Path) -> Vec<String> {
    let skip = |rel: &Path| {
        let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
        matches!(
            parts
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<&str>>()
                .as_slice(),
            ["containers", _, "rootfs", ..]
                | ["snapshots", _, _, "fs", ..]
                | ["volumes", _, "_data", ..]
                | ["runtime", _, _, ..]
                | ["containers", _, "hostname" | "hosts" | "resolv.conf"]
        )
    };
    let mut open = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let rel = p.strip_prefix(root).unwrap().to_owned();
        if skip(&rel) {
            continue;
        }
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.mode() & 0o007 != 0 && !m.is_symlink() {
            open.push(format!("{} {:o}", rel.display(), m.mode() & 0o7777));
        }
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    open
}

#[test]
fn other_users_cannot_run_a_containers_setuid_files_or_read_its_secrets() {
    let Some(s) = store() else { return };
    s.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "-e",
        "SECRET=hunter2",
        "busybox",
        "sh",
        "-c",
        "cp /bin/busybox /tmp/id && chmod 4755 /tmp/id && echo logged && sleep 600",
    ]);
    let dir = container_dir(&s, "box");
    // busybox runs the applet its name says: a setuid-root `id`.
    let rs = dir.join("rootfs/tmp/id");
    until("the setuid copy", Duration::from_secs(20), || {
        std::fs::metadata(&rs).is_ok_and(|m| m.mode() & 0o4000 != 0)
    });

    // Inside the container setuid programs keep working: its root is not `nosuid` and a
    // non-root user's process may gain privileges. (busybox's own applets drop a setuid
    // euid on purpose, so the kernel's view is what is checked.)
    let mounts = s.ok(&["exec", "-u", "1000", "box", "cat", "/proc/self/mountinfo"]);
    let root_opts = mounts
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.get(4) == Some(&"/"))
        .map(|f| f[5].to_owned())
        .unwrap_or_else(|| panic!("no / in {mounts}"));
    assert!(!root_opts.contains("nosuid"), "{root_opts}");
    let status = s.ok(&["exec", "-u", "1000", "box", "cat", "/proc/self/status"]);
    assert!(status.contains("NoNewPrivs:\t0"), "{status}");

    // On the host, nobody gets nowhere near it, nor the secret.
    let (code, out) = as_nobody(&[&rs]);
    let chain: Vec<String> = rs
        .ancestors()
        .map(|p| format!("{:o} {}", mode(p), p.display()))
        .collect();
    assert_ne!(
        code, 0,
        "nobody ran the container's setuid file: {out}\n{chain:#?}"
    );
    assert!(!out.contains("euid=0"), "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    let (code, out) = as_nobody(&[Path::new("/bin/cat"), &dir.join("config.json")]);
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    let (code, out) = as_nobody(&[Path::new("/bin/ls"), &s.root()]);
    assert_ne!(code, 0, "nobody lists the store root: {out}");

    // And the modes say so even where the root's own mode would not be enough.
    let root = s.root();
    assert_eq!(mode(&root), 0o700);
    for d in ["content", "containers", "runtime", "volumes", "snapshots"] {
        if root.join(d).exists() {
            assert_eq!(mode(&root.join(d)), 0o700, "{d}");
        }
    }
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("config.json")), 0o600);
    assert_eq!(
        mode(&dir.join("hosts")),
        0o644,
        "read by the container's users"
    );
    let log = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-json.log"))
        .expect("the container's log");
    assert_eq!(mode(&log), 0o640);
    assert_eq!(mode(&root.join("metadata.db")), 0o600);
    let blobs = root.join("content/blobs/sha256");
    for blob in std::fs::read_dir(&blobs).unwrap() {
        assert_eq!(mode(&blob.unwrap().path()), 0o400);
    }
    let open = open_to_others(&root);
    assert!(open.is_empty(), "open to other users: {open:#?}");
    s.ok(&["rm", "-f", "box"]);
}

#[test]
fn a_store_made_open_is_closed_when_opened_and_says_so_once() {
    let Some(s) = store() else { return };
    s.ok(&[
        "create",
        "--name",
        "box",
        "-e",
        "SECRET=hunter2",
        "busybox",
        "true",
    ]);
    let dir = container_dir(&s, "box");
    // What an older strata left: a root others traverse, the rest world-readable.
    let root = s.root();
    let loosen = |p: &Path, m: u32| std::fs::set_permissions(p, PermissionsExt::from_mode(m));
    loosen(&root, 0o711).unwrap();
    for d in [
        "content",
        "content/blobs",
        "content/blobs/sha256",
        "containers",
    ] {
        loosen(&root.join(d), 0o755).unwrap();
    }
    loosen(&dir, 0o755).unwrap();
    loosen(&dir.join("config.json"), 0o644).unwrap();
    loosen(&root.join("metadata.db"), 0o644).unwrap();
    for blob in std::fs::read_dir(root.join("content/blobs/sha256")).unwrap() {
        loosen(&blob.unwrap().path(), 0o444).unwrap();
    }
    let (code, out) = as_nobody(&[Path::new("/bin/cat"), &dir.join("config.json")]);
    assert_eq!(
        code, 0,
        "the old store is readable, as the test means: {out}"
    );
    assert!(out.contains("hunter2"), "{out}");

    let first = s.run_input(&["images"], b"");
    assert!(first.status.success());
    let err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(
        err.matches("tightened the permissions of the store")
            .count(),
        1,
        "{err}"
    );
    let (code, out) = as_nobody(&[Path::new("/bin/cat"), &dir.join("config.json")]);
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&dir.join("config.json")), 0o600);
    let open = open_to_others(&root);
    assert!(open.is_empty(), "open to other users: {open:#?}");

    // Once: the next command has nothing to say.
    let again = s.run_input(&["ps", "-a"], b"");
    assert!(again.status.success());
    assert!(
        again.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    s.ok(&["rm", "box"]);
}

#[test]
fn the_console_socket_is_in_a_private_directory() {
    let Some(s) = store() else { return };
    // The monitor makes its socket under TMPDIR: watch what appears there.
    let tmp = s.scratch("tmp");
    let mut child = s
        .cmd(&[
            "run", "-d", "-t", "--name", "tty", "busybox", "sleep", "600",
        ])
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    loop {
        for e in std::fs::read_dir(&tmp).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("strata-console-") {
                if let Ok(m) = std::fs::symlink_metadata(e.path()) {
                    seen.insert(name, (m.is_dir(), m.mode() & 0o7777));
                }
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!seen.is_empty(), "no console socket was seen under TMPDIR");
    for (name, (is_dir, m)) in &seen {
        assert!(*is_dir && *m == 0o700, "{name}: dir {is_dir}, mode {m:o}");
    }
    until("the monitor to clean up", Duration::from_secs(20), || {
        std::fs::read_dir(&tmp).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("strata-console-")
        })
    });
    s.ok(&["rm", "-f", "tty"]);
}
