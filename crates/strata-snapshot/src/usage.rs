//! `du` for one snapshot's tree.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::Usage;
use crate::error::FsError;

/// Blocks allocated (`st_blocks * 512`) and inodes under `root`, `root` included; an inode
/// with several links is counted once. Stays on `root`'s filesystem, as `du -x` does.
pub(crate) fn disk_usage(root: &Path) -> Result<Usage, FsError> {
    let top = fs::symlink_metadata(root).map_err(FsError::at("inspect", root))?;
    let mut usage = Usage::default();
    let mut seen = HashSet::new();
    let mut count = |m: &fs::Metadata, usage: &mut Usage| {
        if m.nlink() > 1 && !m.is_dir() && !seen.insert((m.dev(), m.ino())) {
            return;
        }
        usage.inodes += 1;
        usage.size += m.blocks() * 512;
    };
    count(&top, &mut usage);
    if !top.is_dir() {
        return Ok(usage);
    }
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).map_err(FsError::at("list", &dir))? {
            let entry = entry.map_err(FsError::at("list", &dir))?;
            let path = entry.path();
            let m = fs::symlink_metadata(&path).map_err(FsError::at("inspect", &path))?;
            if m.dev() != top.dev() {
                continue;
            }
            count(&m, &mut usage);
            if m.is_dir() {
                dirs.push(path);
            }
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_blocks_inodes_and_hardlinks_once() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("fs");
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/big"), vec![7u8; 64 * 1024]).unwrap();
        fs::hard_link(root.join("d/big"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("d/big", root.join("sym")).unwrap();
        let u = disk_usage(&root).unwrap();
        // fs, d, big (once), sym
        assert_eq!(u.inodes, 4);
        let blocks: u64 = ["", "d", "d/big", "sym"]
            .iter()
            .map(|p| fs::symlink_metadata(root.join(p)).unwrap().blocks() * 512)
            .sum();
        assert_eq!(u.size, blocks);
        assert!(u.size >= 64 * 1024);
    }
}
