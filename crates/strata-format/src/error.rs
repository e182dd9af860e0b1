//! The one error type of the crate.

/// Why a `--format` value could not be parsed, rendered or written.
///
/// Messages follow Go's `text/template` wording so that Docker users
/// recognise them, with the position given as `line:column` (both 1-based,
/// the column counted in characters of the template after `\t`/`\n`
/// substitution).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The template text is malformed, e.g. `template: 1:9: function "foo" not defined`.
    #[error("template: {line}:{col}: {msg}")]
    Parse {
        /// 1-based line of the offending token.
        line: usize,
        /// 1-based column (in characters) of the offending token.
        col: usize,
        /// What is wrong.
        msg: String,
    },
    /// The template is well formed but failed on the data, e.g.
    /// `template: 1:3: executing at <.A.B>: can't evaluate field B in type string`.
    #[error("template: {line}:{col}: executing at <{node}>: {msg}")]
    Exec {
        /// 1-based line of the failing action.
        line: usize,
        /// 1-based column (in characters) of the failing action.
        col: usize,
        /// The failing part of the action, printed back as template text.
        node: String,
        /// What went wrong.
        msg: String,
    },
    /// Writing the rendered output failed.
    #[error("writing formatted output: {0}")]
    Io(#[from] std::io::Error),
}

/// Turns a byte offset into `src` into 1-based `(line, column)`, the column
/// counted in characters.
pub(crate) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let mut pos = pos.min(src.len());
    while !src.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &src[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_chars() {
        assert_eq!(line_col("abc", 0), (1, 1));
        assert_eq!(line_col("abc", 2), (1, 3));
        assert_eq!(line_col("a\nbc", 3), (2, 2));
        assert_eq!(line_col("é{{", 2), (1, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
    }

    #[test]
    fn messages_are_go_like() {
        let e = FormatError::Parse {
            line: 1,
            col: 9,
            msg: "function \"foo\" not defined".into(),
        };
        assert_eq!(e.to_string(), "template: 1:9: function \"foo\" not defined");
        let e = FormatError::Exec {
            line: 1,
            col: 3,
            node: ".A.B".into(),
            msg: "can't evaluate field B in type string".into(),
        };
        assert_eq!(
            e.to_string(),
            "template: 1:3: executing at <.A.B>: can't evaluate field B in type string"
        );
    }
}
