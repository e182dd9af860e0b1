//! `import`: a root filesystem tar (plain, gzip or zstd) becomes a one-layer image, as
//! `docker import` makes it.
//!
//! The decompressed tar is stored as an uncompressed layer (its digest is its diffID), a config
//! is written for the platform asked for with Docker's `--change` instructions applied
//! (`CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`, `USER`, `LABEL`, `EXPOSE`, `VOLUME`, `STOPSIGNAL`),
//! then a manifest; all under a lease. The layer is unpacked (which refuses a hostile or
//! non-tar input), and only then is the image named (or kept dangling without a name).

use std::io::Read;
use std::time::Duration;
use strata_remote::media::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST};

use serde_json::{Map, Value, json};
use strata_content::WriterOptions;
use strata_metadata::{ContentStore, Labels, LeaseGuard, MetaError};
use strata_remote::Reference;
use strata_snapshot::Snapshotter;
use strata_types::oci::{ImageConfig, Manifest};
use strata_types::{Descriptor, Digest, ErrorKind, Platform};

use crate::store::Store;
use crate::unpack::{UnpackError, unpack};

const IMPORT_LEASE: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Docker's wording.
    #[error("{0:?} is not a valid change command")]
    Change(String),
    #[error("change {change:?}: {reason}")]
    BadChange { change: String, reason: String },
    #[error("{source_name}: read")]
    Read {
        source_name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}")]
    Store {
        source_name: String,
        #[source]
        source: Box<MetaError>,
    },
    #[error("{source_name}")]
    Unpack {
        source_name: String,
        #[source]
        source: UnpackError,
    },
    #[error("{source_name}: the image config made from the changes")]
    Config {
        source_name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl ImportError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ImportError::Store { source, .. } => source.kind(),
            ImportError::Unpack { source, .. } => source.kind(),
            ImportError::Meta(e) => e.kind(),
            ImportError::Read { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Dockerfile instructions applied to the config (`docker import -c`).
    pub changes: Vec<String>,
    /// The history entry's comment (`-m`); Docker's default is `Imported from SOURCE`.
    pub message: Option<String>,
    pub platform: Platform,
    /// The creation time, RFC 3339.
    pub created: String,
}

/// Imports the root filesystem tar `src` (named `source_name` in messages and history) and
/// names it `name`; returns the image's target (its digest is the image ID).
pub fn import(
    store: &Store,
    sn: &dyn Snapshotter,
    src: &mut dyn Read,
    source_name: &str,
    name: Option<&Reference>,
    opts: &ImportOptions,
) -> Result<Descriptor, ImportError> {
    // Bad changes fail before anything is read.
    let mut config = Map::new();
    for change in &opts.changes {
        apply_change(&mut config, change)?;
    }
    let lease = crate::gc::lease(store.db(), "import", store.lease_expiry(IMPORT_LEASE))?;
    let target = import_leased(store.content(), sn, src, source_name, config, &lease, opts)?;
    store
        .db()
        .write(|tx| crate::images::name_or_dangle(tx, name, &target))?;
    Ok(target)
}

fn import_leased(
    content: &ContentStore,
    sn: &dyn Snapshotter,
    src: &mut dyn Read,
    source_name: &str,
    config: Map<String, Value>,
    lease: &LeaseGuard,
    opts: &ImportOptions,
) -> Result<Descriptor, ImportError> {
    let store_err = |source| ImportError::Store {
        source_name: source_name.to_owned(),
        source: Box::new(source),
    };
    let read_err = |source| ImportError::Read {
        source_name: source_name.to_owned(),
        source,
    };
    let (_, mut plain) = strata_archive::decompress(src).map_err(read_err)?;
    let r#ref = format!("import-{}", lease.id().trim_start_matches("import/"));
    let wopts = WriterOptions {
        expected: None,
        total: None,
        wait: false,
    };
    let mut writer = content
        .writer(&r#ref, wopts, Some(lease.id()))
        .map_err(store_err)?;
    if let Err(e) = writer.copy_from(&mut plain) {
        drop(writer);
        let _ = content.abort(&r#ref);
        return Err(store_err(e.into()));
    }
    let size = writer.offset();
    let layer = content
        .commit(writer, Some(size), None, &Labels::new(), Some(lease.id()))
        .map_err(store_err)?
        .digest;

    let mut image = json!({
        "architecture": opts.platform.architecture,
        "os": opts.platform.os,
        "created": opts.created,
        "rootfs": { "type": "layers", "diff_ids": [layer] },
        "history": [{
            "created": opts.created,
            "comment": opts.message.clone().unwrap_or_else(|| format!("Imported from {source_name}")),
        }],
    });
    if let Some(v) = &opts.platform.variant {
        image["variant"] = json!(v);
    }
    if !config.is_empty() {
        image["config"] = Value::Object(config);
    }
    let config_bytes = serde_json::to_vec(&image).unwrap_or_default();
    let config_desc = put(content, &config_bytes, OCI_CONFIG, lease).map_err(store_err)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": [{ "mediaType": OCI_LAYER, "digest": layer, "size": size }],
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    let target = put(content, &manifest_bytes, OCI_MANIFEST, lease).map_err(store_err)?;

    let parse_err = |source| ImportError::Config {
        source_name: source_name.to_owned(),
        source,
    };
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(parse_err)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(parse_err)?;
    let unpacked = unpack(content, sn, &manifest, &config, Some(lease)).map_err(|source| {
        ImportError::Unpack {
            source_name: source_name.to_owned(),
            source,
        }
    })?;
    // The garbage collector's edges, as pull and load set them.
    content
        .update_labels(&target.digest, &crate::gc::manifest_labels(&manifest))
        .map_err(store_err)?;
    let labels = crate::gc::config_labels(sn.name(), unpacked.chain_ids.last());
    if !labels.is_empty() {
        content
            .update_labels(&manifest.config.digest, &labels)
            .map_err(store_err)?;
    }
    Ok(target)
}

/// Stores `bytes` as a blob.
pub(crate) fn put(
    content: &ContentStore,
    bytes: &[u8],
    media_type: &str,
    lease: &LeaseGuard,
) -> Result<Descriptor, MetaError> {
    let digest = Digest::sha256_of(bytes);
    let opts = WriterOptions {
        expected: Some(digest.clone()),
        total: Some(bytes.len() as u64),
        wait: true,
    };
    match content.writer(&format!("import-{digest}"), opts, Some(lease.id())) {
        Ok(mut w) => {
            w.truncate()?;
            w.copy_from(&mut &bytes[..])?;
            content.commit(
                w,
                Some(bytes.len() as u64),
                Some(&digest),
                &Labels::new(),
                Some(lease.id()),
            )?;
        }
        Err(MetaError::Content(strata_content::ContentError::AlreadyExists(_))) => {}
        Err(e) => return Err(e),
    }
    Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
}

/// `CMD ["a","b"]` (exec form) or `CMD a b` (shell form: `/bin/sh -c "a b"`).
fn command(args: &str) -> Value {
    match serde_json::from_str::<Vec<String>>(args) {
        Ok(v) => json!(v),
        Err(_) => json!(["/bin/sh", "-c", args]),
    }
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && (s.starts_with('"') && s.ends_with('"') || s.starts_with('\'') && s.ends_with('\''))
    {
        s[1..s.len() - 1].to_owned()
    } else {
        s.to_owned()
    }
}

/// `K=V K2="V 2"` or `K V` (one pair): Dockerfile's ENV and LABEL forms.
fn pairs(args: &str, change: &str) -> Result<Vec<(String, String)>, ImportError> {
    let bad = |reason: &str| ImportError::BadChange {
        change: change.to_owned(),
        reason: reason.to_owned(),
    };
    let first = args.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (k, v) = args
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("needs a name and a value"))?;
        return Ok(vec![(k.to_owned(), unquote(v))]);
    }
    // Split on whitespace outside quotes.
    let mut words = Vec::new();
    let (mut cur, mut quote) = (String::new(), None);
    for c in args.chars() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            (c, None) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (c, _) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| bad("expected NAME=VALUE"))
        })
        .collect()
}

/// Applies one `--change` to the config's `config` object.
pub(crate) fn apply_change(
    config: &mut Map<String, Value>,
    change: &str,
) -> Result<(), ImportError> {
    let change = change.trim();
    let (instr, args) = change
        .split_once(char::is_whitespace)
        .map_or((change, ""), |(i, a)| (i, a.trim()));
    let bad = |reason: &str| ImportError::BadChange {
        change: change.to_owned(),
        reason: reason.to_owned(),
    };
    if args.is_empty() {
        return Err(bad("needs an argument"));
    }
    let object = |config: &mut Map<String, Value>, key: &str| {
        config
            .entry(key.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    };
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => {
            config.insert("Cmd".into(), command(args));
        }
        "ENTRYPOINT" => {
            config.insert("Entrypoint".into(), command(args));
        }
        "WORKDIR" => {
            config.insert("WorkingDir".into(), json!(unquote(args)));
        }
        "USER" => {
            config.insert("User".into(), json!(unquote(args)));
        }
        "STOPSIGNAL" => {
            config.insert("StopSignal".into(), json!(unquote(args)));
        }
        "ENV" => {
            let mut env: Vec<String> = config
                .get("Env")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            for (k, v) in pairs(args, change)? {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != k);
                env.push(format!("{k}={v}"));
            }
            config.insert("Env".into(), json!(env));
        }
        "LABEL" => {
            let mut labels = object(config, "Labels");
            for (k, v) in pairs(args, change)? {
                labels.insert(k, json!(v));
            }
            config.insert("Labels".into(), Value::Object(labels));
        }
        "EXPOSE" => {
            let mut ports = object(config, "ExposedPorts");
            for p in args.split_whitespace() {
                let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                    return Err(bad("not a port"));
                }
                ports.insert(format!("{port}/{}", proto.to_ascii_lowercase()), json!({}));
            }
            config.insert("ExposedPorts".into(), Value::Object(ports));
        }
        "VOLUME" => {
            let mut volumes = object(config, "Volumes");
            let list = serde_json::from_str::<Vec<String>>(args)
                .unwrap_or_else(|_| args.split_whitespace().map(str::to_owned).collect());
            for v in list {
                volumes.insert(v, json!({}));
            }
            config.insert("Volumes".into(), Value::Object(volumes));
        }
        _ => return Err(ImportError::Change(change.to_owned())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_as_docker_applies_them() {
        let mut c = Map::new();
        for ch in [
            r#"CMD ["/bin/app", "-v"]"#,
            "ENTRYPOINT /init --x",
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "WORKDIR /srv",
            "USER 1000:1000",
            "LABEL org.x=y z=\"w w\"",
            "EXPOSE 80 53/udp",
        ] {
            apply_change(&mut c, ch).unwrap_or_else(|e| panic!("{ch}: {e}"));
        }
        assert_eq!(
            Value::Object(c),
            json!({
                "Cmd": ["/bin/app", "-v"],
                "Entrypoint": ["/bin/sh", "-c", "/init --x"],
                "Env": ["B=two words", "A=3"],
                "WorkingDir": "/srv",
                "User": "1000:1000",
                "Labels": {"org.x": "y", "z": "w w"},
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            })
        );
        let mut c = Map::new();
        assert!(matches!(
            apply_change(&mut c, "RUN rm -rf /"),
            Err(ImportError::Change(_))
        ));
        assert!(apply_change(&mut c, "EXPOSE http").is_err());
        assert!(apply_change(&mut c, "ENV =x").is_err());
    }
}
