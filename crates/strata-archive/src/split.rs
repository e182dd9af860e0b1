//! Tar split: a layer kept as its tar framing plus references into its unpacked tree, so the
//! exact uncompressed layer (same bytes, same diffID) can be written again after its
//! compressed blob is gone.
//!
//! While [`apply_layer`](crate::apply_layer) unpacks with [`ApplyOptions::record_split`]
//! set, every byte of the tar stream that is not the data of a regular file it wrote (headers,
//! PAX and GNU extension records, sparse maps, padding, the end-of-archive blocks and whatever
//! follows them, the data of entries it skipped) is kept verbatim, and each file's data is
//! replaced by the file's name and length. [`rebuild_layer`] replays that against the
//! unpacked directory. Headers compress well: a layer of 30,000 small files keeps a few
//! hundred KiB.
//!
//! Docker's overlay2 driver keeps the same information in tar-split's JSON-lines format; this
//! is a compact binary of our own (there is no Rust implementation of tar-split's, and its
//! base64-in-JSON payloads are four times the size):
//!
//! ```text
//! zstd( "STRATA-TAR-SPLIT" 0x01
//!       { 0x01 len bytes                          raw tar bytes
//!       | 0x02 name_len name len                  len bytes of the regular file `name`
//!       | 0x03 name_len name n (offset len)*n     the data regions of a sparse file `name` }*
//!       0x00 )                                    end (a recipe without it is truncated)
//! ```
//!
//! Numbers are LEB128; names are normalized (relative, resolved inside the tree as the
//! applier resolved them). The rebuilt stream is only right if the tree still holds what the
//! layer wrote: a file written twice in one layer, or deleted by a later whiteout of the
//! same layer, gives different bytes. Callers therefore check the rebuilt diffID
//! ([`split_diff_id`]) before they rely on a recipe.
//!
//! [`ApplyOptions::record_split`]: crate::ApplyOptions::record_split

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::OFlags;
use sha2::Digest as _;
use strata_types::{Digest, Sha256};

use crate::error::ArchiveError;
use crate::path::normalize;
use crate::root;

const MAGIC: &[u8] = b"STRATA-TAR-SPLIT\x01";
const END: u8 = 0;
const RAW: u8 = 1;
const FILE: u8 = 2;
const SPARSE: u8 = 3;
/// Raw bytes are written out in records of at most this size.
const RAW_FLUSH: usize = 1 << 20;
/// Bounds on what a recipe may declare, so a damaged one cannot ask for absurd buffers.
const MAX_RAW: u64 = 64 << 20;
const MAX_NAME: u64 = 1 << 20;

/// Records the split of one tar stream as the unpacker reads it.
pub(crate) struct Recorder {
    out: zstd::stream::write::Encoder<'static, Vec<u8>>,
    raw: Vec<u8>,
    file: Option<PendingFile>,
    /// Why this layer cannot be recorded (then no recipe is produced).
    broken: Option<&'static str>,
    error: Option<io::Error>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("raw", &self.raw.len())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct PendingFile {
    name: Vec<u8>,
    sparse: Option<Vec<(u64, u64)>>,
    read: u64,
}

impl Recorder {
    pub(crate) fn new() -> io::Result<Recorder> {
        let mut out = zstd::stream::write::Encoder::new(Vec::new(), 3)?;
        out.write_all(MAGIC)?;
        Ok(Recorder {
            out,
            raw: Vec::new(),
            file: None,
            broken: None,
            error: None,
        })
    }

    /// Bytes of the stream that are kept as they are.
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
        if self.raw.len() >= RAW_FLUSH {
            self.flush_raw();
        }
    }

    /// A regular file's entry starts: its data, as far as the unpacker reads it, is `name`'s.
    pub(crate) fn file(&mut self, name: &[u8], sparse: Option<Vec<(u64, u64)>>) {
        self.file = match normalize(name) {
            Ok(name) if !name.is_empty() => Some(PendingFile {
                name,
                sparse,
                read: 0,
            }),
            // The applier refuses or ignores such an entry; its data (if any) is skipped,
            // so kept raw.
            _ => None,
        };
    }

    /// The unpacker read `n` bytes of the current entry's data (into its file).
    pub(crate) fn data(&mut self, n: u64) {
        match &mut self.file {
            Some(f) => f.read += n,
            None => self.broken = Some("data read for an entry that is not a file"),
        }
    }

    /// The current entry ends; `unread` of its data bytes were not read by the unpacker (they
    /// follow as raw bytes).
    pub(crate) fn end_entry(&mut self, unread: u64) {
        let Some(f) = self.file.take() else {
            return;
        };
        if f.read == 0 {
            return;
        }
        if unread > 0 {
            self.broken = Some("a file's data was only partly read");
            return;
        }
        self.flush_raw();
        let r = (|| match &f.sparse {
            None => {
                self.out.write_all(&[FILE])?;
                put_bytes(&mut self.out, &f.name)?;
                put_u64(&mut self.out, f.read)
            }
            Some(map) => {
                self.out.write_all(&[SPARSE])?;
                put_bytes(&mut self.out, &f.name)?;
                put_u64(&mut self.out, map.len() as u64)?;
                for &(off, len) in map {
                    put_u64(&mut self.out, off)?;
                    put_u64(&mut self.out, len)?;
                }
                Ok(())
            }
        })();
        self.keep_error(r);
    }

    fn flush_raw(&mut self) {
        if self.raw.is_empty() {
            return;
        }
        let raw = std::mem::take(&mut self.raw);
        let r = (|| {
            self.out.write_all(&[RAW])?;
            put_bytes(&mut self.out, &raw)
        })();
        self.keep_error(r);
        self.raw = raw;
        self.raw.clear();
    }

    fn keep_error(&mut self, r: io::Result<()>) {
        if let Err(e) = r
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }

    /// The encoded recipe, or why there is none.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, String> {
        self.flush_raw();
        if let Some(why) = self.broken {
            return Err(why.to_owned());
        }
        if let Some(e) = self.error.take() {
            return Err(format!("encode: {e}"));
        }
        self.out
            .write_all(&[END])
            .and_then(|()| self.out.finish())
            .map_err(|e| format!("encode: {e}"))
    }
}

fn put_u64(w: &mut impl Write, mut n: u64) -> io::Result<()> {
    let mut buf = [0u8; 10];
    let mut i = 0;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf[i] = b;
            i += 1;
            break;
        }
        buf[i] = b | 0x80;
        i += 1;
    }
    w.write_all(&buf[..i])
}

fn put_bytes(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    put_u64(w, b.len() as u64)?;
    w.write_all(b)
}

/// One record of a split, as [`read_split`] hands them out.
pub(crate) enum Record<'a> {
    /// Tar bytes kept verbatim.
    Raw(&'a [u8]),
    /// The data of the regular file `name` (normalized): `regions` of it, in order.
    File {
        name: &'a [u8],
        regions: &'a [(u64, u64)],
        sparse: bool,
    },
}

/// Calls `f` with each record of `split`, in order; fails on a damaged split.
pub(crate) fn read_split(
    split: &[u8],
    mut f: impl FnMut(Record<'_>) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let bad = |reason: String| ArchiveError::Split { reason };
    let mut r = zstd::stream::read::Decoder::new(split).map_err(|e| bad(format!("open: {e}")))?;
    let mut magic = [0u8; MAGIC.len()];
    r.read_exact(&mut magic)
        .map_err(|e| bad(format!("read: {e}")))?;
    if magic != MAGIC {
        return Err(bad("not a strata tar split".into()));
    }
    loop {
        let tag = get_u8(&mut r).map_err(&bad)?;
        match tag {
            END => return Ok(()),
            RAW => {
                let n = get_len(&mut r, MAX_RAW).map_err(&bad)?;
                let mut raw = vec![0u8; n];
                r.read_exact(&mut raw)
                    .map_err(|e| bad(format!("read: {e}")))?;
                f(Record::Raw(&raw))?;
            }
            FILE | SPARSE => {
                let name = get_name(&mut r).map_err(&bad)?;
                let regions = if tag == FILE {
                    vec![(0, get_u64(&mut r).map_err(&bad)?)]
                } else {
                    let n = get_u64(&mut r).map_err(&bad)?;
                    let mut map = Vec::new();
                    for _ in 0..n {
                        let off = get_u64(&mut r).map_err(&bad)?;
                        map.push((off, get_u64(&mut r).map_err(&bad)?));
                    }
                    map
                };
                f(Record::File {
                    name: &name,
                    regions: &regions,
                    sparse: tag == SPARSE,
                })?;
            }
            other => return Err(bad(format!("unknown record {other}"))),
        }
    }
}

/// Writes the uncompressed layer that `split` (from [`ApplyStats::split`]) describes, reading
/// file data from `tree`, the directory the layer was unpacked into. Returns the bytes
/// written.
///
/// [`ApplyStats::split`]: crate::ApplyStats::split
pub fn rebuild_layer(split: &[u8], tree: &Path, out: &mut dyn Write) -> Result<u64, ArchiveError> {
    let root = open_tree(tree)?;
    let mut written = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    read_split(split, |rec| {
        written += match rec {
            Record::Raw(raw) => {
                out.write_all(raw)
                    .map_err(|source| ArchiveError::Write { source })?;
                raw.len() as u64
            }
            Record::File { name, regions, .. } => {
                copy_file(&root, tree, name, regions, &mut buf, out)?
            }
        };
        Ok(())
    })?;
    Ok(written)
}

/// `tree` opened as the root names are resolved in.
pub(crate) fn open_tree(tree: &Path) -> Result<OwnedFd, ArchiveError> {
    root::open_root(tree).map_err(|source| ArchiveError::Destination {
        path: tree.to_owned(),
        source,
    })
}

/// Copies `regions` of the file `name` (resolved inside `root`, the directory `tree`) to
/// `out`; returns the bytes copied. A file shorter than its regions has changed.
pub(crate) fn copy_file(
    root: &OwnedFd,
    tree: &Path,
    name: &[u8],
    regions: &[(u64, u64)],
    buf: &mut [u8],
    out: &mut dyn Write,
) -> Result<u64, ArchiveError> {
    let file = open_file(root, name, tree)?;
    let path = || tree.join(String::from_utf8_lossy(name).as_ref());
    let mut copied = 0;
    for &(off, len) in regions {
        copy_region(&file, off, len, buf, out).map_err(|e| match e {
            Copy::Read(source) => ArchiveError::Walk {
                op: "read unpacked file",
                path: path(),
                source,
            },
            Copy::Short => ArchiveError::Changed {
                path: path(),
                expected: off + len,
            },
            Copy::Write(source) => ArchiveError::Write { source },
        })?;
        copied += len;
    }
    Ok(copied)
}

/// The diffID of the layer [`rebuild_layer`] would write: how a caller checks that `tree`
/// still holds what the layer unpacked before it lets the compressed blob go.
pub fn split_diff_id(split: &[u8], tree: &Path) -> Result<Digest, ArchiveError> {
    struct HashWriter(Sha256);
    impl Write for HashWriter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.update(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut h = HashWriter(Sha256::new());
    rebuild_layer(split, tree, &mut h)?;
    Ok(Digest::from_hasher(h.0))
}

fn open_file(root: &OwnedFd, name: &[u8], tree: &Path) -> Result<OwnedFd, ArchiveError> {
    crate::sys::openat2_in_root(
        root.as_fd(),
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
    )
    .map_err(|e| ArchiveError::Walk {
        op: "open unpacked file",
        path: tree.join(String::from_utf8_lossy(name).as_ref()),
        source: crate::sys::errno(e),
    })
}

enum Copy {
    Read(io::Error),
    Short,
    Write(io::Error),
}

fn copy_region(
    file: &OwnedFd,
    mut off: u64,
    len: u64,
    buf: &mut [u8],
    out: &mut dyn Write,
) -> Result<(), Copy> {
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = match rustix::io::pread(file, &mut buf[..want], off) {
            Ok(0) => return Err(Copy::Short),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Copy::Read(e.into())),
        };
        out.write_all(&buf[..n]).map_err(Copy::Write)?;
        off += n as u64;
        left -= n as u64;
    }
    Ok(())
}

fn get_u8(r: &mut impl Read) -> Result<u8, String> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)
        .map_err(|e| format!("truncated recipe: {e}"))?;
    Ok(b[0])
}

fn get_u64(r: &mut impl Read) -> Result<u64, String> {
    let mut n = 0u64;
    for shift in (0..70).step_by(7) {
        let b = get_u8(r)?;
        if shift == 63 && b > 1 {
            break;
        }
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err("number overflows".into())
}

fn get_len(r: &mut impl Read, max: u64) -> Result<usize, String> {
    let n = get_u64(r)?;
    if n > max {
        return Err(format!("record of {n} bytes (at most {max})"));
    }
    Ok(n as usize)
}

fn get_name(r: &mut impl Read) -> Result<Vec<u8>, String> {
    let n = get_len(r, MAX_NAME)?;
    let mut name = vec![0u8; n];
    r.read_exact(&mut name)
        .map_err(|e| format!("truncated recipe: {e}"))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for n in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut v = Vec::new();
            put_u64(&mut v, n).unwrap();
            assert_eq!(get_u64(&mut &v[..]).unwrap(), n);
        }
        assert!(get_u64(&mut &[0xff; 11][..]).is_err());
    }
}
