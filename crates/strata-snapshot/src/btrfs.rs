//! btrfs: each snapshot's `fs/` is a subvolume. A snapshot on a parent is a btrfs snapshot of
//! the parent's subvolume (copy-on-write, constant time); a committed snapshot's subvolume is
//! made read-only. Views bind their parent's subvolume read-only, as native does.
//!
//! The ioctls are called directly (`BTRFS_IOC_SUBVOL_CREATE`, `BTRFS_IOC_SNAP_CREATE_V2`,
//! `BTRFS_IOC_SNAP_DESTROY`, `BTRFS_IOC_SUBVOL_{GET,SET}FLAGS`): no dependency on
//! btrfs-progs at run time. Commit flips the subvolume's read-only flag in place rather than
//! taking a read-only snapshot and destroying the writable one (containerd's way), so that a
//! snapshot keeps one directory, named by its id, for life.
//!
//! Mounts are bind mounts of the subvolume's path rather than `btrfs` mounts of the device
//! with `subvolid=`: the same for a runtime, and no device lookup.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::engine::Backend;
use crate::error::FsError;
use crate::native::{bind_mount, full_copy_target};
use crate::{ApplyTarget, Mount, SnapshotError, SnapshotKind, fsutil};

const BTRFS_SUPER_MAGIC: u64 = 0x9123_683e;
/// The inode number of every subvolume's root directory (`BTRFS_FIRST_FREE_OBJECTID`).
const SUBVOL_ROOT_INO: u64 = 256;
const BTRFS_SUBVOL_RDONLY: u64 = 1 << 1;

const BTRFS_PATH_NAME_MAX: usize = 4087;
const BTRFS_SUBVOL_NAME_MAX: usize = 4039;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; BTRFS_PATH_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_vol_args_v2` (the qgroup/devid unions unused and zero).
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; BTRFS_SUBVOL_NAME_MAX + 1],
}

const fn iow(nr: u64, size: usize) -> u64 {
    (1 << 30) | ((size as u64) << 16) | (0x94 << 8) | nr
}

const fn ior(nr: u64, size: usize) -> u64 {
    (2 << 30) | ((size as u64) << 16) | (0x94 << 8) | nr
}

const IOC_SUBVOL_CREATE: u64 = iow(14, size_of::<VolArgs>());
const IOC_SNAP_DESTROY: u64 = iow(15, size_of::<VolArgs>());
const IOC_SNAP_CREATE_V2: u64 = iow(23, size_of::<VolArgsV2>());
const IOC_SUBVOL_GETFLAGS: u64 = ior(25, size_of::<u64>());
const IOC_SUBVOL_SETFLAGS: u64 = iow(26, size_of::<u64>());

#[derive(Debug)]
pub(crate) struct Btrfs;

impl Backend for Btrfs {
    fn name(&self) -> &'static str {
        "btrfs"
    }

    fn init(&self, root: &Path) -> Result<(), SnapshotError> {
        let st = rustix::fs::statfs(root).map_err(|e| SnapshotError::Open {
            name: "btrfs",
            what: "inspect filesystem of",
            path: root.to_owned(),
            source: e.into(),
        })?;
        #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
        let magic = st.f_type as u64;
        if magic != BTRFS_SUPER_MAGIC {
            return Err(SnapshotError::NotBtrfs {
                path: root.to_owned(),
                magic,
            });
        }
        Ok(())
    }

    fn create(&self, dir: &Path, kind: SnapshotKind, parents: &[PathBuf]) -> Result<(), FsError> {
        let fs = dir.join("fs");
        match (kind, parents.first()) {
            (SnapshotKind::Active, None) => {
                subvol_create(dir, "fs")?;
                // The new subvolume's root got the process umask.
                fs::set_permissions(&fs, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .map_err(FsError::at("set mode of", &fs))
            }
            (SnapshotKind::Active, Some(parent)) => snapshot(parent, dir, "fs"),
            (_, _) => fsutil::mkdir(&fs, 0o755),
        }
    }

    fn mounts(&self, dir: &Path, kind: SnapshotKind, parents: &[PathBuf]) -> Vec<Mount> {
        vec![bind_mount(dir, kind, parents)]
    }

    fn apply_target(&self, dir: &Path, _parents: &[PathBuf]) -> ApplyTarget {
        full_copy_target(dir)
    }

    fn committed(&self, dir: &Path) -> Result<(), FsError> {
        let fs = dir.join("fs");
        if !is_subvolume(&fs) {
            return Ok(());
        }
        let fd = open_dir(&fs)?;
        let mut flags: u64 = 0;
        ioctl(&fd, IOC_SUBVOL_GETFLAGS, &mut flags).map_err(FsError::at("read flags of", &fs))?;
        if flags & BTRFS_SUBVOL_RDONLY == 0 {
            let mut ro = flags | BTRFS_SUBVOL_RDONLY;
            ioctl(&fd, IOC_SUBVOL_SETFLAGS, &mut ro).map_err(FsError::at("make read-only", &fs))?;
        }
        Ok(())
    }

    fn remove(&self, dir: &Path) -> Result<(), FsError> {
        if is_subvolume(&dir.join("fs")) {
            let fd = open_dir(dir)?;
            let mut args = VolArgs {
                fd: 0,
                name: [0; BTRFS_PATH_NAME_MAX + 1],
            };
            args.name[..2].copy_from_slice(b"fs");
            match ioctl(&fd, IOC_SNAP_DESTROY, &mut args) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(FsError::new("destroy subvolume", dir.join("fs"), e)),
            }
        }
        fsutil::remove_tree(dir)
    }
}

fn is_subvolume(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.ino() == SUBVOL_ROOT_INO)
}

fn open_dir(path: &Path) -> Result<OwnedFd, FsError> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FsError::new("open", path, e.into()))
}

fn subvol_create(parent: &Path, name: &str) -> Result<(), FsError> {
    let fd = open_dir(parent)?;
    let mut args = VolArgs {
        fd: 0,
        name: [0; BTRFS_PATH_NAME_MAX + 1],
    };
    args.name[..name.len()].copy_from_slice(name.as_bytes());
    ioctl(&fd, IOC_SUBVOL_CREATE, &mut args)
        .map_err(FsError::at("create subvolume", parent.join(name)))
}

/// A writable snapshot of the subvolume `source` as `dest_dir/name`.
fn snapshot(source: &Path, dest_dir: &Path, name: &str) -> Result<(), FsError> {
    let src = open_dir(source)?;
    let dst = open_dir(dest_dir)?;
    let mut args = VolArgsV2 {
        fd: i64::from(src.as_raw_fd()),
        transid: 0,
        flags: 0,
        unused: [0; 4],
        name: [0; BTRFS_SUBVOL_NAME_MAX + 1],
    };
    args.name[..name.len()].copy_from_slice(name.as_bytes());
    ioctl(&dst, IOC_SNAP_CREATE_V2, &mut args).map_err(FsError::at("snapshot subvolume", source))
}

fn ioctl<T>(fd: &OwnedFd, request: u64, arg: &mut T) -> io::Result<()> {
    // SAFETY: each request above is paired with the argument type the kernel expects for it
    // (same layout as the C struct), `arg` is valid for reads and writes of that size for the
    // duration of the call, and `fd` is an open descriptor.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(size_of::<VolArgs>(), 4096);
        assert_eq!(size_of::<VolArgsV2>(), 4096);
        assert_eq!(IOC_SUBVOL_CREATE, 0x5000_940e);
        assert_eq!(IOC_SNAP_DESTROY, 0x5000_940f);
        assert_eq!(IOC_SNAP_CREATE_V2, 0x5000_9417);
        assert_eq!(IOC_SUBVOL_GETFLAGS, 0x8008_9419);
        assert_eq!(IOC_SUBVOL_SETFLAGS, 0x4008_941a);
    }
}
