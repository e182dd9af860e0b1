//! A registry that trickles a layer (a few bytes every tenth of a second: never slow enough
//! for the read timeout) fails the pull within the store's low-speed limit, with a message
//! naming the blob and the stall; what came through is kept, and the next pull resumes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Strata, chains};
use strata_testutil::{Compression, ImageBuilder, LayerBuilder, Proxy, Registry, push_image};

#[test]
fn a_trickling_layer_fails_at_the_low_speed_limit_and_the_next_pull_resumes() {
    if !strata_testutil::require_root("unpacks layers with their owners")
        || !strata_testutil::require_tool("docker-registry")
    {
        return;
    }
    let reg = Registry::start().unwrap();
    let img = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .dir("etc", 0o755)
                .file("etc/seed", b"stall", 0o644)
                .build(Compression::Gzip),
        )
        .layer(
            LayerBuilder::new()
                .file("blob", &common::pseudo_random(300 << 10, 17), 0o644)
                .build(Compression::Gzip),
        )
        .build();
    push_image(&reg.url(), "stall/app", "latest", &img).unwrap();
    let proxy = Proxy::start_blocking(&reg.addr());
    let name = format!("{}/stall/app:latest", proxy.host());
    let layer = img.layers[1].blob.digest.clone();

    let s = Strata::new();
    assert!(
        s.ok(&["system", "settings"]).contains("low-speed-limit"),
        "the setting is listed"
    );
    let bad = s.fails(&["system", "settings", "low-speed-time", "soon"], b"");
    assert!(bad.contains("low-speed-time"), "{bad}");
    s.ok(&["system", "settings", "low-speed-limit", "20KiB"]);
    s.ok(&["system", "settings", "low-speed-time", "2s"]);
    assert_eq!(s.ok(&["system", "settings", "low-speed-time"]).trim(), "2s");

    // 256 bytes every 100 ms: 2.5 KiB/s, an eighth of the limit.
    proxy.trickle(1, 256, Duration::from_millis(100), &layer);
    let started = Instant::now();
    let err = s.fails(&["pull", "-q", &name], b"");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "failed in {took:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&layer) && err.contains("stalled") && err.contains("20480 bytes/s"),
        "names the blob and the stall: {err}"
    );
    assert_eq!(s.ok(&["images", "-a", "-q"]), "", "no image recorded");

    let kept: u64 = s
        .ok(&["content", "active", "--format", "{{.Ref}} {{.Offset}}"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("pull-{layer} ")))
        .and_then(|o| o.parse().ok())
        .expect("the trickled part is kept");
    assert!(kept > 0);

    let from = proxy.requests().len();
    s.ok(&["pull", "-q", &name]);
    let snaps = s.ok(&["snapshot", "ls"]);
    for chain in chains(&img) {
        assert!(snaps.contains(&chain), "{chain}: {snaps}");
    }
    let gets: Vec<_> = proxy.requests()[from..]
        .iter()
        .filter(|l| l.method == "GET" && l.path.ends_with(&format!("/blobs/{layer}")))
        .cloned()
        .collect();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0].range, Some(format!("bytes={kept}-")), "resumed");
}
