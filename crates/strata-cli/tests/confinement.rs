//! Container confinement end to end: the default seccomp filter, `--security-opt`
//! (seccomp, no-new-privileges, apparmor), `--cap-add`, `--cap-drop`, `--privileged`, and what
//! `info` and `inspect` say about them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Strata;
use common::containers::{busybox_store, run};

/// A field of the container process's `/proc/self/status`, run with `flags`.
fn status_field(s: &Strata, flags: &[&str], field: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "cat", "/proc/self/status"]);
    field_of(&s.ok(&args), field)
}

fn field_of(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_owned()
}

fn cap_bits(hex: &str) -> u64 {
    u64::from_str_radix(hex, 16).unwrap()
}

const CAP_CHOWN: u64 = 1 << 0;
const CAP_NET_ADMIN: u64 = 1 << 12;
const CAP_SYS_ADMIN: u64 = 1 << 21;

#[test]
fn containers_run_under_the_default_seccomp_filter() {
    let Some(s) = busybox_store() else { return };
    assert_eq!(status_field(&s, &[], "Seccomp"), "2");
    // Creating a user namespace is what the default profile refuses without CAP_SYS_ADMIN.
    let (code, _, err) = run(
        &s,
        &[
            "run",
            "--rm",
            "busybox",
            "/bin/busybox",
            "unshare",
            "-U",
            "-r",
            "true",
        ],
    );
    assert_ne!(code, 0, "unshare -U -r worked under the default profile");
    assert!(err.contains("Operation not permitted"), "{err}");
    // The spec given to the runtime: keyctl, bpf and mount are refused, clone is masked.
    let id = s.ok(&["create", "busybox", "true"]).trim().to_owned();
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.root().join("containers").join(&id).join("config.json")).unwrap(),
    )
    .unwrap();
    let filter = &spec["linux"]["seccomp"];
    assert_eq!(filter["defaultAction"], "SCMP_ACT_ERRNO");
    let allowed = |name: &str| {
        filter["syscalls"].as_array().unwrap().iter().any(|r| {
            r["action"] == "SCMP_ACT_ALLOW"
                && r["names"].as_array().unwrap().iter().any(|n| n == name)
        })
    };
    for refused in [
        "keyctl",
        "add_key",
        "bpf",
        "mount",
        "unshare",
        "setns",
        "kexec_load",
    ] {
        assert!(!allowed(refused), "{refused} is allowed");
    }
    assert!(allowed("read") && allowed("clone"));
}

#[test]
fn seccomp_unconfined_and_privileged_lift_the_filter() {
    let Some(s) = busybox_store() else { return };
    let userns = ["/bin/busybox", "unshare", "-U", "-r", "id", "-u"];
    for flags in [
        &["--security-opt", "seccomp=unconfined"][..],
        &["--privileged"][..],
    ] {
        assert_eq!(status_field(&s, flags, "Seccomp"), "0", "{flags:?}");
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.push("busybox");
        args.extend_from_slice(&userns);
        assert_eq!(s.ok(&args).trim(), "0", "{flags:?}");
    }
    // `seccomp=builtin` is the default, said out loud.
    assert_eq!(
        status_field(&s, &["--security-opt", "seccomp=builtin"], "Seccomp"),
        "2"
    );
}

#[test]
fn a_custom_seccomp_profile_applies() {
    let Some(s) = busybox_store() else { return };
    let profile = s.scratch("profiles").join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_CHOWN"]}}
            ]
        }"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let (code, _, err) = run(
        &s,
        &[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            "busybox",
            "mkdir",
            "/made",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted"), "{err}");
    s.ok(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "touch",
        "/made",
    ]);
    // The profile is kept with the container (as Docker keeps it), not read again at start.
    let id = s
        .ok(&[
            "create",
            "--security-opt",
            &opt,
            "busybox",
            "mkdir",
            "/made",
        ])
        .trim()
        .to_owned();
    std::fs::remove_file(&profile).unwrap();
    let (code, _, err) = run(&s, &["start", "-a", &id]);
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted"), "{err}");
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["container", "inspect", &id])).unwrap();
    let recorded = inspect[0]["HostConfig"]["SecurityOpt"][0].as_str().unwrap();
    assert!(recorded.starts_with("seccomp={"), "{recorded}");
    assert!(recorded.contains("SCMP_ACT_ERRNO"), "{recorded}");

    for (opt, want) in [
        (
            "seccomp=/nonexistent/profile.json",
            "opening seccomp profile",
        ),
        ("seccomp=unconfinedd", "opening seccomp profile"),
    ] {
        let (code, _, err) = run(
            &s,
            &["run", "--rm", "--security-opt", opt, "busybox", "true"],
        );
        assert_eq!(code, 125, "{opt}");
        assert!(err.contains(want), "{opt}: {err}");
    }
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_BOGUS", "syscalls": []}"#,
    )
    .unwrap();
    let (code, _, err) = run(
        &s,
        &["run", "--rm", "--security-opt", &opt, "busybox", "true"],
    );
    assert_eq!(code, 125);
    assert!(err.contains("seccomp profile"), "{err}");
    assert_eq!(
        s.ok(&["ps", "-aq"]).lines().count(),
        1,
        "a failed create left a container"
    );
}

#[test]
fn cap_add_and_cap_drop() {
    let Some(s) = busybox_store() else { return };
    let default = cap_bits(&status_field(&s, &[], "CapEff"));
    assert_ne!(default & CAP_CHOWN, 0);
    assert_eq!(default & (CAP_NET_ADMIN | CAP_SYS_ADMIN), 0);
    let dropped = cap_bits(&status_field(&s, &["--cap-drop", "chown"], "CapEff"));
    assert_eq!(dropped, default & !CAP_CHOWN);
    let added = cap_bits(&status_field(&s, &["--cap-add", "CAP_NET_ADMIN"], "CapEff"));
    assert_eq!(added, default | CAP_NET_ADMIN);
    let only = cap_bits(&status_field(
        &s,
        &["--cap-drop", "ALL", "--cap-add", "net_admin"],
        "CapBnd",
    ));
    assert_eq!(only, CAP_NET_ADMIN);
    // chown really is gone.
    let (code, _, err) = run(
        &s,
        &[
            "run",
            "--rm",
            "--cap-drop",
            "CHOWN",
            "busybox",
            "sh",
            "-c",
            "touch /f && /bin/busybox chown 1 /f",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted"), "{err}");
    // With CAP_SYS_ADMIN, the profile lets namespaces be made, as Docker's does.
    let out = s.ok(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "busybox",
        "/bin/busybox",
        "unshare",
        "-m",
        "true",
    ]);
    assert_eq!(out, "");

    // Recorded with the container: `start` and `inspect` see them.
    let id = s
        .ok(&[
            "create",
            "--cap-drop",
            "chown",
            "--cap-add",
            "NET_ADMIN",
            "busybox",
            "cat",
            "/proc/self/status",
        ])
        .trim()
        .to_owned();
    let status = s.ok(&["start", "-a", &id]);
    assert_eq!(
        cap_bits(&field_of(&status, "CapEff")),
        (default & !CAP_CHOWN) | CAP_NET_ADMIN
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["container", "inspect", &id])).unwrap();
    let hc = &inspect[0]["HostConfig"];
    assert_eq!(hc["CapAdd"], serde_json::json!(["NET_ADMIN"]));
    assert_eq!(hc["CapDrop"], serde_json::json!(["chown"]));
    assert_eq!(hc["Privileged"], false);
    assert_eq!(hc["SecurityOpt"], serde_json::Value::Null);

    let (code, _, err) = run(
        &s,
        &["run", "--rm", "--cap-add", "frobnicate", "busybox", "true"],
    );
    assert_eq!(code, 125);
    assert!(
        err.contains("unknown capability: \"CAP_FROBNICATE\""),
        "{err}"
    );
}

#[test]
fn no_new_privileges() {
    let Some(s) = busybox_store() else { return };
    assert_eq!(status_field(&s, &[], "NoNewPrivs"), "0");
    for opt in ["no-new-privileges", "no-new-privileges=true"] {
        assert_eq!(
            status_field(&s, &["--security-opt", opt], "NoNewPrivs"),
            "1",
            "{opt}"
        );
    }
    assert_eq!(
        status_field(
            &s,
            &["--security-opt", "no-new-privileges=false"],
            "NoNewPrivs"
        ),
        "0"
    );
    // Kept for exec too, with the filter.
    let id = s
        .ok(&[
            "run",
            "-d",
            "--security-opt",
            "no-new-privileges",
            "busybox",
            "sleep",
            "100",
        ])
        .trim()
        .to_owned();
    let status = s.ok(&["exec", &id, "cat", "/proc/self/status"]);
    assert_eq!(field_of(&status, "NoNewPrivs"), "1");
    assert_eq!(field_of(&status, "Seccomp"), "2");
    s.ok(&["rm", "-f", &id]);
    let (code, _, err) = run(
        &s,
        &[
            "run",
            "--rm",
            "--security-opt",
            "no-new-privileges=maybe",
            "busybox",
            "true",
        ],
    );
    assert_eq!(code, 125);
    assert!(err.contains("invalid --security-opt"), "{err}");
}

#[test]
fn privileged_containers() {
    let Some(s) = busybox_store() else { return };
    // Every capability this (root) process has, as Docker gives.
    let ours = field_of(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "CapEff",
    );
    let status = s.ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(field_of(&status, "CapEff"), ours);
    assert_eq!(field_of(&status, "Seccomp"), "0");
    // /sys is writable, /proc/kcore not masked, the host's devices are there.
    let out = s.ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "grep ' /sys ' /proc/mounts; ls /dev; grep -c kcore /proc/mounts || true",
    ]);
    let sys = out.lines().next().unwrap();
    assert!(sys.contains(" rw,"), "{out}");
    let host_devices = std::fs::read_dir("/dev")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            use std::os::unix::fs::FileTypeExt;
            e.file_type()
                .is_ok_and(|t| t.is_block_device() || t.is_char_device())
                && e.file_name() != "console"
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !["null", "zero", "full", "random", "urandom", "tty", "ptmx"].contains(&n.as_str())
        })
        .collect::<Vec<_>>();
    if let Some(dev) = host_devices.first() {
        assert!(out.lines().any(|l| l == dev), "no /dev/{dev} in {out}");
    }
    assert_eq!(out.lines().last().unwrap(), "0", "kcore masked: {out}");
    let plain = s.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "grep ' /sys ' /proc/mounts",
    ]);
    assert!(plain.contains(" ro,"), "{plain}");
    let id = s
        .ok(&["create", "--privileged", "busybox", "true"])
        .trim()
        .to_owned();
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["container", "inspect", &id])).unwrap();
    assert_eq!(inspect[0]["HostConfig"]["Privileged"], true);
    assert_eq!(inspect[0]["AppArmorProfile"], "");
}

/// A device node made on the host for a test, removed when dropped.
struct HostDevice(std::path::PathBuf);

impl HostDevice {
    /// `/dev/NAME` as a character device with /dev/null's numbers.
    fn make(name: &str) -> HostDevice {
        let path = std::path::Path::new("/dev").join(name);
        let ok = std::process::Command::new("mknod")
            .arg(&path)
            .args(["c", "1", "3"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mknod {}", path.display());
        HostDevice(path)
    }
}

impl Drop for HostDevice {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Docker builds a container's spec when it starts: a privileged container sees the host's
/// devices as they are then, not as they were at `create`.
#[test]
fn a_privileged_container_gets_the_host_devices_of_its_start() {
    let Some(s) = busybox_store() else { return };
    let pid = std::process::id();
    let gone = HostDevice::make(&format!("strata-gone-{pid}"));
    s.ok(&[
        "create",
        "--name",
        "priv",
        "--privileged",
        "busybox",
        "ls",
        "/dev",
    ]);
    drop(gone);
    let _new = HostDevice::make(&format!("strata-new-{pid}"));
    let out = s.ok(&["start", "-a", "priv"]);
    assert!(
        out.lines().any(|l| l == format!("strata-new-{pid}")),
        "{out}"
    );
    assert!(!out.contains(&format!("strata-gone-{pid}")), "{out}");
    s.ok(&["rm", "priv"]);
}

#[test]
fn apparmor_absent_is_said_and_refused() {
    if std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
    {
        strata_testutil::skip("this kernel has AppArmor; the test covers kernels without it");
        return;
    }
    let Some(s) = busybox_store() else { return };
    let info = s.ok(&["info"]);
    assert!(
        info.contains(" Security Options:\n  seccomp\n   Profile: builtin\n"),
        "{info}"
    );
    assert!(info.contains("apparmor: absent"), "{info}");
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(
        json["SecurityOptions"],
        serde_json::json!(["name=seccomp,profile=builtin"])
    );
    let (code, _, err) = run(
        &s,
        &[
            "run",
            "--rm",
            "--security-opt",
            "apparmor=x",
            "busybox",
            "true",
        ],
    );
    assert_eq!(code, 125);
    assert!(
        err.contains("AppArmor is not enabled in this kernel"),
        "{err}"
    );
    assert_eq!(
        s.ok(&["ps", "-aq"]),
        "",
        "a refused create left a container"
    );
    // `unconfined` asks for nothing AppArmor would have to do.
    s.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "apparmor=unconfined",
        "busybox",
        "true",
    ]);
}
