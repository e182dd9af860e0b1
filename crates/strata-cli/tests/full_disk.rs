//! A full disk must not wedge the store (issue 17, defect 5). On a 64 MiB tmpfs store, a
//! decompression bomb (a ~1 MB gzip layer of 1 GiB of zeros) fails cleanly with a message
//! that says what to do; with the free-space check off it fills the disk, and cleanup still
//! commits (the reserve); a load killed on the full disk leaves a snapshot that `fsck` names
//! and `snapshot rm` and `system prune -a` remove; afterwards the store takes and runs a
//! small image. And a pull killed with SIGKILL pins nothing once its process is gone, but
//! its partial download, which the next pull resumes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::containers::ready;
use common::{Strata, pseudo_random};
use sha2::Digest as _;
use strata_testutil::{
    Blob, Compression, Image, ImageBuilder, Layer, LayerBuilder, LayoutEntry, Proxy, Registry,
    busybox_layer, push_image, require_root, require_tool, write_layout,
};

/// A tmpfs of `size` MiB on a temporary directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn available(&self) -> u64 {
        let st = rustix::fs::statvfs(self.path()).unwrap();
        st.f_bavail * st.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A store on a 64 MiB tmpfs and a layout holding [`bomb`] as `bomb:latest`, or `None` when
/// the test skips.
fn bomb_on_small_disk() -> Option<(Tmpfs, Strata, PathBuf)> {
    if !ready() {
        return None;
    }
    let fs = Tmpfs::mount(64);
    let s = Strata::on_root(fs.path().join("root"));
    let dir = layout(&s, "bomb:latest", bomb());
    Some((fs, s, dir))
}

/// One layer: a file of 1 GiB of zeros, gzipped (about 1 MB), built as a stream.
fn bomb() -> &'static Image {
    static BOMB: OnceLock<Image> = OnceLock::new();
    BOMB.get_or_init(|| {
        let layer = zeros_layer("zeros", 1 << 30);
        assert!(layer.blob.size() < 4 << 20, "a bomb: small compressed");
        ImageBuilder::new().layer(layer).build()
    })
}

/// A gzipped layer holding one file of `size` zero bytes at `path`, built as a stream.
fn zeros_layer(path: &str, size: u64) -> Layer {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut diff = strata_types::Sha256::new();
    let mut put = |bytes: &[u8]| {
        gz.write_all(bytes).unwrap();
        diff.update(bytes);
    };
    put(zeros_tar_header(path, size).as_bytes());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..size >> 20 {
        put(&zeros);
    }
    put(&zeros[..(size % (1 << 20)) as usize]);
    put(&zeros[..(512 - size % 512) as usize % 512]);
    put(&[0u8; 1024]);
    Layer {
        blob: Blob::new(strata_testutil::media::OCI_LAYER_GZIP, gz.finish().unwrap()),
        diff_id: strata_types::Digest::from_hasher(diff).to_string(),
    }
}

fn zeros_tar_header(path: &str, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_path(path).unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(strata_testutil::LAYER_MTIME);
    header.set_cksum();
    header
}

/// An OCI layout holding `img` as `name`, on the ordinary disk (not the store's tmpfs).
fn layout(s: &Strata, name: &str, img: &Image) -> PathBuf {
    let dir = s.scratch(&format!("layout-{}", name.replace([':', '/'], "-")));
    write_layout(&dir, &[(name, LayoutEntry::Image(img))]).unwrap();
    dir
}

fn ingests(s: &Strata) -> Vec<PathBuf> {
    match std::fs::read_dir(s.root().join("content/ingest")) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// `fsck` has nothing to say (exit 0, no findings).
fn fsck_clean(s: &Strata) {
    let out = s.ok(&["fsck"]);
    assert_eq!(out, "", "fsck findings");
}

/// After a failure on the full store: prune frees everything, fsck is clean, and a small
/// image loads and runs.
fn recovers(s: &Strata, fs: &Tmpfs) {
    let out = s.ok(&["system", "prune", "-a", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(s.snapshot_keys(), Vec::<String>::new(), "no snapshot left");
    assert_eq!(s.ok(&["content", "ls", "-q"]), "", "no blob left");
    assert_eq!(ingests(s), Vec::<PathBuf>::new(), "no ingest left");
    fsck_clean(s);
    assert!(
        fs.available() > 48 << 20,
        "space is back: {} bytes free",
        fs.available()
    );
    let img = ImageBuilder::new()
        .layer(busybox_layer().unwrap().build(Compression::Gzip))
        .build();
    let dir = layout(s, "busybox:latest", &img);
    s.ok(&["load", "-q", "-i", dir.to_str().unwrap()]);
    let out = s.ok(&["run", "--rm", "busybox", "echo", "still works"]);
    assert_eq!(out, "still works\n");
    fsck_clean(s);
}

#[test]
fn a_decompression_bomb_fails_cleanly_and_the_store_recovers() {
    let Some((fs, s, dir)) = bomb_on_small_disk() else {
        return;
    };
    let err = s.fails(&["load", "-i", dir.to_str().unwrap()], b"");
    assert!(err.contains("stopped unpacking"), "{err}");
    assert!(
        err.contains("less than the") && err.contains("to keep free"),
        "{err}"
    );
    assert!(
        err.contains("system prune") && err.contains("min-free-space"),
        "says what to do: {err}"
    );
    assert_eq!(err.lines().count(), 2, "{err}");
    // The failed load cleaned up after itself.
    assert_eq!(s.snapshot_keys(), Vec::<String>::new());
    assert_eq!(s.ok(&["images", "-q"]), "");
    recovers(&s, &fs);
}

#[test]
fn with_the_free_space_check_off_a_full_disk_still_cleans_up() {
    let Some((fs, s, dir)) = bomb_on_small_disk() else {
        return;
    };
    s.ok(&["system", "settings", "min-free-space", "0"]);
    assert_eq!(s.ok(&["system", "settings", "min-free-space"]), "0\n");
    let err = s.fails(&["load", "-i", dir.to_str().unwrap()], b"");
    assert!(
        err.contains("no space left on the store's filesystem"),
        "{err}"
    );
    // Its own cleanup committed on the full disk: the reserve was given back for it (and
    // is made again by the next command, now that there is room).
    assert!(!s.root().join("reserved-space").exists());
    assert_eq!(s.snapshot_keys(), Vec::<String>::new());
    recovers(&s, &fs);
    assert!(s.root().join("reserved-space").exists(), "made again");
}

/// Starts `strata args`, and stops it (SIGSTOP) as soon as `when` holds; `None` if it ended
/// first.
fn stop_when(s: &Strata, args: &[&str], mut when: impl FnMut() -> bool) -> Option<u32> {
    let mut child = s.spawn_quiet(args);
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if when() {
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid as i32).unwrap(),
                rustix::process::Signal::STOP,
            )
            .unwrap();
            // Reaped by `kill`.
            drop(child);
            return Some(pid);
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// SIGKILLs the stopped process `pid` (a child of this one) and reaps it.
fn kill(pid: u32) {
    let p = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(p, rustix::process::Signal::KILL).unwrap();
    rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty()).unwrap();
}

/// Fills the tmpfs to the last page with a file outside the store.
fn fill(fs: &Tmpfs) -> PathBuf {
    let path = fs.path().join("filler");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    for chunk in [1 << 20, 4096] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    assert!(
        fs.available() < 64 << 10,
        "full: {} bytes free",
        fs.available()
    );
    path
}

#[test]
fn a_load_killed_on_a_full_disk_leaves_what_rm_prune_and_fsck_handle() {
    let Some((fs, s, dir)) = bomb_on_small_disk() else {
        return;
    };
    let args = ["load", "-i", dir.to_str().unwrap()];
    // Killed while it unpacks (none of its own cleanup runs), then the disk is full.
    let pid = stop_when(&s, &args, || fs.available() < 32 << 20).expect("caught unpacking");
    kill(pid);
    let filler = fill(&fs);
    let leftover = s
        .snapshot_keys()
        .into_iter()
        .find(|k| k.starts_with("extract-"))
        .expect("a half-unpacked snapshot");

    let report = s.ok(&["fsck"]);
    assert!(
        report.contains(&format!("snapshot overlayfs/{leftover}"))
            && report.contains(&format!("(process {pid} is gone)")),
        "{report}"
    );
    // Removal commits on the full disk; so does a prune.
    s.ok(&["snapshot", "rm", &leftover]);
    assert_eq!(s.snapshot_keys(), Vec::<String>::new());
    fill(&fs);
    let out = s.ok(&["system", "prune", "-a", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(s.ok(&["content", "ls", "-q"]), "", "the bomb's blobs went");
    std::fs::remove_file(filler).unwrap();
    recovers(&s, &fs);
}

/// A small layer and a 32 MiB incompressible one, so that a pull can be caught in the
/// middle of it.
fn big_image() -> Image {
    ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .file("small", b"small\n", 0o644)
                .build(Compression::Gzip),
        )
        .layer(
            LayerBuilder::new()
                .file("big", &pseudo_random(32 << 20, 17), 0o644)
                .build(Compression::Gzip),
        )
        .build()
}

/// Pulls `name` and SIGKILLs the pull once part of the big layer is in its ingest.
fn kill_mid_pull(s: &Strata, name: &str) -> u32 {
    let partial = || {
        ingests(s).iter().any(|d| {
            std::fs::metadata(d.join("data")).is_ok_and(|m| m.len() > 1 << 20 && m.len() < 30 << 20)
        })
    };
    let pid = stop_when(s, &["pull", name], partial).expect("caught mid-layer");
    kill(pid);
    pid
}

#[test]
fn a_killed_pull_pins_nothing_but_its_resumable_download() {
    if !require_root("unpacks layers with their owners") || !require_tool("docker-registry") {
        return;
    }
    let reg = Registry::start().unwrap();
    let img = big_image();
    push_image(&reg.url(), "big", "latest", &img).unwrap();
    let proxy = Proxy::start_blocking(&reg.addr());
    let name = format!("{}/big:latest", proxy.host());
    let big = img.layers[1].blob.digest.clone();
    let s = Strata::new();

    let pid = kill_mid_pull(&s, &name);
    let extract: Vec<String> = s
        .snapshot_keys()
        .into_iter()
        .filter(|k| k.starts_with("extract-"))
        .collect();
    // The big layer, half unpacked (and maybe the small one, unpacked beside it).
    assert!(!extract.is_empty());
    let report = s.ok(&["fsck"]);
    assert!(
        extract
            .iter()
            .all(|k| report.contains(&format!("snapshot overlayfs/{k}")))
            && report.contains(&format!("ingest pull-{big}"))
            && report.contains(&format!("(process {pid} is gone)")),
        "fsck names what the dead pull left: {report}"
    );

    // A collection (here after `image prune`) takes the half-unpacked layer at once, not a
    // day later when the lease expires; the partial download stays for the next pull.
    s.ok(&["image", "prune", "-f"]);
    assert!(
        !s.snapshot_keys().iter().any(|k| k.starts_with("extract-")),
        "{:?}",
        s.snapshot_keys()
    );
    // The big layer's partial download is kept (the small one's too if the kill caught it).
    assert!(!ingests(&s).is_empty(), "the partial download is kept");
    s.ok(&["pull", "-q", &name]);
    let resumed = proxy
        .requests()
        .iter()
        .any(|l| l.path.contains(&big) && l.range.is_some());
    assert!(resumed, "the second pull resumed the download");
    fsck_clean(&s);

    // `system prune` frees a dead pull's partial download too.
    s.ok(&["rmi", &name]);
    s.ok(&["system", "prune", "-a", "-f"]);
    kill_mid_pull(&s, &name);
    assert!(!ingests(&s).is_empty());
    s.ok(&["system", "prune", "-a", "-f"]);
    assert_eq!(s.snapshot_keys(), Vec::<String>::new());
    assert_eq!(ingests(&s), Vec::<PathBuf>::new());
    assert_eq!(s.ok(&["content", "ls", "-q"]), "");
    fsck_clean(&s);
}

/// Copies into a container (`cp`) and a new volume's copy-up of the image's content write on
/// the store's filesystem as unpacking does, and keep the same reserve.
#[test]
fn cp_and_volume_copy_up_keep_the_free_space_reserve() {
    if !ready() {
        return;
    }
    let fs = Tmpfs::mount(256);
    let s = Strata::on_root(fs.path().join("root"));
    s.ok(&["system", "settings", "min-free-space", "100m"]);
    let img = ImageBuilder::new()
        .layer(busybox_layer().unwrap().build(Compression::Gzip))
        .layer(zeros_layer("data/big", 96 << 20))
        .build();
    let dir = layout(&s, "big:latest", &img);
    s.ok(&["load", "-q", "-i", dir.to_str().unwrap()]);
    let reserve = 100 << 20;
    assert!(fs.available() > reserve, "{} bytes free", fs.available());
    // The copy stopped for want of space, and near the reserve, not on a full disk.
    let stopped_at_the_reserve = |err: &str| {
        assert!(
            err.contains("stopped unpacking") && err.contains("to keep free"),
            "{err}"
        );
        let free = fs.available();
        assert!(free > reserve - (4 << 20), "{free} bytes free");
    };

    // The copy-up of /data (96 MiB) into a new volume would leave about 60 MiB.
    let out = s.run_input(&["run", "--rm", "-v", "vol:/data", "big", "true"], b"");
    assert_eq!(
        out.status.code(),
        Some(125),
        "a failed create is Docker's 125"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    stopped_at_the_reserve(&err);

    // So would a 96 MiB file copied into a container.
    s.ok(&["create", "--name", "box", "big", "true"]);
    let mut tar = zeros_tar_header("big2", 96 << 20).as_bytes().to_vec();
    tar.resize(tar.len() + (96 << 20) + 1024, 0);
    let err = s.fails(&["cp", "-", "box:/"], &tar);
    stopped_at_the_reserve(&err);
    s.ok(&["rm", "box"]);
    s.ok(&["volume", "prune", "-a", "-f"]);
    assert_eq!(s.ok(&["volume", "ls", "-q"]), "");
    fsck_clean(&s);
}
