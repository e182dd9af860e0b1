//! `create`: the writable layer, the record and the bundle.
//!
//! Order matters for `kill -9` at any point: the record goes in first (so a leftover is
//! always findable by `ps -a` and removable by `rm`), then the bundle directory, then the
//! active snapshot; a failure after the record undoes all three. The image's snapshots are
//! unpacked here when missing (an image that was loaded, or whose snapshots were pruned),
//! under a lease until the record pins them.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, SystemTime};

use strata_metadata::{ContainerRecord, Labels};
use strata_runtime::spec::{self, BindAccess, SpecOptions};
use strata_snapshot::Snapshotter;
use strata_types::oci::{ImageConfig, Manifest};
use strata_types::{Descriptor, ErrorKind, Matcher, chain_id};

use super::config::{ContainerConfig, MountPoint};
use super::{ContainerError, dir, names, rootfs};
use crate::images;
use crate::store::Store;
use crate::unpack::{read_json, unpack};
use crate::volumes::{self, MountSpec, ResolvedMount};

/// How long the lease of an unpack for a container lasts if the process dies first.
const CREATE_LEASE: Duration = Duration::from_secs(3600);

/// What `create` is asked for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: Option<String>,
    /// The image as the user typed it.
    pub image: String,
    /// The OCI runtime by name (found on the PATH).
    pub runtime: String,
    /// `--rm`.
    pub auto_remove: bool,
    /// The process and namespaces; its `mounts` are filled from `mounts` here.
    pub spec: SpecOptions,
    /// `-v` and `--mount`, in order.
    pub mounts: Vec<MountSpec>,
    pub labels: BTreeMap<String, String>,
    /// `--log-driver`/`--log-opt`; the store's defaults fill in the rest at create.
    pub log_config: strata_runtime::logs::LogConfig,
}

/// The image a container is made from, resolved for this machine.
#[derive(Debug, Clone)]
pub struct ImageForContainer {
    pub target: Descriptor,
    pub manifest: Descriptor,
    pub config_digest: strata_types::Digest,
    pub config: ImageConfig,
    /// The top chainID (None for an image without layers).
    pub top: Option<strata_types::Digest>,
}

/// Resolves `image` to its host-platform manifest and config, unpacking its layers when
/// their snapshots are missing. [`ContainerError::ImageNotFound`] and
/// [`ContainerError::PlatformMissing`] mean: pull it, then try again.
pub fn image_for_container(
    store: &Store,
    sn: &dyn Snapshotter,
    image: &str,
) -> Result<ImageForContainer, ContainerError> {
    let content = store.content();
    let target = store.db().read(|tx| match images::resolve(tx, image) {
        Ok(r) => Ok(Some(r.target().clone())),
        Err(images::ImageError::NotFound(_)) => Ok(None),
        Err(images::ImageError::Meta(e)) => Err(e),
        Err(e) => Err(strata_metadata::MetaError::FailedPrecondition {
            what: "image",
            id: image.to_owned(),
            reason: e.to_string(),
        }),
    })?;
    let Some(target) = target else {
        return Err(ContainerError::ImageNotFound(image.to_owned()));
    };
    let missing = || ContainerError::PlatformMissing(image.to_owned());
    let manifest_desc = images::platform_manifest(content, &target, &Matcher::host())
        .map_err(|e| ContainerError::image(image, e))?
        .ok_or_else(missing)?;
    let (manifest, _): (Manifest, _) = match read_json(content, "manifest", &manifest_desc) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(ContainerError::image(image, e)),
    };
    let (config, _): (ImageConfig, _) = match read_json(content, "config", &manifest.config) {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(ContainerError::image(image, e)),
    };
    let top = chain_id(&config.rootfs.diff_ids);
    if let Some(top) = &top
        && sn.stat(&top.to_string()).is_err()
    {
        // Unpacked under a lease, until the image's config labels keep the snapshots.
        let lease = crate::gc::lease(store.db(), "create", store.lease_expiry(CREATE_LEASE))?;
        let unpacked = unpack(content, sn, &manifest, &config, Some(&lease))
            .map_err(|e| ContainerError::image(image, e))?;
        // The config keeps this snapshotter's chain too, as pull and load label it.
        let labels = crate::gc::config_labels(sn.name(), unpacked.chain_ids.last());
        content.update_labels(&manifest.config.digest, &labels)?;
    }
    Ok(ImageForContainer {
        target,
        manifest: manifest_desc,
        config_digest: manifest.config.digest.clone(),
        config,
        top,
    })
}

/// Creates a container from an image already resolved by [`image_for_container`].
pub fn create(
    store: &Store,
    sn: &dyn Snapshotter,
    image: &ImageForContainer,
    opts: &CreateOptions,
) -> Result<ContainerRecord, ContainerError> {
    if let Some(name) = &opts.name
        && !names::valid_name(name)
    {
        return Err(ContainerError::InvalidName(name.clone()));
    }
    let opts = &CreateOptions {
        log_config: super::logs::for_container(store, &opts.log_config)?,
        ..opts.clone()
    };
    let id = names::new_id().map_err(|e| ContainerError::io("generate container id", e))?;
    let mut labels: Labels = opts.labels.clone().into_iter().collect();
    labels.insert(
        strata_types::labels::IMAGE_ID.to_owned(),
        image.target.digest.to_string(),
    );
    let mut record = ContainerRecord {
        id: id.clone(),
        name: opts.name.clone().unwrap_or_default(),
        image: opts.image.clone(),
        snapshotter: sn.name().to_owned(),
        snapshot_key: Some(id.clone()),
        runtime: opts.runtime.clone(),
        created: SystemTime::now(),
        updated: SystemTime::now(),
        labels,
    };
    record = insert(store, record, opts.name.is_none())?;
    let result = prepare(store, sn, image, opts, &record);
    if let Err(e) = &result {
        tracing::debug!("create {id} failed: {e}; undoing");
        super::lifecycle::remove_parts(store, sn, &record);
    }
    result.map(|()| record)
}

/// Inserts the record; a generated name that collides is retried with a digit, as Docker.
fn insert(
    store: &Store,
    mut record: ContainerRecord,
    generated: bool,
) -> Result<ContainerRecord, ContainerError> {
    for attempt in 0..10 {
        if generated {
            record.name = names::generated_name(&record.id, attempt);
        }
        match store.db().write(|tx| tx.insert_container(&record)) {
            Ok(r) => return Ok(r),
            Err(e) if generated && e.kind() == ErrorKind::FailedPrecondition => continue,
            Err(e) if e.kind() == ErrorKind::FailedPrecondition => {
                return Err(ContainerError::NameInUse(
                    record.name.clone(),
                    e.to_string(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ContainerError::NameInUse(
        record.name,
        "no free generated name".into(),
    ))
}

fn prepare(
    store: &Store,
    sn: &dyn Snapshotter,
    image: &ImageForContainer,
    opts: &CreateOptions,
    record: &ContainerRecord,
) -> Result<(), ContainerError> {
    let bundle = dir(store.root(), &record.id);
    strata_runtime::files::private_dir(&bundle.join("rootfs"))
        .map_err(|e| ContainerError::io("create the container directory", e))?;
    let parent = image.top.as_ref().map(ToString::to_string);
    let init = init_layer(sn, &record.id, parent.as_deref())?;
    sn.prepare(&record.id, Some(&init), &Labels::new())?;
    let mut spec_opts = opts.spec.clone();
    if spec_opts.hostname.is_none() {
        spec_opts.hostname = Some(record.id[..12].to_owned());
    }
    // The image's VOLUMEs that no mount covers get anonymous volumes, as Docker's.
    let mut wanted = opts.mounts.clone();
    let declared = image
        .config
        .config
        .as_ref()
        .map(|c| c.volumes.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    for path in declared {
        if !wanted
            .iter()
            .any(|m| m.target().trim_end_matches('/') == path.trim_end_matches('/'))
        {
            wanted.push(MountSpec::Volume {
                name: None,
                target: path,
                read_only: false,
                no_copy: false,
            });
        }
    }
    let resolved = volumes::resolve(store, &wanted)?;
    let names: Vec<&str> = resolved
        .iter()
        .filter(|m| m.point.kind == "volume")
        .map(|m| m.point.name.as_str())
        .collect();
    if !names.is_empty() {
        let label = serde_json::to_string(&names).unwrap_or_default();
        store.db().write(|tx| {
            tx.update_container_labels(
                &record.id,
                &Labels::from([(strata_types::labels::VOLUMES.to_owned(), label.clone())]),
            )
        })?;
    }
    spec_opts
        .mounts
        .extend(resolved.iter().map(|m| spec::BindMount {
            source: m.point.source.clone().into(),
            destination: m.point.destination.clone(),
            access: if m.point.rw {
                BindAccess::ReadWrite
            } else {
                BindAccess::ReadOnly
            },
        }));
    let staged_ro_binds =
        super::ro_binds::plan(store, &opts.runtime, &record.id, &mut spec_opts.mounts)?;
    let spec = rootfs::with_rootfs(store, sn, record, |root| {
        copy_up(store, root, &resolved)?;
        Ok::<_, ContainerError>(spec::build(
            &record.id,
            &image.config,
            root,
            &bundle,
            &spec_opts,
        )?)
    })??;
    let points: Vec<MountPoint> = resolved.into_iter().map(|m| m.point).collect();
    let mut config = container_config(image, opts, &spec_opts, &spec, points);
    config.staged_ro_binds = staged_ro_binds;
    spec::write(&bundle, &spec)?;
    config
        .write(&bundle)
        .map_err(|e| ContainerError::io("write container.json", e))?;
    Ok(())
}

/// The mount points the runtime mounts over (Docker's "init layer"): made in a committed
/// snapshot of their own between the image and the writable layer, so that they never show
/// up in `diff`, `commit` or the container's size.
const MOUNT_POINT_DIRS: &[&str] = &["dev", "proc", "sys", "etc"];
const MOUNT_POINT_FILES: &[&str] = &["etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// The name of container `id`'s init layer.
pub fn init_name(id: &str) -> String {
    format!("{id}-init")
}

fn init_layer(
    sn: &dyn Snapshotter,
    id: &str,
    parent: Option<&str>,
) -> Result<String, ContainerError> {
    let key = format!("{id}-init-active");
    let name = init_name(id);
    let mounts = sn.prepare(&key, parent, &Labels::new())?;
    let made = strata_mount::with_temp_mount(&mounts, |root| {
        for d in MOUNT_POINT_DIRS {
            let p = root.join(d);
            match fs::symlink_metadata(&p) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir(&p)?,
                Err(e) => return Err(e),
            }
        }
        for f in MOUNT_POINT_FILES {
            let p = root.join(f);
            // Only in a real /etc directory: a symlinked /etc is the runtime's to resolve.
            let etc_is_dir = fs::symlink_metadata(root.join("etc")).is_ok_and(|m| m.is_dir());
            if etc_is_dir && fs::symlink_metadata(&p).is_err() {
                fs::File::create(&p)?;
            }
        }
        Ok(())
    });
    let made = match made {
        Ok(r) => r.map_err(|e| ContainerError::io("make the container's mount points", e)),
        Err(e) => Err(e.into()),
    };
    let committed = made.and_then(|()| Ok(sn.commit(&name, &key, &Labels::new())?));
    if committed.is_err() {
        let _ = sn.remove(&key);
    }
    committed.map(|()| name)
}

/// New, empty volumes get the image's content at their mount path (unless `nocopy`).
fn copy_up(
    store: &Store,
    root: &std::path::Path,
    mounts: &[ResolvedMount],
) -> Result<(), ContainerError> {
    for m in mounts.iter().filter(|m| m.fresh && !m.no_copy) {
        let data = std::path::Path::new(&m.point.source);
        let min_free = crate::space::min_free_bytes(store.db(), data);
        volumes::copy_image_content(root, &m.point.destination, data, min_free)?;
    }
    Ok(())
}

fn container_config(
    image: &ImageForContainer,
    opts: &CreateOptions,
    spec_opts: &SpecOptions,
    spec: &oci_spec::runtime::Spec,
    mounts: Vec<MountPoint>,
) -> ContainerConfig {
    let run = image.config.config.clone().unwrap_or_default();
    let process = spec.process().as_ref();
    let entrypoint = match &spec_opts.entrypoint {
        Some(e) => e.clone(),
        None => run.entrypoint.clone(),
    };
    let cmd = if !spec_opts.cmd.is_empty() {
        spec_opts.cmd.clone()
    } else if spec_opts.entrypoint.is_some() {
        Vec::new()
    } else {
        run.cmd.clone()
    };
    ContainerConfig {
        image: opts.image.clone(),
        image_id: image.target.digest.to_string(),
        manifest: image.manifest.digest.to_string(),
        config: image.config_digest.to_string(),
        args: process.and_then(|p| p.args().clone()).unwrap_or_default(),
        entrypoint,
        cmd,
        env: process.and_then(|p| p.env().clone()).unwrap_or_default(),
        working_dir: process
            .map(|p| p.cwd().display().to_string())
            .unwrap_or_default(),
        user: spec_opts
            .user
            .clone()
            .or(run.user.clone())
            .unwrap_or_default(),
        hostname: spec_opts.hostname.clone().unwrap_or_default(),
        tty: spec_opts.tty,
        open_stdin: spec_opts.open_stdin,
        read_only: spec_opts.read_only,
        network: match spec_opts.network {
            spec::Network::Host => "host".into(),
            spec::Network::None => "none".into(),
        },
        auto_remove: opts.auto_remove,
        stop_signal: run.stop_signal.clone().unwrap_or_else(|| "SIGTERM".into()),
        mounts,
        labels: opts.labels.clone(),
        privileged: spec_opts.security.privileged,
        cap_add: spec_opts.security.cap_add.clone(),
        cap_drop: spec_opts.security.cap_drop.clone(),
        security_opt: spec_opts.security.opts.clone(),
        log_config: opts.log_config.clone(),
        staged_ro_binds: Vec::new(),
    }
}
