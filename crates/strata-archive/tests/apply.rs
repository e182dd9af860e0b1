//! Applying well-formed layers: every entry type and its metadata, replacement rules,
//! whiteouts in both modes, lowers, compression and the diffID.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;

use common::{TestResult, opts, pax, raw};
use strata_archive::{
    ApplyOptions, ArchiveError, Compression, WhiteoutMode, apply_layer, detect_compression,
};
use strata_testutil::{LAYER_MTIME, LayerBuilder};
use tar::EntryType;

fn xattr(p: &std::path::Path, k: &str) -> Option<Vec<u8>> {
    let mut v = vec![0u8; 256];
    rustix::fs::lgetxattr(p, k, &mut v[..])
        .ok()
        .map(|n| v[..n].to_vec())
}

#[test]
fn every_entry_type_with_its_metadata() -> TestResult {
    if !strata_testutil::require_root("chown, mknod and security.capability") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path();
    let mut b = LayerBuilder::new()
        .dir("ro", 0o555)
        .file("ro/file", b"hello", 0o4755)
        .owner(1000, 2000)
        .file("owned", b"x", 0o2640)
        .owner(0, 0)
        .symlink("link", "/ro/file")
        .hardlink("ro/hard", "ro/file")
        .file(&format!("long/{}", "n".repeat(180)), b"gnu long", 0o644)
        .dir("sticky", 0o1777);
    let (h, d) = pax(&[
        ("mtime", b"1600000000.123456789"),
        ("SCHILY.xattr.user.note", b"v"),
        (
            "SCHILY.xattr.security.capability",
            &[
                1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        (
            "path",
            format!("pax/{}/{}", "p".repeat(200), "q".repeat(150)).as_bytes(),
        ),
    ]);
    b = b.raw_entry(h, d);
    b = b.raw_entry(raw(b"ignored", EntryType::Regular, b"", 3), b"pax".to_vec());
    let mut fifo = raw(b"fifo", EntryType::Fifo, b"", 0);
    fifo.set_mode(0o640);
    fifo.set_cksum();
    b = b.raw_entry(fifo, Vec::new());
    let mut null = raw(b"null", EntryType::Char, b"", 0);
    null.set_device_major(1)?;
    null.set_device_minor(3)?;
    null.set_mode(0o666);
    null.set_cksum();
    b = b.raw_entry(null, Vec::new());
    let tar = b.tar_bytes();
    let stats = apply_layer(&tar[..], dest, &opts("l", WhiteoutMode::Delete))?;
    assert_eq!(
        stats.diff_id.to_string(),
        strata_testutil::sha256_digest(&tar)
    );
    assert_eq!(stats.entries, 10);
    assert_eq!(stats.compression, Compression::None);

    let md = fs::symlink_metadata(dest.join("ro"))?;
    assert_eq!(md.mode() & 0o7777, 0o555);
    assert_eq!(
        md.mtime(),
        LAYER_MTIME as i64,
        "directory times are set after children"
    );
    let f = fs::symlink_metadata(dest.join("ro/file"))?;
    assert_eq!(f.mode() & 0o7777, 0o4755);
    assert_eq!(f.mtime(), LAYER_MTIME as i64);
    assert_eq!(f.nlink(), 2);
    assert_eq!(fs::symlink_metadata(dest.join("ro/hard"))?.ino(), f.ino());
    let o = fs::symlink_metadata(dest.join("owned"))?;
    assert_eq!((o.uid(), o.gid(), o.mode() & 0o7777), (1000, 2000, 0o2640));
    assert_eq!(fs::read_link(dest.join("link"))?.to_str(), Some("/ro/file"));
    assert_eq!(
        fs::read(dest.join(format!("long/{}", "n".repeat(180))))?,
        b"gnu long"
    );
    assert_eq!(
        fs::symlink_metadata(dest.join("sticky"))?.mode() & 0o7777,
        0o1777
    );
    let p = dest.join(format!("pax/{}/{}", "p".repeat(200), "q".repeat(150)));
    let pm = fs::symlink_metadata(&p)?;
    assert_eq!((pm.mtime(), pm.mtime_nsec()), (1_600_000_000, 123_456_789));
    assert_eq!(xattr(&p, "user.note").as_deref(), Some(&b"v"[..]));
    assert!(xattr(&p, "security.capability").is_some());
    let fm = fs::symlink_metadata(dest.join("fifo"))?;
    assert!(fm.file_type().is_fifo());
    assert_eq!(fm.mode() & 0o7777, 0o640);
    let n = fs::symlink_metadata(dest.join("null"))?;
    assert!(n.file_type().is_char_device());
    assert_eq!(n.rdev(), rustix::fs::makedev(1, 3));
    Ok(())
}

#[test]
fn compression_is_detected_and_the_diff_id_is_the_tar_digest() -> TestResult {
    let mut tar = LayerBuilder::new()
        .file("a", b"same content", 0o644)
        .tar_bytes();
    // Bytes after the end-of-archive marker are part of the stream and of the diffID.
    tar.extend_from_slice(&[0u8; 8192]);
    let layer = strata_testutil::Layer::from_tar(tar.clone(), strata_testutil::Compression::None);
    for (c, expect) in [
        (strata_testutil::Compression::None, Compression::None),
        (strata_testutil::Compression::Gzip, Compression::Gzip),
        (strata_testutil::Compression::Zstd, Compression::Zstd),
    ] {
        let blob = strata_testutil::Layer::from_tar(tar.clone(), c).blob.bytes;
        assert_eq!(detect_compression(&blob), expect);
        let tmp = tempfile::tempdir()?;
        let s = apply_layer(&blob[..], tmp.path(), &opts("l", WhiteoutMode::Delete))?;
        assert_eq!(s.compression, expect);
        assert_eq!(s.diff_id.to_string(), layer.diff_id);
        assert_eq!(s.uncompressed_bytes, tar.len() as u64);
        assert_eq!(s.compressed_bytes, blob.len() as u64);
        assert_eq!(fs::read(tmp.path().join("a"))?, b"same content");
    }
    let tmp = tempfile::tempdir()?;
    let err = apply_layer(
        &b"\xfd7zXZ\0rest"[..],
        tmp.path(),
        &opts("l", WhiteoutMode::Delete),
    )
    .err()
    .ok_or("xz accepted")?;
    assert!(matches!(
        err,
        ArchiveError::UnsupportedCompression { format: "xz", .. }
    ));
    Ok(())
}

#[test]
fn replacement_rules() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path();
    let o = opts("l", WhiteoutMode::Delete);
    let l1 = LayerBuilder::new()
        .file("f", b"old", 0o644)
        .hardlink("f2", "f")
        .dir("d", 0o755)
        .file("d/child", b"c", 0o644)
        .file("file-then-dir", b"x", 0o644)
        .dir("dir-then-file", 0o755)
        .file("dir-then-file/x", b"x", 0o644)
        .tar_bytes();
    apply_layer(&l1[..], dest, &o)?;
    let l2 = LayerBuilder::new()
        .file("f", b"new", 0o600)
        .dir("d", 0o700)
        .dir("file-then-dir", 0o755)
        .file("dir-then-file", b"now a file", 0o644)
        .tar_bytes();
    apply_layer(&l2[..], dest, &o)?;
    // A file over a hardlinked file gets a new inode: the other link keeps the old data.
    assert_eq!(fs::read(dest.join("f"))?, b"new");
    assert_eq!(fs::read(dest.join("f2"))?, b"old");
    // A directory over a directory keeps its contents and takes the new metadata.
    assert_eq!(fs::read(dest.join("d/child"))?, b"c");
    assert_eq!(fs::metadata(dest.join("d"))?.mode() & 0o7777, 0o700);
    assert!(fs::metadata(dest.join("file-then-dir"))?.is_dir());
    assert_eq!(fs::read(dest.join("dir-then-file"))?, b"now a file");
    Ok(())
}

#[test]
fn delete_mode_whiteouts_and_opaque_directories_in_any_order() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path();
    let o = opts("l", WhiteoutMode::Delete);
    let base = LayerBuilder::new()
        .file("gone", b"x", 0o644)
        .dir("gonedir/sub", 0o755)
        .file("gonedir/sub/f", b"x", 0o644)
        .dir("opq1/keepdir", 0o755)
        .file("opq1/old", b"x", 0o644)
        .file("opq1/keepdir/old", b"x", 0o644)
        .dir("opq2", 0o755)
        .file("opq2/old", b"x", 0o644)
        .tar_bytes();
    apply_layer(&base[..], dest, &o)?;
    let top = LayerBuilder::new()
        .whiteout("gone")
        .whiteout("gonedir")
        .whiteout("never-existed")
        // Marker first, new entries after.
        .opaque("opq1")
        .file("opq1/new", b"n", 0o644)
        // New entries first, marker after: they survive too.
        .dir("opq2/newdir", 0o755)
        .file("opq2/new", b"n", 0o644)
        .opaque("opq2")
        .file("d/.wh..wh.plnk", b"", 0o644)
        .tar_bytes();
    apply_layer(&top[..], dest, &o)?;
    assert!(!dest.join("gone").exists());
    assert!(!dest.join("gonedir").exists());
    let names = |d: &str| -> std::io::Result<Vec<String>> {
        let mut v: Vec<String> = fs::read_dir(dest.join(d))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        v.sort();
        Ok(v)
    };
    assert_eq!(names("opq1")?, ["new"]);
    assert_eq!(names("opq2")?, ["new", "newdir"]);
    assert!(!dest.join("d/.wh..wh.plnk").exists());
    Ok(())
}

#[test]
fn overlay_mode_whiteouts_lowers_and_copy_up() -> TestResult {
    if !strata_testutil::require_root("overlay whiteouts are device nodes and trusted xattrs") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let lower = tmp.path().join("lower");
    let upper = tmp.path().join("upper");
    fs::create_dir(&lower)?;
    fs::create_dir(&upper)?;
    let l1 = LayerBuilder::new()
        .owner(7, 8)
        .dir("usr", 0o750)
        .dir("usr/bin", 0o711)
        .file("usr/bin/perl", b"#!perl", 0o755)
        .tar_bytes();
    let st = apply_layer(&l1[..], &lower, &opts("l1", WhiteoutMode::Overlay))?;
    // Every directory has its own entry: the layer does not depend on any lower.
    assert_eq!(st.lower_lookups, 0);
    let l2 = LayerBuilder::new()
        .hardlink("usr/bin/perl5", "usr/bin/perl")
        .whiteout("etc/gone")
        .opaque("var")
        .tar_bytes();
    let mut o = opts("l2", WhiteoutMode::Overlay);
    o.lowers = vec![lower.clone()];
    let st = apply_layer(&l2[..], &upper, &o)?;
    // usr, usr/bin, etc, var: implied directories; usr/bin/perl: a hardlink target below.
    assert_eq!(st.lower_lookups, 5);
    // The lower file was copied up, and the new name links to the copy.
    let perl = fs::symlink_metadata(upper.join("usr/bin/perl"))?;
    assert_eq!(fs::read(upper.join("usr/bin/perl5"))?, b"#!perl");
    assert_eq!(
        fs::symlink_metadata(upper.join("usr/bin/perl5"))?.ino(),
        perl.ino()
    );
    assert_eq!(
        (perl.uid(), perl.gid(), perl.mode() & 0o7777),
        (7, 8, 0o755)
    );
    assert_eq!(fs::read(lower.join("usr/bin/perl"))?, b"#!perl");
    // Parents not in the tar took the lower's metadata.
    let usr = fs::symlink_metadata(upper.join("usr"))?;
    assert_eq!((usr.uid(), usr.mode() & 0o7777), (7, 0o750));
    assert_eq!(usr.mtime(), LAYER_MTIME as i64);
    let w = fs::symlink_metadata(upper.join("etc/gone"))?;
    assert!(w.file_type().is_char_device() && w.rdev() == 0);
    assert_eq!(
        xattr(&upper.join("var"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );

    // A hardlink to nothing anywhere names the entry and the target.
    let bad = LayerBuilder::new()
        .hardlink("x", "usr/bin/missing")
        .tar_bytes();
    let up2 = tmp.path().join("up2");
    fs::create_dir(&up2)?;
    let err = apply_layer(&bad[..], &up2, &o).err().ok_or("applied")?;
    assert!(matches!(err, ArchiveError::HardlinkTarget { .. }), "{err}");
    assert!(err.to_string().contains("usr/bin/missing"), "{err}");

    // A whiteout in a lower hides the file from hardlink lookups.
    let l3 = LayerBuilder::new().whiteout("usr/bin/perl").tar_bytes();
    let mid = tmp.path().join("mid");
    fs::create_dir(&mid)?;
    apply_layer(&l3[..], &mid, &o)?;
    let mut o2 = opts("l4", WhiteoutMode::Overlay);
    o2.lowers = vec![mid, lower];
    let up3 = tmp.path().join("up3");
    fs::create_dir(&up3)?;
    let err = apply_layer(&l2[..], &up3, &o2).err().ok_or("applied")?;
    assert!(matches!(err, ArchiveError::HardlinkTarget { .. }), "{err}");
    Ok(())
}

#[test]
fn gnu_sparse_files_keep_their_holes() -> TestResult {
    if !strata_testutil::require_tool("tar") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    fs::create_dir(&src)?;
    let f = fs::File::create(src.join("sparse"))?;
    f.set_len(64 << 20)?;
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"head", 0)?;
    f.write_all_at(b"middle", 32 << 20)?;
    f.write_all_at(b"tail", (64 << 20) - 4)?;
    drop(f);
    let out = Command::new("tar")
        .args(["--sparse", "--format=gnu", "-C"])
        .arg(&src)
        .args(["-cf", "-", "sparse"])
        .output()?;
    assert!(out.status.success());
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest)?;
    apply_layer(&out.stdout[..], &dest, &opts("l", WhiteoutMode::Delete))?;
    let md = fs::metadata(dest.join("sparse"))?;
    assert_eq!(md.len(), 64 << 20);
    assert!(
        md.blocks() * 512 < 1 << 20,
        "holes were filled: {} blocks",
        md.blocks()
    );
    let data = fs::read(dest.join("sparse"))?;
    assert_eq!(&data[..4], b"head");
    assert_eq!(&data[32 << 20..(32 << 20) + 6], b"middle");
    assert_eq!(&data[(64 << 20) - 4..], b"tail");
    assert!(data[4..32 << 20].iter().all(|&b| b == 0));
    Ok(())
}

#[test]
fn unprivileged_options_skip_ownership() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let tar = LayerBuilder::new()
        .owner(1234, 1234)
        .file("f", b"x", 0o644)
        .tar_bytes();
    let o = ApplyOptions {
        same_owner: false,
        ..opts("l", WhiteoutMode::Delete)
    };
    apply_layer(&tar[..], tmp.path(), &o)?;
    let md = fs::metadata(tmp.path().join("f"))?;
    assert_eq!(md.uid(), rustix::process::geteuid().as_raw());
    Ok(())
}
