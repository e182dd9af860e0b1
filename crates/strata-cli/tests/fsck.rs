//! `fsck` end to end: a store damaged on disk is reported, repaired, and restored by loading
//! the image again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Strata, pseudo_random};
use strata_testutil::{
    Compression, ImageBuilder, LayerBuilder, LayoutEntry, require_root, tar_dir, write_layout,
};

#[test]
fn damage_is_reported_repaired_and_restored_by_a_new_load() {
    if !require_root("unpacks overlay layers (whiteouts are device nodes)") {
        return;
    }
    let s = Strata::new();
    let img = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .file("data.bin", &pseudo_random(100_000, 7), 0o644)
                .build(Compression::Gzip),
        )
        .build();
    let layout = s.scratch("layout");
    write_layout(&layout, &[("fsck/img:1", LayoutEntry::Image(&img))]).unwrap();
    let archive = tar_dir(&layout).unwrap();
    s.ok_input(&["load"], &archive);
    let out = s.cmd(&["fsck", "--verify-content"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "a fresh store is clean: {out:?}");

    // Lose the layer's unpacked tree and leave a stray file in the content store.
    let snapshots = s.root().join("snapshots/overlayfs");
    let layer_dir = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("fs/data.bin").exists())
        .unwrap();
    std::fs::rename(layer_dir.join("fs"), layer_dir.join("lost")).unwrap();
    let stray = s.root().join("content/blobs/sha256").join("ab".repeat(32));
    std::fs::write(&stray, b"stray").unwrap();

    let out = s.cmd(&["fsck"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("problem") && l.contains("snapshot overlayfs/sha256:")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("orphan") && l.contains(&"ab".repeat(32))),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("fsck --repair"));

    let out = s
        .cmd(&["fsck", "--repair", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["Repaired"].is_string(), "{v}");
    }
    assert!(!stray.exists());
    // Loading the image again unpacks the layer again; the store is whole.
    s.ok_input(&["load"], &archive);
    let out = s.cmd(&["fsck", "--verify-content"]).output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    assert!(
        s.ok(&["snapshot", "ls"]).contains("sha256:"),
        "the layer is back"
    );
}
