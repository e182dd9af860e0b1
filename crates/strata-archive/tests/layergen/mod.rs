//! Random hostile layers from a byte string, and the outside-the-root check: shared by the
//! seeded test (`tests/random.rs`) and the cargo-fuzz target (`fuzz/fuzz_targets/apply_layer.rs`
//! includes this file with `#[path]`).
//!
//! The bytes drive a small grammar: names and link targets are built from components that
//! matter (`..`, `.`, empty, absolute prefixes, the real outside path, whiteout prefixes,
//! names that collide), entries are files, directories, symlinks, hardlinks, fifos, whiteouts,
//! opaque markers, PAX records (long names, xattrs including `trusted.overlay.*`), GNU long
//! names, and raw garbage headers; one or two layers are built and applied in both modes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use strata_archive::{ApplyOptions, Limits, WhiteoutMode, apply_layer};

/// Reads decisions from bytes; zeros once exhausted.
pub struct Src<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Src<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Src { data, pos: 0 }
    }

    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.byte() as usize % n.max(1)
    }

    pub fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// A tiny deterministic generator for the seeded test (xorshift64*).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

const COMPONENTS: &[&str] = &[
    "a",
    "b",
    "c",
    "..",
    ".",
    "",
    "victim",
    "dest-evil",
    "dest",
    ".wh.a",
    ".wh.b",
    ".wh..wh..opq",
    ".wh.",
    ".wh..",
    ".wh...",
    "link",
    "d",
];

fn name(src: &mut Src, outside: &str) -> Vec<u8> {
    let mut s = String::new();
    match src.below(8) {
        0 => s.push('/'),
        1 => s.push_str("./"),
        2 => {
            s.push_str(outside);
            s.push('/');
        }
        _ => {}
    }
    let n = 1 + src.below(4);
    for i in 0..n {
        if i > 0 {
            s.push('/');
        }
        s.push_str(COMPONENTS[src.below(COMPONENTS.len())]);
    }
    if src.below(10) == 0 {
        s.push('/');
    }
    s.into_bytes()
}

fn target(src: &mut Src, outside: &str) -> Vec<u8> {
    match src.below(6) {
        0 => b"/".to_vec(),
        1 => b"../../..".to_vec(),
        2 => outside.as_bytes().to_vec(),
        3 => format!("{outside}/victim").into_bytes(),
        _ => name(src, outside),
    }
}

fn header(name: &[u8], kind: tar::EntryType, link: &[u8], size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let f = &mut h.as_old_mut().name;
    let n = name.len().min(100);
    f[..n].copy_from_slice(&name[..n]);
    let l = &mut h.as_old_mut().linkname;
    let n = link.len().min(100);
    l[..n].copy_from_slice(&link[..n]);
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    h.set_cksum();
    h
}

fn push(out: &mut Vec<u8>, h: &tar::Header, data: &[u8]) {
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn pax_record(out: &mut Vec<u8>, k: &str, v: &[u8]) {
    let body = k.len() + v.len() + 3;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len += 1;
    }
    out.extend_from_slice(format!("{len} {k}=").as_bytes());
    out.extend_from_slice(v);
    out.push(b'\n');
}

/// One layer tar from `src`.
pub fn layer(src: &mut Src, outside: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let n = src.below(12);
    for _ in 0..n {
        let nm = name(src, outside);
        let mode = [0o644, 0o755, 0o4755, 0o000, 0o1777][src.below(5)];
        match src.below(12) {
            0 | 1 => {
                let data = vec![b'x'; src.below(1200)];
                push(
                    &mut out,
                    &header(&nm, tar::EntryType::Regular, b"", data.len() as u64, mode),
                    &data,
                );
            }
            2 | 3 => push(
                &mut out,
                &header(&nm, tar::EntryType::Directory, b"", 0, mode),
                &[],
            ),
            4 | 5 => {
                let t = target(src, outside);
                push(
                    &mut out,
                    &header(&nm, tar::EntryType::Symlink, &t, 0, 0o777),
                    &[],
                );
            }
            6 => {
                let t = target(src, outside);
                push(
                    &mut out,
                    &header(&nm, tar::EntryType::Link, &t, 0, mode),
                    &[],
                );
            }
            7 => push(
                &mut out,
                &header(&nm, tar::EntryType::Fifo, b"", 0, mode),
                &[],
            ),
            8 => {
                let mut p = Vec::new();
                pax_record(
                    &mut p,
                    "path",
                    &[nm.as_slice(), b"/", &name(src, outside)].concat(),
                );
                if src.below(2) == 0 {
                    pax_record(&mut p, "linkpath", &target(src, outside));
                }
                let key = [
                    "trusted.overlay.opaque",
                    "user.x",
                    "trusted.overlay.redirect",
                    "security.capability",
                ][src.below(4)];
                pax_record(&mut p, &format!("SCHILY.xattr.{key}"), b"y");
                if src.below(4) == 0 {
                    pax_record(&mut p, "size", b"99999999999");
                }
                push(
                    &mut out,
                    &header(
                        b"././@PaxHeader",
                        tar::EntryType::XHeader,
                        b"",
                        p.len() as u64,
                        0o644,
                    ),
                    &p,
                );
                let kind = [
                    tar::EntryType::Regular,
                    tar::EntryType::Symlink,
                    tar::EntryType::Link,
                    tar::EntryType::Directory,
                ][src.below(4)];
                push(&mut out, &header(b"pax-entry", kind, b"x", 0, mode), &[]);
            }
            9 => {
                let mut long = name(src, outside);
                long.extend_from_slice(&[b'/'; 1]);
                long.extend_from_slice(&[b'L'; 120]);
                long.push(0);
                push(
                    &mut out,
                    &header(
                        b"././@LongLink",
                        tar::EntryType::GNULongName,
                        b"",
                        long.len() as u64,
                        0o644,
                    ),
                    &long,
                );
                push(
                    &mut out,
                    &header(b"short", tar::EntryType::Regular, b"", 0, mode),
                    &[],
                );
            }
            10 => {
                // A raw block: garbage, or a header with a random type byte and size.
                let mut h = header(
                    &nm,
                    tar::EntryType::new(src.byte()),
                    b"",
                    src.byte() as u64 * 97,
                    mode,
                );
                if src.below(3) == 0 {
                    let i = src.below(512);
                    h.as_mut_bytes()[i] = src.byte();
                } else {
                    h.set_cksum();
                }
                out.extend_from_slice(h.as_bytes());
            }
            _ => {
                let mut w = nm.clone();
                w.extend_from_slice(b"/.wh.");
                w.extend_from_slice(COMPONENTS[src.below(COMPONENTS.len())].as_bytes());
                push(
                    &mut out,
                    &header(&w, tar::EntryType::Regular, b"", 0, 0),
                    &[],
                );
            }
        }
    }
    out.resize(out.len() + 1024, 0);
    if src.below(8) == 0 {
        let cut = src.below(out.len());
        out.truncate(cut);
    }
    out
}

/// Everything under `root` except `exclude`: type, mode, owner, size, content, link target.
pub fn snapshot(root: &Path, exclude: &[PathBuf]) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    fn walk(p: &Path, exclude: &[PathBuf], out: &mut BTreeMap<PathBuf, String>) {
        if exclude.iter().any(|e| e == p) {
            return;
        }
        let Ok(md) = fs::symlink_metadata(p) else {
            return;
        };
        let mut d = format!(
            "{:o} {} {} {} {}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.len(),
            md.rdev()
        );
        if md.is_file() {
            d.push_str(&format!(" {:?}", fs::read(p).ok()));
        } else if md.file_type().is_symlink() {
            d.push_str(&format!(" {:?}", fs::read_link(p).ok()));
        }
        out.insert(p.to_owned(), d);
        if md.is_dir()
            && let Ok(rd) = fs::read_dir(p)
        {
            for e in rd.flatten() {
                walk(&e.path(), exclude, out);
            }
        }
    }
    walk(root, exclude, &mut out);
    out
}

/// Builds one or two layers from `data` and applies them in delete mode and, when `overlay`
/// (root only: whiteouts are device nodes), in overlay mode, inside a fresh temp dir; panics
/// if anything outside the directory being written changed, if apply panics, or if the temp
/// tree cannot be set up (a check that did not run must not pass). Errors from apply are
/// expected and ignored.
pub fn check(data: &[u8], overlay: bool) {
    let tmp = match tempfile::Builder::new().prefix("strata-fuzz").tempdir() {
        Ok(t) => t,
        Err(e) => panic!("temp dir: {e}"),
    };
    let t = tmp.path();
    let outside = t.to_string_lossy().into_owned();
    let setup = || -> std::io::Result<()> {
        fs::create_dir(t.join("dest"))?;
        fs::create_dir(t.join("dest-evil"))?;
        fs::write(t.join("dest-evil/file"), b"evil")?;
        fs::write(t.join("victim"), b"victim")?;
        fs::create_dir(t.join("lower"))?;
        Ok(())
    };
    let mut src = Src::new(data);
    let layers: Vec<Vec<u8>> = (0..1 + src.below(2))
        .map(|_| layer(&mut src, &outside))
        .collect();
    let limits = Limits {
        max_uncompressed_bytes: 1 << 20,
        max_entries: 64,
        max_entry_size: 1 << 16,
    };
    for mode in [WhiteoutMode::Delete, WhiteoutMode::Overlay] {
        if mode == WhiteoutMode::Overlay && !overlay {
            continue;
        }
        for sub in ["dest", "dest-evil", "lower", "victim"] {
            let p = t.join(sub);
            let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
        }
        if let Err(e) = setup() {
            panic!("set up {}: {e}", t.display());
        }
        for (i, tar) in layers.iter().enumerate() {
            let top = i + 1 == layers.len();
            let dest = if mode == WhiteoutMode::Overlay && !top {
                t.join("lower")
            } else {
                t.join("dest")
            };
            let mut opts = ApplyOptions::new(format!("fuzz-{i}"), mode);
            opts.limits = limits;
            if mode == WhiteoutMode::Overlay && top && i > 0 {
                opts.lowers = vec![t.join("lower")];
            }
            let before = snapshot(t, std::slice::from_ref(&dest));
            let _ = apply_layer(&tar[..], &dest, &opts);
            let after = snapshot(t, std::slice::from_ref(&dest));
            assert!(
                before == after,
                "{mode:?} layer {i} changed things outside {}:\nbefore {before:#?}\nafter {after:#?}",
                dest.display()
            );
        }
    }
}
