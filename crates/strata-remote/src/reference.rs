//! Image references, parsed and normalized the way Docker does.
//!
//! `ubuntu` is `docker.io/library/ubuntu:latest`; `me/app` is `docker.io/me/app:latest`;
//! `localhost:5000/x`, `registry.example.com/team/app:v1`, `name@sha256:…` and
//! `name:tag@sha256:…` mean what they say. The first path component is a registry host when
//! it contains a `.` or a `:` or is `localhost` (or has an upper-case letter, which a
//! repository never has); otherwise the registry is Docker Hub (`docker.io`, also spelled
//! `index.docker.io`), where single-component names live under `library/`. A reference
//! without a tag or digest gets the tag `latest`.
//!
//! [`Reference::familiar`] gives the short form Docker prints (`ubuntu:latest`, `me/app:v1`,
//! `localhost:5000/x:latest`); [`fmt::Display`] the full one, which is what error messages use.
//!
//! Grammar (distribution's `reference` package): path components are lower-case letters and
//! digits separated by `.`, `_`, `__` or runs of `-`; a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`;
//! the full name is at most 255 characters; a bare 64-hex-digit string is refused because it
//! reads as an image ID.

use std::fmt;
use std::str::FromStr;

use strata_types::Digest;

use crate::error::RemoteError;

/// Docker Hub's registry name.
pub const DOCKER_HUB: &str = "docker.io";
/// The tag a reference without one gets.
pub const DEFAULT_TAG: &str = "latest";

const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed, normalized image reference: registry, repository, and a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes `s` (see the module documentation).
    pub fn parse(s: &str) -> Result<Reference, RemoteError> {
        let invalid = |reason: &str| RemoteError::InvalidReference {
            reference: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(invalid("empty reference"));
        }
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "cannot be a 64-character hexadecimal string (that is an image ID)",
            ));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                let digest: Digest = digest
                    .parse()
                    .map_err(|e: strata_types::DigestError| invalid(&e.to_string()))?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(invalid)?;
        }
        let (registry, repository) = split_registry(name);
        check_registry(registry).map_err(invalid)?;
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        check_repository(&repository).map_err(invalid)?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(invalid("name is longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_owned()),
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }

    /// The registry name: `docker.io`, `localhost:5000`, `ghcr.io`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry: `library/ubuntu`, `me/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, e.g. `docker.io/library/ubuntu`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name as Docker prints it: `ubuntu`, `me/app`, `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.registry != DOCKER_HUB {
            return self.name();
        }
        match self.repository.strip_prefix("library/") {
            Some(short) if !short.contains('/') => short.to_owned(),
            _ => self.repository.clone(),
        }
    }

    /// The whole reference as Docker prints it: `ubuntu:latest`, `me/app@sha256:…`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_object(&mut s);
        s
    }

    /// What identifies the manifest in the registry's API: the digest when there is one
    /// (a digest wins over a tag, as in Docker), else the tag.
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The same name pinned to `digest` (the tag is kept: `name:tag@digest`).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same name with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, RemoteError> {
        check_tag(tag).map_err(|reason| RemoteError::InvalidReference {
            reference: format!("{}:{tag}", self.name()),
            reason: reason.to_owned(),
        })?;
        Ok(Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// Another repository on the same registry (e.g. the source of a cross-repository mount),
    /// with this reference's tag and digest.
    pub fn with_repository(&self, repository: &str) -> Result<Reference, RemoteError> {
        check_repository(repository).map_err(|reason| RemoteError::InvalidReference {
            reference: format!("{}/{repository}", self.registry),
            reason: reason.to_owned(),
        })?;
        Ok(Reference {
            repository: repository.to_owned(),
            ..self.clone()
        })
    }

    fn push_object(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

impl FromStr for Reference {
    type Err = RemoteError;

    fn from_str(s: &str) -> Result<Reference, RemoteError> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    /// `registry/repository[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_object(&mut s);
        f.write_str(&s)
    }
}

/// Splits `name` into registry and repository, applying Docker Hub's defaults.
fn split_registry(name: &str) -> (&str, String) {
    let (registry, rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    };
    let registry = if registry == "index.docker.io" {
        DOCKER_HUB
    } else {
        registry
    };
    let repository = if registry == DOCKER_HUB && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest.to_owned()
    };
    (registry, repository)
}

/// A registry host: DNS labels separated by dots, or a bracketed IPv6 address, optionally
/// `:port`.
fn check_registry(registry: &str) -> Result<(), &'static str> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or("invalid registry host")?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err("invalid registry host");
        }
        match after {
            "" => ("", None),
            p => (
                "",
                Some(p.strip_prefix(':').ok_or("invalid registry host")?),
            ),
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if !registry.starts_with('[') {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err("invalid registry host");
        }
    }
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5)
    {
        return Err("invalid registry port");
    }
    Ok(())
}

/// Path components: `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn check_repository(repository: &str) -> Result<(), &'static str> {
    if repository.is_empty() {
        return Err("empty repository name");
    }
    for component in repository.split('/') {
        let bytes = component.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err("invalid repository name component");
        }
        let mut i = 0;
        while i < bytes.len() {
            if alnum(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
            if !ok {
                return Err("invalid repository name component");
            }
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), &'static str> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_TAG_LEN
        || !word(bytes[0])
        || !bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
    {
        return Err("invalid tag: expected [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
    }
    Ok(())
}

/// Checks a repository path given on its own (e.g. a mount source).
pub(crate) fn valid_repository(repository: &str) -> bool {
    check_repository(repository).is_ok()
}

/// Checks a tag given on its own.
pub(crate) fn valid_tag(tag: &str) -> bool {
    check_tag(tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn normalizes_like_docker() {
        for (input, full, familiar) in [
            ("ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
            (
                "ubuntu:22.04",
                "docker.io/library/ubuntu:22.04",
                "ubuntu:22.04",
            ),
            ("me/app", "docker.io/me/app:latest", "me/app:latest"),
            (
                "docker.io/ubuntu",
                "docker.io/library/ubuntu:latest",
                "ubuntu:latest",
            ),
            (
                "index.docker.io/library/ubuntu:x",
                "docker.io/library/ubuntu:x",
                "ubuntu:x",
            ),
            (
                "docker.io/library/a/b",
                "docker.io/library/a/b:latest",
                "library/a/b:latest",
            ),
            ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
            (
                "localhost:5000/x/y:1.0",
                "localhost:5000/x/y:1.0",
                "localhost:5000/x/y:1.0",
            ),
            (
                "127.0.0.1:5000/x",
                "127.0.0.1:5000/x:latest",
                "127.0.0.1:5000/x:latest",
            ),
            (
                "ghcr.io/org/team/app:v1",
                "ghcr.io/org/team/app:v1",
                "ghcr.io/org/team/app:v1",
            ),
            ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest"),
            (
                "a_b/c__d/e-f--g/h.i",
                "docker.io/a_b/c__d/e-f--g/h.i:latest",
                "a_b/c__d/e-f--g/h.i:latest",
            ),
        ] {
            let parsed = r(input);
            assert_eq!(parsed.to_string(), full, "{input}");
            assert_eq!(parsed.familiar(), familiar, "{input}");
            assert_eq!(r(full), parsed, "{full} round trip");
        }
    }

    #[test]
    fn digests_and_tags() {
        let d = r(&format!("ubuntu@sha256:{HEX}"));
        assert_eq!(d.tag(), None);
        assert_eq!(d.digest().map(|d| d.hex()), Some(HEX));
        assert_eq!(d.object(), format!("sha256:{HEX}"));
        assert_eq!(
            d.to_string(),
            format!("docker.io/library/ubuntu@sha256:{HEX}")
        );

        let both = r(&format!("localhost:5000/app:v2@sha256:{HEX}"));
        assert_eq!(both.tag(), Some("v2"));
        assert_eq!(both.object(), format!("sha256:{HEX}"));
        assert_eq!(
            both.familiar(),
            format!("localhost:5000/app:v2@sha256:{HEX}")
        );

        let t = r("localhost:5000/app");
        assert_eq!(t.registry(), "localhost:5000");
        assert_eq!(t.repository(), "app");
        assert_eq!(t.object(), "latest");
        assert_eq!(
            t.with_digest(both.digest().cloned().unwrap()),
            both.with_tag("latest")
                .unwrap()
                .with_digest(both.digest().cloned().unwrap())
        );
        assert_eq!(t.with_tag("x").unwrap().to_string(), "localhost:5000/app:x");
        assert_eq!(
            t.with_repository("other/repo").unwrap().to_string(),
            "localhost:5000/other/repo:latest"
        );
        assert!(t.with_repository("Other").is_err());
        assert!(t.with_tag("-x").is_err());
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for bad in [
            "",
            HEX,
            "Ubuntu",
            "docker.io/Me/app",
            "ubuntu:",
            "ubuntu:-x",
            "ubuntu:a/b",
            "-a/b",
            "a//b",
            "a/b/",
            "a..b",
            "a_-b",
            "a___b",
            "ubuntu@sha256:abc",
            "ubuntu@md5:abc",
            "host:port/x",
            "host:123456/x",
            "bad_host.com/x",
            "[zz]:5000/x",
            &format!("ubuntu:{}", "t".repeat(129)),
            &format!("a/{}", "b".repeat(260)),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} parsed");
        }
        let err = Reference::parse("docker.io/Me/app").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid reference \"docker.io/Me/app\": repository name must be lowercase"
        );
        let err = Reference::parse(&format!("x@sha512:{HEX}")).unwrap_err();
        assert!(err.to_string().contains("sha256 content only"), "{err}");
    }

    #[test]
    fn uppercase_first_component_is_a_host() {
        // As in Docker: "Foo/bar" names registry "Foo".
        let f = r("Foo/bar");
        assert_eq!(f.registry(), "Foo");
        assert_eq!(f.repository(), "bar");
    }
}
