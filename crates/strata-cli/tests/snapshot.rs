//! `strata snapshot`: the snapshotter driven through the CLI, with real mounts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;

use common::Strata;
use serde_json::Value;

fn lifecycle(snapshotter: &str) {
    if !strata_testutil::require_root("mounts snapshots") {
        return;
    }
    let s = Strata::new();
    let sn = |args: &[&str]| {
        let mut all = vec!["--snapshotter", snapshotter, "snapshot"];
        all.extend_from_slice(args);
        s.ok(&all)
    };
    let mnt = tempfile::tempdir().unwrap();
    let target = mnt.path().to_str().unwrap();

    // A base layer: prepare, mount, write, unmount, commit.
    sn(&["prepare", "--target", target, "extract-base"]);
    fs::write(mnt.path().join("base.txt"), b"base").unwrap();
    fs::create_dir(mnt.path().join("etc")).unwrap();
    fs::write(mnt.path().join("etc/gone"), b"x").unwrap();
    sn(&["unmount", target]);
    sn(&["commit", "--label", "layer=base", "base", "extract-base"]);

    // A container-like child on it.
    let mounts = sn(&["prepare", "--mounts", "ctr", "base"]);
    if snapshotter == "overlayfs" {
        assert!(
            mounts.starts_with("mount -t overlay overlay TARGET -o "),
            "{mounts}"
        );
        assert!(mounts.contains("lowerdir="), "{mounts}");
    } else {
        assert!(mounts.starts_with("mount -t bind "), "{mounts}");
    }
    sn(&["mount", target, "ctr"]);
    assert_eq!(fs::read(mnt.path().join("base.txt")).unwrap(), b"base");
    fs::write(mnt.path().join("hello"), b"hello").unwrap();
    fs::remove_file(mnt.path().join("etc/gone")).unwrap();
    sn(&["unmount", target]);

    // The parent is unchanged, seen through a read-only view.
    sn(&["view", "--target", target, "look", "base"]);
    assert!(
        mnt.path().join("etc/gone").exists(),
        "writes in a child never reach the parent"
    );
    assert!(!mnt.path().join("hello").exists());
    assert!(
        fs::write(mnt.path().join("nope"), b"").is_err(),
        "views are read-only"
    );
    sn(&["unmount", target]);

    let rows: Vec<Value> = sn(&["ls", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["Key"].as_str().unwrap().into(),
                r["Parent"].as_str().unwrap().into(),
                r["Kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("base".into(), "".into(), "Committed".into()),
            ("ctr".into(), "base".into(), "Active".into()),
            ("look".into(), "base".into(), "View".into())
        ]
    );
    assert_eq!(sn(&["ls", "-q", "--filter", "kind=active"]), "ctr\n");
    let info: Value = serde_json::from_str(&sn(&["info", "base"])).unwrap();
    assert_eq!(info[0]["Labels"]["layer"], "base");

    let usage: Vec<Value> = sn(&["usage", "--format", "json", "ctr"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        usage[0]["SizeBytes"].as_u64().unwrap() > 0 && usage[0]["Inodes"].as_u64().unwrap() >= 2,
        "{usage:?}"
    );

    let err = s.fails(
        &["--snapshotter", snapshotter, "snapshot", "rm", "base"],
        b"",
    );
    assert!(err.contains("has 2 child snapshot(s)"), "{err}");
    sn(&["rm", "ctr", "look"]);
    sn(&["rm", "base"]);
    assert!(sn(&["ls", "-q"]).is_empty());
    sn(&["cleanup"]);
    let left = fs::read_dir(s.root().join("snapshots").join(snapshotter))
        .unwrap()
        .count();
    assert_eq!(left, 0, "nothing left on disk");
}

#[test]
fn overlayfs_lifecycle() {
    lifecycle("overlayfs");
}

#[test]
fn native_lifecycle() {
    lifecycle("native");
}

#[test]
fn btrfs_off_btrfs_is_a_clear_error() {
    let s = Strata::new();
    let err = s.fails(&["--snapshotter", "btrfs", "snapshot", "ls"], b"");
    assert!(err.contains("btrfs"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Commands that do not touch snapshots still work with that setting.
    s.ok(&["--snapshotter", "btrfs", "info"]);
}

#[test]
fn bad_filter_is_refused() {
    let s = Strata::new();
    let err = s.fails(&["snapshot", "ls", "--filter", "colour=blue"], b"");
    assert!(
        err.contains("known filters are kind, parent and label"),
        "{err}"
    );
}
