//! The part of Go's `fmt` and `strconv` that templates reach: `%v` printing
//! of decoded JSON values, `Sprint`/`Sprintln`/`Sprintf`, float layout
//! (`%g`/`%e`/`%f`, including go-units' `%.3g`) and string quoting.
//!
//! JSON values stand in for Go's `interface{}` values: strings are Go
//! strings, integral numbers `int`, other numbers `float64`, arrays
//! `[]interface {}` and objects `map[string]interface {}` (printed with
//! sorted keys, as Go's `fmt` does). `None` and `null` are Go's `nil`.

mod quote;

use serde_json::{Number, Value};

use quote::{can_backquote, escape_rune};
pub(crate) use quote::{is_print, quote};
use strata_types::gofloat::float_body;
pub(crate) use strata_types::gofloat::format_g;

/// A width or precision over a million is malformed, as in Go.
const TOO_LARGE: usize = 1_000_000;

/// Formatting flags of one `%` verb.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// The integer value of a JSON number, if it is stored as an integer.
pub(crate) fn int_of(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// Go's name for the dynamic type of a decoded JSON value.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if int_of(n).is_some() => "int",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// `fmt.Sprint(v)`: Go's `%v` of one value.
pub(crate) fn display(v: &Value) -> String {
    let mut out = String::new();
    print_value(&mut out, Some(v), 'v', Flags::default(), 0);
    out
}

/// `fmt.Sprint(args...)`: spaces between operands when neither is a string.
pub(crate) fn sprint(args: &[Option<&Value>]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Some(Value::String(_)));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        print_value(&mut out, *arg, 'v', Flags::default(), 0);
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln(args...)`: spaces between all operands, then a newline.
pub(crate) fn sprintln(args: &[Option<&Value>]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        print_value(&mut out, *arg, 'v', Flags::default(), 0);
    }
    out.push('\n');
    out
}

/// Reads a decimal number for a width or precision, as Go's `parsenum`.
fn parse_num(b: &[u8], start: usize) -> (usize, bool, usize) {
    let mut num = 0usize;
    let mut is_num = false;
    let mut j = start;
    while j < b.len() && b[j].is_ascii_digit() {
        if num > TOO_LARGE {
            return (0, false, b.len());
        }
        num = num * 10 + usize::from(b[j] - b'0');
        is_num = true;
        j += 1;
    }
    (num, is_num, j)
}

/// An integer argument for `*` width or precision.
fn int_arg(arg: Option<&Value>) -> Option<i128> {
    match arg {
        Some(Value::Number(n)) => int_of(n).filter(|i| i.unsigned_abs() <= TOO_LARGE as u128),
        _ => None,
    }
}

/// `fmt.Sprintf(format, args...)`, with Go's in-band error markers
/// (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA int=1)`, `%!(NOVERB)`).
pub(crate) fn sprintf(format: &str, args: &[Option<&Value>]) -> String {
    let b = format.as_bytes();
    let end = b.len();
    let mut out = String::new();
    let mut argn = 0;
    let mut i = 0;
    while i < end {
        let last = i;
        while i < end && b[i] != b'%' {
            i += 1;
        }
        out.push_str(&format[last..i]);
        if i >= end {
            break;
        }
        i += 1;
        let mut fl = Flags::default();
        while i < end {
            match b[i] {
                b'#' => fl.sharp = true,
                b'0' => fl.zero = !fl.minus,
                b'+' => fl.plus = true,
                b'-' => {
                    fl.minus = true;
                    fl.zero = false;
                }
                b' ' => fl.space = true,
                _ => break,
            }
            i += 1;
        }
        if i < end && b[i] == b'*' {
            i += 1;
            let w = int_arg(args.get(argn).copied().flatten());
            if argn < args.len() {
                argn += 1;
            }
            match w {
                Some(w) => {
                    if w < 0 {
                        fl.minus = true;
                        fl.zero = false;
                    }
                    fl.width = usize::try_from(w.unsigned_abs()).ok();
                }
                None => out.push_str("%!(BADWIDTH)"),
            }
        } else {
            let (n, ok, ni) = parse_num(b, i);
            if ok {
                fl.width = Some(n);
            }
            i = ni;
        }
        if i < end && b[i] == b'.' {
            i += 1;
            if i < end && b[i] == b'*' {
                i += 1;
                let p = int_arg(args.get(argn).copied().flatten());
                if argn < args.len() {
                    argn += 1;
                }
                match p {
                    Some(p) if p >= 0 => fl.prec = usize::try_from(p).ok(),
                    Some(_) => fl.prec = None,
                    None => out.push_str("%!(BADPREC)"),
                }
            } else {
                let (n, ok, ni) = parse_num(b, i);
                fl.prec = Some(if ok { n } else { 0 });
                i = ni;
            }
        }
        let Some(verb) = format.get(i..).and_then(|s| s.chars().next()) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argn) else {
            out.push_str("%!");
            out.push(verb);
            out.push_str("(MISSING)");
            continue;
        };
        if verb == 'v' {
            // %+v and %#v only differ from %v for Go structs and Go syntax.
            fl.plus = false;
            fl.sharp = false;
        }
        print_value(&mut out, *arg, verb, fl, 0);
        argn += 1;
    }
    if argn < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, arg) in args[argn..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            match arg {
                None | Some(Value::Null) => out.push_str("<nil>"),
                Some(v) => {
                    out.push_str(type_name(v));
                    out.push('=');
                    print_value(&mut out, Some(v), 'v', Flags::default(), 0);
                }
            }
        }
        out.push(')');
    }
    out
}

/// Go's `printValue`: one operand under one verb. Arrays and objects apply
/// the verb (and width) to every element.
fn print_value(out: &mut String, v: Option<&Value>, verb: char, fl: Flags, depth: usize) {
    let v = match v {
        None | Some(Value::Null) => {
            if depth > 0 {
                out.push_str("<nil>");
            } else if verb == 'v' || verb == 'T' {
                pad(out, "<nil>", fl);
            } else {
                bad_verb(out, verb, None);
            }
            return;
        }
        Some(v) => v,
    };
    if verb == 'T' && depth == 0 {
        pad(out, type_name(v), fl);
        return;
    }
    match v {
        Value::Null => {}
        Value::Bool(b) => match verb {
            't' | 'v' => pad(out, if *b { "true" } else { "false" }, fl),
            _ => bad_verb(out, verb, Some(v)),
        },
        Value::Number(n) => match int_of(n) {
            Some(i) => fmt_int_verb(out, i, verb, fl, v),
            None => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                match verb {
                    'v' | 'g' | 'G' | 'e' | 'E' | 'f' | 'F' => fmt_float(out, f, verb, fl),
                    'd' if f.fract() == 0.0 && f.abs() < 1e38 => {
                        // Lenient: a JSON number that is integral is an integer.
                        fmt_integer(out, f as i128, 10, verb, fl);
                    }
                    _ => bad_verb(out, verb, Some(v)),
                }
            }
        },
        Value::String(s) => fmt_string_verb(out, s, verb, fl, v),
        Value::Array(items) => {
            out.push('[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                print_value(out, Some(item), verb, fl, depth + 1);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("map[");
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (k, key) in keys.into_iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                fmt_string_verb(out, key, verb, fl, &Value::String(key.clone()));
                out.push(':');
                print_value(out, map.get(key.as_str()), verb, fl, depth + 1);
            }
            out.push(']');
        }
    }
}

fn fmt_int_verb(out: &mut String, i: i128, verb: char, fl: Flags, v: &Value) {
    match verb {
        'v' | 'd' => fmt_integer(out, i, 10, verb, fl),
        'b' => fmt_integer(out, i, 2, verb, fl),
        'o' | 'O' => fmt_integer(out, i, 8, verb, fl),
        'x' | 'X' => fmt_integer(out, i, 16, verb, fl),
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, c.encode_utf8(&mut [0; 4]), fl);
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            let mut q = String::from('\'');
            escape_rune(&mut q, c, '\'');
            q.push('\'');
            pad(out, &q, fl);
        }
        'U' => {
            let mut s = format!("U+{:04X}", i.max(0));
            if fl.sharp
                && let Some(c) = u32::try_from(i).ok().and_then(char::from_u32)
                && is_print(c)
            {
                s.push_str(" '");
                s.push(c);
                s.push('\'');
            }
            pad(out, &s, fl);
        }
        // Lenient: JSON does not say whether a number was meant as a float.
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => fmt_float(out, i as f64, verb, fl),
        _ => bad_verb(out, verb, Some(v)),
    }
}

fn fmt_string_verb(out: &mut String, s: &str, verb: char, fl: Flags, v: &Value) {
    match verb {
        'v' | 's' => pad(out, truncate_chars(s, fl.prec), fl),
        'q' => {
            let s = truncate_chars(s, fl.prec);
            let q = if fl.sharp && can_backquote(s) {
                format!("`{s}`")
            } else {
                quote(s)
            };
            pad(out, &q, fl);
        }
        'x' | 'X' => {
            let bytes = s.as_bytes();
            let bytes = &bytes[..fl.prec.map_or(bytes.len(), |p| p.min(bytes.len()))];
            let mut h = String::new();
            for (k, byte) in bytes.iter().enumerate() {
                if fl.space && k > 0 {
                    h.push(' ');
                }
                if fl.sharp && (fl.space || k == 0) {
                    h.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    h.push_str(&format!("{byte:02x}"));
                } else {
                    h.push_str(&format!("{byte:02X}"));
                }
            }
            pad(out, &h, fl);
        }
        _ => bad_verb(out, verb, Some(v)),
    }
}

fn truncate_chars(s: &str, prec: Option<usize>) -> &str {
    match prec.and_then(|p| s.char_indices().nth(p)) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// `%!verb(type=value)`.
fn bad_verb(out: &mut String, verb: char, v: Option<&Value>) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    match v {
        None | Some(Value::Null) => out.push_str("<nil>"),
        Some(v) => {
            out.push_str(type_name(v));
            out.push('=');
            print_value(out, Some(v), 'v', Flags::default(), 0);
        }
    }
    out.push(')');
}

/// Pads `s` with spaces to the width (in characters), left or right.
fn pad(out: &mut String, s: &str, fl: Flags) {
    let n = s.chars().count();
    let fill = fl.width.map_or(0, |w| w.saturating_sub(n));
    if !fl.minus {
        out.extend(std::iter::repeat_n(' ', fill));
    }
    out.push_str(s);
    if fl.minus {
        out.extend(std::iter::repeat_n(' ', fill));
    }
}

/// Go's `fmtInteger`.
fn fmt_integer(out: &mut String, i: i128, base: u32, verb: char, fl: Flags) {
    let neg = i < 0;
    let u = i.unsigned_abs();
    if fl.prec == Some(0) && u == 0 {
        pad(out, "", fl);
        return;
    }
    let mut digits = match base {
        2 => format!("{u:b}"),
        8 => format!("{u:o}"),
        16 if verb == 'X' => format!("{u:X}"),
        16 => format!("{u:x}"),
        _ => u.to_string(),
    };
    let min_digits = match (fl.prec, fl.width) {
        (Some(p), _) => p,
        (None, Some(w)) if fl.zero && !fl.minus => {
            w.saturating_sub(usize::from(neg || fl.plus || fl.space))
        }
        _ => 0,
    };
    if digits.len() < min_digits {
        digits.insert_str(0, &"0".repeat(min_digits - digits.len()));
    }
    let mut s = String::new();
    if neg {
        s.push('-');
    } else if fl.plus {
        s.push('+');
    } else if fl.space {
        s.push(' ');
    }
    if verb == 'O' {
        s.push_str("0o");
    } else if fl.sharp {
        match base {
            2 => s.push_str("0b"),
            8 if !digits.starts_with('0') => s.push('0'),
            16 if verb == 'X' => s.push_str("0X"),
            16 => s.push_str("0x"),
            _ => {}
        }
    }
    s.push_str(&digits);
    pad(out, &s, fl);
}

/// Go's `fmtFloat` for the verbs v, g, G, e, E, f, F.
fn fmt_float(out: &mut String, f: f64, verb: char, fl: Flags) {
    if f.is_nan() || f.is_infinite() {
        let s = if f.is_nan() {
            if fl.plus {
                "+NaN"
            } else if fl.space {
                " NaN"
            } else {
                "NaN"
            }
        } else if f < 0.0 {
            "-Inf"
        } else if fl.space && !fl.plus {
            " Inf"
        } else {
            "+Inf"
        };
        pad(out, s, fl);
        return;
    }
    let body = float_body(f, verb, fl.prec);
    let sign = if f.is_sign_negative() {
        "-"
    } else if fl.plus {
        "+"
    } else if fl.space {
        " "
    } else {
        ""
    };
    let len = sign.len() + body.len();
    match fl.width {
        Some(w) if fl.zero && !fl.minus && w > len => {
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', w - len));
            out.push_str(&body);
        }
        _ => pad(out, &format!("{sign}{body}"), fl),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pf(format: &str, args: &[Value]) -> String {
        let args: Vec<Option<&Value>> = args.iter().map(Some).collect();
        sprintf(format, &args)
    }

    #[test]
    fn display_scalars() {
        assert_eq!(display(&json!("abc")), "abc");
        assert_eq!(display(&json!(1024)), "1024");
        assert_eq!(display(&json!(-7)), "-7");
        assert_eq!(display(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(display(&json!(true)), "true");
        assert_eq!(display(&json!(null)), "<nil>");
        assert_eq!(display(&json!(1.5)), "1.5");
        assert_eq!(display(&json!(0.1)), "0.1");
        assert_eq!(display(&json!(1024.0)), "1024");
        assert_eq!(display(&json!(1e20)), "100000000000000000000");
        assert_eq!(display(&json!(1e21)), "1e+21");
        assert_eq!(display(&json!(1234567.5)), "1.2345675e+06");
        assert_eq!(display(&json!(123456.5)), "123456.5");
        assert_eq!(display(&json!(0.0001)), "0.0001");
        assert_eq!(display(&json!(0.00001)), "1e-05");
        assert_eq!(display(&json!(-2.5e-7)), "-2.5e-07");
        assert_eq!(display(&json!(1.5e300)), "1.5e+300");
    }

    #[test]
    fn display_composites() {
        assert_eq!(display(&json!(["a", "b", 3])), "[a b 3]");
        assert_eq!(display(&json!([])), "[]");
        assert_eq!(
            display(&json!([["driver-type", "io.containerd.snapshotter.v1"]])),
            "[[driver-type io.containerd.snapshotter.v1]]"
        );
        assert_eq!(display(&json!({"b": 2, "a": "x"})), "map[a:x b:2]");
        assert_eq!(display(&json!({})), "map[]");
        assert_eq!(
            display(&json!([null, {"k": [1, null]}])),
            "[<nil> map[k:[1 <nil>]]]"
        );
    }

    #[test]
    fn printf_basic_verbs() {
        assert_eq!(pf("%s:%d", &[json!("web"), json!(42)]), "web:42");
        assert_eq!(
            pf("%v|%v|%v", &[json!("a"), json!(1), json!(true)]),
            "a|1|true"
        );
        assert_eq!(pf("%q", &[json!("a\"b\n")]), "\"a\\\"b\\n\"");
        assert_eq!(pf("%#q", &[json!("ab")]), "`ab`");
        assert_eq!(pf("%t", &[json!(false)]), "false");
        assert_eq!(
            pf("%x %X %o %b", &[json!(255), json!(255), json!(8), json!(5)]),
            "ff FF 10 101"
        );
        assert_eq!(
            pf("%#x %#o %O", &[json!(255), json!(8), json!(8)]),
            "0xff 010 0o10"
        );
        assert_eq!(pf("%x", &[json!("hi")]), "6869");
        assert_eq!(pf("% x", &[json!("hi")]), "68 69");
        assert_eq!(pf("%c%c", &[json!(72), json!(105)]), "Hi");
        assert_eq!(pf("%q", &[json!(65)]), "'A'");
        assert_eq!(pf("%U %#U", &[json!(65), json!(65)]), "U+0041 U+0041 'A'");
        assert_eq!(pf("%%", &[]), "%");
        assert_eq!(
            pf("%T %T %T", &[json!("a"), json!(1), json!([1])]),
            "string int []interface {}"
        );
    }

    #[test]
    fn printf_width_precision_flags() {
        assert_eq!(pf("[%5s]", &[json!("ab")]), "[   ab]");
        assert_eq!(pf("[%-10s]", &[json!("ab")]), "[ab        ]");
        assert_eq!(pf("[%.2s]", &[json!("héllo")]), "[hé]");
        assert_eq!(pf("[%5d]", &[json!(42)]), "[   42]");
        assert_eq!(pf("[%-5d]", &[json!(42)]), "[42   ]");
        assert_eq!(pf("[%05d]", &[json!(-42)]), "[-0042]");
        assert_eq!(pf("[%+d]", &[json!(5)]), "[+5]");
        assert_eq!(pf("[% d]", &[json!(5)]), "[ 5]");
        assert_eq!(pf("[%.3d]", &[json!(7)]), "[007]");
        assert_eq!(pf("[%.0d]", &[json!(0)]), "[]");
        assert_eq!(pf("[%*d]", &[json!(4), json!(7)]), "[   7]");
        assert_eq!(pf("[%-*d]", &[json!(3), json!(7)]), "[7  ]");
        assert_eq!(pf("[%.*f]", &[json!(1), json!(2.25)]), "[2.2]");
        assert_eq!(pf("[%#08x]", &[json!(255)]), "[0x000000ff]");
    }

    #[test]
    fn printf_floats() {
        assert_eq!(pf("%f", &[json!(1.5)]), "1.500000");
        assert_eq!(pf("%.2f", &[json!(2.675)]), "2.67");
        assert_eq!(pf("%.1f", &[json!(0.25)]), "0.2");
        assert_eq!(pf("%8.3f|", &[json!(4.56789)]), "   4.568|");
        assert_eq!(pf("%08.3f|", &[json!(-4.56789)]), "-004.568|");
        assert_eq!(pf("%e", &[json!(1234.5678)]), "1.234568e+03");
        assert_eq!(pf("%.2E", &[json!(0.000123)]), "1.23E-04");
        assert_eq!(pf("%g", &[json!(0.5)]), "0.5");
        assert_eq!(pf("%g", &[json!(1e6)]), "1e+06");
        assert_eq!(pf("%v", &[json!(1e6)]), "1000000");
        assert_eq!(pf("%.3g", &[json!(1234.0)]), "1.23e+03");
        // Lenient: integers under float verbs, integral floats under %d.
        assert_eq!(pf("%.1f", &[json!(3)]), "3.0");
        assert_eq!(pf("%d", &[json!(3.0)]), "3");
    }

    #[test]
    fn printf_error_markers() {
        assert_eq!(pf("%d", &[json!("x")]), "%!d(string=x)");
        assert_eq!(pf("%s", &[json!(5)]), "%!s(int=5)");
        assert_eq!(pf("%d", &[json!(1.5)]), "%!d(float64=1.5)");
        assert_eq!(pf("%t", &[json!(1)]), "%!t(int=1)");
        assert_eq!(pf("%s %s", &[json!("a")]), "a %!s(MISSING)");
        assert_eq!(
            pf("%s", &[json!("a"), json!(1), json!(null)]),
            "a%!(EXTRA int=1, <nil>)"
        );
        assert_eq!(pf("abc%", &[]), "abc%!(NOVERB)");
        assert_eq!(pf("%*d", &[json!("x"), json!(1)]), "%!(BADWIDTH)1");
        assert_eq!(
            sprintf("%s|%v|%d", &[None, None, None]),
            "%!s(<nil>)|<nil>|%!d(<nil>)"
        );
        assert_eq!(pf("%z", &[json!("a")]), "%!z(string=a)");
    }

    #[test]
    fn printf_composites_apply_verb_per_element() {
        assert_eq!(pf("%s", &[json!(["a", "b"])]), "[a b]");
        assert_eq!(pf("%q", &[json!(["a", "b"])]), "[\"a\" \"b\"]");
        assert_eq!(pf("%d", &[json!([1, 2])]), "[1 2]");
        assert_eq!(pf("%3d", &[json!([1, 2])]), "[  1   2]");
        assert_eq!(pf("%s", &[json!(["a", 1])]), "[a %!s(int=1)]");
        assert_eq!(pf("%v", &[json!({"k": "v"})]), "map[k:v]");
        assert_eq!(pf("%d", &[json!([null])]), "[<nil>]");
    }

    #[test]
    fn sprint_spacing_like_go() {
        let a = json!("a");
        let b = json!("b");
        let one = json!(1);
        let two = json!(2);
        assert_eq!(sprint(&[Some(&a), Some(&b)]), "ab");
        assert_eq!(sprint(&[Some(&one), Some(&two)]), "1 2");
        assert_eq!(
            sprint(&[Some(&a), Some(&one), Some(&two), Some(&b)]),
            "a1 2b"
        );
        assert_eq!(sprint(&[None, None]), "<nil> <nil>");
        assert_eq!(sprintln(&[Some(&a), Some(&b)]), "a b\n");
    }

    #[test]
    fn nan_and_inf() {
        let mut s = String::new();
        fmt_float(&mut s, f64::INFINITY, 'v', Flags::default());
        fmt_float(&mut s, f64::NEG_INFINITY, 'v', Flags::default());
        fmt_float(&mut s, f64::NAN, 'v', Flags::default());
        assert_eq!(s, "+Inf-InfNaN");
    }
}
