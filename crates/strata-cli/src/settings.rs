//! `strata system settings [KEY [VALUE]]`: the store's own settings, kept in its database so
//! they hold for every command run against the store (Docker keeps such choices in
//! daemon.json; strata has no daemon).

use anyhow::bail;
use clap::Args;

use strata_engine::containers::logs as log_settings;
use strata_engine::store::Store;

/// One setting: its name, default, what it does, and the check that gives a new value's
/// canonical form.
struct Setting {
    name: &'static str,
    default: &'static str,
    about: &'static str,
    check: fn(&str) -> Result<String, String>,
}

const SETTINGS: &[Setting] = &[
    Setting {
        name: strata_engine::discard::SETTING,
        default: "false",
        about: "delete each layer's compressed blob once its unpacked snapshot is verified (pull)",
        check: check_bool,
    },
    Setting {
        name: log_settings::SETTING_DRIVER,
        default: log_settings::DEFAULT_DRIVER,
        about: "logging driver of new containers: json-file or none (Docker's daemon.json log-driver)",
        check: log_driver,
    },
    Setting {
        name: log_settings::SETTING_OPTS,
        default: log_settings::DEFAULT_OPTS,
        about: "json-file options of new containers, KEY=VALUE,…: max-size, max-file, compress (\"\": unbounded)",
        check: log_opts,
    },
    Setting {
        name: strata_engine::space::SETTING,
        default: strata_engine::space::DEFAULT,
        about: "space unpacking leaves free on the store's filesystem: a size (512m, 2GB), a share (5%; \
                the default is at most 1GiB) or 0",
        check: min_free,
    },
    Setting {
        name: strata_engine::runtime::SETTING_LOW_SPEED_LIMIT,
        default: "1KiB",
        about: "give up a download slower than this (bytes/s) for low-speed-time; 0: never",
        check: speed,
    },
    Setting {
        name: strata_engine::runtime::SETTING_LOW_SPEED_TIME,
        default: "30s",
        about: "how long a download may stay under low-speed-limit",
        check: speed_time,
    },
];

fn speed(v: &str) -> Result<String, String> {
    strata_engine::runtime::parse_speed(v)?;
    Ok(v.trim().to_owned())
}

fn speed_time(v: &str) -> Result<String, String> {
    strata_engine::runtime::parse_speed_time(v)?;
    Ok(v.trim().to_owned())
}

fn min_free(v: &str) -> Result<String, String> {
    strata_engine::space::parse_min_free(Some(v))?;
    Ok(v.trim().to_owned())
}

fn log_driver(v: &str) -> Result<String, String> {
    log_settings::check_setting(log_settings::SETTING_DRIVER, v).map_err(|e| e.to_string())
}

fn log_opts(v: &str) -> Result<String, String> {
    log_settings::check_setting(log_settings::SETTING_OPTS, v).map_err(|e| e.to_string())
}

fn check_bool(v: &str) -> Result<String, String> {
    let v = v.to_ascii_lowercase();
    if !matches!(
        v.as_str(),
        "true" | "false" | "1" | "0" | "yes" | "no" | "on" | "off"
    ) {
        return Err(format!("true or false, not {v:?}"));
    }
    let on = strata_engine::discard::setting_enabled(Some(&v));
    Ok(if on { "true" } else { "false" }.to_owned())
}

#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// The setting to show or change; none: list them all.
    key: Option<String>,
    /// The new value (`default` returns the setting to its default).
    value: Option<String>,
}

pub fn run(store: &Store, args: &SettingsArgs) -> anyhow::Result<()> {
    let Some(key) = &args.key else {
        let mut tw = strata_format::TabWriter::docker();
        tw.write_str("KEY\tVALUE\tDESCRIPTION\n");
        for s in SETTINGS {
            let value = store.db().read(|tx| tx.setting(s.name))?;
            let value = value.as_deref().unwrap_or(s.default);
            tw.write_str(&format!("{}\t{value}\t{}\n", s.name, s.about));
        }
        print!("{}", tw.flush());
        return Ok(());
    };
    let Some(s) = SETTINGS.iter().find(|s| s.name == key) else {
        let known: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        bail!("unknown setting {key:?} (known: {})", known.join(", "));
    };
    match args.value.as_deref() {
        None => {
            let value = store.db().read(|tx| tx.setting(s.name))?;
            println!("{}", value.as_deref().unwrap_or(s.default));
        }
        Some("default") => store.db().write(|tx| tx.set_setting(s.name, None))?,
        Some(v) => {
            let v = (s.check)(v).map_err(|e| anyhow::anyhow!("{}: {e}", s.name))?;
            store.db().write(|tx| tx.set_setting(s.name, Some(&v)))?;
        }
    }
    Ok(())
}
