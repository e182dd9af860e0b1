//! Read-only binds are read-only all the way down: a tmpfs mounted under the source of
//! `-v SRC:DST:ro` (or `--mount …,readonly`) is as read-only inside the container as the
//! source, through the runtime's `rro` or, for a runtime without it, a copy strata makes
//! read-only itself.
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

/// A store whose PATH has `runc-nofeatures`: runc without its `features` command, as
/// runc 1.0, so it lists no `rro`, and that fails a spec asking for `rro` (runc 1.0 would
/// pass it to the kernel as data and mount the bind writable below its top). `None` when
/// the test skips.
fn store_with_runc_nofeatures(bin: &Path) -> Option<Strata> {
    if !ready() {
        return None;
    }
    let wrapper = bin.join("runc-nofeatures");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nprev=\nfor a in \"$@\"; do\n  \
         if [ \"$a\" = features ]; then\n    \
         echo 'runc: no such command: features' >&2; exit 1\n  fi\n  \
         if [ \"$prev\" = --bundle ] && grep -q '\"rro\"' \"$a/config.json\"; then\n    \
         echo 'runc-nofeatures: unknown mount option rro' >&2; exit 1\n  fi\n  \
         prev=$a\ndone\nexec runc \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.display()
    );
    let s = Strata::new().env("PATH", Path::new(&path));
    busybox(&s).then_some(s)
}

/// The mounts of this process's namespace under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!(" {}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&prefix))
        .map(str::to_owned)
        .collect()
}

/// A runtime without `rro` gets read-only binds that strata made recursively read-only
/// itself (a copy of the source's mount tree, read-only at every level, staged at each
/// start): as read-only inside as with `rro`, for `-v`, `--mount` and a container started
/// twice, and nothing stays mounted on the host once they exit. Writable binds stay as
/// they were.
#[test]
fn a_runtime_without_recursive_read_only_gets_binds_strata_made_read_only() {
    let bin = tempfile::tempdir().unwrap();
    let Some(s) = store_with_runc_nofeatures(bin.path()) else {
        return;
    };
    let src = s.scratch("src");
    let _tmpfs = Tmpfs::mount(&src.join("sub"));
    let src_text = src.to_str().unwrap();
    let refused = "/m/x refused\n/m/sub/x refused\nRead-only file system\n";

    let ro_v = format!("{src_text}:/m:ro");
    let ro_mount = format!("type=bind,source={src_text},target=/m,readonly");
    for flags in [["-v", ro_v.as_str()], ["--mount", ro_mount.as_str()]] {
        let args = ["--runtime", "runc-nofeatures", flags[0], flags[1]];
        assert_eq!(probe(&s, &args), refused, "{flags:?}");
    }
    let id = s.ok(&[
        "create",
        "--runtime",
        "runc-nofeatures",
        "-v",
        &ro_v,
        "busybox",
        "sh",
        "-c",
        PROBE,
    ]);
    for run in 0..2 {
        assert_eq!(s.ok(&["start", "-a", id.trim()]), refused, "run {run}");
    }
    assert!(!src.join("x").exists() && !src.join("sub/x").exists());
    assert_eq!(
        mounts_under(&s.root()),
        Vec::<String>::new(),
        "left mounted"
    );
    s.ok(&["rm", id.trim()]);

    let rw = format!("{src_text}:/m");
    let args = ["--runtime", "runc-nofeatures", "-v", rw.as_str()];
    assert_eq!(probe(&s, &args), "/m/x ok\n/m/sub/x ok\n");
    assert_eq!(s.ok(&["ps", "-a", "-q"]), "");
}
