//! `commit`: a container's writable layer becomes one more layer on its image.
//!
//! The layer tar (see `changes.rs`) is gzip-compressed straight into the content store; the
//! new config is the image's with the container's command as `Cmd`/`Entrypoint` (as Docker
//! does), the `--change` instructions applied, the layer's diffID and a history entry
//! appended; the manifest keeps the image's media-type family (Docker schema 2 or OCI). All
//! under a lease, with the GC labels pull and load set; the new layer is unpacked into its
//! own snapshot so the image runs at once, and only then is it named. A running container is
//! paused for the diff (`--pause`, the default, as Docker) so the layer is consistent.

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Map, Value, json};
use strata_content::WriterOptions;
use strata_metadata::{ContainerRecord, Labels, LeaseGuard, MetaError};
use strata_remote::{Reference, media};
use strata_snapshot::Snapshotter;
use strata_types::oci::{ImageConfig, Manifest};
use strata_types::{Descriptor, Digest};

use super::config::ContainerConfig;
use super::{ContainerError, changes, dir};
use crate::store::Store;
use crate::unpack::{read_json, unpack};

const COMMIT_LEASE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub author: Option<String>,
    pub message: Option<String>,
    /// Dockerfile instructions (`-c`), as `import` takes them.
    pub changes: Vec<String>,
    pub pause: bool,
    /// The creation time, RFC 3339.
    pub created: String,
}

/// Commits `record`'s writable layer as a new image named `name` (dangling without one);
/// returns the new image's target (its digest is the image ID).
pub fn commit(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
    name: Option<&Reference>,
    opts: &CommitOptions,
) -> Result<Descriptor, ContainerError> {
    let d = dir(store.root(), &record.id);
    let config =
        ContainerConfig::read(&d).map_err(|e| ContainerError::io("read container.json", e))?;
    let key = record
        .snapshot_key
        .as_deref()
        .ok_or_else(|| ContainerError::NoSnapshot(record.id.clone()))?;
    let bad = |e: String| ContainerError::Commit(e);
    let mut changed = Map::new();
    for c in &opts.changes {
        crate::import::apply_change(&mut changed, c).map_err(|e| bad(e.to_string()))?;
    }
    let lease = crate::gc::lease(store.db(), "commit", store.lease_expiry(COMMIT_LEASE))?;
    let target = commit_leased(store, sn, record, &config, key, &changed, &lease, opts)?;
    store
        .db()
        .write(|tx| crate::images::name_or_dangle(tx, name, &target))?;
    Ok(target)
}

#[allow(clippy::too_many_arguments)]
fn commit_leased(
    store: &Store,
    sn: &dyn Snapshotter,
    record: &ContainerRecord,
    config: &ContainerConfig,
    key: &str,
    changed: &Map<String, Value>,
    lease: &LeaseGuard,
    opts: &CommitOptions,
) -> Result<Descriptor, ContainerError> {
    let content = store.content();
    let image = |e: crate::unpack::UnpackError| ContainerError::image(&config.image, e);
    let manifest_desc = Descriptor::new(
        media::OCI_MANIFEST,
        config
            .manifest
            .parse::<Digest>()
            .map_err(|e| ContainerError::Commit(format!("container.json manifest: {e}")))?,
        0,
    );
    let (_, manifest_bytes): (Value, _) =
        read_json(content, "manifest", &manifest_desc).map_err(image)?;
    let mut manifest: Value = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| ContainerError::Commit(e.to_string()))?;
    let config_desc: Descriptor = serde_json::from_value(manifest["config"].clone())
        .map_err(|e| ContainerError::Commit(e.to_string()))?;
    let (mut image_config, _): (Value, _) =
        read_json(content, "config", &config_desc).map_err(image)?;
    let docker = manifest["mediaType"] == media::DOCKER_MANIFEST
        || config_desc.media_type == media::DOCKER_CONFIG;

    // The layer: diff → gzip → content store, the diffID from the diff itself.
    let store_err = |e: MetaError| ContainerError::Meta(e);
    let r#ref = format!("commit-{}", lease.id().trim_start_matches("commit/"));
    let mut writer = content
        .writer(
            &r#ref,
            WriterOptions {
                expected: None,
                total: None,
                wait: false,
            },
            Some(lease.id()),
        )
        .map_err(store_err)?;
    let paused = opts.pause && super::lifecycle::pause(store, record)?;
    let diff = {
        let mut gz = GzEncoder::new(&mut writer, Compression::fast());
        let stats = changes::write_layer(sn, key, &mut gz);
        let finished = gz.finish().map(drop);
        stats.and_then(|s| {
            finished
                .map(|()| s)
                .map_err(|e| ContainerError::io("compress the layer", e))
        })
    };
    if paused {
        super::lifecycle::resume(store, record)?;
    }
    let diff = match diff {
        Ok(d) => d,
        Err(e) => {
            drop(writer);
            let _ = content.abort(&r#ref);
            return Err(e);
        }
    };
    writer
        .flush()
        .map_err(|e| ContainerError::io("write the layer", e))?;
    let size = writer.offset();
    let layer = content
        .commit(writer, Some(size), None, &Labels::new(), Some(lease.id()))
        .map_err(store_err)?;

    // The config: the image's, with the container's command, the changes, the layer, history.
    let cfg = image_config
        .as_object_mut()
        .ok_or_else(|| ContainerError::Commit("image config is not an object".into()))?;
    let run = cfg.entry("config").or_insert_with(|| json!({}));
    if let Some(run) = run.as_object_mut() {
        run.insert("Cmd".into(), json!(config.cmd));
        run.insert(
            "Entrypoint".into(),
            if config.entrypoint.is_empty() {
                Value::Null
            } else {
                json!(config.entrypoint)
            },
        );
        for (k, v) in changed {
            run.insert(k.clone(), v.clone());
        }
    }
    cfg.insert("created".into(), json!(opts.created));
    if let Some(a) = &opts.author {
        cfg.insert("author".into(), json!(a));
    }
    let rootfs = cfg
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    if let Some(ids) = rootfs["diff_ids"].as_array_mut() {
        ids.push(json!(diff.diff_id));
    }
    let mut step = json!({"created": opts.created, "created_by": config.args.join(" ")});
    if let Some(a) = &opts.author {
        step["author"] = json!(a);
    }
    if let Some(m) = &opts.message {
        step["comment"] = json!(m);
    }
    match cfg.get_mut("history").and_then(Value::as_array_mut) {
        Some(h) => h.push(step),
        None => {
            cfg.insert("history".into(), json!([step]));
        }
    }
    let (config_type, layer_type) = if docker {
        (media::DOCKER_CONFIG, media::DOCKER_LAYER_GZIP)
    } else {
        (media::OCI_CONFIG, media::OCI_LAYER_GZIP)
    };
    let config_bytes =
        serde_json::to_vec(&image_config).map_err(|e| ContainerError::Commit(e.to_string()))?;
    let new_config =
        crate::import::put(content, &config_bytes, config_type, lease).map_err(store_err)?;
    manifest["config"] = json!(new_config);
    let layer_desc = json!({"mediaType": layer_type, "digest": layer.digest, "size": size});
    match manifest["layers"].as_array_mut() {
        Some(l) => l.push(layer_desc),
        None => manifest["layers"] = json!([layer_desc]),
    }
    let manifest_type = if docker {
        media::DOCKER_MANIFEST
    } else {
        media::OCI_MANIFEST
    };
    manifest["mediaType"] = json!(manifest_type);
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| ContainerError::Commit(e.to_string()))?;
    let target =
        crate::import::put(content, &manifest_bytes, manifest_type, lease).map_err(store_err)?;

    // Unpacked now (the base's snapshots are reused), then the GC edges.
    let parsed: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| ContainerError::Commit(e.to_string()))?;
    let parsed_config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|e| ContainerError::Commit(e.to_string()))?;
    let unpacked = unpack(content, sn, &parsed, &parsed_config, Some(lease)).map_err(image)?;
    content
        .update_labels(&target.digest, &crate::gc::manifest_labels(&parsed))
        .map_err(store_err)?;
    let labels = crate::gc::config_labels(sn.name(), unpacked.chain_ids.last());
    if !labels.is_empty() {
        content
            .update_labels(&new_config.digest, &labels)
            .map_err(store_err)?;
    }
    Ok(target)
}
