//! Helpers for tests that run containers: root, runc and busybox, images loaded through an
//! OCI layout, and polling.

use std::time::{Duration, Instant};

use strata_testutil::{
    Compression, ImageBuilder, LayoutEntry, busybox_layer, require_root, require_tool, tar_dir,
    write_layout,
};

use super::Strata;

/// Root, runc and busybox-static, or why the test skips.
pub fn ready() -> bool {
    require_root("mounts overlays and runs containers")
        && require_tool("runc")
        && require_tool("busybox")
}

/// Loads `images` (name, image) into the store through an OCI layout.
pub fn load(s: &Strata, images: &[(&str, &strata_testutil::Image)]) {
    let dir = s.scratch("layout");
    let entries: Vec<(&str, LayoutEntry<'_>)> = images
        .iter()
        .map(|(n, i)| (*n, LayoutEntry::Image(i)))
        .collect();
    write_layout(&dir, &entries).unwrap();
    let tar = tar_dir(&dir).unwrap();
    s.ok_input(&["load"], &tar);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `busybox:latest` (busybox-static, `CMD sh`) in the store; false if busybox is missing.
pub fn busybox(s: &Strata) -> bool {
    let Some(layer) = busybox_layer() else {
        return false;
    };
    let img = ImageBuilder::new()
        .layer(layer.build(Compression::Gzip))
        .config(|c| c["config"]["Cmd"] = serde_json::json!(["sh"]))
        .build();
    load(s, &[("busybox:latest", &img)]);
    true
}

/// A fresh store with `busybox:latest` loaded, or `None` when the test skips (see [`ready`]).
pub fn busybox_store() -> Option<Strata> {
    if !ready() {
        return None;
    }
    let s = Strata::new();
    busybox(&s).then_some(s)
}

/// Runs `strata args`, returning (exit code, stdout, stderr).
pub fn run(s: &Strata, args: &[&str]) -> (i32, String, String) {
    let out = s.run_input(args, b"");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `f` every 50 ms until it holds; panics after `timeout`.
pub fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
