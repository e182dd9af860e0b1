//! The conformance suite on btrfs, each case on its own loopback btrfs filesystem.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

use std::fs;

fn env(_needs_root: bool) -> Option<conformance::Env> {
    if !strata_testutil::require_root("mounts a loopback btrfs")
        || !strata_testutil::require_tool("mkfs.btrfs")
    {
        return None;
    }
    let t = tempfile::tempdir().unwrap();
    let fs = strata_testutil::LoopBtrfs::create(t.path(), 1 << 30).unwrap();
    let dir = fs.path().to_owned();
    // The loop filesystem unmounts before its temporary directory is removed.
    Some(conformance::Env::new(
        "btrfs",
        &dir,
        vec![Box::new(fs), Box::new(t)],
    ))
}

conformance::suite!(env);

/// A temporary directory on a filesystem that is not btrfs: the usual one, else /dev/shm.
fn tempdir_not_on_btrfs() -> Option<tempfile::TempDir> {
    const BTRFS_SUPER_MAGIC: u64 = 0x9123_683e;
    [std::env::temp_dir(), "/dev/shm".into()]
        .into_iter()
        .filter(|d| rustix::fs::statfs(d).is_ok_and(|st| st.f_type as u64 != BTRFS_SUPER_MAGIC))
        .find_map(|d| tempfile::tempdir_in(d).ok())
}

#[test]
fn refuses_a_root_not_on_btrfs() {
    let Some(t) = tempdir_not_on_btrfs() else {
        strata_testutil::skip("no directory off btrfs: the temp dir and /dev/shm are on btrfs");
        return;
    };
    let db = strata_metadata::Db::open(&t.path().join("m.db")).unwrap();
    let Err(err) = strata_snapshot::open("btrfs", t.path(), std::sync::Arc::new(db)) else {
        panic!("btrfs opened on {}, which is not btrfs", t.path().display());
    };
    assert_eq!(err.kind(), strata_types::ErrorKind::FailedPrecondition);
    assert!(
        err.to_string().contains("is not on a btrfs filesystem"),
        "{err}"
    );
}

/// Committed snapshots are read-only subvolumes; active ones writable snapshots of them.
#[test]
fn committed_subvolumes_are_read_only() {
    use std::os::unix::fs::MetadataExt;

    let Some(env) = env(true) else { return };
    let sn = &*env.sn;
    let none = strata_snapshot::Labels::new();
    sn.prepare("a", None, &none).unwrap();
    let dir = sn.apply_target("a").unwrap().dir;
    assert_eq!(fs::metadata(&dir).unwrap().ino(), 256, "a subvolume");
    fs::write(dir.join("f"), b"x").unwrap();
    sn.commit("c", "a", &none).unwrap();
    let err = fs::write(dir.join("g"), b"y").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(30), "EROFS: {err}");
    sn.prepare("child", Some("c"), &none).unwrap();
    let child = sn.apply_target("child").unwrap().dir;
    assert_eq!(fs::metadata(&child).unwrap().ino(), 256, "a subvolume");
    fs::write(child.join("g"), b"y").unwrap();
    assert_eq!(fs::read(child.join("f")).unwrap(), b"x");
    // Removing a committed (read-only) snapshot destroys its subvolume.
    sn.remove("child").unwrap();
    sn.remove("c").unwrap();
    assert!(!dir.exists());
    assert!(sn.cleanup().unwrap().is_empty());
}
