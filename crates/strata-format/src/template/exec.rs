//! Runs a parse tree against a JSON value, following Go's
//! `text/template` executor with `map[string]interface{}` data.

use std::fmt::Display;

use serde_json::{Number, Value};

use super::ast::{Arg, Command, Control, Node, Num, Pipe};
use crate::error::{FormatError, line_col};
use crate::funcs::{self, Arity, FnError};
use crate::value::{Val, truth};

type EResult<T> = Result<T, FormatError>;

/// How a list finished: normally, or on `{{break}}`/`{{continue}}`.
#[derive(Debug, PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// Executes `root` with `data` as dot and `$`. Returns the output produced,
/// even on error (a table header keeps its partial output, as Docker's does).
///
/// In header mode, a missing key renders as the field name in upper case,
/// a field of a non-object is the object itself, and Docker's header
/// functions (`json`, `upper`, ...) return their first argument unchanged.
pub(crate) fn execute(
    src: &str,
    root: &[Node],
    data: &Value,
    header: bool,
) -> (String, EResult<()>) {
    let dot = Val::J(data.clone());
    let mut ex = Exec {
        src,
        out: String::new(),
        vars: vec![("$".to_owned(), dot.clone())],
        header,
    };
    let result = ex.walk(&dot, root).map(|_| ());
    (ex.out, result)
}

struct Exec<'t> {
    src: &'t str,
    out: String,
    vars: Vec<(String, Val)>,
    header: bool,
}

impl Exec<'_> {
    fn error(&self, pos: usize, node: &dyn Display, msg: impl Into<String>) -> FormatError {
        let (line, col) = line_col(self.src, pos);
        FormatError::Exec {
            line,
            col,
            node: node.to_string(),
            msg: msg.into(),
        }
    }

    fn fail<T>(&self, pos: usize, node: &dyn Display, msg: impl Into<String>) -> EResult<T> {
        Err(self.error(pos, node, msg))
    }

    fn walk(&mut self, dot: &Val, nodes: &[Node]) -> EResult<Flow> {
        for node in nodes {
            let flow = match node {
                Node::Text(text) => {
                    self.out.push_str(text);
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    let v = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.out.push_str(&v.print());
                    }
                    Flow::Normal
                }
                Node::If(c) => self.walk_if_or_with(dot, c, false)?,
                Node::With(c) => self.walk_if_or_with(dot, c, true)?,
                Node::Range(c) => self.walk_range(dot, c)?,
                Node::Break(_) => Flow::Break,
                Node::Continue(_) => Flow::Continue,
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_if_or_with(&mut self, dot: &Val, c: &Control, is_with: bool) -> EResult<Flow> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &c.pipe)?;
        let flow = if truth(&val) {
            if is_with {
                self.walk(&val, &c.list)?
            } else {
                self.walk(dot, &c.list)?
            }
        } else if let Some(else_list) = &c.else_list {
            self.walk(dot, else_list)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn walk_range(&mut self, dot: &Val, c: &Control) -> EResult<Flow> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &c.pipe)?;
        let body_mark = self.vars.len();
        let mut ran = false;
        match val {
            Val::J(Value::Array(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    ran = true;
                    let index = Val::int(i64::try_from(i).unwrap_or(i64::MAX));
                    if self.iteration(c, index, Val::J(item), body_mark)? {
                        break;
                    }
                }
            }
            Val::J(Value::Object(map)) => {
                let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                for (key, item) in entries {
                    ran = true;
                    if self.iteration(c, Val::str(key), Val::J(item), body_mark)? {
                        break;
                    }
                }
            }
            Val::J(Value::Number(n)) if n.as_i64().is_some() => {
                let count = n.as_i64().unwrap_or(0);
                if c.pipe.decl.len() > 1 {
                    return self.fail(
                        c.pipe.pos,
                        &c.pipe,
                        format!("can't use {n} to iterate over more than one variable"),
                    );
                }
                for i in 0..count {
                    ran = true;
                    if self.iteration(c, Val::int(i), Val::int(i), body_mark)? {
                        break;
                    }
                }
            }
            v if v.is_nil() => {}
            other => {
                return self.fail(
                    c.pipe.pos,
                    &c.pipe,
                    format!("range can't iterate over {}", other.print()),
                );
            }
        }
        let mut flow = Flow::Normal;
        if !ran && let Some(else_list) = &c.else_list {
            flow = self.walk(dot, else_list)?;
        }
        self.vars.truncate(mark);
        Ok(flow)
    }

    /// One pass of a range body; true when the body said `{{break}}`.
    fn iteration(&mut self, c: &Control, index: Val, elem: Val, body_mark: usize) -> EResult<bool> {
        let pipe = &c.pipe;
        match (pipe.decl.as_slice(), pipe.is_assign) {
            ([], _) => {}
            ([one], true) => self.set_var(one, elem.clone(), pipe)?,
            ([first, second, ..], true) => {
                self.set_var(first, index, pipe)?;
                self.set_var(second, elem.clone(), pipe)?;
            }
            ([_], false) => self.set_top_var(1, elem.clone()),
            ([_, _, ..], false) => {
                self.set_top_var(1, elem.clone());
                self.set_top_var(2, index);
            }
        }
        let flow = self.walk(&elem, &c.list)?;
        self.vars.truncate(body_mark);
        Ok(flow == Flow::Break)
    }

    fn set_top_var(&mut self, n: usize, v: Val) {
        let len = self.vars.len();
        if len >= n {
            self.vars[len - n].1 = v;
        }
    }

    fn set_var(&mut self, name: &str, v: Val, node: &Pipe) -> EResult<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => self.fail(node.pos, node, format!("undefined variable: {name}")),
        }
    }

    fn var_value(&self, name: &str, node: &Arg) -> EResult<&Val> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v),
            None => self.fail(node.pos(), node, format!("undefined variable: {name}")),
        }
    }

    fn eval_pipeline(&mut self, dot: &Val, pipe: &Pipe) -> EResult<Val> {
        let mut value = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Val::NoValue);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone(), pipe)?;
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    /// One command; `fin` is the value piped in from the previous command.
    fn eval_command(&mut self, dot: &Val, cmd: &Command, fin: Option<Val>) -> EResult<Val> {
        let Some(first) = cmd.args.first() else {
            return self.fail(cmd.pos, cmd, "empty command");
        };
        let has_args = cmd.args.len() > 1 || fin.is_some();
        match first {
            Arg::Field { idents, .. } => self.eval_field_chain(dot, first, idents, has_args),
            Arg::Chain { node, fields, .. } => {
                let receiver = self.eval_chain_receiver(dot, first, node)?;
                self.eval_field_chain(&receiver, first, fields, has_args)
            }
            Arg::Identifier(_, name) => {
                self.eval_function(dot, name, cmd.pos, cmd, &cmd.args[1..], fin)
            }
            Arg::Variable { name, idents, .. } => {
                if idents.is_empty() {
                    self.not_a_function(cmd, has_args)?;
                }
                self.eval_field_chain(self.var_value(name, first)?, first, idents, has_args)
            }
            Arg::Pipe(p) => {
                self.not_a_function(cmd, has_args)?;
                self.eval_pipeline(dot, p)
            }
            other => {
                self.not_a_function(cmd, has_args)?;
                if let Arg::Nil(pos) = other {
                    return self.fail(*pos, other, "nil is not a command");
                }
                self.eval_arg(dot, other)
            }
        }
    }

    fn not_a_function(&self, cmd: &Command, has_args: bool) -> EResult<()> {
        match cmd.args.first() {
            Some(first) if has_args => self.fail(
                first.pos(),
                first,
                format!("can't give argument to non-function {first}"),
            ),
            _ => Ok(()),
        }
    }

    fn eval_chain_receiver(&mut self, dot: &Val, chain: &Arg, node: &Arg) -> EResult<Val> {
        if let Arg::Nil(_) = node {
            return self.fail(
                chain.pos(),
                chain,
                format!("indirection through explicit nil in {chain}"),
            );
        }
        self.eval_arg(dot, node)
    }

    /// An operand used as a function argument (Go's `evalEmptyInterface`).
    fn eval_arg(&mut self, dot: &Val, arg: &Arg) -> EResult<Val> {
        Ok(match arg {
            Arg::Field { idents, .. } => return self.eval_field_chain(dot, arg, idents, false),
            Arg::Variable { name, idents, .. } => {
                return self.eval_field_chain(self.var_value(name, arg)?, arg, idents, false);
            }
            Arg::Chain { node, fields, .. } => {
                let receiver = self.eval_chain_receiver(dot, arg, node)?;
                return self.eval_field_chain(&receiver, arg, fields, false);
            }
            Arg::Identifier(pos, name) => {
                return self.eval_function(dot, name, *pos, arg, &[], None);
            }
            Arg::Pipe(p) => return self.eval_pipeline(dot, p),
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(_) => Val::J(Value::Null),
            Arg::Bool(_, b) => Val::J(Value::Bool(*b)),
            Arg::Str { value, .. } => Val::str(value.clone()),
            Arg::Number {
                num: Num::Int(i), ..
            } => Val::int(*i),
            Arg::Number {
                num: Num::Float(f), ..
            } => Number::from_f64(*f).map_or(Val::NoValue, |n| Val::J(Value::Number(n))),
        })
    }

    /// `.A.B.C` from `receiver`, cloning only the value found. A missing
    /// key ends the chain with no value, as in Go; `has_args` (arguments
    /// given to the last field) is an error, as fields are not methods.
    fn eval_field_chain(
        &self,
        receiver: &Val,
        node: &Arg,
        idents: &[String],
        has_args: bool,
    ) -> EResult<Val> {
        let mut cur: &Value = match receiver {
            Val::J(v) => v,
            Val::NoValue => return Ok(Val::NoValue),
        };
        for (i, name) in idents.iter().enumerate() {
            cur = match cur {
                Value::Object(map) => {
                    if has_args && i + 1 == idents.len() {
                        return self.fail(
                            node.pos(),
                            node,
                            format!("{name} is not a method but has arguments"),
                        );
                    }
                    match map.get(name) {
                        Some(v) => v,
                        None if self.header => return Ok(Val::str(name.to_uppercase())),
                        None => return Ok(Val::NoValue),
                    }
                }
                other if self.header => return Ok(Val::J(other.clone())),
                Value::Null => {
                    return self.fail(
                        node.pos(),
                        node,
                        format!("nil pointer evaluating <nil>.{name}"),
                    );
                }
                other => {
                    return self.fail(
                        node.pos(),
                        node,
                        format!(
                            "can't evaluate field {name} in type {}",
                            crate::gofmt::type_name(other)
                        ),
                    );
                }
            };
        }
        Ok(Val::J(cur.clone()))
    }

    fn eval_function(
        &mut self,
        dot: &Val,
        name: &str,
        pos: usize,
        node: &dyn Display,
        args: &[Arg],
        fin: Option<Val>,
    ) -> EResult<Val> {
        let Some(func) = funcs::lookup(name) else {
            return self.fail(
                pos,
                node,
                format!("{} is not a defined function", crate::gofmt::quote(name)),
            );
        };
        let n = args.len() + usize::from(fin.is_some());
        match func.arity {
            Arity::Exactly(k) if n != k => {
                return self.fail(
                    pos,
                    node,
                    format!("wrong number of args for {name}: want {k} got {n}"),
                );
            }
            Arity::AtLeast(k) if n < k => {
                return self.fail(
                    pos,
                    node,
                    format!("wrong number of args for {name}: want at least {k} got {n}"),
                );
            }
            _ => {}
        }
        if name == "and" || name == "or" {
            // Short-circuit: stop at the first false (and) or true (or) value.
            let stop_on = name == "or";
            let mut v = Val::NoValue;
            for arg in args {
                v = self.eval_arg(dot, arg)?;
                if truth(&v) == stop_on {
                    return Ok(v);
                }
            }
            return Ok(fin.unwrap_or(v));
        }
        let mut vals = Vec::with_capacity(n);
        for arg in args {
            vals.push(self.eval_arg(dot, arg)?);
        }
        vals.extend(fin);
        if self.header && funcs::HEADER_IDENTITY.contains(&name) {
            return Ok(vals.into_iter().next().unwrap_or(Val::NoValue));
        }
        (func.body)(&vals).map_err(|e| match e {
            FnError::Arg(msg) => self.error(pos, node, msg),
            FnError::Call(msg) => self.error(pos, node, format!("error calling {name}: {msg}")),
        })
    }
}
