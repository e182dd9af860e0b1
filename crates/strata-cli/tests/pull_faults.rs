//! `strata pull` through a fault-injecting proxy in front of the real registry (issue 4's
//! acceptance): a body cut or truncated mid-layer, connections dropped beyond the retry
//! budget, one flipped byte, server errors, a manifest over the size limit. Each ends in a
//! resumed and verified pull or in a clean one-line error, and the store is consistent
//! afterwards: no unpack leftovers, no image recorded by a failed pull.
//!
//! The binary's default retries apply (5, backoff from 200 ms doubling): the two tests that
//! exhaust them spend about 6 s waiting each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use common::{Strata, chains};
use strata_testutil::{
    Compression, Image, ImageBuilder, LayerBuilder, Logged, Proxy, ProxyHandle, Registry,
    push_image,
};

const SNAPSHOTTERS: [&str; 2] = ["overlayfs", "native"];

/// The registry with `repo:latest` (see [`image`]) and a proxy in front of it.
struct Setup {
    reg: Registry,
    proxy: ProxyHandle,
    img: Image,
    /// `<proxy>/<repo>:latest`.
    name: String,
}

fn setup(repo: &str, seed: u64) -> Option<Setup> {
    if !strata_testutil::require_root("unpacks layers with their owners")
        || !strata_testutil::require_tool("docker-registry")
    {
        return None;
    }
    let reg = Registry::start().unwrap();
    let img = image(seed);
    push_image(&reg.url(), repo, "latest", &img).unwrap();
    let proxy = Proxy::start_blocking(&reg.addr());
    let name = format!("{}/{repo}:latest", proxy.host());
    Some(Setup {
        reg,
        proxy,
        img,
        name,
    })
}

/// A small base layer and a 300 KiB one (incompressible, so its blob is that big too).
fn image(seed: u64) -> Image {
    ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .dir("etc", 0o755)
                .file("etc/seed", seed.to_string().as_bytes(), 0o644)
                .build(Compression::Gzip),
        )
        .layer(
            LayerBuilder::new()
                .dir("data", 0o755)
                .file("data/blob", &common::pseudo_random(300 << 10, seed), 0o644)
                .build(Compression::Gzip),
        )
        .build()
}

/// The big layer's digest: the one the faults hit.
fn big_layer(img: &Image) -> &str {
    let digest = &img.layers[1].blob.digest;
    assert!(img.layers[1].blob.size() > 300_000);
    digest
}

/// The GETs of blob `digest` the proxy saw from request `from` on.
fn blob_gets(proxy: &Proxy, digest: &str, from: usize) -> Vec<Logged> {
    proxy.requests()[from..]
        .iter()
        .filter(|l| l.method == "GET" && l.path.ends_with(&format!("/blobs/{digest}")))
        .cloned()
        .collect()
}

/// The refs and offsets of the store's ingests.
fn ingests(s: &Strata) -> Vec<(String, u64)> {
    s.ok(&["content", "active", "--format", "{{.Ref}} {{.Offset}}"])
        .lines()
        .map(|l| {
            let (r, o) = l.rsplit_once(' ').unwrap();
            (r.to_owned(), o.parse().unwrap())
        })
        .collect()
}

/// The offset of the ingest a failed pull kept for `layer`.
fn kept_ingest(s: &Strata, layer: &str) -> u64 {
    let all = ingests(s);
    all.iter()
        .find(|(r, _)| r == &format!("pull-{layer}"))
        .map(|(_, offset)| *offset)
        .unwrap_or_else(|| panic!("the ingest of {layer} is kept: {all:?}"))
}

/// The image is there, whole: every blob, every layer's snapshot, no unpack leftovers, no
/// ingest left.
fn assert_pulled(s: &Strata, sn: &str, img: &Image) {
    let snaps = s.ok(&["--snapshotter", sn, "snapshot", "ls"]);
    for chain in chains(img) {
        assert!(snaps.contains(&format!("{chain} ")), "{chain}: {snaps}");
    }
    assert!(!snaps.contains("Active"), "{snaps}");
    let blobs = s.content_digests();
    for blob in img.blobs().chain([&img.manifest]) {
        assert!(blobs.contains(&blob.digest), "{}: {blobs:?}", blob.digest);
    }
    assert_eq!(ingests(s), [], "no ingest left");
    assert_eq!(s.ok(&["images", "-q"]).lines().count(), 1);
}

/// After a failed pull: no active snapshot (nothing here was killed, so not even an
/// `extract-…` one), and no record of the image.
fn assert_consistent(s: &Strata, sn: &str) {
    let snaps = s.ok(&["--snapshotter", sn, "snapshot", "ls"]);
    assert!(!snaps.contains("Active"), "{snaps}");
    assert_eq!(s.ok(&["images", "-a", "-q"]), "", "no image recorded");
}

/// Runs a pull that must fail; returns its one-line error.
fn pull_fails(s: &Strata, sn: &str, name: &str) -> String {
    let err = s.fails(&["--snapshotter", sn, "pull", "-q", name], b"");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("strata: "), "{err}");
    err
}

#[test]
fn a_body_cut_or_truncated_mid_layer_is_resumed_with_a_range_request() {
    let Some(t) = setup("faults/cut", 1) else {
        return;
    };
    let layer = big_layer(&t.img);
    for sn in SNAPSHOTTERS {
        for truncate in [false, true] {
            let s = Strata::new();
            let from = t.proxy.requests().len();
            if truncate {
                t.proxy.truncate(1, 100_000, layer);
            } else {
                t.proxy.cut(1, 100_000, layer);
            }
            s.ok(&["--snapshotter", sn, "pull", "-q", &t.name]);
            assert_pulled(&s, sn, &t.img);
            let gets = blob_gets(&t.proxy, layer, from);
            assert_eq!(gets.len(), 2, "{sn} truncate={truncate}: {gets:?}");
            assert_eq!((gets[0].status, &gets[0].range), (200, &None), "{gets:?}");
            let resumed_at: u64 = gets[1]
                .range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|r| r.parse().ok())
                .unwrap_or_else(|| panic!("a ranged resume: {gets:?}"));
            assert!(resumed_at > 0 && resumed_at <= 100_000, "{gets:?}");
            assert_eq!(gets[1].status, 206, "{gets:?}");
        }
    }
}

#[test]
fn connections_dropped_beyond_the_retry_budget_fail_then_the_next_pull_resumes() {
    let Some(t) = setup("faults/drop", 2) else {
        return;
    };
    // The retries take ~6 s: both snapshotters at once, each through its own proxy.
    std::thread::scope(|scope| {
        for sn in SNAPSHOTTERS {
            let proxy = Proxy::start_blocking(&t.reg.addr());
            let (img, repo) = (&t.img, "faults/drop:latest");
            scope.spawn(move || drop_beyond_the_budget_then_resume(sn, &proxy, img, repo));
        }
    });
}

fn drop_beyond_the_budget_then_resume(sn: &str, proxy: &Proxy, img: &Image, repo: &str) {
    let name = format!("{}/{repo}", proxy.host());
    let layer = big_layer(img);
    let chain = chains(img).pop().unwrap();
    let s = Strata::new();
    // 1 try + 5 resumes of 20 kB each: far from the layer's 300 kB.
    proxy.cut(usize::MAX, 20_000, layer);
    let err = pull_fails(&s, sn, &name);
    proxy.cut(0, 0, "");
    assert!(
        err.contains(layer) && err.contains(&name),
        "names the blob and the reference: {err}"
    );
    assert_eq!(blob_gets(proxy, layer, 0).len(), 1 + 5, "{sn}");
    assert_consistent(&s, sn);
    assert!(
        !s.ok(&["--snapshotter", sn, "snapshot", "ls"])
            .contains(&chain),
        "{sn}"
    );
    // What came through is kept for the next pull.
    let kept = kept_ingest(&s, layer);
    assert!(kept > 0, "{sn}: {kept}");

    let from = proxy.requests().len();
    s.ok(&["--snapshotter", sn, "pull", "-q", &name]);
    assert_pulled(&s, sn, img);
    let gets = blob_gets(proxy, layer, from);
    assert_eq!(gets.len(), 1, "{sn}: {gets:?}");
    assert_eq!(
        gets[0].range,
        Some(format!("bytes={kept}-")),
        "{sn}: resumed from the ingest"
    );
    assert_eq!(gets[0].status, 206);
}

/// Asserts that nothing of `layer` (a blob whose download was corrupt) is in the store:
/// neither its snapshot `chain`, nor the blob, nor an ingest to resume.
fn assert_nothing_of(s: &Strata, sn: &str, layer: &str, chain: &str) {
    assert_consistent(s, sn);
    let snaps = s.ok(&["--snapshotter", sn, "snapshot", "ls"]);
    assert!(!snaps.contains(chain), "{sn}: {snaps}");
    assert!(!s.content_digests().iter().any(|d| d == layer), "{sn}");
    assert!(
        !ingests(s)
            .iter()
            .any(|(r, _)| r == &format!("pull-{layer}")),
        "{sn}: the corrupt download is thrown away: {:?}",
        ingests(s)
    );
}

#[test]
fn a_flipped_byte_fails_the_digest_check_and_keeps_nothing_of_the_layer() {
    let Some(t) = setup("faults/flip", 3) else {
        return;
    };
    let chains = chains(&t.img);
    let big = &t.img.layers[1].blob;
    let small = &t.img.layers[0].blob;
    // In the middle and at the very end of the big layer; in the small one below it, which
    // fails the pull while the big one may be unpacked already (and must then go).
    let cases = [
        (big, 150_000, &chains[1]),
        (big, big.size() as usize - 1, &chains[1]),
        (small, small.size() as usize / 2, &chains[0]),
    ];
    for sn in SNAPSHOTTERS {
        for (blob, offset, chain) in cases {
            let layer = &blob.digest;
            let s = Strata::new();
            t.proxy.flip(1, offset, layer);
            let err = pull_fails(&s, sn, &t.name);
            assert!(
                err.contains("digest mismatch") && err.contains(&format!("expected {layer}")),
                "{sn} at {offset}: {err}"
            );
            assert_nothing_of(&s, sn, layer, chain);

            s.ok(&["--snapshotter", sn, "pull", "-q", &t.name]);
            assert_pulled(&s, sn, &t.img);
        }
    }
}

/// A resumed download cannot be checked as it streams (the stream did not see the start):
/// the store's commit catches the flipped byte, throws the whole ingest away, and the next
/// pull starts over from the first byte.
#[test]
fn a_flipped_byte_after_a_resume_is_caught_at_commit() {
    let Some(t) = setup("faults/flip-resumed", 6) else {
        return;
    };
    let layer = big_layer(&t.img);
    let chain = chains(&t.img).pop().unwrap();
    for sn in SNAPSHOTTERS {
        let s = Strata::new();
        // Cut after 100 kB, and refuse the resume (a 4xx is not retried): a quick failure
        // that keeps the ingest.
        t.proxy.cut(1, 100_000, layer);
        t.proxy.faults.fail_skip.store(1, Ordering::SeqCst);
        t.proxy.fail(1, 400, layer, Some("GET"));
        let err = pull_fails(&s, sn, &t.name);
        assert!(err.contains("400"), "{err}");
        assert_consistent(&s, sn);
        let kept = kept_ingest(&s, layer);
        assert!(kept > 0 && kept <= 100_000, "{sn}: {kept}");

        t.proxy.flip(1, 1000, layer);
        let from = t.proxy.requests().len();
        let err = pull_fails(&s, sn, &t.name);
        assert!(
            err.contains("digest mismatch") && err.contains(&format!("expected {layer}")),
            "{sn}: {err}"
        );
        let gets = blob_gets(&t.proxy, layer, from);
        assert_eq!(gets.len(), 1, "{gets:?}");
        assert_eq!(gets[0].range, Some(format!("bytes={kept}-")), "resumed");
        assert_nothing_of(&s, sn, layer, &chain);

        let from = t.proxy.requests().len();
        s.ok(&["--snapshotter", sn, "pull", "-q", &t.name]);
        assert_pulled(&s, sn, &t.img);
        let gets = blob_gets(&t.proxy, layer, from);
        assert_eq!(gets.len(), 1, "{gets:?}");
        assert_eq!(gets[0].range, None, "started over");
    }
}

#[test]
fn server_errors_are_retried_within_the_budget_and_fail_cleanly_beyond() {
    let Some(t) = setup("faults/500", 4) else {
        return;
    };
    let layer = big_layer(&t.img);
    let s = Strata::new();
    t.proxy.fail(3, 500, layer, Some("GET"));
    let from = t.proxy.requests().len();
    s.ok(&["pull", "-q", &t.name]);
    assert_pulled(&s, "overlayfs", &t.img);
    let statuses: Vec<u16> = blob_gets(&t.proxy, layer, from)
        .iter()
        .map(|l| l.status)
        .collect();
    assert_eq!(statuses, [500, 500, 500, 200]);

    let s = Strata::new();
    t.proxy.fail(usize::MAX, 500, layer, Some("GET"));
    let from = t.proxy.requests().len();
    let err = pull_fails(&s, "overlayfs", &t.name);
    t.proxy.fail(0, 500, "", None);
    assert!(
        err.contains(&t.name) && err.contains(layer) && err.contains("500"),
        "{err}"
    );
    assert_eq!(blob_gets(&t.proxy, layer, from).len(), 1 + 5);
    assert_consistent(&s, "overlayfs");
    s.ok(&["pull", "-q", &t.name]);
    assert_pulled(&s, "overlayfs", &t.img);
}

#[test]
fn a_manifest_over_the_size_limit_is_refused_and_nothing_recorded() {
    let Some(t) = setup("faults/big", 5) else {
        return;
    };
    for chunked in [false, true] {
        let s = Strata::new();
        t.proxy.oversize_manifests(usize::MAX, chunked);
        let err = pull_fails(&s, "overlayfs", &t.name);
        t.proxy.oversize_manifests(0, false);
        assert!(
            err.contains(&t.name) && err.contains("the limit is 4194304"),
            "chunked={chunked}: {err}"
        );
        if !chunked {
            assert!(err.contains("manifest of 5242880 bytes refused"), "{err}");
        }
        assert_consistent(&s, "overlayfs");
        assert_eq!(s.content_digests(), Vec::<String>::new());
        assert_eq!(
            s.ok(&["snapshot", "ls"]).lines().count(),
            1,
            "a header only"
        );
    }
}
