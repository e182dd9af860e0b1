//! Bounds on what one layer may make us do, checked before the work is done: a layer that
//! claims a 1 TiB entry is refused at its header, not after writing 256 GiB.

/// Bounds on one layer. Exceeding any of them fails the apply with
/// [`ArchiveError::LimitExceeded`](crate::ArchiveError::LimitExceeded).
///
/// The defaults are generous (no real image comes near them) and exist to stop decompression
/// bombs: a few megabytes of gzip can expand to terabytes of zeros or millions of empty
/// entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of decompressed tar stream (headers, data, padding and anything after the
    /// end-of-archive marker). Default 256 GiB.
    pub max_uncompressed_bytes: u64,
    /// Tar entries, counting every header that describes a file (not PAX or GNU long-name
    /// records). Default 10 million.
    pub max_entries: u64,
    /// The size of one entry's data as its header (or PAX record) declares it. Default 64 GiB.
    pub max_entry_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uncompressed_bytes: 256 << 30,
            max_entries: 10_000_000,
            max_entry_size: 64 << 30,
        }
    }
}

/// Size bound for one PAX extended header or GNU long name/link record, which are read into
/// memory. Fixed rather than configurable: no legitimate record comes close (a path is at most
/// `PATH_MAX`, an xattr value at most 64 KiB).
pub(crate) const MAX_META_RECORD: u64 = 8 << 20;
