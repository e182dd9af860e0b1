//! Privilege and external-tool gating for tests.
//!
//! Usage inside a test:
//!
//! ```no_run
//! # use strata_testutil::{require_root, require_tool};
//! # fn t() {
//! if !require_root("mounts overlayfs") || !require_tool("mkfs.btrfs") {
//!     return;
//! }
//! # }
//! ```
//!
//! When the environment variable `STRATA_TEST_REQUIRE_ROOT=1` is set (CI
//! installs everything and runs as root) a missing prerequisite panics instead
//! of skipping, so nothing is silently left untested there. Any other reason to
//! skip goes through [`skip`], which does the same.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Environment variable that turns skips into failures.
pub const REQUIRE_ENV: &str = "STRATA_TEST_REQUIRE_ROOT";

/// Directories searched after `$PATH` (sbin tools are often off a normal
/// user's PATH).
const EXTRA_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Whether `STRATA_TEST_REQUIRE_ROOT=1` is set: every skip is then a failure.
pub fn strict() -> bool {
    std::env::var_os(REQUIRE_ENV).as_deref() == Some(OsStr::new("1"))
}

/// Skips (part of) a test for `reason`: prints `SKIPPED (<reason>)` to stderr, or panics
/// when `STRATA_TEST_REQUIRE_ROOT=1`. Every gate that is not root or a tool goes through
/// this, so that nothing CI expects to run drops itself silently.
///
/// Usage: `if !have_it { strata_testutil::skip("needs the corpus"); return; }`
pub fn skip(reason: &str) {
    if strict() {
        panic!("test skipped ({reason}) but {REQUIRE_ENV}=1");
    }
    eprintln!("SKIPPED ({reason})");
}

/// True when running as root (effective uid 0).
///
/// Otherwise: if `STRATA_TEST_REQUIRE_ROOT=1`, panics; else prints
/// `SKIPPED (needs root: <reason> ...)` to stderr and returns false.
///
/// Usage: `if !require_root("mounts overlayfs") { return; }`
pub fn require_root(reason: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    skip(&format!("needs root: {reason}; runs as uid {euid}"));
    false
}

/// True when the external tool `tool` is an executable found on `$PATH` (or
/// in one of the usual sbin/bin directories).
///
/// Missing tool: panics when `STRATA_TEST_REQUIRE_ROOT=1`, else prints
/// `SKIPPED (needs the tool ...)` to stderr and returns false.
pub fn require_tool(tool: &str) -> bool {
    if find_tool(tool).is_some() {
        return true;
    }
    skip(&format!("needs the tool `{tool}`, not found on PATH"));
    false
}

/// Full path of an executable `tool`: searched on `$PATH`, then in
/// `/usr/local/sbin`, `/usr/sbin`, `/sbin`, `/usr/bin`, `/bin`. A `tool`
/// containing a `/` is checked as a path itself.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    if tool.is_empty() {
        return None;
    }
    if tool.contains('/') {
        let p = PathBuf::from(tool);
        return is_executable(&p).then_some(p);
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("/bin/sh").is_some());
        assert!(find_tool("definitely-not-a-tool-strata-xyz").is_none());
        assert!(find_tool("").is_none());
    }

    #[test]
    fn require_tool_present() {
        assert!(require_tool("sh"));
    }

    #[test]
    fn require_tool_missing_skips_or_panics() {
        let r = std::panic::catch_unwind(|| require_tool("definitely-not-a-tool-strata-xyz"));
        if strict() {
            assert!(r.is_err());
        } else {
            assert!(matches!(r, Ok(false)));
        }
    }
}
