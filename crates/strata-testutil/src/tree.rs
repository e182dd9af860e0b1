//! What a directory tree looks like, file by file, for comparing two trees: an unpacked
//! snapshot against `umoci unpack` of the same image, a child snapshot against its
//! expectation, a directory before and after a hostile layer.
//!
//! Compared: type, permission bits (incl. setuid/setgid/sticky), owner, size, content hash,
//! symlink target, device numbers, xattrs, and hardlink groups (named by the group's first
//! path). Not compared: timestamps and inode numbers.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use anyhow::Context;
use sha2::Digest as _;

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// `f` file, `d` directory, `l` symlink, `c` char device, `b` block device, `p` fifo, `s` socket.
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Files only.
    pub size: u64,
    /// sha256 of a file's content.
    pub content: Option<String>,
    pub link: Option<String>,
    pub rdev: Option<u64>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// For a file with several links in the tree: the first of its paths, in sorted order.
    pub hardlink_group: Option<String>,
}

/// Scans `root` (not following symlinks) into path → entry, paths relative to `root`
/// (`""` is the root itself). `skip_xattr` drops xattrs by name prefix (e.g. `security.selinux`).
pub fn scan_tree(root: &Path, skip_xattr: &[&str]) -> anyhow::Result<BTreeMap<String, TreeEntry>> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    scan(root, root, skip_xattr, &mut out, &mut inodes)?;
    for paths in inodes.values().filter(|p| p.len() > 1) {
        let first = paths.iter().min().cloned();
        for p in paths {
            if let Some(e) = out.get_mut(p) {
                e.hardlink_group.clone_from(&first);
            }
        }
    }
    Ok(out)
}

fn scan(
    root: &Path,
    path: &Path,
    skip_xattr: &[&str],
    out: &mut BTreeMap<String, TreeEntry>,
    inodes: &mut BTreeMap<(u64, u64), Vec<String>>,
) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("lstat {}", path.display()))?;
    let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
    let ft = meta.file_type();
    let kind = match () {
        _ if ft.is_dir() => 'd',
        _ if ft.is_symlink() => 'l',
        _ if ft.is_char_device() => 'c',
        _ if ft.is_block_device() => 'b',
        _ if ft.is_fifo() => 'p',
        _ if ft.is_socket() => 's',
        _ => 'f',
    };
    let content = if kind == 'f' {
        let mut h = sha2::Sha256::new();
        let mut f = fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        if meta.nlink() > 1 {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(rel.clone());
        }
        Some(hex::encode(h.finalize()))
    } else {
        None
    };
    let link = (kind == 'l')
        .then(|| fs::read_link(path).map(|l| l.to_string_lossy().into_owned()))
        .transpose()?;
    out.insert(
        rel,
        TreeEntry {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: if kind == 'f' { meta.size() } else { 0 },
            content,
            link,
            rdev: matches!(kind, 'c' | 'b').then(|| meta.rdev()),
            xattrs: xattrs(path, skip_xattr)?,
            hardlink_group: None,
        },
    );
    if kind == 'd' {
        let mut names: Vec<_> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            scan(root, &path.join(name), skip_xattr, out, inodes)?;
        }
    }
    Ok(())
}

fn xattrs(path: &Path, skip: &[&str]) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("listxattr {}", path.display())),
    };
    let mut out = BTreeMap::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if skip.iter().any(|s| name.starts_with(s)) {
            continue;
        }
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(path, name.as_str(), &mut value)
            .with_context(|| format!("getxattr {name} on {}", path.display()))?;
        value.truncate(len);
        out.insert(name, value);
    }
    Ok(out)
}

/// The differences between two scanned trees, one line each ("only in a", "differs: ..."),
/// at most `limit` of them.
pub fn tree_differences(
    a: &BTreeMap<String, TreeEntry>,
    b: &BTreeMap<String, TreeEntry>,
    limit: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, ea) in a {
        match b.get(path) {
            None => out.push(format!("only in first: /{path} ({})", ea.kind)),
            Some(eb) if eb != ea => out.push(format!(
                "differs: /{path}\n  first:  {ea:?}\n  second: {eb:?}"
            )),
            Some(_) => {}
        }
    }
    for (path, eb) in b {
        if !a.contains_key(path) {
            out.push(format!("only in second: /{path} ({})", eb.kind));
        }
    }
    out.truncate(limit);
    out
}

/// Panics with the first differences if the trees at `a` and `b` are not the same.
pub fn assert_same_tree(a: &Path, b: &Path, skip_xattr: &[&str]) {
    let ta = scan_tree(a, skip_xattr).unwrap_or_else(|e| panic!("scan {}: {e:#}", a.display()));
    let tb = scan_tree(b, skip_xattr).unwrap_or_else(|e| panic!("scan {}: {e:#}", b.display()));
    let diffs = tree_differences(&ta, &tb, 20);
    assert!(
        diffs.is_empty(),
        "trees differ: {} vs {} ({} entries vs {}):\n{}",
        a.display(),
        b.display(),
        ta.len(),
        tb.len(),
        diffs.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_trees_and_each_kind_of_difference() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            fs::create_dir(d.join("dir")).unwrap();
            fs::write(d.join("dir/f"), b"x").unwrap();
            fs::hard_link(d.join("dir/f"), d.join("g")).unwrap();
            std::os::unix::fs::symlink("dir/f", d.join("l")).unwrap();
        }
        assert_same_tree(a.path(), b.path(), &[]);
        let ta = scan_tree(a.path(), &[]).unwrap();
        assert_eq!(ta["g"].hardlink_group.as_deref(), Some("dir/f"));

        fs::write(b.path().join("dir/f"), b"y").unwrap();
        fs::remove_file(b.path().join("l")).unwrap();
        std::os::unix::fs::symlink("elsewhere", b.path().join("l")).unwrap();
        fs::write(b.path().join("new"), b"").unwrap();
        let diffs = tree_differences(&ta, &scan_tree(b.path(), &[]).unwrap(), 10);
        assert_eq!(diffs.len(), 4, "{diffs:#?}"); // dir/f and g (content), l (target), new
        assert!(diffs.iter().any(|d| d.starts_with("only in second: /new")));
    }
}
