//! The tokio runtime the synchronous store drives the async registry client
//! ([`strata_remote`]) with. One per command, made at the edge (the CLI), shared by
//! everything the command does so the client's connection pools and tokens live as long as it.

use std::io;

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
/// [`strata_remote::hosts`]) is read from: `$STRATA_HOSTS_DIR`, else `/etc/strata/certs.d`
/// when it exists.
pub const DEFAULT_HOSTS_DIR: &str = "/etc/strata/certs.d";

/// The registry client every command that talks to a registry uses: credentials from
/// Docker's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`), hosts as above.
pub fn remote() -> Result<strata_remote::Remote, Box<strata_remote::RemoteError>> {
    remote_with(strata_remote::RemoteOptions::default())
}

/// [`remote`] with other options (the hosts directory is filled in).
pub fn remote_with(
    opts: strata_remote::RemoteOptions,
) -> Result<strata_remote::Remote, Box<strata_remote::RemoteError>> {
    let hosts_dir = std::env::var_os("STRATA_HOSTS_DIR")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let d = std::path::Path::new(DEFAULT_HOSTS_DIR);
            d.is_dir().then(|| d.to_owned())
        });
    strata_remote::Remote::new(strata_remote::RemoteOptions { hosts_dir, ..opts }).map_err(Box::new)
}
