//! Starting writeback early: the one `unsafe` call of the crate, since rustix has no binding
//! for `sync_file_range`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Starts writing `len` bytes of `fd`'s dirty pages from `offset` back to disk and returns
/// without waiting for them (`sync_file_range(SYNC_FILE_RANGE_WRITE)`; `len` 0: to the end
/// of the file). Advisory: an error only means the data is written back later, as it would
/// be anyway; callers that need it on disk still fsync.
#[allow(unsafe_code)]
pub fn start_writeback(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    // SAFETY: a plain syscall on an fd `fd` keeps open for the call; only integers are passed.
    let r =
        unsafe { libc::sync_file_range(fd.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn starts_on_a_file_and_reports_a_bad_range() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[7; 8192]).unwrap();
        start_writeback(file.as_fd(), 0, 0).unwrap();
        start_writeback(file.as_fd(), 4096, 4096).unwrap();
        assert_eq!(
            start_writeback(file.as_fd(), u64::MAX, 1)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EINVAL)
        );
    }
}
