//! Real mounts (root-gated): bind rw/ro, overlay through the new mount API, 128 layers whose
//! options do not fit one page, temporary mounts that always unmount.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use strata_mount::{Mount, UnmountFlags, mount_all, unmount, unmount_all, with_temp_mount_in};

fn root(reason: &str) -> bool {
    strata_testutil::require_root(reason)
}

fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|mp| mp == want))
}

/// Unmounts on drop, so a failing assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = unmount_all(&self.0, UnmountFlags::DETACH);
    }
}

fn mounted(mounts: &[Mount], target: &Path) -> Mounted {
    mount_all(mounts, target).unwrap();
    Mounted(target.to_owned())
}

#[test]
fn bind_rw_then_ro() {
    if !root("bind mounts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&dst).unwrap();
    fs::write(src.join("a"), "a").unwrap();

    let m = mounted(&[Mount::bind(&src, false)], &dst);
    assert!(is_mount_point(&dst));
    fs::write(dst.join("b"), "b").unwrap();
    assert_eq!(fs::read_to_string(src.join("b")).unwrap(), "b");
    drop(m);
    assert!(!is_mount_point(&dst));

    let _m = mounted(&[Mount::bind(&src, true)], &dst);
    assert_eq!(fs::read_to_string(dst.join("a")).unwrap(), "a");
    let err = fs::write(dst.join("c"), "c").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(30), "EROFS expected: {err}");
}

#[test]
fn unmount_tolerates_not_mounted_and_missing() {
    if !root("unmounts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    unmount(t.path(), UnmountFlags::NONE).unwrap();
    unmount(&t.path().join("missing"), UnmountFlags::DETACH).unwrap();
    unmount_all(t.path(), UnmountFlags::NONE).unwrap();
}

#[test]
fn overlay_with_upper_and_odd_paths() {
    if !root("mounts overlayfs") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // A layer with `:` and `,` in its path goes to the kernel as a file descriptor.
    let low1 = t.path().join("low:1,x");
    let low2 = t.path().join("low2");
    let (upper, work, target) = (
        t.path().join("upper"),
        t.path().join("work"),
        t.path().join("target"),
    );
    for d in [&low1, &low2, &upper, &work, &target] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(low1.join("shared"), "low1").unwrap();
    fs::write(low1.join("only1"), "1").unwrap();
    fs::write(low2.join("shared"), "low2").unwrap();
    fs::write(low2.join("only2"), "2").unwrap();

    let m = Mount::overlay(&[low2.clone(), low1.clone()], Some((&upper, &work)));
    let _m = mounted(&[m], &target);
    assert_eq!(fs::read_to_string(target.join("shared")).unwrap(), "low2");
    assert_eq!(fs::read_to_string(target.join("only1")).unwrap(), "1");
    fs::write(target.join("new"), "n").unwrap();
    fs::remove_file(target.join("only1")).unwrap();
    assert_eq!(fs::read_to_string(upper.join("new")).unwrap(), "n");
    assert!(low1.join("only1").exists(), "lower layers never change");
}

#[test]
fn overlay_128_layers_beyond_one_page() {
    if !root("mounts overlayfs") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // Long directory names: the joined lowerdir option is far beyond 4 KiB, and the last
    // layer's path is beyond the 255 bytes fsconfig copies as a string.
    let base = t.path().join("x".repeat(60));
    let mut layers = Vec::new();
    for i in 0..128 {
        let dir = if i == 127 {
            base.join("y".repeat(200)).join("z".repeat(100)).join("127")
        } else {
            base.join(format!("layer-{i:03}"))
        };
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("file-{i}")), i.to_string()).unwrap();
        fs::write(dir.join("top"), i.to_string()).unwrap();
        layers.push(dir);
    }
    layers.reverse(); // topmost first
    let m = Mount::overlay(&layers, None);
    let options_len: usize = m.options.iter().map(|o| o.len() + 1).sum();
    assert!(options_len > 4096, "{options_len}");
    let target = t.path().join("target");
    fs::create_dir_all(&target).unwrap();
    let _m = mounted(&[m], &target);
    assert_eq!(fs::read_to_string(target.join("top")).unwrap(), "127");
    for i in 0..128 {
        assert_eq!(
            fs::read_to_string(target.join(format!("file-{i}"))).unwrap(),
            i.to_string()
        );
    }
    let err = fs::write(target.join("nope"), "").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(30), "EROFS expected: {err}");
}

#[test]
fn other_filesystems_go_through_mount2() {
    if !root("mounts tmpfs") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let m = Mount {
        kind: "tmpfs".into(),
        source: "strata-test".into(),
        options: vec!["size=1m".into(), "nodev".into(), "mode=0750".into()],
    };
    let _m = mounted(&[m], t.path());
    let meta = fs::metadata(t.path()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
}

#[test]
fn failed_mount_names_target_and_kernel_reason() {
    if !root("mounts overlayfs") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let m = Mount::overlay(
        &[t.path().join("missing-a"), t.path().join("missing-b")],
        None,
    );
    let err = mount_all(&[m], t.path()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("mount overlay on "), "{msg}");
    assert!(msg.contains("missing-a"), "{msg}");
    assert_eq!(err.kind(), strata_types::ErrorKind::NotFound, "{msg}");
}

#[test]
fn temp_mount_always_unmounts() {
    if !root("bind mounts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "hello").unwrap();
    let scratch = t.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();

    let (content, where_) = with_temp_mount_in(&scratch, &[Mount::bind(&src, true)], |dir| {
        assert!(is_mount_point(dir));
        // Other users cannot reach the mounted files (a container's setuid programs).
        use std::os::unix::fs::PermissionsExt;
        let parent = fs::metadata(dir.parent().unwrap()).unwrap();
        assert_eq!(parent.permissions().mode() & 0o7777, 0o700);
        (fs::read_to_string(dir.join("f")).unwrap(), dir.to_owned())
    })
    .unwrap();
    assert_eq!(content, "hello");
    assert!(!is_mount_point(&where_));
    assert_eq!(
        fs::metadata(&where_).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Even when the closure panics, and even while a file in the mount is still open.
    let r = std::panic::catch_unwind(|| {
        with_temp_mount_in(&scratch, &[Mount::bind(&src, true)], |dir| {
            let _open = fs::File::open(dir.join("f")).unwrap();
            panic!("boom");
        })
    });
    assert!(r.is_err());
    assert_eq!(
        fs::read_dir(&scratch).unwrap().count(),
        0,
        "mount point removed"
    );
    let busy = with_temp_mount_in(&scratch, &[Mount::bind(&src, true)], |dir| {
        fs::File::open(dir.join("f")).unwrap()
    })
    .unwrap();
    drop(busy);
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);
}
