//! `strata system settings [KEY [VALUE]]`: the store's own settings, kept in its database so
//! they hold for every command run against the store (Docker keeps such choices in
//! daemon.json; strata has no daemon).

use anyhow::bail;
use clap::Args;

use crate::store::Store;

/// Every setting: name, default, what it does, and how a value is checked (and written).
const SETTINGS: &[(&str, &str, &str, Check)] = &[
    (
        crate::discard::SETTING,
        "false",
        "delete each layer's compressed blob once its unpacked snapshot is verified (pull)",
        boolean,
    ),
    (
        crate::space::SETTING,
        crate::space::DEFAULT,
        "space unpacking leaves free on the store's filesystem: a size (512m, 2GB), a share (5%; \
         the default is at most 1GiB) or 0",
        min_free,
    ),
];

/// Checks a new value of setting `name`, returning the value to store.
type Check = fn(name: &str, value: &str) -> anyhow::Result<String>;

fn boolean(name: &str, value: &str) -> anyhow::Result<String> {
    let v = value.to_ascii_lowercase();
    if !matches!(
        v.as_str(),
        "true" | "false" | "1" | "0" | "yes" | "no" | "on" | "off"
    ) {
        bail!("{name} is true or false, not {v:?}");
    }
    let on = crate::discard::setting_enabled(Some(&v));
    Ok(if on { "true" } else { "false" }.to_owned())
}

fn min_free(_: &str, value: &str) -> anyhow::Result<String> {
    crate::space::parse_min_free(Some(value)).map_err(anyhow::Error::msg)?;
    Ok(value.trim().to_owned())
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
        for (name, default, about, _) in SETTINGS {
            let value = store.db().read(|tx| tx.setting(name))?;
            let value = value.as_deref().unwrap_or(default);
            tw.write_str(&format!("{name}\t{value}\t{about}\n"));
        }
        print!("{}", tw.flush());
        return Ok(());
    };
    let Some((name, default, _, check)) = SETTINGS.iter().find(|s| s.0 == key) else {
        let known: Vec<&str> = SETTINGS.iter().map(|s| s.0).collect();
        bail!("unknown setting {key:?} (known: {})", known.join(", "));
    };
    match args.value.as_deref() {
        None => {
            let value = store.db().read(|tx| tx.setting(name))?;
            println!("{}", value.as_deref().unwrap_or(default));
        }
        Some("default") => store.db().write(|tx| tx.set_setting(name, None))?,
        Some(v) => {
            let value = check(name, v)?;
            store.db().write(|tx| tx.set_setting(name, Some(&value)))?;
        }
    }
    Ok(())
}
