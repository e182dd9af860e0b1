//! `strata save` (Docker 25+'s archive: OCI layout + `manifest.json`) read back by skopeo and by
//! `strata load`; `load` of compressed archives and of Docker's legacy format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{Strata, image};
use serde_json::Value;
use strata_testutil::{Image, LayoutEntry, build_index, write_layout};

fn root_ok(reason: &str) -> bool {
    strata_testutil::require_root(reason)
}

/// A store holding `alpha:1` (and, loaded from the same layout, nothing else).
fn store_with(entries: &[(&str, LayoutEntry<'_>)]) -> Strata {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    write_layout(dir.path(), entries).unwrap();
    s.ok(&["load", "-q", "-i", dir.path().to_str().unwrap()]);
    s
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The archive's entries: name → bytes.
fn entries(tar: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut a = tar::Archive::new(tar);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn blob(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap())
}

fn listing(s: &Strata) -> String {
    s.ok(&[
        "images",
        "-a",
        "--digests",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}} {{.Digest}}",
    ])
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn save_writes_docker_and_oci_archives_that_reload_with_every_digest() {
    if !root_ok("load unpacks layers") || !strata_testutil::require_tool("skopeo") {
        return;
    }
    let a = image("amd64", "a");
    let s = store_with(&[("docker.io/library/alpha:1", LayoutEntry::Image(&a))]);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("alpha.tar");
    let file_s = file.to_str().unwrap();
    s.ok(&["save", "-o", file_s, "alpha:1"]);

    let tar = std::fs::read(&file).unwrap();
    let e = entries(&tar);
    let names: Vec<&str> = e.keys().map(String::as_str).collect();
    let mut want = vec![
        "blobs/".to_owned(),
        "blobs/sha256/".to_owned(),
        blob(a.digest()),
        blob(&a.config.digest),
        "index.json".to_owned(),
        "manifest.json".to_owned(),
        "oci-layout".to_owned(),
        "repositories".to_owned(),
    ];
    want.extend(a.layers.iter().map(|l| blob(&l.blob.digest)));
    assert_eq!(
        names,
        sorted(want).iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        e[&blob(a.digest())],
        a.manifest.bytes,
        "never re-serialized"
    );
    let index = json(&e["index.json"]);
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], a.digest());
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        "docker.io/library/alpha:1"
    );
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    let manifest = json(&e["manifest.json"]);
    assert_eq!(manifest[0]["Config"], blob(&a.config.digest));
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["alpha:1"]));
    assert_eq!(manifest[0]["Layers"][1], blob(&a.layers[1].blob.digest));
    assert_eq!(
        json(&e["repositories"])["alpha"]["1"],
        a.layers[1].blob.digest.strip_prefix("sha256:").unwrap()
    );

    // skopeo reads it both ways.
    let raw =
        run(Command::new("skopeo").args(["inspect", "--raw", &format!("oci-archive:{file_s}")]));
    assert_eq!(raw.as_bytes(), a.manifest.bytes);
    let raw =
        run(Command::new("skopeo").args(["inspect", "--raw", &format!("docker-archive:{file_s}")]));
    assert!(raw.contains(&a.config.digest), "{raw}");
    let oci = work.path().join("oci");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("docker-archive:{file_s}"),
        &format!("oci:{}", oci.display()),
    ]));
    assert!(oci.join("index.json").exists());

    // Into an empty store: the same names, IDs, digests and blobs.
    let t = Strata::new();
    assert_eq!(t.ok(&["load", "-i", file_s]), "Loaded image: alpha:1\n");
    assert_eq!(listing(&t), listing(&s));
    assert_eq!(sorted(t.content_digests()), sorted(s.content_digests()));

    // To stdout: the same bytes.
    let out = s.cmd(&["save", "alpha:1"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, tar, "stdout and -o write the same archive");
}

#[test]
fn save_by_id_and_by_repository() {
    if !root_ok("load unpacks layers") {
        return;
    }
    let a = image("amd64", "a");
    let b = image("amd64", "b");
    let s = store_with(&[
        ("docker.io/library/alpha:1", LayoutEntry::Image(&a)),
        ("docker.io/library/alpha:2", LayoutEntry::Image(&b)),
    ]);
    // A name without tag: every tag of the repository.
    let out = s.cmd(&["save", "alpha"]).output().unwrap();
    assert!(out.status.success());
    let e = entries(&out.stdout);
    let tags: Vec<Value> = json(&e["manifest.json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["RepoTags"][0].clone())
        .collect();
    assert_eq!(tags.len(), 2, "{tags:?}");
    // By ID: no name; loads as a dangling image.
    let id = &a.digest()["sha256:".len().."sha256:".len() + 12];
    let out = s.cmd(&["save", id]).output().unwrap();
    assert!(out.status.success());
    let e = entries(&out.stdout);
    assert!(
        json(&e["index.json"])["manifests"][0]
            .get("annotations")
            .is_none()
    );
    let t = Strata::new();
    assert_eq!(
        t.ok_input(&["load"], &out.stdout),
        format!("Loaded image ID: {}\n", a.digest())
    );
    assert_eq!(
        t.ok(&["images", "-a", "-q", "--no-trunc"]).trim(),
        a.digest()
    );
    // Unknown images fail before anything is written.
    let err = s.fails(&["save", "nosuch:1"], b"");
    assert!(err.contains("No such image: nosuch:1"), "{err}");
}

#[test]
fn multi_platform_image_keeps_its_index_and_attestation() {
    if !root_ok("load unpacks layers") || !strata_testutil::require_tool("skopeo") {
        return;
    }
    let index = build_index(vec![image("amd64", "x86"), image("arm64", "arm")], Some(0));
    let s = store_with(&[("docker.io/library/multi:1", LayoutEntry::Index(&index))]);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("multi.tar");
    let out = s.run_input(&["save", "-o", file.to_str().unwrap(), "multi:1"], b"");
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "every platform is present");
    let e = entries(&std::fs::read(&file).unwrap());
    assert_eq!(e[&blob(index.digest())], index.index.bytes);
    let att = &index.attestations[0];
    for img in index.images.iter().chain([att]) {
        for b in std::iter::once(&img.manifest).chain(img.blobs()) {
            assert!(e.contains_key(&blob(&b.digest)), "{} missing", b.digest);
        }
    }
    let idx = json(&e["index.json"]);
    assert_eq!(idx["manifests"][0]["digest"], index.digest());
    // manifest.json names the host's platform (amd64 on the test machines).
    assert_eq!(
        json(&e["manifest.json"])[0]["Config"],
        blob(&index.images[0].config.digest)
    );
    run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci-archive:{}", file.display()),
    ]));

    let t = Strata::new();
    t.ok(&["load", "-i", file.to_str().unwrap()]);
    assert_eq!(t.ok(&["images", "--tree"]), s.ok(&["images", "--tree"]));
    assert_eq!(sorted(t.content_digests()), sorted(s.content_digests()));

    // --platform: that platform's manifest alone, named.
    let out = s
        .cmd(&["save", "--platform", "linux/arm64", "multi:1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let e = entries(&out.stdout);
    let arm = &index.images[1];
    let idx = json(&e["index.json"]);
    assert_eq!(idx["manifests"][0]["digest"], arm.digest());
    assert_eq!(
        idx["manifests"][0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/multi:1"
    );
    assert!(!e.contains_key(&blob(index.digest())));
    assert!(!e.contains_key(&blob(index.images[0].digest())));
    let err = s.fails(&["save", "--platform", "linux/s390x", "multi:1"], b"");
    assert!(
        err.contains("no manifest for platform linux/s390x"),
        "{err}"
    );
}

#[test]
fn platforms_missing_locally_are_left_out_and_named() {
    if !root_ok("load unpacks layers") {
        return;
    }
    let index = build_index(vec![image("amd64", "x86"), image("arm64", "arm")], Some(0));
    let dir = tempfile::tempdir().unwrap();
    write_layout(
        dir.path(),
        &[("docker.io/library/multi:1", LayoutEntry::Index(&index))],
    )
    .unwrap();
    // As after a pull of one platform: the arm64 manifest and its blobs are absent.
    let arm = &index.images[1];
    let kept: Vec<&str> = index.images[0].blobs().map(|b| b.digest.as_str()).collect();
    for b in std::iter::once(&arm.manifest)
        .chain(arm.blobs())
        .filter(|b| !kept.contains(&b.digest.as_str()))
    {
        std::fs::remove_file(dir.path().join(blob(&b.digest))).unwrap();
    }
    let s = Strata::new();
    s.ok(&["load", "-q", "-i", dir.path().to_str().unwrap()]);
    let out = s.run_input(&["save", "multi:1"], b"");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        "multi:1: not present locally, left out of the archive: linux/arm64\n"
    );
    let e = entries(&out.stdout);
    assert_eq!(
        e[&blob(index.digest())],
        index.index.bytes,
        "the index whole"
    );
    assert!(e.contains_key(&blob(index.attestations[0].digest())));
    assert!(!e.contains_key(&blob(arm.digest())));
    let t = Strata::new();
    t.ok_input(&["load"], &out.stdout);
    assert_eq!(t.ok(&["images", "--tree"]), s.ok(&["images", "--tree"]));
}

#[test]
fn refuses_a_terminal_and_leaves_no_half_file() {
    if !root_ok("load unpacks layers") {
        return;
    }
    let a = image("amd64", "a");
    let s = store_with(&[("docker.io/library/alpha:1", LayoutEntry::Image(&a))]);
    if strata_testutil::require_tool("script") {
        let cmd = format!(
            "{} --root {} save alpha:1",
            Strata::bin().display(),
            s.root().display()
        );
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success());
        assert!(
            text.contains("cowardly refusing to save to a terminal. Use the -o flag or redirect"),
            "{text}"
        );
        assert!(text.len() < 200, "no archive on the terminal: {text}");
    }

    let work = tempfile::tempdir().unwrap();
    let err = s.fails(&["save", "-o", "/nonexistent-dir/x.tar", "alpha:1"], b"");
    assert!(err.contains("does not exist"), "{err}");
    // A failure halfway (a layer blob gone from the store) leaves nothing either.
    let victim = &a.layers[1].blob.digest;
    std::fs::remove_file(s.root().join("content").join(blob(victim))).unwrap();
    let file = work.path().join("x.tar");
    let err = s.fails(&["save", "-o", file.to_str().unwrap(), "alpha:1"], b"");
    assert!(
        err.contains(victim.strip_prefix("sha256:").unwrap()),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

fn compress(tool: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(tool)
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn load_reads_gzip_and_zstd_compressed_archives() {
    if !root_ok("load unpacks layers") {
        return;
    }
    let a = image("amd64", "a");
    let s = store_with(&[("docker.io/library/alpha:1", LayoutEntry::Image(&a))]);
    let tar = s.cmd(&["save", "alpha:1"]).output().unwrap().stdout;
    for tool in ["gzip", "zstd"] {
        if !strata_testutil::require_tool(tool) {
            continue;
        }
        let packed = compress(tool, &tar);
        let t = Strata::new();
        assert_eq!(t.ok_input(&["load"], &packed), "Loaded image: alpha:1\n");
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("a.tar.z");
        std::fs::write(&file, &packed).unwrap();
        let t = Strata::new();
        assert_eq!(
            t.ok(&["load", "-i", file.to_str().unwrap()]),
            "Loaded image: alpha:1\n"
        );
        assert_eq!(listing(&t), listing(&s), "{tool}");
    }
}

/// An image whose layers are uncompressed tars (as a legacy archive holds them).
fn plain_image() -> Image {
    use strata_testutil::{Compression, ImageBuilder, LayerBuilder};
    let base = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/os", b"legacy", 0o644)
        .build(Compression::None);
    let top = LayerBuilder::new()
        .file("hello", b"hi", 0o644)
        .build(Compression::None);
    ImageBuilder::new()
        .platform("linux", "amd64", None)
        .layer(base)
        .layer(top)
        .build()
}

/// A Docker legacy archive of `img`: `<n>/layer.tar` per layer, `<hex>.json`, and the given
/// `manifest.json` (`None`: the right one, named `legacy:1`); layer files come first.
fn legacy_archive(img: &Image, manifest: Option<Value>, layer_bytes: Option<&[u8]>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    for (i, l) in img.layers.iter().enumerate() {
        add(
            &format!("{i}/layer.tar"),
            layer_bytes.unwrap_or(&l.blob.bytes),
        );
        add(&format!("{i}/VERSION"), b"1.0");
    }
    let cfg = format!(
        "{}.json",
        img.config.digest.strip_prefix("sha256:").unwrap()
    );
    add(&cfg, &img.config.bytes);
    let manifest = manifest.unwrap_or_else(|| {
        serde_json::json!([{
            "Config": cfg,
            "RepoTags": ["legacy:1"],
            "Layers": (0..img.layers.len()).map(|i| format!("{i}/layer.tar")).collect::<Vec<_>>(),
        }])
    });
    add("manifest.json", manifest.to_string().as_bytes());
    b.into_inner().unwrap()
}

#[test]
fn load_reads_docker_legacy_archives() {
    if !root_ok("load unpacks layers") {
        return;
    }
    let img = plain_image();
    let s = Strata::new();
    let out = s.ok_input(&["load"], &legacy_archive(&img, None, None));
    assert_eq!(out, "Loaded image: legacy:1\n");
    // Config and layers are the archive's bytes: the config digest and diffIDs are the
    // source's, and each layer blob is its own diffID.
    let inspect = s.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RootFS.Layers}} {{.Descriptor.mediaType}}",
        "legacy:1",
    ]);
    let diff_ids: Vec<&str> = img.layers.iter().map(|l| l.blob.digest.as_str()).collect();
    assert_eq!(
        inspect.trim(),
        format!(
            "{} application/vnd.oci.image.manifest.v1+json",
            serde_json::to_string(&diff_ids).unwrap()
        )
    );
    let content = s.content_digests();
    assert!(content.contains(&img.config.digest));
    assert!(diff_ids.iter().all(|d| content.contains(&(*d).to_owned())));
    // Only config, layers and the synthesized manifest: VERSION files were not kept.
    assert_eq!(content.len(), 4, "{content:?}");
    assert_eq!(s.ok(&["content", "active", "-q"]), "");
    assert_eq!(
        s.ok(&["images", "--tree"]).matches("unpacked").count(),
        1,
        "{}",
        s.ok(&["images", "--tree"])
    );

    // Unnamed: a dangling image, its ID printed.
    let unnamed = serde_json::json!([{
        "Config": format!("{}.json", img.config.digest.strip_prefix("sha256:").unwrap()),
        "RepoTags": null,
        "Layers": ["0/layer.tar", "1/layer.tar"],
    }]);
    let t = Strata::new();
    let out = t.ok_input(&["load"], &legacy_archive(&img, Some(unnamed), None));
    let id = t.ok(&["images", "-a", "-q", "--no-trunc"]);
    assert_eq!(out, format!("Loaded image ID: {id}"));
}

#[test]
fn load_reads_what_skopeo_writes_as_docker_archive() {
    if !root_ok("load unpacks layers") || !strata_testutil::require_tool("skopeo") {
        return;
    }
    // gzip layers: skopeo refuses zstd in a Docker archive.
    let a = {
        use strata_testutil::{Compression, ImageBuilder, LayerBuilder};
        let base = LayerBuilder::new()
            .dir("etc", 0o755)
            .file("etc/os", b"a", 0o644)
            .build(Compression::Gzip);
        let top = LayerBuilder::new()
            .file("hello", b"hi", 0o644)
            .whiteout("etc/os")
            .build(Compression::Gzip);
        ImageBuilder::new().layer(base).layer(top).build()
    };
    let dir = tempfile::tempdir().unwrap();
    write_layout(dir.path(), &[("1", LayoutEntry::Image(&a))]).unwrap();
    let file = dir.path().join("docker.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{}:1", dir.path().display()),
        &format!("docker-archive:{}:example.com/legacy:v2", file.display()),
    ]));
    let s = Strata::new();
    assert_eq!(
        s.ok(&["load", "-i", file.to_str().unwrap()]),
        "Loaded image: example.com/legacy:v2\n"
    );
    let config = json(a.config.bytes.as_slice());
    let want = config["rootfs"]["diff_ids"].to_string();
    let got = s.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RootFS.Layers}}",
        "example.com/legacy:v2",
    ]);
    assert_eq!(got.trim(), want);
    assert!(
        s.content_digests().contains(&a.config.digest),
        "the image's config, unchanged"
    );
    let tree = s.ok(&["images", "--tree"]);
    assert!(
        tree.contains("unpacked") && !tree.contains("not unpacked"),
        "{tree}"
    );
}

#[test]
fn hostile_legacy_archives_load_nothing() {
    if !root_ok("load unpacks layers") {
        return;
    }
    let img = plain_image();
    let cfg = format!(
        "{}.json",
        img.config.digest.strip_prefix("sha256:").unwrap()
    );
    let manifest = |layers: &[&str]| {
        Some(serde_json::json!([{ "Config": cfg, "RepoTags": ["bad:1"], "Layers": layers }]))
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "traversal",
            legacy_archive(&img, manifest(&["../x", "1/layer.tar"]), None),
            "manifest.json names \"../x\", which is not a path inside the archive",
        ),
        (
            "absolute",
            legacy_archive(&img, manifest(&["/etc/passwd", "1/layer.tar"]), None),
            "which is not a path inside the archive",
        ),
        (
            "missing layer",
            legacy_archive(&img, manifest(&["0/layer.tar", "7/layer.tar"]), None),
            "manifest.json names \"7/layer.tar\", which the archive does not contain",
        ),
        (
            "not a tar",
            legacy_archive(&img, None, Some(b"this is not a tar archive, not at all")),
            "legacy:1: unpack: layer",
        ),
        (
            "bad json",
            legacy_archive(&img, Some(serde_json::json!({"Config": 1})), None),
            "manifest.json",
        ),
    ];
    for (what, archive, want) in cases {
        let s = Strata::new();
        let err = s.fails(&["load"], &archive);
        assert!(err.contains(want), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert_eq!(s.ok(&["images", "-a", "-q"]), "", "{what}");
        assert_eq!(
            s.ok(&["content", "active", "-q"]),
            "",
            "{what}: no ingest left"
        );
    }
}

#[test]
fn import_makes_a_one_layer_image_with_changes() {
    if !root_ok("import unpacks the layer") {
        return;
    }
    let rootfs = strata_testutil::LayerBuilder::new()
        .dir("bin", 0o755)
        .file("bin/app", b"#!/bin/sh\necho hi\n", 0o755)
        .tar_bytes();
    let diff_id = strata_testutil::sha256_digest(&rootfs);
    let s = Strata::new();
    let input = if strata_testutil::require_tool("gzip") {
        compress("gzip", &rootfs)
    } else {
        rootfs.clone()
    };
    let id = s.ok_input(
        &[
            "import",
            "-c",
            r#"CMD ["/bin/app"]"#,
            "-c",
            "ENV A=1 B=2",
            "-c",
            "WORKDIR /srv",
            "-m",
            "from a test",
            "-",
            "example.com/imp:1",
        ],
        &input,
    );
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        s.ok(&["images", "-q", "--no-trunc", "example.com/imp:1"]),
        id
    );
    let got = s.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Cmd}} {{json .Config.Env}} {{.Config.WorkingDir}} {{json .RootFS.Layers}} {{.Comment}}",
        "example.com/imp:1",
    ]);
    assert_eq!(
        got.trim(),
        format!(r#"["/bin/app"] ["A=1","B=2"] /srv ["{diff_id}"] from a test"#)
    );
    let tree = s.ok(&["images", "--tree"]);
    assert!(
        tree.contains("unpacked") && !tree.contains("not unpacked"),
        "{tree}"
    );

    // From a file, without a name: a dangling image.
    let t = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rootfs.tar");
    std::fs::write(&file, &rootfs).unwrap();
    let id = t.ok(&["import", file.to_str().unwrap()]);
    assert_eq!(t.ok(&["images", "-a", "-q", "--no-trunc"]), id);

    // Refused: an unknown instruction, a non-tar input; nothing is left.
    let u = Strata::new();
    let err = u.fails(&["import", "-c", "RUN rm -rf /", "-", "x:1"], &rootfs);
    assert!(
        err.contains(r#""RUN rm -rf /" is not a valid change command"#),
        "{err}"
    );
    let err = u.fails(
        &["import", "-", "x:1"],
        b"not a tar archive, clearly not one at all",
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(u.ok(&["images", "-a", "-q"]), "");
}
