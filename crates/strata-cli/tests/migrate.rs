//! `strata migrate` from a Docker overlay2 data root written by the fixture generator
//! (`strata_testutil::write_docker_root`), as dockerd lays one out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::Strata;
use strata_testutil::{
    Compression, Image, ImageBuilder, LayerBuilder, busybox_layer, scan_tree, write_docker_root,
};

/// Five images: a busybox base, an app on it (two tags), a second app sharing the base, one
/// whose layers have whiteouts, an opaque directory, hardlinks, symlinks and a long name, a
/// plain two-layer one, and a dangling one.
fn five_images() -> Option<Vec<(Vec<&'static str>, Image)>> {
    let base = busybox_layer()?.build(Compression::Gzip);
    let app = ImageBuilder::new()
        .layer(base.clone())
        .history("ADD busybox /")
        .layer(
            LayerBuilder::new()
                .dir("app", 0o755)
                .file("app/hello.sh", b"#!/bin/sh\necho hello world\n", 0o755)
                .build(Compression::Gzip),
        )
        .history("COPY . /app")
        .config(|c| c["config"]["Cmd"] = serde_json::json!(["/app/hello.sh"]))
        .build();
    let other = ImageBuilder::new()
        .layer(base.clone())
        .layer(
            LayerBuilder::new()
                .owner(1000, 1000)
                .file("srv/data", &common::pseudo_random(300_000, 7), 0o600)
                .build(Compression::Gzip),
        )
        .config(|c| c["config"]["Cmd"] = serde_json::json!(["cat", "/srv/data"]))
        .build();
    let long = format!("deep/{}/file", "d".repeat(120));
    let tricky = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .dir("etc", 0o755)
                .file("etc/os", b"first", 0o644)
                .dir("var/cache", 0o755)
                .file("var/cache/old", b"old", 0o644)
                .file("bin/tool", b"#!tool", 0o755)
                .hardlink("bin/tool-link", "bin/tool")
                .symlink("bin/alias", "tool")
                .file(&long, b"long name", 0o644)
                .build(Compression::Gzip),
        )
        .layer(
            LayerBuilder::new()
                .whiteout("etc/os")
                .opaque("var/cache")
                .file("var/cache/new", b"new", 0o644)
                .file("empty", b"", 0o644)
                .build(Compression::None),
        )
        .build();
    // Gzip only: Debian's dockerd (20.10) loads no zstd layers.
    let plain = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .dir("etc", 0o755)
                .file("etc/os", b"plain", 0o644)
                .build(Compression::Gzip),
        )
        .layer(
            LayerBuilder::new()
                .file("hello", b"hi", 0o644)
                .whiteout("etc/os")
                .build(Compression::Gzip),
        )
        .build();
    let dangling = ImageBuilder::new()
        .layer(base)
        .history("a build that lost its tag")
        .build();
    Some(vec![
        (vec!["app:1", "app:latest"], app),
        (vec!["localhost:5000/team/other:2.0"], other),
        (vec!["tricky:1"], tricky),
        (vec![], dangling),
        (vec!["plain:1"], plain),
    ])
}

fn write_fixture(root: &Path, images: &[(Vec<&str>, Image)], containers: usize) {
    let refs: Vec<(&[&str], &Image)> = images.iter().map(|(n, i)| (n.as_slice(), i)).collect();
    write_docker_root(root, &refs, containers).unwrap();
}

fn config_id(img: &Image) -> String {
    strata_testutil::sha256_digest(&img.config.bytes)
}

fn diff_ids(img: &Image) -> Vec<String> {
    img.layers.iter().map(|l| l.diff_id.clone()).collect()
}

/// Every entry of the tree (type, mode, owner, content hash, links, xattrs) plus its mtime:
/// what "the source is unchanged" is checked against.
fn fingerprint(root: &Path) -> BTreeMap<String, String> {
    scan_tree(root, &[])
        .unwrap()
        .into_iter()
        .map(|(path, entry)| {
            let meta = std::fs::symlink_metadata(root.join(&path)).unwrap();
            let mtime = (meta.mtime(), meta.mtime_nsec());
            (path, format!("{entry:?} {mtime:?}"))
        })
        .collect()
}

/// Containers run from the migrated app (as `app`) and other images, owners intact.
fn containers_run(s: &Strata, app: &str) {
    assert_eq!(s.ok(&["run", "--rm", app]), "hello world\n", "{app} runs");
    let data = s.ok(&[
        "run",
        "--rm",
        "localhost:5000/team/other:2.0",
        "sh",
        "-c",
        "stat -c '%u:%g %s' /srv/data",
    ]);
    assert_eq!(data.trim(), "1000:1000 300000");
}

#[test]
fn migrates_five_images_keeping_ids_and_layers() {
    if !strata_testutil::require_root("writes overlay whiteouts and unpacks layers with owners") {
        return;
    }
    let Some(images) = five_images() else {
        return;
    };
    let s = Strata::new();
    let docker = tempfile::tempdir().unwrap();
    write_fixture(docker.path(), &images, 0);
    let from = docker.path().to_str().unwrap();
    let before = fingerprint(docker.path());

    let plan = s.ok(&["migrate", "--from", from, "--dry-run"]);
    assert!(plan.starts_with("Would migrate 5 images from"), "{plan}");
    for name in ["app:1, app:latest", "tricky:1", "<none>", "plain:1"] {
        assert!(plan.contains(name), "{name} in {plan}");
    }
    assert_eq!(
        s.ok(&["images", "-q", "-a"]),
        "",
        "a dry run changes nothing"
    );

    let run = s.cmd(&["migrate", "--from", from]).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    // Same filesystem: the layer files are hardlinked (or, where it can, cloned), not copied.
    assert!(
        stderr.contains("of files shared with the source"),
        "{stderr}"
    );
    let out = String::from_utf8(run.stdout).unwrap();
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    let dangling_id = format!("Migrated image ID: {}", config_id(&images[3].1));
    let mut want = vec![
        "Migrated image: app:1",
        "Migrated image: app:latest",
        "Migrated image: localhost:5000/team/other:2.0",
        "Migrated image: plain:1",
        "Migrated image: tricky:1",
        dangling_id.as_str(),
    ];
    want.sort_unstable();
    assert_eq!(lines, want, "{out}");

    // Names, Docker image IDs and diffIDs are the source's.
    for (names, img) in &images {
        for name in names {
            let inspect = s.ok(&["image", "inspect", name]);
            let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
            assert_eq!(v[0]["Id"], config_id(img), "{name}");
            let layers: Vec<String> = v[0]["RootFS"]["Layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(layers, diff_ids(img), "{name}");
        }
    }
    // The short ID `images` shows resolves, as it did under Docker.
    let app_id = config_id(&images[0].1);
    let short = &app_id[7..19];
    assert!(s.ok(&["images", "-q"]).lines().any(|l| l == short));
    let by_id = s.ok(&["image", "inspect", "--format", "{{.Id}}", short]);
    assert_eq!(by_id.trim(), app_id);
    let dangling = s.ok(&["images", "-a", "--filter", "dangling=true", "-q"]);
    assert_eq!(dangling.trim(), &config_id(&images[3].1)[7..19]);

    containers_run(&s, "app:1");
    // A container writing to a file shared with the source writes its own copy.
    s.ok(&[
        "run",
        "--rm",
        "app:1",
        "sh",
        "-c",
        "echo changed >> /app/hello.sh; chmod 600 /app/hello.sh",
    ]);
    assert_eq!(s.ok(&["run", "--rm", "app:1"]), "hello world\n");

    // Nothing is stored twice: the layer blobs are rebuilt on demand, not kept.
    let content = s.ok(&["content", "ls"]);
    let discarded = content
        .lines()
        .filter(|l| l.contains("(discarded)"))
        .count();
    assert_eq!(discarded, 7, "one per distinct layer:\n{content}");
    s.ok(&["fsck"]);

    // Save rebuilds the exact layers: a fresh store loads the archive (every blob verified
    // against its digest) with the same diffIDs.
    let archive = s.scratch("save").join("tricky.tar");
    s.ok(&["save", "-o", archive.to_str().unwrap(), "tricky:1", "app:1"]);
    let fresh = Strata::new();
    fresh.ok(&["load", "-i", archive.to_str().unwrap()]);
    let layers = fresh.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        "tricky:1",
    ]);
    assert_eq!(
        serde_json::from_str::<Vec<String>>(layers.trim()).unwrap(),
        diff_ids(&images[2].1)
    );
    assert_eq!(fresh.ok(&["run", "--rm", "app:1"]), "hello world\n");

    // Migrating again finds everything here.
    let err = s.cmd(&["migrate", "--from", from]).output().unwrap();
    assert!(err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("(0 new layers)"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );

    // rmi and prune take migrated images away like any other.
    assert_eq!(
        fingerprint(docker.path()),
        before,
        "the source is untouched"
    );
}

#[test]
fn threshold_refuses_containers_and_big_stores() {
    if !strata_testutil::require_root("writes overlay whiteouts and unpacks layers with owners") {
        return;
    }
    let images: Vec<(Vec<&str>, Image)> = ["a", "b", "c"]
        .iter()
        .map(|t| (vec![], common::image("amd64", t)))
        .collect();
    let images: Vec<(Vec<&str>, Image)> = images
        .into_iter()
        .zip(["a:1", "b:1", "c:1"])
        .map(|((_, i), n)| (vec![n], i))
        .collect();
    let s = Strata::new();
    let with_container = tempfile::tempdir().unwrap();
    write_fixture(with_container.path(), &images, 1);
    let from = with_container.path().to_str().unwrap();
    let err = s.fails(&["migrate", "--from", from, "--threshold", "10"], b"");
    assert!(err.contains("refusing to migrate"), "{err}");
    assert!(err.contains("has 1 container"), "{err}");
    assert_eq!(s.ok(&["images", "-q", "-a"]), "");

    let docker = tempfile::tempdir().unwrap();
    write_fixture(docker.path(), &images, 0);
    let from = docker.path().to_str().unwrap();
    let err = s.fails(&["migrate", "--from", from, "--threshold", "2"], b"");
    assert!(
        err.contains("has 3 images, more than the threshold of 2"),
        "{err}"
    );
    let err = s.fails(
        &["migrate", "--from", from, "--threshold", "1B", "--dry-run"],
        b"",
    );
    assert!(
        err.contains("of layers, more than the threshold of 1B"),
        "{err}"
    );
    let out = s.run_input(&["migrate", "--from", from, "--threshold", "5XB"], b"");
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("want a number of images"), "{err}");
    assert_eq!(
        s.ok(&["images", "-q", "-a"]),
        "",
        "a refusal changes nothing"
    );

    s.ok(&["migrate", "--from", from, "--threshold", "3", "--dry-run"]);
    let out = s
        .cmd(&["migrate", "--from", from, "--threshold", "1GB", "--copy"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("shared with the source"),
        "--copy copies: {stderr}"
    );
    assert_eq!(s.ok(&["images", "-q"]).lines().count(), 3);

    // Without a threshold, containers do not stop a migration; they stay behind.
    let other = Strata::new();
    let out = other
        .cmd(&["migrate", "--from", with_container.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("its 1 container is not migrated"),
        "{stderr}"
    );
}

#[test]
fn a_damaged_source_fails_cleanly() {
    if !strata_testutil::require_root("writes overlay whiteouts and unpacks layers with owners") {
        return;
    }
    let img = common::image("amd64", "original");
    let images = vec![(vec!["x:1"], img)];
    let s = Strata::new();

    let err = s.fails(
        &["migrate", "--from", s.scratch("nothing").to_str().unwrap()],
        b"",
    );
    assert!(err.contains("not a Docker data root"), "{err}");

    // A file changed behind the layer's back (same size): its crc64 gives it away.
    let docker = tempfile::tempdir().unwrap();
    write_fixture(docker.path(), &images, 0);
    let os = find(docker.path(), "etc/os");
    std::fs::write(&os, b"ORIGINAL").unwrap();
    let err = s.fails(&["migrate", "--from", docker.path().to_str().unwrap()], b"");
    assert!(err.contains("etc/os"), "{err}");
    assert_eq!(s.ok(&["images", "-q", "-a"]), "");
    assert_eq!(
        s.ok(&["snapshot", "ls", "-q", "--filter", "kind=active"]),
        ""
    );

    // A cache ID that points outside overlay2/.
    let docker = tempfile::tempdir().unwrap();
    write_fixture(docker.path(), &images, 0);
    let layerdb = docker.path().join("image/overlay2/layerdb/sha256");
    let first = std::fs::read_dir(&layerdb)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::write(first.path().join("cache-id"), "../../etc").unwrap();
    let err = s.fails(&["migrate", "--from", docker.path().to_str().unwrap()], b"");
    assert!(err.contains("is not a layer directory name"), "{err}");

    // A config whose content is not its name.
    let docker = tempfile::tempdir().unwrap();
    write_fixture(docker.path(), &images, 0);
    let configs = docker.path().join("image/overlay2/imagedb/content/sha256");
    let config = std::fs::read_dir(&configs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::write(
        config.path(),
        b"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
    )
    .unwrap();
    let err = s.fails(&["migrate", "--from", docker.path().to_str().unwrap()], b"");
    assert!(err.contains("not the name it is stored under"), "{err}");
    assert_eq!(s.ok(&["images", "-q", "-a"]), "");
    s.ok(&["fsck"]);
}

/// The one path ending in `suffix` under `root/overlay2`.
fn find(root: &Path, suffix: &str) -> std::path::PathBuf {
    let mut found = Vec::new();
    let mut stack = vec![root.join("overlay2")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                stack.push(e.path());
            } else if ty.is_file() && e.path().to_string_lossy().ends_with(suffix) {
                found.push(e.path());
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

/// The real thing: dockerd loads a `strata save` (Docker's `docker load` reading strata's
/// archive), makes its overlay2 store, and strata migrates that store.
#[test]
fn migrates_a_store_dockerd_made_from_a_strata_save() {
    if !strata_testutil::require_root("runs dockerd, mounts overlayfs")
        || !strata_testutil::require_tool("dockerd")
    {
        return;
    }
    let Some(images) = five_images() else {
        return;
    };
    // strata → archive: every image by name (the dangling one is left out).
    let s = Strata::new();
    let layout = s.scratch("layout");
    let named: Vec<(&str, strata_testutil::LayoutEntry<'_>)> = images
        .iter()
        .filter_map(|(names, img)| {
            names
                .first()
                .map(|n| (*n, strata_testutil::LayoutEntry::Image(img)))
        })
        .collect();
    strata_testutil::write_layout(&layout, &named).unwrap();
    s.ok(&["load", "-q", "-i", layout.to_str().unwrap()]);
    let archive = s.scratch("save").join("all.tar");
    let mut args = vec!["save", "-o", archive.to_str().unwrap()];
    args.extend(named.iter().map(|(n, _)| *n));
    s.ok(&args);

    let root = tempfile::tempdir().unwrap();
    let mut docker = strata_testutil::Dockerd::start(root.path()).unwrap();
    let loaded = docker
        .ok(&["load", "-i", archive.to_str().unwrap()])
        .unwrap();
    for (name, _) in &named {
        assert!(
            loaded.contains(&format!("Loaded image: {name}")),
            "{loaded}"
        );
    }
    docker.ok(&["tag", "app:1", "app:again"]).unwrap();
    let run = docker.ok(&["run", "--rm", "app:1"]).unwrap();
    assert_eq!(run, "hello world\n", "dockerd runs strata's save");
    let mut inspected = BTreeMap::new();
    for name in [
        "app:1",
        "app:again",
        "tricky:1",
        "plain:1",
        "localhost:5000/team/other:2.0",
    ] {
        let v = docker
            .ok(&[
                "image",
                "inspect",
                "--format",
                "{{.Id}} {{json .RootFS.Layers}}",
                name,
            ])
            .unwrap();
        inspected.insert(name, v.trim().to_owned());
    }
    // A container makes the threshold refuse.
    docker
        .ok(&["create", "--name", "left", "plain:1", "/hello"])
        .unwrap();
    docker.stop().unwrap();

    let from = root.path().to_str().unwrap();
    let before = fingerprint(root.path());
    let fresh = Strata::new();
    let err = fresh.fails(&["migrate", "--from", from, "--threshold", "100"], b"");
    assert!(err.contains("has 1 container"), "{err}");
    let out = fresh.cmd(&["migrate", "--from", from]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("its 1 container is not migrated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, want) in &inspected {
        let got = fresh.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{json .RootFS.Layers}}",
            name,
        ]);
        assert_eq!(got.trim(), want, "{name}");
    }
    containers_run(&fresh, "app:again");
    fresh.ok(&["fsck"]);
    assert_eq!(fingerprint(root.path()), before, "the source is untouched");
}
