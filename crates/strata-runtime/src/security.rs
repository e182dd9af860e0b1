//! A container's confinement: capabilities, seccomp, no-new-privileges, AppArmor, and what
//! `--privileged` lifts (Docker's semantics for each).
//!
//! By default a container gets Docker's 14 capabilities and strata's built-in seccomp profile
//! (Docker's default policy, see [`crate::seccomp`]). Where the kernel has AppArmor, a
//! container runs under the profile `--security-opt apparmor=NAME` names, or else strata's own
//! `strata-default` (loaded on first use, see [`crate::apparmor`]) as Docker's containers run
//! under `docker-default`; `--privileged` runs unconfined. On a kernel without AppArmor,
//! naming a profile is an error rather than silently ignored.

use std::path::Path;

use serde_json::{Value, json};

use crate::caps::{self, CapError};
use crate::seccomp::{self, Profile, SeccompError, Target};

/// `--security-opt seccomp=…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// strata's built-in profile (`builtin`, or nothing said).
    #[default]
    Builtin,
    /// No filter (`unconfined`).
    Unconfined,
    /// A profile in Docker's JSON format (the text of `seccomp=FILE`).
    Profile(String),
}

/// The security flags of `create` and `run`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
    /// `apparmor=PROFILE`.
    pub apparmor: Option<String>,
    /// The `--security-opt`s as given (a seccomp file's text in place of its path), as
    /// `inspect` shows them.
    pub opts: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    #[error("invalid --security-opt: {0:?}")]
    BadOpt(String),
    #[error(
        "invalid --security-opt {0:?}: seccomp takes \"unconfined\", \"builtin\" or the path of a profile file"
    )]
    BadSeccomp(String),
    #[error(
        "--security-opt apparmor={0}: AppArmor is not enabled in this kernel, so no AppArmor profile can be applied (remove the option; containers here run without AppArmor)"
    )]
    NoAppArmor(String),
    #[error(
        "--security-opt label: SELinux labels are not supported by strata (the kernel's SELinux is not used)"
    )]
    Label,
    #[error("seccomp is not enabled in this kernel, cannot run a custom seccomp profile")]
    NoSeccomp,
    #[error(transparent)]
    Cap(#[from] CapError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error("list host devices for --privileged: {0}")]
    Devices(#[source] std::io::Error),
    #[error(transparent)]
    AppArmorLoad(#[from] crate::apparmor::LoadError),
}

impl Security {
    /// Applies one `--security-opt` as Docker reads it (`KEY=VALUE`, or `no-new-privileges`
    /// alone). A `seccomp` value that is not `unconfined` or `builtin` must already be the
    /// profile's JSON text (the CLI reads the file).
    pub fn add_opt(&mut self, opt: &str) -> Result<(), SecurityError> {
        self.parse_opt(opt)?;
        self.opts.push(opt.to_owned());
        Ok(())
    }

    fn parse_opt(&mut self, opt: &str) -> Result<(), SecurityError> {
        if opt == "no-new-privileges" {
            self.no_new_privileges = true;
            return Ok(());
        }
        let (key, value) = opt
            .split_once('=')
            .ok_or_else(|| SecurityError::BadOpt(opt.to_owned()))?;
        match key {
            "no-new-privileges" => {
                self.no_new_privileges = match value {
                    "true" | "1" | "t" | "T" | "TRUE" | "True" => true,
                    "false" | "0" | "f" | "F" | "FALSE" | "False" => false,
                    _ => return Err(SecurityError::BadOpt(opt.to_owned())),
                }
            }
            "seccomp" => {
                self.seccomp = match value {
                    "unconfined" => Seccomp::Unconfined,
                    "builtin" => Seccomp::Builtin,
                    v if v.trim_start().starts_with('{') => Seccomp::Profile(v.to_owned()),
                    _ => return Err(SecurityError::BadSeccomp(opt.to_owned())),
                }
            }
            "apparmor" => self.apparmor = Some(value.to_owned()),
            "label" => return Err(SecurityError::Label),
            _ => return Err(SecurityError::BadOpt(opt.to_owned())),
        }
        Ok(())
    }

    /// Sets the process's capabilities, no-new-privileges and AppArmor profile and the
    /// seccomp filter in the spec `v`; with `--privileged`, also lifts the masked and
    /// read-only paths, makes `/sys` and the cgroup mount writable and gives every host device.
    pub(crate) fn apply(&self, v: &mut Value) -> Result<(), SecurityError> {
        let caps = caps::effective(&self.cap_add, &self.cap_drop, self.privileged)?;
        v["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps});
        v["process"]["noNewPrivileges"] = json!(self.no_new_privileges);
        if let Some(profile) = self.apparmor_profile(apparmor_enabled())? {
            if profile == crate::apparmor::DEFAULT_PROFILE {
                crate::apparmor::ensure_default_loaded()?;
            }
            v["process"]["apparmorProfile"] = json!(profile);
        }
        if let Some(filter) = self.seccomp_filter(&caps)? {
            v["linux"]["seccomp"] = filter;
        }
        if self.privileged {
            v["linux"]["maskedPaths"] = json!([]);
            v["linux"]["readonlyPaths"] = json!([]);
            v["linux"]["devices"] = host_devices_json()?;
            v["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
            if let Some(mounts) = v["mounts"].as_array_mut() {
                for m in mounts
                    .iter_mut()
                    .filter(|m| m["destination"] == "/sys" || m["type"] == "cgroup")
                {
                    if let Some(opts) = m["options"].as_array_mut() {
                        opts.retain(|o| o != "ro");
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks everything [`Security::apply`] would refuse, before anything is made.
    pub fn validate(&self) -> Result<(), SecurityError> {
        let caps = caps::effective(&self.cap_add, &self.cap_drop, self.privileged)?;
        self.apparmor_profile(apparmor_enabled())?;
        self.seccomp_filter(&caps)?;
        Ok(())
    }

    /// The AppArmor profile to run under, given whether the kernel has AppArmor (`enabled`):
    /// the one named, else `unconfined` for `--privileged` and `strata-default` for the rest,
    /// as Docker chooses. Without AppArmor only `unconfined` can be honoured (Docker ignores
    /// the option there; a silently unapplied profile is not safe).
    pub fn apparmor_profile(&self, enabled: bool) -> Result<Option<&str>, SecurityError> {
        match self.apparmor.as_deref() {
            Some(p) if enabled => Ok(Some(p)),
            Some(p) if p != "unconfined" => Err(SecurityError::NoAppArmor(p.to_owned())),
            Some(_) => Ok(None),
            None if !enabled => Ok(None),
            None if self.privileged => Ok(Some("unconfined")),
            None => Ok(Some(crate::apparmor::DEFAULT_PROFILE)),
        }
    }

    /// Docker's choice: unconfined, or privileged without a profile of its own, runs
    /// unfiltered; a kernel without seccomp runs the default unfiltered (with a warning) and
    /// refuses a custom profile.
    fn seccomp_filter(&self, caps: &[String]) -> Result<Option<Value>, SecurityError> {
        let profile = match &self.seccomp {
            Seccomp::Unconfined => return Ok(None),
            Seccomp::Builtin if self.privileged => return Ok(None),
            Seccomp::Builtin => seccomp::builtin(),
            Seccomp::Profile(text) => Profile::from_docker_json(text)?,
        };
        if !seccomp::kernel_supports_seccomp() {
            if self.seccomp == Seccomp::Builtin {
                tracing::warn!(
                    "seccomp is not enabled in this kernel: running without the default profile"
                );
                return Ok(None);
            }
            return Err(SecurityError::NoSeccomp);
        }
        Ok(profile.resolve(&Target::host(caps))?)
    }
}

/// Whether the kernel has AppArmor enabled.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}

/// Every device node of the host, as a spec's `linux.devices`.
pub(crate) fn host_devices_json() -> Result<Value, SecurityError> {
    Ok(json!(host_devices(Path::new("/dev"))?))
}

/// The host's device nodes under `dir` for a privileged container, as Docker gives them
/// (not the per-container `pts`, `shm`, `mqueue`, nor `console`, nor fifos).
fn host_devices(dir: &Path) -> Result<Vec<Value>, SecurityError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(SecurityError::Devices)?;
    for entry in entries {
        let entry = entry.map_err(SecurityError::Devices)?;
        let name = entry.file_name();
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue; // gone since the listing
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            let skip = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
            if !skip.iter().any(|s| name == *s) {
                out.extend(host_devices(&path)?);
            }
            continue;
        }
        let kind = if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else {
            continue;
        };
        if name == "console" {
            continue;
        }
        let rdev = meta.rdev();
        out.push(json!({
            "path": path,
            "type": kind,
            "major": rustix::fs::major(rdev),
            "minor": rustix::fs::minor(rdev),
            "fileMode": meta.mode() & 0o7777,
            "uid": meta.uid(),
            "gid": meta.gid(),
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec() -> Value {
        json!({
            "process": {},
            "mounts": [
                {"destination": "/sys", "type": "sysfs", "options": ["nosuid", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "options": ["ro", "nosuid"]},
                {"destination": "/data", "type": "bind", "options": ["rbind", "ro"]},
            ],
            "linux": {"maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"], "resources": {"devices": []}},
        })
    }

    #[test]
    fn security_opts_as_docker_reads_them() {
        let mut s = Security::default();
        s.add_opt("no-new-privileges").unwrap();
        assert!(s.no_new_privileges);
        s.add_opt("no-new-privileges=false").unwrap();
        assert!(!s.no_new_privileges);
        s.add_opt("seccomp=unconfined").unwrap();
        assert_eq!(s.seccomp, Seccomp::Unconfined);
        s.add_opt("seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}")
            .unwrap();
        assert!(matches!(s.seccomp, Seccomp::Profile(_)));
        s.add_opt("apparmor=foo").unwrap();
        assert_eq!(s.apparmor.as_deref(), Some("foo"));
        for bad in [
            "nope",
            "no-new-privileges=maybe",
            "seccomp=/x.json",
            "frob=1",
            "label=x",
        ] {
            assert!(s.add_opt(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_confinement() {
        let mut v = spec();
        Security::default().apply(&mut v).unwrap();
        assert_eq!(
            v["process"]["capabilities"]["bounding"],
            json!(caps::DEFAULT)
        );
        assert_eq!(v["process"]["noNewPrivileges"], false);
        if seccomp::kernel_supports_seccomp() {
            assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        }
        assert_eq!(v["linux"]["maskedPaths"], json!(["/proc/kcore"]));
        assert_eq!(v["mounts"][0]["options"], json!(["nosuid", "ro"]));
    }

    #[test]
    fn privileged_lifts_everything() {
        let mut v = spec();
        let s = Security {
            privileged: true,
            ..Security::default()
        };
        s.apply(&mut v).unwrap();
        assert_eq!(v["process"]["capabilities"]["bounding"], json!(caps::all()));
        assert!(v["linux"].get("seccomp").is_none());
        assert_eq!(v["linux"]["maskedPaths"], json!([]));
        assert_eq!(v["linux"]["readonlyPaths"], json!([]));
        assert_eq!(
            v["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        assert_eq!(v["mounts"][0]["options"], json!(["nosuid"]));
        assert_eq!(v["mounts"][1]["options"], json!(["nosuid"]));
        // A user's read-only bind stays read-only.
        assert_eq!(v["mounts"][2]["options"], json!(["rbind", "ro"]));
        let devices = v["linux"]["devices"].as_array().unwrap();
        assert!(devices.iter().any(|d| d["path"] == "/dev/null"));
        assert!(!devices.iter().any(|d| d["path"] == "/dev/console"));
    }

    /// A named profile is applied where the kernel has AppArmor and refused where it has not;
    /// `unconfined` works on both (this host's kind is the branch that runs).
    #[test]
    fn apparmor_profile_applied_or_refused_by_the_kernel() {
        let s = Security {
            apparmor: Some("docker-default".into()),
            ..Security::default()
        };
        let mut v = spec();
        let r = s.apply(&mut v);
        if apparmor_enabled() {
            r.unwrap();
            assert_eq!(v["process"]["apparmorProfile"], "docker-default");
        } else {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("AppArmor is not enabled"), "{e}");
        }
        let unconfined = Security {
            apparmor: Some("unconfined".into()),
            ..Security::default()
        };
        let mut v = spec();
        unconfined.apply(&mut v).unwrap();
        let want = if apparmor_enabled() {
            json!("unconfined")
        } else {
            Value::Null
        };
        assert_eq!(v["process"]["apparmorProfile"], want);
    }

    #[test]
    fn with_apparmor_the_default_profile_applies_unless_named_or_privileged() {
        let plain = Security::default();
        assert_eq!(
            plain.apparmor_profile(true).unwrap(),
            Some("strata-default")
        );
        assert_eq!(plain.apparmor_profile(false).unwrap(), None);
        let privileged = Security {
            privileged: true,
            ..Security::default()
        };
        assert_eq!(
            privileged.apparmor_profile(true).unwrap(),
            Some("unconfined")
        );
        let named = Security {
            apparmor: Some("my-profile".into()),
            ..Security::default()
        };
        assert_eq!(named.apparmor_profile(true).unwrap(), Some("my-profile"));
        assert!(named.apparmor_profile(false).is_err());
    }
}
