//! Splits template text into items, following Go's `text/template/parse`
//! lexer: text, `{{`/`}}` with `-` trim markers, comments, and the tokens
//! inside actions.

/// What an item is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A lexing error, with its message; always the last item.
    Error(String),
    Eof,
    Text,
    LeftDelim,
    RightDelim,
    Space,
    /// `=`
    Assign,
    /// `:=`
    Declare,
    Pipe,
    LeftParen,
    RightParen,
    /// Any other printable ASCII character, e.g. `,`.
    Char,
    Bool,
    Number,
    CharConstant,
    Str,
    RawStr,
    /// `$` or `$name`
    Variable,
    /// `.Name`
    Field,
    /// `.`
    Dot,
    Identifier,
    // Keywords.
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl Kind {
    fn is_keyword(&self) -> bool {
        matches!(
            self,
            Kind::Block
                | Kind::Break
                | Kind::Continue
                | Kind::Define
                | Kind::Else
                | Kind::End
                | Kind::If
                | Kind::Nil
                | Kind::Range
                | Kind::Template
                | Kind::With
                | Kind::Dot
        )
    }
}

/// One lexed item: its kind, byte offset in the source, and text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub(crate) kind: Kind,
    pub(crate) pos: usize,
    pub(crate) val: String,
}

impl std::fmt::Display for Item {
    /// As Go's `item.String()`, used in "unexpected X in Y" messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Eof => f.write_str("EOF"),
            Kind::Error(msg) => f.write_str(msg),
            k if k.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let head: String = self.val.chars().take(10).collect();
                write!(f, "{}...", crate::gofmt::quote(&head))
            }
            _ => f.write_str(&crate::gofmt::quote(&self.val)),
        }
    }
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

/// `- ` right after a left delimiter.
fn has_left_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(char::from(b[1]))
}

/// ` -` right before a right delimiter.
fn has_right_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(char::from(b[0])) && b[1] == b'-'
}

/// Lexes the whole template. The last item is `Eof` or `Error`.
pub(crate) fn lex(input: &str) -> Vec<Item> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        items: Vec::new(),
        paren_depth: 0,
        inside: false,
    };
    loop {
        let more = if l.inside {
            l.lex_inside_action()
        } else {
            l.lex_text()
        };
        if !more {
            break;
        }
    }
    l.items
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    items: Vec<Item>,
    paren_depth: usize,
    inside: bool,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Steps back over the character before `pos`.
    fn backup(&mut self) {
        if let Some(c) = self.input[..self.pos].chars().next_back() {
            self.pos -= c.len_utf8();
        }
    }

    fn emit(&mut self, kind: Kind) -> bool {
        self.items.push(Item {
            kind,
            pos: self.start,
            val: self.input[self.start..self.pos].to_owned(),
        });
        self.start = self.pos;
        true
    }

    fn error(&mut self, msg: String) -> bool {
        self.items.push(Item {
            kind: Kind::Error(msg),
            pos: self.start,
            val: String::new(),
        });
        false
    }

    /// Whether a right delimiter (optionally trim-marked) is next.
    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest();
        if has_right_trim_marker(rest) && rest[2..].starts_with(RIGHT) {
            return (true, true);
        }
        (rest.starts_with(RIGHT), false)
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            Some(_) => self.rest().starts_with(RIGHT),
        }
    }

    fn lex_text(&mut self) -> bool {
        if let Some(x) = self.rest().find(LEFT) {
            if x > 0 {
                self.pos += x;
                let mut text_end = self.pos;
                if has_left_trim_marker(&self.input[self.pos + LEFT.len()..]) {
                    let text = &self.input[self.start..self.pos];
                    text_end = self.start + text.trim_end_matches(is_space).len();
                }
                if text_end > self.start {
                    self.items.push(Item {
                        kind: Kind::Text,
                        pos: self.start,
                        val: self.input[self.start..text_end].to_owned(),
                    });
                }
                self.start = self.pos;
            }
            return self.lex_left_delim();
        }
        self.pos = self.input.len();
        if self.pos > self.start {
            self.emit(Kind::Text);
        }
        self.emit(Kind::Eof);
        false
    }

    fn lex_left_delim(&mut self) -> bool {
        self.pos += LEFT.len();
        let trim = has_left_trim_marker(self.rest());
        let after = if trim { 2 } else { 0 };
        if self.input[self.pos + after..].starts_with(LEFT_COMMENT) {
            self.pos += after;
            self.start = self.pos;
            return self.lex_comment();
        }
        self.emit(Kind::LeftDelim);
        self.inside = true;
        self.pos += after;
        self.start = self.pos;
        self.paren_depth = 0;
        true
    }

    fn lex_comment(&mut self) -> bool {
        self.pos += LEFT_COMMENT.len();
        let Some(x) = self.rest().find(RIGHT_COMMENT) else {
            return self.error("unclosed comment".to_owned());
        };
        self.pos += x + RIGHT_COMMENT.len();
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter".to_owned());
        }
        if trim {
            self.pos += 2;
        }
        self.pos += RIGHT.len();
        if trim {
            self.skip_leading_space();
        }
        self.start = self.pos;
        true
    }

    fn skip_leading_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(is_space).len();
    }

    fn lex_right_delim(&mut self) -> bool {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += 2;
            self.start = self.pos;
        }
        self.pos += RIGHT.len();
        self.emit(Kind::RightDelim);
        if trim {
            self.skip_leading_space();
            self.start = self.pos;
        }
        self.inside = false;
        true
    }

    fn lex_inside_action(&mut self) -> bool {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return self.lex_right_delim();
            }
            return self.error("unclosed left paren".to_owned());
        }
        let Some(c) = self.next() else {
            return self.error("unclosed action".to_owned());
        };
        match c {
            c if is_space(c) => {
                self.backup();
                self.lex_space()
            }
            '=' => self.emit(Kind::Assign),
            ':' => {
                if self.next() != Some('=') {
                    return self.error("expected :=".to_owned());
                }
                self.emit(Kind::Declare)
            }
            '|' => self.emit(Kind::Pipe),
            '"' => self.lex_quote(),
            '`' => self.lex_raw_quote(),
            '$' => self.lex_variable(),
            '\'' => self.lex_char(),
            '.' if self.peek().is_some_and(|c| !c.is_ascii_digit()) => {
                self.lex_field_or_variable(Kind::Field)
            }
            '.' | '+' | '-' | '0'..='9' => {
                self.backup();
                self.lex_number()
            }
            c if is_alnum(c) => {
                self.backup();
                self.lex_identifier()
            }
            '(' => {
                self.paren_depth += 1;
                self.emit(Kind::LeftParen)
            }
            ')' => {
                if self.paren_depth == 0 {
                    return self.error("unexpected right paren".to_owned());
                }
                self.paren_depth -= 1;
                self.emit(Kind::RightParen)
            }
            c if c.is_ascii() && !c.is_ascii_control() => self.emit(Kind::Char),
            c => self.error(format!("unrecognized character in action: {}", describe(c))),
        }
    }

    fn lex_space(&mut self) -> bool {
        let mut n = 0;
        while self.peek().is_some_and(is_space) {
            self.next();
            n += 1;
        }
        // A trim-marked right delimiter starts with a space: leave it.
        let last = &self.input[self.pos - 1..];
        if has_right_trim_marker(last) && last[2..].starts_with(RIGHT) {
            self.backup();
            if n == 1 {
                return self.lex_right_delim();
            }
        }
        self.emit(Kind::Space)
    }

    fn lex_identifier(&mut self) -> bool {
        while self.peek().is_some_and(is_alnum) {
            self.next();
        }
        if !self.at_terminator() {
            return self.bad_character();
        }
        let kind = match &self.input[self.start..self.pos] {
            "block" => Kind::Block,
            "break" => Kind::Break,
            "continue" => Kind::Continue,
            "define" => Kind::Define,
            "else" => Kind::Else,
            "end" => Kind::End,
            "if" => Kind::If,
            "nil" => Kind::Nil,
            "range" => Kind::Range,
            "template" => Kind::Template,
            "with" => Kind::With,
            "true" | "false" => Kind::Bool,
            _ => Kind::Identifier,
        };
        self.emit(kind)
    }

    fn bad_character(&mut self) -> bool {
        let c = self.peek().unwrap_or(' ');
        self.error(format!("bad character {}", describe(c)))
    }

    fn lex_variable(&mut self) -> bool {
        if self.at_terminator() {
            return self.emit(Kind::Variable);
        }
        self.lex_field_or_variable(Kind::Variable)
    }

    /// After the `.` or `$`.
    fn lex_field_or_variable(&mut self, kind: Kind) -> bool {
        if self.at_terminator() {
            return self.emit(if kind == Kind::Variable {
                Kind::Variable
            } else {
                Kind::Dot
            });
        }
        while self.peek().is_some_and(is_alnum) {
            self.next();
        }
        if !self.at_terminator() {
            return self.bad_character();
        }
        self.emit(kind)
    }

    /// A double-quoted string. Unlike Go, a raw newline is allowed inside:
    /// Docker turns `\n` into a newline before parsing, which would
    /// otherwise break `{{join .Names "\n"}}`.
    fn lex_quote(&mut self) -> bool {
        loop {
            match self.next() {
                Some('\\') => {
                    if self.next().is_none() {
                        return self.error("unterminated quoted string".to_owned());
                    }
                }
                None => return self.error("unterminated quoted string".to_owned()),
                Some('"') => return self.emit(Kind::Str),
                Some(_) => {}
            }
        }
    }

    fn lex_raw_quote(&mut self) -> bool {
        match self.rest().find('`') {
            Some(x) => {
                self.pos += x + 1;
                self.emit(Kind::RawStr)
            }
            None => self.error("unterminated raw quoted string".to_owned()),
        }
    }

    fn lex_char(&mut self) -> bool {
        loop {
            match self.next() {
                Some('\\') => {
                    if matches!(self.next(), None | Some('\n')) {
                        return self.error("unterminated character constant".to_owned());
                    }
                }
                None | Some('\n') => {
                    return self.error("unterminated character constant".to_owned());
                }
                Some('\'') => return self.emit(Kind::CharConstant),
                Some(_) => {}
            }
        }
    }

    fn accept(&mut self, valid: &str) -> bool {
        if self.peek().is_some_and(|c| valid.contains(c)) {
            self.next();
            return true;
        }
        false
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn lex_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alnum) || self.peek().is_some_and(|c| c == '+' || c == '-') {
            self.next();
            let text = self.input[self.start..self.pos].to_owned();
            return self.error(format!("bad number syntax: {}", crate::gofmt::quote(&text)));
        }
        self.emit(Kind::Number)
    }
}

/// Go's `%#U`: `U+007D '}'`.
fn describe(c: char) -> String {
    if crate::gofmt::is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Kind, String)> {
        lex(src).into_iter().map(|i| (i.kind, i.val)).collect()
    }

    fn k(kind: Kind, val: &str) -> (Kind, String) {
        (kind, val.to_owned())
    }

    #[test]
    fn text_and_fields() {
        assert_eq!(
            kinds("a {{.ID}} b"),
            vec![
                k(Kind::Text, "a "),
                k(Kind::LeftDelim, "{{"),
                k(Kind::Field, ".ID"),
                k(Kind::RightDelim, "}}"),
                k(Kind::Text, " b"),
                k(Kind::Eof, ""),
            ]
        );
        assert_eq!(
            kinds("{{.A.B $x.C .}}"),
            vec![
                k(Kind::LeftDelim, "{{"),
                k(Kind::Field, ".A"),
                k(Kind::Field, ".B"),
                k(Kind::Space, " "),
                k(Kind::Variable, "$x"),
                k(Kind::Field, ".C"),
                k(Kind::Space, " "),
                k(Kind::Dot, "."),
                k(Kind::RightDelim, "}}"),
                k(Kind::Eof, ""),
            ]
        );
    }

    #[test]
    fn trim_markers() {
        assert_eq!(
            kinds("a  {{- .X -}}  b"),
            vec![
                k(Kind::Text, "a"),
                k(Kind::LeftDelim, "{{"),
                k(Kind::Field, ".X"),
                k(Kind::RightDelim, "}}"),
                k(Kind::Text, "b"),
                k(Kind::Eof, ""),
            ]
        );
        // "{{-3}}" is the number -3, not a trim marker.
        assert_eq!(kinds("{{-3}}")[1], k(Kind::Number, "-3"));
        // Several spaces before " -}}" leave a Space item.
        assert_eq!(kinds("{{.X   -}}")[2], k(Kind::Space, "  "));
    }

    #[test]
    fn comments_vanish() {
        assert_eq!(
            kinds("a {{- /* note */ -}} b{{/* x */}}"),
            vec![k(Kind::Text, "a"), k(Kind::Text, "b"), k(Kind::Eof, "")]
        );
        assert_eq!(kinds("{{/* x")[0].0, Kind::Error("unclosed comment".into()));
        assert_eq!(
            kinds("{{/* x */ .}}")[0].0,
            Kind::Error("comment ends before closing delimiter".into())
        );
    }

    #[test]
    fn tokens() {
        let got: Vec<Kind> = lex(r#"{{$x := 1 | printf "%d" `raw` 'c' (nil) true, $y = 0x1F}}"#)
            .into_iter()
            .map(|i| i.kind)
            .filter(|k| *k != Kind::Space)
            .collect();
        assert_eq!(
            got,
            vec![
                Kind::LeftDelim,
                Kind::Variable,
                Kind::Declare,
                Kind::Number,
                Kind::Pipe,
                Kind::Identifier,
                Kind::Str,
                Kind::RawStr,
                Kind::CharConstant,
                Kind::LeftParen,
                Kind::Nil,
                Kind::RightParen,
                Kind::Bool,
                Kind::Char,
                Kind::Variable,
                Kind::Assign,
                Kind::Number,
                Kind::RightDelim,
                Kind::Eof,
            ]
        );
        let kw: Vec<Kind> = lex("{{if}}{{else}}{{end}}{{range}}{{with}}{{break}}{{continue}}")
            .into_iter()
            .map(|i| i.kind)
            .filter(|k| !matches!(k, Kind::LeftDelim | Kind::RightDelim))
            .collect();
        assert_eq!(
            kw,
            vec![
                Kind::If,
                Kind::Else,
                Kind::End,
                Kind::Range,
                Kind::With,
                Kind::Break,
                Kind::Continue,
                Kind::Eof
            ]
        );
    }

    #[test]
    fn errors() {
        let last = |s: &str| lex(s).pop().map(|i| i.kind);
        assert_eq!(last("{{.ID"), Some(Kind::Error("unclosed action".into())));
        assert_eq!(
            last("{{.ID}"),
            Some(Kind::Error("bad character U+007D '}'".into()))
        );
        assert_eq!(
            last("{{\"abc}}"),
            Some(Kind::Error("unterminated quoted string".into()))
        );
        assert_eq!(
            last("{{`abc}}"),
            Some(Kind::Error("unterminated raw quoted string".into()))
        );
        assert_eq!(
            last("{{(.X}}"),
            Some(Kind::Error("unclosed left paren".into()))
        );
        assert_eq!(
            last("{{.X)}}"),
            Some(Kind::Error("unexpected right paren".into()))
        );
        assert_eq!(
            last("{{3x}}"),
            Some(Kind::Error("bad number syntax: \"3x\"".into()))
        );
        assert_eq!(last("{{a:b}}"), Some(Kind::Error("expected :=".into())));
        assert_eq!(
            last("{{\u{1}}}"),
            Some(Kind::Error(
                "unrecognized character in action: U+0001".into()
            ))
        );
    }

    #[test]
    fn quoted_newline_is_allowed() {
        assert_eq!(kinds("{{\"a\nb\"}}")[1], k(Kind::Str, "\"a\nb\""));
    }

    #[test]
    fn item_display_like_go() {
        let item = |kind, val: &str| Item {
            kind,
            pos: 0,
            val: val.into(),
        };
        assert_eq!(item(Kind::Char, "}").to_string(), "\"}\"");
        assert_eq!(item(Kind::End, "end").to_string(), "<end>");
        assert_eq!(item(Kind::Eof, "").to_string(), "EOF");
        assert_eq!(
            item(Kind::Text, "abcdefghijklmn").to_string(),
            "\"abcdefghij\"..."
        );
    }
}
