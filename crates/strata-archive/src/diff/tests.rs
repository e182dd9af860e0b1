//! The walk against a tree that changes under it: a hook runs right after a directory is
//! listed, where a live container would swap an entry.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use super::*;

type Hook = Box<dyn FnMut(&Path)>;

thread_local! {
    static AFTER_LISTING: RefCell<Option<Hook>> = const { RefCell::new(None) };
}

/// Called by the walk after it listed the directory `path` (tests only).
pub(super) fn after_listing(path: &Path) {
    AFTER_LISTING.with(|h| {
        if let Some(f) = h.borrow_mut().as_mut() {
            f(path);
        }
    });
}

fn with_hook<T>(hook: Hook, f: impl FnOnce() -> T) -> T {
    AFTER_LISTING.with(|h| *h.borrow_mut() = Some(hook));
    let r = f();
    AFTER_LISTING.with(|h| *h.borrow_mut() = None);
    r
}

type R = Result<(), Box<dyn std::error::Error>>;

/// (name, type, data) of each entry of a tar.
fn entries(tar: &[u8]) -> Result<Vec<(String, tar::EntryType, Vec<u8>)>, std::io::Error> {
    let mut a = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in a.entries()? {
        let mut e = e?;
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let kind = e.header().entry_type();
        let mut data = Vec::new();
        e.read_to_end(&mut data)?;
        out.push((name, kind, data));
    }
    Ok(out)
}

struct Scene {
    _tmp: tempfile::TempDir,
    host: PathBuf,
    root: PathBuf,
}

fn scene() -> Result<Scene, std::io::Error> {
    let tmp = tempfile::tempdir()?;
    let host = tmp.path().join("host");
    std::fs::create_dir(&host)?;
    std::fs::write(host.join("secret"), b"host secret")?;
    let root = tmp.path().join("rootfs");
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::write(root.join("etc/secret"), b"container")?;
    std::fs::write(root.join("file"), b"container file")?;
    Ok(Scene {
        _tmp: tmp,
        host,
        root,
    })
}

fn no_host_data(tar: &[u8]) -> R {
    for (name, _, data) in entries(tar)? {
        assert!(
            !data.windows(11).any(|w| w == b"host secret"),
            "host data exported as {name}"
        );
    }
    Ok(())
}

/// Once the top has been listed: `etc` (a directory) and `file` become symlinks to the host.
fn swap_at_top(sc: &Scene) -> Hook {
    let (root, host) = (sc.root.clone(), sc.host.clone());
    let mut done = false;
    Box::new(move |listed: &Path| {
        if listed == root && !done {
            done = true;
            std::fs::rename(root.join("etc"), root.join("etc.old")).ok();
            std::os::unix::fs::symlink(&host, root.join("etc")).ok();
            std::fs::remove_file(root.join("file")).ok();
            std::os::unix::fs::symlink(host.join("secret"), root.join("file")).ok();
        }
    })
}

/// Listed as a directory, a symlink to the host by the time it is opened: written as that
/// symlink, and nothing of the host is read through it.
#[test]
fn a_directory_swapped_for_a_symlink_after_listing_is_written_as_the_symlink() -> R {
    let sc = scene()?;
    let mut out = Vec::new();
    with_hook(swap_at_top(&sc), || tar_tree(&sc.root, &mut out))?;
    no_host_data(&out)?;
    let got = entries(&out)?;
    let kinds: Vec<(&str, tar::EntryType)> = got.iter().map(|(n, k, _)| (n.as_str(), *k)).collect();
    assert_eq!(
        kinds,
        [
            ("etc", tar::EntryType::Symlink),
            ("file", tar::EntryType::Symlink)
        ]
    );

    // The same through the two-tree diff and the overlay upper walk.
    let empty = tempfile::tempdir()?;
    for upper in [false, true] {
        std::fs::remove_file(sc.root.join("etc"))?;
        std::fs::remove_file(sc.root.join("file"))?;
        std::fs::rename(sc.root.join("etc.old"), sc.root.join("etc"))?;
        std::fs::write(sc.root.join("file"), b"container file")?;
        let mut out = Vec::new();
        with_hook(swap_at_top(&sc), || {
            if upper {
                diff_overlay_upper(&sc.root, &mut out)
            } else {
                diff_trees(empty.path(), &sc.root, &mut out)
            }
        })?;
        no_host_data(&out)?;
        assert!(
            entries(&out)?
                .iter()
                .all(|(n, _, _)| !n.starts_with("etc/"))
        );
    }
    Ok(())
}

/// A directory opened before it is swapped keeps being read: its children are the
/// container's, whatever the name points at afterwards.
#[test]
fn a_directory_swapped_after_it_was_opened_is_read_as_it_was() -> R {
    let sc = scene()?;
    let (root, host) = (sc.root.clone(), sc.host.clone());
    let mut done = false;
    let hook: Hook = Box::new(move |listed: &Path| {
        if listed == root.join("etc") && !done {
            done = true;
            std::fs::rename(root.join("etc"), root.join("etc.old")).ok();
            std::os::unix::fs::symlink(&host, root.join("etc")).ok();
        }
    });
    let mut out = Vec::new();
    with_hook(hook, || tar_tree(&sc.root, &mut out))?;
    no_host_data(&out)?;
    let got = entries(&out)?;
    let secret = got.iter().find(|(n, _, _)| n == "etc/secret");
    assert_eq!(
        secret.map(|(_, _, d)| d.as_slice()),
        Some(&b"container"[..])
    );
    Ok(())
}

/// Deeper than PATH_MAX: written, and applied back, whole.
#[test]
fn trees_deeper_than_path_max_round_trip() -> R {
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    std::fs::create_dir(&src)?;
    let mut dir = strata_fs::open_dir(&src)?;
    for _ in 0..450 {
        rustix::fs::mkdirat(&dir, "dddddddddd", rustix::fs::Mode::from_raw_mode(0o755))?;
        dir = strata_fs::open_subdir(dir.as_fd(), b"dddddddddd")?;
    }
    let f = rustix::fs::openat(
        &dir,
        "f",
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CREATE,
        rustix::fs::Mode::from_raw_mode(0o644),
    )?;
    rustix::io::write(&f, b"deep")?;
    let mut out = Vec::new();
    let stats = tar_tree(&src, &mut out)?;
    assert_eq!(stats.entries, 451);
    let deep = format!("{}f", "dddddddddd/".repeat(450));
    assert!(deep.len() > 4096);
    assert!(
        entries(&out)?
            .iter()
            .any(|(n, _, d)| *n == deep && d == b"deep")
    );

    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst)?;
    let opts = crate::ApplyOptions::new("deep", crate::WhiteoutMode::Delete);
    let applied = crate::apply_layer(&out[..], &dst, &opts)?;
    assert_eq!(applied.diff_id, stats.diff_id);
    let mut again = Vec::new();
    assert_eq!(tar_tree(&dst, &mut again)?.diff_id, stats.diff_id);
    strata_fs::remove_tree(&dst)?;
    strata_fs::remove_tree(&src)?;
    Ok(())
}
