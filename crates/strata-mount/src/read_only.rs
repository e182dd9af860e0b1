//! A recursively read-only copy of a mount tree, for OCI runtimes that cannot make a bind
//! read-only all the way down themselves (no `rro` in their `features`, e.g. runc 1.0).
//!
//! The tree at a path is cloned as a detached mount (`open_tree(OPEN_TREE_CLONE |
//! AT_RECURSIVE)`), made read-only and private at every level in one call
//! (`mount_setattr(AT_RECURSIVE)`, Linux 5.12), and only then attached at a target: there is
//! no moment at which any part of the copy is writable. A runtime that binds the target
//! `rbind,ro` copies the per-mount read-only flags with it, so the container sees what `rro`
//! would have given.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use crate::MountError;

/// Whether this kernel has `mount_setattr(2)`, which [`bind_read_only_recursive`] needs.
pub fn can_bind_read_only_recursive() -> bool {
    // No fd and a zero size: a kernel that knows the call refuses the arguments (EINVAL or
    // EBADF), one that does not answers ENOSYS.
    mount_setattr(None, 0, None) != Err(Errno::NOSYS)
}

/// Mounts a copy of the mount tree at `source` on `target` (an existing directory, or a file
/// when `source` is one), read-only and private at every level.
pub fn bind_read_only_recursive(source: &Path, target: &Path) -> Result<(), MountError> {
    let fail = |call: &str, e: Errno| MountError::Mount {
        kind: "bind".to_owned(),
        from: source.to_owned(),
        target: target.to_owned(),
        detail: format!("{call}, making the bind recursively read-only"),
        source: e.into(),
    };
    let tree = rustix::mount::open_tree(
        CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(|e| fail("open_tree", e))?;
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    mount_setattr(Some(tree.as_fd()), libc::AT_RECURSIVE, Some(&attr))
        .map_err(|e| fail("mount_setattr", e))?;
    rustix::mount::move_mount(
        tree.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| fail("move_mount", e))
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | flags, attr, sizeof attr)`: rustix has no wrapper
/// for it (1.1), so this is the one raw system call of the crate.
#[allow(unsafe_code)]
fn mount_setattr(
    fd: Option<BorrowedFd<'_>>,
    flags: libc::c_int,
    attr: Option<&libc::mount_attr>,
) -> Result<(), Errno> {
    let raw_fd = fd.map_or(-1, |f| f.as_raw_fd());
    let (ptr, size) = match attr {
        Some(a) => (
            std::ptr::from_ref(a),
            std::mem::size_of::<libc::mount_attr>(),
        ),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: the path is a NUL-terminated static string, `ptr` is null with size 0 or
    // points at a live `mount_attr` of `size` bytes, and the kernel only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            raw_fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | flags,
            ptr,
            size,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::INVAL))
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::{UnmountFlags, unmount_all};

    fn mount_tmpfs(at: &Path) -> bool {
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "strata-ro-test"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A writable tree with a tmpfs inside becomes, at the target, read-only at both levels,
    /// while the source stays writable.
    #[test]
    fn the_copy_is_read_only_at_every_level() {
        if !strata_testutil::require_root("mounts a tmpfs and a recursive bind") {
            return;
        }
        assert!(
            can_bind_read_only_recursive(),
            "Linux 5.12+ has mount_setattr"
        );
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir(&dst).unwrap();
        assert!(mount_tmpfs(&src.join("sub")));
        let result = bind_read_only_recursive(&src, &dst);
        let writes = [
            std::fs::write(dst.join("x"), b"x"),
            std::fs::write(dst.join("sub/x"), b"x"),
        ];
        let _ = unmount_all(&dst, UnmountFlags::DETACH);
        let source_writable = std::fs::write(src.join("sub/y"), b"y").is_ok();
        let _ = unmount_all(&src.join("sub"), UnmountFlags::DETACH);
        result.unwrap();
        for w in writes {
            assert_eq!(
                w.unwrap_err().raw_os_error(),
                Some(libc::EROFS),
                "read-only"
            );
        }
        assert!(source_writable, "the source is left as it was");
    }

    #[test]
    fn a_missing_source_names_the_call_and_the_paths() {
        if !strata_testutil::require_root("open_tree needs CAP_SYS_ADMIN") {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let e = bind_read_only_recursive(&tmp.path().join("nope"), tmp.path()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("nope") && text.contains("open_tree"),
            "{text}"
        );
    }
}
