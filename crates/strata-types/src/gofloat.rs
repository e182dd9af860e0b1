//! Go's float layouts (`strconv.FormatFloat` with 'e', 'f' and 'g'), built
//! on Rust's exactly rounded digit generation (ties to even, as Go). Here
//! because Docker prints sizes with them ([`crate::human_size`]); the
//! template engine (`strata-format`) uses them for `%v`/`%g` too.

/// The unsigned layout of a finite float under a verb.
pub fn float_body(f: f64, verb: char, prec: Option<usize>) -> String {
    match verb {
        'e' | 'E' => {
            let p = prec.unwrap_or(6);
            fmt_e(&rounded_digits(f, p + 1), p, verb == 'E')
        }
        'f' | 'F' => format!("{:.*}", prec.unwrap_or(6), f.abs()),
        'v' if prec.is_none() && f.fract() == 0.0 && f.abs() < 1e21 => {
            // A JSON number that is integral prints as the integer it is.
            format!("{:.0}", f.abs())
        }
        'G' => format_g(f, prec, true),
        _ => format_g(f, prec, false),
    }
}

/// Decimal digits `0.d1d2d3… × 10^dp`, without trailing zeros (empty for 0).
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

/// Parses Rust's `{:e}` rendering of a non-negative number.
fn digits_from_sci(s: &str) -> Digits {
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    if d.is_empty() {
        return Digits { d, dp: 0 };
    }
    Digits { d, dp: exp + 1 }
}

/// Shortest digits that read back as `f` (Go's `prec == -1`).
fn shortest_digits(f: f64) -> Digits {
    digits_from_sci(&format!("{:e}", f.abs()))
}

/// `f` correctly rounded (ties to even) to `sig` significant digits.
fn rounded_digits(f: f64, sig: usize) -> Digits {
    digits_from_sci(&format!("{:.*e}", sig.saturating_sub(1), f.abs()))
}

/// Go's `%e` layout: `d.dddde±dd`.
fn fmt_e(d: &Digits, prec: usize, upper: bool) -> String {
    let mut s = String::new();
    s.push(char::from(d.d.first().copied().unwrap_or(b'0')));
    if prec > 0 {
        s.push('.');
        for k in 1..=prec {
            s.push(char::from(d.d.get(k).copied().unwrap_or(b'0')));
        }
    }
    s.push(if upper { 'E' } else { 'e' });
    let exp = if d.d.is_empty() { 0 } else { d.dp - 1 };
    s.push(if exp < 0 { '-' } else { '+' });
    s.push_str(&format!("{:02}", exp.unsigned_abs()));
    s
}

/// Go's `%f` layout of the digits with `prec` decimals (no rounding needed:
/// callers pass at most as many decimals as there are digits).
fn fmt_f(d: &Digits, prec: usize) -> String {
    let mut s = String::new();
    if d.dp > 0 {
        let dp = d.dp as usize;
        for k in 0..dp {
            s.push(char::from(d.d.get(k).copied().unwrap_or(b'0')));
        }
    } else {
        s.push('0');
    }
    if prec > 0 {
        s.push('.');
        for k in 0..prec {
            let j = i64::from(d.dp) + k as i64;
            let c = usize::try_from(j)
                .ok()
                .and_then(|j| d.d.get(j).copied())
                .unwrap_or(b'0');
            s.push(char::from(c));
        }
    }
    s
}

/// Go's `strconv.FormatFloat(|f|, 'g', prec, 64)`. `None` is the shortest
/// representation, which switches to `%e` when the exponent is below -4 or
/// at least 6 (Go's `fmt.Sprint(1234567.5)` is `"1.2345675e+06"`).
pub fn format_g(f: f64, prec: Option<usize>, upper: bool) -> String {
    let (d, shortest, p) = match prec {
        None => {
            let d = shortest_digits(f);
            let n = d.d.len();
            (d, true, n)
        }
        Some(p) => {
            let p = p.max(1);
            (rounded_digits(f, p), false, p)
        }
    };
    let nd = d.d.len() as i64;
    let dp = i64::from(d.dp);
    let p = p as i64;
    let mut eprec = p;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        let pp = p.min(nd);
        fmt_e(&d, usize::try_from(pp - 1).unwrap_or(0), upper)
    } else {
        let pp = if p > dp { nd } else { p };
        fmt_f(&d, usize::try_from(pp - dp).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_g_precision_like_go() {
        let g3 = |f: f64| format_g(f, Some(3), false);
        assert_eq!(g3(1.234), "1.23");
        assert_eq!(g3(7.75), "7.75");
        assert_eq!(g3(1.0), "1");
        assert_eq!(g3(100.0), "100");
        assert_eq!(g3(999.0), "999");
        assert_eq!(g3(999.5), "1e+03");
        assert_eq!(g3(0.0), "0");
        assert_eq!(g3(12.0), "12");
        assert_eq!(g3(12.55), "12.6");
        assert_eq!(g3(0.000123456), "0.000123");
        assert_eq!(g3(0.0000123456), "1.23e-05");
        assert_eq!(format_g(1e25, Some(4), false), "1e+25");
        assert_eq!(format_g(10000.0, Some(4), false), "1e+04");
        assert_eq!(format_g(1.5e6, Some(2), true), "1.5E+06");
    }
}
