//! Values as templates see them: decoded JSON, plus Go's "no value" for a
//! missing map key; Go's truthiness, `%v` printing and `encoding/json`.

use serde_json::Value;

use crate::gofmt;

/// A template value: Go's `reflect.Value` over decoded JSON.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    /// Go's invalid value: what a missing map key yields. Prints `<no value>`.
    NoValue,
    /// A JSON value (`null` is Go's `nil`).
    J(Value),
}

impl Val {
    pub(crate) fn json(&self) -> Option<&Value> {
        match self {
            Val::NoValue => None,
            Val::J(v) => Some(v),
        }
    }

    pub(crate) fn str(s: impl Into<String>) -> Val {
        Val::J(Value::String(s.into()))
    }

    pub(crate) fn int(i: i64) -> Val {
        Val::J(Value::from(i))
    }

    /// Whether this is Go's `nil` or an invalid value.
    pub(crate) fn is_nil(&self) -> bool {
        matches!(self, Val::NoValue | Val::J(Value::Null))
    }

    /// Go's name for the value's type, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Val::NoValue => "<nil>",
            Val::J(v) => gofmt::type_name(v),
        }
    }

    /// How an action `{{...}}` prints the value.
    pub(crate) fn print(&self) -> String {
        match self {
            Val::NoValue => "<no value>".to_owned(),
            Val::J(v) => go_display(v),
        }
    }
}

/// Go template truthiness: false, 0, "", nil and empty arrays and objects
/// are false; everything else is true.
pub(crate) fn truth(v: &Val) -> bool {
    match v {
        Val::NoValue => false,
        Val::J(v) => match v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => match gofmt::int_of(n) {
                Some(i) => i != 0,
                None => n.as_f64().is_some_and(|f| f != 0.0),
            },
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
        },
    }
}

/// Go's `fmt` `%v` of a decoded JSON value, as `{{.X}}` prints it: strings
/// verbatim, integral numbers as integers, other numbers as Go's shortest
/// `%g`, `true`/`false`, `null` as `<nil>`, arrays as `[a b c]`, objects as
/// `map[k1:v1 k2:v2]` with sorted keys, all recursively.
///
/// ```
/// let v = serde_json::json!([["driver-type", "io.containerd.snapshotter.v1"]]);
/// assert_eq!(strata_format::go_display(&v), "[[driver-type io.containerd.snapshotter.v1]]");
/// ```
pub fn go_display(v: &Value) -> String {
    gofmt::display(v)
}

/// Docker's `json` template function: Go's `encoding/json` with HTML
/// escaping off, no trailing newline. Keys are sorted (as Go sorts map keys)
/// whatever order the `serde_json` map keeps.
pub(crate) fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v);
    out
}

fn write_json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match gofmt::int_of(n) {
            Some(i) => out.push_str(&i.to_string()),
            None => out.push_str(&json_float(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => write_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (k, key) in keys.into_iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                write_json_string(out, key);
                out.push(':');
                if let Some(item) = map.get(key.as_str()) {
                    write_json(out, item);
                }
            }
            out.push('}');
        }
    }
}

/// Go's `encoding/json` float layout: `%f` style unless the magnitude is
/// below 1e-6 or at least 1e21, then `%e` with a one-digit negative exponent
/// kept short (`1e-7`, `1e+21`).
fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let mut s = gofmt::format_g(f, None, false);
        // format_g with these magnitudes always takes the %e branch.
        if let Some(at) = s.find("e-0")
            && s.len() == at + 4
        {
            s.remove(at + 2);
        }
        if f < 0.0 {
            s.insert(0, '-');
        }
        s
    } else {
        // Rust's Display is the shortest round-trip digits in plain layout.
        format!("{f}")
    }
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truthiness_is_gos() {
        for v in [
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!(null),
            json!([]),
            json!({}),
        ] {
            assert!(!truth(&Val::J(v.clone())), "{v} should be false");
        }
        for v in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("x"),
            json!([0]),
            json!({"a": 0}),
        ] {
            assert!(truth(&Val::J(v.clone())), "{v} should be true");
        }
        assert!(!truth(&Val::NoValue));
    }

    #[test]
    fn print_distinguishes_missing_from_null() {
        assert_eq!(Val::NoValue.print(), "<no value>");
        assert_eq!(Val::J(json!(null)).print(), "<nil>");
    }

    #[test]
    fn json_is_compact_sorted_and_not_html_escaped() {
        let v = json!({"b": [1, "x<y>&z"], "a": {"d": null, "c": true}});
        assert_eq!(go_json(&v), r#"{"a":{"c":true,"d":null},"b":[1,"x<y>&z"]}"#);
        assert_eq!(
            go_json(&json!("a\"b\\c\n\u{1}\u{2028}é")),
            r#""a\"b\\c\n\u0001\u2028é""#
        );
        assert_eq!(
            go_json(&json!(["sha256:a", "sha256:b"])),
            r#"["sha256:a","sha256:b"]"#
        );
    }

    #[test]
    fn json_floats_match_go() {
        assert_eq!(go_json(&json!(1.5)), "1.5");
        assert_eq!(go_json(&json!(3.0)), "3");
        assert_eq!(go_json(&json!(1e20)), "100000000000000000000");
        assert_eq!(go_json(&json!(1e21)), "1e+21");
        assert_eq!(go_json(&json!(1e-7)), "1e-7");
        assert_eq!(go_json(&json!(-1.5e-10)), "-1.5e-10");
        assert_eq!(go_json(&json!(0.000001)), "0.000001");
        assert_eq!(go_json(&json!(-0.0)), "-0");
    }
}
