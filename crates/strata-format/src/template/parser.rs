//! Builds the parse tree from lexed items, following Go's
//! `text/template/parse` parser (same grammar, same error wording).

use super::ast::{Arg, Command, Control, Node, Num, Pipe};
use super::lexer::{Item, Kind, lex};
use crate::error::{FormatError, line_col};
use crate::funcs;
use crate::gofmt::quote;

/// Nesting deeper than this (actions, parentheses, else-if chains) is
/// refused rather than risking the stack.
const MAX_DEPTH: usize = 100;

type PResult<T> = Result<T, FormatError>;

/// Parses a template into its top-level list of nodes.
pub(crate) fn parse(src: &str) -> PResult<Vec<Node>> {
    let mut items = lex(src);
    if items.is_empty() {
        items.push(Item {
            kind: Kind::Eof,
            pos: src.len(),
            val: String::new(),
        });
    }
    let mut p = Parser {
        src,
        items,
        i: 0,
        vars: vec!["$".to_owned()],
        range_depth: 0,
        depth: 0,
    };
    p.parse_root()
}

/// What `text_or_action` found.
enum Parsed {
    Node(Node),
    End(usize),
    Else(usize),
}

/// How a list ended.
enum Stop {
    End,
    Else(usize),
}

struct Parser<'a> {
    src: &'a str,
    items: Vec<Item>,
    i: usize,
    /// Variables in scope, innermost last.
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> PResult<T> {
        let (line, col) = line_col(self.src, pos);
        Err(FormatError::Parse {
            line,
            col,
            msg: msg.into(),
        })
    }

    fn peek(&self) -> &Item {
        let last = self.items.len().saturating_sub(1);
        &self.items[self.i.min(last)]
    }

    /// The next item; a lexing error becomes the parse error.
    fn next(&mut self) -> PResult<Item> {
        let item = self.peek().clone();
        self.i += 1;
        if let Kind::Error(msg) = &item.kind {
            return self.err(item.pos, msg.clone());
        }
        Ok(item)
    }

    fn backup(&mut self) {
        self.i = self.i.saturating_sub(1);
    }

    fn skip_spaces(&mut self) {
        while self.peek().kind == Kind::Space {
            self.i += 1;
        }
    }

    fn next_non_space(&mut self) -> PResult<Item> {
        self.skip_spaces();
        self.next()
    }

    fn peek_non_space(&mut self) -> Item {
        self.skip_spaces();
        self.peek().clone()
    }

    fn expect(&mut self, kind: Kind, context: &str) -> PResult<Item> {
        let tok = self.next_non_space()?;
        if tok.kind != kind {
            return self.unexpected(&tok, context);
        }
        Ok(tok)
    }

    fn unexpected<T>(&self, tok: &Item, context: &str) -> PResult<T> {
        self.err(tok.pos, format!("unexpected {tok} in {context}"))
    }

    fn nest(&mut self, pos: usize) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(
                pos,
                format!("template nesting too deep (more than {MAX_DEPTH} levels)"),
            );
        }
        Ok(())
    }

    fn parse_root(&mut self) -> PResult<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek().kind != Kind::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => root.push(n),
                Parsed::End(pos) => return self.err(pos, "unexpected {{end}}"),
                Parsed::Else(pos) => return self.err(pos, "unexpected {{else}}"),
            }
        }
        Ok(root)
    }

    /// Nodes up to the `{{end}}` or `{{else}}` that closes them.
    fn item_list(&mut self) -> PResult<(Vec<Node>, Stop)> {
        let mut list = Vec::new();
        while self.peek_non_space().kind != Kind::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                Parsed::End(_) => return Ok((list, Stop::End)),
                Parsed::Else(pos) => return Ok((list, Stop::Else(pos))),
            }
        }
        let pos = self.peek().pos;
        self.err(pos, "unexpected EOF")
    }

    fn text_or_action(&mut self) -> PResult<Parsed> {
        let tok = self.next_non_space()?;
        match tok.kind {
            Kind::Text => Ok(Parsed::Node(Node::Text(tok.val))),
            Kind::LeftDelim => {
                self.nest(tok.pos)?;
                let parsed = self.action()?;
                self.depth -= 1;
                Ok(parsed)
            }
            _ => self.unexpected(&tok, "input"),
        }
    }

    /// After `{{`.
    fn action(&mut self) -> PResult<Parsed> {
        let tok = self.next_non_space()?;
        match tok.kind {
            Kind::Block | Kind::Define | Kind::Template => {
                self.err(tok.pos, format!("{{{{{}}}}} is not supported", tok.val))
            }
            Kind::Break => self
                .loop_control(tok.pos, "break")
                .map(|()| Parsed::Node(Node::Break(tok.pos))),
            Kind::Continue => self
                .loop_control(tok.pos, "continue")
                .map(|()| Parsed::Node(Node::Continue(tok.pos))),
            Kind::Else => self.else_control(tok.pos),
            Kind::End => self
                .expect(Kind::RightDelim, "end")
                .map(|_| Parsed::End(tok.pos)),
            Kind::If => Ok(Parsed::Node(Node::If(self.control("if")?))),
            Kind::Range => Ok(Parsed::Node(Node::Range(self.control("range")?))),
            Kind::With => Ok(Parsed::Node(Node::With(self.control("with")?))),
            _ => {
                self.backup();
                Ok(Parsed::Node(Node::Action(
                    self.pipeline("command", &Kind::RightDelim)?,
                )))
            }
        }
    }

    fn loop_control(&mut self, pos: usize, word: &str) -> PResult<()> {
        let tok = self.next_non_space()?;
        if tok.kind != Kind::RightDelim {
            return self.unexpected(&tok, &format!("{{{{{word}}}}}"));
        }
        if self.range_depth == 0 {
            return self.err(pos, format!("{{{{{word}}}}} outside {{{{range}}}}"));
        }
        Ok(())
    }

    fn else_control(&mut self, pos: usize) -> PResult<Parsed> {
        // "{{else if ...}}" and "{{else with ...}}" leave the keyword pending.
        let peek = self.peek_non_space();
        if matches!(peek.kind, Kind::If | Kind::With) {
            return Ok(Parsed::Else(pos));
        }
        self.expect(Kind::RightDelim, "else")?;
        Ok(Parsed::Else(pos))
    }

    /// `if`, `with` or `range`, after the keyword.
    fn control(&mut self, context: &str) -> PResult<Control> {
        let nvars = self.vars.len();
        let pipe = self.pipeline(context, &Kind::RightDelim)?;
        let is_range = context == "range";
        if is_range {
            self.range_depth += 1;
        }
        let listed = self.item_list();
        if is_range {
            self.range_depth -= 1;
        }
        let (list, stop) = listed?;
        let else_list = match stop {
            Stop::End => None,
            Stop::Else(pos) => {
                let peek = self.peek_non_space();
                if context == "if" && peek.kind == Kind::If {
                    self.next()?;
                    self.nest(pos)?;
                    let chained = self.control("if")?;
                    self.depth -= 1;
                    Some(vec![Node::If(chained)])
                } else if context == "with" && peek.kind == Kind::With {
                    self.next()?;
                    self.nest(pos)?;
                    let chained = self.control("with")?;
                    self.depth -= 1;
                    Some(vec![Node::With(chained)])
                } else {
                    let (list, stop) = self.item_list()?;
                    if let Stop::Else(pos) = stop {
                        return self.err(pos, "expected end; found {{else}}");
                    }
                    Some(list)
                }
            }
        };
        self.vars.truncate(nvars);
        Ok(Control {
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, context: &str, end: &Kind) -> PResult<Pipe> {
        let start = self.peek_non_space();
        let mut pipe = Pipe {
            pos: start.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        'decls: loop {
            let v = self.peek_non_space();
            if v.kind != Kind::Variable {
                break;
            }
            let save = self.i;
            self.next()?;
            let next = self.peek_non_space();
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = next.kind == Kind::Assign;
                    self.next()?;
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                }
                Kind::Char if next.val == "," => {
                    self.next()?;
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            Kind::Variable | Kind::RightDelim | Kind::RightParen => continue 'decls,
                            _ => return self.err(next.pos, "range can only initialize variables"),
                        }
                    }
                    return self.err(next.pos, format!("too many declarations in {context}"));
                }
                _ => self.i = save,
            }
            break;
        }
        loop {
            let tok = self.next_non_space()?;
            if tok.kind == *end {
                self.check_pipeline(&pipe, context, tok.pos)?;
                return Ok(pipe);
            }
            match tok.kind {
                Kind::Bool
                | Kind::CharConstant
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawStr
                | Kind::Str
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&tok, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str, end_pos: usize) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return self.err(end_pos, format!("missing value for {context}"));
        }
        for (i, cmd) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                cmd.args.first(),
                Some(
                    Arg::Bool(..)
                        | Arg::Dot(_)
                        | Arg::Nil(_)
                        | Arg::Number { .. }
                        | Arg::Str { .. }
                )
            ) {
                return self.err(
                    cmd.pos,
                    format!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let start = self.peek_non_space();
        let mut cmd = Command {
            pos: start.pos,
            args: Vec::new(),
        };
        loop {
            self.skip_spaces();
            if let Some(operand) = self.operand()? {
                cmd.args.push(operand);
            }
            let tok = self.next()?;
            match tok.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return self.unexpected(&tok, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.err(cmd.pos, "empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != Kind::Field {
            return Ok(Some(node));
        }
        let field_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            let tok = self.next()?;
            fields.push(tok.val[1..].to_owned());
        }
        Ok(Some(match node {
            Arg::Field { pos, mut idents } => {
                idents.extend(fields);
                Arg::Field { pos, idents }
            }
            Arg::Variable {
                pos,
                name,
                mut idents,
            } => {
                idents.extend(fields);
                Arg::Variable { pos, name, idents }
            }
            Arg::Bool(..) | Arg::Str { .. } | Arg::Number { .. } | Arg::Nil(_) | Arg::Dot(_) => {
                return self.err(
                    field_pos,
                    format!("unexpected . after term {}", quote(&node.to_string())),
                );
            }
            other => Arg::Chain {
                pos: other.pos(),
                node: Box::new(other),
                fields,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let tok = self.next_non_space()?;
        let pos = tok.pos;
        Ok(Some(match tok.kind {
            Kind::Identifier => {
                if funcs::lookup(&tok.val).is_none() {
                    return self.err(pos, format!("function {} not defined", quote(&tok.val)));
                }
                Arg::Identifier(pos, tok.val)
            }
            Kind::Dot => Arg::Dot(pos),
            Kind::Nil => Arg::Nil(pos),
            Kind::Variable => {
                if !self.vars.contains(&tok.val) {
                    return self.err(pos, format!("undefined variable {}", quote(&tok.val)));
                }
                Arg::Variable {
                    pos,
                    name: tok.val,
                    idents: Vec::new(),
                }
            }
            Kind::Field => Arg::Field {
                pos,
                idents: vec![tok.val[1..].to_owned()],
            },
            Kind::Bool => Arg::Bool(pos, tok.val == "true"),
            Kind::CharConstant | Kind::Number => match parse_number(&tok.val) {
                Ok(num) => Arg::Number {
                    pos,
                    num,
                    text: tok.val,
                },
                Err(msg) => return self.err(pos, msg),
            },
            Kind::LeftParen => {
                self.nest(pos)?;
                let pipe = self.pipeline("parenthesized pipeline", &Kind::RightParen)?;
                self.depth -= 1;
                Arg::Pipe(Box::new(pipe))
            }
            Kind::Str | Kind::RawStr => match unquote(&tok.val) {
                Some(value) => Arg::Str {
                    pos,
                    value,
                    text: tok.val,
                },
                None => {
                    return self.err(pos, format!("invalid syntax in quoted string {}", tok.val));
                }
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// A Go number literal: decimal, `0x`/`0o`/`0b`/leading-0 octal integers,
/// floats, `_` separators, and character constants like `'a'`.
fn parse_number(text: &str) -> Result<Num, String> {
    if text.starts_with('\'') {
        return match text
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .and_then(|b| unescape(b, '\''))
        {
            Some(units) if units.len() == 1 => Ok(Num::Int(match units[0] {
                Unit::Char(c) => i64::from(u32::from(c)),
                Unit::Byte(b) => i64::from(b),
            })),
            _ => Err(format!("malformed character constant: {text}")),
        };
    }
    let illegal = || format!("illegal number syntax: {}", quote(text));
    if text.ends_with('i') {
        return Err(format!(
            "complex numbers are not supported: {}",
            quote(text)
        ));
    }
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let radix = |prefixes: [&str; 2]| prefixes.iter().find_map(|p| body.strip_prefix(p));
    let int = if let Some(h) = radix(["0x", "0X"]) {
        Some(i128::from_str_radix(h, 16).map_err(|_| illegal())?)
    } else if let Some(o) = radix(["0o", "0O"]) {
        Some(i128::from_str_radix(o, 8).map_err(|_| illegal())?)
    } else if let Some(b) = radix(["0b", "0B"]) {
        Some(i128::from_str_radix(b, 2).map_err(|_| illegal())?)
    } else if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        let radix = if body.len() > 1 && body.starts_with('0') {
            8
        } else {
            10
        };
        Some(i128::from_str_radix(body, radix).map_err(|_| illegal())?)
    } else {
        None
    };
    if let Some(i) = int {
        let i = if neg { -i } else { i };
        return i64::try_from(i)
            .map(Num::Int)
            .map_err(|_| format!("integer overflow: {}", quote(text)));
    }
    if body.contains(['.', 'e', 'E'])
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && let Ok(f) = clean.parse::<f64>()
    {
        return Ok(Num::Float(f));
    }
    Err(illegal())
}

/// A piece of an unescaped literal: a character, or a raw byte from `\x`
/// or octal escapes.
enum Unit {
    Char(char),
    Byte(u8),
}

/// Go's `strconv.Unquote` for a template string literal.
fn unquote(text: &str) -> Option<String> {
    if let Some(raw) = text.strip_prefix('`').and_then(|t| t.strip_suffix('`')) {
        return Some(raw.replace('\r', ""));
    }
    let body = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut bytes = Vec::with_capacity(body.len());
    for unit in unescape(body, '"')? {
        match unit {
            Unit::Char(c) => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            Unit::Byte(b) => bytes.push(b),
        }
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn unescape(body: &str, quote: char) -> Option<Vec<Unit>> {
    let mut out = Vec::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            return None;
        }
        if c != '\\' {
            out.push(Unit::Char(c));
            continue;
        }
        let e = chars.next()?;
        out.push(match e {
            'a' => Unit::Char('\u{7}'),
            'b' => Unit::Char('\u{8}'),
            'f' => Unit::Char('\u{c}'),
            'n' => Unit::Char('\n'),
            'r' => Unit::Char('\r'),
            't' => Unit::Char('\t'),
            'v' => Unit::Char('\u{b}'),
            '\\' => Unit::Char('\\'),
            c if c == quote => Unit::Char(c),
            'x' => Unit::Byte(u8::try_from(hex_digits(&mut chars, 2, 16)?).ok()?),
            '0'..='7' => {
                let rest = hex_digits(&mut chars, 2, 8)?;
                let v = e.to_digit(8)? * 64 + rest;
                Unit::Byte(u8::try_from(v).ok()?)
            }
            'u' => Unit::Char(char::from_u32(hex_digits(&mut chars, 4, 16)?)?),
            'U' => Unit::Char(char::from_u32(hex_digits(&mut chars, 8, 16)?)?),
            _ => return None,
        });
    }
    Some(out)
}

fn hex_digits(chars: &mut std::str::Chars<'_>, n: usize, radix: u32) -> Option<u32> {
    let mut v = 0u32;
    for _ in 0..n {
        v = v * radix + chars.next()?.to_digit(radix)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        match parse(src) {
            Err(e) => e.to_string(),
            Ok(tree) => format!("parsed: {tree:?}"),
        }
    }

    fn ok(src: &str) -> Vec<Node> {
        match parse(src) {
            Ok(tree) => tree,
            Err(e) => panic!("{src}: {e}"),
        }
    }

    #[test]
    fn simple_action() {
        let tree = ok("a{{.A.B}}");
        assert_eq!(tree.len(), 2);
        let Node::Action(pipe) = &tree[1] else {
            panic!("not an action: {tree:?}")
        };
        assert_eq!(pipe.to_string(), ".A.B");
    }

    #[test]
    fn pipelines_and_declarations() {
        let tree = ok(r#"{{$x := .A | printf "%s" | upper}}{{$x}}{{$x = 2}}"#);
        let Node::Action(p) = &tree[0] else {
            panic!("{tree:?}")
        };
        assert_eq!(p.decl, vec!["$x".to_owned()]);
        assert_eq!(p.cmds.len(), 3);
        assert_eq!(p.to_string(), r#"$x := .A | printf "%s" | upper"#);
        let Node::Action(p) = &tree[2] else {
            panic!("{tree:?}")
        };
        assert!(p.is_assign);
        ok("{{range $i, $e := .}}{{$i}}{{$e}}{{end}}");
        ok("{{with $x := .A}}{{$x}}{{end}}");
        ok("{{(index .A 1).B}}");
        ok("{{.A |}}");
    }

    #[test]
    fn control_structures() {
        let tree = ok("{{if .A}}a{{else if .B}}b{{else}}c{{end}}");
        let Node::If(c) = &tree[0] else {
            panic!("{tree:?}")
        };
        let Some(else_list) = &c.else_list else {
            panic!("no else")
        };
        assert!(matches!(&else_list[0], Node::If(inner) if inner.else_list.is_some()));
        ok("{{with .A}}x{{else with .B}}y{{else}}z{{end}}");
        ok("{{range .}}{{if .}}{{break}}{{end}}{{continue}}{{else}}none{{end}}");
    }

    #[test]
    fn numbers_and_strings() {
        assert_eq!(parse_number("42"), Ok(Num::Int(42)));
        assert_eq!(parse_number("-7"), Ok(Num::Int(-7)));
        assert_eq!(parse_number("0x1F"), Ok(Num::Int(31)));
        assert_eq!(parse_number("0o17"), Ok(Num::Int(15)));
        assert_eq!(parse_number("017"), Ok(Num::Int(15)));
        assert_eq!(parse_number("0b101"), Ok(Num::Int(5)));
        assert_eq!(parse_number("1_000"), Ok(Num::Int(1000)));
        assert_eq!(parse_number("1.5"), Ok(Num::Float(1.5)));
        assert_eq!(parse_number("1e3"), Ok(Num::Float(1000.0)));
        assert_eq!(parse_number("'a'"), Ok(Num::Int(97)));
        assert_eq!(parse_number("'\\n'"), Ok(Num::Int(10)));
        assert!(parse_number("99999999999999999999").is_err());
        assert!(parse_number("1i").is_err());
        assert_eq!(
            unquote(r#""a\tb\"c\x41\101\u00e9\U0001F600""#).as_deref(),
            Some("a\tb\"cAAé😀")
        );
        assert_eq!(unquote("`a\\tb\r`").as_deref(), Some("a\\tb"));
        assert_eq!(unquote(r#""\q""#), None);
        assert_eq!(unquote(r#""\'""#), None);
    }

    #[test]
    fn errors_name_the_position() {
        assert_eq!(
            err("{{.ID}} {{foo}}"),
            "template: 1:11: function \"foo\" not defined"
        );
        assert_eq!(err("{{.ID"), "template: 1:6: unclosed action");
        assert_eq!(err("{{.ID }"), "template: 1:7: unexpected \"}\" in operand");
        assert_eq!(err("{{.ID}"), "template: 1:3: bad character U+007D '}'");
        assert_eq!(err("{{if .A}}x"), "template: 1:11: unexpected EOF");
        assert_eq!(err("x\n{{end}}"), "template: 2:3: unexpected {{end}}");
        assert_eq!(err("{{else}}"), "template: 1:3: unexpected {{else}}");
        assert_eq!(err("{{$x}}"), "template: 1:3: undefined variable \"$x\"");
        assert_eq!(
            err("{{if true}}{{$x := 1}}{{end}}{{$x}}"),
            "template: 1:32: undefined variable \"$x\""
        );
        assert_eq!(
            err("{{break}}"),
            "template: 1:3: {{break}} outside {{range}}"
        );
        assert_eq!(
            err("{{range .}}{{else}}{{continue}}{{end}}"),
            "template: 1:22: {{continue}} outside {{range}}"
        );
        assert_eq!(err("{{}}"), "template: 1:3: missing value for command");
        assert_eq!(err("{{if}}{{end}}"), "template: 1:5: missing value for if");
        assert_eq!(
            err("{{.A | 3}}"),
            "template: 1:8: non executable command in pipeline stage 2"
        );
        assert_eq!(
            err("{{.A | | .B}}"),
            "template: 1:8: unexpected \"|\" in command"
        );
        assert_eq!(
            err("{{\"x\".A}}"),
            "template: 1:6: unexpected . after term \"\\\"x\\\"\""
        );
        assert_eq!(
            err("{{template \"x\"}}"),
            "template: 1:3: {{template}} is not supported"
        );
        assert_eq!(
            err("{{range $a, $b, $c := .}}{{end}}"),
            "template: 1:15: too many declarations in range"
        );
        assert_eq!(
            err("{{if .A}}{{else}}{{else}}{{end}}"),
            "template: 1:20: expected end; found {{else}}"
        );
        assert_eq!(err("{{end x}}"), "template: 1:7: unexpected \"x\" in end");
        assert_eq!(
            err("{{\"\\q\"}}"),
            "template: 1:3: invalid syntax in quoted string \"\\q\""
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowing() {
        let deep = format!("{}{}", "{{if .}}".repeat(500), "{{end}}".repeat(500));
        assert!(err(&deep).contains("nesting too deep"));
        let parens = format!("{{{{{}.{}}}}}", "(".repeat(500), ")".repeat(500));
        assert!(err(&parens).contains("nesting too deep"));
        let fine = format!("{}{}", "{{if .}}".repeat(50), "{{end}}".repeat(50));
        ok(&fine);
    }
}
