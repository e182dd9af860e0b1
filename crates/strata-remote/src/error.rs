//! The one error type of the crate.
//!
//! Every variant names what it failed on: the image reference (always in its full, normalized
//! form, `docker.io/library/ubuntu:latest`), the blob digest, the registry host, the file.
//! Messages are single lowercase lines; the underlying cause, when there is one, is the
//! `source()` and is not repeated in the message, so `{:#}` in the CLI prints
//! `registry 127.0.0.1:5000 unreachable for 127.0.0.1:5000/app:latest: error sending request
//! for url (…): client error (Connect): tcp connect error: Connection refused (os error 111)`.

use std::io;
use std::path::PathBuf;

use strata_types::{Digest, ErrorKind, PathIoError};

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("manifest unknown: {reference}")]
    ManifestUnknown { reference: String },

    #[error("blob unknown: {digest} in {reference}")]
    BlobUnknown { reference: String, digest: Digest },

    /// A 401 that no credentials could answer: Docker Hub says this for private and for
    /// nonexistent repositories alike.
    #[error(
        "{action} access denied for {reference}: the repository does not exist or {host} \
         requires authentication (strata login {registry})"
    )]
    AuthRequired {
        action: &'static str,
        reference: String,
        host: String,
        registry: String,
    },

    /// Credentials were sent and refused.
    #[error("authentication refused by {host} for {reference}: {message}")]
    AuthRefused {
        reference: String,
        host: String,
        message: String,
    },

    /// A redirect (to blob storage) led to a host that asks for credentials: the registry's
    /// are never sent there.
    #[error(
        "{host} redirected a request for {reference} to {target}, which asks for credentials: \
         strata sends the registry's credentials to the registry only"
    )]
    RedirectAuth {
        reference: String,
        host: String,
        target: String,
    },

    /// A registry reached over verified TLS named a plain-HTTP token realm.
    #[error(
        "{host} names the plain-HTTP token realm {realm} for {reference}: credentials are not \
         sent over plain HTTP (configure {host} as plain HTTP or skip_verify in hosts.toml if \
         this is intended)"
    )]
    InsecureRealm {
        reference: String,
        host: String,
        realm: String,
    },

    /// A 403: authenticated, but not allowed.
    #[error("access denied by {host} for {reference}: {message}")]
    Denied {
        reference: String,
        host: String,
        message: String,
    },

    #[error("registry {host} unreachable for {reference}")]
    Unreachable {
        reference: String,
        host: String,
        #[source]
        source: reqwest::Error,
    },

    /// Any other unexpected answer (after retries, for 5xx and 429).
    #[error(
        "{reference}: {method} {url} answered {status}{}",
        registry_message(code, message)
    )]
    Registry {
        reference: String,
        method: String,
        url: String,
        status: u16,
        code: String,
        message: String,
    },

    /// The registry broke the protocol (no `Location` on an upload, bad `Content-Range`…).
    #[error("{reference}: {host}: {message}")]
    Protocol {
        reference: String,
        host: String,
        message: String,
    },

    #[error("{reference}: no host configured for {capability} (check hosts.toml)")]
    NoHost {
        reference: String,
        capability: &'static str,
    },

    #[error("{reference}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        reference: String,
        expected: Digest,
        actual: Digest,
    },

    #[error("{reference}: blob {digest}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        reference: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },

    #[error("{reference}: blob {digest}: more than the expected {expected} bytes")]
    Overflow {
        reference: String,
        digest: Digest,
        expected: u64,
    },

    #[error("{reference}: blob {digest}: offset {offset} is beyond its size {size}")]
    BadOffset {
        reference: String,
        digest: Digest,
        offset: u64,
        size: u64,
    },

    #[error("{reference}: manifest of {size} bytes refused, the limit is {limit}")]
    ManifestTooLarge {
        reference: String,
        size: u64,
        limit: u64,
    },

    #[error(
        "schema 1 manifests are not supported: {reference}, re-push the image with a current Docker"
    )]
    Schema1 { reference: String },

    #[error("{reference}: unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },

    /// A blob body broke off and could not be resumed within the retry budget.
    #[error("reading blob {digest} of {reference} from {host}")]
    Transfer {
        reference: String,
        digest: Digest,
        host: String,
        #[source]
        source: reqwest::Error,
    },

    /// A body came slower than the low-speed limit for a whole window.
    #[error(
        "{reference}: {what} {} {host} stalled: under {limit} bytes/s for {seconds} s \
         (the low-speed limit)",
        if *.upload { "to" } else { "from" }
    )]
    Stalled {
        reference: String,
        /// `blob sha256:…`, `manifest` or `upload of blob sha256:…`.
        what: String,
        host: String,
        /// A body sent to the registry, not one read from it.
        upload: bool,
        limit: u64,
        seconds: u64,
    },

    /// Reading the local data of a blob being pushed failed.
    #[error("reading the local data of blob {digest} to push to {reference}")]
    Source {
        reference: String,
        digest: Digest,
        #[source]
        source: io::Error,
    },

    #[error("token server {realm}: {message}")]
    Token { realm: String, message: String },

    #[error("invalid hosts config {}", path.display())]
    HostsParse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },

    #[error("invalid hosts config {}: {message}", path.display())]
    HostsInvalid { path: PathBuf, message: String },

    #[error("tls setup for {host}: {message}")]
    Tls { host: String, message: String },

    #[error("parsing docker config {}", path.display())]
    DockerConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("credentials for {server} in {}: {message}", path.display())]
    Credentials {
        server: String,
        path: PathBuf,
        message: String,
    },

    #[error("docker-credential-{helper} {action} for {server}: {message}")]
    CredentialHelper {
        helper: String,
        action: &'static str,
        server: String,
        message: String,
    },

    #[error("building the http client for {host}")]
    Client {
        host: String,
        #[source]
        source: reqwest::Error,
    },

    #[error(transparent)]
    Io(PathIoError),
}

fn registry_message(code: &str, message: &str) -> String {
    match (code.is_empty(), message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(": {code}"),
        (true, false) => format!(": {message}"),
        (false, false) => format!(": {code}: {message}"),
    }
}

impl RemoteError {
    /// The class of the failure, for callers that match across crates.
    pub fn kind(&self) -> ErrorKind {
        use RemoteError::*;
        match self {
            InvalidReference { .. } => ErrorKind::InvalidArgument,
            ManifestUnknown { .. } | BlobUnknown { .. } => ErrorKind::NotFound,
            AuthRequired { .. }
            | AuthRefused { .. }
            | Denied { .. }
            | RedirectAuth { .. }
            | InsecureRealm { .. } => ErrorKind::PermissionDenied,
            Unreachable { .. } | Transfer { .. } | Stalled { .. } => ErrorKind::Unavailable,
            Registry { status, code, .. } => match (*status, code.as_str()) {
                (_, "DIGEST_INVALID" | "SIZE_INVALID") => ErrorKind::DataMismatch,
                (404, _) | (_, "BLOB_UNKNOWN" | "MANIFEST_UNKNOWN" | "NAME_UNKNOWN") => {
                    ErrorKind::NotFound
                }
                (401 | 403, _) => ErrorKind::PermissionDenied,
                (408 | 429, _) | (500..=599, _) => ErrorKind::Unavailable,
                (400..=499, _) => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            Protocol { .. } | Token { .. } | Client { .. } => ErrorKind::Internal,
            NoHost { .. } => ErrorKind::FailedPrecondition,
            DigestMismatch { .. }
            | SizeMismatch { .. }
            | Overflow { .. }
            | ManifestTooLarge { .. } => ErrorKind::DataMismatch,
            BadOffset { .. } => ErrorKind::InvalidArgument,
            Schema1 { .. } | UnsupportedMediaType { .. } => ErrorKind::FailedPrecondition,
            HostsParse { .. }
            | HostsInvalid { .. }
            | Tls { .. }
            | DockerConfig { .. }
            | Credentials { .. } => ErrorKind::InvalidArgument,
            CredentialHelper { .. } => ErrorKind::Internal,
            Source { source, .. } => ErrorKind::from_io(source),
            Io(e) => e.kind(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let at = PathIoError::at(op, path);
        move |source| RemoteError::Io(at(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_the_object() {
        let e = RemoteError::ManifestUnknown {
            reference: "docker.io/library/nosuch:latest".into(),
        };
        assert_eq!(
            e.to_string(),
            "manifest unknown: docker.io/library/nosuch:latest"
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);

        let e = RemoteError::Registry {
            reference: "r:1".into(),
            method: "PUT".into(),
            url: "http://h/v2/r/blobs/uploads/x".into(),
            status: 400,
            code: "DIGEST_INVALID".into(),
            message: "provided digest did not match uploaded content".into(),
        };
        assert_eq!(
            e.to_string(),
            "r:1: PUT http://h/v2/r/blobs/uploads/x answered 400: DIGEST_INVALID: \
             provided digest did not match uploaded content"
        );
        assert_eq!(e.kind(), ErrorKind::DataMismatch);

        let e = RemoteError::Schema1 {
            reference: "docker.io/library/old:1".into(),
        };
        assert_eq!(
            e.to_string(),
            "schema 1 manifests are not supported: docker.io/library/old:1, \
             re-push the image with a current Docker"
        );
        for e in [
            e,
            RemoteError::AuthRequired {
                action: "pull",
                reference: "docker.io/me/private:latest".into(),
                host: "registry-1.docker.io".into(),
                registry: "docker.io".into(),
            },
        ] {
            assert!(!e.to_string().contains('\n'));
        }
    }
}
