//! Apply then diff: a tar written in the canonical form (built here independently of the
//! crate's writer) comes back byte for byte, in delete mode through `diff_trees` against an
//! empty tree and in overlay mode through `diff_overlay_upper`. And `diff_trees` finds exactly
//! what changed between two trees.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{TestResult, opts, root_part, snapshot};
use strata_archive::{WhiteoutMode, apply_layer, diff_overlay_upper, diff_trees};

#[derive(Clone, Copy, PartialEq)]
enum K {
    File,
    Dir,
    Sym,
    Hard,
    Fifo,
    /// A whiteout or opaque marker: empty file, everything zero.
    Marker,
}

struct E {
    path: String,
    kind: K,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    data: Vec<u8>,
    link: String,
    xattrs: Vec<(&'static str, &'static [u8])>,
}

fn e(path: &str, kind: K, mode: u32) -> E {
    E {
        path: path.into(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        data: Vec::new(),
        link: String::new(),
        xattrs: Vec::new(),
    }
}

fn record(out: &mut Vec<u8>, k: &str, v: &[u8]) {
    let body = k.len() + v.len() + 3;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len += 1;
    }
    out.extend_from_slice(format!("{len} {k}=").as_bytes());
    out.extend_from_slice(v);
    out.push(b'\n');
}

fn block(out: &mut Vec<u8>, h: &tar::Header, data: &[u8]) {
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn header(name: &[u8], kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    let f = &mut h.as_old_mut().name;
    let n = name.len().min(100);
    f[..n].copy_from_slice(&name[..n]);
    h.set_entry_type(kind);
    h.set_mode(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h.set_mtime(0);
    if let Some(u) = h.as_ustar_mut() {
        u.set_device_major(0);
        u.set_device_minor(0);
    }
    h
}

/// The canonical form: ustar, PAX for long names and xattrs, numeric owners, whiteouts
/// zeroed, two zero blocks at the end.
fn canonical(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for x in entries {
        let mut name = x.path.clone().into_bytes();
        if x.kind == K::Dir {
            name.push(b'/');
        }
        let mut pax = Vec::new();
        if name.len() > 100 {
            record(&mut pax, "path", &name);
        }
        if x.link.len() > 100 {
            record(&mut pax, "linkpath", x.link.as_bytes());
        }
        let mut xs = x.xattrs.clone();
        xs.sort();
        for (k, v) in xs {
            record(&mut pax, &format!("SCHILY.xattr.{k}"), v);
        }
        if !pax.is_empty() {
            let mut h = header(b"././@PaxHeader", tar::EntryType::XHeader);
            h.set_mode(0o644);
            h.set_size(pax.len() as u64);
            h.set_cksum();
            block(&mut out, &h, &pax);
        }
        let kind = match x.kind {
            K::File | K::Marker => tar::EntryType::Regular,
            K::Dir => tar::EntryType::Directory,
            K::Sym => tar::EntryType::Symlink,
            K::Hard => tar::EntryType::Link,
            K::Fifo => tar::EntryType::Fifo,
        };
        let mut h = header(&name, kind);
        let l = &mut h.as_old_mut().linkname;
        let n = x.link.len().min(100);
        l[..n].copy_from_slice(&x.link.as_bytes()[..n]);
        if x.kind != K::Marker {
            h.set_mode(x.mode);
            h.set_uid(x.uid);
            h.set_gid(x.gid);
            h.set_mtime(x.mtime);
            h.set_size(x.data.len() as u64);
        }
        h.set_cksum();
        block(&mut out, &h, &x.data);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// As root: owners kept, a setuid file and a fifo. Otherwise everything is the caller's own.
fn sample(root: bool) -> Vec<E> {
    let owner = if root { 1000 } else { 0 };
    let long_dir = format!("deep/{}", "d".repeat(90));
    let mut v = vec![
        e("bin", K::Dir, 0o755),
        E {
            data: b"#!/bin/sh\n".to_vec(),
            xattrs: vec![("user.origin", b"test")],
            ..e("bin/sh", K::File, 0o755)
        },
        E {
            link: "bin/sh".into(),
            ..e("bin/sh2", K::Hard, 0o755)
        },
        E {
            link: "/bin/sh".into(),
            ..e("bin/zsh", K::Sym, 0o777)
        },
        e("deep", K::Dir, 0o700),
        e(&long_dir, K::Dir, 0o755),
        E {
            data: vec![b'z'; 5000],
            ..e(&format!("{long_dir}/{}", "f".repeat(60)), K::File, 0o644)
        },
        e("empty", K::File, 0o600),
        E {
            uid: owner,
            gid: owner,
            mtime: 1,
            ..e("home", K::Dir, 0o1777)
        },
    ];
    if root {
        v.push(E {
            data: b"suid".to_vec(),
            ..e("home/suid", K::File, 0o4755)
        });
        v.push(e("home/zfifo", K::Fifo, 0o640));
    } else {
        let (uid, gid) = (rustix::process::geteuid(), rustix::process::getegid());
        for x in &mut v {
            (x.uid, x.gid) = (uid.as_raw().into(), gid.as_raw().into());
        }
    }
    v
}

#[test]
fn apply_then_diff_trees_reproduces_a_canonical_tar() -> TestResult {
    let tar = canonical(&sample(root_part("setuid files, fifos and owners")));
    let tmp = tempfile::tempdir()?;
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    fs::create_dir(&old)?;
    fs::create_dir(&new)?;
    let stats = apply_layer(&tar[..], &new, &opts("l", WhiteoutMode::Delete))?;
    let mut out = Vec::new();
    let d = diff_trees(&old, &new, &mut out)?;
    if out != tar {
        fs::write("/tmp/strata-roundtrip-expected.tar", &tar)?;
        fs::write("/tmp/strata-roundtrip-got.tar", &out)?;
        panic!("diff differs from the applied tar (see /tmp/strata-roundtrip-*.tar)");
    }
    assert_eq!(d.diff_id, stats.diff_id);
    assert_eq!(d.bytes, tar.len() as u64);
    Ok(())
}

#[test]
fn overlay_apply_then_upper_diff_reproduces_the_layer() -> TestResult {
    if !strata_testutil::require_root("overlay whiteouts") {
        return Ok(());
    }
    let mut entries = vec![
        e(".wh.gone", K::Marker, 0),
        e("a", K::Dir, 0o755),
        e("a/.wh..wh..opq", K::Marker, 0),
        E {
            data: b"b".to_vec(),
            ..e("a/b", K::File, 0o644)
        },
        e("a/c", K::Dir, 0o755),
        e("a/c/.wh.x", K::Marker, 0),
    ];
    entries.extend(sample(true));
    entries.sort_by(|a, b| {
        let key = |x: &E| x.path.split('/').map(str::to_owned).collect::<Vec<_>>();
        key(a).cmp(&key(b))
    });
    let tar = canonical(&entries);
    let tmp = tempfile::tempdir()?;
    let stats = apply_layer(&tar[..], tmp.path(), &opts("l", WhiteoutMode::Overlay))?;
    let mut out = Vec::new();
    let d = diff_overlay_upper(tmp.path(), &mut out)?;
    if out != tar {
        fs::write("/tmp/strata-overlay-expected.tar", &tar)?;
        fs::write("/tmp/strata-overlay-got.tar", &out)?;
        panic!("upper diff differs from the applied tar (see /tmp/strata-overlay-*.tar)");
    }
    assert_eq!(d.diff_id, stats.diff_id);
    Ok(())
}

fn cp_a(from: &Path, to: &Path) -> TestResult {
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    assert!(st.success());
    Ok(())
}

#[test]
fn diff_trees_emits_exactly_the_change_and_applies_back() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (old, new, replay) = (
        tmp.path().join("old"),
        tmp.path().join("new"),
        tmp.path().join("replay"),
    );
    fs::create_dir(&old)?;
    let base = strata_testutil::LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/same", b"unchanged", 0o644)
        .file("etc/sneaky", b"aaaa", 0o644)
        .file("etc/mode", b"m", 0o644)
        .dir("var/cache/deep", 0o755)
        .file("var/cache/deep/f", b"x", 0o644)
        .file("var/keep", b"k", 0o644)
        .tar_bytes();
    apply_layer(&base[..], &old, &opts("base", WhiteoutMode::Delete))?;
    cp_a(&old, &new)?;
    cp_a(&old, &replay)?;
    // Same size, same whole-second mtime, different content: only a content compare sees it.
    let sneaky = new.join("etc/sneaky");
    let mtime = fs::metadata(&sneaky)?.modified()?;
    fs::write(&sneaky, b"bbbb")?;
    fs::File::options()
        .write(true)
        .open(&sneaky)?
        .set_modified(mtime)?;
    fs::set_permissions(new.join("etc/mode"), fs::Permissions::from_mode(0o600))?;
    fs::remove_dir_all(new.join("var/cache"))?;
    fs::write(new.join("var/added"), b"new")?;

    let mut out = Vec::new();
    let d1 = diff_trees(&old, &new, &mut out)?;
    let d2 = diff_trees(&old, &new, std::io::sink())?;
    assert_eq!(d1, d2, "same change, same diffID");
    let mut names = Vec::new();
    for en in tar::Archive::new(&out[..]).entries()? {
        names.push(String::from_utf8_lossy(&en?.path_bytes()).into_owned());
    }
    assert_eq!(
        names,
        [
            "etc/",
            "etc/mode",
            "etc/sneaky",
            "var/",
            "var/.wh.cache",
            "var/added"
        ]
    );
    apply_layer(&out[..], &replay, &opts("diff", WhiteoutMode::Delete))?;
    let strip = |root: &Path| {
        snapshot(root, &[])
            .into_iter()
            .filter(|(p, _)| p != root)
            .map(|(p, v)| (p.strip_prefix(root).map(Path::to_owned).unwrap_or(p), v))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&replay), strip(&new));
    Ok(())
}
