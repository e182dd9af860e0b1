//! Volumes, as Docker's `local` driver keeps them, daemonless: `<root>/volumes/<name>/_data`
//! with the record (driver, options, labels, anonymous or not) in the metadata database.
//!
//! A container mounts a volume by name (`-v NAME:/path`, `--mount type=volume,...`; created
//! on first use) or anonymously (`-v /path`, an image's `VOLUME`; a 64-hex name). A new,
//! empty volume gets a copy of what the image has at its mount path (Docker's copy-up,
//! `nocopy` to skip), made through a layer tar so owners, modes, xattrs and links are kept
//! and nothing of the image is followed out of its root. Which containers use a volume is
//! the container record's label [`strata_types::labels::VOLUMES`] (a JSON array of volume
//! names); `volume rm` refuses a volume in use, and `rm -v` (or `--rm`) removes a
//! container's anonymous volumes. A volume made with the local driver's options (`type`,
//! `device`, `o`) is a filesystem mounted on `_data` while containers using it run: see
//! [`local`].

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use strata_metadata::{Labels, MetaError, Tx, VolumeRecord};
use strata_types::ErrorKind;

use crate::store::Store;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error(
        "volume name {0:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
    )]
    InvalidName(String),
    /// Docker's wording.
    #[error("remove {name}: volume is in use - [{}]", containers.join(", "))]
    InUse {
        name: String,
        containers: Vec<String>,
    },
    #[error("invalid volume specification: '{spec}': {reason}")]
    Spec { spec: String, reason: String },
    #[error("invalid mount config for type \"bind\": bind source path does not exist: {0}")]
    NoBindSource(String),
    #[error("volume driver {0:?} is not supported (strata has the local driver only)")]
    Driver(String),
    /// Docker's wording for a key the local driver does not know.
    #[error("invalid option: {0:?}")]
    InvalidOption(String),
    #[error("missing required option: {0:?}")]
    MissingOption(&'static str),
    #[error("invalid size: '{0}'")]
    InvalidSize(String),
    #[error("quota size requested but no quota support")]
    NoQuota,
    #[error("error resolving passed in network volume address {0:?}")]
    Resolve(String),
    /// Docker's wording; the options' password is masked in `message`.
    #[error("error while mounting volume '{}': failed to mount local volume: {message}", path.display())]
    Mount { path: PathBuf, message: String },
    #[error("unmount volume {}", path.display())]
    Unmount {
        path: PathBuf,
        #[source]
        source: Box<strata_mount::MountError>,
    },
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl VolumeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            VolumeError::NotFound(_) => ErrorKind::NotFound,
            VolumeError::InvalidName(_)
            | VolumeError::Spec { .. }
            | VolumeError::Driver(_)
            | VolumeError::InvalidOption(_)
            | VolumeError::MissingOption(_)
            | VolumeError::InvalidSize(_)
            | VolumeError::NoQuota => ErrorKind::InvalidArgument,
            VolumeError::Resolve(_) => ErrorKind::NotFound,
            VolumeError::Mount { .. } => ErrorKind::FailedPrecondition,
            VolumeError::Unmount { source, .. } => source.kind(),
            VolumeError::NoBindSource(_) => ErrorKind::NotFound,
            VolumeError::InUse { .. } => ErrorKind::FailedPrecondition,
            VolumeError::Io { .. } => ErrorKind::Internal,
            VolumeError::Meta(e) => e.kind(),
        }
    }
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> VolumeError + use<> {
    let path = path.to_owned();
    move |source| VolumeError::Io { what, path, source }
}

/// `<root>/volumes/<name>/_data`: what containers mount.
pub fn data_dir(root: &Path, name: &str) -> PathBuf {
    root.join("volumes").join(name).join("_data")
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    crate::containers::names::valid_name(name)
}

/// A mount the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
        create: bool,
    },
    /// `name: None` is an anonymous volume.
    Volume {
        name: Option<String>,
        target: String,
        read_only: bool,
        no_copy: bool,
    },
}

impl MountSpec {
    pub fn target(&self) -> &str {
        match self {
            MountSpec::Bind { target, .. } | MountSpec::Volume { target, .. } => target,
        }
    }
}

fn spec_err(spec: &str, reason: &str) -> VolumeError {
    VolumeError::Spec {
        spec: spec.to_owned(),
        reason: reason.to_owned(),
    }
}

/// One `-v`: `HOST:CTR[:OPTS]` (an absolute HOST is a bind mount, created as a directory when
/// missing; otherwise a volume name), or `/CTR` alone (an anonymous volume). OPTS: `ro`,
/// `rw`, `nocopy`; SELinux `z`/`Z` and propagation modes are accepted and have no effect here.
pub fn parse_volume_flag(s: &str) -> Result<MountSpec, VolumeError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [d] => (None, *d, ""),
        [a, b] if !b.starts_with('/') && a.starts_with('/') => (None, *a, *b),
        [a, b] => (Some(*a), *b, ""),
        [a, b, c] => (Some(*a), *b, *c),
        _ => return Err(spec_err(s, "too many colons")),
    };
    if !dst.starts_with('/') {
        return Err(spec_err(s, "the container path must be absolute"));
    }
    let mut read_only = false;
    let mut no_copy = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "nocopy" => no_copy = true,
            "z" | "Z" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {}
            other => return Err(spec_err(s, &format!("unknown option {other:?}"))),
        }
    }
    let target = dst.to_owned();
    Ok(match src {
        Some(src) if src.starts_with('/') => MountSpec::Bind {
            source: src.into(),
            target,
            read_only,
            create: true,
        },
        Some(name) if valid_name(name) => MountSpec::Volume {
            name: Some(name.to_owned()),
            target,
            read_only,
            no_copy,
        },
        Some(name) => return Err(VolumeError::InvalidName(name.to_owned())),
        None => MountSpec::Volume {
            name: None,
            target,
            read_only,
            no_copy,
        },
    })
}

/// One `--mount`: `type=bind|volume,source=…,target=…[,readonly][,volume-nocopy]`.
pub fn parse_mount_flag(s: &str) -> Result<MountSpec, VolumeError> {
    let mut kind = "volume";
    let (mut source, mut target, mut read_only, mut no_copy) = (None, None, false, false);
    for field in s.split(',') {
        let (k, v) = field
            .split_once('=')
            .map_or((field, None), |(k, v)| (k, Some(v)));
        let flag = |v: Option<&str>| -> Result<bool, VolumeError> {
            match v {
                None | Some("1" | "true") => Ok(true),
                Some("0" | "false") => Ok(false),
                Some(other) => Err(spec_err(s, &format!("invalid value {other:?} for {k}"))),
            }
        };
        match k {
            "type" => kind = v.unwrap_or_default(),
            "source" | "src" => source = v.map(str::to_owned),
            "target" | "dst" | "destination" => target = v.map(str::to_owned),
            "readonly" | "ro" => read_only = flag(v)?,
            "volume-nocopy" => no_copy = flag(v)?,
            "bind-propagation" | "consistency" => {}
            _ => return Err(spec_err(s, &format!("unexpected key {k:?}"))),
        }
    }
    let target = target.ok_or_else(|| spec_err(s, "target is required"))?;
    if !target.starts_with('/') {
        return Err(spec_err(s, "the target must be an absolute path"));
    }
    match kind {
        "bind" => {
            let source =
                source.ok_or_else(|| spec_err(s, "source is required for a bind mount"))?;
            if !Path::new(&source).is_absolute() {
                return Err(spec_err(s, "a bind source must be an absolute path"));
            }
            Ok(MountSpec::Bind {
                source: source.into(),
                target,
                read_only,
                create: false,
            })
        }
        "volume" => match source {
            Some(n) if !valid_name(&n) => Err(VolumeError::InvalidName(n)),
            name => Ok(MountSpec::Volume {
                name,
                target,
                read_only,
                no_copy,
            }),
        },
        other => Err(spec_err(
            s,
            &format!("mount type {other:?} is not supported (bind, volume)"),
        )),
    }
}

/// Creates volume `name` (a generated one when `None`, anonymous); an existing named volume
/// is returned as it is, as Docker's `volume create` does.
pub fn create(
    store: &Store,
    name: Option<&str>,
    labels: Labels,
    options: BTreeMap<String, String>,
) -> Result<(VolumeRecord, bool), VolumeError> {
    local::validate(&options)?;
    let (name, anonymous) = match name {
        Some(n) if !valid_name(n) => return Err(VolumeError::InvalidName(n.to_owned())),
        Some(n) => (n.to_owned(), false),
        None => (
            crate::containers::names::new_id()
                .map_err(io_err("generate a volume name", store.root()))?,
            true,
        ),
    };
    let data = data_dir(store.root(), &name);
    make_data_dir(&data).map_err(io_err("create", &data))?;
    let record = VolumeRecord {
        name: name.clone(),
        driver: "local".into(),
        anonymous,
        options,
        labels,
        created: SystemTime::now(),
    };
    match store.db().write(|tx| tx.insert_volume(&record)) {
        Ok(r) => Ok((r, true)),
        Err(MetaError::AlreadyExists { .. }) => {
            let existing = store
                .db()
                .read(|tx| tx.volume(&name))?
                .ok_or_else(|| VolumeError::NotFound(name.clone()))?;
            Ok((existing, false))
        }
        Err(e) => Err(e.into()),
    }
}

/// The ids of the containers that mount volume `name`.
pub fn in_use_by(tx: &Tx<'_>, name: &str) -> Result<Vec<String>, MetaError> {
    Ok(tx
        .containers()?
        .into_iter()
        .filter(|c| volumes_of(&c.labels).iter().any(|v| v == name))
        .map(|c| c.id)
        .collect())
}

/// The volume names a container's labels list.
pub fn volumes_of(labels: &Labels) -> Vec<String> {
    labels
        .get(strata_types::labels::VOLUMES)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// `volume rm`: refused while a container uses it (even with `force`, as Docker).
pub fn remove(store: &Store, name: &str, force: bool) -> Result<(), VolumeError> {
    let found = store.db().write(|tx| {
        if tx.volume(name)?.is_none() {
            return Ok(Err(VolumeError::NotFound(name.to_owned())));
        }
        let users = in_use_by(tx, name)?;
        if !users.is_empty() {
            return Ok(Err(VolumeError::InUse {
                name: name.to_owned(),
                containers: users,
            }));
        }
        tx.delete_volume(name)?;
        Ok(Ok(()))
    })?;
    match found {
        Err(VolumeError::NotFound(_)) if force => return Ok(()),
        r => r?,
    }
    local::unmount_leftover(store.root(), name)?;
    let dir = store.root().join("volumes").join(name);
    strata_fs::remove_tree(&dir).map_err(io_err("remove", &dir))
}

/// `volumes/<name>/` is the owner's only; `_data` is what the container sees at the mount
/// point, so it starts as Docker's: 0755 (copy-up then gives it the image's mode).
fn make_data_dir(data: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = data.parent() {
        strata_runtime::files::private_dir(parent)?;
    }
    match fs::DirBuilder::new().mode(0o755).create(data) {
        Ok(()) => fs::set_permissions(data, fs::Permissions::from_mode(0o755)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Bytes of the files in a volume (directories not counted, a hardlinked inode once).
pub fn size(root: &Path, name: &str) -> u64 {
    crate::containers::list::apparent_size(&data_dir(root, name)).unwrap_or(0)
}

/// A mount resolved for the runtime spec and for `inspect`.
#[derive(Debug, Clone)]
pub struct ResolvedMount {
    pub point: crate::containers::config::MountPoint,
    /// A volume made by this resolve: empty, so the image's content is copied in.
    pub fresh: bool,
    pub no_copy: bool,
}

/// Creates missing volumes (named on first use, anonymous always) and bind sources for `-v`,
/// and says where each mount comes from. On error, volumes made here are removed again.
pub fn resolve(store: &Store, specs: &[MountSpec]) -> Result<Vec<ResolvedMount>, VolumeError> {
    let mut out: Vec<ResolvedMount> = Vec::new();
    let result = (|| {
        for spec in specs {
            out.push(match spec {
                MountSpec::Bind {
                    source,
                    target,
                    read_only,
                    create,
                } => {
                    if !source.exists() {
                        if !create {
                            return Err(VolumeError::NoBindSource(source.display().to_string()));
                        }
                        fs::create_dir_all(source).map_err(io_err("create bind source", source))?;
                    }
                    ResolvedMount {
                        point: crate::containers::config::MountPoint {
                            kind: "bind".into(),
                            name: String::new(),
                            source: source.display().to_string(),
                            destination: target.clone(),
                            rw: !read_only,
                            anonymous: false,
                        },
                        fresh: false,
                        no_copy: true,
                    }
                }
                MountSpec::Volume {
                    name,
                    target,
                    read_only,
                    no_copy,
                } => {
                    let (rec, made) =
                        create(store, name.as_deref(), Labels::new(), BTreeMap::new())?;
                    ResolvedMount {
                        point: crate::containers::config::MountPoint {
                            kind: "volume".into(),
                            name: rec.name.clone(),
                            source: data_dir(store.root(), &rec.name).display().to_string(),
                            destination: target.clone(),
                            rw: !read_only,
                            anonymous: rec.anonymous,
                        },
                        fresh: made,
                        no_copy: *no_copy,
                    }
                }
            });
        }
        Ok(())
    })();
    if let Err(e) = result {
        for m in out.iter().filter(|m| m.fresh) {
            let _ = remove(store, &m.point.name, true);
        }
        return Err(e);
    }
    Ok(out)
}

/// Docker's copy-up: the image's content at `target` (resolved inside `rootfs`, symlinks
/// as if `rootfs` were `/`) copied into the empty volume directory `data`, through a layer
/// tar so owners, modes, xattrs and hardlinks are kept. Nothing at `target` copies nothing.
/// The copy stops, as an unpack does, before it leaves less than `min_free` bytes free.
pub fn copy_image_content(
    rootfs: &Path,
    target: &str,
    data: &Path,
    min_free: u64,
) -> Result<(), VolumeError> {
    let Some(src) = resolve_in_root(rootfs, target) else {
        return Ok(());
    };
    if !fs::symlink_metadata(&src).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let (reader, writer) = io::pipe().map_err(io_err("create a pipe for", data))?;
    let copy = |e: strata_archive::ArchiveError| {
        io_err("copy the image's content into", data)(io::Error::other(e))
    };
    std::thread::scope(|s| {
        let producer = s.spawn(move || strata_archive::tar_tree(&src, writer));
        let mut opts = strata_archive::ApplyOptions::new(
            target.to_owned(),
            strata_archive::WhiteoutMode::Delete,
        );
        opts.min_free = min_free;
        let applied = strata_archive::apply_layer(reader, data, &opts).map_err(copy);
        let produced = producer.join().unwrap_or_else(|_| {
            Err(strata_archive::ArchiveError::Walk {
                op: "walk",
                path: data.to_owned(),
                source: io::Error::other("copy thread panicked"),
            })
        });
        crate::space::piped_result(produced.map(drop).map_err(copy), applied.map(drop))
    })
}

/// `path` inside `root` with every symlink resolved as if `root` were `/` (`..` stops at the
/// root); `None` when a component does not exist or the links loop.
pub fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let mut todo: Vec<String> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .rev()
        .collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let here: PathBuf = resolved
            .iter()
            .chain(std::iter::once(&c))
            .fold(root.to_owned(), |p, c| p.join(c));
        let m = fs::symlink_metadata(&here).ok()?;
        if !m.file_type().is_symlink() {
            resolved.push(c);
            continue;
        }
        links += 1;
        if links > 40 {
            return None;
        }
        let target = fs::read_link(&here).ok()?;
        if target.is_absolute() {
            resolved.clear();
        }
        let parts: Vec<String> = target
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect();
        todo.extend(parts.into_iter().rev());
    }
    Some(resolved.iter().fold(root.to_owned(), |p, c| p.join(c)))
}

pub mod local;
#[cfg(test)]
mod tests;
