//! The canonical tar writer: the same entries always give the same bytes.
//!
//! - ustar headers; a PAX extended header (named `././@PaxHeader`, mode 0644, owner 0:0,
//!   mtime 0) precedes an entry when it needs one, with records in a fixed order — `path`
//!   (name over 100 bytes), `linkpath` (over 100 bytes), `size` (8 GiB or more), `uid`, `gid`
//!   (over 2097151), `mtime` (negative or past 2^33), then `SCHILY.xattr.*` sorted by name;
//! - numeric owner only (no user or group names), mtime in whole seconds, no atime or ctime,
//!   mode = permission and setuid/setgid/sticky bits, device numbers `0` except for devices;
//! - directory names end in `/`; names have no leading `/` or `./`;
//! - data padded to 512 bytes; the archive ends with two zero blocks and nothing more.

use std::io::{self, Read, Write};

use sha2::Digest as _;
use strata_types::{Digest, Sha256};

/// What kind of entry to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutKind {
    Regular,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

/// One entry's header, already normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutEntry {
    pub kind: OutKind,
    /// Relative path without a trailing `/` (added for directories).
    pub path: Vec<u8>,
    /// Symlink target, or the path of the hardlinked entry.
    pub link: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Data bytes (regular files only).
    pub size: u64,
    pub mtime: i64,
    pub major: u32,
    pub minor: u32,
    /// Sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl OutEntry {
    /// An OCI whiteout or opaque marker: an empty regular file with every field zeroed.
    pub(crate) fn marker(path: Vec<u8>) -> OutEntry {
        OutEntry {
            kind: OutKind::Regular,
            path,
            link: Vec::new(),
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            major: 0,
            minor: 0,
            xattrs: Vec::new(),
        }
    }
}

const MAX_OCTAL_8: u64 = 0o7777777;
const MAX_OCTAL_12: u64 = 0o77777777777;
const BUF: usize = 1 << 20;

/// Why a data copy stopped short.
#[derive(Debug)]
pub(crate) enum CopyError {
    Read(io::Error),
    Write(io::Error),
    /// The source had fewer or more bytes than the header said.
    Size,
}

/// Writes canonical tar entries to `w`, hashing and counting every byte.
#[derive(Debug)]
pub(crate) struct TarWriter<W: Write> {
    w: W,
    buf: Vec<u8>,
    hasher: Sha256,
    bytes: u64,
    entries: u64,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(w: W) -> Self {
        TarWriter {
            w,
            buf: Vec::with_capacity(BUF),
            hasher: Sha256::new(),
            bytes: 0,
            entries: 0,
        }
    }

    fn raw(&mut self, data: &[u8]) -> io::Result<()> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        if self.buf.len() + data.len() > BUF {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        if data.len() >= BUF {
            self.w.write_all(data)
        } else {
            self.buf.extend_from_slice(data);
            Ok(())
        }
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % 512) as usize;
        if rem != 0 {
            self.raw(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    /// Writes `e`'s header(s) and, for a regular file, exactly `e.size` bytes from `data`.
    pub(crate) fn append(
        &mut self,
        e: &OutEntry,
        data: Option<&mut dyn Read>,
    ) -> Result<(), CopyError> {
        let mut path = e.path.clone();
        if e.kind == OutKind::Dir {
            path.push(b'/');
        }
        let mut pax = Vec::new();
        if path.len() > 100 {
            record(&mut pax, b"path", &path);
        }
        if e.link.len() > 100 {
            record(&mut pax, b"linkpath", &e.link);
        }
        let size = if e.kind == OutKind::Regular {
            e.size
        } else {
            0
        };
        if size > MAX_OCTAL_12 {
            record(&mut pax, b"size", size.to_string().as_bytes());
        }
        if e.uid > MAX_OCTAL_8 {
            record(&mut pax, b"uid", e.uid.to_string().as_bytes());
        }
        if e.gid > MAX_OCTAL_8 {
            record(&mut pax, b"gid", e.gid.to_string().as_bytes());
        }
        let mtime_fits = e.mtime >= 0 && e.mtime as u64 <= MAX_OCTAL_12;
        if !mtime_fits {
            record(&mut pax, b"mtime", e.mtime.to_string().as_bytes());
        }
        for (k, v) in &e.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            record(&mut pax, &key, v);
        }
        if !pax.is_empty() {
            let mut h = header(b"././@PaxHeader", tar::EntryType::XHeader);
            h.set_mode(0o644);
            h.set_size(pax.len() as u64);
            h.set_cksum();
            self.raw(h.as_bytes()).map_err(CopyError::Write)?;
            self.raw(&pax).map_err(CopyError::Write)?;
            self.pad(pax.len() as u64).map_err(CopyError::Write)?;
        }
        let kind = match e.kind {
            OutKind::Regular => tar::EntryType::Regular,
            OutKind::Dir => tar::EntryType::Directory,
            OutKind::Symlink => tar::EntryType::Symlink,
            OutKind::Hardlink => tar::EntryType::Link,
            OutKind::Char => tar::EntryType::Char,
            OutKind::Block => tar::EntryType::Block,
            OutKind::Fifo => tar::EntryType::Fifo,
        };
        let mut h = header(&path, kind);
        copy_field(&mut h.as_old_mut().linkname, &e.link);
        h.set_mode(e.mode & 0o7777);
        h.set_uid(if e.uid > MAX_OCTAL_8 { 0 } else { e.uid });
        h.set_gid(if e.gid > MAX_OCTAL_8 { 0 } else { e.gid });
        h.set_size(if size > MAX_OCTAL_12 { 0 } else { size });
        h.set_mtime(if mtime_fits { e.mtime as u64 } else { 0 });
        if matches!(e.kind, OutKind::Char | OutKind::Block) {
            set_dev(&mut h, e.major, e.minor);
        }
        h.set_cksum();
        self.raw(h.as_bytes()).map_err(CopyError::Write)?;
        self.entries += 1;
        if size > 0 {
            let src = data.ok_or(CopyError::Size)?;
            let mut left = size;
            let mut chunk = vec![0u8; BUF.min(size as usize)];
            while left > 0 {
                let want = (chunk.len() as u64).min(left) as usize;
                let n = match src.read(&mut chunk[..want]) {
                    Ok(0) => return Err(CopyError::Size),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(CopyError::Read(e)),
                };
                self.raw(&chunk[..n]).map_err(CopyError::Write)?;
                left -= n as u64;
            }
            // The file must not have grown either.
            let mut probe = [0u8; 1];
            match src.read(&mut probe) {
                Ok(0) => {}
                Ok(_) => return Err(CopyError::Size),
                Err(e) => return Err(CopyError::Read(e)),
            }
            self.pad(size).map_err(CopyError::Write)?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker, flushes, and returns (diffID, bytes, entries).
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64, u64)> {
        self.raw(&[0u8; 1024])?;
        self.w.write_all(&self.buf)?;
        self.w.flush()?;
        Ok((Digest::from_hasher(self.hasher), self.bytes, self.entries))
    }
}

/// A ustar header with `name` (truncated to 100 bytes when a PAX `path` carries it) and every
/// numeric field zero.
fn header(name: &[u8], kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    copy_field(&mut h.as_old_mut().name, name);
    h.set_entry_type(kind);
    h.set_mode(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h.set_mtime(0);
    set_dev(&mut h, 0, 0);
    h
}

fn set_dev(h: &mut tar::Header, major: u32, minor: u32) {
    if let Some(u) = h.as_ustar_mut() {
        u.set_device_major(major);
        u.set_device_minor(minor);
    }
}

fn copy_field(field: &mut [u8], value: &[u8]) {
    field.fill(0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Appends one PAX record `"<len> <key>=<value>\n"`, where `<len>` counts itself.
fn record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len += 1;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> OutEntry {
        OutEntry {
            kind: OutKind::Regular,
            path: path.as_bytes().to_vec(),
            link: Vec::new(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime: 1_700_000_000,
            major: 0,
            minor: 0,
            xattrs: Vec::new(),
        }
    }

    fn write(entries: &[OutEntry]) -> Result<(Vec<u8>, Digest), String> {
        let mut out = Vec::new();
        let mut w = TarWriter::new(&mut out);
        for e in entries {
            let data = vec![b'x'; e.size as usize];
            w.append(e, Some(&mut &data[..]))
                .map_err(|e| format!("{e:?}"))?;
        }
        let (d, _, _) = w.finish().map_err(|e| e.to_string())?;
        Ok((out, d))
    }

    #[test]
    fn pax_records_count_their_own_length() {
        for n in [0, 1, 5, 6, 7, 90, 95, 96, 97, 990, 995, 996] {
            let mut out = Vec::new();
            record(&mut out, b"k", &vec![b'v'; n]);
            let text = String::from_utf8_lossy(&out);
            let len: usize = text
                .split(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            assert_eq!(len, out.len(), "{text}");
        }
    }

    #[test]
    fn same_entries_same_bytes_and_the_tar_crate_reads_them() -> Result<(), String> {
        let long = format!("dir/{}", "n".repeat(150));
        let mut with_xattr = file(&long, 3);
        with_xattr.xattrs = vec![(b"user.a".to_vec(), b"1".to_vec())];
        with_xattr.uid = 5_000_000;
        let entries = vec![
            file("a", 0),
            with_xattr,
            OutEntry::marker(b"dir/.wh.gone".to_vec()),
        ];
        let (a, da) = write(&entries)?;
        let (b, db) = write(&entries)?;
        assert_eq!(a, b);
        assert_eq!(da, db);
        assert_eq!(da, Digest::sha256_of(&a));
        let mut ar = tar::Archive::new(&a[..]);
        let mut names = Vec::new();
        for e in ar.entries().map_err(|e| e.to_string())? {
            let mut e = e.map_err(|e| e.to_string())?;
            names.push(String::from_utf8_lossy(&e.path_bytes()).into_owned());
            if names.len() == 2 {
                assert_eq!(e.header().uid().map_err(|e| e.to_string())?, 5_000_000);
                let x = e.pax_extensions().map_err(|e| e.to_string())?;
                assert!(x.is_some());
            }
        }
        assert_eq!(names, ["a", long.as_str(), "dir/.wh.gone"]);
        Ok(())
    }
}
