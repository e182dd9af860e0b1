//! A faithful subset of Go's `text/template`, with Docker's functions.
//!
//! Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming, comments,
//! fields (`.A.B`, `$x.A`, `(pipeline).A`), variables (`:=`, `=`, two-variable
//! `range`), pipelines, literals (strings with Go escapes, raw strings,
//! numbers, characters, `true`/`false`/`nil`), `if`/`else if`/`else`,
//! `with`/`else with`/`else`, `range` over arrays, objects (sorted keys) and
//! integers with `else`, `break` and `continue`, and the functions listed in
//! the crate documentation. Not supported: `define`, `template`, `block`,
//! `call`, complex numbers and hexadecimal floats.

mod ast;
mod exec;
mod lexer;
mod parser;

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::error::FormatError;

/// A parsed template, ready to render any number of values.
///
/// ```
/// use strata_format::Template;
/// let t = Template::parse("{{.Name}}: {{join .Tags \", \"}}")?;
/// let v = serde_json::json!({"Name": "alpine", "Tags": ["3.20", "latest"]});
/// assert_eq!(t.render(&v)?, "alpine: 3.20, latest");
/// # Ok::<(), strata_format::FormatError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    root: Vec<ast::Node>,
}

impl Template {
    /// Parses template text. As Docker does, the two-character sequences
    /// `\t` and `\n` are first replaced by a real tab and newline.
    pub fn parse(src: &str) -> Result<Template, FormatError> {
        let src = expand_escapes(src);
        let root = parser::parse(&src)?;
        Ok(Template { src, root })
    }

    /// Renders the template with `data` as `.` and `$`.
    pub fn render(&self, data: &Value) -> Result<String, FormatError> {
        let (out, result) = exec::execute(&self.src, &self.root, data, false);
        result.map(|()| out)
    }

    /// Renders the template as a table header, the way Docker does: against
    /// a map from field name to column header (a field missing from `headers`
    /// heads its column with its own name in upper case), with `json`,
    /// `split`, `join`, `title`, `lower`, `upper` and `truncate` returning
    /// their first argument. Errors are ignored and the output so far kept,
    /// as Docker ignores them.
    pub fn render_header(&self, headers: &[(&str, &str)]) -> String {
        let map: Map<String, Value> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        exec::execute(&self.src, &self.root, &Value::Object(map), true).0
    }

    /// The template text, after `\t`/`\n` substitution.
    pub fn source(&self) -> &str {
        &self.src
    }
}

impl FromStr for Template {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.src)
    }
}

/// Docker's `strings.NewReplacer(`\t`, "\t", `\n`, "\n")`, left to right.
pub(crate) fn expand_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("\\t") {
            out.push('\t');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("\\n") {
            out.push('\n');
            rest = after;
        } else {
            out.push('\\');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
