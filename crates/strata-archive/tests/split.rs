//! Tar split: a layer unpacked with `record_split` is rebuilt byte for byte from its tree and
//! the recorded headers, in both whiteout modes, whatever the tar's framing (GNU and PAX
//! extensions, sparse files, hardlinks, odd padding, bytes after the end marker); and a tree
//! that no longer holds what the layer wrote gives a different diffID, never a wrong "same".

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use common::{TestResult, opts};
use strata_archive::{
    ApplyStats, WhiteoutMode, apply_layer, docker_split_from, rebuild_docker_layer,
    rebuild_docker_layer_prefetched, rebuild_layer, split_diff_id,
};

fn apply_recorded(tar: &[u8], dest: &Path, mode: WhiteoutMode) -> Result<ApplyStats, String> {
    let mut o = opts("split-test", mode);
    o.record_split = true;
    apply_layer(tar, dest, &o).map_err(|e| e.to_string())
}

/// Applies `tar` in `mode`, rebuilds it and checks the bytes and the diffID.
fn round_trip(tar: &[u8], mode: WhiteoutMode) -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest)?;
    let stats = apply_recorded(tar, &dest, mode)?;
    let split = stats.split.ok_or("no split recorded")??;
    let mut rebuilt = Vec::new();
    let n = rebuild_layer(&split, &dest, &mut rebuilt)?;
    assert_eq!(n, rebuilt.len() as u64);
    assert_eq!(rebuilt.len(), tar.len(), "{mode:?}: length");
    assert!(rebuilt == tar, "{mode:?}: rebuilt bytes differ");
    assert_eq!(split_diff_id(&split, &dest)?, stats.diff_id);
    assert_eq!(stats.diff_id, strata_types::Digest::sha256_of(tar));
    Ok(())
}

/// A tree with what real layers hold: long names (GNU and PAX), a big file crossing the
/// unpacker's chunks, empty files, hardlinks, symlinks, a sparse file.
fn sample_tree(root: &Path) -> TestResult {
    let long = "d".repeat(120);
    let deep = root.join(&long).join("e".repeat(150));
    fs::create_dir_all(&deep)?;
    fs::write(deep.join("f".repeat(200)), b"long name")?;
    fs::create_dir_all(root.join("usr/bin"))?;
    let big: Vec<u8> = (0..(3 << 20) + 777).map(|i| (i * 31 % 251) as u8).collect();
    fs::write(root.join("usr/bin/big"), &big)?;
    fs::write(root.join("usr/bin/empty"), b"")?;
    fs::hard_link(root.join("usr/bin/big"), root.join("usr/bin/big-link"))?;
    std::os::unix::fs::symlink("big", root.join("usr/bin/sym"))?;
    let f = fs::File::create(root.join("sparse"))?;
    f.set_len(8 << 20)?;
    f.write_all_at(b"head", 0)?;
    f.write_all_at(b"tail", (8 << 20) - 4)?;
    fs::write(root.join(".wh.gone"), b"")?;
    Ok(())
}

fn gnu_tar(src: &Path, args: &[&str]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let out = Command::new("tar")
        .args(args)
        .arg("-C")
        .arg(src)
        .args(["-cf", "-", "."])
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(out.stdout)
}

/// A temp dir holding `src`, a [`sample_tree`]; `None` without GNU tar to archive it.
type Source = Option<(tempfile::TempDir, std::path::PathBuf)>;
fn sample_source() -> Result<Source, Box<dyn std::error::Error>> {
    if !strata_testutil::require_tool("tar") {
        return Ok(None);
    }
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    fs::create_dir(&src)?;
    sample_tree(&src)?;
    Ok(Some((tmp, src)))
}

#[test]
fn gnu_and_pax_tars_rebuild_exactly_in_both_modes() -> TestResult {
    let Some((_tmp, src)) = sample_source()? else {
        return Ok(());
    };
    let overlay = common::root_part("overlay whiteouts are device nodes");
    // GNU tar pads the archive to a 10 KiB record: bytes after the end marker.
    for args in [
        &["--format=gnu", "--sparse"][..],
        &["--format=posix"][..],
        &["--format=ustar", "--exclude=./d*"][..],
        &["--format=posix", "--pax-option=delete=atime,delete=ctime"][..],
    ] {
        let tar = gnu_tar(&src, args)?;
        for mode in [WhiteoutMode::Delete, WhiteoutMode::Overlay] {
            if mode == WhiteoutMode::Overlay && !overlay {
                continue;
            }
            round_trip(&tar, mode).map_err(|e| format!("{args:?} {mode:?}: {e}"))?;
        }
    }
    Ok(())
}

#[test]
fn dockers_tar_split_format_round_trips() -> TestResult {
    let Some((tmp, src)) = sample_source()? else {
        return Ok(());
    };
    let tar = gnu_tar(&src, &["--format=posix"])?;
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest)?;
    let stats = apply_recorded(&tar, &dest, WhiteoutMode::Delete)?;
    let split = stats.split.ok_or("no split")??;
    let json = docker_split_from(&split, &dest)?;
    let mut rebuilt = Vec::new();
    let n = rebuild_docker_layer(&json[..], &dest, &mut rebuilt)?;
    assert_eq!(n, tar.len() as u64);
    assert!(rebuilt == tar, "rebuilt bytes differ");
    // The same from the file, with the files read ahead by other threads.
    let json_file = tmp.path().join("tar-split.json.gz");
    fs::write(&json_file, &json)?;
    let mut again = Vec::new();
    rebuild_docker_layer_prefetched(&json_file, &dest, &mut again)?;
    assert!(again == tar, "prefetched rebuild differs");
    // A GNU sparse file has no tar-split form.
    let sparse = gnu_tar(&src, &["--format=gnu", "--sparse"])?;
    let dest = tmp.path().join("dest-sparse");
    fs::create_dir(&dest)?;
    let split = apply_recorded(&sparse, &dest, WhiteoutMode::Delete)?
        .split
        .ok_or("no split")??;
    let err = docker_split_from(&split, &dest).unwrap_err();
    assert!(err.to_string().contains("sparse"), "{err}");
    Ok(())
}

/// A ustar header for `name` with `size` bytes of data.
fn header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).ok();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

#[test]
fn odd_framing_is_kept_verbatim() -> TestResult {
    let mut tar = Vec::new();
    // A file whose padding is not zero, a whiteout carrying data the applier skips, a
    // directory with data, then the end marker and trailing garbage.
    tar.extend_from_slice(header("a", tar::EntryType::Regular, 5).as_bytes());
    tar.extend_from_slice(b"hello");
    tar.extend_from_slice(&[0xAB; 507]);
    tar.extend_from_slice(header("dir/", tar::EntryType::Directory, 3).as_bytes());
    tar.extend_from_slice(b"xyz");
    tar.extend_from_slice(&[7; 509]);
    tar.extend_from_slice(header("dir/.wh.x", tar::EntryType::Regular, 4).as_bytes());
    tar.extend_from_slice(b"junk");
    tar.extend_from_slice(&[0; 508]);
    tar.extend_from_slice(&[0; 1024]);
    tar.extend_from_slice(b"trailing bytes after the end");
    round_trip(&tar, WhiteoutMode::Delete)
}

#[test]
fn a_tree_that_changed_gives_another_diff_id() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest)?;
    let mut tar = Vec::new();
    tar.extend_from_slice(header("f", tar::EntryType::Regular, 3).as_bytes());
    tar.extend_from_slice(b"one");
    tar.extend_from_slice(&[0; 509]);
    tar.extend_from_slice(&[0; 1024]);
    let stats = apply_recorded(&tar, &dest, WhiteoutMode::Delete)?;
    let split = stats.split.ok_or("no split")??;
    fs::write(dest.join("f"), b"two")?;
    assert_ne!(split_diff_id(&split, &dest)?, stats.diff_id);
    fs::remove_file(dest.join("f"))?;
    assert!(split_diff_id(&split, &dest).is_err());
    fs::write(dest.join("f"), b"o")?;
    let err = split_diff_id(&split, &dest).unwrap_err();
    assert!(err.to_string().contains("changed"), "{err}");
    Ok(())
}

#[test]
fn a_file_written_twice_in_one_layer_does_not_verify() -> TestResult {
    // The first copy's data is gone from the tree: the split can only say so through the
    // diffID, which the caller checks.
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest)?;
    let mut tar = Vec::new();
    for data in [&b"first"[..], &b"second!"[..]] {
        tar.extend_from_slice(header("f", tar::EntryType::Regular, data.len() as u64).as_bytes());
        tar.extend_from_slice(data);
        tar.extend_from_slice(&vec![0; 512 - data.len()]);
    }
    tar.extend_from_slice(&[0; 1024]);
    let stats = apply_recorded(&tar, &dest, WhiteoutMode::Delete)?;
    let split = stats.split.ok_or("no split")??;
    match split_diff_id(&split, &dest) {
        Ok(d) => assert_ne!(d, stats.diff_id),
        Err(e) => assert!(e.to_string().contains("changed"), "{e}"),
    }
    Ok(())
}

#[test]
fn a_damaged_split_is_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest)?;
    let mut tar = Vec::new();
    tar.extend_from_slice(&[0; 1024]);
    let stats = apply_recorded(&tar, &dest, WhiteoutMode::Delete)?;
    let split = stats.split.ok_or("no split")??;
    let mut sink = Vec::new();
    let err = rebuild_layer(&split[..split.len() / 2], &dest, &mut sink).unwrap_err();
    assert!(err.to_string().starts_with("tar split:"), "{err}");
    let err = rebuild_layer(b"not zstd", &dest, &mut sink).unwrap_err();
    assert!(err.to_string().starts_with("tar split:"), "{err}");
    Ok(())
}
