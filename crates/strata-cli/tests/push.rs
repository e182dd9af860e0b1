//! `strata push`, `login` and `logout` against the real distribution registry, with skopeo as
//! the independent reader of what arrived.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Strata, image, skopeo};
use strata_testutil::{
    LayoutEntry, Registry, TEST_PASSWORD, TEST_USER, build_index, require_root, require_tool,
    write_layout,
};

/// The architecture strata runs on, in OCI terms, and another one.
fn arches() -> (&'static str, &'static str) {
    let host = strata_types::Platform::host().architecture;
    if host == "arm64" {
        ("arm64", "amd64")
    } else {
        ("amd64", "arm64")
    }
}

/// Everything a push test needs, or `None` (skipped) without root or the tools.
fn prerequisites() -> bool {
    require_root("load unpacks layers with owners")
        && require_tool("docker-registry")
        && require_tool("skopeo")
}

/// A store whose registry configuration is its own: an empty Docker config directory and no
/// hosts.toml, never the user's.
fn strata() -> Strata {
    let s = Strata::new();
    let docker = s.scratch("docker-config");
    let hosts = s.scratch("hosts");
    s.env("DOCKER_CONFIG", &docker)
        .env("STRATA_HOSTS_DIR", &hosts)
}

/// A registry (with Basic authentication or without) and a store, or `None` (skipped)
/// without root or the tools.
fn start(auth: bool) -> Option<(Registry, Strata)> {
    if !prerequisites() {
        return None;
    }
    let reg = if auth {
        Registry::start_with_auth()
    } else {
        Registry::start()
    };
    Some((reg.expect("starting docker-registry"), strata()))
}

/// [`start`], then an image of this host's platform (its own layers) loaded as
/// `<registry>/<repo_tag>`, whose full name comes back last.
fn start_with_image(
    auth: bool,
    repo_tag: &str,
) -> Option<(Registry, Strata, strata_testutil::Image, String)> {
    let (reg, s) = start(auth)?;
    let img = image(arches().0, repo_tag);
    let name = format!("{}/{repo_tag}", reg.addr());
    load(&s, &[(&name, LayoutEntry::Image(&img))], |_| {});
    Some((reg, s, img, name))
}

/// Loads `entries` (name, image or index) into `s` through an OCI layout; `tweak` may change
/// the layout directory first (drop blobs).
fn load(s: &Strata, entries: &[(&str, LayoutEntry<'_>)], tweak: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    write_layout(dir.path(), entries).unwrap();
    tweak(dir.path());
    s.ok(&["load", "-q", "-i", dir.path().to_str().unwrap()]);
}

/// The registry's bytes for `reference` (`repo:tag` or `repo@digest`).
fn raw(reg: &Registry, reference: &str) -> Vec<u8> {
    skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/{reference}", reg.addr()),
    ])
}

/// Copies `reference` out of the registry into an OCI layout and returns the digests of the
/// blobs it wrote.
fn copy_out(reg: &Registry, reference: &str, all: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:x", dir.path().display());
    let src = format!("docker://{}/{reference}", reg.addr());
    let mut args = vec!["copy", "--src-tls-verify=false"];
    if all {
        args.push("--all");
    }
    args.extend([src.as_str(), dest.as_str()]);
    skopeo(&args);
    let mut digests: Vec<String> = std::fs::read_dir(dir.path().join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    digests.sort();
    digests
}

/// Every digest an image consists of: manifest, config, layers.
fn all_digests<'a>(images: impl IntoIterator<Item = &'a strata_testutil::Image>) -> Vec<String> {
    let mut out: Vec<String> = images
        .into_iter()
        .flat_map(|i| {
            i.blobs()
                .chain([&i.manifest])
                .map(|b| b.digest.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn short(digest: &str) -> &str {
    &digest["sha256:".len().."sha256:".len() + 12]
}

/// Asserts that a push's output ends with Docker's `TAG: digest: D size: N` for `pushed`.
fn assert_pushed(out: &str, tag: &str, pushed: &strata_testutil::Blob) {
    let last = format!("{tag}: digest: {} size: {}\n", pushed.digest, pushed.size());
    assert!(out.ends_with(&last), "expected {last:?} last in:\n{out}");
}

/// Runs `strata ARGS` with `stdin`, asserts success, returns stdout and stderr.
fn run_ok(s: &Strata, args: &[&str], stdin: &[u8]) -> (String, String) {
    let out = s.run_input(args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "strata {args:?}: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// The per-blob lines of a push's output, sorted (uploads run concurrently).
fn blob_lines(out: &str) -> Vec<String> {
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| l.len() > 14 && l.as_bytes()[12] == b':' && !l.contains("digest:"))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

fn expected_lines(image: &strata_testutil::Image, status: &str) -> Vec<String> {
    let mut lines: Vec<String> = image
        .layers
        .iter()
        .map(|l| l.blob.digest.as_str())
        .chain([image.config.digest.as_str()])
        .map(|d| format!("{}: {status}", short(d)))
        .collect();
    lines.sort();
    lines
}

#[test]
fn pushes_an_image_byte_identical_then_finds_its_layers_there() {
    let Some((reg, s, img, name)) = start_with_image(false, "app:v1") else {
        return;
    };

    let out = s.ok(&["push", &name]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(format!("The push refers to repository [{}/app]", reg.addr()).as_str())
    );
    assert_eq!(blob_lines(&out), expected_lines(&img, "Pushed"), "{out}");
    assert_pushed(&out, "v1", &img.manifest);
    assert_eq!(raw(&reg, "app:v1"), img.manifest.bytes);
    assert_eq!(copy_out(&reg, "app:v1", false), all_digests([&img]));

    // Again: everything is there already.
    let out = s.ok(&["push", &name]);
    assert_eq!(
        blob_lines(&out),
        expected_lines(&img, "Layer already exists"),
        "{out}"
    );
    // Quiet: the reference only.
    assert_eq!(s.ok(&["push", "-q", &name]), format!("{name}\n"));
    // By digest: no tag line, same manifest.
    let by_digest = format!("{}/app@{}", reg.addr(), img.manifest.digest);
    let out = s.ok(&["push", &by_digest]);
    assert!(!out.contains("digest: sha256"), "{out}");
    assert_eq!(
        raw(&reg, &format!("app@{}", img.manifest.digest)),
        img.manifest.bytes
    );
}

#[test]
fn pushes_a_whole_multi_platform_index_with_its_attestation() {
    let Some((reg, s)) = start(false) else {
        return;
    };
    let (host, other) = arches();
    let index = build_index(
        vec![image(host, "multi 1"), image(other, "multi 2")],
        Some(0),
    );
    let name = format!("{}/multi:1", reg.addr());
    load(&s, &[(&name, LayoutEntry::Index(&index))], |_| {});

    let out = s.ok(&["push", &name]);
    assert_pushed(&out, "1", &index.index);
    // One line per layer and config of both platforms and the attestation's config.
    let mut want: Vec<String> = index
        .images
        .iter()
        .flat_map(|i| expected_lines(i, "Pushed"))
        .collect();
    want.extend(
        index
            .attestations
            .iter()
            .map(|a| format!("{}: Pushed", short(&a.config.digest))),
    );
    want.sort();
    want.dedup();
    assert_eq!(blob_lines(&out), want, "{out}");

    assert_eq!(raw(&reg, "multi:1"), index.index.bytes);
    for m in index.images.iter().chain(&index.attestations) {
        assert_eq!(
            raw(&reg, &format!("multi@{}", m.manifest.digest)),
            m.manifest.bytes
        );
    }
    let mut every = all_digests(index.images.iter().chain(&index.attestations));
    every.push(index.digest().to_owned());
    every.sort();
    assert_eq!(copy_out(&reg, "multi:1", true), every);
}

#[test]
fn an_index_missing_platforms_locally_pushes_the_host_one_and_says_so() {
    let Some((reg, s)) = start(false) else {
        return;
    };
    let (host, other) = arches();
    let index = build_index(vec![image(host, "part 1"), image(other, "part 2")], Some(0));
    let name = format!("{}/part:1", reg.addr());
    let back = format!("{}/whole:2", reg.addr());
    // As after a pull of the host's platform only: the other one's layers are absent.
    let gone = index.images[1].layers[0].blob.digest.clone();
    load(
        &s,
        &[
            (&name, LayoutEntry::Index(&index)),
            (&back, LayoutEntry::Index(&index)),
        ],
        |dir| {
            std::fs::remove_file(dir.join("blobs/sha256").join(&gone["sha256:".len()..])).unwrap();
        },
    );

    let (stdout, stderr) = run_ok(&s, &["push", &name], b"");
    let host_manifest = &index.images[0].manifest;
    assert_pushed(&stdout, "1", host_manifest);
    assert_eq!(
        blob_lines(&stdout),
        expected_lines(&index.images[0], "Pushed")
    );
    assert!(
        stderr.contains("Not all multiplatform-content is present")
            && stderr.contains(&format!("{} -> {}", index.digest(), host_manifest.digest))
            && stderr.contains(&format!("missing locally: linux/{other}")),
        "{stderr}"
    );
    assert_eq!(raw(&reg, "part:1"), host_manifest.bytes);

    // Where the registry has what is missing here (pushed whole from elsewhere), the index
    // goes up whole, and the tag keeps every platform.
    let full = strata();
    let first = format!("{}/whole:1", reg.addr());
    load(&full, &[(&first, LayoutEntry::Index(&index))], |_| {});
    full.ok(&["push", &first]);
    let (stdout, stderr) = run_ok(&s, &["push", &back], b"");
    assert_pushed(&stdout, "2", &index.index);
    assert!(
        stderr.contains(&format!(
            "Not present locally, already in the registry: linux/{other}"
        )),
        "{stderr}"
    );
    assert_eq!(raw(&reg, "whole:2"), index.index.bytes);

    // --platform picks the other present... it is absent: a clear error naming what is there.
    let err = s.fails(
        &["push", "--platform", &format!("linux/{other}"), &name],
        b"",
    );
    assert!(
        err.contains(&format!(
            "no manifest for platform linux/{other} present locally"
        )) && err.contains(&format!("present: linux/{host}")),
        "{err}"
    );
}

#[test]
fn platform_flag_pushes_that_manifest_of_a_complete_index() {
    let Some((reg, s)) = start(false) else {
        return;
    };
    let (host, other) = arches();
    let index = build_index(vec![image(host, "pick 1"), image(other, "pick 2")], None);
    let name = format!("{}/pick:1", reg.addr());
    load(&s, &[(&name, LayoutEntry::Index(&index))], |_| {});
    let out = s.ok(&["push", "--platform", &format!("linux/{other}"), &name]);
    let m = &index.images[1].manifest;
    assert_pushed(&out, "1", m);
    assert_eq!(raw(&reg, "pick:1"), m.bytes);
}

#[test]
fn on_a_terminal_each_layer_has_one_line_updated_in_place() {
    if !require_tool("script") {
        return;
    }
    let Some((reg, s, img, name)) = start_with_image(false, "tty:1") else {
        return;
    };
    // `script` gives the command a pseudo-terminal as stdout.
    let command = format!(
        "{} --root {} push {name}",
        Strata::bin().display(),
        s.root().display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("DOCKER_CONFIG", s.scratch("docker-config"))
        .env("STRATA_HOSTS_DIR", s.scratch("hosts"))
        .env_remove("STRATA_ROOT")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert!(out.status.success(), "{text}");
    for layer in &img.layers {
        let id = short(&layer.blob.digest);
        assert!(
            text.contains(&format!("\x1b[2K{id}: Preparing\n")),
            "{text:?}"
        );
        assert!(text.contains(&format!("\x1b[2K{id}: Pushed\n")), "{text:?}");
    }
    // Each redraw moves up over the rows drawn before (two layers and the config).
    assert!(text.contains("\x1b[3A"), "{text:?}");
    assert_pushed(&text, "1", &img.manifest);
    assert_eq!(raw(&reg, "tty:1"), img.manifest.bytes);
}

#[test]
fn a_second_repository_of_the_registry_mounts_the_blobs() {
    let Some((reg, a)) = start(false) else {
        return;
    };
    let (host, _) = arches();
    let img = image(host, "mount");
    let one = format!("{}/one:1", reg.addr());
    let two = format!("{}/team/two:1", reg.addr());
    let three = format!("{}/three:1", reg.addr());

    // The push labels what it sent with where it went; the next push to the registry mounts.
    load(
        &a,
        &[
            (&one, LayoutEntry::Image(&img)),
            (&two, LayoutEntry::Image(&img)),
        ],
        |_| {},
    );
    a.ok(&["push", &one]);
    let label = a.ok(&[
        "content",
        "info",
        &img.config.digest,
        "--format",
        "{{json .Labels}}",
    ]);
    assert!(
        label.contains(r#""containerd.io/distribution.source.127.0.0.1":"one""#),
        "{label}"
    );
    let out = a.ok(&["push", &two]);
    assert_eq!(
        blob_lines(&out),
        expected_lines(&img, "Mounted from one"),
        "{out}"
    );
    assert_eq!(raw(&reg, "team/two:1"), img.manifest.bytes);

    // A label set by hand (as a pull sets it), with the port, in another store.
    let b = strata();
    load(&b, &[(&three, LayoutEntry::Image(&img))], |_| {});
    for blob in img.blobs() {
        b.ok(&[
            "content",
            "label",
            &blob.digest,
            &format!("containerd.io/distribution.source.{}=team/two", reg.addr()),
        ]);
    }
    let out = b.ok(&["push", &three]);
    assert_eq!(
        blob_lines(&out),
        expected_lines(&img, "Mounted from team/two"),
        "{out}"
    );
    assert_eq!(copy_out(&reg, "three:1", false), all_digests([&img]));
}

#[test]
fn all_tags_pushes_every_tag_of_the_repository() {
    let Some((reg, s)) = start(false) else {
        return;
    };
    let (host, _) = arches();
    let (x, y) = (image(host, "x"), image(host, "y"));
    let repo = format!("{}/tags", reg.addr());
    let (t1, t2) = (format!("{repo}:t1"), format!("{repo}:t2"));
    load(
        &s,
        &[(&t1, LayoutEntry::Image(&x)), (&t2, LayoutEntry::Image(&y))],
        |_| {},
    );
    // One upload at a time works as well as five.
    let out = s.ok(&["push", "-a", "--max-concurrent-uploads", "1", &repo]);
    assert!(
        out.contains(&format!("t1: digest: {}", x.manifest.digest)),
        "{out}"
    );
    assert!(
        out.contains(&format!("t2: digest: {}", y.manifest.digest)),
        "{out}"
    );
    assert_eq!(raw(&reg, "tags:t2"), y.manifest.bytes);
    let err = s.fails(&["push", "-a", &t1], b"");
    assert!(
        err.contains("tag can't be used with --all-tags/-a"),
        "{err}"
    );
}

#[test]
fn unknown_local_image_is_an_error_naming_it() {
    let s = strata();
    let err = s.fails(&["push", "127.0.0.1:1/nosuch:v3"], b"");
    assert_eq!(
        err,
        "strata: An image does not exist locally with the tag: 127.0.0.1:1/nosuch:v3\n"
    );
}

#[test]
fn unreachable_registry_is_an_error_naming_it() {
    if !require_root("load unpacks layers with owners") {
        return;
    }
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = strata();
    let (host, _) = arches();
    let img = image(host, "nowhere");
    let name = format!("127.0.0.1:{port}/app:1");
    load(&s, &[(&name, LayoutEntry::Image(&img))], |_| {});
    let err = s.fails(&["push", &name], b"");
    assert!(
        err.starts_with(&format!(
            "strata: registry 127.0.0.1:{port} unreachable for 127.0.0.1:{port}/app"
        )) && err.lines().count() == 1,
        "{err}"
    );
}

fn docker_config(s: &Strata) -> serde_json::Value {
    let path = s.scratch("docker-config").join("config.json");
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).unwrap(),
        Err(_) => serde_json::json!({}),
    }
}

#[test]
fn login_stores_checked_credentials_that_push_uses_and_logout_removes() {
    let Some((reg, s, img, name)) = start_with_image(true, "private:1") else {
        return;
    };
    let addr = reg.addr();

    // Not logged in: the registry's refusal names the reference and says what to do.
    let err = s.fails(&["push", &name], b"");
    assert!(
        err.contains(&format!("push access denied for {addr}/private:1"))
            && err.contains(&format!("strata login {addr}")),
        "{err}"
    );

    // Wrong password: refused, nothing stored.
    let err = s.fails(
        &["login", "-u", TEST_USER, "--password-stdin", &addr],
        b"nope\n",
    );
    assert!(err.contains("authentication refused"), "{err}");
    assert_eq!(docker_config(&s)["auths"][&addr], serde_json::Value::Null);

    // Right password on stdin.
    let (stdout, stderr) = run_ok(
        &s,
        &["login", "-u", TEST_USER, "--password-stdin", &addr],
        format!("{TEST_PASSWORD}\n").as_bytes(),
    );
    assert_eq!(stdout, "Login Succeeded\n");
    let config = s.scratch("docker-config").join("config.json");
    assert!(
        stderr.contains(&format!(
            "WARNING! Your credentials are stored unencrypted in '{}'.",
            config.display()
        )),
        "{stderr}"
    );
    // base64("strata:wonderland")
    assert_eq!(
        docker_config(&s)["auths"][&addr]["auth"],
        "c3RyYXRhOndvbmRlcmxhbmQ="
    );
    // -p works too, with Docker's warning.
    let (_, stderr) = run_ok(
        &s,
        &["login", "-u", TEST_USER, "-p", TEST_PASSWORD, &addr],
        b"",
    );
    assert!(
        stderr.contains("WARNING! Using --password via the CLI is insecure. Use --password-stdin."),
        "{stderr}"
    );

    let out = s.ok(&["push", &name]);
    assert_eq!(blob_lines(&out), expected_lines(&img, "Pushed"), "{out}");

    assert_eq!(
        s.ok(&["logout", &addr]),
        format!("Removing login credentials for {addr}\n")
    );
    assert_eq!(docker_config(&s)["auths"][&addr], serde_json::Value::Null);
    assert_eq!(
        s.ok(&["logout", &addr]),
        format!("Not logged in to {addr}\n")
    );
    s.fails(&["push", &name], b"");
}

#[test]
fn login_asks_on_a_terminal() {
    if !require_tool("script") {
        return;
    }
    let Some((reg, s)) = start(true) else {
        return;
    };
    let command = format!("{} login {}", Strata::bin().display(), reg.addr());
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("DOCKER_CONFIG", s.scratch("docker-config"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(
        &mut stdin,
        format!("{TEST_USER}\n{TEST_PASSWORD}\n").as_bytes(),
    )
    .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Username: ") && text.contains("Password: "),
        "{text}"
    );
    assert!(text.ends_with("Login Succeeded\n"), "{text}");
    assert_eq!(
        docker_config(&s)["auths"][&reg.addr()]["auth"],
        "c3RyYXRhOndvbmRlcmxhbmQ="
    );
}

#[test]
fn login_flags_are_checked_before_anything_is_sent() {
    let s = strata();
    let err = s.fails(&["login", "--password-stdin", "127.0.0.1:1"], b"pw");
    assert!(
        err.contains("Must provide --username with --password-stdin"),
        "{err}"
    );
    let err = s.fails(
        &[
            "login",
            "-u",
            "u",
            "-p",
            "x",
            "--password-stdin",
            "127.0.0.1:1",
        ],
        b"pw",
    );
    assert!(err.contains("mutually exclusive"), "{err}");
    let err = s.fails(&["login", "-u", "u", "127.0.0.1:1"], b"");
    assert!(err.contains("non TTY"), "{err}");
}
