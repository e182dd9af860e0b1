//! The [`Mount`] value, and the only code in strata that calls `mount(2)` and `umount(2)`.
//!
//! A snapshotter never hands out "a directory": it describes a snapshot as a list of mounts
//! (type, source, options), the lingua franca containerd uses too, so that overlayfs, native
//! copies, btrfs subvolumes and later lazily fetched layers all fit one shape. Whoever needs the
//! files — the unpacker, `strata run`, a diff — passes that list to [`mount_all`] (or
//! [`with_temp_mount`]) and unmounts with [`unmount`]. Keeping every mount call here keeps the
//! privileged surface small and the tests honest.
//!
//! # How each kind is mounted
//!
//! - `bind` (or any kind with a `bind`/`rbind` option): `mount(MS_BIND[|MS_REC])`, then, when
//!   the options ask for `ro`, `nosuid`, `nodev`, `noexec` or atime flags, a
//!   `MS_REMOUNT|MS_BIND` with those flags — the kernel ignores them on the first call.
//! - `overlay`: the new mount API (`fsopen("overlay")`, one `fsconfig` per option, then
//!   `fsmount` and `move_mount`). Each `lowerdir=` entry is passed as its own `lowerdir+`
//!   (Linux 6.8), so a stack is not limited by the one page that `mount(2)` accepts for its
//!   options string: 128 layers and more mount. A layer path the kernel will not take as a
//!   string (`fsconfig` copies at most 255 bytes of a value, and overlay unescapes backslashes)
//!   is passed as an `O_PATH` file descriptor instead (Linux 6.13). On a kernel without
//!   `lowerdir+` the options string goes to `mount(2)` if it fits in a page, else the mount
//!   fails with [`MountError::OptionsTooLong`].
//! - anything else (`btrfs`, `tmpfs`, `ext4`, ...): `mount(2)` with the flags the options name
//!   and the rest joined as the filesystem's data string.
//!
//! - [`bind_read_only_recursive`]: a copy of a mount tree, read-only at every level, for a
//!   runtime that cannot make a read-only bind recursive itself (see `read_only.rs`).
//!
//! Options follow fstab/containerd spelling: `ro`, `rw`, `bind`, `rbind`, `nosuid`, `nodev`,
//! `noexec`, `noatime`, `relatime`, `private`, `rslave`, ..., and `key=value` data options.
//! In an overlay `lowerdir=` value, layers are separated by `:`, topmost first, and a `:`, `,`
//! or `\` inside a path is escaped with a backslash (the kernel's own convention);
//! [`Mount::overlay`] does that escaping.

#![deny(unsafe_code)] // but for mount_setattr(2), which rustix does not wrap (read_only.rs)

mod error;
mod linux;
pub mod mountinfo;
mod options;
mod read_only;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::MountError;
pub use linux::{mount_all, unmount, unmount_all, with_temp_mount, with_temp_mount_in};
pub use read_only::{bind_read_only_recursive, can_bind_read_only_recursive};

/// One mount: what to mount (`kind`, `source`) and how (`options`), independent of where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mount {
    /// The filesystem type: `"overlay"`, `"bind"`, `"btrfs"`, ...
    pub kind: String,
    /// What to mount: a directory for `bind`, a device for block filesystems, a label
    /// (`"overlay"`) for overlay.
    pub source: PathBuf,
    /// fstab-style options: flags (`ro`, `rbind`, ...) and `key=value` data.
    pub options: Vec<String>,
}

impl Mount {
    /// A recursive bind mount of `source`, read-only or read-write.
    pub fn bind(source: impl Into<PathBuf>, readonly: bool) -> Mount {
        Mount {
            kind: "bind".to_owned(),
            source: source.into(),
            options: vec![
                if readonly { "ro" } else { "rw" }.to_owned(),
                "rbind".to_owned(),
            ],
        }
    }

    /// An overlay of `lowers` (topmost first). With `upper = Some((upperdir, workdir))` the
    /// result is writable; without, it is a read-only stack (`ro`). `index=off` is always set,
    /// as containerd does: layers are shared between stacks, and the index would tie a lower
    /// layer to the first upper that copied from it.
    pub fn overlay(lowers: &[PathBuf], upper: Option<(&Path, &Path)>) -> Mount {
        let mut options = vec!["index=off".to_owned()];
        match upper {
            Some((upperdir, workdir)) => {
                options.push(format!("workdir={}", escape_layer(workdir)));
                options.push(format!("upperdir={}", escape_layer(upperdir)));
            }
            None => options.push("ro".to_owned()),
        }
        let lowerdir: Vec<String> = lowers.iter().map(|l| escape_layer(l)).collect();
        options.push(format!("lowerdir={}", lowerdir.join(":")));
        Mount {
            kind: "overlay".to_owned(),
            source: PathBuf::from("overlay"),
            options,
        }
    }

    /// Whether the options ask for a read-only mount (the last of `ro`/`rw` wins).
    pub fn is_readonly(&self) -> bool {
        self.options
            .iter()
            .rev()
            .find_map(|o| match o.as_str() {
                "ro" => Some(true),
                "rw" => Some(false),
                _ => None,
            })
            .unwrap_or(false)
    }

    /// For an overlay, the `lowerdir=` layers (topmost first, unescaped); empty otherwise.
    pub fn lowerdirs(&self) -> Vec<PathBuf> {
        self.options
            .iter()
            .filter_map(|o| o.strip_prefix("lowerdir="))
            .flat_map(options::split_lowerdir)
            .collect()
    }
}

/// How [`unmount`] detaches a mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnmountFlags {
    /// `MNT_DETACH`: take the mount out of the namespace now and free it when it is no longer
    /// busy, instead of failing with `EBUSY`.
    pub detach: bool,
}

impl UnmountFlags {
    /// A plain unmount; fails (after a few retries) if the mount stays busy.
    pub const NONE: UnmountFlags = UnmountFlags { detach: false };
    /// A lazy unmount (`MNT_DETACH`).
    pub const DETACH: UnmountFlags = UnmountFlags { detach: true };
}

/// Escapes a layer path for an overlay option value: `\`, `:` and `,` get a backslash.
fn escape_layer(path: &Path) -> String {
    let s = path.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ':' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_and_overlay_constructors() {
        let b = Mount::bind("/a", true);
        assert_eq!(b.options, ["ro", "rbind"]);
        assert!(b.is_readonly());
        assert!(!Mount::bind("/a", false).is_readonly());

        let lowers = [PathBuf::from("/l/2"), PathBuf::from("/l/a:b,c\\d")];
        let o = Mount::overlay(&lowers, Some((Path::new("/u"), Path::new("/w"))));
        assert_eq!(
            o.options,
            [
                "index=off",
                "workdir=/w",
                "upperdir=/u",
                "lowerdir=/l/2:/l/a\\:b\\,c\\\\d"
            ]
        );
        assert!(!o.is_readonly());
        assert_eq!(o.lowerdirs(), lowers);
        let ro = Mount::overlay(&lowers, None);
        assert!(ro.is_readonly());
    }
}
