//! `cp` between a container and the host, in both directions, as a tar stream.
//!
//! Safety (CVE-2018-15664, CVE-2019-14271): a running container is paused for the copy, so
//! nothing in it can swap a directory for a symlink half way; every container path is
//! resolved inside the container's root (symlinks as if the root were `/`); writing into the
//! container goes through strata-archive's applier, which opens every entry's parent with
//! `openat2(RESOLVE_IN_ROOT)`; reading from it never follows a symlink (entries are opened
//! once, relative to their directory's fd, at any depth); and nothing of the
//! container is ever loaded or run by strata. Extraction on the host is the tar crate's
//! `unpack_in`, which refuses entries that would land outside the destination.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags};
use strata_fs::Entry;

use strata_metadata::ContainerRecord;
use strata_snapshot::Snapshotter;

use super::{ContainerError, lifecycle, rootfs};
use crate::store::Store;
use crate::volumes::resolve_in_root;

/// Where a copy lands, Docker's rules: into an existing directory under the source's name (or
/// its contents, for a source ending in `/.`), else onto the destination path itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landing {
    /// The existing directory the entries are written into.
    pub dir: PathBuf,
    /// The top entry's name in it; `None`: the source directory's contents go into `dir`.
    pub name: Option<String>,
}

fn cp_err(msg: String) -> ContainerError {
    ContainerError::Copy(msg)
}

/// Decides the landing of `src` (a directory or not, as named by the user) at `dest` whose
/// kind is `dest_kind` (`None`: missing; `Some(true)`: a directory).
pub fn landing(
    src: &str,
    src_is_dir: bool,
    dest: &Path,
    dest_str: &str,
    dest_kind: Option<bool>,
) -> Result<Landing, ContainerError> {
    let contents_only = src_is_dir && (src.ends_with("/.") || src == ".");
    let base = Path::new(src.trim_end_matches("/.").trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into());
    match dest_kind {
        Some(true) => Ok(Landing {
            dir: dest.to_owned(),
            name: (!contents_only).then_some(base),
        }),
        Some(false) if src_is_dir => Err(cp_err(format!(
            "cannot copy a directory to a file: {dest_str}"
        ))),
        Some(false) | None => {
            if dest_kind.is_none() && dest_str.ends_with('/') && !src_is_dir {
                return Err(cp_err(format!(
                    "destination directory {dest_str} must exist"
                )));
            }
            let name = dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| cp_err(format!("invalid destination {dest_str}")))?;
            let dir = dest
                .parent()
                .map(Path::to_owned)
                .unwrap_or_else(|| PathBuf::from("/"));
            Ok(Landing {
                dir,
                name: Some(name),
            })
        }
    }
}

/// A tar of `path` (not following symlinks, except the top one with `follow`), its top entry
/// named `name` (or, for `None`, its contents at the top level). Owners become root's unless
/// `keep_owners`.
pub fn tar_of(
    path: &Path,
    name: Option<&str>,
    follow: bool,
    keep_owners: bool,
    w: impl Write,
) -> io::Result<()> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let top = if follow {
        fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
    } else {
        path.to_owned()
    };
    let top = entry_at(&top)?;
    if top.file_type() == FileType::Directory {
        append_dir(&mut b, top, name.map(PathBuf::from), keep_owners)?;
    } else {
        let name = name.unwrap_or("file");
        append_one(&mut b, &top, Path::new(name), keep_owners)?;
    }
    b.finish()
}

/// `path` opened without following its last component.
fn entry_at(path: &Path) -> io::Result<Entry> {
    let fd = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(strata_fs::errno)?;
    Entry::from_fd(fd)
}

/// One tar entry for `e` (opened once: its header, target and data all come from that inode).
fn append_one<W: Write>(
    b: &mut tar::Builder<W>,
    e: &Entry,
    name: &Path,
    keep_owners: bool,
) -> io::Result<()> {
    let meta = fs::File::from(e.fd().try_clone_to_owned()?).metadata()?;
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    if !keep_owners {
        h.set_uid(0);
        h.set_gid(0);
    }
    match e.file_type() {
        FileType::Symlink => {
            let target = PathBuf::from(std::ffi::OsString::from_vec(e.read_link()?));
            b.append_link(&mut h, name, target)
        }
        FileType::RegularFile => b.append_data(&mut h, name, e.open_file()?),
        // Devices, fifos: metadata only; sockets are skipped as Docker skips them.
        FileType::Socket => Ok(()),
        _ => {
            h.set_size(0);
            b.append_data(&mut h, name, io::empty())
        }
    }
}

/// The directory `top` and everything below it, depth first with names sorted, through
/// directory fds (any depth or path length; nothing followed).
fn append_dir<W: Write>(
    b: &mut tar::Builder<W>,
    top: Entry,
    name: Option<PathBuf>,
    keep_owners: bool,
) -> io::Result<()> {
    if let Some(n) = &name {
        append_one(b, &top, n, keep_owners)?;
    }
    let sorted = |dir: &std::os::fd::OwnedFd| -> io::Result<std::vec::IntoIter<Vec<u8>>> {
        let mut names: Vec<Vec<u8>> = strata_fs::list(dir.as_fd())?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        Ok(names.into_iter())
    };
    let dir = top.open_dir()?;
    let mut stack = vec![(sorted(&dir)?, dir, name)];
    while let Some((names, dir, prefix)) = stack.last_mut() {
        let Some(child) = names.next() else {
            stack.pop();
            continue;
        };
        let Some(e) = Entry::open(dir.as_fd(), &child)? else {
            continue;
        };
        let child = std::ffi::OsStr::from_bytes(&child);
        let child_name = prefix
            .as_ref()
            .map_or_else(|| PathBuf::from(child), |p| p.join(child));
        append_one(b, &e, &child_name, keep_owners)?;
        if e.file_type() == FileType::Directory {
            let sub = e.open_dir()?;
            stack.push((sorted(&sub)?, sub, Some(child_name)));
        }
    }
    Ok(())
}

/// `cp CONTAINER:src host-dest` (`None`: a tar to `out`, as `cp C:src -`).
#[allow(clippy::too_many_arguments)]
pub fn copy_out(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
    src: &str,
    dest: Option<&str>,
    follow: bool,
    keep_owners: bool,
    out: &mut dyn Write,
) -> Result<(), ContainerError> {
    let paused = lifecycle::pause(store, record)?;
    let result = rootfs::with_rootfs(store, sn, record, |root| -> Result<(), ContainerError> {
        let resolved = resolve_container_path(root, src, follow)?;
        let is_dir = fs::symlink_metadata(&resolved).is_ok_and(|m| m.is_dir());
        let io_err = |e| ContainerError::io("copy from the container", e);
        match dest {
            None => {
                let name = Path::new(src.trim_end_matches('/'))
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "root".into());
                tar_of(&resolved, Some(&name), false, true, out).map_err(io_err)
            }
            Some(d) => {
                let dest_path = PathBuf::from(d);
                let kind = fs::metadata(&dest_path).ok().map(|m| m.is_dir());
                let land = landing(src, is_dir, &dest_path, d, kind)?;
                if !land.dir.is_dir() {
                    return Err(cp_err(format!(
                        "destination directory {} must exist",
                        land.dir.display()
                    )));
                }
                let (r, w) = io::pipe().map_err(io_err)?;
                std::thread::scope(|s| {
                    let resolved = &resolved;
                    let name = land.name.clone();
                    let producer =
                        s.spawn(move || tar_of(resolved, name.as_deref(), false, keep_owners, w));
                    let mut archive = tar::Archive::new(r);
                    archive.set_preserve_permissions(true);
                    archive.set_preserve_ownerships(keep_owners);
                    archive.set_overwrite(true);
                    let unpacked = unpack_all(&mut archive, &land.dir);
                    let produced = producer
                        .join()
                        .unwrap_or_else(|_| Err(io::Error::other("copy thread panicked")));
                    produced.and(unpacked).map_err(io_err)
                })
            }
        }
    });
    if paused {
        lifecycle::resume(store, record)?;
    }
    result?
}

/// Every entry through `unpack_in`, which refuses paths that leave `dir` (`..`, absolute,
/// through a symlink unpacked before).
fn unpack_all<R: Read>(archive: &mut tar::Archive<R>, dir: &Path) -> io::Result<()> {
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.unpack_in(dir)? {
            return Err(io::Error::other(format!(
                "refusing {:?}: it would land outside {}",
                entry.path()?,
                dir.display()
            )));
        }
    }
    Ok(())
}

/// `src` inside the container root: its directory resolved as if the root were `/`, its last
/// component followed only with `follow` (`-L`).
fn resolve_container_path(root: &Path, src: &str, follow: bool) -> Result<PathBuf, ContainerError> {
    let not_found = || cp_err(format!("Could not find the file {src} in container"));
    let trimmed = src.trim_end_matches("/.").trim_end_matches('/');
    let (parent, base) = match trimmed.rsplit_once('/') {
        Some((p, b)) => (if p.is_empty() { "/" } else { p }, b),
        None => ("/", trimmed),
    };
    if base.is_empty() || base == "." || base == ".." {
        return resolve_in_root(root, trimmed).ok_or_else(not_found);
    }
    let dir = resolve_in_root(root, parent).ok_or_else(not_found)?;
    let path = dir.join(base);
    fs::symlink_metadata(&path).map_err(|_| not_found())?;
    if follow {
        let rel = path.strip_prefix(root).map_err(|_| not_found())?;
        return resolve_in_root(root, &format!("/{}", rel.display())).ok_or_else(not_found);
    }
    Ok(path)
}

/// `cp host-src CONTAINER:dest` (`src` `None`: a tar read from `input`, as `cp - C:dest`).
#[allow(clippy::too_many_arguments)]
pub fn copy_in(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
    src: Option<&str>,
    dest: &str,
    follow: bool,
    keep_owners: bool,
    input: &mut (dyn Read + Send),
) -> Result<(), ContainerError> {
    let paused = lifecycle::pause(store, record)?;
    let result = rootfs::with_rootfs(store, sn, record, |root| -> Result<(), ContainerError> {
        let io_err = |e| ContainerError::io("copy into the container", e);
        // Where in the container, as a path relative to its root with symlinks resolved inside it.
        let dest_resolved = resolve_in_root(root, dest);
        let kind = dest_resolved
            .as_ref()
            .and_then(|p| fs::metadata(p).ok())
            .map(|m| m.is_dir());
        let (land, tar_src): (Landing, Option<PathBuf>) = match src {
            None => {
                if kind != Some(true) {
                    return Err(cp_err(format!(
                        "destination \"{dest}\" must be a directory"
                    )));
                }
                (
                    Landing {
                        dir: dest_resolved.clone().unwrap_or_default(),
                        name: None,
                    },
                    None,
                )
            }
            Some(s) => {
                let path = PathBuf::from(s);
                let meta = if follow {
                    fs::metadata(&path)
                } else {
                    fs::symlink_metadata(&path)
                }
                .map_err(|e| cp_err(format!("{s}: {e}")))?;
                let land = match (&dest_resolved, kind) {
                    (Some(d), k) => landing(s, meta.is_dir(), d, dest, k)?,
                    (None, _) => {
                        let parent = Path::new(dest.trim_end_matches('/'))
                            .parent()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "/".into());
                        let pdir = resolve_in_root(root, &parent).ok_or_else(|| {
                            cp_err(format!("Could not find the file {parent} in container"))
                        })?;
                        landing(
                            s,
                            meta.is_dir(),
                            &pdir.join(
                                Path::new(dest.trim_end_matches('/'))
                                    .file_name()
                                    .unwrap_or_default(),
                            ),
                            dest,
                            None,
                        )?
                    }
                };
                (land, Some(path))
            }
        };
        let rel = land
            .dir
            .strip_prefix(root)
            .map_err(|_| cp_err(format!("{dest} is outside the container")))?
            .to_owned();
        if !land.dir.is_dir() {
            return Err(cp_err(format!("destination directory {dest} must exist")));
        }
        let (r, w) = io::pipe().map_err(io_err)?;
        std::thread::scope(|s| {
            let producer = s.spawn(move || -> io::Result<()> {
                let prefix = |name: &Path| rel.join(name);
                match &tar_src {
                    Some(p) => {
                        let name = land.name.as_deref().map(|n| prefix(Path::new(n)));
                        let top = if follow {
                            fs::canonicalize(p)?
                        } else {
                            p.clone()
                        };
                        let top_entry = entry_at(&top)?;
                        if top_entry.file_type() == FileType::Directory {
                            let mut b = tar::Builder::new(w);
                            b.follow_symlinks(false);
                            append_dir(
                                &mut b,
                                top_entry,
                                Some(name.unwrap_or_else(|| rel.clone())),
                                keep_owners,
                            )?;
                            b.finish()
                        } else {
                            tar_of(
                                &top,
                                name.as_deref().and_then(Path::to_str),
                                false,
                                keep_owners,
                                w,
                            )
                        }
                    }
                    None => rewrite_prefix(input, &rel, w),
                }
            });
            let mut opts = strata_archive::ApplyOptions::new(
                format!("cp into {}", record.name),
                strata_archive::WhiteoutMode::Delete,
            );
            // The container's writable layer is on the store's filesystem: keep its reserve.
            opts.min_free = crate::space::min_free_bytes(store.db(), root);
            let applied = strata_archive::apply_layer(r, root, &opts)
                .map_err(|e| io_err(io::Error::other(e)));
            let produced = producer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("copy thread panicked")))
                .map_err(io_err);
            crate::space::piped_result(produced, applied.map(drop))
        })
    });
    if paused {
        lifecycle::resume(store, record)?;
    }
    result?
}

/// Re-emits a tar read from `input` with every entry moved under `prefix`.
fn rewrite_prefix(input: &mut (dyn Read + Send), prefix: &Path, w: impl Write) -> io::Result<()> {
    let mut archive = tar::Archive::new(input);
    let mut b = tar::Builder::new(w);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut h = entry.header().clone();
        let path = prefix.join(entry.path()?.as_ref());
        if entry.header().entry_type().is_symlink() || entry.header().entry_type().is_hard_link() {
            let target = entry
                .link_name()?
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let target = if entry.header().entry_type().is_hard_link() {
                prefix.join(target)
            } else {
                target
            };
            b.append_link(&mut h, &path, target)?;
        } else {
            b.append_data(&mut h, &path, &mut entry)?;
        }
    }
    b.finish()
}
