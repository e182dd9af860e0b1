//! The process a lease belongs to. A pull, load, commit... leases what it writes until the
//! record that keeps it; if the process dies first (`kill -9`, the OOM killer, a full disk
//! that stops its cleanup), nothing will ever end the lease but its expiry, a day later for
//! a pull. So every lease names its owner (pid, start time, boot id, pid namespace), and the
//! collector treats a lease whose owner is gone as over: it pins nothing any more, except
//! the partial downloads it holds, which a later pull resumes until the lease expires.
//!
//! "Gone" is decided only when sure: another boot, or no process with that pid and start time
//! in the same pid namespace. A lease without these labels (made by an older strata), or whose
//! owner cannot be looked up (another pid namespace, `/proc` hidden), is left to its expiry.

use std::io;
use std::sync::OnceLock;

use strata_metadata::Labels;

// The owner's start time tells a pid reused by another process; its pid namespace, whether
// its pid means anything here.
use strata_types::labels::{OWNER_BOOT, OWNER_PID, OWNER_PIDNS, OWNER_START};

/// The owner labels of a lease this process makes. Empty when they cannot be read (no
/// `/proc`): the lease then lasts until its expiry, as before.
pub fn owner_labels() -> Labels {
    let (Some(boot), Ok(Some(start))) = (boot_id(), start_time(std::process::id())) else {
        return Labels::new();
    };
    let mut labels = Labels::new();
    labels.insert(OWNER_PID.into(), std::process::id().to_string());
    labels.insert(OWNER_START.into(), start.to_string());
    labels.insert(OWNER_BOOT.into(), boot.clone());
    if let Some(ns) = pid_ns() {
        labels.insert(OWNER_PIDNS.into(), ns.clone());
    }
    labels
}

/// Whether the process that made a lease (from its labels) is known to be dead.
pub fn owner_dead(labels: &Labels) -> bool {
    let (Some(pid), Some(start), Some(boot)) = (
        labels.get(OWNER_PID).and_then(|p| p.parse::<u32>().ok()),
        labels.get(OWNER_START).and_then(|s| s.parse::<u64>().ok()),
        labels.get(OWNER_BOOT),
    ) else {
        return false;
    };
    let Some(our_boot) = boot_id() else {
        return false;
    };
    if boot != our_boot {
        return true;
    }
    if labels.get(OWNER_PIDNS) != pid_ns() {
        return false;
    }
    match start_time(pid) {
        Ok(Some(now)) => now != start,
        Ok(None) => true,
        Err(_) => false,
    }
}

/// The owner's pid, for messages.
pub fn owner_pid(labels: &Labels) -> Option<&str> {
    labels.get(OWNER_PID).map(String::as_str)
}

fn boot_id() -> Option<&'static String> {
    static BOOT: OnceLock<Option<String>> = OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    })
    .as_ref()
}

fn pid_ns() -> Option<&'static String> {
    static NS: OnceLock<Option<String>> = OnceLock::new();
    NS.get_or_init(|| {
        std::fs::read_link("/proc/self/ns/pid")
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    })
    .as_ref()
}

/// The start time of process `pid` (clock ticks after boot); `None`: no such process.
fn start_time(pid: u32) -> io::Result<Option<u64>> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so fields are
    // counted after the last `)`; the start time is field 22, the 20th after it.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(|| io::Error::other(format!("unexpected /proc/{pid}/stat")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_dead() {
        let mine = owner_labels();
        assert!(!mine.is_empty(), "needs /proc");
        assert!(!owner_dead(&mine));

        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = start_time(pid).unwrap();
        child.wait().unwrap();
        let mut theirs = mine.clone();
        theirs.insert(OWNER_PID.into(), pid.to_string());
        if let Some(start) = start {
            theirs.insert(OWNER_START.into(), start.to_string());
        }
        assert!(owner_dead(&theirs), "reaped: gone");

        // Same pid, another start time: the pid was reused.
        let mut reused = mine.clone();
        reused.insert(OWNER_START.into(), "1".into());
        assert!(owner_dead(&reused));
        // Another boot.
        let mut rebooted = mine.clone();
        rebooted.insert(OWNER_BOOT.into(), "another-boot".into());
        assert!(owner_dead(&rebooted));
        // Another pid namespace, or no labels: not for us to judge.
        let mut elsewhere = theirs.clone();
        elsewhere.insert(OWNER_PIDNS.into(), "pid:[1]".into());
        assert!(!owner_dead(&elsewhere));
        assert!(!owner_dead(&Labels::new()));
    }
}
