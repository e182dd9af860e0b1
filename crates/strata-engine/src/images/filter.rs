//! `images --filter reference=PATTERN`: Go's `path.Match` globs, matched as Docker 29 does
//! against a name's familiar and full forms, with and without the tag.

use strata_remote::Reference;

/// Whether `name` (a full reference) matches `pattern` in any of its forms: `busybox:latest`,
/// `busybox`, `docker.io/library/busybox:latest`, `docker.io/library/busybox`.
pub fn reference_matches(pattern: &str, name: &Reference) -> bool {
    [
        name.familiar(),
        name.familiar_name(),
        name.to_string(),
        name.name(),
    ]
    .iter()
    .any(|form| glob_match(pattern, form).unwrap_or(false))
}

/// A pattern that is not well formed (Go's `ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

/// Go's `path.Match`: `*` is any run of non-`/` characters, `?` one non-`/` character,
/// `[a-z]`/`[^a-z]` a class, `\` escapes; the whole `name` must match.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let mut pat: Vec<char> = pattern.chars().collect();
    let mut name: Vec<char> = name.chars().collect();
    'outer: while !pat.is_empty() {
        let (star, chunk, rest) = scan_chunk(&pat);
        let (chunk, rest) = (chunk.to_vec(), rest.to_vec());
        pat = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains(&'/'));
        }
        if let Some(t) = match_chunk(&chunk, &name)?
            && (t.is_empty() || !pat.is_empty())
        {
            name = t.to_vec();
            continue;
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != '/' {
                if let Some(t) = match_chunk(&chunk, &name[i + 1..])? {
                    if pat.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t.to_vec();
                    continue 'outer;
                }
                i += 1;
            }
        }
        // Report a bad pattern even when the name already failed to match.
        while !pat.is_empty() {
            let (_, chunk, rest) = scan_chunk(&pat);
            match_chunk(chunk, &[])?;
            pat = rest.to_vec();
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Leading stars, then the chunk up to the next star outside a class, then the rest.
fn scan_chunk(pat: &[char]) -> (bool, &[char], &[char]) {
    let mut p = pat;
    let mut star = false;
    while let Some('*') = p.first() {
        p = &p[1..];
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' if i + 1 < p.len() => i += 1,
            '[' => in_range = true,
            ']' => in_range = false,
            '*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &p[..i], &p[i..])
}

/// Matches `chunk` (no stars) against the start of `s`: the rest of `s`, or `None`.
fn match_chunk<'a>(chunk: &[char], s: &'a [char]) -> Result<Option<&'a [char]>, BadPattern> {
    let mut c = chunk;
    let mut s = s;
    let mut failed = false;
    while let Some(&first) = c.first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match first {
            '[' => {
                let r = s.first().copied();
                if !failed {
                    s = &s[1..];
                }
                c = &c[1..];
                let negated = c.first() == Some(&'^');
                if negated {
                    c = &c[1..];
                }
                let mut matched = false;
                let mut n = 0;
                loop {
                    if c.first() == Some(&']') && n > 0 {
                        c = &c[1..];
                        break;
                    }
                    let (lo, rest) = class_char(c)?;
                    c = rest;
                    let mut hi = lo;
                    if c.first() == Some(&'-') {
                        let (h, rest) = class_char(&c[1..])?;
                        hi = h;
                        c = rest;
                    }
                    if r.is_some_and(|r| lo <= r && r <= hi) {
                        matched = true;
                    }
                    n += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed {
                    if s[0] == '/' {
                        failed = true;
                    }
                    s = &s[1..];
                }
                c = &c[1..];
            }
            '\\' => {
                c = &c[1..];
                let Some(&e) = c.first() else {
                    return Err(BadPattern);
                };
                if !failed {
                    if s[0] != e {
                        failed = true;
                    }
                    s = &s[1..];
                }
                c = &c[1..];
            }
            other => {
                if !failed {
                    if s[0] != other {
                        failed = true;
                    }
                    s = &s[1..];
                }
                c = &c[1..];
            }
        }
    }
    Ok((!failed).then_some(s))
}

/// One character of a class (`\` escapes), and what follows.
fn class_char(c: &[char]) -> Result<(char, &[char]), BadPattern> {
    match c {
        [] | ['-' | ']', ..] => Err(BadPattern),
        ['\\', e, rest @ ..] => Ok((*e, rest)),
        ['\\'] => Err(BadPattern),
        [ch, rest @ ..] => Ok((*ch, rest)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn go_path_match_cases() {
        // From Go's path/match_test.go.
        let cases: &[(&str, &str, Result<bool, BadPattern>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(BadPattern)),
            ("[-]", "-", Err(BadPattern)),
            ("[x-]", "x", Err(BadPattern)),
            ("[x-]", "-", Err(BadPattern)),
            ("[x-]", "z", Err(BadPattern)),
            ("[-x]", "x", Err(BadPattern)),
            ("[-x]", "-", Err(BadPattern)),
            ("[-x]", "a", Err(BadPattern)),
            ("\\", "a", Err(BadPattern)),
            ("[a-b-c]", "a", Err(BadPattern)),
            ("[", "a", Err(BadPattern)),
            ("[^", "a", Err(BadPattern)),
            ("[^bc", "a", Err(BadPattern)),
            ("a[", "a", Err(BadPattern)),
            ("a[", "ab", Err(BadPattern)),
            ("a[", "x", Err(BadPattern)),
            ("a/b[", "x", Err(BadPattern)),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(glob_match(pattern, name), *want, "{pattern} vs {name}");
        }
    }

    #[test]
    fn references_match_in_familiar_and_full_forms() {
        let r = Reference::parse("busybox:1.36").unwrap();
        for p in [
            "busybox",
            "busy*",
            "busybox:1.*",
            "docker.io/library/busybox",
            "*/library/*:1.36",
        ] {
            assert!(reference_matches(p, &r), "{p}");
        }
        for p in ["busybox:latest", "library/*", "*box:2*", "[", "ghcr.io/*"] {
            assert!(!reference_matches(p, &r), "{p}");
        }
        let r = Reference::parse("localhost:5000/team/app:v1").unwrap();
        assert!(reference_matches("localhost:5000/team/*", &r));
        assert!(!reference_matches("team/*", &r));
    }
}
