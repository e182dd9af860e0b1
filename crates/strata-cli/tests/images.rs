//! The image commands (`images`, `image inspect`, `history`, `tag`, `rmi`, `image prune`)
//! against images loaded from in-memory OCI layouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Strata, chains};
use serde_json::Value;
use strata_testutil::{
    Compression, Image, ImageBuilder, LayerBuilder, LayoutEntry, build_index, write_layout,
};

const ROOT: &str = "loading unpacks layers";

fn image(arch: &str, text: &str) -> Image {
    ImageBuilder::new()
        .platform("linux", arch, (arch == "arm64").then_some("v8"))
        .layer(
            LayerBuilder::new()
                .dir("etc", 0o755)
                .file("etc/os", text.as_bytes(), 0o644)
                .build(Compression::Gzip),
        )
        .layer(
            LayerBuilder::new()
                .file("hello", &vec![b'h'; 5000], 0o644)
                .build(Compression::Zstd),
        )
        .history("/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / ")
        .history("RUN /bin/sh -c echo hello > /hello # buildkit")
        .history("ENV A=1")
        .config(|c| {
            c["author"] = "someone".into();
            c["config"]["Env"] = serde_json::json!(["PATH=/bin", "A=1"]);
            c["config"]["Cmd"] = serde_json::json!(["sh"]);
            c["config"]["Labels"] = serde_json::json!({"org.example": "yes"});
        })
        .build()
}

/// A fresh store; `None` (the test is skipped) without root.
fn store() -> Option<Strata> {
    strata_testutil::require_root(ROOT).then(Strata::new)
}

fn host_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

/// Loads `entries` (name, image) into `s`.
fn load(s: &Strata, entries: &[(&str, LayoutEntry<'_>)]) {
    let dir = tempfile::tempdir().unwrap();
    write_layout(dir.path(), entries).unwrap();
    s.ok(&["load", "-q", "-i", dir.path().to_str().unwrap()]);
}

/// Two images, `alpha:1` and `second`, loaded into `s`.
fn load_two(s: &Strata, second: &str) -> (Image, Image) {
    let (a, b) = (image(host_arch(), "a"), image(host_arch(), "b"));
    load(
        s,
        &[
            ("docker.io/library/alpha:1", LayoutEntry::Image(&a)),
            (second, LayoutEntry::Image(&b)),
        ],
    );
    (a, b)
}

/// The lines `strata ARGS` prints, sorted.
fn sorted_lines(s: &Strata, args: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = s.ok(args).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn images_lists_with_docker_columns_flags_and_sizes() {
    let Some(s) = store() else { return };
    let (a, b) = load_two(&s, "example.com/team/beta:2");
    let out = s.ok(&["images"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        "{out}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{out}");
    let alpha = rows.iter().find(|r| r.starts_with("alpha ")).unwrap();
    assert!(
        alpha.contains(&hex(a.digest())[..12]) && alpha.contains(" ago"),
        "{alpha}"
    );
    assert!(
        rows.iter().any(|r| r.starts_with("example.com/team/beta ")),
        "{out}"
    );

    // -q, --no-trunc
    let q = sorted_lines(&s, &["images", "-q"]);
    let mut want = vec![
        hex(a.digest())[..12].to_owned(),
        hex(b.digest())[..12].to_owned(),
    ];
    want.sort();
    assert_eq!(q, want);
    assert!(
        s.ok(&["image", "ls", "-q", "--no-trunc"])
            .lines()
            .any(|l| l == a.digest())
    );

    // --digests adds the DIGEST column with the target digest.
    let out = s.ok(&["image", "list", "--digests"]);
    assert!(out.lines().next().unwrap().contains("DIGEST"), "{out}");
    assert!(out.contains(a.digest()), "{out}");
    assert!(!s.ok(&["images"]).contains(a.digest()));

    // JSON field names as `docker images --format json`.
    let items = json_lines(&s.ok(&["images", "--format", "json"]));
    let keys: Vec<&String> = items[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "Containers",
            "CreatedAt",
            "CreatedSince",
            "Digest",
            "ID",
            "Repository",
            "SharedSize",
            "Size",
            "Tag",
            "UniqueSize",
            "VirtualSize"
        ]
    );
    let alpha = items.iter().find(|i| i["Repository"] == "alpha").unwrap();
    assert_eq!(alpha["Tag"], "1");
    assert_eq!(alpha["Digest"], "<none>");
    assert_eq!(alpha["CreatedAt"], "2024-01-01 00:00:00 +0000 UTC");

    // SIZE: the blobs' bytes plus the usage of each layer's snapshot.
    let content: u64 = std::iter::once(&a.manifest)
        .chain(a.blobs())
        .map(|b| b.size())
        .sum();
    let unpacked: u64 = s
        .ok(&["snapshot", "usage", "--format", "{{.Key}} {{.SizeBytes}}"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| chain_of(&a).contains(&k.to_string()))
        .map(|(_, n)| n.parse::<u64>().unwrap())
        .sum();
    assert!(unpacked > 5000, "{unpacked}");
    let size = s.ok(&["images", "alpha", "--format", "{{.Size}}"]);
    assert_eq!(size.trim(), human(content + unpacked));

    // Filters: reference globs (familiar and full forms), positional name, bad filter.
    let repos = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        a.extend_from_slice(args);
        sorted_lines(&s, &a)
    };
    assert_eq!(repos(&["--filter", "reference=alp*"]), ["alpha:1"]);
    assert_eq!(
        repos(&["--filter", "reference=docker.io/library/*"]),
        ["alpha:1"]
    );
    assert_eq!(
        repos(&["-f", "reference=example.com/team/*:2"]),
        ["example.com/team/beta:2"]
    );
    assert_eq!(repos(&["beta"]), Vec::<String>::new());
    assert_eq!(
        repos(&["example.com/team/beta"]),
        ["example.com/team/beta:2"]
    );
    assert_eq!(repos(&["--filter", "label=org.example=yes"]).len(), 2);
    assert!(repos(&["--filter", "label=org.example=no"]).is_empty());
    let err = s.fails(&["images", "--filter", "dangling=maybe"], b"");
    assert!(err.contains("invalid filter 'dangling=maybe'"), "{err}");
    let err = s.fails(&["images", "--filter", "bogus=1"], b"");
    assert!(err.contains("invalid filter 'bogus'"), "{err}");
}

/// The chainIDs of `img`'s layers.
fn chain_of(img: &Image) -> Vec<String> {
    let diff_ids: Vec<strata_types::Digest> = img
        .layers
        .iter()
        .map(|l| l.diff_id.parse().unwrap())
        .collect();
    (1..=diff_ids.len())
        .map(|n| strata_types::chain_id(&diff_ids[..n]).unwrap().to_string())
        .collect()
}

fn human(n: u64) -> String {
    strata_format::human_size(n)
}

#[test]
fn retag_leaves_a_dangling_image_and_rmi_untags_deletes_or_refuses() {
    let Some(s) = store() else { return };
    let (a, b) = load_two(&s, "docker.io/library/beta:1");
    // Moving alpha:1 to beta's image leaves a's image without a name: dangling.
    s.ok(&["tag", "beta:1", "alpha:1"]);
    let rows = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"];
        v.extend_from_slice(args);
        sorted_lines(&s, &v)
    };
    let (ida, idb) = (&hex(a.digest())[..12], &hex(b.digest())[..12]);
    assert_eq!(
        rows(&[]),
        [format!("alpha:1 {idb}"), format!("beta:1 {idb}")]
    );
    assert_eq!(
        rows(&["-a"]),
        [
            format!("<none>:<none> {ida}"),
            format!("alpha:1 {idb}"),
            format!("beta:1 {idb}")
        ]
    );
    assert_eq!(
        rows(&["--filter", "dangling=true"]),
        [format!("<none>:<none> {ida}")]
    );
    assert_eq!(rows(&["-a", "--filter", "dangling=false"]).len(), 2);

    // By ID with two names: refused without -f.
    let err = s.fails(&["rmi", idb], b"");
    assert_eq!(
        err.trim(),
        format!(
            "strata: conflict: unable to delete {idb} (must be forced) - image is referenced in multiple repositories"
        )
    );
    // By name: untag only, while another name remains.
    assert_eq!(s.ok(&["rmi", "alpha:1"]), "Untagged: alpha:1\n");
    // The dangling image by its (short) ID; its layers (no other image has them) go too.
    let ca = chains(&a);
    assert_eq!(
        s.ok(&["image", "rm", &hex(a.digest())[..8]]),
        format!(
            "Deleted: {}\nDeleted: {}\nDeleted: {}\n",
            a.digest(),
            ca[1],
            ca[0]
        )
    );
    // `image tag` and `rmi -f` by ID.
    s.ok(&["image", "tag", idb, "example.com/x:v1"]);
    assert_eq!(
        s.ok(&["rmi", "-f", idb]),
        format!(
            "Untagged: beta:1\nUntagged: example.com/x:v1\nDeleted: {}\nDeleted: {}\nDeleted: {}\n",
            b.digest(),
            chains(&b)[1],
            chains(&b)[0]
        )
    );
    assert_eq!(s.ok(&["images", "-a", "-q"]), "");
    // Unknown names, each reported; the command fails.
    let out = s.run_input(&["rmi", "nope", "sha256:0000"], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("strata: No such image: nope:latest\n"),
        "{err}"
    );
    assert!(
        err.contains("strata: No such image: sha256:0000\n"),
        "{err}"
    );
    let err = s.fails(&["tag", "nope", "x"], b"");
    assert!(err.contains("No such image: nope:latest"), "{err}");
}

#[test]
fn loading_a_name_again_leaves_the_old_image_dangling() {
    let Some(s) = store() else { return };
    let (a, b) = (image(host_arch(), "a"), image(host_arch(), "b"));
    load(&s, &[("docker.io/library/alpha:1", LayoutEntry::Image(&a))]);
    load(&s, &[("docker.io/library/alpha:1", LayoutEntry::Image(&b))]);
    let out = s.ok(&[
        "images",
        "-a",
        "--no-trunc",
        "--format",
        "{{.Repository}} {{.ID}}",
    ]);
    let mut rows: Vec<&str> = out.lines().collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            format!("<none> {}", a.digest()),
            format!("alpha {}", b.digest())
        ]
    );
}

#[test]
fn inspect_by_name_id_prefix_and_digest() {
    let Some(s) = store() else { return };
    let a = image(host_arch(), "a");
    load(&s, &[("docker.io/library/alpha:1", LayoutEntry::Image(&a))]);
    let out = s.ok(&["image", "inspect", "alpha:1"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let i = &v[0];
    assert_eq!(i["Id"], a.digest());
    assert_eq!(i["RepoTags"], serde_json::json!(["alpha:1"]));
    assert_eq!(
        i["RepoDigests"],
        serde_json::json!([format!("alpha@{}", a.digest())])
    );
    assert_eq!(i["Created"], "2024-01-01T00:00:00Z");
    assert_eq!(i["Author"], "someone");
    assert_eq!(i["Architecture"], host_arch());
    assert_eq!(i["Os"], "linux");
    assert_eq!(i["Config"]["Env"], serde_json::json!(["PATH=/bin", "A=1"]));
    assert_eq!(i["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(i["Config"]["Labels"]["org.example"], "yes");
    assert_eq!(i["RootFS"]["Type"], "layers");
    let layers: Vec<&str> = a.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(i["RootFS"]["Layers"], serde_json::json!(layers));
    assert_eq!(i["Parent"], "");
    assert!(
        i["Metadata"]["LastTagTime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let size = s.ok(&["images", "--format", "{{.Size}}"]);
    assert_eq!(human(i["Size"].as_u64().unwrap()), size.trim());

    for arg in [
        &hex(a.digest())[..6],
        a.digest(),
        &format!("alpha@{}", a.digest()),
        "docker.io/library/alpha:1",
    ] {
        let id = s.ok(&["image", "inspect", "--format", "{{.Id}}", arg]);
        assert_eq!(id.trim(), a.digest(), "{arg}");
    }
    let out = s.run_input(&["image", "inspect", "alpha:1", "nope"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "strata: No such image: nope:latest\n"
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed.as_array().unwrap().len(),
        1,
        "what was found is printed"
    );
    let err = s.fails(&["image", "inspect", "beta@sha256:0123"], b"");
    assert!(err.contains("No such image"), "{err}");
}

#[test]
fn history_shows_layers_newest_first_with_missing_ids() {
    let Some(s) = store() else { return };
    let a = image(host_arch(), "a");
    load(&s, &[("docker.io/library/alpha:1", LayoutEntry::Image(&a))]);
    let out = s.ok(&["history", "alpha:1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE ") && lines[0].contains("CREATED BY"),
        "{out}"
    );
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[1].starts_with(&hex(a.digest())[..12]), "{out}");
    assert!(
        lines[1].contains("ENV A=1") && lines[1].contains(" 0B "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("<missing>") && lines[3].starts_with("<missing>"),
        "{out}"
    );
    // Long CREATED BY is cut to 45 characters unless --no-trunc.
    let long = "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / ";
    let cut: String = long.chars().take(44).collect();
    assert!(lines[3].contains(&format!("{cut}…   ")), "{out}");
    let out = s.ok(&["image", "history", "--no-trunc", "alpha:1"]);
    assert!(
        out.contains("ADD file:0123456789abcdef0123456789abcdef in /"),
        "{out}"
    );
    assert!(out.contains(a.digest()), "{out}");

    assert_eq!(
        s.ok(&["history", "-q", "alpha:1"]),
        format!("{}\n<missing>\n<missing>\n", &hex(a.digest())[..12])
    );
    // Raw numbers: the layer's snapshot usage in bytes, dates as RFC 3339.
    let items = json_lines(&s.ok(&["history", "-H=false", "--format", "json", "alpha:1"]));
    let keys: Vec<&String> = items[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "Comment",
            "CreatedAt",
            "CreatedBy",
            "CreatedSince",
            "ID",
            "Size"
        ]
    );
    assert_eq!(items[0]["Size"], "0");
    assert_eq!(items[0]["CreatedSince"], "2024-01-01T00:00:00Z");
    let top_layer: u64 = items[1]["Size"].as_str().unwrap().parse().unwrap();
    let usage = s.ok(&[
        "snapshot",
        "usage",
        "--format",
        "{{.SizeBytes}}",
        &chain_of(&a)[1],
    ]);
    assert_eq!(top_layer, usage.trim().parse::<u64>().unwrap());
    let out = s.ok(&["history", "--human=false", "alpha:1"]);
    assert!(out.lines().next().unwrap().contains("CREATED AT"), "{out}");
}

#[test]
fn tree_shows_platforms_unpacked_state_and_attestations() {
    let Some(s) = store() else { return };
    let other = if host_arch() == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    let index = build_index(vec![image(host_arch(), "h"), image(other, "o")], Some(0));
    load(
        &s,
        &[("docker.io/library/multi:1", LayoutEntry::Index(&index))],
    );
    // Plain `images`: one row, the index's digest as the ID.
    let out = s.ok(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    assert_eq!(out, format!("multi:1 {}\n", index.digest()));

    let out = s.ok(&["images", "--tree"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE") && lines[0].contains("UNPACKED SIZE"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("multi:1 ") && lines[1].contains(&hex(index.digest())[..12]),
        "{out}"
    );
    let host = &index.images[0];
    let row = |needle: &str| {
        *lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {out}"))
    };
    let h = row(&format!("├─ linux/{}", host_arch()));
    assert!(
        h.contains(&hex(host.digest())[..12]) && h.ends_with("   unpacked"),
        "{out}"
    );
    let o = row(&format!("├─ linux/{other}"));
    assert!(o.ends_with("not unpacked") && o.contains(" 0B "), "{out}");
    let att = row(&format!("└─ attestation for linux/{}", host_arch()));
    assert!(
        att.contains(&hex(index.attestations[0].digest())[..12]),
        "{out}"
    );
    assert_eq!(lines.len(), 5, "{out}");
    let err = s.fails(&["images", "--tree", "-q"], b"");
    assert!(err.contains("--tree cannot be combined"), "{err}");
}

#[test]
fn prune_removes_dangling_then_all_unused_records() {
    let Some(s) = store() else { return };
    let (a, b) = load_two(&s, "docker.io/library/beta:1");
    s.ok(&["tag", "beta:1", "alpha:1"]);
    let err = s.fails(&["image", "prune"], b"n\n");
    assert!(err.contains("image prune has been cancelled"), "{err}");
    // The image goes with its layers (snapshots) and blobs no other image uses.
    let (ca, cb) = (chains(&a), chains(&b));
    let out = s.ok(&["image", "prune", "-f"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Images:\ndeleted: {}\ndeleted: {}\ndeleted: {}\n\nTotal reclaimed space: ",
            a.digest(),
            ca[1],
            ca[0]
        )),
        "{out}"
    );
    assert!(!out.ends_with("Total reclaimed space: 0B\n"), "{out}");
    assert_eq!(
        s.ok(&["image", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
    let out = s.ok_input(&["image", "prune", "-a"], b"y\n");
    assert!(
        out.contains(&format!(
            "Deleted Images:\nuntagged: alpha:1\nuntagged: beta:1\ndeleted: {}\ndeleted: {}\ndeleted: {}\n\nTotal reclaimed space: ",
            b.digest(),
            cb[1],
            cb[0]
        )),
        "{out}"
    );
    assert!(!out.ends_with("Total reclaimed space: 0B\n"), "{out}");
    assert!(s.content_digests().is_empty());
    assert_eq!(s.ok(&["snapshot", "ls", "-q"]), "");
    assert_eq!(s.ok(&["images", "-a", "-q"]), "");
}

#[test]
fn an_image_without_created_time_reads_n_a() {
    let Some(s) = store() else { return };
    let img = ImageBuilder::new()
        .platform("linux", host_arch(), None)
        .layer(
            LayerBuilder::new()
                .file("f", b"x", 0o644)
                .build(Compression::Gzip),
        )
        .config(|c| {
            c["created"] = Value::Null;
            c["history"] = serde_json::json!([{"created_by": "ADD f"}]);
        })
        .build();
    load(&s, &[("docker.io/library/old:1", LayoutEntry::Image(&img))]);
    let out = s.ok(&["images"]);
    let row = out.lines().nth(1).unwrap();
    assert!(row.contains("   N/A   "), "{out}");
    let item = &json_lines(&s.ok(&["images", "--format", "json"]))[0];
    assert_eq!(item["CreatedSince"], "");
    assert_eq!(item["CreatedAt"], "1970-01-01 00:00:00 +0000 UTC");
    let v: Value = serde_json::from_str(&s.ok(&["image", "inspect", "old:1"])).unwrap();
    assert!(v[0].get("Created").is_none(), "{v}");
    let h = s.ok(&[
        "history",
        "--format",
        "{{.CreatedSince}}|{{.CreatedBy}}",
        "old:1",
    ]);
    assert_eq!(h, "N/A|ADD f\n");
}
