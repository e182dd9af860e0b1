//! Paths longer than PATH_MAX, and trees that change while they are read (issue 17, defects 6
//! and 9): a container nesting 1,100 directories, or an image with such an entry, must not
//! break any command for ever; `export` of a running container that swaps a directory for a
//! symlink to the host must never read the host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Strata;
use strata_testutil::{
    Compression, ImageBuilder, LayerBuilder, LayoutEntry, busybox_layer, require_root,
    require_tool, tar_dir, write_layout,
};

const DEPTH: usize = 1100;

fn ready() -> bool {
    require_root("mounts overlays and runs containers")
        && require_tool("runc")
        && require_tool("busybox")
}

/// `args` run with `--snapshotter sn`.
fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn with(sn: &str, args: &[&str]) -> Vec<String> {
    ["--snapshotter", sn]
        .iter()
        .chain(args)
        .map(|a| a.to_string())
        .collect()
}

fn ok(s: &Strata, sn: &str, args: &[&str]) -> String {
    let args = with(sn, args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s.ok(&args)
}

/// Loads busybox plus `extra` layers as `name`.
fn load(s: &Strata, sn: &str, name: &str, extra: Option<LayerBuilder>) -> bool {
    let Some(base) = busybox_layer() else {
        return false;
    };
    let mut b = ImageBuilder::new().layer(base.build(Compression::Gzip));
    if let Some(l) = extra {
        b = b.layer(l.build(Compression::Gzip));
    }
    let img = b
        .config(|c| c["config"]["Cmd"] = serde_json::json!(["sh"]))
        .build();
    let dir = s.scratch("layout");
    write_layout(&dir, &[(name, LayoutEntry::Image(&img))]).unwrap();
    let tar = tar_dir(&dir).unwrap();
    let args = with(sn, &["load"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s.ok_input(&args, &tar);
    std::fs::remove_dir_all(&dir).unwrap();
    true
}

/// `dir/dir/…/dir/f` with `depth` directories: for 1,100, over 4,096 bytes.
fn deep_name(depth: usize) -> String {
    let mut p = "dir/".repeat(depth);
    p.push('f');
    p
}

/// The entries of the tar at `path`: name → contents of regular files.
fn tar_entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push((name, data));
    }
    out
}

/// Makes `depth` nested directories `d` in `top` through directory fds (the path is too long
/// for the host's own tools).
fn nest(top: &Path, depth: usize) {
    std::fs::create_dir_all(top).unwrap();
    let mut dir = strata_fs::open_dir(top).unwrap();
    for _ in 0..depth {
        rustix::fs::mkdirat(&dir, "d", rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
        dir = strata_fs::open_subdir(dir.as_fd(), b"d").unwrap();
    }
}

/// After everything is removed: leftovers nested past PATH_MAX (an orphan container
/// directory, an unrecorded snapshot directory) are found and repaired by `fsck --repair`,
/// and the store is clean.
fn fsck_repairs_deep_leftovers(s: &Strata, sn: &str) {
    let orphan_container = s.root().join("containers").join("0".repeat(64));
    nest(&orphan_container, 2 * DEPTH);
    let orphan_snapshot = s.root().join("snapshots").join(sn).join("999999");
    nest(&orphan_snapshot.join("fs"), 2 * DEPTH);
    // Orphans are reported, not problems: fsck still exits 0.
    let out = s.cmd(&refs(&with(sn, &["fsck"]))).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && report.contains(&orphan_container.display().to_string())
            && report.contains(&orphan_snapshot.display().to_string()),
        "{out:?}"
    );
    let out = s
        .cmd(&refs(&with(sn, &["fsck", "--repair"])))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!orphan_container.exists());
    assert!(!orphan_snapshot.exists());
    let out = s.cmd(&refs(&with(sn, &["fsck"]))).output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
}

/// A container nests 1,100 directories: diff, ps -s, commit, export, rm and the prunes work,
/// and the committed image unpacks and exports the deep file again.
fn deep_container(sn: &str) {
    if !ready() {
        return;
    }
    let s = Strata::new();
    if !load(&s, sn, "busybox:latest", None) {
        return;
    }
    // `cd -P`: busybox sh's logical `cd` chdir()s the whole path, which fails past PATH_MAX.
    let nest = format!(
        "i=0; while [ $i -lt {DEPTH} ]; do mkdir dir && cd -P dir || exit 1; i=$((i+1)); done; echo deep > f"
    );
    ok(
        &s,
        sn,
        &["run", "--name", "deep", "busybox", "sh", "-c", &nest],
    );
    let deep = format!("/{}", deep_name(DEPTH));
    assert!(deep.len() > 4096);

    let diff = ok(&s, sn, &["diff", "deep"]);
    let added: Vec<&str> = diff.lines().filter(|l| l.starts_with("A /dir")).collect();
    assert_eq!(added.len(), DEPTH + 1, "{}", &diff[..diff.len().min(2000)]);
    assert!(added.contains(&format!("A {deep}").as_str()));

    let ps = ok(
        &s,
        sn,
        &["ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}"],
    );
    assert!(ps.contains("deep "), "{ps}");

    ok(&s, sn, &["commit", "deep", "deep:1"]);
    let out = s.scratch("out");
    let exported = out.join("deep.tar");
    ok(
        &s,
        sn,
        &["export", "-o", exported.to_str().unwrap(), "deep"],
    );
    let entries = tar_entries(&exported);
    let f = entries.iter().find(|(n, _)| format!("/{n}") == deep);
    assert_eq!(f.map(|(_, d)| d.as_slice()), Some(&b"deep\n"[..]));

    // `cp` of the tree out of the container as a tar (walked over directory fds too).
    let copied = out.join("cp.tar");
    let tar = s
        .cmd(&refs(&with(sn, &["cp", "deep:/dir", "-"])))
        .output()
        .unwrap();
    assert!(
        tar.status.success(),
        "{}",
        String::from_utf8_lossy(&tar.stderr)
    );
    std::fs::write(&copied, &tar.stdout).unwrap();
    assert!(
        tar_entries(&copied)
            .iter()
            .any(|(n, d)| format!("/{n}") == deep && d == b"deep\n"),
        "the deep file is in cp's tar"
    );

    // The committed layer unpacks (a new container's rootfs) with the deep entry in it.
    ok(&s, sn, &["create", "--name", "again", "deep:1", "true"]);
    let again = out.join("again.tar");
    ok(&s, sn, &["export", "-o", again.to_str().unwrap(), "again"]);
    assert!(
        tar_entries(&again)
            .iter()
            .any(|(n, d)| format!("/{n}") == deep && d == b"deep\n")
    );

    ok(&s, sn, &["rm", "deep", "again"]);
    ok(&s, sn, &["rmi", "deep:1"]);
    ok(&s, sn, &["image", "prune", "-a", "-f"]);
    ok(&s, sn, &["system", "prune", "-a", "-f"]);
    fsck_repairs_deep_leftovers(&s, sn);
}

#[test]
fn deep_container_on_overlayfs() {
    deep_container("overlayfs");
}

#[test]
fn deep_container_on_native() {
    deep_container("native");
}

/// An image whose layer has one entry longer than PATH_MAX (a PAX/GNU long name): it loads,
/// a container of it shows the file, and it is removed whole.
fn deep_image(sn: &str) {
    if !ready() {
        return;
    }
    let s = Strata::new();
    let name = deep_name(DEPTH);
    assert!(name.len() > 4096);
    let layer = LayerBuilder::new().file(&name, b"from the image\n", 0o644);
    if !load(&s, sn, "deep/image:1", Some(layer)) {
        return;
    }
    ok(&s, sn, &["create", "--name", "cc", "deep/image:1", "true"]);
    let out = s.scratch("out").join("c.tar");
    ok(&s, sn, &["export", "-o", out.to_str().unwrap(), "cc"]);
    assert!(
        tar_entries(&out)
            .iter()
            .any(|(n, d)| *n == name && d == b"from the image\n")
    );
    ok(
        &s,
        sn,
        &[
            "run",
            "--rm",
            "deep/image:1",
            "sh",
            "-c",
            "cd dir/dir/dir && echo ok",
        ],
    );
    let saved = s.scratch("out").join("saved.tar");
    ok(
        &s,
        sn,
        &["save", "-o", saved.to_str().unwrap(), "deep/image:1"],
    );
    ok(&s, sn, &["rm", "cc"]);
    ok(&s, sn, &["rmi", "deep/image:1"]);
    ok(&s, sn, &["system", "prune", "-a", "-f"]);
    assert!(
        ok(&s, sn, &["snapshot", "ls"]).lines().count() <= 1,
        "every snapshot is gone"
    );
    fsck_repairs_deep_leftovers(&s, sn);
}

#[test]
fn deep_image_on_overlayfs() {
    deep_image("overlayfs");
}

#[test]
fn deep_image_on_native() {
    deep_image("native");
}

/// A running container swaps a directory for a symlink to a host directory (and to `/`) as
/// fast as it can while `export` runs several times: no export ever holds a host file.
#[test]
fn export_of_a_running_container_never_reads_the_host() {
    if !ready() {
        return;
    }
    let s = Strata::new();
    if !load(&s, "overlayfs", "busybox:latest", None) {
        return;
    }
    let host = tempfile::tempdir().unwrap();
    let marker = "strata-host-marker-6f1c";
    std::fs::write(host.path().join(marker), b"host secret\n").unwrap();
    let h = host.path().to_str().unwrap();
    // Within the container the links dangle or point at its own `/`; seen from the host,
    // following them would read the host.
    let swap = format!(
        "mkdir -p /x/d && echo inside > /x/d/inside && \
         while :; do mv /x/d /x/old; ln -s {h} /x/d; rm /x/d; ln -s / /x/d; rm /x/d; \
         mv /x/old /x/d; done"
    );
    ok(
        &s,
        "overlayfs",
        &[
            "run", "-d", "--name", "swapper", "busybox", "sh", "-c", &swap,
        ],
    );
    let out = s.scratch("out");
    let (mut exported, mut saw_link) = (0, false);
    let start = Instant::now();
    for i in 0..8 {
        let file = out.join(format!("{i}.tar"));
        let o = s
            .cmd(&["export", "-o", file.to_str().unwrap(), "swapper"])
            .output()
            .unwrap();
        if !o.status.success() {
            // A file changing size while read fails the export: never a reason to read the host.
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("changed"), "{err}");
            continue;
        }
        exported += 1;
        for (name, data) in tar_entries(&file) {
            assert!(!name.contains(marker), "host file {name} exported");
            assert!(
                !data.windows(11).any(|w| w == b"host secret"),
                "host data in {name}"
            );
            // Following a link to `/` would bring the host's own /proc, /etc, /x...
            assert!(
                !name.starts_with("x/d/proc/") && !name.starts_with("x/d/x/"),
                "{name}"
            );
            saw_link |= name == "x/d";
        }
        std::fs::remove_file(&file).unwrap();
    }
    s.ok(&["rm", "-f", "swapper"]);
    assert!(exported > 0, "no export succeeded");
    assert!(start.elapsed() < Duration::from_secs(300));
    let _ = saw_link;
}
