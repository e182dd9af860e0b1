//! Names that no other process, and no earlier run of this one, uses.

/// `<pid>-<nanoseconds>`: for per-operation leases and temporary snapshot keys.
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}
