//! Keeping room on the destination's filesystem ([`ApplyOptions::min_free`]).
//!
//! `fstatvfs` is cheap, but not per write: the free space is checked again once half of the
//! room left above the bound could have been written since the last look (at least every
//! [`MIN_STEP`], at most every [`MAX_STEP`] bytes), so checks are rare on a roomy disk and
//! close together near the bound. Other writers on the same filesystem (another pull, a
//! container) are seen at the next check. Each entry counts [`PER_ENTRY`] bytes, for the
//! inode and directory blocks a layer of many empty files uses.
//!
//! [`ApplyOptions::min_free`]: super::ApplyOptions::min_free

use std::os::fd::BorrowedFd;

use crate::error::ArchiveError;

const MIN_STEP: u64 = 256 << 10;
const MAX_STEP: u64 = 16 << 20;
pub(super) const PER_ENTRY: u64 = 4096;

/// Counts bytes written and checks the free space when due.
#[derive(Debug)]
pub(crate) struct SpaceGuard {
    min_free: u64,
    /// Bytes left before the next check.
    due: u64,
}

impl SpaceGuard {
    pub(crate) fn new(min_free: u64) -> SpaceGuard {
        SpaceGuard { min_free, due: 0 }
    }

    /// Accounts for `n` bytes about to be written under `dir`; fails once the filesystem has
    /// less than the bound free.
    pub(crate) fn spend(
        &mut self,
        n: u64,
        dir: BorrowedFd<'_>,
        layer: &str,
        entry: &[u8],
    ) -> Result<(), ArchiveError> {
        if self.min_free == 0 {
            return Ok(());
        }
        if n < self.due {
            self.due -= n;
            return Ok(());
        }
        // Unknown (a filesystem without statfs): no check rather than a failed apply.
        let Ok(st) = rustix::fs::fstatvfs(dir) else {
            self.due = MAX_STEP;
            return Ok(());
        };
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        if free.saturating_sub(n) < self.min_free {
            return Err(ArchiveError::NoSpace {
                layer: layer.to_owned(),
                entry: String::from_utf8_lossy(entry).into_owned(),
                free,
                min_free: self.min_free,
            });
        }
        self.due = ((free - n - self.min_free) / 2).clamp(MIN_STEP, MAX_STEP);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn stops_under_the_bound_and_checks_rarely_above_it() {
        let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
        let st = rustix::fs::fstatvfs(dir.as_fd()).unwrap();
        let free = st.f_bavail * st.f_frsize;
        let mut off = SpaceGuard::new(0);
        assert!(off.spend(u64::MAX / 2, dir.as_fd(), "l", b"e").is_ok());
        let mut guard = SpaceGuard::new(free + (1 << 30));
        let err = guard.spend(1, dir.as_fd(), "l", b"big").unwrap_err();
        assert!(matches!(err, ArchiveError::NoSpace { .. }), "{err}");
        assert!(err.to_string().contains("stopped unpacking"), "{err}");
        if free > 64 << 20 {
            let mut guard = SpaceGuard::new(1 << 20);
            guard.spend(1, dir.as_fd(), "l", b"e").unwrap();
            assert!(
                guard.due >= MIN_STEP,
                "next check after a step, not at once"
            );
        }
    }
}
