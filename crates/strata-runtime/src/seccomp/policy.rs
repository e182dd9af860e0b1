//! Reads strata's compact policy form (described at the top of `default.policy`) into a
//! [`Profile`].

use super::{ArchMap, Arg, Profile, Rule, SeccompError, parse_kernel};

pub(super) fn parse(text: &str) -> Result<Profile, SeccompError> {
    let mut profile = Profile::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |reason: String| SeccompError::Policy { line, reason };
        let content = raw.split('#').next().unwrap_or_default();
        if content.trim().is_empty() {
            continue;
        }
        let mut words = content.split_whitespace();
        if content.starts_with(char::is_whitespace) {
            let rule = profile
                .syscalls
                .last_mut()
                .ok_or_else(|| err("syscall names before any rule".into()))?;
            rule.names.extend(words.map(str::to_owned));
            continue;
        }
        let head = words.next().unwrap_or_default();
        match head {
            "default" => {
                let action = words
                    .next()
                    .ok_or_else(|| err("no default action".into()))?;
                let (action, errno) = parse_action(action).map_err(err)?;
                profile.default_action = action;
                profile.default_errno_ret = errno;
            }
            "archmap" => {
                let mut arches = words.map(|a| format!("SCMP_ARCH_{}", a.to_ascii_uppercase()));
                let architecture = arches
                    .next()
                    .ok_or_else(|| err("archmap: no arch".into()))?;
                profile.arch_map.push(ArchMap {
                    architecture,
                    sub_architectures: arches.collect(),
                });
            }
            action => {
                let (action, errno_ret) = parse_action(action).map_err(err)?;
                let mut rule = Rule {
                    action,
                    errno_ret,
                    ..Rule::default()
                };
                for cond in words {
                    parse_condition(&mut rule, cond).map_err(err)?;
                }
                profile.syscalls.push(rule);
            }
        }
    }
    if let Some(r) = profile.syscalls.iter().position(|r| r.names.is_empty()) {
        return Err(SeccompError::Policy {
            line: 0,
            reason: format!("rule {} names no syscalls", r + 1),
        });
    }
    Ok(profile)
}

/// `allow` or `errno=EPERM|ENOSYS|N`.
fn parse_action(word: &str) -> Result<(String, Option<u32>), String> {
    if word == "allow" {
        return Ok(("SCMP_ACT_ALLOW".into(), None));
    }
    let errno = word
        .strip_prefix("errno=")
        .ok_or_else(|| format!("unknown action {word:?}"))?;
    let n = match errno {
        "EPERM" => libc::EPERM,
        "ENOSYS" => libc::ENOSYS,
        n => n.parse().map_err(|_| format!("unknown errno {n:?}"))?,
    };
    Ok(("SCMP_ACT_ERRNO".into(), u32::try_from(n).ok()))
}

fn parse_condition(rule: &mut Rule, cond: &str) -> Result<(), String> {
    let list = |v: &str| v.split(',').map(str::to_owned).collect::<Vec<_>>();
    let (key, value) = cond
        .split_once('=')
        .filter(|(k, _)| !k.starts_with("arg"))
        .unwrap_or(("", cond));
    match key {
        "if-cap" => rule.includes.caps = list(value),
        "unless-cap" => rule.excludes.caps = list(value),
        "if-arch" => rule.includes.arches = list(value),
        "unless-arch" => rule.excludes.arches = list(value),
        "min-kernel" => {
            rule.includes.min_kernel =
                Some(parse_kernel(value).ok_or_else(|| format!("bad kernel version {value:?}"))?);
        }
        "" => rule.args.push(parse_arg(cond)?),
        other => return Err(format!("unknown condition {other:?}")),
    }
    Ok(())
}

/// `argN<V`, `argN=V`, `argN>V`, `argN&MASK=V`.
fn parse_arg(cond: &str) -> Result<Arg, String> {
    let bad = || format!("bad argument comparison {cond:?}");
    let rest = cond.strip_prefix("arg").ok_or_else(bad)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let index = rest[..digits].parse().map_err(|_| bad())?;
    let rest = &rest[digits..];
    let (op, value, value_two) = if let Some(masked) = rest.strip_prefix('&') {
        let (mask, v) = masked.split_once('=').ok_or_else(bad)?;
        ("SCMP_CMP_MASKED_EQ", number(mask), number(v))
    } else if let Some(v) = rest.strip_prefix('<') {
        ("SCMP_CMP_LT", number(v), Some(0))
    } else if let Some(v) = rest.strip_prefix('>') {
        ("SCMP_CMP_GT", number(v), Some(0))
    } else if let Some(v) = rest.strip_prefix('=') {
        ("SCMP_CMP_EQ", number(v), Some(0))
    } else {
        return Err(bad());
    };
    Ok(Arg {
        index,
        value: value.ok_or_else(bad)?,
        value_two: value_two.ok_or_else(bad)?,
        op: op.into(),
    })
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}
