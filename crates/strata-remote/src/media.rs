//! Media types: what a registry may answer, and what strata accepts.
//!
//! Images come in two families that mean the same things: OCI (`application/vnd.oci.…`) and
//! Docker schema 2 (`application/vnd.docker.…`). Both have a manifest (one image: a config
//! and layers) and an index (OCI image index / Docker manifest list: one manifest per
//! platform, plus attestations). Layers are tar streams, plain, gzip or zstd; OCI's
//! "non-distributable" and Docker's "foreign" layers are ones registries may not hold
//! (Windows base layers), fetched from the URLs in their descriptor instead.
//!
//! Docker schema 1 (`…manifest.v1+json`, signed `…+prettyjws`) is refused: it has no config
//! blob and no content-addressed image ID, and Docker itself stopped pulling it.

use crate::error::RemoteError;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_NONDISTRIBUTABLE: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_LAYER_NONDISTRIBUTABLE_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Not in Docker's spec; the name containerd and BuildKit use for zstd layers in Docker
/// manifests.
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const DOCKER_SCHEMA1_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED_MANIFEST: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The layer of a BuildKit attestation manifest.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// The `Accept` header for manifests: the four types strata reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Compression of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A single-image manifest, OCI or Docker.
pub fn is_manifest(media_type: &str) -> bool {
    matches!(media_type, OCI_MANIFEST | DOCKER_MANIFEST)
}

/// A multi-platform index, OCI or Docker.
pub fn is_index(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// Docker schema 1, signed or not.
pub fn is_schema1(media_type: &str) -> bool {
    matches!(
        media_type,
        DOCKER_SCHEMA1_MANIFEST | DOCKER_SCHEMA1_SIGNED_MANIFEST
    )
}

/// An image config, OCI or Docker.
pub fn is_config(media_type: &str) -> bool {
    matches!(media_type, OCI_CONFIG | DOCKER_CONFIG)
}

/// The compression of a layer media type; `None` when it is not a layer type.
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        OCI_LAYER | OCI_LAYER_NONDISTRIBUTABLE | DOCKER_LAYER => Some(Compression::None),
        OCI_LAYER_GZIP
        | OCI_LAYER_NONDISTRIBUTABLE_GZIP
        | DOCKER_LAYER_GZIP
        | DOCKER_FOREIGN_LAYER => Some(Compression::Gzip),
        OCI_LAYER_ZSTD | OCI_LAYER_NONDISTRIBUTABLE_ZSTD | DOCKER_LAYER_ZSTD => {
            Some(Compression::Zstd)
        }
        _ => None,
    }
}

/// Whether `media_type` is a filesystem layer.
pub fn is_layer(media_type: &str) -> bool {
    layer_compression(media_type).is_some()
}

/// Whether registries may hold the blob: false for OCI non-distributable and Docker foreign
/// layers.
pub fn is_distributable(media_type: &str) -> bool {
    !matches!(
        media_type,
        OCI_LAYER_NONDISTRIBUTABLE
            | OCI_LAYER_NONDISTRIBUTABLE_GZIP
            | OCI_LAYER_NONDISTRIBUTABLE_ZSTD
            | DOCKER_FOREIGN_LAYER
    )
}

/// A `Content-Type` without its parameters (`; charset=utf-8`), lower-cased.
pub(crate) fn strip_parameters(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether a `Content-Type` says nothing about which manifest it is, so the body must be
/// looked at (some registries and proxies answer `application/json` or nothing).
pub(crate) fn is_generic(content_type: &str) -> bool {
    matches!(
        content_type,
        "" | "application/json" | "text/plain" | "application/octet-stream" | "binary/octet-stream"
    )
}

/// The manifest type a body declares: its `mediaType` field, else `schemaVersion: 1` for
/// schema 1, else guessed from its shape (`manifests` → OCI index, `config` → OCI manifest).
pub(crate) fn sniff(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u64>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(body).ok()?;
    if let Some(mt) = probe.media_type {
        return Some(mt);
    }
    match probe.schema_version {
        Some(1) => Some(DOCKER_SCHEMA1_MANIFEST.to_owned()),
        _ if probe.manifests.is_some() => Some(OCI_INDEX.to_owned()),
        _ if probe.config.is_some() => Some(OCI_MANIFEST.to_owned()),
        _ => None,
    }
}

/// Accepts manifests and indexes; refuses schema 1 and everything else, naming `reference`.
pub(crate) fn check_manifest_type(reference: &str, media_type: &str) -> Result<(), RemoteError> {
    if is_manifest(media_type) || is_index(media_type) {
        Ok(())
    } else if is_schema1(media_type) {
        Err(RemoteError::Schema1 {
            reference: reference.to_owned(),
        })
    } else {
        Err(RemoteError::UnsupportedMediaType {
            reference: reference.to_owned(),
            media_type: media_type.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        for mt in [OCI_MANIFEST, DOCKER_MANIFEST] {
            assert!(is_manifest(mt) && !is_index(mt));
        }
        for mt in [OCI_INDEX, DOCKER_MANIFEST_LIST] {
            assert!(is_index(mt) && !is_manifest(mt));
        }
        assert!(is_config(DOCKER_CONFIG) && is_config(OCI_CONFIG));
        assert_eq!(
            layer_compression(DOCKER_LAYER_ZSTD),
            Some(Compression::Zstd)
        );
        assert_eq!(
            layer_compression(OCI_LAYER_NONDISTRIBUTABLE_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(layer_compression(DOCKER_LAYER), Some(Compression::None));
        assert_eq!(layer_compression(IN_TOTO), None);
        assert!(!is_distributable(DOCKER_FOREIGN_LAYER));
        assert!(is_distributable(OCI_LAYER_GZIP));
        for mt in MANIFEST_ACCEPT.split(", ") {
            assert!(is_manifest(mt) || is_index(mt), "{mt}");
        }
        assert_eq!(MANIFEST_ACCEPT.split(", ").count(), 4);
    }

    #[test]
    fn refuses_schema1_and_others() {
        let e = check_manifest_type("docker.io/library/old:1", DOCKER_SCHEMA1_SIGNED_MANIFEST)
            .unwrap_err();
        assert!(matches!(e, RemoteError::Schema1 { .. }));
        let e = check_manifest_type("r", "text/html").unwrap_err();
        assert_eq!(e.to_string(), "r: unsupported media type \"text/html\"");
        check_manifest_type("r", DOCKER_MANIFEST_LIST).unwrap();
    }

    #[test]
    fn sniffs_bodies() {
        assert_eq!(
            sniff(br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#)
                .as_deref(),
            Some(DOCKER_MANIFEST)
        );
        assert_eq!(
            sniff(br#"{"schemaVersion":1,"fsLayers":[]}"#).as_deref(),
            Some(DOCKER_SCHEMA1_MANIFEST)
        );
        assert_eq!(
            sniff(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(OCI_INDEX)
        );
        assert_eq!(
            sniff(br#"{"schemaVersion":2,"config":{}}"#).as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(sniff(b"not json"), None);
        assert_eq!(
            strip_parameters("Application/JSON; charset=utf-8"),
            "application/json"
        );
        assert!(is_generic("application/json"));
    }
}
