//! Disk space: what keeps a full disk from wedging the store.
//!
//! - **Reserved space** (`<root>/reserved-space`, a few MiB): given back to the filesystem
//!   before a write transaction when the disk is nearly full, so that the transactions that
//!   free space (a failed pull's own cleanup, `rm`, `rmi`, `prune`, `fsck --repair`) still
//!   commit; made again at the next store open once there is room (see
//!   [`strata_metadata::Reserve`]).
//! - **min-free-space** (`strata system settings min-free-space`): unpacking a layer stops with
//!   a clear error once less than this is free on the store's filesystem, before the disk is
//!   full: a decompression bomb (a 1 MB gzip of 1 GiB of zeros) fails cleanly instead of
//!   filling the disk. Default: 5% of the filesystem, at most 1 GiB; `0` turns the check off.
//! - **Dead owners**: leases record the process that made them (see [`crate::gc`]), so what a
//!   killed pull leaves is garbage at once, not after its lease's day.

use std::path::Path;

use strata_metadata::{Db, MetaError, Reserve};

/// The setting that says how much unpacking leaves free.
pub const SETTING: &str = "min-free-space";
/// Its default, as `system settings` shows it.
pub const DEFAULT: &str = "5%";
/// The default: 5% of the filesystem, at most 1 GiB.
const DEFAULT_MIN_FREE: MinFree = MinFree::Percent(5, Some(1 << 30));
/// The reserve's file name under the store root.
pub const RESERVE_FILE: &str = "reserved-space";

/// Opens the store's database with its reserve, and makes the reserve if it is missing and
/// there is room.
pub fn open_db(root: &Path) -> Result<Db, MetaError> {
    let db_path = root.join("metadata.db");
    let reserve = Reserve::new(root.join(RESERVE_FILE), db_path.clone());
    // Opening needs room too: SQLite sizes its shared-memory index (`-shm`) on open.
    reserve.release_if_short();
    let db = Db::open_with_reserve(&db_path, Some(reserve.clone()))?;
    reserve.ensure();
    Ok(db)
}

/// A min-free-space value: bytes, or a share of the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinFree {
    Bytes(u64),
    /// Percent of the filesystem's size; with a cap (the default's 1 GiB) or none.
    Percent(u8, Option<u64>),
}

impl MinFree {
    /// The bytes to keep free on a filesystem of `capacity` bytes.
    pub fn bytes(self, capacity: u64) -> u64 {
        match self {
            MinFree::Bytes(b) => b,
            MinFree::Percent(p, cap) => {
                let share = capacity / 100 * u64::from(p);
                cap.map_or(share, |c| share.min(c))
            }
        }
    }
}

/// Parses a min-free-space value: `0`, a size (`512m`, `2GB`, `1GiB`: units are powers of
/// 1024, as Docker's `--memory`), or a percentage of the filesystem (`5%`). `None`: the
/// default.
pub fn parse_min_free(value: Option<&str>) -> Result<MinFree, String> {
    let Some(v) = value else {
        return Ok(DEFAULT_MIN_FREE);
    };
    let v = v.trim();
    if let Some(p) = v.strip_suffix('%') {
        return match p.trim().parse::<u8>() {
            Ok(p) if p <= 50 => Ok(MinFree::Percent(p, None)),
            _ => Err(format!("{v:?} is not a percentage from 0% to 50%")),
        };
    }
    strata_types::parse_size(v, strata_types::SizeUnits::Binary)
        .map(MinFree::Bytes)
        .map_err(|_| format!("{v:?} is not a size (e.g. 0, 512m, 2GB) or a percentage (e.g. 5%)"))
}

/// The bytes unpacking leaves free on the filesystem of `dir` (a snapshot of the store whose
/// database is `db`), as the store's setting says; 0: no check. A setting that cannot be read
/// counts as the default.
pub fn min_free_bytes(db: &Db, dir: &Path) -> u64 {
    let min = db
        .read(|tx| tx.setting(SETTING))
        .map_err(|e| e.to_string())
        .and_then(|v| parse_min_free(v.as_deref()))
        .unwrap_or_else(|e| {
            tracing::warn!("{SETTING}: {e}; using the default {DEFAULT}");
            DEFAULT_MIN_FREE
        });
    let capacity = strata_metadata::reserve::capacity(dir).unwrap_or(0);
    min.bytes(capacity)
}

/// Whether `error` (or any error under it) is a full disk: `ENOSPC` or `EDQUOT`, SQLite's
/// "database or disk is full", or an unpack stopped for want of space.
pub fn is_out_of_space(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if as_a::<std::io::Error>(e)
            .is_some_and(|io| matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)))
            || as_a::<MetaError>(e).is_some_and(MetaError::is_disk_full)
            || matches!(
                as_a::<strata_archive::ArchiveError>(e),
                Some(strata_archive::ArchiveError::NoSpace { .. })
            )
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// The outcome of a tar producer piped into an applier: when the applier stopped (for want of
/// space, say), the producer's broken pipe is only its echo, and the applier's error is the
/// one that says what happened.
pub fn piped_result<E: std::error::Error + 'static>(
    produced: Result<(), E>,
    applied: Result<(), E>,
) -> Result<(), E> {
    match (produced, applied) {
        (Err(p), Err(a)) if broken_pipe(&p) => Err(a),
        (p, a) => p.and(a),
    }
}

fn broken_pipe(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if as_a::<std::io::Error>(e).is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
            return true;
        }
        next = e.source();
    }
    false
}

/// `e` as a `T`, also when it is a boxed `T` (error enums box big sources).
fn as_a<'e, T: std::error::Error + 'static>(
    e: &'e (dyn std::error::Error + 'static),
) -> Option<&'e T> {
    e.downcast_ref::<T>()
        .or_else(|| e.downcast_ref::<Box<T>>().map(|b| &**b))
}

/// What to tell a user whose command failed for want of space on the store's filesystem.
pub fn out_of_space_hint(root: &Path) -> String {
    let free = strata_metadata::reserve::available(root)
        .map(|b| format!(" ({} free now)", strata_types::human_size(b)))
        .unwrap_or_default();
    format!(
        "no space left on the store's filesystem{free}: free space (`strata system prune -a`, \
         `strata rmi IMAGE`, `strata rm CONTAINER`) and retry; `strata system settings \
         {SETTING}` sets how much unpacking leaves free"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_free_values() {
        let gib = 1u64 << 30;
        assert_eq!(parse_min_free(Some("0")), Ok(MinFree::Bytes(0)));
        assert_eq!(parse_min_free(Some("512m")), Ok(MinFree::Bytes(512 << 20)));
        assert_eq!(parse_min_free(Some("2GB")), Ok(MinFree::Bytes(2 * gib)));
        assert_eq!(
            parse_min_free(Some("1.5GiB")),
            Ok(MinFree::Bytes(3 * gib / 2))
        );
        assert_eq!(parse_min_free(Some("10%")), Ok(MinFree::Percent(10, None)));
        assert!(parse_min_free(Some("60%")).is_err());
        assert!(parse_min_free(Some("lots")).is_err());
        assert!(parse_min_free(Some("-1")).is_err());
        // The default: 5%, at most 1 GiB.
        let default = parse_min_free(None).unwrap();
        assert_eq!(default.bytes(64 << 20), (64 << 20) / 100 * 5);
        assert_eq!(default.bytes(1000 * gib), gib);
        assert_eq!(MinFree::Percent(10, None).bytes(1000 * gib), 100 * gib);
    }

    #[test]
    fn full_disks_are_recognized_through_error_chains() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let full = Outer(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(is_out_of_space(&full));
        let other = Outer(std::io::Error::from_raw_os_error(libc::EIO));
        assert!(!is_out_of_space(&other));
    }
}
