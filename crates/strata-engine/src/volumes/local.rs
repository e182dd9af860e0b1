//! The `local` driver's options (`volume create -o type=… -o device=… -o o=…`), as Docker's:
//! a volume with a `type` and `device` is a filesystem mounted on its `_data` directory —
//! `type=tmpfs device=tmpfs o=size=64m`, a bind (`type=none o=bind device=/host/dir`), or
//! anything `mount(2)` takes (`type=nfs o=addr=HOST device=:/export`).
//!
//! Docker's daemon mounts such a volume when the first container using it starts and unmounts
//! it when the last one stops, counting users in memory. Without a daemon, the count lives on
//! disk: `volumes/<name>/users/<container id>`, one empty file per running container, changed
//! only under the flock of `volumes/<name>/mount.lock` together with the mount itself. The
//! container lifecycle calls [`acquire`] before the runtime starts a container (beside its
//! root filesystem mount) and [`release`] wherever that root filesystem is unmounted (the
//! monitor after exit, reconcile after a crash, a failed start, `rm`). The runtime spec only
//! binds `_data`, as for any volume, so containers sharing the volume share the filesystem.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::ToSocketAddrs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use strata_metadata::ContainerRecord;
use strata_mount::{Mount, UnmountFlags};

use super::{VolumeError, data_dir, io_err, volumes_of};
use crate::containers::rootfs::is_mounted;
use crate::store::Store;

/// Docker's keys for the local driver; anything else is refused at `volume create`.
const KEYS: [&str; 4] = ["type", "o", "device", "size"];

/// Each key that needs others beside it, as Docker checks them.
const REQUIRED: [(&str, &[&str]); 3] = [
    ("device", &["type"]),
    ("type", &["device"]),
    ("o", &["device", "type"]),
];

/// Refuses what Docker's local driver refuses: unknown keys, `type` without `device` (and the
/// reverse), `o` without both, and a `size` quota (strata has no quota support).
pub fn validate(opts: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    if let Some(k) = opts.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(VolumeError::InvalidOption(k.clone()));
    }
    if let Some(size) = opts.get("size") {
        // Docker reads the quota size in binary units (go-units' RAMInBytes).
        match strata_types::parse_size(size, strata_types::SizeUnits::Binary) {
            Err(_) => return Err(VolumeError::InvalidSize(size.clone())),
            Ok(0) => {}
            Ok(_) => return Err(VolumeError::NoQuota),
        }
    }
    for (key, needs) in REQUIRED {
        if opts.contains_key(key)
            && let Some(missing) = needs.iter().find(|n| !opts.contains_key(**n))
        {
            return Err(VolumeError::MissingOption(missing));
        }
    }
    Ok(())
}

/// What to mount on `_data`, or `None` for a plain directory volume.
fn mount_of(opts: &BTreeMap<String, String>) -> Result<Option<Mount>, VolumeError> {
    let kind = opts.get("type").map(String::as_str).unwrap_or_default();
    let device = opts.get("device").map(String::as_str).unwrap_or_default();
    if kind.is_empty() && device.is_empty() {
        return Ok(None);
    }
    if device.is_empty() {
        return Err(VolumeError::MissingOption("device"));
    }
    let mut options: Vec<String> = opts
        .get("o")
        .map(|o| {
            o.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if matches!(kind, "nfs" | "cifs") {
        resolve_addr(&mut options)?;
    }
    Ok(Some(Mount {
        kind: if kind.is_empty() { "none" } else { kind }.to_owned(),
        source: PathBuf::from(device),
        options,
    }))
}

/// The kernel's nfs and cifs clients take `addr=` as an IP address: a host name is resolved
/// first, as Docker does.
fn resolve_addr(options: &mut [String]) -> Result<(), VolumeError> {
    for o in options.iter_mut() {
        let Some(host) = o.strip_prefix("addr=") else {
            continue;
        };
        if host.parse::<std::net::Ipv4Addr>().is_ok() {
            continue;
        }
        let ip = (host, 0)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| VolumeError::Resolve(host.to_owned()))?
            .ip();
        *o = format!("addr={ip}");
    }
    Ok(())
}

/// `volumes/<name>/`, locked for mounting and counting users; unlocked on drop.
struct Locked {
    dir: PathBuf,
    _lock: fs::File,
}

fn lock(root: &Path, name: &str) -> Result<Locked, VolumeError> {
    let dir = root.join("volumes").join(name);
    let path = dir.join("mount.lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(strata_runtime::files::PRIVATE)
        .open(&path)
        .map_err(io_err("open", &path))?;
    flock(&f, FlockOperation::LockExclusive).map_err(|e| io_err("lock", &path)(e.into()))?;
    Ok(Locked { dir, _lock: f })
}

impl Locked {
    fn users(&self) -> PathBuf {
        self.dir.join("users")
    }

    /// The ids of the containers that hold the volume mounted.
    fn user_ids(&self) -> Result<Vec<String>, VolumeError> {
        let users = self.users();
        match fs::read_dir(&users) {
            Ok(rd) => rd
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<io::Result<_>>()
                .map_err(io_err("read", &users)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err("read", &users)(e)),
        }
    }
}

/// Counts container `id` among the users of filesystem volume `name` and mounts it unless it
/// is mounted already. A plain volume, or one removed meanwhile, is left alone.
fn acquire_one(store: &Store, name: &str, id: &str) -> Result<(), VolumeError> {
    let Some(rec) = store.db().read(|tx| tx.volume(name))? else {
        return Ok(());
    };
    let Some(mount) = mount_of(&rec.options)? else {
        return Ok(());
    };
    let l = lock(store.root(), name)?;
    let users = l.users();
    strata_runtime::files::private_dir(&users).map_err(io_err("create", &users))?;
    let mark = users.join(id);
    match strata_runtime::files::create_new(&mark, strata_runtime::files::PRIVATE) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create", &mark)(e)),
    }
    let data = data_dir(store.root(), name);
    if is_mounted(&data) {
        return Ok(());
    }
    strata_mount::mount_all(std::slice::from_ref(&mount), &data).map_err(|e| {
        if let Err(r) = fs::remove_file(&mark) {
            tracing::warn!("remove {}: {r}", mark.display());
        }
        VolumeError::Mount {
            path: data.clone(),
            message: masked(&e, rec.options.get("o")),
        }
    })
}

/// Docker's rule: a password in the options never appears in an error.
fn masked(e: &dyn std::error::Error, o: Option<&String>) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    let password = o.and_then(|o| o.split(',').find_map(|kv| kv.strip_prefix("password=")));
    match password {
        Some(p) if !p.is_empty() => msg.replace(p, "********"),
        _ => msg,
    }
}

/// Drops container `id` from the users of volume `name` (and users that no longer exist);
/// the last one out unmounts `_data`.
fn release_one(store: &Store, name: &str, id: &str) -> Result<(), VolumeError> {
    let root = store.root().join("volumes").join(name);
    if !root.join("users").exists() {
        return Ok(());
    }
    let l = lock(store.root(), name)?;
    let mut left = 0;
    for user in l.user_ids()? {
        let gone = user == id || store.db().read(|tx| tx.container(&user))?.is_none();
        if gone {
            let p = l.users().join(&user);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &p)(e)),
            }
        } else {
            left += 1;
        }
    }
    let data = data_dir(store.root(), name);
    if left == 0 && is_mounted(&data) {
        strata_mount::unmount(&data, UnmountFlags::NONE)
            .or_else(|_| strata_mount::unmount(&data, UnmountFlags::DETACH))
            .map_err(|e| VolumeError::Unmount {
                path: data,
                source: Box::new(e),
            })?;
    }
    Ok(())
}

/// The volumes container `record` uses, from its stored record: `create` adds them to the
/// labels after the record is made, so the caller's copy may predate them.
fn names(store: &Store, record: &ContainerRecord) -> Result<Vec<String>, VolumeError> {
    let stored = store.db().read(|tx| tx.container(&record.id))?;
    Ok(volumes_of(&stored.as_ref().unwrap_or(record).labels))
}

/// Mounts every filesystem volume container `record` uses; on error, releases those it took.
pub fn acquire(store: &Store, record: &ContainerRecord) -> Result<(), VolumeError> {
    let names = names(store, record)?;
    for (i, name) in names.iter().enumerate() {
        if let Err(e) = acquire_one(store, name, &record.id) {
            for taken in &names[..i] {
                if let Err(r) = release_one(store, taken, &record.id) {
                    tracing::warn!("volume {taken}: {r}");
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Releases every volume container `record` uses (see [`release_one`]); failures are
/// logged: the container has stopped either way.
pub fn release(store: &Store, record: &ContainerRecord) {
    let names = names(store, record).unwrap_or_else(|e| {
        tracing::warn!("container {}: {e}", record.id);
        volumes_of(&record.labels)
    });
    for name in names {
        if let Err(e) = release_one(store, &name, &record.id) {
            tracing::warn!("volume {name}: {e}");
        }
    }
}

/// Before a volume's directory is removed: whatever is still mounted on `_data` (after a
/// crash) is unmounted, so that removal never reaches into it.
pub fn unmount_leftover(root: &Path, name: &str) -> Result<(), VolumeError> {
    let data = data_dir(root, name);
    if is_mounted(&data) {
        strata_mount::unmount(&data, UnmountFlags::DETACH).map_err(|e| VolumeError::Unmount {
            path: data,
            source: Box::new(e),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn options_checked_as_docker() {
        let ok = [
            opts(&[]),
            opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=64m")]),
            opts(&[("type", "none"), ("device", "/srv"), ("o", "bind")]),
            opts(&[("size", "0")]),
        ];
        for o in ok {
            validate(&o).unwrap();
        }
        let bad = [
            (opts(&[("foo", "bar")]), "invalid option: \"foo\""),
            (
                opts(&[("type", "tmpfs")]),
                "missing required option: \"device\"",
            ),
            (
                opts(&[("device", "tmpfs")]),
                "missing required option: \"type\"",
            ),
            (
                opts(&[("o", "size=1m"), ("device", "tmpfs")]),
                "missing required option: \"type\"",
            ),
            (
                opts(&[("size", "10g")]),
                "quota size requested but no quota support",
            ),
            (opts(&[("size", "lots")]), "invalid size: 'lots'"),
        ];
        for (o, want) in bad {
            let e = validate(&o).unwrap_err();
            assert_eq!(e.to_string(), want, "{o:?}");
            assert_eq!(e.kind(), strata_types::ErrorKind::InvalidArgument);
        }
    }

    #[test]
    fn mounts_from_options() {
        assert_eq!(mount_of(&opts(&[])).unwrap(), None);
        let m = mount_of(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=64m,uid=1000"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (m.kind.as_str(), m.source.as_path(), m.options.as_slice()),
            (
                "tmpfs",
                Path::new("tmpfs"),
                &["size=64m".to_owned(), "uid=1000".to_owned()][..]
            )
        );
        let m = mount_of(&opts(&[
            ("type", "nfs"),
            ("device", ":/x"),
            ("o", "addr=localhost,ro"),
        ]))
        .unwrap()
        .unwrap();
        assert!(
            m.options == ["addr=127.0.0.1", "ro"] || m.options == ["addr=::1", "ro"],
            "{m:?}"
        );
        let m = mount_of(&opts(&[
            ("type", "nfs"),
            ("device", ":/x"),
            ("o", "addr=10.0.0.1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(m.options, ["addr=10.0.0.1"]);
    }

    #[test]
    fn passwords_are_masked() {
        let e = io::Error::other("mount cifs: password=hunter2 refused");
        let o = "user=me,password=hunter2".to_owned();
        assert_eq!(
            masked(&e, Some(&o)),
            "mount cifs: password=******** refused"
        );
    }
}
