use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Digest;

/// A reference to a blob: the OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_oci_json() {
        let d = Descriptor::new(
            "application/vnd.oci.image.config.v1+json",
            Digest::sha256_of(b"{}"),
            2,
        );
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(
            json,
            r#"{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}"#
        );
        let back: Descriptor = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn rejects_unsupported_digest_in_json() {
        let err = serde_json::from_str::<Descriptor>(
            r#"{"mediaType":"x","digest":"sha512:abcd","size":2}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unsupported digest algorithm"),
            "{err}"
        );
    }
}
