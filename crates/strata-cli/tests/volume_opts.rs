//! The local driver's options, end to end: `volume create -o type=… -o device=… -o o=…`
//! makes a filesystem volume, mounted on its `_data` while a container using it runs (shared
//! by the containers using it at once) and unmounted when the last one stops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::Strata;
use common::containers::{busybox, ready, run, until};

/// Whether `path` is a mount point in this (the host's) mount namespace.
fn mounted(path: &Path) -> bool {
    let want = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&want))
}

fn data(s: &Strata, name: &str) -> std::path::PathBuf {
    s.root().join("volumes").join(name).join("_data")
}

/// `volume create -o OPT... NAME`.
fn create(s: &Strata, name: &str, opts: &[&str]) {
    let mut args = vec!["volume", "create"];
    for o in opts {
        args.extend(["-o", o]);
    }
    args.push(name);
    s.ok(&args);
}

fn store() -> Option<Strata> {
    if !ready() {
        return None;
    }
    let s = Strata::new();
    busybox(&s).then_some(s)
}

#[test]
fn tmpfs_volume_is_mounted_while_containers_use_it() {
    let Some(s) = store() else { return };
    s.ok(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=64m,uid=1000",
        "scratch",
    ]);
    let opts = s.ok(&["volume", "inspect", "-f", "{{json .Options}}", "scratch"]);
    assert_eq!(
        opts.trim(),
        r#"{"device":"tmpfs","o":"size=64m,uid=1000","type":"tmpfs"}"#
    );
    assert!(!mounted(&data(&s, "scratch")), "mounted before any use");
    let (code, out, err) = run(
        &s,
        &[
            "run",
            "--rm",
            "-v",
            "scratch:/scratch",
            "busybox",
            "sh",
            "-c",
            "grep ' /scratch ' /proc/mounts; stat -c %u /scratch; df -k /scratch | tail -1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("tmpfs /scratch tmpfs "), "{out}");
    assert!(
        lines[0].contains("size=65536k") && lines[0].contains("uid=1000"),
        "{out}"
    );
    assert_eq!(lines[1], "1000", "{out}");
    assert_eq!(lines[2].split_whitespace().nth(1), Some("65536"), "{out}");
    assert!(
        !mounted(&data(&s, "scratch")),
        "left mounted after the last user"
    );

    // Two containers at once share one filesystem; it goes when the last one stops.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "holder",
        "-v",
        "scratch:/s",
        "busybox",
        "sh",
        "-c",
        "echo shared > /s/f; exec sleep 60",
    ]);
    until("the holder's write", Duration::from_secs(10), || {
        data(&s, "scratch").join("f").exists()
    });
    let (code, out, err) = run(
        &s,
        &["run", "--rm", "-v", "scratch:/s", "busybox", "cat", "/s/f"],
    );
    assert_eq!((code, out.as_str()), (0, "shared\n"), "{err}");
    assert!(
        mounted(&data(&s, "scratch")),
        "unmounted while holder still uses it"
    );
    s.ok(&["kill", "holder"]);
    s.ok(&["wait", "holder"]);
    until("the unmount", Duration::from_secs(10), || {
        !mounted(&data(&s, "scratch"))
    });
    let (code, out, _) = run(
        &s,
        &[
            "run",
            "--rm",
            "-v",
            "scratch:/s",
            "busybox",
            "ls",
            "-A",
            "/s",
        ],
    );
    assert_eq!((code, out.as_str()), (0, ""), "a new tmpfs starts empty");
    s.ok(&["rm", "holder"]);
    s.ok(&["volume", "rm", "scratch"]);
}

/// A monitor killed with SIGKILL leaves its container's user mark: the next command that
/// reconciles the container releases the volume and the last user out unmounts it.
#[test]
fn a_crashed_monitor_releases_its_volume_on_the_next_command() {
    let Some(s) = store() else { return };
    create(&s, "tv", &["type=tmpfs", "device=tmpfs", "o=size=1m"]);
    let id = s.ok(&["run", "-d", "-v", "tv:/t", "busybox", "sleep", "1000"]);
    let id = id.trim();
    assert!(mounted(&data(&s, "tv")));
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.root().join("containers").join(id).join("state.json")).unwrap(),
    )
    .unwrap();
    let monitor = st["monitor_pid"].as_i64().expect("monitor pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", &monitor.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    until("the monitor to die", Duration::from_secs(5), || {
        !Path::new(&format!("/proc/{monitor}")).exists()
    });
    assert!(mounted(&data(&s, "tv")), "nobody has noticed yet");
    assert_eq!(
        s.ok(&["ps", "-a", "--format", "{{.State}}"]).trim(),
        "exited"
    );
    assert!(
        !mounted(&data(&s, "tv")),
        "reconcile left the volume mounted"
    );
    assert_eq!(
        std::fs::read_dir(s.root().join("volumes/tv/users"))
            .unwrap()
            .count(),
        0
    );
    s.ok(&["rm", id]);
}

#[test]
fn bind_volume_writes_through_to_the_host_directory() {
    let Some(s) = store() else { return };
    let host = s.scratch("host-dir");
    std::fs::write(host.join("before"), b"kept\n").unwrap();
    let device = format!("device={}", host.display());
    create(&s, "hostdir", &["type=none", "o=bind", &device]);
    let (code, out, err) = run(
        &s,
        &[
            "run",
            "--rm",
            "-v",
            "hostdir:/data",
            "busybox",
            "sh",
            "-c",
            "cat /data/before; echo from the container > /data/new",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "kept\n"), "{err}");
    assert_eq!(
        std::fs::read_to_string(host.join("new")).unwrap(),
        "from the container\n"
    );
    assert!(!mounted(&data(&s, "hostdir")));
    // Removing the volume removes strata's directory, never the host's files.
    s.ok(&["volume", "rm", "hostdir"]);
    assert!(host.join("new").exists() && host.join("before").exists());
}

#[test]
fn a_volume_that_does_not_mount_fails_the_start() {
    let Some(s) = store() else { return };
    let missing = s.scratch("gone").join("missing");
    let device = format!("device={}", missing.display());
    create(&s, "broken", &["type=none", "o=bind", &device]);
    let (code, _, err) = run(
        &s,
        &[
            "run",
            "--name",
            "starter",
            "-v",
            "broken:/b",
            "busybox",
            "true",
        ],
    );
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("error while mounting volume") && err.contains("failed to mount local volume"),
        "{err}"
    );
    let users = s.root().join("volumes/broken/users");
    assert_eq!(std::fs::read_dir(&users).unwrap().count(), 0, "a user left");
    assert!(!mounted(&data(&s, "broken")));
    assert!(
        !mounted(&s.root().join("containers")),
        "nothing else mounted"
    );
    s.ok(&["rm", "starter"]);
    s.ok(&["volume", "rm", "broken"]);
}

/// Docker's local driver checks its options at `volume create`; nothing is made when they fail.
#[test]
fn unknown_or_incomplete_options_are_refused() {
    let s = Strata::new();
    for (opts, want) in [
        (&["-o", "foo=bar"][..], "invalid option: \"foo\""),
        (
            &["-o", "type=tmpfs"][..],
            "missing required option: \"device\"",
        ),
        (
            &["-o", "o=size=1m", "-o", "device=tmpfs"][..],
            "missing required option: \"type\"",
        ),
        (
            &["-o", "size=10g"][..],
            "quota size requested but no quota support",
        ),
    ] {
        let args: Vec<&str> = ["volume", "create"]
            .iter()
            .chain(opts)
            .chain(&["vol1"])
            .copied()
            .collect();
        let err = s.fails(&args, b"");
        assert!(err.contains(want), "{opts:?}: {err}");
    }
    assert_eq!(s.ok(&["volume", "ls", "-q"]), "");
    assert!(!s.root().join("volumes/vol1").exists());
}
