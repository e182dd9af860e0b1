//! What is mounted: `/proc/self/mountinfo` read into [`MountEntry`] values, and the one repair
//! built on it, [`detach_writers_of`].
//!
//! A process killed while it holds a temporary mount of a snapshot (a `create` killed while it
//! writes the container's init layer) leaves an overlay whose upper directory is that
//! snapshot's. Nothing else will take it down, so removing the snapshot does.

use std::path::{Path, PathBuf};

use crate::UnmountFlags;

/// One line of mountinfo: where, what type, and the filesystem's own options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount point.
    pub point: PathBuf,
    /// `overlay`, `ext4`, ...
    pub fstype: String,
    /// The super block options, unescaped, in order (`upperdir=/…`, `lowerdir+=/…`, `rw`).
    pub options: Vec<String>,
}

impl MountEntry {
    /// Parses one mountinfo line; `None` for a line that does not have its fields.
    pub fn parse(line: &str) -> Option<MountEntry> {
        let (before, after) = line.split_once(" - ")?;
        let point = before.split(' ').nth(4)?;
        let mut after = after.split(' ');
        let fstype = after.next()?.to_owned();
        let _source = after.next()?;
        let options = after
            .next()
            .unwrap_or_default()
            .split(',')
            .map(unescape)
            .collect();
        Some(MountEntry {
            point: PathBuf::from(unescape(point)),
            fstype,
            options,
        })
    }

    /// Whether this is an overlay that writes into `dir`: its upper or work directory is in it.
    pub fn writes_into(&self, dir: &Path) -> bool {
        self.fstype == "overlay"
            && self.options.iter().any(|o| {
                ["upperdir=", "workdir="].iter().any(|k| {
                    o.strip_prefix(k)
                        .is_some_and(|p| Path::new(p).starts_with(dir))
                })
            })
    }
}

/// Every mount this process sees; empty when mountinfo cannot be read.
pub fn mounts() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| s.lines().filter_map(MountEntry::parse).collect())
        .unwrap_or_default()
}

/// mountinfo escapes space, tab, newline, backslash (and, in options, `,` and `=`) as `\ooo`.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches every overlay that writes into `dir` (see the module doc) and removes the
/// temporary mount point strata made for it; returns how many were detached.
pub fn detach_writers_of(dir: &Path) -> usize {
    let mut n = 0;
    for m in mounts().into_iter().filter(|m| m.writes_into(dir)) {
        match crate::unmount(&m.point, UnmountFlags::DETACH) {
            Ok(()) => {
                tracing::warn!(mount = %m.point.display(), "detached a mount a killed process left on a removed snapshot");
                n += 1;
                crate::linux::remove_temp_mount_point(&m.point);
            }
            Err(e) => {
                tracing::warn!(mount = %m.point.display(), error = %e, "could not detach a mount of a removed snapshot")
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const OVERLAY: &str = "58 27 0:46 / /tmp/strata-mount-8998-0-4e699ad/root rw,relatime - \
        overlay overlay rw,lowerdir+=/s/overlayfs/1/fs,upperdir=/s/overlayfs/2/fs,\
        workdir=/s/overlayfs/2/work,uuid=on";

    #[test]
    fn lines_are_parsed_and_unescaped() {
        let m = MountEntry::parse(OVERLAY).unwrap();
        assert_eq!(m.point, Path::new("/tmp/strata-mount-8998-0-4e699ad/root"));
        assert_eq!(m.fstype, "overlay");
        assert_eq!(m.options[2], "upperdir=/s/overlayfs/2/fs");
        let spaced = MountEntry::parse(r"1 2 0:1 / /a\040b rw - ext4 /dev/x rw,x=\134y").unwrap();
        assert_eq!(spaced.point, Path::new("/a b"));
        assert_eq!(spaced.options[1], "x=\\y");
        assert_eq!(unescape("/plain"), "/plain");
        assert!(MountEntry::parse("garbage").is_none());
    }

    #[test]
    fn an_overlay_writes_into_its_upper_snapshot_only() {
        let m = MountEntry::parse(OVERLAY).unwrap();
        assert!(m.writes_into(Path::new("/s/overlayfs/2")));
        assert!(
            !m.writes_into(Path::new("/s/overlayfs/1")),
            "a lower is only read"
        );
        assert!(!m.writes_into(Path::new("/s/overlayfs/20")));
    }
}
