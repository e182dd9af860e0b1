//! `ApplyOptions::reuse_from`: files of the same layer unpacked elsewhere are hardlinked
//! (metadata already right) or cloned instead of written, never changed, and a copy that
//! differs from the tar shows up when the tree is checked against the diffID.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{TestResult, opts};
use strata_archive::{WhiteoutMode, apply_layer, split_diff_id};
use strata_testutil::LayerBuilder;

/// The layer's tar and its unpacked copy (as Docker's `diff` directory would hold it).
fn layer_and_copy(dir: &Path) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let tar = LayerBuilder::new()
        .dir("bin", 0o755)
        .file("bin/tool", &vec![7u8; 100_000], 0o755)
        .hardlink("bin/tool-link", "bin/tool")
        .file("etc/conf", b"conf", 0o644)
        .file("etc/mode", b"mode", 0o644)
        .file("empty", b"", 0o644)
        .tar_bytes();
    let copy = dir.join("copy");
    fs::create_dir(&copy)?;
    let mut o = opts("reuse-source", WhiteoutMode::Overlay);
    o.writeback = false;
    apply_layer(&tar[..], &copy, &o)?;
    // Docker's copy of one file has another mode: it must not be linked.
    fs::set_permissions(copy.join("etc/mode"), fs::Permissions::from_mode(0o600))?;
    Ok(tar)
}

#[test]
fn files_are_linked_or_cloned_and_the_source_stays_as_it_was() -> TestResult {
    if !strata_testutil::require_root("hardlinks keep owners only as root") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let tar = layer_and_copy(tmp.path())?;
    let copy = tmp.path().join("copy");
    let before: Vec<(u64, u32, i64)> = ["bin/tool", "etc/conf", "etc/mode"]
        .iter()
        .map(|p| {
            let m = fs::metadata(copy.join(p)).unwrap();
            (m.ino(), m.mode(), m.mtime())
        })
        .collect();

    let dest = tmp.path().join("dest");
    fs::create_dir(&dest)?;
    let mut o = opts("reuse", WhiteoutMode::Overlay);
    o.reuse_from = Some(copy.clone());
    o.record_split = true;
    let stats = apply_layer(&tar[..], &dest, &o)?;
    assert_eq!(stats.diff_id, strata_types::Digest::sha256_of(&tar));
    // tool and conf are shared (linked here, or cloned where the filesystem can); mode's
    // metadata differs, so a clone is all it may get, and empty has no data.
    let shared = stats.reused.cloned + stats.reused.linked;
    assert!(shared >= 2, "{:?}", stats.reused);
    assert!(stats.reused.bytes >= 100_004, "{:?}", stats.reused);
    let ino = |p: &str| fs::metadata(dest.join(p)).unwrap().ino();
    if stats.reused.linked > 0 {
        assert_eq!(ino("bin/tool"), before[0].0);
        assert_ne!(ino("etc/mode"), before[2].0, "another mode: never linked");
    }
    // The layer's own hardlink points at the layer's tool.
    assert_eq!(ino("bin/tool-link"), ino("bin/tool"));
    assert_eq!(fs::metadata(dest.join("etc/mode"))?.mode() & 0o7777, 0o644);
    assert_eq!(fs::read(dest.join("etc/conf"))?, b"conf");
    let split = stats.split.ok_or("no split")??;
    assert_eq!(split_diff_id(&split, &dest)?, stats.diff_id);
    // Nothing about the source changed but its link counts.
    for (p, (ino, mode, mtime)) in ["bin/tool", "etc/conf", "etc/mode"].iter().zip(before) {
        let m = fs::metadata(copy.join(p))?;
        assert_eq!((m.ino(), m.mode(), m.mtime()), (ino, mode, mtime), "{p}");
    }
    Ok(())
}

#[test]
fn a_copy_that_differs_from_the_tar_is_caught_by_the_tree_check() -> TestResult {
    if !strata_testutil::require_root("hardlinks keep owners only as root") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let tar = layer_and_copy(tmp.path())?;
    let copy = tmp.path().join("copy");
    // Same size, same metadata (mtime put back): only the content differs.
    let conf = copy.join("etc/conf");
    let mtime = fs::metadata(&conf)?.modified()?;
    fs::write(&conf, b"CONF")?;
    fs::File::options()
        .write(true)
        .open(&conf)?
        .set_modified(mtime)?;

    let dest = tmp.path().join("dest");
    fs::create_dir(&dest)?;
    let mut o = opts("reuse", WhiteoutMode::Overlay);
    o.reuse_from = Some(copy);
    o.record_split = true;
    let stats = apply_layer(&tar[..], &dest, &o)?;
    // The stream is what the diffID covers; the tree is not what the stream said.
    assert_eq!(stats.diff_id, strata_types::Digest::sha256_of(&tar));
    let split = stats.split.ok_or("no split")??;
    assert_ne!(split_diff_id(&split, &dest)?, stats.diff_id);
    Ok(())
}
