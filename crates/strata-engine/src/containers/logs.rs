//! A container's logging configuration: its `--log-driver`/`--log-opt` flags over the store's
//! defaults (`strata system settings log-driver|log-opts`, Docker's daemon.json keys), fixed
//! at `create` and recorded in `container.json` (Docker's `HostConfig.LogConfig`).
//!
//! Unlike Docker, whose json-file driver keeps every byte unless told otherwise, a store
//! starts with `log-opts` `max-size=20m,max-file=5` (the bound Docker's own `local` driver
//! uses): a container that prints without end cannot fill the disk. `log-opts ""` returns
//! to Docker's unbounded default.

use std::path::Path;

use strata_runtime::logs::{LogConfig, LogOptError, config};

use super::ContainerError;
use crate::store::Store;

/// The store settings holding the defaults.
pub const SETTING_DRIVER: &str = "log-driver";
pub const SETTING_OPTS: &str = "log-opts";
/// Their values in a store that never set them.
pub const DEFAULT_DRIVER: &str = config::JSON_FILE;
pub const DEFAULT_OPTS: &str = "max-size=20m,max-file=5";

/// The store's default logging configuration.
pub fn store_default(store: &Store) -> Result<LogConfig, ContainerError> {
    let (driver, opts) = store
        .db()
        .read(|tx| Ok((tx.setting(SETTING_DRIVER)?, tx.setting(SETTING_OPTS)?)))?;
    let kind = driver.unwrap_or_else(|| DEFAULT_DRIVER.to_owned());
    // Options are the json-file driver's; the none driver takes none.
    let config = if kind == config::NONE {
        Default::default()
    } else {
        LogConfig::parse_opts(opts.as_deref().unwrap_or(DEFAULT_OPTS))?
    };
    Ok(LogConfig { kind, config })
}

/// What a new container logs with: its flags over the store's default, checked.
pub fn for_container(store: &Store, flags: &LogConfig) -> Result<LogConfig, ContainerError> {
    let config = flags.clone().with_defaults(&store_default(store)?);
    config.driver()?;
    Ok(config)
}

/// Checks a new value of one of the settings; its canonical form.
pub fn check_setting(key: &str, value: &str) -> Result<String, LogOptError> {
    if key == SETTING_DRIVER {
        let c = LogConfig {
            kind: value.to_owned(),
            config: Default::default(),
        };
        c.driver()?;
        return Ok(c.kind);
    }
    let c = LogConfig {
        kind: config::JSON_FILE.to_owned(),
        config: LogConfig::parse_opts(value)?,
    };
    c.driver()?;
    Ok(c.opts_string())
}

/// Bytes of the container's log, rotated files included.
pub fn log_size(root: &Path, id: &str) -> u64 {
    strata_runtime::logs::log_size(&super::lifecycle::log_path(root, id))
}
