//! Seccomp: which syscalls a container may make.
//!
//! A [`Profile`] is a list of rules with conditions on the container's capabilities and the
//! host's architecture and kernel, the model of Docker's profile JSON. Two sources make one:
//! strata's built-in default ([`builtin`], Docker's default policy kept as our own data in
//! `default.policy`) and a user's Docker-format profile file ([`Profile::from_docker_json`],
//! `--security-opt seccomp=FILE`). [`Profile::resolve`] keeps the rules that apply to a
//! container and gives the OCI `linux.seccomp` for the runtime, which compiles it to BPF.

mod policy;

use serde::Deserialize;
use serde_json::{Value, json};

/// What a profile could not be made of.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    #[error("decoding seccomp profile failed: {0}")]
    Json(#[source] serde_json::Error),
    #[error("seccomp profile, line {line}: {reason}")]
    Policy { line: usize, reason: String },
    #[error(
        "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'"
    )]
    ArchAndArchMap,
    #[error(
        "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'"
    )]
    NameAndNames,
    #[error("seccomp profile: {0}")]
    Invalid(String),
}

/// A seccomp profile before it is fitted to a container (Docker's profile format).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(default)]
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub arch_map: Vec<ArchMap>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub listener_path: Option<String>,
    #[serde(default)]
    pub listener_metadata: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub syscalls: Vec<Rule>,
}

/// The libseccomp architectures to filter on a host of `architecture`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sub_architectures: Vec<String>,
}

/// Syscalls, what happens when they are made, and when the rule applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Docker's older single-name form.
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub names: Vec<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<Arg>,
    #[serde(default)]
    pub includes: Filter,
    #[serde(default)]
    pub excludes: Filter,
}

/// A comparison of one syscall argument.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// Conditions of a rule: capabilities in the bounding set, host architectures (Go names),
/// the least kernel version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, deserialize_with = "null_as_default")]
    pub caps: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub arches: Vec<String>,
    #[serde(default, deserialize_with = "kernel_version")]
    pub min_kernel: Option<(u32, u32)>,
}

/// What a profile is fitted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The container's bounding capabilities (`CAP_…`).
    pub caps: &'a [String],
    /// The host architecture as Go names it (`amd64`, `arm64`, ...).
    pub arch: &'a str,
    /// The host kernel's version and major revision.
    pub kernel: (u32, u32),
}

impl Target<'_> {
    /// The host's architecture and kernel, for a container with `caps`.
    pub fn host(caps: &[String]) -> Target<'_> {
        Target {
            caps,
            arch: host_arch(),
            kernel: kernel_version_of(&rustix::system::uname().release().to_string_lossy()),
        }
    }
}

/// strata's default profile: Docker's default policy.
pub fn builtin() -> Profile {
    // The policy is compiled in and parsed in a unit test: a parse error here is a bug.
    policy::parse(include_str!("default.policy")).unwrap_or_default()
}

/// Whether this kernel can filter syscalls (`Seccomp:` in `/proc/self/status`).
pub fn kernel_supports_seccomp() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
}

impl Profile {
    /// A profile in Docker's JSON format (`--security-opt seccomp=FILE`).
    pub fn from_docker_json(text: &str) -> Result<Profile, SeccompError> {
        serde_json::from_str(text).map_err(SeccompError::Json)
    }

    /// The OCI `linux.seccomp` of this profile for `target`, or `None` for a profile that
    /// filters nothing (no default action and no rules, as Docker reads it).
    pub fn resolve(&self, target: &Target<'_>) -> Result<Option<Value>, SeccompError> {
        if self.default_action.is_empty() && self.syscalls.is_empty() {
            return Ok(None);
        }
        if !self.architectures.is_empty() && !self.arch_map.is_empty() {
            return Err(SeccompError::ArchAndArchMap);
        }
        let mut architectures = self.architectures.clone();
        if let Some(native) = scmp_arch(target.arch)
            && let Some(m) = self.arch_map.iter().find(|m| m.architecture == native)
        {
            architectures.push(m.architecture.clone());
            architectures.extend(m.sub_architectures.iter().cloned());
        }
        let mut syscalls = Vec::new();
        for rule in &self.syscalls {
            let names = match (rule.name.is_empty(), rule.names.is_empty()) {
                (false, false) => return Err(SeccompError::NameAndNames),
                (false, true) => vec![rule.name.clone()],
                _ => rule.names.clone(),
            };
            if !rule.applies(target) {
                continue;
            }
            let mut s = json!({"names": names, "action": rule.action});
            if let Some(e) = rule.errno_ret {
                s["errnoRet"] = json!(e);
            }
            if !rule.args.is_empty() {
                let args: Vec<Value> = rule
                    .args
                    .iter()
                    .map(|a| json!({"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}))
                    .collect();
                s["args"] = json!(args);
            }
            syscalls.push(s);
        }
        let default_action = if self.default_action.is_empty() {
            // Docker passes an empty default on; the runtime spec requires one.
            return Err(SeccompError::Invalid(
                "defaultAction is required when syscalls are listed".into(),
            ));
        } else {
            &self.default_action
        };
        let mut v = json!({"defaultAction": default_action, "syscalls": syscalls});
        if let Some(e) = self.default_errno_ret {
            v["defaultErrnoRet"] = json!(e);
        }
        if !architectures.is_empty() {
            v["architectures"] = json!(architectures);
        }
        if !self.flags.is_empty() {
            v["flags"] = json!(self.flags);
        }
        if let Some(p) = &self.listener_path {
            v["listenerPath"] = json!(p);
        }
        if let Some(m) = &self.listener_metadata {
            v["listenerMetadata"] = json!(m);
        }
        // Actions, operators, architectures and flags are checked here, with a clear error,
        // rather than when the whole spec is assembled.
        serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(v.clone())
            .map_err(|e| SeccompError::Invalid(e.to_string()))?;
        Ok(Some(v))
    }
}

impl Rule {
    /// Docker's conditions: every `includes` holds, no `excludes` does.
    fn applies(&self, t: &Target<'_>) -> bool {
        let has = |c: &String| t.caps.contains(c);
        let at_least = |v: (u32, u32)| t.kernel >= v;
        let inc = &self.includes;
        let exc = &self.excludes;
        (inc.arches.is_empty() || inc.arches.iter().any(|a| a == t.arch))
            && inc.caps.iter().all(has)
            && inc.min_kernel.is_none_or(at_least)
            && !exc.arches.iter().any(|a| a == t.arch)
            && !exc.caps.iter().any(has)
            && !exc.min_kernel.is_some_and(at_least)
    }
}

/// The host architecture as Go (and so Docker's profiles) name it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        other => other,
    }
}

/// The libseccomp name of a Go architecture.
fn scmp_arch(go: &str) -> Option<&'static str> {
    Some(match go {
        "386" | "x86" => "SCMP_ARCH_X86",
        "amd64" => "SCMP_ARCH_X86_64",
        "arm" => "SCMP_ARCH_ARM",
        "arm64" => "SCMP_ARCH_AARCH64",
        "loong64" => "SCMP_ARCH_LOONGARCH64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mips64le" => "SCMP_ARCH_MIPSEL64",
        "ppc64" => "SCMP_ARCH_PPC64",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "s390x" => "SCMP_ARCH_S390X",
        _ => return None,
    })
}

/// `6.18.44-fc` → (6, 18); anything unreadable is (0, 0), which no `minKernel` reaches.
fn kernel_version_of(release: &str) -> (u32, u32) {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `"4.8"` → (4, 8), as Docker's `minKernel`; `""` is none.
fn kernel_version<'de, D>(d: D) -> Result<Option<(u32, u32)>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if s.is_empty() {
        return Ok(None);
    }
    parse_kernel(&s).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "invalid kernel version: {s}, expected \"<kernel>.<major>\""
        ))
    })
}

fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('.')?;
    let v = (a.parse().ok()?, b.parse().ok()?);
    (v != (0, 0)).then_some(v)
}

#[cfg(test)]
mod tests;
