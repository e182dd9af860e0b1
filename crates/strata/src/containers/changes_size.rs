//! The size of a writable layer that is a full tree (native, btrfs): the bytes of the regular
//! files its diff against the parent emits. An overlay upper directory is measured directly
//! instead (see `list.rs`).

use std::io::{self, Write};

use strata_metadata::Labels;
use strata_snapshot::Snapshotter;

use super::ContainerError;

/// Sum of the sizes of the regular files in the diff of active snapshot `key` against its
/// parent.
pub fn changed_size(sn: &dyn Snapshotter, key: &str) -> Result<u64, ContainerError> {
    let parent = sn.stat(key)?.parent;
    let view_key = format!("size-view-{}", crate::unique_suffix());
    let parent_mounts = sn.view(&view_key, parent.as_deref(), &Labels::new())?;
    let active = sn.mounts(key)?;
    let result = strata_mount::with_temp_mount(&parent_mounts, |old| {
        strata_mount::with_temp_mount(&active, |new| {
            let mut counter = TarFileBytes::default();
            strata_archive::diff_trees(old, new, &mut counter).map(|_| counter.total)
        })
    });
    if let Err(e) = sn.remove(&view_key) {
        tracing::warn!("remove {view_key}: {e}");
    }
    result??.map_err(|e| ContainerError::io("diff the writable layer", io::Error::other(e)))
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
        return field[1..].iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
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
        b.append_data(&mut big, "dir/big", &vec![7u8; 1000][..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let mut c = TarFileBytes::default();
        for chunk in bytes.chunks(100) {
            c.write_all(chunk).unwrap();
        }
        assert_eq!(c.total, 1005);
    }
}
