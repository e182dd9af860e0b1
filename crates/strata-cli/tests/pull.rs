//! `strata pull` against the real CNCF distribution registry: output, platforms and
//! attestations, layers that need their parents, shared work between concurrent pulls,
//! corrupt blobs, kill -9 and resume, and the errors users see.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Strata, chains};
use strata_testutil::{
    Compression, Image, ImageBuilder, LayerBuilder, Registry, build_index, push_image, push_index,
};

fn gate() -> Option<Registry> {
    if !strata_testutil::require_root("unpacks layers with their owners")
        || !strata_testutil::require_tool("docker-registry")
    {
        return None;
    }
    Some(Registry::start().unwrap())
}

fn image(arch: &str, seed: &str) -> Image {
    ImageBuilder::new()
        .platform("linux", arch, None)
        .layer(
            LayerBuilder::new()
                .dir("etc", 0o755)
                .file("etc/os-release", format!("ID={seed}\n").as_bytes(), 0o644)
                .dir("bin", 0o755)
                .file("bin/tool", seed.as_bytes(), 0o755)
                .build(Compression::Gzip),
        )
        .layer(
            LayerBuilder::new()
                .dir("etc", 0o755)
                .file("etc/motd", format!("{seed} {arch}\n").as_bytes(), 0o644)
                .whiteout("bin/tool")
                .build(Compression::Zstd),
        )
        .build()
}

fn snapshots(s: &Strata) -> String {
    s.ok(&["snapshot", "ls"])
}

fn content(s: &Strata) -> String {
    s.ok(&["content", "ls", "-q"])
}

#[test]
fn pull_prints_like_docker_and_a_second_pull_finds_everything() {
    let Some(reg) = gate() else { return };
    let img = image("amd64", "one");
    push_image(&reg.url(), "demo/one", "v1", &img).unwrap();
    for sn in ["overlayfs", "native"] {
        let s = Strata::new();
        let name = format!("{}/demo/one:v1", reg.addr());
        let out = s.ok(&["--snapshotter", sn, "pull", &name]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "v1: Pulling from demo/one", "{out}");
        for layer in &img.layers {
            let short = &layer.blob.digest["sha256:".len()..][..12];
            assert!(out.contains(&format!("{short}: Pull complete")), "{out}");
        }
        assert!(out.contains(&format!("Digest: {}", img.digest())), "{out}");
        assert!(
            out.contains(&format!("Status: Downloaded newer image for {name}")),
            "{out}"
        );
        assert_eq!(lines.last().unwrap(), &name.as_str(), "{out}");
        let snaps = s.ok(&["--snapshotter", sn, "snapshot", "ls"]);
        for chain in chains(&img) {
            assert!(snaps.contains(&format!("{chain} ")), "{snaps}");
        }
        assert!(!snaps.contains("Active"), "no unpack leftovers: {snaps}");
        let blobs = content(&s);
        for blob in img.blobs() {
            assert!(
                blobs.contains(&blob.digest),
                "{} missing: {blobs}",
                blob.digest
            );
        }
        assert!(blobs.contains(img.digest()), "{blobs}");
        // Where a push can mount from, and the garbage collector's edges.
        let info = s.ok(&["content", "info", img.digest()]);
        assert!(
            // Keyed by host without the port, as containerd keys it.
            info.contains("\"containerd.io/distribution.source.127.0.0.1\": \"demo/one\""),
            "{info}"
        );
        assert!(info.contains("containerd.io/gc.ref.content.l.1"), "{info}");
        assert!(s.ok(&["content", "active"]).lines().count() <= 1);

        let again = s.ok(&["--snapshotter", sn, "pull", &name]);
        assert_eq!(again.matches(": Already exists").count(), 2, "{again}");
        assert!(
            again.contains(&format!("Status: Image is up to date for {name}")),
            "{again}"
        );
        assert_eq!(
            s.ok(&["--snapshotter", sn, "pull", "-q", &name]),
            format!("{name}\n")
        );
        // A lone manifest is checked against --platform, as Docker does.
        let err = s.fails(
            &[
                "--snapshotter",
                sn,
                "pull",
                "--platform",
                "linux/arm64",
                &name,
            ],
            b"",
        );
        assert!(
            err.contains(
                "does not match the specified platform: wanted linux/arm64, actual: linux/amd64"
            ),
            "{err}"
        );
    }
}

#[test]
fn platforms_and_attestations() {
    let Some(reg) = gate() else { return };
    let (amd, arm) = (image("amd64", "multi"), image("arm64", "multi"));
    let index = build_index(vec![amd.clone(), arm.clone()], Some(0));
    push_index(&reg.url(), "demo/multi", "latest", &index).unwrap();
    let name = format!("{}/demo/multi", reg.addr());
    let attestation = &index.attestations[0];

    // The host's platform only (these machines are amd64), with its attestation as content.
    let s = Strata::new();
    let out = s.ok(&["pull", &name]);
    assert!(out.starts_with("Using default tag: latest\n"), "{out}");
    assert!(
        out.contains(&format!("Digest: {}", index.digest())),
        "{out}"
    );
    let snaps = snapshots(&s);
    assert!(snaps.contains(&chains(&amd)[1]), "{snaps}");
    assert!(!snaps.contains(&chains(&arm)[1]), "{snaps}");
    let blobs = content(&s);
    assert!(blobs.contains(index.digest()), "the index is kept");
    for blob in attestation.blobs() {
        assert!(
            blobs.contains(&blob.digest),
            "attestation blob {}",
            blob.digest
        );
    }
    assert!(blobs.contains(attestation.digest()));
    assert!(!blobs.contains(arm.digest()), "arm64 not fetched: {blobs}");

    // --platform picks arm64 (arm64 ≡ arm64/v8), and nothing of amd64.
    let s = Strata::new();
    s.ok(&["pull", "--platform", "linux/arm64/v8", &name]);
    let snaps = snapshots(&s);
    assert!(snaps.contains(&chains(&arm)[1]), "{snaps}");
    assert!(!snaps.contains(&chains(&amd)[1]), "{snaps}");
    assert!(
        !content(&s).contains(attestation.digest()),
        "its attestation is amd64's"
    );
    // The host's platform next, into the same store: the index keeps an edge to both.
    s.ok(&["pull", "-q", &name]);
    let info = s.ok(&["content", "info", index.digest()]);
    assert!(
        info.contains(arm.digest()) && info.contains(amd.digest()),
        "{info}"
    );

    // --all-platforms: both unpacked, the attestation stored and never unpacked.
    let s = Strata::new();
    s.ok(&["pull", "--all-platforms", &name]);
    let snaps = snapshots(&s);
    assert!(snaps.contains(&chains(&arm)[1]) && snaps.contains(&chains(&amd)[1]));
    // The base layer is the same in both: three snapshots.
    assert_eq!(snaps.lines().count(), 1 + 3, "{snaps}");
    assert!(content(&s).contains(attestation.digest()));
    // `images --tree` shows both platforms unpacked and the attestation as such; plain
    // `images` one row.
    let tree = s.ok(&["images", "--tree"]);
    assert!(
        tree.contains("linux/amd64") && tree.contains("linux/arm64"),
        "{tree}"
    );
    assert_eq!(tree.matches("unpacked").count(), 2, "{tree}");
    assert!(tree.contains("attestation for linux/amd64"), "{tree}");
    assert_eq!(s.ok(&["images", "-q"]).lines().count(), 1);

    // No match: the error names what was asked and what there is.
    let err = s.fails(&["pull", "--platform", "linux/s390x", &name], b"");
    assert!(
        err.contains("no matching manifest for linux/s390x")
            && err.contains("linux/amd64")
            && err.contains("linux/arm64"),
        "{err}"
    );
}

/// Layers whose parents matter to them (implied directories take the lower's metadata, a
/// hardlink to a file below) end up exactly as a sequential unpack makes them.
#[test]
fn layers_that_need_their_parents_match_a_load() {
    let Some(reg) = gate() else { return };
    let img = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .owner(7, 8)
                .dir("srv", 0o750)
                .dir("srv/data", 0o711)
                .file("srv/data/file", b"below", 0o640)
                .build(Compression::Gzip),
        )
        .layer(
            LayerBuilder::new()
                // srv and srv/data have no entries here: they come from the layer below.
                .file("srv/data/new", b"above", 0o644)
                .hardlink("srv/data/link", "srv/data/file")
                .build(Compression::Gzip),
        )
        .build();
    push_image(&reg.url(), "demo/parents", "latest", &img).unwrap();
    let pulled = Strata::new();
    pulled.ok(&[
        "pull",
        "--max-concurrent-downloads",
        "2",
        &format!("{}/demo/parents", reg.addr()),
    ]);

    let loaded = Strata::new();
    let layout = tempfile::tempdir().unwrap();
    strata_testutil::write_layout(
        layout.path(),
        &[(
            "demo/parents:latest",
            strata_testutil::LayoutEntry::Image(&img),
        )],
    )
    .unwrap();
    loaded.ok(&["load", "-i", layout.path().to_str().unwrap()]);

    let top = chains(&img).pop().unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (s, dir) in [(&pulled, &a), (&loaded, &b)] {
        s.ok(&[
            "snapshot",
            "view",
            "--target",
            dir.path().to_str().unwrap(),
            "v",
            &top,
        ]);
    }
    strata_testutil::assert_same_tree(a.path(), b.path(), &[]);
    for (s, dir) in [(&pulled, &a), (&loaded, &b)] {
        s.ok(&["snapshot", "unmount", dir.path().to_str().unwrap()]);
    }
}

#[test]
fn concurrent_pulls_of_one_image_share_the_work() {
    let Some(reg) = gate() else { return };
    let mut b = ImageBuilder::new();
    for i in 0..4 {
        b = b.layer(
            LayerBuilder::new()
                .file(&format!("l{i}"), &common::pseudo_random(4 << 20, i), 0o644)
                .build(Compression::Gzip),
        );
    }
    let img = b.build();
    push_image(&reg.url(), "demo/shared", "latest", &img).unwrap();
    let s = Strata::new();
    // Through a proxy that counts the requests.
    let proxy = strata_testutil::Proxy::start_blocking(&reg.addr());
    let name = format!("{}/demo/shared", proxy.host());
    let children: Vec<_> = (0..3)
        .map(|_| {
            s.cmd(&["pull", "-q", &name])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let snaps = snapshots(&s);
    assert_eq!(snaps.lines().count(), 1 + 4, "each layer once: {snaps}");
    assert!(!snaps.contains("Active"), "{snaps}");
    assert_eq!(content(&s).lines().count(), 4 + 2);
    assert_eq!(
        s.ok(&["content", "active"]).lines().count(),
        1,
        "no ingests left"
    );
    // Each layer crossed the network once: the other pulls waited and found it.
    for layer in &img.layers {
        let gets = proxy
            .requests()
            .iter()
            .filter(|l| {
                l.method == "GET" && l.path.ends_with(&format!("/blobs/{}", layer.blob.digest))
            })
            .count();
        assert_eq!(
            gets, 1,
            "layer {} downloaded {gets} times",
            layer.blob.digest
        );
    }
}

/// The registry's copy of a blob, on its disk.
fn registry_blob(reg: &Registry, digest: &str) -> PathBuf {
    let hex = &digest["sha256:".len()..];
    reg.storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

#[test]
fn a_corrupt_layer_fails_cleanly_and_a_good_one_pulls_after() {
    let Some(reg) = gate() else { return };
    let img = image("amd64", "corrupt");
    push_image(&reg.url(), "demo/corrupt", "latest", &img).unwrap();
    let layer = &img.layers[1].blob;
    let path = registry_blob(&reg, &layer.digest);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();

    let s = Strata::new();
    let name = format!("{}/demo/corrupt", reg.addr());
    let err = s.fails(&["pull", &name], b"");
    assert!(err.contains(&layer.digest), "names the blob: {err}");
    assert!(
        err.to_lowercase().contains("digest"),
        "says what is wrong: {err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    let snaps = snapshots(&s);
    assert!(!snaps.contains(&chains(&img)[1]), "{snaps}");
    assert!(!snaps.contains("Active"), "{snaps}");
    assert!(!content(&s).contains(&layer.digest));

    std::fs::write(&path, &good).unwrap();
    s.ok(&["pull", &name]);
    assert!(snapshots(&s).contains(&chains(&img)[1]));
}

#[test]
fn kill_9_mid_pull_then_pull_again() {
    let Some(reg) = gate() else { return };
    let img = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .file("big", &common::pseudo_random(96 << 20, 9), 0o644)
                .build(Compression::None),
        )
        .build();
    push_image(&reg.url(), "demo/big", "latest", &img).unwrap();
    let s = Strata::new();
    let name = format!("{}/demo/big", reg.addr());
    let mut child = s.cmd(&["pull", "-q", &name]).spawn().unwrap();
    // Kill it once the layer's ingest holds some bytes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let active = s.ok(&["content", "active"]);
        if active.lines().skip(1).any(|l| !l.contains(" 0B ")) || Instant::now() > deadline {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    s.ok(&["pull", "-q", &name]);
    let snaps = snapshots(&s);
    assert!(snaps.contains(&chains(&img)[0]), "{snaps}");
    // What the killed pull was unpacking stays, under its lease, for the collector.
    for line in snaps.lines().filter(|l| l.ends_with("Active")) {
        assert!(line.starts_with("extract-"), "{snaps}");
    }
    assert_eq!(s.ok(&["content", "active"]).lines().count(), 1);
}

#[test]
fn errors_name_the_reference() {
    let Some(reg) = gate() else { return };
    let s = Strata::new();
    let err = s.fails(&["pull", &format!("{}/demo/none:nope", reg.addr())], b"");
    assert!(err.contains("demo/none:nope"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // A port nothing listens on.
    let port = reg.port();
    drop(reg);
    let err = s.fails(&["pull", &format!("127.0.0.1:{port}/demo/x")], b"");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// On a terminal the layer lines are redrawn in place (cursor up, clear line), with a bar.
#[test]
fn on_a_terminal_progress_redraws_in_place() {
    let Some(reg) = gate() else { return };
    if !strata_testutil::require_tool("script") {
        return;
    }
    let img = image("amd64", "tty");
    push_image(&reg.url(), "demo/tty", "latest", &img).unwrap();
    let s = Strata::new();
    let cmd = format!(
        "{} --root {} pull {}/demo/tty",
        Strata::bin().display(),
        s.root().display(),
        reg.addr()
    );
    // util-linux `script` gives the command a pseudo-terminal.
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("\x1b[2K"), "{out:?}");
    assert!(
        out.contains("Downloading [") && out.contains("Pull complete"),
        "{out:?}"
    );
    assert!(out.contains("Status: Downloaded newer image"), "{out:?}");
}

/// A registry with basic auth: refused without credentials (naming the reference and what to
/// do), refused with wrong ones, pulled after `strata login`.
#[test]
fn pull_from_a_registry_with_basic_auth() {
    if !strata_testutil::require_root("unpacks layers with their owners")
        || !strata_testutil::require_tool("docker-registry")
    {
        return;
    }
    let reg = Registry::start_with_auth().unwrap();
    let addr = reg.addr();
    let img = image("amd64", "private");
    // Into the registry with strata itself (logged in), from a loaded layout.
    let pusher = Strata::new();
    let layout = tempfile::tempdir().unwrap();
    let name = format!("{addr}/private/app:1");
    strata_testutil::write_layout(
        layout.path(),
        &[(name.as_str(), strata_testutil::LayoutEntry::Image(&img))],
    )
    .unwrap();
    pusher.ok(&["load", "-q", "-i", layout.path().to_str().unwrap()]);
    let login = |s: &Strata, password: &str| {
        s.run_input(
            &[
                "login",
                "-u",
                strata_testutil::TEST_USER,
                "--password-stdin",
                &addr,
            ],
            format!("{password}\n").as_bytes(),
        )
    };
    assert!(
        login(&pusher, strata_testutil::TEST_PASSWORD)
            .status
            .success()
    );
    pusher.ok(&["push", "-q", &name]);

    let s = Strata::new();
    let err = s.fails(&["pull", &name], b"");
    assert!(err.contains("private/app"), "{err}");
    assert!(err.contains("strata login"), "says what to do: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!login(&s, "wrong").status.success());
    let err = s.fails(&["pull", &name], b"");
    assert!(err.contains("private/app"), "{err}");
    assert!(login(&s, strata_testutil::TEST_PASSWORD).status.success());
    s.ok(&["pull", "-q", &name]);
    assert!(snapshots(&s).contains(&chains(&img)[1]));
}
