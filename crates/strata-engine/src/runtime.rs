//! The tokio runtime the synchronous store drives the async registry client
//! ([`strata_remote`]) with. One per command, made at the edge (the CLI), shared by
//! everything the command does so the client's connection pools and tokens live as long as it.

use std::io;
use std::time::Duration;

use crate::store::Store;

/// The store settings (`strata system settings`) for the registry client's low-speed limit:
/// a download under `low-speed-limit` bytes/s for `low-speed-time` is given up.
pub const SETTING_LOW_SPEED_LIMIT: &str = "low-speed-limit";
pub const SETTING_LOW_SPEED_TIME: &str = "low-speed-time";

/// A multi-thread runtime with two workers: enough to overlap network and disk waits without
/// competing with the unpack threads for cores.
pub fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("strata-net")
        .enable_all()
        .build()
}

/// Where per-registry host configuration (containerd's `hosts.toml` layout, see
/// [`strata_remote::hosts`]) is read from unless the store is told otherwise
/// ([`Store::with_hosts_dir`]; the CLI's `$STRATA_HOSTS_DIR`), when it exists.
pub const DEFAULT_HOSTS_DIR: &str = "/etc/strata/certs.d";

/// [`DEFAULT_HOSTS_DIR`] if it is a directory.
pub fn default_hosts_dir() -> Option<std::path::PathBuf> {
    let d = std::path::Path::new(DEFAULT_HOSTS_DIR);
    d.is_dir().then(|| d.to_owned())
}

/// The registry client: credentials from Docker's `config.json` (`$DOCKER_CONFIG`, else
/// `~/.docker`), hosts and limits as `opts` say (see [`store_options`]).
pub fn remote_with(
    opts: strata_remote::RemoteOptions,
) -> Result<strata_remote::Remote, Box<strata_remote::RemoteError>> {
    strata_remote::Remote::new(opts).map_err(Box::new)
}

/// The client options the store asks for: its hosts directory, and the low-speed limit of
/// its settings.
pub fn store_options(
    store: &Store,
) -> Result<strata_remote::RemoteOptions, strata_metadata::MetaError> {
    let (limit, time) = store.db().read(|tx| {
        Ok((
            tx.setting(SETTING_LOW_SPEED_LIMIT)?,
            tx.setting(SETTING_LOW_SPEED_TIME)?,
        ))
    })?;
    let mut opts = strata_remote::RemoteOptions {
        hosts_dir: store.hosts_dir(),
        ..strata_remote::RemoteOptions::default()
    };
    // Values were checked when set; one that no longer parses keeps the default.
    if let Some(limit) = limit.as_deref().and_then(|v| parse_speed(v).ok()) {
        opts.low_speed_limit = limit;
    }
    if let Some(time) = time.as_deref().and_then(|v| parse_speed_time(v).ok()) {
        opts.low_speed_time = time;
    }
    Ok(opts)
}

/// Bytes per second: `1024`, `512B`, `1k`/`1KiB`/`1KB`, `2m`/`2MiB` (binary units, as
/// Docker's sizes); `0` turns the check off.
pub fn parse_speed(v: &str) -> Result<u64, String> {
    let t = v.trim();
    let t = t
        .strip_suffix("/s")
        .or_else(|| t.strip_suffix("/S"))
        .unwrap_or(t);
    strata_types::parse_size(t, strata_types::SizeUnits::Binary)
        .map_err(|_| format!("{v:?} is not a speed in bytes/s (e.g. 1024, 1KiB, 2MiB)"))
}

/// A duration (`30s`, `2m`, `1m30s`, or plain seconds); it must be at least a second.
pub fn parse_speed_time(v: &str) -> Result<Duration, String> {
    let t = v.trim();
    let d = match t.parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => strata_types::parse_duration(t),
    }
    .ok_or_else(|| format!("{v:?} is not a duration (e.g. 30s, 2m)"))?;
    if d < Duration::from_secs(1) {
        return Err(format!("{v:?}: the low-speed time is at least 1s"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_and_times() {
        assert_eq!(parse_speed("1024"), Ok(1024));
        assert_eq!(parse_speed("1KiB"), Ok(1024));
        assert_eq!(parse_speed("2m"), Ok(2 << 20));
        assert_eq!(parse_speed("10B/s"), Ok(10));
        assert_eq!(parse_speed("0"), Ok(0));
        assert!(parse_speed("fast").is_err());
        assert!(parse_speed("1x").is_err());
        assert_eq!(parse_speed_time("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_speed_time("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_speed_time("500ms").is_err());
        assert!(parse_speed_time("soon").is_err());
    }
}
