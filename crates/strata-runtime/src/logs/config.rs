//! `--log-driver` and `--log-opt`: Docker's `HostConfig.LogConfig {Type, Config}`, checked as
//! Docker's `json-file` driver checks its options (`max-size`, `max-file`, `compress`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The driver Docker uses when none is named.
pub const JSON_FILE: &str = "json-file";
pub const NONE: &str = "none";

/// A container's logging configuration as recorded and as `inspect` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// `json-file` or `none`; empty (a container made before this was recorded) is
    /// `json-file` without options.
    #[serde(rename = "Type", default)]
    pub kind: String,
    #[serde(rename = "Config", default)]
    pub config: BTreeMap<String, String>,
}

/// What the monitor does with a container's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDriver {
    JsonFile(JsonFileOptions),
    /// Output is read (so the container never blocks on it) and dropped.
    None,
}

/// The json-file driver's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonFileOptions {
    /// Rotate once the file holds this many bytes (`max-size`); none: never.
    pub max_size: Option<u64>,
    /// Files kept, the one being written included (`max-file`, 1 unless set).
    pub max_file: u32,
    /// Rotated files are gzipped (`compress`).
    pub compress: bool,
}

impl Default for JsonFileOptions {
    /// Docker's json-file without options: one file, never rotated.
    fn default() -> Self {
        JsonFileOptions {
            max_size: None,
            max_file: 1,
            compress: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogOptError {
    #[error("logging driver {0:?} is not supported: use json-file or none")]
    Driver(String),
    #[error("unknown log opt '{0}' for json-file log driver")]
    Unknown(String),
    #[error("log opt '{0}' is not supported by strata's json-file log driver")]
    Unsupported(String),
    #[error("log opts are not supported by the none logging driver")]
    NoneTakesNoOpts,
    #[error("invalid log opt {0:?}: expected KEY=VALUE")]
    Syntax(String),
    #[error("invalid max-size {0:?}: a positive number with an optional unit k, m, g (1000s)")]
    Size(String),
    #[error("max-size must be a positive number")]
    SizeNotPositive,
    #[error("invalid max-file {0:?}: a whole number")]
    MaxFile(String),
    #[error("max-file cannot be less than 1")]
    MaxFileLessThanOne,
    #[error("invalid compress {0:?}: true or false")]
    Compress(String),
    #[error("compress cannot be true when max-file is less than 2 or max-size is not set")]
    CompressNeedsRotation,
}

impl LogConfig {
    /// `--log-driver` and `--log-opt KEY=VALUE` flags, not yet checked.
    pub fn from_flags(driver: Option<&str>, opts: &[String]) -> Result<LogConfig, LogOptError> {
        let mut config = BTreeMap::new();
        for o in opts {
            let (k, v) = o
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| LogOptError::Syntax(o.clone()))?;
            config.insert(k.to_owned(), v.to_owned());
        }
        Ok(LogConfig {
            kind: driver.unwrap_or_default().to_owned(),
            config,
        })
    }

    /// Fills what the container did not choose from the store's default, as Docker merges
    /// daemon.json's `log-driver` and `log-opts`: options only when the driver is the default's.
    pub fn with_defaults(mut self, default: &LogConfig) -> LogConfig {
        if self.kind.is_empty() {
            self.kind.clone_from(&default.kind);
        }
        if self.kind == default.kind {
            for (k, v) in &default.config {
                self.config.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        self
    }

    /// Checks the options and says what the monitor is to do.
    pub fn driver(&self) -> Result<LogDriver, LogOptError> {
        match self.kind.as_str() {
            "" | JSON_FILE => json_file(&self.config).map(LogDriver::JsonFile),
            NONE if self.config.is_empty() => Ok(LogDriver::None),
            NONE => Err(LogOptError::NoneTakesNoOpts),
            other => Err(LogOptError::Driver(other.to_owned())),
        }
    }

    /// `max-size=10m,max-file=3`, as the store's `log-opts` setting holds it.
    pub fn opts_string(&self) -> String {
        let pairs: Vec<String> = self
            .config
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.join(",")
    }

    /// The inverse of [`LogConfig::opts_string`] (empty: no options).
    pub fn parse_opts(s: &str) -> Result<BTreeMap<String, String>, LogOptError> {
        let opts: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(LogConfig::from_flags(None, &opts)?.config)
    }
}

fn json_file(config: &BTreeMap<String, String>) -> Result<JsonFileOptions, LogOptError> {
    for key in config.keys() {
        match key.as_str() {
            "max-size" | "max-file" | "compress" => {}
            // Docker's other json-file options add attributes to every entry.
            "labels" | "labels-regex" | "env" | "env-regex" | "tag" => {
                return Err(LogOptError::Unsupported(key.clone()));
            }
            _ => return Err(LogOptError::Unknown(key.clone())),
        }
    }
    let max_size = config.get("max-size").map(|s| parse_size(s)).transpose()?;
    let max_file = match config.get("max-file") {
        None => 1,
        Some(s) => {
            let n: i64 = s
                .trim()
                .parse()
                .map_err(|_| LogOptError::MaxFile(s.clone()))?;
            if n < 1 {
                return Err(LogOptError::MaxFileLessThanOne);
            }
            u32::try_from(n).map_err(|_| LogOptError::MaxFile(s.clone()))?
        }
    };
    let compress = match config.get("compress").map(String::as_str) {
        None => false,
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
        Some(other) => return Err(LogOptError::Compress(other.to_owned())),
    };
    if compress && (max_file < 2 || max_size.is_none()) {
        return Err(LogOptError::CompressNeedsRotation);
    }
    Ok(JsonFileOptions {
        max_size,
        max_file,
        compress,
    })
}

/// Docker's `max-size`: a positive size in decimal units (go-units' `FromHumanSize`):
/// `100k`, `10m`, `1.5MB`, `2048`.
pub fn parse_size(s: &str) -> Result<u64, LogOptError> {
    match strata_types::parse_size(s, strata_types::SizeUnits::Decimal) {
        Ok(0) | Err(strata_types::SizeError::OutOfRange(_)) => Err(LogOptError::SizeNotPositive),
        Ok(n) => Ok(n),
        Err(strata_types::SizeError::Invalid(_)) => Err(LogOptError::Size(s.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: &str, pairs: &[(&str, &str)]) -> LogConfig {
        LogConfig {
            kind: kind.into(),
            config: pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    #[test]
    fn sizes_are_go_units_decimal() {
        assert_eq!(parse_size("100k"), Ok(100_000));
        assert_eq!(parse_size("10m"), Ok(10_000_000));
        assert_eq!(parse_size("10M"), Ok(10_000_000));
        assert_eq!(parse_size("1.5MB"), Ok(1_500_000));
        assert_eq!(parse_size("2KiB"), Ok(2_000));
        assert_eq!(parse_size("1g"), Ok(1_000_000_000));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("12b"), Ok(12));
        assert_eq!(parse_size("0"), Err(LogOptError::SizeNotPositive));
        assert_eq!(parse_size("-1"), Err(LogOptError::SizeNotPositive));
        for bad in ["", "k", "10x", "10kk", "10bb", "1..2m"] {
            assert!(
                matches!(parse_size(bad), Err(LogOptError::Size(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn json_file_options_as_docker_checks_them() {
        let d = |pairs: &[(&str, &str)]| cfg("json-file", pairs).driver();
        assert_eq!(
            d(&[]),
            Ok(LogDriver::JsonFile(JsonFileOptions {
                max_size: None,
                max_file: 1,
                compress: false
            }))
        );
        assert_eq!(
            d(&[
                ("max-size", "100k"),
                ("max-file", "3"),
                ("compress", "true")
            ]),
            Ok(LogDriver::JsonFile(JsonFileOptions {
                max_size: Some(100_000),
                max_file: 3,
                compress: true
            }))
        );
        assert_eq!(
            d(&[("max-file", "0")]),
            Err(LogOptError::MaxFileLessThanOne)
        );
        assert!(matches!(
            d(&[("max-file", "x")]),
            Err(LogOptError::MaxFile(_))
        ));
        assert_eq!(
            d(&[("max-size", "1m"), ("compress", "true")]),
            Err(LogOptError::CompressNeedsRotation)
        );
        assert!(matches!(
            d(&[("compress", "maybe")]),
            Err(LogOptError::Compress(_))
        ));
        assert_eq!(
            d(&[("max-sise", "1m")]).unwrap_err().to_string(),
            "unknown log opt 'max-sise' for json-file log driver"
        );
        assert!(matches!(
            d(&[("tag", "x")]),
            Err(LogOptError::Unsupported(_))
        ));
        assert_eq!(cfg("none", &[]).driver(), Ok(LogDriver::None));
        assert_eq!(
            cfg("none", &[("max-size", "1m")]).driver(),
            Err(LogOptError::NoneTakesNoOpts)
        );
        assert!(matches!(
            cfg("syslog", &[]).driver(),
            Err(LogOptError::Driver(_))
        ));
        // A container recorded before log options were: unbounded json-file.
        assert!(matches!(cfg("", &[]).driver(), Ok(LogDriver::JsonFile(_))));
    }

    #[test]
    fn store_defaults_merge_per_key_for_the_same_driver() {
        let store = cfg("json-file", &[("max-size", "20m"), ("max-file", "5")]);
        let flags = LogConfig::from_flags(None, &["max-file=2".into()]).unwrap();
        assert_eq!(
            flags.with_defaults(&store),
            cfg("json-file", &[("max-size", "20m"), ("max-file", "2")])
        );
        let none = LogConfig::from_flags(Some("none"), &[]).unwrap();
        assert_eq!(none.with_defaults(&store), cfg("none", &[]));
        assert!(LogConfig::from_flags(None, &["max-size".into()]).is_err());
        assert!(LogConfig::from_flags(None, &["=1".into()]).is_err());
        let opts = LogConfig::parse_opts(" max-size=20m, max-file=5,").unwrap();
        let back = LogConfig {
            kind: JSON_FILE.into(),
            config: opts,
        };
        assert_eq!(back.opts_string(), "max-file=5,max-size=20m");
        assert!(LogConfig::parse_opts("").unwrap().is_empty());
    }
}
