#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

use super::*;

fn caps(names: &[&str]) -> Vec<String> {
    names.iter().map(|c| (*c).to_owned()).collect()
}

fn resolve(p: &Profile, caps: &[String], arch: &str) -> Value {
    p.resolve(&Target {
        caps,
        arch,
        kernel: (6, 1),
    })
    .unwrap()
    .unwrap()
}

/// The rules naming `name`, as (action, args) pairs.
fn rules_for<'a>(v: &'a Value, name: &str) -> Vec<&'a Value> {
    v["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["names"].as_array().unwrap().iter().any(|n| n == name))
        .collect()
}

#[test]
fn the_builtin_policy_parses() {
    let p = policy::parse(include_str!("default.policy")).unwrap();
    assert_eq!(p.default_action, "SCMP_ACT_ERRNO");
    assert_eq!(p.default_errno_ret, Some(1));
    assert!(p.syscalls[0].names.len() > 300);
    assert!(p.syscalls.iter().all(|r| !r.names.is_empty()));
    assert_eq!(builtin(), p);
}

#[test]
fn default_caps_on_amd64_refuse_namespaces_and_mounts() {
    let p = builtin();
    let v = resolve(&p, &caps(&["CAP_CHOWN", "CAP_SYS_CHROOT"]), "amd64");
    assert_eq!(
        v["architectures"],
        serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    );
    for refused in [
        "unshare", "mount", "setns", "bpf", "keyctl", "add_key", "ptrace_x",
    ] {
        assert!(rules_for(&v, refused).is_empty(), "{refused} allowed");
    }
    let clone = rules_for(&v, "clone");
    assert_eq!(clone.len(), 1);
    assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    assert_eq!(clone[0]["args"][0]["index"], 0);
    assert_eq!(clone[0]["args"][0]["value"], 0x7e02_0000u64);
    let clone3 = rules_for(&v, "clone3");
    assert_eq!(clone3[0]["action"], "SCMP_ACT_ERRNO");
    assert_eq!(clone3[0]["errnoRet"], 38);
    assert_eq!(rules_for(&v, "chroot").len(), 1);
    assert_eq!(rules_for(&v, "arch_prctl").len(), 1);
    assert!(rules_for(&v, "riscv_flush_icache").is_empty());
    // AF_ALG (38) and AF_VSOCK (40) are the families no socket rule lets through.
    let socket: Vec<(u64, String)> = rules_for(&v, "socket")
        .iter()
        .map(|r| {
            let a = &r["args"][0];
            (
                a["value"].as_u64().unwrap(),
                a["op"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        socket,
        [
            (38, "SCMP_CMP_LT".to_owned()),
            (39, "SCMP_CMP_EQ".to_owned()),
            (40, "SCMP_CMP_GT".to_owned())
        ]
    );
}

#[test]
fn cap_sys_admin_allows_what_it_governs() {
    let v = resolve(&builtin(), &caps(&["CAP_SYS_ADMIN"]), "amd64");
    for allowed in ["unshare", "mount", "setns", "bpf", "clone3"] {
        let rules = rules_for(&v, allowed);
        assert_eq!(rules.len(), 1, "{allowed}");
        assert_eq!(rules[0]["action"], "SCMP_ACT_ALLOW");
        assert!(rules[0].get("args").is_none());
    }
    // The chroot rule needs CAP_SYS_CHROOT, which this set lacks.
    assert!(rules_for(&v, "chroot").is_empty());
}

#[test]
fn s390x_compares_the_second_clone_argument() {
    let v = resolve(&builtin(), &[], "s390x");
    let clone = rules_for(&v, "clone");
    assert_eq!(clone.len(), 1);
    assert_eq!(clone[0]["args"][0]["index"], 1);
    assert_eq!(
        v["architectures"],
        serde_json::json!(["SCMP_ARCH_S390X", "SCMP_ARCH_S390"])
    );
}

#[test]
fn min_kernel_rules_need_that_kernel() {
    let p = builtin();
    let t = |kernel| Target {
        caps: &[],
        arch: "amd64",
        kernel,
    };
    let old = p.resolve(&t((4, 7))).unwrap().unwrap();
    assert!(rules_for(&old, "ptrace").is_empty());
    let new = p.resolve(&t((4, 8))).unwrap().unwrap();
    assert_eq!(rules_for(&new, "ptrace").len(), 1);
}

#[test]
fn docker_json_profiles() {
    let text = r#"{
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": null}],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"name": "chmod", "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_FOWNER"]}},
            {"names": ["reboot"], "action": "SCMP_ACT_KILL", "includes": {"minKernel": "3.1", "arches": ["amd64"]}}
        ]
    }"#;
    let p = Profile::from_docker_json(text).unwrap();
    let v = resolve(&p, &caps(&["CAP_FOWNER"]), "amd64");
    assert_eq!(v["defaultAction"], "SCMP_ACT_ALLOW");
    assert_eq!(v["architectures"], serde_json::json!(["SCMP_ARCH_X86_64"]));
    assert_eq!(rules_for(&v, "mkdir")[0]["errnoRet"], 13);
    assert!(rules_for(&v, "chmod").is_empty());
    assert_eq!(rules_for(&v, "reboot").len(), 1);
    let v = resolve(&p, &[], "arm64");
    assert_eq!(rules_for(&v, "chmod").len(), 1);
    assert!(rules_for(&v, "reboot").is_empty());
    assert!(v.get("architectures").is_none());
}

#[test]
fn bad_docker_profiles_are_refused() {
    let target = Target {
        caps: &[],
        arch: "amd64",
        kernel: (6, 1),
    };
    let check = |text: &str, want: &str| {
        let err = Profile::from_docker_json(text)
            .and_then(|p| p.resolve(&target))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{text}: {err}");
    };
    check("{not json", "decoding seccomp profile failed");
    check(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ERRNO"}]}"#,
        "both 'name' and 'names'",
    );
    check(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}], "syscalls": []}"#,
        "both 'architectures' and 'archMap'",
    );
    check(
        r#"{"defaultAction": "SCMP_ACT_NOPE", "syscalls": []}"#,
        "seccomp profile",
    );
    check(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "4"}}]}"#,
        "invalid kernel version",
    );
    // No default and no rules: Docker applies no filter at all.
    assert_eq!(
        Profile::from_docker_json("{}")
            .unwrap()
            .resolve(&target)
            .unwrap(),
        None
    );
}

#[test]
fn policy_syntax_errors_name_the_line() {
    for (text, want) in [
        ("    read\n", "line 1: syscall names before any rule"),
        (
            "allow\n    read\nfrobnicate\n    write\n",
            "line 3: unknown action",
        ),
        (
            "allow arg0~3\n    read\n",
            "line 1: bad argument comparison",
        ),
        ("allow when=x\n    read\n", "line 1: unknown condition"),
        ("allow\n", "names no syscalls"),
    ] {
        let err = policy::parse(text).unwrap_err().to_string();
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

#[test]
fn kernel_versions() {
    assert_eq!(kernel_version_of("6.18.44-fc-v1300"), (6, 18));
    assert_eq!(kernel_version_of("3.12-1-amd64"), (3, 12));
    assert_eq!(kernel_version_of("weird"), (0, 0));
}
