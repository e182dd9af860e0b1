//! Read-only binds are read-only all the way down: a tmpfs mounted under the source of
//! `-v SRC:DST:ro` (or `--mount …,readonly`) is as read-only inside the container as the
//! source, and a runtime that cannot do that is refused rather than used.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Strata;
use common::containers::{busybox, busybox_store, ready};

/// A tmpfs mounted at a path, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "ro-binds-test"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs at {}", at.display());
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Tries to write at the top of `/m` and in the tmpfs under it; prints what each gave.
const PROBE: &str = "for f in /m/x /m/sub/x; do \
    if echo hi 2>/dev/null > $f; then echo \"$f ok\"; else echo \"$f refused\"; fi; \
    done; touch /m/sub/y 2>&1 | grep -o 'Read-only file system'";

fn probe(s: &Strata, mount: &[&str]) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(mount);
    args.extend(["busybox", "sh", "-c", PROBE]);
    let out = s.run_input(&args, b"");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_tmpfs_under_a_read_only_bind_is_read_only_too() {
    let Some(s) = busybox_store() else { return };
    let src = s.scratch("src");
    let _tmpfs = Tmpfs::mount(&src.join("sub"));
    let src_text = src.to_str().unwrap();

    let ro_v = format!("{src_text}:/m:ro");
    let ro_mount = format!("type=bind,source={src_text},target=/m,readonly");
    for flags in [["-v", ro_v.as_str()], ["--mount", ro_mount.as_str()]] {
        assert_eq!(
            probe(&s, &flags),
            "/m/x refused\n/m/sub/x refused\nRead-only file system\n",
            "{flags:?}"
        );
    }
    assert!(!src.join("x").exists() && !src.join("sub/x").exists());

    // Writable binds stay writable, the tmpfs under them too.
    let rw = format!("{src_text}:/m");
    assert_eq!(probe(&s, &["-v", &rw]), "/m/x ok\n/m/sub/x ok\n");
    assert!(src.join("x").exists() && src.join("sub/x").exists());
    assert_eq!(s.ok(&["ps", "-a", "-q"]), "");
}

/// A runtime whose `features` does not list `rro` (here: runc without its `features`
/// command, as runc 1.0) gets no read-only bind at all: refused with a clear error,
/// nothing left behind. Writable binds still run on it.
#[test]
fn a_runtime_without_recursive_read_only_is_refused() {
    if !ready() {
        return;
    }
    let bin = tempfile::tempdir().unwrap();
    let wrapper = bin.path().join("runc-nofeatures");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = features ]; then\n    \
         echo 'runc: no such command: features' >&2; exit 1\n  fi\ndone\nexec runc \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.path().display()
    );
    let s = Strata::new().env("PATH", Path::new(&path));
    if !busybox(&s) {
        return;
    }
    let src = s.scratch("src");
    let ro = format!("{}:/m:ro", src.display());
    // `run` fails before the container starts: Docker's 125.
    let out = s.run_input(
        &[
            "run",
            "--rm",
            "--runtime",
            "runc-nofeatures",
            "-v",
            &ro,
            "busybox",
            "true",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("recursively read-only") && err.contains("runc-nofeatures"),
        "{err}"
    );
    assert_eq!(s.ok(&["ps", "-a", "-q"]), "", "nothing left behind");

    let rw = format!("{}:/m", src.display());
    let out = s.ok(&[
        "run",
        "--rm",
        "--runtime",
        "runc-nofeatures",
        "-v",
        &rw,
        "busybox",
        "sh",
        "-c",
        "touch /m/x && echo written",
    ]);
    assert_eq!(out, "written\n");
}
