//! Entry names, made safe before anything touches the filesystem.
//!
//! A tar entry name is turned into a relative path of plain components: leading `/` and `./`
//! go, empty and `.` components go, and `..` removes the previous component *lexically* (as
//! Go's `filepath.Clean`, which containerd applies, does; symlinks play no part here). A name
//! whose `..` would climb above the root (`../etc/passwd`, `a/../../b`) is refused rather than
//! clamped, as moby's archive package refuses it: no legitimate layer contains one. A name
//! containing a NUL byte is refused. What is left is resolved inside the root by
//! `openat2(RESOLVE_IN_ROOT)` (see [`crate::root`]), which is where symlinks are handled.

/// A normalized name: relative, no empty, `.` or `..` components. Empty means the root itself.
pub(crate) fn normalize(name: &[u8]) -> Result<Vec<u8>, &'static str> {
    if name.contains(&0) {
        return Err("name contains a NUL byte");
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err("name climbs out of the root with ..");
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join(&b'/'))
}

/// Splits a normalized, non-empty name into its parent (possibly empty) and final component.
pub(crate) fn split(name: &[u8]) -> (&[u8], &[u8]) {
    match name.iter().rposition(|&b| b == b'/') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (&[], name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_clean_within_the_root() {
        let n = |s: &str| normalize(s.as_bytes()).map(|v| String::from_utf8_lossy(&v).into_owned());
        assert_eq!(n("etc/passwd"), Ok("etc/passwd".into()));
        assert_eq!(n("/etc/passwd"), Ok("etc/passwd".into()));
        assert_eq!(n("./etc//./passwd/"), Ok("etc/passwd".into()));
        assert_eq!(n("a/b/../c"), Ok("a/c".into()));
        assert_eq!(n("a/.."), Ok("".into()));
        assert_eq!(n("./"), Ok("".into()));
        assert_eq!(n("/"), Ok("".into()));
        assert!(n("../etc/passwd").is_err());
        assert!(n("/../etc").is_err());
        assert!(n("a/../../b").is_err());
        assert!(normalize(b"a\0b").is_err());
        assert_eq!(n("..."), Ok("...".into()));
    }

    #[test]
    fn splits_parent_and_base() {
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
    }
}
