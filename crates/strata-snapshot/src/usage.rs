//! `du` for one snapshot's tree.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::FileType;

use crate::Usage;
use crate::error::FsError;

/// Blocks allocated (`st_blocks * 512`) and inodes under `root`, `root` included; an inode
/// with several links is counted once. Stays on `root`'s filesystem, as `du -x` does. Walks
/// through directory fds: any depth, any path length.
pub(crate) fn disk_usage(root: &Path) -> Result<Usage, FsError> {
    let top = match strata_fs::open_dir(root) {
        Ok(fd) => fd,
        // Not a directory: just itself.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            let m = std::fs::symlink_metadata(root).map_err(FsError::at("inspect", root))?;
            return Ok(Usage {
                size: std::os::unix::fs::MetadataExt::blocks(&m) * 512,
                inodes: 1,
            });
        }
        Err(e) => return Err(FsError::new("open", root, e)),
    };
    let st = rustix::fs::fstat(&top).map_err(|e| FsError::new("inspect", root, e.into()))?;
    let dev = st.st_dev;
    let mut usage = Usage {
        size: st.st_blocks as u64 * 512,
        inodes: 1,
    };
    let mut seen = HashSet::new();
    strata_fs::walk(top.as_fd(), |m| {
        if m.st_dev != dev {
            return false;
        }
        let dir = strata_fs::file_type(m) == FileType::Directory;
        if dir || m.st_nlink <= 1 || seen.insert((m.st_dev, m.st_ino)) {
            usage.inodes += 1;
            usage.size += m.st_blocks as u64 * 512;
        }
        true
    })
    .map_err(FsError::at("measure", root))?;
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::MetadataExt;

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
