//! A streaming tar parser over the decompressed chunks.
//!
//! The `tar` crate parses each 512-byte header (numeric fields, base-256 sizes, ustar prefixes,
//! GNU sparse maps, PAX records); the framing is ours, because the crate's `Archive` reads GNU
//! long names and PAX headers into memory without bound, ignores PAX `size` in raw mode, and
//! cannot hand out file data without a copy. Here:
//!
//! - every header's checksum is verified (unsigned or signed sum, as GNU tar accepts);
//! - GNU long name/link records and PAX headers are bounded by [`MAX_META_RECORD`];
//! - PAX `path`, `linkpath`, `size`, `uid`, `gid`, `mtime`, `atime` and `SCHILY.xattr.*`
//!   override the header; global PAX headers (`g`) are read and ignored, as containerd does;
//! - declared sizes are checked against [`Limits`] before any data is read;
//! - the end of an entry's data and padding is tracked exactly, so a stream that stops inside
//!   a header or an entry is reported as truncated. A stream that ends cleanly at a header
//!   boundary without the two zero blocks is accepted (some tools omit them).

use crate::apply::RecordedSplit;
use crate::limits::{Limits, MAX_META_RECORD};
use crate::split::Recorder;
use crate::stream::{ChunkReader, StreamError};

const BLOCK: u64 = 512;

/// What kind of file an entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

/// A point in time as tar records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Time {
    pub sec: i64,
    pub nsec: u32,
}

/// The data regions of a GNU sparse file: `(offset, length)` pairs in file order, the data of
/// which is stored back to back in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sparse {
    pub map: Vec<(u64, u64)>,
    pub real_size: u64,
}

/// One entry's header with every extension applied.
#[derive(Debug, Clone)]
pub(crate) struct EntryHeader {
    pub kind: Kind,
    pub name: Vec<u8>,
    pub link: Vec<u8>,
    pub sparse: Option<Sparse>,
    /// Permission and setuid/setgid/sticky bits.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: Time,
    pub atime: Option<Time>,
    pub major: u32,
    pub minor: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why the stream could not be parsed. The caller adds the layer and entry names.
#[derive(Debug)]
pub(crate) enum TarError {
    Stream(StreamError),
    Truncated,
    Corrupt(String),
    Limit { limit: &'static str, max: u64 },
    Unsupported(String),
}

impl From<StreamError> for TarError {
    fn from(e: StreamError) -> Self {
        TarError::Stream(e)
    }
}

fn corrupt(what: impl Into<String>) -> TarError {
    TarError::Corrupt(what.into())
}

/// Extension records collected for the next entry.
#[derive(Debug, Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Pax>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.long_name.is_none() && self.long_link.is_none() && self.pax.is_none()
    }
}

#[derive(Debug, Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<Time>,
    atime: Option<Time>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: bool,
}

/// The tar stream: headers one at a time, then the current entry's data.
#[derive(Debug)]
pub(crate) struct TarStream {
    r: ChunkReader,
    limits: Limits,
    /// Data bytes of the current entry not read yet.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    /// The name of the entry being read, for errors (lossy UTF-8).
    current: String,
    /// The name of the last complete entry, to locate a header that cannot be read.
    last: Option<String>,
    /// Keeps the tar split of the stream (see [`crate::split`]) when asked for.
    split: Option<Recorder>,
}

impl TarStream {
    pub(crate) fn new(r: ChunkReader, limits: Limits) -> Self {
        TarStream {
            r,
            limits,
            remaining: 0,
            padding: 0,
            current: "<first header>".to_owned(),
            last: None,
            split: None,
        }
    }

    /// Records the stream's tar split from here on.
    pub(crate) fn record_split(&mut self, recorder: Recorder) {
        self.split = Some(recorder);
    }

    /// The recorded split, if one was asked for: the recipe, or why there is none.
    pub(crate) fn take_split(&mut self) -> Option<RecordedSplit> {
        self.split.take().map(Recorder::finish)
    }

    fn keep(&mut self, bytes: &[u8]) {
        if let Some(rec) = &mut self.split {
            rec.raw(bytes);
        }
    }

    /// Skips `n` bytes, keeping them in the split when one is recorded.
    fn skip_kept(&mut self, n: u64) -> Result<u64, StreamError> {
        let Some(rec) = &mut self.split else {
            return self.r.skip(n);
        };
        let mut done = 0;
        while done < n {
            let s = self.r.slice(n - done)?;
            if s.is_empty() {
                break;
            }
            rec.raw(s);
            let len = s.len();
            self.r.consume(len);
            done += len as u64;
        }
        Ok(done)
    }

    /// The entry being read, for error messages.
    pub(crate) fn current(&self) -> &str {
        &self.current
    }

    /// The next entry's header, `None` at the end of the archive. Skips whatever is left of
    /// the previous entry's data.
    pub(crate) fn next_entry(&mut self) -> Result<Option<EntryHeader>, TarError> {
        self.finish_entry()?;
        if let Some(last) = self.last.take() {
            self.current = format!("<header after {last:?}>");
        }
        let mut pending = Pending::default();
        loop {
            let mut block = [0u8; BLOCK as usize];
            let n = self.r.read_full(&mut block)?;
            if n == 0 && pending.is_empty() {
                tracing::debug!("tar stream ends without an end-of-archive marker");
                return Ok(None);
            }
            if n < block.len() {
                return Err(TarError::Truncated);
            }
            self.keep(&block);
            if block.iter().all(|&b| b == 0) {
                if !pending.is_empty() {
                    return Err(corrupt("extension records without a following entry"));
                }
                self.current = "<end of archive>".to_owned();
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&block);
            // Provisional: the header's own name, until extensions give the real one.
            self.current = String::from_utf8_lossy(&header.path_bytes()).into_owned();
            verify_checksum(header)?;
            let size = unsigned(&header.as_old().size, "size")?;
            let kind = header.entry_type().as_byte();
            match kind {
                b'L' | b'K' | b'x' | b'g' => {
                    let data = self.read_meta(size)?;
                    match kind {
                        b'L' => set_once(&mut pending.long_name, trim_nul(data), "GNU long name")?,
                        b'K' => set_once(&mut pending.long_link, trim_nul(data), "GNU long link")?,
                        b'x' => {
                            let pax = parse_pax(&data)?;
                            set_once(&mut pending.pax, pax, "PAX header")?;
                        }
                        _ => tracing::debug!("ignoring a PAX global header"),
                    }
                }
                _ => return self.entry(header, size, pending).map(Some),
            }
        }
    }

    fn entry(
        &mut self,
        header: &tar::Header,
        header_size: u64,
        pending: Pending,
    ) -> Result<EntryHeader, TarError> {
        let pax = pending.pax.unwrap_or_default();
        let name = pax
            .path
            .or(pending.long_name)
            .unwrap_or_else(|| header.path_bytes().into_owned());
        self.current = String::from_utf8_lossy(&name).into_owned();
        let link = pax
            .linkpath
            .or(pending.long_link)
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
            .unwrap_or_default();
        let type_byte = header.entry_type().as_byte();
        let kind = match type_byte {
            b'\0' if name.ends_with(b"/") => Kind::Dir,
            b'0' | b'\0' | b'7' | b'S' => Kind::Regular,
            b'1' => Kind::Hardlink,
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' | b'D' => Kind::Dir,
            b'6' => Kind::Fifo,
            other => {
                return Err(TarError::Unsupported(format!(
                    "entry type {:?}",
                    char::from(other)
                )));
            }
        };
        if pax.sparse {
            return Err(TarError::Unsupported(
                "PAX sparse file (GNU.sparse.* records)".to_owned(),
            ));
        }
        let size = pax.size.unwrap_or(header_size);
        let old = header.as_old();
        let mode = unsigned(&old.mode, "mode")? as u32 & 0o7777;
        let uid = match pax.uid {
            Some(u) => u,
            None => unsigned(&old.uid, "uid")?,
        };
        let gid = match pax.gid {
            Some(g) => g,
            None => unsigned(&old.gid, "gid")?,
        };
        let mtime = match pax.mtime {
            Some(t) => t,
            None => Time {
                sec: numeric(&old.mtime, "mtime")?,
                nsec: 0,
            },
        };
        let atime = match pax.atime {
            Some(t) => Some(t),
            None => match header.as_gnu() {
                Some(g) => Some(numeric(&g.atime, "atime")?).filter(|&t| t != 0),
                None => None,
            }
            .map(|sec| Time { sec, nsec: 0 }),
        };
        let has_dev = header.as_gnu().is_some() || header.as_ustar().is_some();
        let (major, minor) = if has_dev && matches!(kind, Kind::Char | Kind::Block) {
            let b = header.as_bytes();
            let major = u32::try_from(unsigned(&b[329..337], "device major")?)
                .map_err(|_| corrupt("device major out of range"))?;
            let minor = u32::try_from(unsigned(&b[337..345], "device minor")?)
                .map_err(|_| corrupt("device minor out of range"))?;
            (major, minor)
        } else {
            (0, 0)
        };
        if size > self.limits.max_entry_size {
            return Err(TarError::Limit {
                limit: "entry size",
                max: self.limits.max_entry_size,
            });
        }
        let sparse = if type_byte == b'S' {
            Some(self.sparse_map(header, size)?)
        } else {
            None
        };
        self.start_data(size)?;
        if let Some(rec) = &mut self.split
            && kind == Kind::Regular
            && size > 0
        {
            rec.file(&name, sparse.as_ref().map(|s| s.map.clone()));
        }
        self.last = Some(self.current.clone());
        Ok(EntryHeader {
            kind,
            name,
            link,
            sparse,
            mode,
            uid,
            gid,
            mtime,
            atime,
            major,
            minor,
            xattrs: pax.xattrs,
        })
    }

    /// Checks the declared data size against the stream limit and starts the entry's data.
    fn start_data(&mut self, size: u64) -> Result<(), TarError> {
        let padded = size
            .checked_add(BLOCK - 1)
            .ok_or_else(|| corrupt("size overflows"))?
            & !(BLOCK - 1);
        if self.r.offset().saturating_add(padded) > self.limits.max_uncompressed_bytes {
            return Err(TarError::Limit {
                limit: "uncompressed size",
                max: self.limits.max_uncompressed_bytes,
            });
        }
        self.remaining = size;
        self.padding = padded - size;
        Ok(())
    }

    /// The GNU sparse map of a type `S` entry, from the header and its extension blocks.
    fn sparse_map(&mut self, header: &tar::Header, size: u64) -> Result<Sparse, TarError> {
        let gnu = header
            .as_gnu()
            .ok_or_else(|| corrupt("sparse entry without a GNU header"))?;
        let real_size = gnu
            .real_size()
            .map_err(|e| corrupt(format!("bad sparse real size: {e}")))?;
        if real_size > self.limits.max_entry_size {
            return Err(TarError::Limit {
                limit: "sparse file size",
                max: self.limits.max_entry_size,
            });
        }
        let mut map = Vec::new();
        let mut add = |h: &tar::GnuSparseHeader| -> Result<(), TarError> {
            if h.is_empty() {
                return Ok(());
            }
            let off = h
                .offset()
                .map_err(|e| corrupt(format!("bad sparse offset: {e}")))?;
            let len = h
                .length()
                .map_err(|e| corrupt(format!("bad sparse length: {e}")))?;
            map.push((off, len));
            Ok(())
        };
        for h in &gnu.sparse {
            add(h)?;
        }
        let mut extended = gnu.is_extended();
        let mut blocks = 0;
        while extended {
            blocks += 1;
            if blocks > 1 << 16 {
                return Err(TarError::Limit {
                    limit: "sparse map blocks",
                    max: 1 << 16,
                });
            }
            let mut block = [0u8; BLOCK as usize];
            if self.r.read_full(&mut block)? < block.len() {
                return Err(TarError::Truncated);
            }
            self.keep(&block);
            let mut ext = tar::GnuExtSparseHeader::new();
            ext.as_mut_bytes().copy_from_slice(&block);
            for h in ext.sparse() {
                add(h)?;
            }
            extended = ext.is_extended();
        }
        let mut end = 0u64;
        let mut stored = 0u64;
        for &(off, len) in &map {
            if off < end {
                return Err(corrupt("sparse regions overlap or are out of order"));
            }
            end = off
                .checked_add(len)
                .ok_or_else(|| corrupt("sparse region overflows"))?;
            stored = stored
                .checked_add(len)
                .ok_or_else(|| corrupt("sparse region overflows"))?;
        }
        if end > real_size || stored != size {
            return Err(corrupt("sparse map does not match the entry sizes"));
        }
        Ok(Sparse { map, real_size })
    }

    /// Reads a whole extension record (bounded) and its padding.
    fn read_meta(&mut self, size: u64) -> Result<Vec<u8>, TarError> {
        if size > MAX_META_RECORD {
            return Err(TarError::Limit {
                limit: "extension record size",
                max: MAX_META_RECORD,
            });
        }
        self.start_data(size)?;
        let mut data = vec![0u8; size as usize];
        if self.r.read_full(&mut data)? < data.len() {
            return Err(TarError::Truncated);
        }
        self.keep(&data);
        self.remaining = 0;
        self.finish_entry()?;
        Ok(data)
    }

    /// Up to `max` bytes of the current entry's data; empty when it is all read.
    pub(crate) fn data(&mut self, max: u64) -> Result<&[u8], TarError> {
        if self.remaining == 0 {
            return Ok(&[]);
        }
        let want = self.remaining.min(max);
        let s = self.r.slice(want)?;
        if s.is_empty() {
            return Err(TarError::Truncated);
        }
        Ok(s)
    }

    /// Bytes of the current entry's data not read yet.
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Marks `n` bytes returned by [`data`](Self::data) as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.r.consume(n);
        self.remaining -= n as u64;
        if let Some(rec) = &mut self.split {
            rec.data(n as u64);
        }
    }

    /// Skips the rest of the current entry and its padding.
    pub(crate) fn finish_entry(&mut self) -> Result<(), TarError> {
        if let Some(rec) = &mut self.split {
            rec.end_entry(self.remaining);
        }
        let n = self.remaining + self.padding;
        if n > 0 {
            if self.skip_kept(n)? < n {
                return Err(TarError::Truncated);
            }
            self.remaining = 0;
            self.padding = 0;
        }
        Ok(())
    }

    /// Reads everything after the end-of-archive marker, so the diffID covers the whole stream
    /// (and the uncompressed-size limit sees it).
    pub(crate) fn drain(&mut self) -> Result<(), TarError> {
        self.finish_entry()?;
        while self.skip_kept(u64::MAX)? > 0 {}
        Ok(())
    }
}

/// A numeric header field, as GNU tar and Go read them: base-256 when the high bit of the
/// first byte is set (two's complement when the next bit is too), else octal text padded with
/// spaces or NULs; an empty field is 0.
fn numeric(field: &[u8], what: &str) -> Result<i64, TarError> {
    if let Some(&first) = field.first()
        && first & 0x80 != 0
    {
        let inv = if first & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in field.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 != 0 {
                return Err(corrupt(format!("{what} field overflows")));
            }
            x = (x << 8) | u64::from(c);
        }
        if x >> 63 != 0 {
            return Err(corrupt(format!("{what} field overflows")));
        }
        return Ok(if inv == 0xff { !(x as i64) } else { x as i64 });
    }
    let text = trim_field(field);
    if text.is_empty() {
        return Ok(0);
    }
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| i64::from_str_radix(t, 8).ok())
        .filter(|_| text.iter().all(|b| (b'0'..=b'7').contains(b)))
        .ok_or_else(|| {
            corrupt(format!(
                "bad {what} field {:?}",
                String::from_utf8_lossy(text)
            ))
        })
}

/// A numeric field that must not be negative.
fn unsigned(field: &[u8], what: &str) -> Result<u64, TarError> {
    u64::try_from(numeric(field, what)?).map_err(|_| corrupt(format!("negative {what} field")))
}

fn trim_field(field: &[u8]) -> &[u8] {
    let is_pad = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !is_pad(b)).unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|b| !is_pad(b))
        .map_or(start, |i| i + 1);
    &field[start..end]
}

fn set_once<T>(slot: &mut Option<T>, value: T, what: &str) -> Result<(), TarError> {
    if slot.is_some() {
        return Err(corrupt(format!("two {what}s for one entry")));
    }
    *slot = Some(value);
    Ok(())
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn verify_checksum(header: &tar::Header) -> Result<(), TarError> {
    let bytes = header.as_bytes();
    let expected = header
        .cksum()
        .map_err(|e| corrupt(format!("bad checksum field: {e}")))?;
    let (mut unsigned, mut signed) = (0u32, 0i64);
    for (i, &b) in bytes.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u32::from(b);
        signed += i64::from(b as i8);
    }
    if expected == unsigned || i64::from(expected) == signed {
        Ok(())
    } else {
        Err(corrupt(format!(
            "checksum mismatch: header says {expected}, computed {unsigned}"
        )))
    }
}

fn parse_pax(data: &[u8]) -> Result<Pax, TarError> {
    let mut pax = Pax::default();
    for ext in tar::PaxExtensions::new(data) {
        let ext = ext.map_err(|e| corrupt(format!("malformed PAX record: {e}")))?;
        let key = ext.key_bytes();
        let value = ext.value_bytes();
        let number = |what: &str| -> Result<u64, TarError> {
            std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    corrupt(format!(
                        "bad PAX {what} {:?}",
                        String::from_utf8_lossy(value)
                    ))
                })
        };
        match key {
            b"path" => pax.path = Some(value.to_vec()),
            b"linkpath" => pax.linkpath = Some(value.to_vec()),
            b"size" => pax.size = Some(number("size")?),
            b"uid" => pax.uid = Some(number("uid")?),
            b"gid" => pax.gid = Some(number("gid")?),
            b"mtime" => pax.mtime = Some(parse_time(value)?),
            b"atime" => pax.atime = Some(parse_time(value)?),
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    pax.xattrs.retain(|(k, _)| k != name);
                    pax.xattrs.push((name.to_vec(), value.to_vec()));
                } else if key.starts_with(b"GNU.sparse.") {
                    pax.sparse = true;
                }
            }
        }
    }
    Ok(pax)
}

/// A PAX time: decimal seconds, optionally negative, optionally with a fraction.
fn parse_time(value: &[u8]) -> Result<Time, TarError> {
    let bad = || corrupt(format!("bad PAX time {:?}", String::from_utf8_lossy(value)));
    let s = std::str::from_utf8(value).map_err(|_| bad())?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let sec: i64 = whole.parse().map_err(|_| bad())?;
    let mut nsec = 0u32;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nsec += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    Ok(if neg {
        if nsec == 0 {
            Time { sec: -sec, nsec: 0 }
        } else {
            Time {
                sec: -sec - 1,
                nsec: 1_000_000_000 - nsec,
            }
        }
    } else {
        Time { sec, nsec }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::produce;
    use std::sync::mpsc::sync_channel;

    fn stream(data: &[u8], limits: Limits) -> TarStream {
        let (tx, rx) = sync_channel(10_000);
        let (htx, _hrx) = sync_channel(10_000);
        let mut src = data;
        produce(
            &mut src,
            &|| false,
            limits.max_uncompressed_bytes,
            &tx,
            &htx,
        );
        TarStream::new(ChunkReader::new(rx), limits)
    }

    fn entries(data: &[u8]) -> Result<Vec<(EntryHeader, Vec<u8>)>, TarError> {
        let mut t = stream(data, Limits::default());
        let mut out = Vec::new();
        while let Some(h) = t.next_entry()? {
            let mut body = Vec::new();
            loop {
                let s = t.data(7)?;
                if s.is_empty() {
                    break;
                }
                let n = s.len();
                body.extend_from_slice(s);
                t.consume(n);
            }
            out.push((h, body));
        }
        t.drain()?;
        Ok(out)
    }

    fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
        let body_len = key.len() + value.len() + 3;
        let mut len = body_len + 1;
        while format!("{len}").len() + body_len != len {
            len += 1;
        }
        let mut r = format!("{len} {key}=").into_bytes();
        r.extend_from_slice(value);
        r.push(b'\n');
        r
    }

    #[test]
    fn parses_long_names_pax_and_data() -> Result<(), Box<dyn std::error::Error>> {
        let long = format!("d/{}", "n".repeat(200));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o4755);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, &long, &b"hello"[..])?;
        let mut pax = pax_record("path", b"pax/name");
        pax.extend(pax_record("mtime", b"1700000000.5"));
        pax.extend(pax_record("SCHILY.xattr.user.k", b"v\0w"));
        pax.extend(pax_record("uid", b"3000000"));
        let mut ph = tar::Header::new_ustar();
        ph.set_entry_type(tar::EntryType::XHeader);
        ph.set_size(pax.len() as u64);
        ph.set_cksum();
        b.append(&ph, &pax[..])?;
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_path("ignored")?;
        h.set_link_name("target")?;
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &[][..])?;
        let data = b.into_inner()?;
        let es = entries(&data).map_err(|e| format!("{e:?}"))?;
        assert_eq!(es.len(), 2);
        assert_eq!(es[0].0.name, long.as_bytes());
        assert_eq!(es[0].0.mode, 0o4755);
        assert_eq!(es[0].1, b"hello");
        assert_eq!(es[1].0.name, b"pax/name");
        assert_eq!(es[1].0.kind, Kind::Symlink);
        assert_eq!(es[1].0.link, b"target");
        assert_eq!(es[1].0.uid, 3_000_000);
        assert_eq!(
            es[1].0.mtime,
            Time {
                sec: 1_700_000_000,
                nsec: 500_000_000
            }
        );
        assert_eq!(es[1].0.xattrs, vec![(b"user.k".to_vec(), b"v\0w".to_vec())]);
        Ok(())
    }

    #[test]
    fn rejects_bad_checksum_and_truncation() -> Result<(), Box<dyn std::error::Error>> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1000);
        b.append_data(&mut h, "f", &vec![1u8; 1000][..])?;
        let good = b.into_inner()?;
        let mut bad = good.clone();
        bad[0] = b'g';
        assert!(matches!(entries(&bad), Err(TarError::Corrupt(m)) if m.contains("checksum")));
        for cut in [100, 512, 600, 1024, 1500] {
            assert!(
                matches!(entries(&good[..cut]), Err(TarError::Truncated)),
                "cut at {cut}"
            );
        }
        // Ends at a header boundary without the end marker: accepted.
        assert_eq!(
            entries(&good[..1536]).map_err(|e| format!("{e:?}"))?.len(),
            1
        );
        Ok(())
    }

    #[test]
    fn bounds_sizes_before_reading() {
        let mut h = tar::Header::new_gnu();
        h.set_path("big").ok();
        h.set_size(1 << 40);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend_from_slice(&[0u8; 1024]);
        let mut t = stream(&data, Limits::default());
        let r = t.next_entry();
        assert!(
            matches!(
                r,
                Err(TarError::Limit {
                    limit: "entry size",
                    ..
                })
            ),
            "{r:?}"
        );
        let mut meta = tar::Header::new_gnu();
        meta.set_entry_type(tar::EntryType::GNULongName);
        meta.set_size(1 << 30);
        meta.set_cksum();
        let mut t = stream(meta.as_bytes(), Limits::default());
        assert!(matches!(
            t.next_entry(),
            Err(TarError::Limit {
                limit: "extension record size",
                ..
            })
        ));
    }

    #[test]
    fn parses_numeric_fields_like_gnu_tar() -> Result<(), String> {
        let n = |f: &[u8]| numeric(f, "x").map_err(|e| format!("{e:?}"));
        assert_eq!(n(b"0000644\0")?, 0o644);
        assert_eq!(n(b"  644 \0")?, 0o644);
        assert_eq!(n(b"\0\0\0\0")?, 0);
        assert_eq!(n(b"")?, 0);
        assert_eq!(n(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])?, 1 << 32);
        assert_eq!(n(&[0xff; 12])?, -1);
        assert!(n(b"0009\0").is_err());
        assert!(n(b"12 34").is_err());
        assert!(
            n(&[
                0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0
            ])
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn parses_pax_times() -> Result<(), String> {
        let t = |s: &str| parse_time(s.as_bytes()).map_err(|e| format!("{e:?}"));
        assert_eq!(t("12")?, Time { sec: 12, nsec: 0 });
        assert_eq!(t("12.000000001")?, Time { sec: 12, nsec: 1 });
        assert_eq!(
            t("12.1234567891")?,
            Time {
                sec: 12,
                nsec: 123_456_789
            }
        );
        assert_eq!(
            t("-1.25")?,
            Time {
                sec: -2,
                nsec: 750_000_000
            }
        );
        assert!(t("").is_err() && t("1x").is_err() && t(".5").is_err());
        Ok(())
    }
}
