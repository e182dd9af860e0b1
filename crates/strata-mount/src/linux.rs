//! The system calls: mount, unmount, temporary mounts.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use std::{fs, io};

use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountFlags, MoveMountFlags, UnmountFlags as SysUnmountFlags,
};

use crate::options::{self, Parsed};
use crate::{Mount, MountError, UnmountFlags};

/// `mount(2)` copies at most one page of data, including its terminating NUL.
const LEGACY_DATA_MAX: usize = 4095;
/// `fsconfig(FSCONFIG_SET_STRING)` copies at most 256 bytes, including the NUL.
const FSCONFIG_STRING_MAX: usize = 255;
/// How often a busy mount is retried, and how long apart, before unmount gives up.
const BUSY_RETRIES: u32 = 20;
const BUSY_WAIT: Duration = Duration::from_millis(50);

/// Mounts each of `mounts` on `target`, in order (later ones stack on earlier ones). If one
/// fails, those already mounted are unmounted again and the error is returned.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), MountError> {
    for (done, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            for _ in 0..done {
                if let Err(undo) = unmount(target, UnmountFlags::DETACH) {
                    tracing::warn!(error = %undo, "undoing a partial mount_all");
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> Result<(), MountError> {
    let parsed = options::parse(&m.options);
    if m.kind == "bind" || parsed.is_bind() {
        mount_bind(m, &parsed, target)?;
    } else if m.kind == "overlay" {
        mount_overlay(m, &parsed, target)?;
    } else {
        mount_legacy(m, &parsed, target)?;
    }
    if let Some(propagation) = parsed.propagation {
        rustix::mount::mount_change(target, propagation)
            .map_err(|e| mount_err(m, target, String::new(), e))?;
    }
    Ok(())
}

fn mount_err(m: &Mount, target: &Path, detail: String, e: Errno) -> MountError {
    MountError::Mount {
        kind: m.kind.clone(),
        from: m.source.clone(),
        target: target.to_owned(),
        detail,
        source: e.into(),
    }
}

fn mount_bind(m: &Mount, p: &Parsed, target: &Path) -> Result<(), MountError> {
    if !p.data.is_empty() {
        tracing::debug!(options = ?p.data, "data options ignored on a bind mount");
    }
    let bound = if p.flags.contains(MountFlags::REC) {
        rustix::mount::mount_bind_recursive(&m.source, target)
    } else {
        rustix::mount::mount_bind(&m.source, target)
    };
    bound.map_err(|e| mount_err(m, target, String::new(), e))?;
    // The kernel ignores per-mount flags on the binding call; a bind remount applies them.
    let extra = p.bind_remount_flags();
    if !extra.is_empty()
        && let Err(e) = rustix::mount::mount_remount(target, MountFlags::BIND | extra, "")
    {
        let _ = rustix::mount::unmount(target, SysUnmountFlags::DETACH);
        return Err(mount_err(m, target, "remount with flags".to_owned(), e));
    }
    Ok(())
}

fn mount_legacy(m: &Mount, p: &Parsed, target: &Path) -> Result<(), MountError> {
    let data = p.data_string();
    if data.len() > LEGACY_DATA_MAX {
        return Err(MountError::OptionsTooLong {
            kind: m.kind.clone(),
            target: target.to_owned(),
            len: data.len(),
            max: LEGACY_DATA_MAX,
        });
    }
    let data = CString::new(data).map_err(|_| MountError::InvalidOption {
        kind: m.kind.clone(),
        target: target.to_owned(),
        option: p.data_string(),
        reason: "contains a NUL byte",
    })?;
    rustix::mount::mount(&m.source, target, m.kind.as_str(), p.flags, data.as_c_str())
        .map_err(|e| mount_err(m, target, String::new(), e))
}

/// Why the new mount API could not be used.
enum Overlay {
    /// The kernel lacks `fsopen` or `lowerdir+`: use `mount(2)`.
    Fallback,
    Failed(MountError),
}

fn mount_overlay(m: &Mount, p: &Parsed, target: &Path) -> Result<(), MountError> {
    match overlay_fsopen(m, p, target) {
        Ok(()) => Ok(()),
        Err(Overlay::Failed(e)) => Err(e),
        Err(Overlay::Fallback) => {
            tracing::debug!("kernel lacks overlay lowerdir+, mounting with mount(2)");
            mount_legacy(m, p, target)
        }
    }
}

fn overlay_fsopen(m: &Mount, p: &Parsed, target: &Path) -> Result<(), Overlay> {
    let fs = match rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::NOSYS) => return Err(Overlay::Fallback),
        Err(e) => return Err(Overlay::Failed(mount_err(m, target, String::new(), e))),
    };
    let fail = |fs: &OwnedFd, what: String, e: Errno| {
        let log = kernel_log(fs);
        let detail = if log.is_empty() {
            what
        } else {
            format!("{what}: {log}")
        };
        Overlay::Failed(mount_err(m, target, detail, e))
    };
    rustix::mount::fsconfig_set_string(&fs, "source", &m.source)
        .map_err(|e| fail(&fs, "source".to_owned(), e))?;
    let mut first_lower = true;
    for opt in &p.data {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match (key, value) {
            ("lowerdir", Some(v)) => {
                for layer in options::split_lowerdir(v) {
                    match set_layer(&fs, "lowerdir+", &layer) {
                        Ok(()) => {}
                        Err(Errno::INVAL) if first_lower && lacks_lowerdir_add(&fs) => {
                            return Err(Overlay::Fallback);
                        }
                        Err(e) => {
                            return Err(fail(&fs, format!("layer {}", layer.display()), e));
                        }
                    }
                    first_lower = false;
                }
            }
            ("upperdir" | "workdir", Some(v)) => {
                let dir = options::unescape(v);
                set_layer(&fs, key, &dir)
                    .map_err(|e| fail(&fs, format!("{key} {}", dir.display()), e))?;
            }
            (_, Some(v)) => rustix::mount::fsconfig_set_string(&fs, key, v)
                .map_err(|e| fail(&fs, format!("option {opt}"), e))?,
            (_, None) => rustix::mount::fsconfig_set_flag(&fs, key)
                .map_err(|e| fail(&fs, format!("option {opt}"), e))?,
        }
    }
    rustix::mount::fsconfig_create(&fs).map_err(|e| fail(&fs, "create".to_owned(), e))?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, p.mount_attrs())
        .map_err(|e| fail(&fs, "fsmount".to_owned(), e))?;
    rustix::mount::move_mount(
        mnt.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| Overlay::Failed(mount_err(m, target, "move_mount".to_owned(), e)))
}

/// Passes one layer directory: as a string when the kernel takes it verbatim, else as an
/// `O_PATH` descriptor (longer than `fsconfig` copies, or with characters overlay unescapes).
fn set_layer(fs: &OwnedFd, key: &str, dir: &Path) -> Result<(), Errno> {
    let bytes = dir.as_os_str().as_bytes();
    let verbatim = bytes.len() <= FSCONFIG_STRING_MAX
        && !bytes.iter().any(|b| matches!(b, b'\\' | b':' | b','));
    if verbatim {
        return rustix::mount::fsconfig_set_string(fs, key, dir);
    }
    let fd = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::mount::fsconfig_set_fd(fs, key, fd.as_fd())
}

fn lacks_lowerdir_add(fs: &OwnedFd) -> bool {
    // Unknown parameters are reported as such in the context's log.
    kernel_log(fs).contains("Unknown parameter")
}

/// The messages the kernel logged on a filesystem context (`e overlay: ...`), joined.
fn kernel_log(fs: &OwnedFd) -> String {
    let mut messages = Vec::new();
    let mut buf = [0u8; 1024];
    // Each read returns one message; the log holds a handful at most.
    for _ in 0..16 {
        match rustix::io::read(fs, &mut buf) {
            Ok(n) if n > 0 => {
                let msg = String::from_utf8_lossy(&buf[..n]);
                let msg = msg.trim_end();
                messages.push(
                    msg.strip_prefix("e ")
                        .or_else(|| msg.strip_prefix("w "))
                        .unwrap_or(msg)
                        .to_owned(),
                );
            }
            _ => break,
        }
    }
    messages.join("; ")
}

/// Unmounts the topmost mount on `target`. A target that is not a mount point (`EINVAL`) or
/// does not exist (`ENOENT`) is not an error: the goal, nothing mounted there, holds. A busy
/// mount is retried for about a second unless `flags.detach`, which never waits.
pub fn unmount(target: &Path, flags: UnmountFlags) -> Result<(), MountError> {
    unmount_once(target, flags).map(|_| ())
}

/// Unmounts everything stacked on `target`, topmost first, until it is no mount point.
pub fn unmount_all(target: &Path, flags: UnmountFlags) -> Result<(), MountError> {
    // Bounded: a mount point cannot hold more stacked mounts than the kernel's mount limit.
    for _ in 0..100_000 {
        if !unmount_once(target, flags)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Whether something was unmounted.
fn unmount_once(target: &Path, flags: UnmountFlags) -> Result<bool, MountError> {
    let mut sys = SysUnmountFlags::NOFOLLOW;
    if flags.detach {
        sys |= SysUnmountFlags::DETACH;
    }
    let mut attempt = 0;
    loop {
        match rustix::mount::unmount(target, sys) {
            Ok(()) => return Ok(true),
            Err(Errno::INVAL | Errno::NOENT) => return Ok(false),
            Err(Errno::BUSY) if !flags.detach && attempt < BUSY_RETRIES => {
                attempt += 1;
                std::thread::sleep(BUSY_WAIT);
            }
            Err(e) => {
                return Err(MountError::Unmount {
                    target: target.to_owned(),
                    source: e.into(),
                });
            }
        }
    }
}

/// Mounts `mounts` on a fresh directory under the system's temporary directory, runs `f` on
/// it, and unmounts — see [`with_temp_mount_in`].
pub fn with_temp_mount<T>(mounts: &[Mount], f: impl FnOnce(&Path) -> T) -> Result<T, MountError> {
    with_temp_mount_in(&std::env::temp_dir(), mounts, f)
}

/// Mounts `mounts` on a fresh directory inside a private one (mode 0700) in `parent`, runs
/// `f` on it, then unmounts everything there and removes both directories. Unmounting always
/// happens: if the mount is still busy after the retries, it is detached; if `f` panics, the
/// mount is detached while the panic unwinds.
///
/// The mount point is not the private directory itself: a mounted root takes the mode of the
/// snapshot's `/` (0755), and other users must not reach a container's files (its setuid
/// programs above all) through it.
pub fn with_temp_mount_in<T>(
    parent: &Path,
    mounts: &[Mount],
    f: impl FnOnce(&Path) -> T,
) -> Result<T, MountError> {
    let dir = make_temp_dir(parent)?;
    let mut guard = TempMount {
        path: dir.join("root"),
        dir,
        mounted: false,
    };
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&guard.path)
        .map_err(|source| {
            MountError::Io(strata_types::PathIoError::new(
                "create temporary mount point",
                guard.path.clone(),
                source,
            ))
        })?;
    mount_all(mounts, &guard.path)?;
    guard.mounted = true;
    let value = f(&guard.path);
    guard.finish()?;
    Ok(value)
}

struct TempMount {
    /// The private directory holding the mount point.
    dir: PathBuf,
    path: PathBuf,
    mounted: bool,
}

impl TempMount {
    fn finish(&mut self) -> Result<(), MountError> {
        if let Err(e) = unmount_all(&self.path, UnmountFlags::NONE) {
            tracing::warn!(error = %e, "temporary mount stays busy, detaching it");
            unmount_all(&self.path, UnmountFlags::DETACH)?;
        }
        self.mounted = false;
        for p in [&self.path, &self.dir] {
            fs::remove_dir(p).map_err(|source| {
                MountError::Io(strata_types::PathIoError::new(
                    "remove temporary mount point",
                    p.clone(),
                    source,
                ))
            })?;
        }
        Ok(())
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        if self.mounted
            && let Err(e) = unmount_all(&self.path, UnmountFlags::DETACH)
        {
            tracing::warn!(error = %e, "detaching a temporary mount");
            return;
        }
        // Already removed on the normal path; a leftover directory is only untidy.
        let _ = fs::remove_dir(&self.path);
        let _ = fs::remove_dir(&self.dir);
    }
}

/// Removes the mount point `point` and its private directory when they are what
/// [`with_temp_mount_in`] makes (`strata-mount-…/root`), once nothing is mounted there.
pub(crate) fn remove_temp_mount_point(point: &Path) {
    let Some(dir) = point.parent() else { return };
    let ours = point.file_name().is_some_and(|n| n == "root")
        && dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX));
    if ours && fs::remove_dir(point).is_ok() {
        let _ = fs::remove_dir(dir);
    }
}

/// The name of every private directory [`with_temp_mount_in`] makes starts so.
const TEMP_PREFIX: &str = "strata-mount-";

fn make_temp_dir(parent: &Path) -> Result<PathBuf, MountError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    loop {
        let name = format!(
            "{TEMP_PREFIX}{}-{}-{nanos:x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = parent.join(name);
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(MountError::Io(strata_types::PathIoError::new(
                    "create temporary mount point in",
                    parent.to_owned(),
                    source,
                )));
            }
        }
    }
}
