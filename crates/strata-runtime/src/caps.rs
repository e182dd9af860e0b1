//! Capabilities: Docker's default set and `--cap-add`, `--cap-drop`, `--privileged`.

/// Every capability by number (`capabilities(7)`).
const KNOWN: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default set.
pub const DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CapError {
    /// Docker's wording.
    #[error("unknown capability: {0:?}")]
    Unknown(String),
    #[error(
        "capability not supported by your kernel or not available in the current environment: {0:?}"
    )]
    Unsupported(String),
}

/// The capabilities available here, as Docker counts them: those this process holds
/// (a kernel may know more than a sandboxed root has; the runtime could not grant those),
/// else every capability up to `/proc/sys/kernel/cap_last_cap`.
pub fn all() -> Vec<String> {
    let held = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        });
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(KNOWN.len() - 1);
    KNOWN
        .iter()
        .enumerate()
        .filter(|(i, _)| match held {
            Some(bits) if bits != 0 => bits & (1 << i) != 0,
            _ => *i <= last,
        })
        .map(|(_, c)| (*c).to_owned())
        .collect()
}

/// `net_admin`, `NET_ADMIN`, `cap_net_admin` → `CAP_NET_ADMIN`; `all` → `ALL`.
pub fn normalize(names: &[String]) -> Result<Vec<String>, CapError> {
    let available = all();
    let mut out = Vec::new();
    for name in names {
        let mut c = name.to_ascii_uppercase();
        if c != "ALL" {
            if !c.starts_with("CAP_") {
                c = format!("CAP_{c}");
            }
            if !KNOWN.contains(&c.as_str()) {
                return Err(CapError::Unknown(c));
            }
            if !available.contains(&c) {
                return Err(CapError::Unsupported(c));
            }
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// The container's capabilities as Docker makes them: all with `privileged`; else the
/// default set less `drop` plus `add`, where `ALL` in `add` starts from every capability
/// and `ALL` in `drop` from none.
pub fn effective(
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> Result<Vec<String>, CapError> {
    if privileged {
        return Ok(all());
    }
    let add = normalize(add)?;
    let drop = normalize(drop)?;
    let all_of = |v: &[String]| v.iter().any(|c| c == "ALL");
    let base: Vec<String> = if all_of(&add) {
        all()
    } else if all_of(&drop) {
        Vec::new()
    } else {
        DEFAULT.iter().map(|c| (*c).to_owned()).collect()
    };
    let mut caps: Vec<String> = base.into_iter().filter(|c| !drop.contains(c)).collect();
    if !all_of(&add) {
        for c in add {
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn names_are_normalized_as_docker() {
        assert_eq!(
            normalize(&v(&["net_admin", "CAP_SYS_TIME", "Sys_Time", "all"])).unwrap(),
            v(&["CAP_NET_ADMIN", "CAP_SYS_TIME", "ALL"])
        );
        let e = normalize(&v(&["frobnicate"])).unwrap_err().to_string();
        assert_eq!(e, "unknown capability: \"CAP_FROBNICATE\"");
    }

    #[test]
    fn add_and_drop() {
        let caps = effective(&v(&["NET_ADMIN"]), &v(&["chown"]), false).unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_owned()));
        assert!(!caps.contains(&"CAP_CHOWN".to_owned()));
        assert_eq!(caps.len(), DEFAULT.len());
        assert_eq!(
            effective(&v(&["kill"]), &v(&["ALL"]), false).unwrap(),
            v(&["CAP_KILL"])
        );
        let all_but = effective(&v(&["ALL"]), &v(&["SYS_ADMIN"]), false).unwrap();
        assert_eq!(all_but.len(), all().len() - 1);
        assert!(!all_but.contains(&"CAP_SYS_ADMIN".to_owned()));
        assert_eq!(effective(&[], &[], true).unwrap(), all());
        assert_eq!(effective(&[], &[], false).unwrap(), v(DEFAULT));
    }
}
