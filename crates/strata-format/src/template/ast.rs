//! The parse tree, shaped like Go's `text/template/parse` nodes. `Display`
//! prints a node back as template text, for error messages.

use std::fmt;

/// An element of a list: text, an action or a control structure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    With(Control),
    Range(Control),
    Break(usize),
    Continue(usize),
}

/// `{{if/with/range pipeline}} list {{else}} else_list {{end}}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Control {
    pub(crate) pipe: Pipe,
    pub(crate) list: Vec<Node>,
    pub(crate) else_list: Option<Vec<Node>>,
}

/// `$x := cmd | cmd | ...`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pipe {
    pub(crate) pos: usize,
    pub(crate) is_assign: bool,
    pub(crate) decl: Vec<String>,
    pub(crate) cmds: Vec<Command>,
}

/// A function call or a single operand: `fn arg arg`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Command {
    pub(crate) pos: usize,
    pub(crate) args: Vec<Arg>,
}

/// An operand.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    /// `.A.B`
    Field {
        pos: usize,
        idents: Vec<String>,
    },
    /// `$x.A.B` (`idents` are the fields after the variable)
    Variable {
        pos: usize,
        name: String,
        idents: Vec<String>,
    },
    /// `(pipeline).A.B`
    Chain {
        pos: usize,
        node: Box<Arg>,
        fields: Vec<String>,
    },
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number {
        pos: usize,
        num: Num,
        text: String,
    },
    Str {
        pos: usize,
        value: String,
        text: String,
    },
    /// A function name.
    Identifier(usize, String),
    /// `(pipeline)`
    Pipe(Box<Pipe>),
}

/// A numeric literal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Arg {
    pub(crate) fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Chain { pos, .. }
            | Arg::Number { pos, .. }
            | Arg::Str { pos, .. } => *pos,
            Arg::Dot(pos) | Arg::Nil(pos) | Arg::Bool(pos, _) | Arg::Identifier(pos, _) => *pos,
            Arg::Pipe(p) => p.pos,
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field { idents, .. } => {
                for id in idents {
                    write!(f, ".{id}")?;
                }
                Ok(())
            }
            Arg::Variable { name, idents, .. } => {
                f.write_str(name)?;
                for id in idents {
                    write!(f, ".{id}")?;
                }
                Ok(())
            }
            Arg::Chain { node, fields, .. } => {
                match node.as_ref() {
                    Arg::Pipe(p) => write!(f, "({p})")?,
                    other => write!(f, "{other}")?,
                }
                for id in fields {
                    write!(f, ".{id}")?;
                }
                Ok(())
            }
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number { text, .. } | Arg::Str { text, .. } => f.write_str(text),
            Arg::Identifier(_, name) => f.write_str(name),
            Arg::Pipe(p) => write!(f, "({p})"),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{arg}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, cmd) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{cmd}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_round_trips_operands() {
        let field = Arg::Field {
            pos: 0,
            idents: vec!["A".into(), "B".into()],
        };
        assert_eq!(field.to_string(), ".A.B");
        let var = Arg::Variable {
            pos: 0,
            name: "$x".into(),
            idents: vec!["C".into()],
        };
        assert_eq!(var.to_string(), "$x.C");
        let s = Arg::Str {
            pos: 0,
            value: "a".into(),
            text: "\"a\"".into(),
        };
        let cmd = Command {
            pos: 0,
            args: vec![Arg::Identifier(0, "printf".into()), s, field],
        };
        let pipe = Pipe {
            pos: 0,
            is_assign: false,
            decl: vec!["$v".into()],
            cmds: vec![cmd],
        };
        assert_eq!(pipe.to_string(), "$v := printf \"a\" .A.B");
        let chain = Arg::Chain {
            pos: 0,
            node: Box::new(Arg::Pipe(Box::new(pipe))),
            fields: vec!["Z".into()],
        };
        assert_eq!(chain.to_string(), "($v := printf \"a\" .A.B).Z");
    }
}
