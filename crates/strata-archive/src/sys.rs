//! The few system calls rustix does not wrap the way apply needs them, and small helpers
//! around the ones it does. Everything here acts relative to a directory fd on a single final
//! path component and never follows a symlink in that component.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};

/// How every path inside a root is resolved: symlinks (absolute or with `..`) resolve as if the
/// root were `/`, `/proc` magic links are refused, and mount points are not crossed.
pub(crate) const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

pub(crate) fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

pub(crate) fn is_errno(e: &io::Error, errno: rustix::io::Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

/// `rel` (a normalized relative path, empty for `root` itself) opened inside `root` as an
/// `O_PATH` directory fd, with every symlink on the way resolved inside `root`.
pub(crate) fn open_dir_in(root: BorrowedFd<'_>, rel: &[u8]) -> io::Result<OwnedFd> {
    let path: &[u8] = if rel.is_empty() { b"." } else { rel };
    openat2_in_root(
        root,
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
    )
    .map_err(errno)
}

/// `openat2(root, path, flags, RESOLVE_IN_ROOT|…)`, retried while it fails with `EAGAIN`: the
/// kernel refuses a scoped lookup when any rename or mount happened on the system meanwhile
/// (it cannot prove the walk stayed inside), and asks the caller to try again. Parallel
/// unpacks and garbage collection rename all the time.
pub(crate) fn openat2_in_root(
    root: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    if path.len() > LONGEST_PATH {
        return open_long_in_root(root, path, flags);
    }
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(root, path, flags, Mode::empty(), IN_ROOT) {
            Err(rustix::io::Errno::AGAIN) if tries < 1000 => {
                tries += 1;
                std::thread::yield_now();
            }
            r => return r,
        }
    }
}

/// The longest path handed to the kernel whole: it refuses `PATH_MAX` (4096) bytes and more.
const LONGEST_PATH: usize = 4000;

/// `RESOLVE_IN_ROOT` done by hand, one component at a time, for a path too long for the
/// kernel (a layer may name one: tar's PAX `path` has no limit). The same rules: symlinks,
/// absolute or with `..`, resolve as if `root` were `/`; `..` never climbs above it; no
/// other filesystem is entered; at most 40 symlinks; a final symlink is followed unless
/// `flags` has `O_NOFOLLOW`. The longest prefix the kernel takes is resolved by one
/// `openat2` (the same rules); the rest by hand, holding one `O_PATH` fd per level (`..` goes
/// back to the one below, never through the filesystem's own `..`). A `..` that would climb
/// back into that prefix starts again, all by hand.
fn open_long_in_root(
    root: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    match walk_long(root, path, flags, true) {
        Err(rustix::io::Errno::NOTRECOVERABLE) => walk_long(root, path, flags, false),
        r => r,
    }
}

fn walk_long(
    root: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlags,
    kernel_prefix: bool,
) -> rustix::io::Result<OwnedFd> {
    use rustix::io::Errno;
    fn parts(p: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
        p.split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
    }
    let follow_last = !flags.contains(OFlags::NOFOLLOW);
    let root_dev = rustix::fs::fstat(root)?.st_dev;
    let mut rest = path;
    // Where the walk by hand starts: `None` is `root`.
    let mut base: Option<OwnedFd> = None;
    if kernel_prefix && let Some(cut) = path[..LONGEST_PATH].iter().rposition(|&b| b == b'/') {
        base = Some(openat2_in_root(
            root,
            &path[..cut],
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        )?);
        rest = &path[cut + 1..];
    }
    let mut todo: std::collections::VecDeque<Vec<u8>> = parts(rest).map(<[u8]>::to_vec).collect();
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        let cur = stack.last().or(base.as_ref()).map_or(root, |f| f.as_fd());
        if c == b".." {
            if stack.pop().is_none() && base.is_some() {
                // Above the prefix the kernel resolved: its levels are not on the stack.
                return Err(Errno::NOTRECOVERABLE);
            }
            continue;
        }
        let last = todo.is_empty();
        let st = rustix::fs::statat(cur, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
        if file_type(&st) == FileType::Symlink && (!last || follow_last) {
            links += 1;
            if links > 40 {
                return Err(Errno::LOOP);
            }
            let target = rustix::fs::readlinkat(cur, c.as_slice(), Vec::new())?.into_bytes();
            if target.starts_with(b"/") {
                stack.clear();
                base = None;
            }
            for t in parts(&target).rev() {
                todo.push_front(t.to_vec());
            }
            continue;
        }
        if st.st_dev != root_dev {
            return Err(Errno::XDEV);
        }
        if last {
            // Not a symlink a moment ago: if it became one, fail rather than follow it.
            return rustix::fs::openat(cur, c.as_slice(), flags | OFlags::NOFOLLOW, Mode::empty());
        }
        let fd = rustix::fs::openat(
            cur,
            c.as_slice(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        stack.push(fd);
    }
    let cur = stack.last().or(base.as_ref()).map_or(root, |f| f.as_fd());
    rustix::fs::openat(cur, ".", flags, Mode::empty())
}

/// `name` in `dir`, not following a symlink.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Stat> {
    strata_fs::lstat_at(dir, name)
}

pub(crate) fn file_type(st: &Stat) -> FileType {
    strata_fs::file_type(st)
}

/// Opens the directory `name` in `dir` for reading, refusing a symlink.
pub(crate) fn open_subdir(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    strata_fs::open_subdir(dir, name)
}

/// The names in an open directory, without `.` and `..`.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, FileType)>> {
    strata_fs::list(dir)
}

/// Removes `name` in `dir` and, if it is a directory, everything below it (any depth). Never
/// follows a symlink: a symlink is removed, not its target. A missing `name` is not an error.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    strata_fs::remove_all_at(dir, name)
}

#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// `setxattrat(2)` (Linux 6.13): same number on every architecture.
const SYS_SETXATTRAT: libc::c_long = 463;
static NO_SETXATTRAT: AtomicBool = AtomicBool::new(false);

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Sets the xattr `key` on `name` in `dir` without following a symlink in `name`; an empty
/// `name` means `dir` itself (which may be an `O_PATH` fd, set through `/proc/self/fd/<dir>`).
/// Uses `setxattrat(2)`, or on older kernels `lsetxattr` on `/proc/self/fd/<dir>/<name>` (the
/// fd was already resolved inside the root; only the final component is looked up, without
/// following).
pub(crate) fn set_xattr_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    key: &[u8],
    value: &[u8],
) -> io::Result<()> {
    let key_c = cstring(key)?;
    // setxattrat(AT_EMPTY_PATH) refuses O_PATH fds (EBADF): the directory itself goes
    // through /proc below.
    if !name.is_empty() && !NO_SETXATTRAT.load(Ordering::Relaxed) {
        let name_c = cstring(name)?;
        let flags = libc::AT_SYMLINK_NOFOLLOW;
        let args = XattrArgs {
            value: value.as_ptr() as u64,
            size: u32::try_from(value.len())
                .map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
            flags: 0,
        };
        // SAFETY: every pointer is valid for the duration of the call (the CStrings, `args`
        // and the `value` slice it points into outlive it); the kernel only reads them.
        let r = unsafe {
            libc::syscall(
                SYS_SETXATTRAT,
                dir.as_raw_fd(),
                name_c.as_ptr(),
                flags,
                key_c.as_ptr(),
                &args as *const XattrArgs,
                std::mem::size_of::<XattrArgs>(),
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(e);
        }
        NO_SETXATTRAT.store(true, Ordering::Relaxed);
    }
    let mut path = format!("/proc/self/fd/{}", dir.as_raw_fd()).into_bytes();
    if name.is_empty() {
        // The fd itself: following the magic link is what we want.
        return rustix::fs::setxattr(
            path.as_slice(),
            key_c.as_c_str(),
            value,
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(errno);
    }
    path.push(b'/');
    path.extend_from_slice(name);
    rustix::fs::lsetxattr(
        path.as_slice(),
        key_c.as_c_str(),
        value,
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(errno)
}

/// Every xattr of the inode the fd `fd` (`O_PATH` included) refers to, sorted by name.
pub(crate) fn xattrs_of_fd(fd: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    // The /proc link is followed to the fd's own inode; no name is looked up again.
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd()).into_bytes();
    xattrs(&path, true)
}

/// Every xattr of `path` (not following a final symlink), sorted by name.
pub(crate) fn xattrs_of_path(path: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    xattrs(path, false)
}

fn xattrs(path: &[u8], follow: bool) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let list = |buf: &mut [u8]| {
        if follow {
            rustix::fs::listxattr(path, buf)
        } else {
            rustix::fs::llistxattr(path, buf)
        }
    };
    let list_query = || {
        if follow {
            rustix::fs::listxattr_query(path)
        } else {
            rustix::fs::llistxattr_query(path)
        }
    };
    let get = |key: &CString, buf: &mut [u8]| {
        if follow {
            rustix::fs::getxattr(path, key.as_c_str(), buf)
        } else {
            rustix::fs::lgetxattr(path, key.as_c_str(), buf)
        }
    };
    let get_query = |key: &CString| {
        if follow {
            rustix::fs::getxattr_query(path, key.as_c_str())
        } else {
            rustix::fs::lgetxattr_query(path, key.as_c_str())
        }
    };
    let mut names = vec![0u8; 1024];
    let len = loop {
        match list(&mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let want = list_query().map_err(errno)?;
                names.resize(want.max(names.len() * 2), 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(errno(e)),
        }
    };
    let mut out = Vec::new();
    for key in names[..len].split(|&b| b == 0).filter(|k| !k.is_empty()) {
        let key_c = cstring(key)?;
        let mut value = vec![0u8; 256];
        loop {
            match get(&key_c, &mut value[..]) {
                Ok(n) => {
                    value.truncate(n);
                    break;
                }
                Err(rustix::io::Errno::RANGE) => {
                    let want = get_query(&key_c).map_err(errno)?;
                    value.resize(want.max(value.len() * 2), 0);
                }
                // Removed between list and get.
                Err(rustix::io::Errno::NODATA) => {
                    value.clear();
                    break;
                }
                Err(e) => return Err(errno(e)),
            }
        }
        out.push((key.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// Every xattr of `name` in `dir` (empty `name`: `dir` itself), not following a symlink.
pub(crate) fn xattrs_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut path = format!("/proc/self/fd/{}", dir.as_raw_fd()).into_bytes();
    if !name.is_empty() {
        path.push(b'/');
        path.extend_from_slice(name);
        return xattrs_of_path(&path);
    }
    // For the fd itself the magic link must be followed: go through its target directory's
    // `.` entry, which is not a symlink.
    path.extend_from_slice(b"/.");
    xattrs_of_path(&path)
}

/// The process umask, read without changing it (`umask(2)` can only be read by setting it,
/// which would race with other threads). Unknown: all bits, so callers always `chmod`.
pub(crate) fn current_umask() -> u32 {
    read_umask().unwrap_or(0o777)
}

fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let v = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(v.trim(), 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scoped lookup through `..` fails with EAGAIN when a rename anywhere races it; the
    /// retry hides that (an unpack beside a garbage collection failed this way).
    #[test]
    fn scoped_lookups_survive_concurrent_renames() -> io::Result<()> {
        use std::sync::atomic::AtomicBool;
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("d/sub"))?;
        std::os::unix::fs::symlink("../../d", root.join("link"))?;
        let busy = tmp.path().join("busy");
        std::fs::write(&busy, b"x")?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let renamer = {
            let (stop, busy) = (stop.clone(), busy.clone());
            std::thread::spawn(move || {
                let other = busy.with_extension("moved");
                while !stop.load(Ordering::Relaxed) {
                    let _ = std::fs::rename(&busy, &other);
                    let _ = std::fs::rename(&other, &busy);
                }
            })
        };
        let dir = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .map_err(errno)?;
        let mut result = Ok(());
        for _ in 0..20_000 {
            if let Err(e) = open_dir_in(dir.as_fd(), b"link/sub") {
                result = Err(e);
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        renamer.join().ok();
        result
    }

    #[test]
    fn remove_all_does_not_follow_symlinks() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside)?;
        std::fs::write(outside.join("keep"), b"x")?;
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("d/e"))?;
        std::fs::write(root.join("d/e/f"), b"x")?;
        std::os::unix::fs::symlink(&outside, root.join("d/link"))?;
        let fd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .map_err(errno)?;
        remove_all_at(fd.as_fd(), b"d")?;
        remove_all_at(fd.as_fd(), b"missing")?;
        assert!(!root.join("d").exists());
        assert!(outside.join("keep").exists());
        Ok(())
    }

    #[test]
    fn open_dir_in_stays_inside() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc"))?;
        std::fs::create_dir_all(tmp.path().join("etc"))?;
        std::os::unix::fs::symlink("/etc", root.join("abs"))?;
        std::os::unix::fs::symlink("../../../etc", root.join("rel"))?;
        let fd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .map_err(errno)?;
        let root_etc = std::fs::metadata(root.join("etc"))?;
        for p in [&b"abs"[..], b"rel", b"etc"] {
            let d = open_dir_in(fd.as_fd(), p)?;
            let st = rustix::fs::fstat(&d).map_err(errno)?;
            assert_eq!(st.st_ino, std::os::unix::fs::MetadataExt::ino(&root_etc));
        }
        Ok(())
    }

    /// Past PATH_MAX the resolution is done by hand, with the same rules: symlinks deep in the
    /// path resolve inside the root, `..` stops at it.
    #[test]
    fn long_paths_resolve_inside_the_root() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("a"))?;
        let fd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .map_err(errno)?;
        let mut dir = rustix::fs::open(&root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            .map_err(errno)?;
        let mut rel = Vec::new();
        for _ in 0..400 {
            rustix::fs::mkdirat(&dir, "dddddddddd", Mode::from_raw_mode(0o755)).map_err(errno)?;
            dir = open_subdir(dir.as_fd(), b"dddddddddd")?;
            rel.extend_from_slice(b"dddddddddd/");
        }
        rustix::fs::symlinkat("/a", &dir, "abs").map_err(errno)?;
        rustix::fs::symlinkat("../".repeat(500).as_str(), &dir, "up").map_err(errno)?;
        rustix::fs::symlinkat("../..", &dir, "two").map_err(errno)?;
        let ino = |p: &std::path::Path| {
            std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        };
        let at = |name: &str| -> io::Result<u64> {
            let mut p = rel.clone();
            p.extend_from_slice(name.as_bytes());
            let d = open_dir_in(fd.as_fd(), &p)?;
            Ok(rustix::fs::fstat(&d).map_err(errno)?.st_ino)
        };
        assert!(rel.len() > LONGEST_PATH);
        assert_eq!(at("abs")?, ino(&root.join("a"))?);
        assert_eq!(at("up")?, ino(&root)?);
        let two_up =
            rustix::fs::openat(&dir, "../..", OFlags::PATH, Mode::empty()).map_err(errno)?;
        assert_eq!(
            at("two")?,
            rustix::fs::fstat(&two_up).map_err(errno)?.st_ino
        );
        assert!(at("missing").is_err());
        Ok(())
    }

    /// Read from /proc, not through the fallback: the same value a child shell inherits.
    #[test]
    fn umask_is_readable() {
        let out = std::process::Command::new("sh")
            .args(["-c", "umask"])
            .output()
            .unwrap();
        let shell = std::str::from_utf8(&out.stdout).unwrap().trim();
        let shell = u32::from_str_radix(shell, 8).unwrap();
        assert_eq!(read_umask(), Some(shell));
        assert_eq!(current_umask(), shell);
    }
}
