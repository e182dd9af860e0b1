//! Template functions: Go's `text/template` builtins and Docker's extras
//! (`json`, `split`, `join`, `title`, `lower`, `upper`, `pad`, `truncate`).

use serde_json::Value;

use crate::gofmt;
use crate::value::{Val, go_json, truth};

/// Why a function call failed.
#[derive(Debug, PartialEq)]
pub(crate) enum FnError {
    /// An argument of the wrong type; printed as is, as Go does.
    Arg(String),
    /// The function itself failed; printed as `error calling NAME: ...`.
    Call(String),
}

/// How many arguments a function takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

type Body = fn(&[Val]) -> Result<Val, FnError>;

/// A template function.
#[derive(Debug)]
pub(crate) struct Func {
    pub(crate) name: &'static str,
    pub(crate) arity: Arity,
    pub(crate) body: Body,
}

const FUNCS: &[Func] = &[
    // Go builtins. `and`/`or` short-circuit in the executor; these bodies
    // are the non-short-circuit meaning, kept for completeness.
    Func {
        name: "and",
        arity: Arity::AtLeast(1),
        body: and,
    },
    Func {
        name: "or",
        arity: Arity::AtLeast(1),
        body: or,
    },
    Func {
        name: "not",
        arity: Arity::Exactly(1),
        body: not,
    },
    Func {
        name: "len",
        arity: Arity::Exactly(1),
        body: len,
    },
    Func {
        name: "index",
        arity: Arity::AtLeast(1),
        body: index,
    },
    Func {
        name: "slice",
        arity: Arity::AtLeast(1),
        body: slice,
    },
    Func {
        name: "eq",
        arity: Arity::AtLeast(1),
        body: eq,
    },
    Func {
        name: "ne",
        arity: Arity::Exactly(2),
        body: ne,
    },
    Func {
        name: "lt",
        arity: Arity::Exactly(2),
        body: lt,
    },
    Func {
        name: "le",
        arity: Arity::Exactly(2),
        body: le,
    },
    Func {
        name: "gt",
        arity: Arity::Exactly(2),
        body: gt,
    },
    Func {
        name: "ge",
        arity: Arity::Exactly(2),
        body: ge,
    },
    Func {
        name: "print",
        arity: Arity::AtLeast(0),
        body: print,
    },
    Func {
        name: "println",
        arity: Arity::AtLeast(0),
        body: println,
    },
    Func {
        name: "printf",
        arity: Arity::AtLeast(1),
        body: printf,
    },
    Func {
        name: "urlquery",
        arity: Arity::AtLeast(0),
        body: urlquery,
    },
    Func {
        name: "html",
        arity: Arity::AtLeast(0),
        body: html,
    },
    Func {
        name: "js",
        arity: Arity::AtLeast(0),
        body: js,
    },
    // Docker's templates package.
    Func {
        name: "json",
        arity: Arity::Exactly(1),
        body: json,
    },
    Func {
        name: "split",
        arity: Arity::Exactly(2),
        body: split,
    },
    Func {
        name: "join",
        arity: Arity::Exactly(2),
        body: join,
    },
    Func {
        name: "title",
        arity: Arity::Exactly(1),
        body: title,
    },
    Func {
        name: "lower",
        arity: Arity::Exactly(1),
        body: lower,
    },
    Func {
        name: "upper",
        arity: Arity::Exactly(1),
        body: upper,
    },
    Func {
        name: "pad",
        arity: Arity::Exactly(3),
        body: pad,
    },
    Func {
        name: "truncate",
        arity: Arity::Exactly(2),
        body: truncate,
    },
];

/// Docker renders a table header with these functions replaced by ones that
/// return their first argument, so `{{upper .Name}}` heads its column `NAME`.
pub(crate) const HEADER_IDENTITY: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "truncate",
];

pub(crate) fn lookup(name: &str) -> Option<&'static Func> {
    FUNCS.iter().find(|f| f.name == name)
}

fn arg_err(msg: impl Into<String>) -> FnError {
    FnError::Arg(msg.into())
}

fn call_err(msg: impl Into<String>) -> FnError {
    FnError::Call(msg.into())
}

/// The string an argument must be (Go's `validateType` to `string`).
fn want_str(v: &Val) -> Result<&str, FnError> {
    match v {
        Val::J(Value::String(s)) => Ok(s),
        Val::NoValue => Err(arg_err("invalid value; expected string")),
        other => Err(arg_err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        ))),
    }
}

/// The integer an argument must be; integral floats are accepted.
fn want_int(v: &Val) -> Result<i64, FnError> {
    if let Val::J(Value::Number(n)) = v {
        if let Some(i) = n.as_i64() {
            return Ok(i);
        }
        if let Some(f) = n.as_f64()
            && f.fract() == 0.0
            && f.abs() < 9.0e15
        {
            return Ok(f as i64);
        }
    }
    match v {
        Val::NoValue => Err(arg_err("invalid value; expected int")),
        other => Err(arg_err(format!(
            "wrong type for value; expected int; got {}",
            other.type_name()
        ))),
    }
}

fn args_json(args: &[Val]) -> Vec<Option<&Value>> {
    args.iter().map(Val::json).collect()
}

fn and(args: &[Val]) -> Result<Val, FnError> {
    Ok(args
        .iter()
        .find(|a| !truth(a))
        .or(args.last())
        .cloned()
        .unwrap_or(Val::NoValue))
}

fn or(args: &[Val]) -> Result<Val, FnError> {
    Ok(args
        .iter()
        .find(|a| truth(a))
        .or(args.last())
        .cloned()
        .unwrap_or(Val::NoValue))
}

fn not(args: &[Val]) -> Result<Val, FnError> {
    Ok(Val::J(Value::Bool(!args.first().is_some_and(truth))))
}

fn len(args: &[Val]) -> Result<Val, FnError> {
    let n = match args.first() {
        Some(Val::J(Value::String(s))) => s.len(),
        Some(Val::J(Value::Array(a))) => a.len(),
        Some(Val::J(Value::Object(o))) => o.len(),
        Some(v) if v.is_nil() => return Err(call_err("len of nil pointer")),
        Some(v) => return Err(call_err(format!("len of type {}", v.type_name()))),
        None => return Err(call_err("len of nothing")),
    };
    Ok(Val::int(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// An index into something of length `len` (Go's `indexArg`); `len` itself
/// is allowed, as a slice bound.
fn index_arg(v: &Val, len: usize) -> Result<usize, FnError> {
    let x: i128 = match v {
        Val::J(Value::Number(n)) => match gofmt::int_of(n) {
            Some(i) => i,
            None => {
                return Err(call_err("cannot index slice/array with type float64"));
            }
        },
        v if v.is_nil() => return Err(call_err("cannot index slice/array with nil")),
        v => {
            return Err(call_err(format!(
                "cannot index slice/array with type {}",
                v.type_name()
            )));
        }
    };
    match usize::try_from(x) {
        Ok(i) if i <= len => Ok(i),
        _ => Err(call_err(format!("index out of range: {x}"))),
    }
}

fn index(args: &[Val]) -> Result<Val, FnError> {
    let Some((first, indexes)) = args.split_first() else {
        return Err(call_err("index of untyped nil"));
    };
    if first.is_nil() {
        return Err(call_err("index of untyped nil"));
    }
    let mut item = first.clone();
    for ix in indexes {
        item = match item {
            Val::J(Value::Array(a)) => {
                let i = index_arg(ix, a.len())?;
                match a.into_iter().nth(i) {
                    Some(v) => Val::J(v),
                    None => return Err(call_err(format!("index out of range: {i}"))),
                }
            }
            Val::J(Value::String(s)) => {
                let i = index_arg(ix, s.len())?;
                match s.as_bytes().get(i) {
                    Some(b) => Val::int(i64::from(*b)),
                    None => return Err(call_err(format!("index out of range: {i}"))),
                }
            }
            Val::J(Value::Object(mut o)) => match ix {
                Val::J(Value::String(k)) => o.remove(k.as_str()).map_or(Val::NoValue, Val::J),
                other => {
                    return Err(call_err(format!(
                        "value has type {}; should be string",
                        other.type_name()
                    )));
                }
            },
            v if v.is_nil() => return Err(call_err("index of nil pointer")),
            v => {
                return Err(call_err(format!(
                    "can't index item of type {}",
                    v.type_name()
                )));
            }
        };
    }
    Ok(item)
}

fn slice(args: &[Val]) -> Result<Val, FnError> {
    let Some((item, indexes)) = args.split_first() else {
        return Err(call_err("slice of untyped nil"));
    };
    if item.is_nil() {
        return Err(call_err("slice of untyped nil"));
    }
    if indexes.len() > 3 {
        return Err(call_err(format!(
            "too many slice indexes: {}",
            indexes.len()
        )));
    }
    let len = match item {
        Val::J(Value::String(s)) => {
            if indexes.len() == 3 {
                return Err(call_err("cannot 3-index slice a string"));
            }
            s.len()
        }
        Val::J(Value::Array(a)) => a.len(),
        v => {
            return Err(call_err(format!(
                "can't slice item of type {}",
                v.type_name()
            )));
        }
    };
    let mut idx = [0, len, len];
    for (k, ix) in indexes.iter().enumerate() {
        idx[k] = index_arg(ix, len)?;
    }
    if idx[0] > idx[1] {
        return Err(call_err(format!(
            "invalid slice index: {} > {}",
            idx[0], idx[1]
        )));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(call_err(format!(
            "invalid slice index: {} > {}",
            idx[1], idx[2]
        )));
    }
    Ok(match item {
        Val::J(Value::String(s)) => {
            Val::str(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into_owned())
        }
        Val::J(Value::Array(a)) => Val::J(Value::Array(a[idx[0]..idx[1]].to_vec())),
        _ => Val::NoValue,
    })
}

/// A comparable scalar, as Go's `basicKind`.
enum Basic<'a> {
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
    Nil,
    Other,
}

fn basic(v: &Val) -> Basic<'_> {
    match v {
        Val::NoValue | Val::J(Value::Null) => Basic::Nil,
        Val::J(Value::Bool(b)) => Basic::Bool(*b),
        Val::J(Value::Number(n)) => match gofmt::int_of(n) {
            Some(i) => Basic::Int(i),
            None => Basic::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Val::J(Value::String(s)) => Basic::Str(s),
        Val::J(_) => Basic::Other,
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

fn equal(a: &Val, b: &Val) -> Result<bool, FnError> {
    Ok(match (basic(a), basic(b)) {
        (Basic::Nil, Basic::Nil) => true,
        (Basic::Nil, _) | (_, Basic::Nil) => false,
        (Basic::Other, _) => {
            return Err(call_err(format!("non-comparable type {}", a.type_name())));
        }
        (_, Basic::Other) => {
            return Err(call_err(format!("non-comparable type {}", b.type_name())));
        }
        (Basic::Bool(x), Basic::Bool(y)) => x == y,
        (Basic::Int(x), Basic::Int(y)) => x == y,
        (Basic::Float(x), Basic::Float(y)) => x == y,
        // Lenient: JSON does not say whether 1 was meant as an int or a float.
        (Basic::Int(x), Basic::Float(y)) | (Basic::Float(y), Basic::Int(x)) => x as f64 == y,
        (Basic::Str(x), Basic::Str(y)) => x == y,
        _ => return Err(call_err(BAD_COMPARISON)),
    })
}

fn less(a: &Val, b: &Val) -> Result<bool, FnError> {
    Ok(match (basic(a), basic(b)) {
        (Basic::Int(x), Basic::Int(y)) => x < y,
        (Basic::Float(x), Basic::Float(y)) => x < y,
        (Basic::Int(x), Basic::Float(y)) => (x as f64) < y,
        (Basic::Float(x), Basic::Int(y)) => x < y as f64,
        (Basic::Str(x), Basic::Str(y)) => x < y,
        (Basic::Bool(_), Basic::Bool(_))
        | (Basic::Nil | Basic::Other, _)
        | (_, Basic::Nil | Basic::Other) => {
            return Err(call_err(BAD_COMPARISON_TYPE));
        }
        _ => return Err(call_err(BAD_COMPARISON)),
    })
}

fn boolean(b: bool) -> Result<Val, FnError> {
    Ok(Val::J(Value::Bool(b)))
}

fn two(args: &[Val]) -> Result<(&Val, &Val), FnError> {
    match args {
        [a, b] => Ok((a, b)),
        _ => Err(call_err("missing argument for comparison")),
    }
}

fn eq(args: &[Val]) -> Result<Val, FnError> {
    let Some((first, rest)) = args.split_first() else {
        return Err(call_err("missing argument for comparison"));
    };
    if rest.is_empty() {
        return Err(call_err("missing argument for comparison"));
    }
    for other in rest {
        if equal(first, other)? {
            return boolean(true);
        }
    }
    boolean(false)
}

fn ne(args: &[Val]) -> Result<Val, FnError> {
    let (a, b) = two(args)?;
    boolean(!equal(a, b)?)
}

fn lt(args: &[Val]) -> Result<Val, FnError> {
    let (a, b) = two(args)?;
    boolean(less(a, b)?)
}

fn le(args: &[Val]) -> Result<Val, FnError> {
    let (a, b) = two(args)?;
    boolean(less(a, b)? || equal(a, b)?)
}

fn gt(args: &[Val]) -> Result<Val, FnError> {
    let (a, b) = two(args)?;
    boolean(!(less(a, b)? || equal(a, b)?))
}

fn ge(args: &[Val]) -> Result<Val, FnError> {
    let (a, b) = two(args)?;
    boolean(!less(a, b)?)
}

fn print(args: &[Val]) -> Result<Val, FnError> {
    Ok(Val::str(gofmt::sprint(&args_json(args))))
}

fn println(args: &[Val]) -> Result<Val, FnError> {
    Ok(Val::str(gofmt::sprintln(&args_json(args))))
}

fn printf(args: &[Val]) -> Result<Val, FnError> {
    let Some((format, rest)) = args.split_first() else {
        return Err(arg_err("invalid value; expected string"));
    };
    Ok(Val::str(gofmt::sprintf(
        want_str(format)?,
        &args_json(rest),
    )))
}

/// Go's `evalArgs`: a lone string as is, anything else through `Sprint`.
fn eval_args(args: &[Val]) -> String {
    match args {
        [Val::J(Value::String(s))] => s.clone(),
        _ => gofmt::sprint(&args_json(args)),
    }
}

fn urlquery(args: &[Val]) -> Result<Val, FnError> {
    let mut out = String::new();
    for b in eval_args(args).bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    Ok(Val::str(out))
}

fn html(args: &[Val]) -> Result<Val, FnError> {
    let mut out = String::new();
    for c in eval_args(args).chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Ok(Val::str(out))
}

fn js(args: &[Val]) -> Result<Val, FnError> {
    let mut out = String::new();
    for c in eval_args(args).chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if c.is_ascii() || gofmt::is_print(c) => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
        }
    }
    Ok(Val::str(out))
}

fn json(args: &[Val]) -> Result<Val, FnError> {
    Ok(Val::str(match args.first().and_then(Val::json) {
        Some(v) => go_json(v),
        None => "null".to_owned(),
    }))
}

/// Go's `strings.Split`.
fn split(args: &[Val]) -> Result<Val, FnError> {
    let (s, sep) = two_strs(args)?;
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep).map(|p| Value::String(p.to_owned())).collect()
    };
    Ok(Val::J(Value::Array(parts)))
}

fn two_strs(args: &[Val]) -> Result<(&str, &str), FnError> {
    match args {
        [a, b] => Ok((want_str(a)?, want_str(b)?)),
        _ => Err(arg_err("invalid value; expected string")),
    }
}

/// Go's `strings.Join`; elements that are not strings print as `%v`, and
/// a missing or null list joins to "" (Go's nil slice).
fn join(args: &[Val]) -> Result<Val, FnError> {
    let [list, sep] = args else {
        return Err(arg_err("invalid value; expected string"));
    };
    let sep = want_str(sep)?;
    let items = match list {
        Val::J(Value::Array(a)) => a,
        v if v.is_nil() => return Ok(Val::str("")),
        v => {
            return Err(arg_err(format!(
                "wrong type for value; expected []string; got {}",
                v.type_name()
            )));
        }
    };
    let parts: Vec<String> = items
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => gofmt::display(other),
        })
        .collect();
    Ok(Val::str(parts.join(sep)))
}

/// Go's (deprecated but still used by Docker) `strings.Title`: upper-cases
/// the first letter of every word.
fn title(args: &[Val]) -> Result<Val, FnError> {
    let s = want_str(args.first().unwrap_or(&Val::NoValue))?;
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        if is_separator(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    Ok(Val::str(out))
}

fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphanumeric() {
        return false;
    }
    c.is_whitespace()
}

fn lower(args: &[Val]) -> Result<Val, FnError> {
    Ok(Val::str(
        want_str(args.first().unwrap_or(&Val::NoValue))?.to_lowercase(),
    ))
}

fn upper(args: &[Val]) -> Result<Val, FnError> {
    Ok(Val::str(
        want_str(args.first().unwrap_or(&Val::NoValue))?.to_uppercase(),
    ))
}

/// Docker's `pad STR LEFT RIGHT`: spaces around a non-empty string.
fn pad(args: &[Val]) -> Result<Val, FnError> {
    let [s, left, right] = args else {
        return Err(arg_err("invalid value; expected string"));
    };
    let s = want_str(s)?;
    let (left, right) = (want_int(left)?, want_int(right)?);
    if s.is_empty() {
        return Ok(Val::str(""));
    }
    let (Ok(left), Ok(right)) = (usize::try_from(left), usize::try_from(right)) else {
        return Err(call_err("strings: negative Repeat count"));
    };
    Ok(Val::str(format!(
        "{}{s}{}",
        " ".repeat(left),
        " ".repeat(right)
    )))
}

/// Docker's `truncate STR N`: the first N characters.
fn truncate(args: &[Val]) -> Result<Val, FnError> {
    let [s, n] = args else {
        return Err(arg_err("invalid value; expected string"));
    };
    let s = want_str(s)?;
    let n = want_int(n)?;
    let Ok(n) = usize::try_from(n) else {
        return Err(call_err(format!("slice bounds out of range [:{n}]")));
    };
    Ok(Val::str(match s.char_indices().nth(n) {
        Some((at, _)) => &s[..at],
        None => s,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(name: &str, args: &[Value]) -> Result<Val, FnError> {
        let args: Vec<Val> = args.iter().cloned().map(Val::J).collect();
        let f = lookup(name).ok_or_else(|| call_err("no such function"))?;
        (f.body)(&args)
    }

    fn ok(name: &str, args: &[Value]) -> Value {
        match call(name, args) {
            Ok(Val::J(v)) => v,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn err(name: &str, args: &[Value]) -> String {
        match call(name, args) {
            Err(FnError::Arg(m) | FnError::Call(m)) => m,
            other => panic!("{name}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn logic() {
        assert_eq!(ok("and", &[json!(1), json!(""), json!(2)]), json!(""));
        assert_eq!(ok("and", &[json!(1), json!(2)]), json!(2));
        assert_eq!(ok("or", &[json!(0), json!("x"), json!(2)]), json!("x"));
        assert_eq!(ok("or", &[json!(0), json!("")]), json!(""));
        assert_eq!(ok("not", &[json!([])]), json!(true));
        assert_eq!(ok("not", &[json!("a")]), json!(false));
    }

    #[test]
    fn len_counts_bytes_items_and_keys() {
        assert_eq!(ok("len", &[json!("héllo")]), json!(6));
        assert_eq!(ok("len", &[json!([1, 2, 3])]), json!(3));
        assert_eq!(ok("len", &[json!({"a": 1})]), json!(1));
        assert_eq!(err("len", &[json!(5)]), "len of type int");
        assert_eq!(err("len", &[json!(null)]), "len of nil pointer");
    }

    #[test]
    fn index_and_slice() {
        assert_eq!(ok("index", &[json!(["a", "b"]), json!(1)]), json!("b"));
        assert_eq!(
            ok("index", &[json!({"k": {"j": 3}}), json!("k"), json!("j")]),
            json!(3)
        );
        assert_eq!(ok("index", &[json!("abc"), json!(1)]), json!(98));
        assert_eq!(ok("index", &[json!([1])]), json!([1]));
        assert_eq!(
            call("index", &[json!({"k": 1}), json!("missing")]).ok(),
            Some(Val::NoValue)
        );
        assert_eq!(
            err("index", &[json!(["a"]), json!(1)]),
            "index out of range: 1"
        );
        assert_eq!(
            err("index", &[json!(["a"]), json!(-1)]),
            "index out of range: -1"
        );
        assert_eq!(
            err("index", &[json!(null), json!(0)]),
            "index of untyped nil"
        );
        assert_eq!(
            err("index", &[json!(5), json!(0)]),
            "can't index item of type int"
        );
        assert_eq!(
            err("index", &[json!({"a": 1}), json!(0)]),
            "value has type int; should be string"
        );
        assert_eq!(ok("slice", &[json!([1, 2, 3]), json!(1)]), json!([2, 3]));
        assert_eq!(
            ok("slice", &[json!([1, 2, 3]), json!(0), json!(2)]),
            json!([1, 2])
        );
        assert_eq!(
            ok("slice", &[json!("abcdef"), json!(1), json!(3)]),
            json!("bc")
        );
        assert_eq!(ok("slice", &[json!("abc")]), json!("abc"));
        assert_eq!(
            err("slice", &[json!("abc"), json!(2), json!(1)]),
            "invalid slice index: 2 > 1"
        );
        assert_eq!(
            err("slice", &[json!("abc"), json!(4)]),
            "index out of range: 4"
        );
        assert_eq!(
            err("slice", &[json!("abc"), json!(0), json!(1), json!(2)]),
            "cannot 3-index slice a string"
        );
    }

    #[test]
    fn comparisons() {
        assert_eq!(ok("eq", &[json!("running"), json!("running")]), json!(true));
        assert_eq!(ok("eq", &[json!("a"), json!("b"), json!("a")]), json!(true));
        assert_eq!(ok("eq", &[json!(1), json!(1.0)]), json!(true));
        assert_eq!(ok("eq", &[json!(null), json!(null)]), json!(true));
        assert_eq!(ok("eq", &[json!(null), json!("x")]), json!(false));
        assert_eq!(err("eq", &[json!("1"), json!(1)]), BAD_COMPARISON);
        assert_eq!(
            err("eq", &[json!([1]), json!([1])]),
            "non-comparable type []interface {}"
        );
        assert_eq!(err("eq", &[json!(1)]), "missing argument for comparison");
        assert_eq!(ok("ne", &[json!(1), json!(2)]), json!(true));
        assert_eq!(ok("lt", &[json!(1), json!(2)]), json!(true));
        assert_eq!(ok("lt", &[json!("b"), json!("a")]), json!(false));
        assert_eq!(ok("le", &[json!(2), json!(2)]), json!(true));
        assert_eq!(ok("gt", &[json!(2.5), json!(2)]), json!(true));
        assert_eq!(ok("ge", &[json!(1), json!(2)]), json!(false));
        assert_eq!(err("lt", &[json!(true), json!(false)]), BAD_COMPARISON_TYPE);
        assert_eq!(err("lt", &[json!(1), json!("a")]), BAD_COMPARISON);
        assert_eq!(err("lt", &[json!(null), json!(1)]), BAD_COMPARISON_TYPE);
    }

    #[test]
    fn printing() {
        assert_eq!(
            ok("print", &[json!("a"), json!(1), json!(2)]),
            json!("a1 2")
        );
        assert_eq!(ok("println", &[json!("a"), json!(1)]), json!("a 1\n"));
        assert_eq!(
            ok("printf", &[json!("%s:%d"), json!("web"), json!(3)]),
            json!("web:3")
        );
        assert_eq!(
            err("printf", &[json!(1)]),
            "wrong type for value; expected string; got int"
        );
        assert_eq!(
            ok("urlquery", &[json!("a b&c=d/é")]),
            json!("a+b%26c%3Dd%2F%C3%A9")
        );
        assert_eq!(
            ok("html", &[json!("<a href='x'>&\"")]),
            json!("&lt;a href=&#39;x&#39;&gt;&amp;&#34;")
        );
        assert_eq!(
            ok("js", &[json!("a'b\"<=>\n")]),
            json!("a\\'b\\\"\\u003C\\u003D\\u003E\\u000A")
        );
    }

    #[test]
    fn docker_string_functions() {
        assert_eq!(
            ok("json", &[json!({"b": 1, "a": "<x>"})]),
            json!(r#"{"a":"<x>","b":1}"#)
        );
        assert_eq!(
            ok("split", &[json!("a,b,,c"), json!(",")]),
            json!(["a", "b", "", "c"])
        );
        assert_eq!(ok("split", &[json!("ab"), json!("")]), json!(["a", "b"]));
        assert_eq!(ok("split", &[json!(""), json!(",")]), json!([""]));
        assert_eq!(ok("join", &[json!(["a", "b"]), json!(", ")]), json!("a, b"));
        assert_eq!(
            ok("join", &[json!(["a", 1, true]), json!("-")]),
            json!("a-1-true")
        );
        assert_eq!(ok("join", &[json!(null), json!(",")]), json!(""));
        assert_eq!(
            err("join", &[json!("ab"), json!(",")]),
            "wrong type for value; expected []string; got string"
        );
        assert_eq!(
            ok("title", &[json!("hello wide-world foo_bar")]),
            json!("Hello Wide-World Foo_bar")
        );
        assert_eq!(ok("lower", &[json!("ÀB")]), json!("àb"));
        assert_eq!(ok("upper", &[json!("àb")]), json!("ÀB"));
        assert_eq!(
            err("upper", &[json!(5)]),
            "wrong type for value; expected string; got int"
        );
        assert_eq!(ok("pad", &[json!("x"), json!(2), json!(1)]), json!("  x "));
        assert_eq!(ok("pad", &[json!(""), json!(2), json!(1)]), json!(""));
        assert_eq!(
            err("pad", &[json!("x"), json!(-1), json!(1)]),
            "strings: negative Repeat count"
        );
        assert_eq!(
            err("pad", &[json!("x"), json!("a"), json!(1)]),
            "wrong type for value; expected int; got string"
        );
        assert_eq!(ok("truncate", &[json!("abcdef"), json!(3)]), json!("abc"));
        assert_eq!(ok("truncate", &[json!("héllo"), json!(2)]), json!("hé"));
        assert_eq!(ok("truncate", &[json!("ab"), json!(5)]), json!("ab"));
    }

    #[test]
    fn missing_values_as_arguments() {
        assert_eq!(
            (lookup("upper").map(|f| f.body)).map(|b| b(&[Val::NoValue])),
            Some(Err(FnError::Arg("invalid value; expected string".into())))
        );
        assert_eq!(
            lookup("json").map(|f| (f.body)(&[Val::NoValue])),
            Some(Ok(Val::str("null")))
        );
    }
}
