//! The conformance suite on the native (full copy) snapshotter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

fn env(needs_root: bool) -> Option<conformance::Env> {
    if needs_root && !strata_testutil::require_root("bind mounts and chown") {
        return None;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_owned();
    Some(conformance::Env::new("native", &dir, vec![Box::new(t)]))
}

conformance::suite!(env);

/// Special files, xattrs and setuid bits survive the copy a child snapshot starts from.
#[test]
fn child_copies_special_files_and_xattrs() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    let Some(env) = env(true) else { return };
    let sn = &*env.sn;
    let none = strata_snapshot::Labels::new();
    sn.prepare("a", None, &none).unwrap();
    let dir = sn.apply_target("a").unwrap().dir;
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("whiteout"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    conformance::create_file(&dir, "suid", b"#!/bin/sh\n", 0o755);
    conformance::set_owner(&dir, "suid", 0, 5);
    // After the chown, which clears setuid.
    std::fs::set_permissions(
        dir.join("suid"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    conformance::create_dir(&dir, "opaque", 0o755);
    rustix::fs::lsetxattr(
        dir.join("opaque"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    sn.commit("c", "a", &none).unwrap();
    sn.prepare("child", Some("c"), &none).unwrap();
    let copy = sn.apply_target("child").unwrap().dir;
    let w = std::fs::symlink_metadata(copy.join("whiteout")).unwrap();
    assert!(w.file_type().is_char_device() && w.rdev() == 0);
    assert!(
        std::fs::symlink_metadata(copy.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let s = std::fs::metadata(copy.join("suid")).unwrap();
    assert_eq!((s.mode() & 0o7777, s.uid(), s.gid()), (0o4755, 0, 5));
    let mut buf = [0u8; 8];
    let n = rustix::fs::lgetxattr(copy.join("opaque"), "trusted.overlay.opaque", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
}

/// Apply targets say whether commits sync, so unpackers start writeback only when it pays.
#[test]
fn apply_targets_say_whether_commits_sync() {
    for sync_commits in [true, false] {
        let t = tempfile::tempdir().unwrap();
        let db = strata_metadata::Db::open(&t.path().join("metadata.db")).unwrap();
        let opts = strata_snapshot::Options { sync_commits };
        let sn =
            strata_snapshot::open_with("native", t.path(), std::sync::Arc::new(db), &opts).unwrap();
        sn.prepare("a", None, &strata_snapshot::Labels::new())
            .unwrap();
        assert_eq!(sn.apply_target("a").unwrap().synced, sync_commits);
        sn.commit("c", "a", &strata_snapshot::Labels::new())
            .unwrap();
    }
    assert!(strata_snapshot::Options::default().sync_commits);
}
