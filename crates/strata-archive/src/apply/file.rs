//! Writing one regular file: create (replacing a non-directory), data, then metadata.
//!
//! Files are written on the unpacking thread. Handing small files to writer threads was
//! measured (batches per directory, data passed as references into the decompressed chunks)
//! and was slower on the 2-vCPU build machines, cold and warm: file creation in one directory
//! is serialized by its lock, and the extra threads competed with decompression and hashing.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timestamps, Uid};
use rustix::io::Errno;

use super::meta::{Ctx, Failure};
use crate::sys::{errno, file_type, lstat_at};

/// What to set on a regular file after its data, in this order.
#[derive(Debug, Clone)]
pub(crate) struct FileMeta {
    pub owner: Option<(Uid, Gid)>,
    pub mode: u32,
    pub chmod: bool,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub times: Timestamps,
}

/// Opens a new file `name` in `dir` for writing (`O_EXCL|O_NOFOLLOW`), replacing a
/// non-directory already there. `Ok(None)`: a directory is in the way.
pub(crate) fn open_new(
    dir: BorrowedFd<'_>,
    name: &[u8],
    create_mode: u32,
) -> io::Result<Option<OwnedFd>> {
    let open = || {
        rustix::fs::openat(
            dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(create_mode),
        )
    };
    match open() {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::EXIST) => {
            if file_type(&lstat_at(dir, name)?) == FileType::Directory {
                return Ok(None);
            }
            match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(errno(e)),
            }
            open().map(Some).map_err(errno)
        }
        Err(e) => Err(errno(e)),
    }
}

/// Writes all of `buf` to `fd`, at `offset` when given (sparse files), else at the current
/// position.
pub(crate) fn write_all(fd: &OwnedFd, mut buf: &[u8], mut offset: Option<u64>) -> io::Result<()> {
    while !buf.is_empty() {
        let r = match offset {
            Some(o) => rustix::io::pwrite(fd, buf, o),
            None => rustix::io::write(fd, buf),
        };
        match r {
            Ok(0) => return Err(errno(Errno::IO)),
            Ok(n) => {
                buf = &buf[n..];
                if let Some(o) = &mut offset {
                    *o += n as u64;
                }
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(errno(e)),
        }
    }
    Ok(())
}

/// Owner, mode, xattrs and times of a file just written, on its fd. `chown` clears setuid
/// bits and file capabilities, hence this order.
pub(crate) fn finish_file(ctx: Ctx<'_>, fd: &OwnedFd, meta: &FileMeta) -> Result<(), Failure> {
    if let Some((uid, gid)) = meta.owner {
        rustix::fs::fchown(fd, Some(uid), Some(gid)).map_err(|e| ctx.io("chown file")(errno(e)))?;
    }
    if meta.chmod {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| ctx.io("chmod file")(errno(e)))?;
    }
    for (key, value) in &meta.xattrs {
        let r = std::ffi::CString::new(key.as_slice())
            .map_err(|_| errno(Errno::INVAL))
            .and_then(|k| {
                rustix::fs::fsetxattr(fd, k.as_c_str(), value, rustix::fs::XattrFlags::empty())
                    .map_err(errno)
            });
        if let Err(e) = r {
            ctx.xattr_failed(key, e)?;
        }
    }
    rustix::fs::futimens(fd, &meta.times).map_err(|e| ctx.io("set file times")(errno(e)))
}
