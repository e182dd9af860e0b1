//! Global flags, errors and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Strata;

#[test]
fn info_shows_root_driver_and_counts() {
    let s = Strata::new();
    let out = s.ok(&["info"]);
    for want in [
        "Storage Driver: overlayfs",
        " driver-type: io.containerd.snapshotter.v1",
        "Images: 0",
        "Containers: 0",
        &format!("Strata Root Dir: {}", s.root().display()),
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn root_from_environment() {
    let s = Strata::new();
    let out = std::process::Command::new(Strata::bin())
        .env("STRATA_ROOT", s.root())
        .args(["info", "--format", "{{.DockerRootDir}}"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        s.root().to_str().unwrap()
    );
    assert!(s.root().join("metadata.db").exists());
}

#[test]
fn root_that_cannot_be_created_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let out = std::process::Command::new(Strata::bin())
        .arg("--root")
        .arg(file.join("store"))
        .arg("info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "strata: cannot create store root {}",
            file.join("store").display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn unwritable_root_names_the_fix() {
    // Only an unprivileged user can be refused; run the binary as `nobody` when we are root.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root-owned");
    std::fs::create_dir(&root).unwrap();
    let mut cmd = if rustix::process::geteuid().is_root() {
        if !strata_testutil::require_tool("setpriv") {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        // nobody must be able to reach the binary and the directory's parent.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(Strata::bin());
        c
    } else {
        std::process::Command::new(Strata::bin())
    };
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = cmd
        .arg("--root")
        .arg(root.join("sub"))
        .arg("info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("Permission denied") && err.contains("strata/target") {
        panic!("the test binary is not reachable by nobody: {err}");
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot create store root") && err.contains("run as root, or pass --root DIR"),
        "{err}"
    );
}

#[test]
fn unknown_snapshotter_and_usage_errors() {
    let s = Strata::new();
    let err = s.fails(&["--snapshotter", "zfs", "info"], b"");
    assert!(
        err.contains("unknown snapshotter \"zfs\" (known: overlayfs, native, btrfs)"),
        "{err}"
    );
    let out = s.cmd(&["content", "ingest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn broken_pipe_is_not_an_error() {
    let s = Strata::new();
    let data = common::pseudo_random(4 << 20, 3);
    let digest = s.ingest(&data);
    let mut child = s
        .cmd(&["content", "get", &digest])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn version_prints_client_section() {
    let out = std::process::Command::new(Strata::bin())
        .arg("version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Client:\n Version:"), "{text}");
    let out = std::process::Command::new(Strata::bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("strata 0."),
        "--version"
    );
}
