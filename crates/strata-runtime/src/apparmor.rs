//! strata's default AppArmor profile, `strata-default`, for kernels that have AppArmor.
//!
//! Docker confines every container that names no profile with its `docker-default`; strata
//! does the same with a profile of its own with the same intent: the container may use files,
//! the network and its capabilities as the rest of its confinement allows, but may not mount,
//! write the host's kernel knobs under `/proc` and `/sys` (except the cgroup tree, which its
//! mount namespace already narrows), read `/proc/kcore`, firmware or the security filesystem,
//! trace or signal processes outside its own profile, or take signals from them other than
//! from the host's unconfined processes (the monitor, the runtime).
//!
//! The profile is loaded on first use with `apparmor_parser -Kr` (the `apparmor` package),
//! fed on stdin, and not cached: loading it again replaces it in place.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// The name of the profile containers get by default.
pub const DEFAULT_PROFILE: &str = "strata-default";

/// The kernel's list of loaded profiles (`NAME (MODE)` per line).
const PROFILES: &str = "/sys/kernel/security/apparmor/profiles";

/// Why the default profile could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error(
    "AppArmor is enabled in this kernel but strata's default profile {DEFAULT_PROFILE} could \
     not be loaded: {0} (install the apparmor package for apparmor_parser, or run the container \
     with --security-opt apparmor=unconfined)"
)]
pub struct LoadError(String);

/// The text of [`DEFAULT_PROFILE`].
pub fn default_profile() -> String {
    let name = DEFAULT_PROFILE;
    format!(
        r#"# strata's default container profile, written by strata; loading it again replaces it.
#include <tunables/global>

profile {name} flags=(attach_disconnected,mediate_deleted) {{
  #include <abstractions/base>

  # What the rest of the container's confinement (capabilities, seccomp) allows.
  network,
  capability,
  file,
  umount,

  # Mounting is the host's business.
  deny mount,

  # /proc: no writes to its top-level files or to other processes' entries, and of the
  # sysctls only the kernel.shm* ones a namespace owns.
  deny @{{PROC}}/* w,
  deny @{{PROC}}/{{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}}/** w,
  deny @{{PROC}}/sys/[^k]** w,
  deny @{{PROC}}/sys/kernel/{{?,??,[^s][^h][^m]**}} w,
  deny @{{PROC}}/sysrq-trigger rwklx,
  deny @{{PROC}}/kcore rwklx,

  # /sys: read-only except the cgroup tree; firmware and the security filesystem unreadable.
  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,

  # Signals and tracing stay among the container's own processes; the host's unconfined
  # processes (its monitor, the runtime) may still signal it.
  signal (receive) peer=unconfined,
  signal (send,receive) peer={name},
  ptrace (trace,read,tracedby,readby) peer={name},
}}
"#
    )
}

/// Whether the kernel has `name` loaded.
fn loaded(name: &str) -> bool {
    std::fs::read_to_string(PROFILES).is_ok_and(|list| {
        list.lines()
            .any(|l| l.split(" (").next().is_some_and(|n| n == name))
    })
}

/// Loads [`DEFAULT_PROFILE`] unless the kernel has it already.
pub fn ensure_default_loaded() -> Result<(), LoadError> {
    if loaded(DEFAULT_PROFILE) {
        return Ok(());
    }
    run_parser(&["-Kr"], &default_profile()).map(drop)
}

/// Runs `apparmor_parser ARGS` with `profile` on stdin; its stdout.
fn run_parser(args: &[&str], profile: &str) -> Result<Vec<u8>, LoadError> {
    let parser = ["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("apparmor_parser");
    let mut child = Command::new(parser)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LoadError(format!("run {parser}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(profile.as_bytes())
            .map_err(|e| LoadError(format!("write the profile to {parser}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| LoadError(format!("wait for {parser}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(LoadError(format!(
            "{parser} {}: {}",
            out.status,
            err.trim()
        )));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The profile compiles: `apparmor_parser -S` builds the binary policy without loading it,
    /// so this runs on kernels without AppArmor too.
    #[test]
    fn the_default_profile_compiles() {
        if !strata_testutil::require_tool("apparmor_parser") {
            return;
        }
        let binary = run_parser(&["-QTK", "-S"], &default_profile()).unwrap();
        assert!(!binary.is_empty());
        // A broken profile is refused: the check above can fail.
        let broken = default_profile().replace("deny mount,", "deny mount");
        assert!(run_parser(&["-QTK", "-S"], &broken).is_err());
    }

    #[test]
    fn the_profile_names_itself_as_its_peer() {
        let p = default_profile();
        assert!(p.contains(&format!("profile {DEFAULT_PROFILE} flags=")));
        assert!(p.contains(&format!(
            "ptrace (trace,read,tracedby,readby) peer={DEFAULT_PROFILE},"
        )));
        assert!(
            !p.contains("{{") && !p.contains("}}"),
            "format escapes left: {p}"
        );
    }
}
