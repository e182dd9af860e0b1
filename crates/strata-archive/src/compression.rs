//! Which compression a layer uses, read from its first bytes. The media type is never trusted
//! for this: registries and tools disagree about it (Docker's `tar.gzip` for zstd layers,
//! uncompressed layers labelled gzip), while the magic bytes cannot lie.

use std::fmt;
use std::io::{self, BufReader, Cursor, Read};

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (RFC 1952), possibly several concatenated members.
    Gzip,
    /// zstd (RFC 8878), possibly several frames, skippable frames allowed.
    Zstd,
}

impl Compression {
    /// The lowercase name used in messages: `none`, `gzip`, `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b, 0x08];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// The compression of a stream starting with `first_bytes` (4 bytes are enough; fewer give
/// [`Compression::None`] unless they already match).
///
/// gzip is `1f 8b 08` (deflate is the only method gzip defines); zstd is the frame magic
/// `28 b5 2f fd` or a skippable frame `5? 2a 4d 18`. Anything else is taken as a plain tar,
/// whose parser then rejects it if it is not one.
pub fn detect_compression(first_bytes: &[u8]) -> Compression {
    if first_bytes.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if first_bytes.starts_with(ZSTD_MAGIC)
        || (first_bytes.len() >= 4
            && first_bytes[0] & 0xf0 == 0x50
            && first_bytes[1..4] == [0x2a, 0x4d, 0x18])
    {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// `src` decompressed: its compression read from its first bytes (gzip, zstd, or none), and a
/// reader of the plain stream. For archives (`load`) and any other whole-stream input.
pub fn decompress<'a>(mut src: impl Read + 'a) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match src.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let compression = detect_compression(&head[..n]);
    if let Some(format) = foreign_format(&head[..n]) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{format}-compressed input is not supported (gzip and zstd are)"),
        ));
    }
    let reader = Cursor::new(head[..n].to_vec()).chain(src);
    Ok(match compression {
        Compression::None => (compression, Box::new(reader)),
        Compression::Gzip => (
            compression,
            Box::new(flate2::bufread::MultiGzDecoder::new(
                BufReader::with_capacity(256 << 10, reader),
            )),
        ),
        Compression::Zstd => (
            compression,
            Box::new(zstd::stream::read::Decoder::with_buffer(
                BufReader::with_capacity(256 << 10, reader),
            )?),
        ),
    })
}

/// Formats that are compressed but that OCI layers never use; recognizing them gives a clear
/// error instead of "corrupt tar header".
pub(crate) fn foreign_format(first_bytes: &[u8]) -> Option<&'static str> {
    if first_bytes.starts_with(b"BZh") {
        Some("bzip2")
    } else if first_bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if first_bytes.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        Some("lz4")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_magic() {
        assert_eq!(
            detect_compression(&[0x1f, 0x8b, 0x08, 0]),
            Compression::Gzip
        );
        assert_eq!(
            detect_compression(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(
            detect_compression(&[0x5e, 0x2a, 0x4d, 0x18]),
            Compression::Zstd
        );
        assert_eq!(detect_compression(b"etc/passwd\0\0"), Compression::None);
        assert_eq!(detect_compression(&[]), Compression::None);
        assert_eq!(detect_compression(&[0x1f]), Compression::None);
        // gzip magic with a method other than deflate is not gzip.
        assert_eq!(detect_compression(&[0x1f, 0x8b, 0x07]), Compression::None);
    }

    #[test]
    fn recognizes_foreign_formats() {
        assert_eq!(foreign_format(b"BZh91AY"), Some("bzip2"));
        assert_eq!(foreign_format(b"\xfd7zXZ\0"), Some("xz"));
        assert_eq!(foreign_format(b"usr/"), None);
    }
}
