//! Helpers shared by the integration tests: a temp tree with things outside the root to
//! protect, a snapshot of everything in it, and tar building for hostile entries.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use strata_archive::{ApplyOptions, ApplyStats, ArchiveError, WhiteoutMode, apply_layer};

pub mod cases;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Whether the root-only part of a test (device nodes, trusted xattrs, other owners) runs:
/// without root it is left out with a `SKIPPED` line, and under `STRATA_TEST_REQUIRE_ROOT=1`
/// (CI) the test fails instead, so CI always reaches those assertions.
pub fn root_part(reason: &str) -> bool {
    strata_testutil::require_root(reason)
}

/// [`root_part`] for the root-only hostile cases, asked once per process (the table is
/// rebuilt for every case).
pub fn root_cases() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| root_part("the fifo and chown hostile cases"))
}

/// A temp dir holding `dest` (the root layers are applied into) and, beside it, things a
/// breakout would touch: `dest-evil/file` (a sibling sharing dest's prefix), `victim`,
/// `victimdir/inner`, and `lower*` directories for overlay mode.
pub struct Env {
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> std::io::Result<Env> {
        let tmp = tempfile::Builder::new()
            .prefix("strata-hostile")
            .tempdir()?;
        let t = tmp.path();
        fs::create_dir(t.join("dest"))?;
        fs::create_dir(t.join("dest-evil"))?;
        fs::write(t.join("dest-evil/file"), b"evil sibling")?;
        fs::write(t.join("victim"), b"victim")?;
        fs::set_permissions(t.join("victim"), fs::Permissions::from_mode(0o644))?;
        fs::create_dir(t.join("victimdir"))?;
        fs::write(t.join("victimdir/inner"), b"inner")?;
        fs::set_permissions(t.join("victimdir"), fs::Permissions::from_mode(0o755))?;
        Ok(Env { tmp })
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn dest(&self) -> PathBuf {
        self.path().join("dest")
    }

    /// The absolute path of the temp dir, as a string for symlink and entry names.
    pub fn abs(&self) -> String {
        self.path().to_string_lossy().into_owned()
    }
}

fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    let mut names = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(c.as_c_str(), &mut names[..]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for key in names[..n].split(|&b| b == 0).filter(|k| !k.is_empty()) {
        let Ok(k) = CString::new(key) else { continue };
        let mut v = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(c.as_c_str(), k.as_c_str(), &mut v[..]) {
            v.truncate(len);
            out.push((String::from_utf8_lossy(key).into_owned(), v));
        }
    }
    out.sort();
    out
}

/// Every path under `root` except `exclude` (and what is below them), with type, mode,
/// owner, size, content hash, symlink target, device number and xattrs.
pub fn snapshot(root: &Path, exclude: &[PathBuf]) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    fn walk(p: &Path, exclude: &[PathBuf], out: &mut BTreeMap<PathBuf, String>) {
        if exclude.iter().any(|e| e == p) {
            return;
        }
        let Ok(md) = fs::symlink_metadata(p) else {
            return;
        };
        let ft = md.file_type();
        let mut desc = format!(
            "mode={:o} uid={} gid={} size={} rdev={} nlink={} xattrs={:?}",
            md.mode(),
            md.uid(),
            md.gid(),
            if ft.is_dir() { 0 } else { md.len() },
            md.rdev(),
            if ft.is_dir() { 0 } else { md.nlink() },
            xattrs(p)
        );
        if ft.is_file() {
            let data = fs::read(p).unwrap_or_default();
            desc.push_str(&format!(" sha256={:?}", Sha256::digest(&data).as_slice()));
        } else if ft.is_symlink() {
            desc.push_str(&format!(" -> {:?}", fs::read_link(p).ok()));
        }
        out.insert(p.to_owned(), desc);
        if ft.is_dir()
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

/// Applies `tar` into `dest` and asserts that nothing under `env` outside `dest` changed.
pub fn apply_contained(
    env: &Env,
    tar: &[u8],
    dest: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, ArchiveError> {
    apply_contained_in(&[(env.path(), vec![dest.to_owned()])], tar, dest, opts)
}

/// Applies `tar` into `dest` and asserts that nothing under each `(root, excluded)` of
/// `watched`, outside its excluded paths, changed.
pub fn apply_contained_in(
    watched: &[(&Path, Vec<PathBuf>)],
    tar: &[u8],
    dest: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, ArchiveError> {
    let take = || -> Vec<_> { watched.iter().map(|(r, ex)| snapshot(r, ex)).collect() };
    let before = take();
    let r = apply_layer(tar, dest, opts);
    let after = take();
    for (before, after) in before.iter().zip(&after) {
        if before == after {
            continue;
        }
        let mut diff = String::new();
        for (k, v) in before {
            if after.get(k) != Some(v) {
                diff.push_str(&format!("- {} {v}\n+ {:?}\n", k.display(), after.get(k)));
            }
        }
        for (k, v) in after {
            if !before.contains_key(k) {
                diff.push_str(&format!("+ {} {v}\n", k.display()));
            }
        }
        panic!(
            "layer {} changed things outside {}:\n{diff}",
            opts.layer,
            dest.display()
        );
    }
    r
}

pub fn opts(layer: &str, mode: WhiteoutMode) -> ApplyOptions {
    ApplyOptions::new(layer, mode)
}

/// A PAX extended header carrying `records`, to put before an entry with `raw_entry`.
pub fn pax(records: &[(&str, &[u8])]) -> (tar::Header, Vec<u8>) {
    let mut data = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3;
        let mut len = body + 1;
        while len.to_string().len() + body != len {
            len += 1;
        }
        data.extend_from_slice(format!("{len} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let h = strata_testutil::raw_header(
        b"././@PaxHeader",
        tar::EntryType::XHeader,
        data.len() as u64,
    );
    (h, data)
}

/// A raw header for `name` of `kind` with a link name and size.
pub fn raw(name: &[u8], kind: tar::EntryType, link: &[u8], size: u64) -> tar::Header {
    let mut h = strata_testutil::raw_header(name, kind, size);
    let field = &mut h.as_old_mut().linkname;
    field.fill(0);
    let n = link.len().min(100);
    field[..n].copy_from_slice(&link[..n]);
    h.set_cksum();
    h
}
