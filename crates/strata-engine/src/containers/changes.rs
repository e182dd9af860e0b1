//! A writable layer's changes: as a layer tar (`commit`), as Docker's `A`/`C`/`D` lines
//! (`diff`), and as its size for snapshotters whose writable layer is a full tree.
//!
//! The layer tar comes from strata-archive: an overlay upper directory *is* the change
//! (`diff_overlay_upper`); a native or btrfs writable layer is compared with a view of its
//! parent (`diff_trees`). `diff` reads that same tar's entry names, so both commands always
//! agree: an entry whose path exists in the parent is `C`, else `A`; a `.wh.NAME` whiteout is
//! `D`. Parent directories of a change are listed as changed, as Docker lists them.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use strata_archive::DiffStats;
use strata_metadata::Labels;
use strata_snapshot::Snapshotter;

use super::ContainerError;

/// One line of `diff`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: String,
    /// `A`, `C` or `D`.
    pub kind: char,
}

/// Runs `f` with a read-only view of the parent of active snapshot `key` mounted.
fn with_parent<T>(
    sn: &dyn Snapshotter,
    key: &str,
    f: impl FnOnce(&Path) -> Result<T, ContainerError>,
) -> Result<T, ContainerError> {
    let parent = sn.stat(key)?.parent;
    let view_key = format!("diff-view-{}", crate::unique_suffix());
    let mounts = sn.view(&view_key, parent.as_deref(), &Labels::new())?;
    let result = strata_mount::with_temp_mount(&mounts, f);
    if let Err(e) = sn.remove(&view_key) {
        tracing::warn!("remove {view_key}: {e}");
    }
    result?
}

/// The overlay upper directory of an active snapshot, if it has one.
fn upper_dir(sn: &dyn Snapshotter, key: &str) -> Result<Option<PathBuf>, ContainerError> {
    Ok(sn.mounts(key)?.iter().find_map(|m| {
        m.options
            .iter()
            .find_map(|o| o.strip_prefix("upperdir=").map(PathBuf::from))
    }))
}

/// Writes the layer tar of active snapshot `key`'s changes to `w`.
pub fn write_layer(
    sn: &dyn Snapshotter,
    key: &str,
    w: impl Write,
) -> Result<DiffStats, ContainerError> {
    let archive = |e: strata_archive::ArchiveError| {
        ContainerError::io("diff the writable layer", io::Error::other(e))
    };
    if let Some(upper) = upper_dir(sn, key)? {
        return strata_archive::diff_overlay_upper(&upper, w).map_err(archive);
    }
    let active = sn.mounts(key)?;
    with_parent(sn, key, |old| {
        strata_mount::with_temp_mount(&active, |new| strata_archive::diff_trees(old, new, w))?
            .map_err(archive)
    })
}

/// Docker's `diff`: the changed paths, sorted.
pub fn changes(sn: &dyn Snapshotter, key: &str) -> Result<Vec<Change>, ContainerError> {
    let (mut reader, writer) = io::pipe().map_err(|e| ContainerError::io("create a pipe", e))?;
    let names = std::thread::scope(|s| {
        let producer = s.spawn(move || write_layer(sn, key, writer));
        let names = tar_names(&mut reader);
        // Drain whatever is left so the producer never blocks on a full pipe.
        let _ = io::copy(&mut reader, &mut io::sink());
        let produced = producer.join().unwrap_or_else(|_| {
            Err(ContainerError::io(
                "diff the writable layer",
                io::Error::other("diff thread panicked"),
            ))
        });
        produced.and(names.map_err(|e| ContainerError::io("read the diff", e)))
    })?;
    with_parent(sn, key, |parent| {
        // Looked up one component at a time: paths can be longer than PATH_MAX.
        let parent = strata_fs::open_dir(parent)
            .map_err(|e| ContainerError::io("open the parent snapshot", e))?;
        let mut out = Vec::new();
        for name in names {
            let name = name.trim_end_matches('/');
            let (dir, base) = name.rsplit_once('/').unwrap_or(("", name));
            if base == ".wh..wh..opq" {
                continue;
            }
            let (path, kind) = match base.strip_prefix(".wh.") {
                Some(deleted) if dir.is_empty() => (format!("/{deleted}"), 'D'),
                Some(deleted) => (format!("/{dir}/{deleted}"), 'D'),
                None => {
                    let exists = strata_fs::entry_beneath(parent.as_fd(), name.as_bytes())
                        .is_ok_and(|e| e.is_some());
                    (format!("/{name}"), if exists { 'C' } else { 'A' })
                }
            };
            out.push(Change { path, kind });
        }
        out.sort();
        out.dedup();
        Ok(out)
    })
}

fn tar_names(r: &mut dyn Read) -> io::Result<Vec<String>> {
    let mut archive = tar::Archive::new(r);
    let mut names = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        names.push(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
    }
    Ok(names)
}

/// The bytes of the regular files in the layer of active snapshot `key` (for `ps --size`
/// where the writable layer is a full tree: native, btrfs).
pub fn changed_size(sn: &dyn Snapshotter, key: &str) -> Result<u64, ContainerError> {
    let mut counter = TarFileBytes::default();
    write_layer(sn, key, &mut counter)?;
    Ok(counter.total)
}
/// A `Write` that reads a tar stream as it passes and adds up the sizes of its regular files.
#[derive(Debug, Default)]
struct TarFileBytes {
    header: Vec<u8>,
    /// Data (and padding) bytes still to skip.
    skip: u64,
    total: u64,
}

impl Write for TarFileBytes {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        while !buf.is_empty() {
            if self.skip > 0 {
                let k = (self.skip.min(buf.len() as u64)) as usize;
                self.skip -= k as u64;
                buf = &buf[k..];
                continue;
            }
            let k = (512 - self.header.len()).min(buf.len());
            self.header.extend_from_slice(&buf[..k]);
            buf = &buf[k..];
            if self.header.len() == 512 {
                let size = octal(&self.header[124..136]);
                if matches!(self.header[156], b'0' | 0) && self.header.iter().any(|&b| b != 0) {
                    self.total += size;
                }
                self.skip = size.div_ceil(512) * 512;
                self.header.clear();
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A tar numeric field: octal text, or base-256 when the high bit is set.
fn octal(field: &[u8]) -> u64 {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        return field[1..]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    }
    field
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .fold(0, |acc, b| acc * 8 + u64::from(b - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_regular_file_bytes_only() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append_data(&mut h, "out.txt", &b"hello"[..]).unwrap();
        let mut d = tar::Header::new_gnu();
        d.set_size(0);
        d.set_entry_type(tar::EntryType::Directory);
        d.set_cksum();
        b.append_data(&mut d, "dir/", &b""[..]).unwrap();
        let mut big = tar::Header::new_gnu();
        big.set_size(1000);
        big.set_entry_type(tar::EntryType::Regular);
        big.set_cksum();
        b.append_data(&mut big, "dir/big", &vec![7u8; 1000][..])
            .unwrap();
        let bytes = b.into_inner().unwrap();
        let mut c = TarFileBytes::default();
        for chunk in bytes.chunks(100) {
            c.write_all(chunk).unwrap();
        }
        assert_eq!(c.total, 1005);
    }
}
