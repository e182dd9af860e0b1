//! Output for `strata` commands, shaped exactly like the Docker CLI's
//! `--format` flag so that Docker users' habits and scripts carry over.
//!
//! A command turns its results into JSON values and hands them to
//! [`write_items`] with the [`OutputFormat`] the user chose:
//! no `--format` (or `table`) prints the command's default table,
//! `table TEMPLATE` a table of that template's columns, `json` one JSON
//! object per line, and any other value is a Go template rendered per item.
//! Templates are a faithful subset of Go's `text/template` plus Docker's
//! functions ([`Template`]); values print as Go's `%v` does ([`go_display`]);
//! tables are aligned by a port of Go's `text/tabwriter` ([`TabWriter`]);
//! sizes and ages read as Docker's ([`human_size`], [`ago`]).
//!
//! Template functions: Go's `and or not len index slice eq ne lt le gt ge
//! print printf println urlquery html js`, and Docker's `json split join
//! title lower upper pad truncate`.
//!
//! ```
//! use strata_format::{OutputFormat, write_items};
//! use serde_json::json;
//!
//! let items = [json!({"ID": "4f66ad9a0b2e", "Size": "1.23kB"})];
//! let headers = [("ID", "CONTAINER ID"), ("Size", "SIZE")];
//! let format = OutputFormat::parse(None, "{{.ID}}\t{{.Size}}")?;
//! let mut out = Vec::new();
//! write_items(&mut out, &format, &items, &headers)?;
//! assert_eq!(String::from_utf8_lossy(&out), "CONTAINER ID   SIZE\n4f66ad9a0b2e   1.23kB\n");
//! # Ok::<(), strata_format::FormatError>(())
//! ```

#![forbid(unsafe_code)]

mod error;
mod funcs;
mod gofmt;
mod table;
mod template;
mod value;

use serde_json::Value;

pub use error::FormatError;
pub use strata_types::{
    ago, ago_at, bytes_size, human_duration, human_size, human_size_with_precision,
};
pub use table::TabWriter;
pub use template::Template;
pub use value::go_display;

/// What the user asked for with `--format`.
#[derive(Debug, Clone)]
pub enum OutputFormat {
    /// No `--format`, or `table`: the command's default table; or
    /// `table TEMPLATE`. Holds the template of one row, without the `table`
    /// prefix; the header row is derived from it.
    Table(Template),
    /// `--format json`: one JSON object per line, as `{{json .}}`.
    Json,
    /// Any other template: rendered per item, a newline after each.
    Template(Template),
}

impl OutputFormat {
    /// Interprets a `--format` value as Docker does.
    ///
    /// `user` is the flag's value if given; `default_table` is the command's
    /// default row template, e.g. `"{{.ID}}\t{{.Image}}\t{{.Names}}"`.
    /// `None`, an empty value or `table` alone give the default table;
    /// `table X` a table of `X`; `json` JSON lines; anything else a template.
    /// Surrounding spaces are trimmed, and `\t`/`\n` written as two
    /// characters become a tab and a newline.
    pub fn parse(user: Option<&str>, default_table: &str) -> Result<Self, FormatError> {
        let default = || Template::parse(default_table.trim_matches(' ')).map(OutputFormat::Table);
        let Some(user) = user else {
            return default();
        };
        if user.trim().is_empty() {
            return default();
        }
        if user.trim_matches(' ') == "json" {
            return Ok(OutputFormat::Json);
        }
        if let Some(rest) = user.strip_prefix("table") {
            let rest = rest.trim_matches(' ');
            if rest.is_empty() {
                return default();
            }
            return Template::parse(rest).map(OutputFormat::Table);
        }
        Template::parse(user.trim_matches(' ')).map(OutputFormat::Template)
    }
}

/// Renders `items` in the chosen format to `out`.
///
/// `headers` maps a field name (as written after the dot: `"ID"`, `"Size"`)
/// to its column header (`"CONTAINER ID"`, `"SIZE"`). A table's header row
/// is its row template rendered against this map, fields missing from it
/// heading their column with their own name in upper case; the header is
/// printed even when there are no items. Nothing is written if any item
/// fails to render.
pub fn write_items(
    out: &mut dyn std::io::Write,
    format: &OutputFormat,
    items: &[Value],
    headers: &[(&str, &str)],
) -> Result<(), FormatError> {
    let text = render_items(format, items, headers)?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// [`write_items`], returning the text instead of writing it.
pub fn render_items(
    format: &OutputFormat,
    items: &[Value],
    headers: &[(&str, &str)],
) -> Result<String, FormatError> {
    let mut text = String::new();
    match format {
        OutputFormat::Json => {
            for item in items {
                text.push_str(&value::go_json(item));
                text.push('\n');
            }
        }
        OutputFormat::Template(t) => {
            // As Docker: straight to the output, tabs left as tabs for `cut -f`.
            for item in items {
                text.push_str(&t.render(item)?);
                text.push('\n');
            }
        }
        OutputFormat::Table(t) => {
            let mut rows = Vec::with_capacity(items.len());
            for item in items {
                rows.push(t.render(item)?);
            }
            let mut tw = TabWriter::docker();
            tw.write_str(&t.render_header(headers));
            tw.write_str("\n");
            for row in rows {
                tw.write_str(&row);
                tw.write_str("\n");
            }
            text = tw.flush();
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
