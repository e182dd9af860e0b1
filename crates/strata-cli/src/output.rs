//! Printing lists and inspect output the way the Docker CLI does.

use std::io::{self, Write};

use anyhow::Context;
use serde_json::Value;
use strata_format::{OutputFormat, Template, write_items};

/// A list command's output: `--format` (table, json, template) or the default table.
/// `quiet` prints only the `id_field` of each item, as `-q` does.
pub fn print_list(
    items: &[Value],
    format: Option<&str>,
    quiet: bool,
    id_field: &str,
    default_table: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    if quiet {
        for item in items {
            if let Some(id) = item.get(id_field).and_then(Value::as_str) {
                writeln!(out, "{id}")?;
            }
        }
        return Ok(out.flush()?);
    }
    let format = OutputFormat::parse(format, default_table).context("invalid --format")?;
    write_items(&mut out, &format, items, headers).context("format output")?;
    Ok(out.flush()?)
}

/// An inspect command's output: a pretty JSON array, or `--format` applied to each object.
pub fn print_inspect(items: &[Value], format: Option<&str>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match format {
        None => {
            serde_json::to_writer_pretty(&mut out, items)?;
            writeln!(out)?;
        }
        Some("json") => {
            for item in items {
                writeln!(out, "{}", serde_json::to_string(item)?)?;
            }
        }
        Some(f) => {
            let template = Template::parse(f).context("invalid --format")?;
            for item in items {
                writeln!(out, "{}", template.render(item).context("format output")?)?;
            }
        }
    }
    Ok(out.flush()?)
}

/// Ends a command that went on past failures, as `docker rmi` and `docker inspect` do: each
/// failure is one line on stderr; the last one is the command's error (exit code 1).
pub fn fail_with_all<E>(mut errors: Vec<E>) -> anyhow::Result<()>
where
    E: Into<anyhow::Error>,
{
    let last = errors.pop();
    for e in errors {
        eprintln!("strata: {:#}", e.into());
    }
    match last {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
