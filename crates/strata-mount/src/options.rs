//! Turning fstab-style option strings into mount flags and filesystem data: pure functions, so
//! the decisions are unit-tested without privileges.

use std::path::PathBuf;

use rustix::mount::{MountAttrFlags, MountFlags, MountPropagationFlags};

/// Options sorted by where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// Flags for `mount(2)` (including `BIND` and `REC` for bind mounts).
    pub flags: MountFlags,
    /// A propagation change to apply after the mount (`private`, `rslave`, ...).
    pub propagation: Option<MountPropagationFlags>,
    /// Filesystem-specific options, in order.
    pub data: Vec<String>,
}

impl Parsed {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MountFlags::BIND)
    }

    /// The per-mount flags a bind mount needs a second, remounting call for.
    pub fn bind_remount_flags(&self) -> MountFlags {
        self.flags & !(MountFlags::BIND | MountFlags::REC)
    }

    /// The flags as `fsmount` mount attributes (only the per-mount ones exist there).
    pub fn mount_attrs(&self) -> MountAttrFlags {
        let mut attrs = MountAttrFlags::empty();
        for (flag, attr) in [
            (MountFlags::RDONLY, MountAttrFlags::MOUNT_ATTR_RDONLY),
            (MountFlags::NOSUID, MountAttrFlags::MOUNT_ATTR_NOSUID),
            (MountFlags::NODEV, MountAttrFlags::MOUNT_ATTR_NODEV),
            (MountFlags::NOEXEC, MountAttrFlags::MOUNT_ATTR_NOEXEC),
            (
                MountFlags::NODIRATIME,
                MountAttrFlags::MOUNT_ATTR_NODIRATIME,
            ),
            (
                MountFlags::NOSYMFOLLOW,
                MountAttrFlags::MOUNT_ATTR_NOSYMFOLLOW,
            ),
        ] {
            if self.flags.contains(flag) {
                attrs |= attr;
            }
        }
        if self.flags.contains(MountFlags::NOATIME) {
            attrs |= MountAttrFlags::MOUNT_ATTR_NOATIME;
        } else if self.flags.contains(MountFlags::STRICTATIME) {
            attrs |= MountAttrFlags::MOUNT_ATTR_STRICTATIME;
        }
        attrs
    }

    /// The data options joined as `mount(2)` takes them.
    pub fn data_string(&self) -> String {
        self.data.join(",")
    }
}

/// Sorts `options` into flags, propagation and data. Unknown words are data: the filesystem
/// decides whether it knows them.
pub(crate) fn parse(options: &[String]) -> Parsed {
    let mut p = Parsed {
        flags: MountFlags::empty(),
        propagation: None,
        data: Vec::new(),
    };
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "defaults" => (MountFlags::empty(), MountFlags::empty()),
            "ro" => (MountFlags::RDONLY, MountFlags::empty()),
            "rw" => (MountFlags::empty(), MountFlags::RDONLY),
            "bind" => (MountFlags::BIND, MountFlags::empty()),
            "rbind" => (MountFlags::BIND | MountFlags::REC, MountFlags::empty()),
            "nosuid" => (MountFlags::NOSUID, MountFlags::empty()),
            "suid" => (MountFlags::empty(), MountFlags::NOSUID),
            "nodev" => (MountFlags::NODEV, MountFlags::empty()),
            "dev" => (MountFlags::empty(), MountFlags::NODEV),
            "noexec" => (MountFlags::NOEXEC, MountFlags::empty()),
            "exec" => (MountFlags::empty(), MountFlags::NOEXEC),
            "sync" => (MountFlags::SYNCHRONOUS, MountFlags::empty()),
            "async" => (MountFlags::empty(), MountFlags::SYNCHRONOUS),
            "dirsync" => (MountFlags::DIRSYNC, MountFlags::empty()),
            "noatime" => (MountFlags::NOATIME, MountFlags::empty()),
            "atime" => (MountFlags::empty(), MountFlags::NOATIME),
            "nodiratime" => (MountFlags::NODIRATIME, MountFlags::empty()),
            "diratime" => (MountFlags::empty(), MountFlags::NODIRATIME),
            "relatime" => (MountFlags::RELATIME, MountFlags::empty()),
            "norelatime" => (MountFlags::empty(), MountFlags::RELATIME),
            "strictatime" => (MountFlags::STRICTATIME, MountFlags::empty()),
            "nostrictatime" => (MountFlags::empty(), MountFlags::STRICTATIME),
            "nosymfollow" => (MountFlags::NOSYMFOLLOW, MountFlags::empty()),
            "lazytime" => (MountFlags::LAZYTIME, MountFlags::empty()),
            "nolazytime" => (MountFlags::empty(), MountFlags::LAZYTIME),
            other => {
                if let Some(prop) = propagation(other) {
                    p.propagation = Some(prop);
                } else {
                    p.data.push(other.to_owned());
                }
                continue;
            }
        };
        p.flags = (p.flags | set) & !clear;
    }
    p
}

fn propagation(opt: &str) -> Option<MountPropagationFlags> {
    let (recursive, base) = match opt.strip_prefix('r') {
        Some(rest) if matches!(rest, "shared" | "private" | "slave" | "unbindable") => (true, rest),
        _ => (false, opt),
    };
    let flag = match base {
        "shared" => MountPropagationFlags::SHARED,
        "private" => MountPropagationFlags::PRIVATE,
        "slave" => MountPropagationFlags::DOWNSTREAM,
        "unbindable" => MountPropagationFlags::UNBINDABLE,
        _ => return None,
    };
    Some(if recursive {
        flag | MountPropagationFlags::REC
    } else {
        flag
    })
}

/// Splits an overlay `lowerdir=` value into layer paths: `:` separates, a backslash escapes
/// the next character.
pub(crate) fn split_lowerdir(value: &str) -> Vec<PathBuf> {
    let mut layers = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
            }
            ':' => layers.push(PathBuf::from(std::mem::take(&mut cur))),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() || !layers.is_empty() {
        layers.push(PathBuf::from(cur));
    }
    layers.retain(|l| !l.as_os_str().is_empty());
    layers
}

/// Removes overlay's backslash escapes from a single-path value (`upperdir=`, `workdir=`).
pub(crate) fn unescape(value: &str) -> PathBuf {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    PathBuf::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_data_and_propagation() {
        let p = parse(&opts(&[
            "rbind", "ro", "nosuid", "rprivate", "size=10m", "rw", "ro",
        ]));
        assert!(p.is_bind());
        assert_eq!(
            p.flags,
            MountFlags::BIND | MountFlags::REC | MountFlags::RDONLY | MountFlags::NOSUID
        );
        assert_eq!(
            p.bind_remount_flags(),
            MountFlags::RDONLY | MountFlags::NOSUID
        );
        assert_eq!(
            p.propagation,
            Some(MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        );
        assert_eq!(p.data, ["size=10m"]);
        assert_eq!(
            p.mount_attrs(),
            MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NOSUID
        );

        let p = parse(&opts(&["ro", "rw", "index=off", "userxattr"]));
        assert_eq!(p.flags, MountFlags::empty());
        assert_eq!(p.data_string(), "index=off,userxattr");
        assert_eq!(p.propagation, None);
    }

    #[test]
    fn lowerdir_split_and_unescape() {
        assert_eq!(
            split_lowerdir("/a:/b\\:c:/d\\,e\\\\f"),
            [
                PathBuf::from("/a"),
                PathBuf::from("/b:c"),
                PathBuf::from("/d,e\\f")
            ]
        );
        assert!(split_lowerdir("").is_empty());
        assert_eq!(unescape("/x\\:y"), PathBuf::from("/x:y"));
    }
}
