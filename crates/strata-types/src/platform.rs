//! Platforms: which operating system and CPU an image is built for, and which of an index's
//! images a machine can run.
//!
//! A multi-platform image is an index (OCI image index or Docker manifest list) whose entries
//! each carry a [`Platform`]. Pulling picks one entry with a [`Matcher`]; the rules are
//! containerd's (`github.com/containerd/platforms`), so `strata pull` picks what
//! `docker pull` with the containerd image store picks:
//!
//! - **Names are normalized before they are compared.** `x86_64`, `x86-64` → `amd64`;
//!   `aarch64` → `arm64`; `i386` → `386`; `armhf` → `arm/v7`; `armel` → `arm/v6`; `macos` →
//!   `darwin`; case is ignored. Variants too: `arm` without a variant is `arm/v7`, `arm64/v8`
//!   is plain `arm64` (v8 is what every arm64 is), `amd64/v1` is plain `amd64`.
//! - **A machine runs more than its own platform** ([`Matcher::only`]), best first: an
//!   `arm/v7` runs `v7`, then `v6`, then `v5` images; an `arm64/v8.2` runs `v8.2`, `v8.1`, `v8`,
//!   then 32-bit `arm/v8` down to `arm/v5`; an `amd64/v3` runs `v3`, `v2`, then plain `amd64`.
//!   Plain `amd64` runs only `amd64`: unlike current containerd, 32-bit `386` images are not
//!   offered to an `amd64` machine (they need the kernel's IA-32 emulation, which is often
//!   off, and Docker users do not expect `docker pull` to pick them).
//! - **OS features** (`os.features`, e.g. Windows' `win32k`): an entry matches only when the
//!   wanted platform has every feature the entry asks for; among matches, more features win.
//! - **OS version** is compared for Windows only (major.minor.build must agree), as there it
//!   says which kernel the image needs.
//! - **Attestations never match.** BuildKit lists provenance and SBOM manifests in the index
//!   as entries with platform `unknown/unknown` and the annotation
//!   `vnd.docker.reference.type: attestation-manifest`; they describe an image, they are not
//!   one ([`is_attestation`]).
//!
//! Textual form ([`Platform::from_str`], [`fmt::Display`]): `os[(os.version+feature+…)]/arch[/variant]`,
//! or `arch` alone (OS `linux`), or a known OS alone (this machine's architecture). Wildcards are
//! refused.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The annotation BuildKit puts on attestation entries of an index.
pub const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";
/// Its value for attestation (provenance, SBOM) manifests.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// The platform object of the OCI image spec (index entries and image configs).
///
/// Values are kept as written when deserialized; compare through [`Platform::normalize`] or
/// a [`Matcher`], which do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A platform specifier that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {specifier:?}: {reason}")]
pub struct PlatformError {
    pub specifier: String,
    pub reason: &'static str,
}

impl Platform {
    /// A platform from its parts, normalized.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            os_version: None,
            os_features: Vec::new(),
            variant: variant.map(str::to_owned),
        }
        .normalize()
    }

    /// The platform this program was built for, in OCI (Go) names: `linux/amd64`,
    /// `linux/arm64`, `linux/arm/v7`, …
    ///
    /// Decided at compile time (this crate does no I/O): a 32-bit ARM build says `v7`, as
    /// containerd assumes when it cannot read `/proc/cpuinfo`.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "powerpc" => "ppc",
            "loongarch64" => "loong64",
            "mips" if cfg!(target_endian = "little") => "mipsle",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            other => other,
        };
        Platform::new(std::env::consts::OS, arch, None)
    }

    /// The canonical form the matching rules compare: lowercase, aliases resolved
    /// (`aarch64` → `arm64`, `x86_64` → `amd64`, `armhf` → `arm/v7`, …), default variants
    /// made explicit or dropped (`arm` → `arm/v7`, `arm64/v8` → `arm64`, `amd64/v1` →
    /// `amd64`), an empty variant or OS version removed, OS features sorted and deduplicated.
    pub fn normalize(&self) -> Platform {
        let os = self.os.to_ascii_lowercase();
        let os = if os == "macos" {
            "darwin".to_owned()
        } else {
            os
        };
        let (architecture, variant) = normalize_arch(
            &self.architecture.to_ascii_lowercase(),
            &self
                .variant
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase(),
        );
        let mut os_features = self.os_features.clone();
        os_features.sort();
        os_features.dedup();
        Platform {
            architecture,
            os,
            os_version: self.os_version.clone().filter(|v| !v.is_empty()),
            os_features,
            variant,
        }
    }

    /// Whether this is the `unknown/unknown` placeholder attestation entries carry.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" && self.architecture == "unknown"
    }
}

/// Architecture and variant in canonical form (inputs already lowercase).
fn normalize_arch(arch: &str, variant: &str) -> (String, Option<String>) {
    let (arch, variant): (&str, &str) = match (arch, variant) {
        ("i386", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8" | "v8.0") => ("arm64", ""),
        ("aarch64" | "arm64", "9" | "9.0" | "v9.0") => ("arm64", "v9"),
        ("aarch64" | "arm64", v) => ("arm64", v),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "" | "7") => ("arm", "v7"),
        ("arm", "5") => ("arm", "v5"),
        ("arm", "6") => ("arm", "v6"),
        ("arm", "8") => ("arm", "v8"),
        (a, v) => (a, v),
    };
    let variant = (!variant.is_empty()).then(|| variant.to_owned());
    (arch.to_owned(), variant)
}

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

impl FromStr for Platform {
    type Err = PlatformError;

    /// Parses `os[(version+features)]/arch[/variant]`, `arch` alone (OS `linux`), or a known
    /// OS alone (this machine's architecture). The result is [normalized](Platform::normalize).
    fn from_str(s: &str) -> Result<Platform, PlatformError> {
        let err = |reason| PlatformError {
            specifier: s.to_owned(),
            reason,
        };
        if s.contains('*') {
            return Err(err("wildcards are not supported"));
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 3 {
            return Err(err("expected os/arch[/variant]"));
        }
        let (os, os_version, os_features) = parse_os(parts[0]).ok_or_else(|| {
            err("the OS must be letters, digits, '_' or '-', optionally followed by (version+feature+…)")
        })?;
        if parts[1..].iter().any(|p| {
            p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        }) {
            return Err(err(
                "architecture and variant must be letters, digits, '_', '.' or '-'",
            ));
        }
        let os_lower = Platform::new(&os, "", None).os;
        let mut p = match parts.len() {
            1 if KNOWN_OS.contains(&os_lower.as_str()) => {
                let host = Platform::host();
                Platform {
                    os: os_lower,
                    ..host
                }
            }
            1 => {
                if os_version.is_some() || !os_features.is_empty() {
                    return Err(err("an architecture takes no (version+features)"));
                }
                let p = Platform::new("linux", &os, None);
                if !KNOWN_ARCH.contains(&p.architecture.as_str()) {
                    return Err(err("unknown operating system or architecture"));
                }
                p
            }
            2 => Platform::new(&os, parts[1], None),
            _ => Platform::new(&os, parts[1], Some(parts[2])),
        };
        p.os_version = os_version;
        p.os_features = os_features;
        Ok(p.normalize())
    }
}

/// `os`, `os(version)`, `os(+feat+feat)`, `os(version+feat)`, with `%XX` escapes inside the
/// parentheses.
fn parse_os(part: &str) -> Option<(String, Option<String>, Vec<String>)> {
    let (name, options) = match part.split_once('(') {
        Some((name, rest)) => (name, Some(rest.strip_suffix(')')?)),
        None => (part, None),
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
    {
        return None;
    }
    let Some(options) = options else {
        return Some((name.to_owned(), None, Vec::new()));
    };
    if !options
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.%-+".contains(&b))
    {
        return None;
    }
    let mut pieces = options.split('+');
    let version = percent_decode(pieces.next().unwrap_or_default())?;
    let mut features = Vec::new();
    for f in pieces {
        if f.is_empty() {
            return None;
        }
        features.push(percent_decode(f)?);
    }
    let version = (!version.is_empty()).then_some(version);
    Some((name.to_owned(), version, features))
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(s: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for c in s.chars() {
        match c {
            '%' => f.write_str("%25")?,
            '+' => f.write_str("%2B")?,
            '(' => f.write_str("%28")?,
            ')' => f.write_str("%29")?,
            '/' => f.write_str("%2F")?,
            c => write!(f, "{c}")?,
        }
    }
    Ok(())
}

impl fmt::Display for Platform {
    /// `os/arch[/variant]`, with `(os.version+features)` after the OS when set; `unknown`
    /// for an empty OS.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.os.is_empty() {
            return f.write_str("unknown");
        }
        f.write_str(&self.os)?;
        if self.os_version.is_some() || !self.os_features.is_empty() {
            f.write_str("(")?;
            percent_encode(self.os_version.as_deref().unwrap_or_default(), f)?;
            let mut features: Vec<&String> = self.os_features.iter().collect();
            features.sort();
            features.dedup();
            for feature in features {
                f.write_str("+")?;
                percent_encode(feature, f)?;
            }
            f.write_str(")")?;
        }
        write!(f, "/{}", self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Whether an index entry's annotations mark it as a BuildKit attestation manifest.
pub fn is_attestation(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get(REFERENCE_TYPE_ANNOTATION)
        .is_some_and(|t| t == ATTESTATION_MANIFEST)
}

/// Decides which platforms are wanted and which of them is best.
///
/// Built for a machine ([`Matcher::host`], [`Matcher::only`]: everything it can run, its own
/// platform first), for exact platforms ([`Matcher::exact`], [`Matcher::ordered`]), or for
/// everything ([`Matcher::all`], `--all-platforms`). See the module documentation for the
/// rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// Normalized platforms in order of preference; `None` matches every platform.
    wanted: Option<Vec<Platform>>,
}

impl Matcher {
    /// What this machine can run ([`Matcher::only`] of [`Platform::host`]).
    pub fn host() -> Matcher {
        Matcher::only(&Platform::host())
    }

    /// What a machine of platform `p` can run, `p` itself first: older variants of its
    /// architecture (`arm/v7` → `v6`, `v5`; `amd64/v3` → `v2`, `amd64`; `arm64/v9.1` →
    /// `v9`, `v8.6`…`v8`) and, for `arm64`, 32-bit `arm/v8` down to `arm/v5`.
    pub fn only(p: &Platform) -> Matcher {
        Matcher {
            wanted: Some(compatible(&p.normalize())),
        }
    }

    /// Exactly `p` (after normalization: `arm` still matches `arm/v7`, `arm64` `arm64/v8`).
    pub fn exact(p: &Platform) -> Matcher {
        Matcher::ordered([p.clone()])
    }

    /// Any of `platforms` exactly, preferring earlier ones.
    pub fn ordered(platforms: impl IntoIterator<Item = Platform>) -> Matcher {
        Matcher {
            wanted: Some(platforms.into_iter().map(|p| p.normalize()).collect()),
        }
    }

    /// Every platform (but never an attestation entry).
    pub fn all() -> Matcher {
        Matcher { wanted: None }
    }

    /// Whether `p` is wanted.
    pub fn matches(&self, p: &Platform) -> bool {
        self.rank(p).is_some()
    }

    /// How good `p` is: `Some(0)` is the best rank, `None` means not wanted.
    pub fn rank(&self, p: &Platform) -> Option<usize> {
        let Some(wanted) = &self.wanted else {
            return Some(0);
        };
        let p = p.normalize();
        wanted.iter().position(|w| platform_matches(w, &p))
    }

    /// Orders two wanted platforms: `Less` when `a` is preferred. Unwanted ones sort last;
    /// at equal rank the one with more OS features wins.
    pub fn compare(&self, a: &Platform, b: &Platform) -> Ordering {
        let key = |p: &Platform| {
            (
                self.rank(p).unwrap_or(usize::MAX),
                std::cmp::Reverse(p.normalize().os_features.len()),
            )
        };
        key(a).cmp(&key(b))
    }

    /// Whether an index entry is wanted: never an attestation; an entry without a platform
    /// is wanted (an index of one image often omits it), after all entries that have one.
    pub fn matches_entry(
        &self,
        platform: Option<&Platform>,
        annotations: &BTreeMap<String, String>,
    ) -> bool {
        !is_attestation(annotations) && platform.is_none_or(|p| self.matches(p))
    }

    /// The positions of the wanted entries of an index, best first (index order among
    /// equals). Each item is an entry's platform and annotations.
    pub fn order<'a>(
        &self,
        entries: impl IntoIterator<Item = (Option<&'a Platform>, &'a BTreeMap<String, String>)>,
    ) -> Vec<usize> {
        let mut ranked: Vec<((usize, std::cmp::Reverse<usize>), usize)> = entries
            .into_iter()
            .enumerate()
            .filter(|(_, (platform, annotations))| self.matches_entry(*platform, annotations))
            .map(|(i, (platform, _))| {
                let key = match platform {
                    Some(p) => (
                        self.rank(p).unwrap_or(usize::MAX),
                        std::cmp::Reverse(p.normalize().os_features.len()),
                    ),
                    None => (usize::MAX, std::cmp::Reverse(0)),
                };
                (key, i)
            })
            .collect();
        ranked.sort();
        ranked.into_iter().map(|(_, i)| i).collect()
    }
}

/// Whether entry `p` is satisfied by wanted `w` (both normalized).
fn platform_matches(w: &Platform, p: &Platform) -> bool {
    if w.os != p.os || w.architecture != p.architecture || w.variant != p.variant {
        return false;
    }
    if w.os == "windows"
        && let (Some(wv), Some(pv)) = (&w.os_version, &p.os_version)
        && windows_build(wv) != windows_build(pv)
    {
        return false;
    }
    // Both sorted: every feature the entry needs must be offered.
    p.os_features
        .iter()
        .all(|f| w.os_features.binary_search(f).is_ok())
}

/// `major.minor.build` of a Windows version such as `10.0.17763.1234`.
fn windows_build(v: &str) -> Vec<&str> {
    v.split('.').take(3).collect()
}

/// arm64 variants and the arm64 variants they run, as (major, minor) pairs, newest first:
/// `v9.x` runs `v9.x`…`v9.0` and `v8.(x+5)`…`v8.0` (capped at `v8.9`); `v8.x` runs
/// `v8.x`…`v8.0`.
fn arm64_versions(variant: Option<&str>) -> Option<Vec<(u32, u32)>> {
    let v = variant.unwrap_or("v8");
    let (major, minor) = match v.strip_prefix('v')?.split_once('.') {
        Some((major, minor)) => (major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?),
        None => (v.strip_prefix('v')?.parse::<u32>().ok()?, 0),
    };
    let mut out = Vec::new();
    match (major, minor) {
        (8, 0..=9) => out.extend((0..=minor).rev().map(|m| (8, m))),
        (9, 0..=7) => {
            out.extend((0..=minor).rev().map(|m| (9, m)));
            out.extend((0..=(minor + 5).min(9)).rev().map(|m| (8, m)));
        }
        _ => return None,
    }
    Some(out)
}

/// The platforms a machine of platform `p` (normalized) runs, best first.
fn compatible(p: &Platform) -> Vec<Platform> {
    let with = |architecture: &str, variant: Option<String>| Platform {
        architecture: architecture.to_owned(),
        variant,
        ..p.clone()
    };
    let version = |prefix: &str| {
        p.variant
            .as_deref()
            .and_then(|v| v.strip_prefix(prefix))
            .and_then(|n| n.parse::<u32>().ok())
    };
    let mut out = vec![p.clone()];
    match p.architecture.as_str() {
        "amd64" => {
            if let Some(n) = version("v").filter(|&n| n > 1) {
                out.extend((2..n).rev().map(|k| with("amd64", Some(format!("v{k}")))));
                out.push(with("amd64", None));
            }
        }
        "arm" => {
            if let Some(n) = version("v").filter(|&n| n > 5) {
                out.extend((5..n).rev().map(|k| with("arm", Some(format!("v{k}")))));
            }
        }
        "arm64" => {
            if let Some(versions) = arm64_versions(p.variant.as_deref()) {
                out = versions
                    .into_iter()
                    .map(|(major, minor)| {
                        let variant = match (major, minor) {
                            (8, 0) => None,
                            (m, 0) => Some(format!("v{m}")),
                            (m, n) => Some(format!("v{m}.{n}")),
                        };
                        with("arm64", variant)
                    })
                    .collect();
                out.extend((5..=8).rev().map(|k| with("arm", Some(format!("v{k}")))));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap_or_else(|e| panic!("parse {s:?}: {e}"))
    }

    #[test]
    fn parses_and_normalizes_like_containerd() {
        let host = Platform::host();
        for (input, os, arch, variant) in [
            ("linux/arm64", "linux", "arm64", None),
            ("linux/arm64/v8", "linux", "arm64", None),
            ("linux/aarch64", "linux", "arm64", None),
            ("linux/arm", "linux", "arm", Some("v7")),
            ("linux/arm/7", "linux", "arm", Some("v7")),
            ("linux/arm/v6", "linux", "arm", Some("v6")),
            ("linux/armhf", "linux", "arm", Some("v7")),
            ("linux/armel", "linux", "arm", Some("v6")),
            ("arm", "linux", "arm", Some("v7")),
            ("armel", "linux", "arm", Some("v6")),
            ("Aarch64", "linux", "arm64", None),
            ("x86_64", "linux", "amd64", None),
            ("x86-64", "linux", "amd64", None),
            ("Linux/x86_64", "linux", "amd64", None),
            ("linux/amd64/v1", "linux", "amd64", None),
            ("linux/amd64/v3", "linux", "amd64", Some("v3")),
            ("i386", "linux", "386", None),
            ("s390x", "linux", "s390x", None),
            ("linux/s390x", "linux", "s390x", None),
            ("linux/arm64/9", "linux", "arm64", Some("v9")),
            ("windows/amd64", "windows", "amd64", None),
        ] {
            let got = p(input);
            assert_eq!(
                (
                    got.os.as_str(),
                    got.architecture.as_str(),
                    got.variant.as_deref()
                ),
                (os, arch, variant),
                "{input}"
            );
        }
        assert_eq!(
            p("linux"),
            Platform {
                os: "linux".into(),
                ..host.clone()
            }
        );
        assert_eq!(p("macOS").os, "darwin");
        assert_eq!(p("macOS").architecture, host.architecture);
    }

    #[test]
    fn parses_os_version_and_features() {
        let w = p("windows(10.0.17763+win32k)/amd64");
        assert_eq!(w.os_version.as_deref(), Some("10.0.17763"));
        assert_eq!(w.os_features, ["win32k"]);
        assert_eq!(w.to_string(), "windows(10.0.17763+win32k)/amd64");
        let l = p("linux(+unsorted+erofs)/arm64");
        assert_eq!(l.os_features, ["erofs", "unsorted"]);
        assert_eq!(l.to_string(), "linux(+erofs+unsorted)/arm64");
        let e = p("windows(10.0.17763%2Bbuild.42)/amd64");
        assert_eq!(e.os_version.as_deref(), Some("10.0.17763+build.42"));
        assert_eq!(e.to_string(), "windows(10.0.17763%2Bbuild.42)/amd64");
        assert_eq!(
            p("windows(50%25done)/amd64").os_version.as_deref(),
            Some("50%done")
        );
    }

    #[test]
    fn rejects_bad_specifiers() {
        for bad in [
            "",
            "*",
            "linux/*",
            "linux/arm/v7/extra",
            "linux//v7",
            "linux/arm/",
            "lin ux/amd64",
            "nosuch",
            "linux(10.0/amd64",
            "linux(+a++b)/amd64",
            "linux/am$d64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?} parsed");
        }
        let err = "linux/*".parse::<Platform>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid platform \"linux/*\": wildcards are not supported"
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "linux/amd64",
            "linux/arm/v7",
            "linux/arm/v6",
            "linux/arm64",
            "linux/arm64/v8.2",
            "linux/amd64/v3",
            "windows(10.0.17763+win32k)/amd64",
        ] {
            assert_eq!(p(s).to_string(), s);
            assert_eq!(p(&p(s).to_string()), p(s));
        }
        assert_eq!(Platform::default().to_string(), "unknown");
    }

    #[test]
    fn serializes_with_oci_field_names() {
        let w = p("windows(10.0.17763+win32k)/amd64");
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(
            json,
            r#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763","os.features":["win32k"]}"#
        );
        let back: Platform =
            serde_json::from_str(r#"{"architecture":"arm","os":"linux","variant":"v7","extra":1}"#)
                .unwrap();
        assert_eq!(back, Platform::new("linux", "arm", Some("v7")));
        // As written: normalization is the matcher's business.
        let raw: Platform =
            serde_json::from_str(r#"{"architecture":"aarch64","os":"linux"}"#).unwrap();
        assert_eq!(raw.architecture, "aarch64");
        assert_eq!(raw.normalize().architecture, "arm64");
    }

    /// containerd's `TestOnly` table (platforms/compare_test.go), with one deliberate change:
    /// `amd64` does not run `386`.
    #[test]
    fn only_matches_what_the_machine_runs() {
        let table: &[(&str, &[&str], &[&str])] = &[
            (
                "linux/amd64",
                &["linux/amd64"],
                &[
                    "linux/386",
                    "linux/amd64/v2",
                    "linux/arm/v7",
                    "linux/arm64",
                    "windows/amd64",
                    "windows/arm",
                ],
            ),
            (
                "linux/amd64/v2",
                &["linux/amd64", "linux/amd64/v1", "linux/amd64/v2"],
                &[
                    "linux/386",
                    "linux/amd64/v3",
                    "linux/amd64/v4",
                    "linux/arm/v7",
                    "linux/arm64",
                    "windows/amd64",
                ],
            ),
            (
                "linux/386",
                &["linux/386"],
                &[
                    "linux/amd64",
                    "linux/arm/v7",
                    "linux/arm64",
                    "windows/amd64",
                ],
            ),
            (
                "windows/amd64",
                &["windows/amd64", "windows(10.0.17763)/amd64"],
                &["linux/amd64", "linux/arm/v7", "linux/arm64", "windows/arm"],
            ),
            (
                "linux/arm/v8",
                &[
                    "linux/arm",
                    "linux/arm/v5",
                    "linux/arm/v6",
                    "linux/arm/v7",
                    "linux/arm/v8",
                ],
                &["linux/amd64", "linux/arm/v4", "linux/arm64", "windows/arm"],
            ),
            (
                "linux/arm/v7",
                &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7"],
                &[
                    "linux/amd64",
                    "linux/arm/v4",
                    "linux/arm/v8",
                    "linux/arm64",
                    "windows/arm",
                ],
            ),
            (
                "linux/arm/v6",
                &["linux/arm/v5", "linux/arm/v6"],
                &[
                    "linux/arm",
                    "linux/arm/v4",
                    "linux/arm/v7",
                    "linux/arm/v8",
                    "linux/arm64",
                ],
            ),
            (
                "linux/arm/v5",
                &["linux/arm/v5"],
                &["linux/arm", "linux/arm/v4", "linux/arm/v6", "linux/arm/v7"],
            ),
            (
                "linux/arm/v4",
                &["linux/arm/v4"],
                &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7"],
            ),
            (
                "linux/arm64/v9.6",
                &[
                    "linux/arm",
                    "linux/arm/v5",
                    "linux/arm/v8",
                    "linux/arm64",
                    "linux/arm64/v8",
                    "linux/arm64/v8.1",
                    "linux/arm64/v8.9",
                    "linux/arm64/v9",
                    "linux/arm64/v9.0",
                    "linux/arm64/v9.5",
                    "linux/arm64/v9.6",
                ],
                &[
                    "linux/amd64",
                    "linux/arm/v4",
                    "windows/arm",
                    "linux/arm64/v8.10",
                    "linux/arm64/v9.7",
                ],
            ),
            (
                "linux/arm64/v9",
                &[
                    "linux/arm",
                    "linux/arm/v8",
                    "linux/arm64",
                    "linux/arm64/v8",
                    "linux/arm64/v8.5",
                    "linux/arm64/v9",
                    "linux/arm64/v9.0",
                ],
                &[
                    "linux/amd64",
                    "linux/arm/v4",
                    "linux/arm64/v8.6",
                    "linux/arm64/v9.1",
                ],
            ),
            (
                "linux/arm64/v8.1",
                &[
                    "linux/arm",
                    "linux/arm/v8",
                    "linux/arm64",
                    "linux/arm64/v8",
                    "linux/arm64/v8.1",
                ],
                &[
                    "linux/amd64",
                    "linux/arm/v4",
                    "linux/arm/v9",
                    "linux/arm64/v8.2",
                    "linux/arm64/v9",
                ],
            ),
            (
                "linux/arm64",
                &[
                    "linux/arm",
                    "linux/arm/v5",
                    "linux/arm/v6",
                    "linux/arm/v7",
                    "linux/arm/v8",
                    "linux/arm64",
                    "linux/arm64/v8",
                    "linux/aarch64",
                ],
                &[
                    "linux/amd64",
                    "linux/arm/v4",
                    "linux/arm/v9",
                    "linux/arm64/v8.1",
                    "linux/arm64/v9",
                    "windows/arm64",
                ],
            ),
        ];
        for (machine, yes, no) in table {
            let m = Matcher::only(&p(machine));
            for s in *yes {
                assert!(m.matches(&p(s)), "{machine} should run {s}");
            }
            for s in *no {
                assert!(!m.matches(&p(s)), "{machine} should not run {s}");
            }
        }
    }

    #[test]
    fn exact_matches_only_the_normalized_platform() {
        let m = Matcher::exact(&p("linux/arm/v7"));
        assert!(m.matches(&p("linux/arm")));
        assert!(m.matches(&p("linux/armhf")));
        assert!(!m.matches(&p("linux/arm/v6")));
        let m = Matcher::exact(&p("linux/arm64"));
        assert!(m.matches(&p("linux/arm64/v8")));
        assert!(!m.matches(&p("linux/arm/v8")));
        let m = Matcher::exact(&p("linux/amd64/v3"));
        assert!(!m.matches(&p("linux/amd64")));
    }

    #[test]
    fn features_must_be_offered() {
        let m = Matcher::only(&p("linux(+gpu+simd)/amd64"));
        assert!(m.matches(&p("linux/amd64")));
        assert!(m.matches(&p("linux(+gpu)/amd64")));
        assert!(m.matches(&p("linux(+simd+gpu)/amd64")));
        assert!(!m.matches(&p("linux(+erofs)/amd64")));
        // More matching features win.
        assert_eq!(
            m.compare(&p("linux(+gpu)/amd64"), &p("linux/amd64")),
            Ordering::Less
        );
        let plain = Matcher::only(&p("linux/amd64"));
        assert!(!plain.matches(&p("linux(+gpu)/amd64")));
    }

    #[test]
    fn windows_os_version_compares_the_build() {
        let m = Matcher::only(&p("windows(10.0.17763)/amd64"));
        assert!(m.matches(&p("windows(10.0.17763.1234)/amd64")));
        assert!(m.matches(&p("windows/amd64")));
        assert!(!m.matches(&p("windows(10.0.20348)/amd64")));
        // Linux ignores it.
        let l = Matcher::only(&p("linux(5.15)/amd64"));
        assert!(l.matches(&p("linux(6.1)/amd64")));
    }

    #[test]
    fn prefers_the_closest_variant() {
        let m = Matcher::only(&p("linux/arm/v7"));
        let mut candidates = vec![p("linux/arm/v5"), p("linux/arm/v7"), p("linux/arm/v6")];
        candidates.sort_by(|a, b| m.compare(a, b));
        assert_eq!(
            candidates,
            [p("linux/arm/v7"), p("linux/arm/v6"), p("linux/arm/v5")]
        );
        let m = Matcher::only(&p("linux/arm64"));
        assert_eq!(
            m.compare(&p("linux/arm64/v8"), &p("linux/arm/v7")),
            Ordering::Less
        );
        assert_eq!(
            m.compare(&p("linux/arm/v8"), &p("linux/arm/v7")),
            Ordering::Less
        );
        assert_eq!(
            m.compare(&p("linux/amd64"), &p("linux/arm/v5")),
            Ordering::Greater
        );
        let m = Matcher::only(&p("linux/amd64/v3"));
        assert_eq!(m.rank(&p("linux/amd64/v3")), Some(0));
        assert_eq!(m.rank(&p("linux/amd64/v2")), Some(1));
        assert_eq!(m.rank(&p("linux/amd64")), Some(2));
    }

    fn entry(
        platform: Option<&str>,
        attestation: bool,
    ) -> (Option<Platform>, BTreeMap<String, String>) {
        let mut annotations = BTreeMap::new();
        if attestation {
            annotations.insert(
                REFERENCE_TYPE_ANNOTATION.into(),
                ATTESTATION_MANIFEST.into(),
            );
            annotations.insert("vnd.docker.reference.digest".into(), "sha256:00".into());
        }
        (platform.map(p), annotations)
    }

    #[test]
    fn orders_index_entries_and_skips_attestations() {
        let entries = [
            entry(Some("linux/amd64"), false),
            entry(Some("linux/arm/v6"), false),
            entry(Some("linux/arm64"), false),
            entry(Some("linux/arm/v7"), false),
            entry(None, true),
            entry(Some("linux/arm64"), true),
            entry(None, false),
        ];
        let refs = || entries.iter().map(|(p, a)| (p.as_ref(), a));
        let m = Matcher::only(&p("linux/arm/v7"));
        assert_eq!(m.order(refs()), [3, 1, 6]);
        let m = Matcher::only(&p("linux/arm64"));
        assert_eq!(m.order(refs()), [2, 3, 1, 6]);
        let m = Matcher::only(&p("linux/amd64"));
        assert_eq!(m.order(refs()), [0, 6]);
        assert_eq!(Matcher::all().order(refs()), [0, 1, 2, 3, 6]);
        let m = Matcher::ordered([p("linux/arm64"), p("linux/amd64")]);
        assert_eq!(m.order(refs()), [2, 0, 6]);

        let unknown: Platform =
            serde_json::from_str(r#"{"architecture":"unknown","os":"unknown"}"#).unwrap();
        assert!(unknown.is_unknown());
        let (_, att) = entry(None, true);
        assert!(is_attestation(&att));
        assert!(!Matcher::all().matches_entry(Some(&unknown), &att));
        assert!(!Matcher::exact(&unknown).matches_entry(Some(&unknown), &att));
        assert!(!Matcher::host().matches(&unknown));
    }

    #[test]
    fn host_is_normalized_and_runs_itself() {
        let host = Platform::host();
        assert_eq!(host, host.normalize());
        assert!(Matcher::host().matches(&host));
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        assert_eq!(host.to_string(), "linux/amd64");
        #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
        assert_eq!(host.to_string(), "linux/arm64");
    }
}
