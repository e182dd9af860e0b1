//! Containers end to end: the real binary, real overlay mounts, runc — Docker's
//! storage-driver documentation walkthrough and the lifecycle around it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Strata;
use common::containers::{busybox_store, load, ready, run, until};
use strata_testutil::{
    Compression, ImageBuilder, LayerBuilder, Registry, build_index, busybox_layer, push_index,
    require_tool,
};

/// The walkthrough's two images: a busybox base and a final image adding one layer.
fn acme_images() -> Option<(strata_testutil::Image, strata_testutil::Image)> {
    let base_layer = busybox_layer()?.build(Compression::Gzip);
    let app_layer = LayerBuilder::new()
        .dir("app", 0o755)
        .file("app/hello.sh", b"#!/bin/sh\necho hello world\n", 0o755)
        .build(Compression::Gzip);
    let base = ImageBuilder::new()
        .layer(base_layer.clone())
        .history("ADD busybox /")
        .config(|c| c["config"]["Cmd"] = serde_json::json!(["sh"]))
        .build();
    let fin = ImageBuilder::new()
        .layer(base_layer)
        .history("ADD busybox /")
        .layer(app_layer)
        .history("COPY . /app")
        .config(|c| c["config"]["Cmd"] = serde_json::json!(["/app/hello.sh"]))
        .build();
    Some((base, fin))
}

#[test]
fn storage_driver_walkthrough() {
    if !ready() {
        return;
    }
    let s = Strata::new();
    let Some((base, fin)) = acme_images() else {
        return;
    };
    load(
        &s,
        &[
            ("acme/my-base-image:1.0", &base),
            ("acme/my-final-image:1.0", &fin),
        ],
    );
    let history = s.ok(&["image", "history", "acme/my-final-image:1.0"]);
    assert!(
        history.contains("COPY . /app") && history.contains("ADD busybox /"),
        "{history}"
    );
    let layers = |name: &str| -> Vec<String> {
        serde_json::from_str(
            s.ok(&[
                "image",
                "inspect",
                "--format",
                "{{json .RootFS.Layers}}",
                name,
            ])
            .trim(),
        )
        .unwrap()
    };
    let (b, f) = (
        layers("acme/my-base-image:1.0"),
        layers("acme/my-final-image:1.0"),
    );
    assert_eq!(b.len(), 1);
    assert_eq!(f.len(), 2);
    assert_eq!(f[0], b[0], "the final image shares the base's layer");

    for n in 1..=5 {
        let name = format!("my_container_{n}");
        let id = s.ok(&[
            "run",
            "-dit",
            "--name",
            &name,
            "acme/my-final-image:1.0",
            "sh",
        ]);
        assert_eq!(id.trim().len(), 64, "{id}");
    }
    let table = "table {{.ID}}\t{{.Image}}\t{{.Names}}\t{{.Size}}";
    let ps = s.ok(&["ps", "--size", "--format", table]);
    let rows: Vec<&str> = ps.lines().skip(1).collect();
    assert_eq!(rows.len(), 5, "{ps}");
    assert!(
        ps.lines().next().unwrap().starts_with("CONTAINER ID"),
        "{ps}"
    );
    let virt: Vec<String> = rows
        .iter()
        .map(|r| {
            assert!(r.contains("acme/my-final-image:1.0"), "{r}");
            let (_, size) = r
                .split_once("   0B (virtual ")
                .unwrap_or_else(|| panic!("{ps}"));
            format!("(virtual {}", size.trim())
        })
        .collect();
    assert!(virt.iter().all(|v| v == &virt[0]), "{ps}");

    for n in 1..=3 {
        s.ok(&[
            "exec",
            &format!("my_container_{n}"),
            "sh",
            "-c",
            "printf hello > /out.txt",
        ]);
    }
    let ps = s.ok(&["ps", "--size", "--format", "{{.Names}}\t{{.Size}}"]);
    for line in ps.lines() {
        let (name, size) = line.split_once('\t').unwrap();
        let n: u32 = name.trim_start_matches("my_container_").parse().unwrap();
        let want = if n <= 3 { "5B " } else { "0B " };
        assert!(size.starts_with(want), "{ps}");
        assert!(size.ends_with(&virt[0]), "{ps}");
    }
    let names: Vec<String> = (1..=5).map(|n| format!("my_container_{n}")).collect();
    let mut args = vec!["rm", "-f"];
    args.extend(names.iter().map(String::as_str));
    s.ok(&args);
    assert_eq!(s.ok(&["ps", "-aq"]), "");
}

#[test]
fn run_exit_codes_output_and_rm() {
    let Some(s) = busybox_store() else { return };
    let (code, out, _) = run(&s, &["run", "--rm", "busybox", "echo", "hi there"]);
    assert_eq!((code, out.as_str()), (0, "hi there\n"));
    let (code, _, _) = run(&s, &["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(code, 3);
    let (code, _, err) = run(&s, &["run", "--rm", "busybox", "/no/such/thing"]);
    assert_eq!(code, 127, "{err}");
    let (code, _, err) = run(&s, &["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(code, 126, "{err}");
    let (code, _, err) = run(
        &s,
        &["run", "--rm", "--pull", "never", "no-such-image-here:1"],
    );
    assert_eq!(code, 125, "{err}");
    // --rm leaves nothing: no record, no snapshot but the image's, no mount, no state.
    assert_eq!(s.ok(&["ps", "-aq"]), "");
    let snaps = s.ok(&["snapshot", "ls"]);
    assert!(!snaps.contains("Active"), "{snaps}");
    let dirs = std::fs::read_dir(s.root().join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(dirs, 0);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(s.root().to_str().unwrap()), "{mounts}");
}

#[test]
fn detached_lifecycle_logs_stop_wait() {
    let Some(s) = busybox_store() else { return };
    let id = s.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; echo oops >&2; trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done",
    ]);
    let id = id.trim();
    until("log output", Duration::from_secs(10), || {
        s.ok(&["logs", "web"]).contains("started")
    });
    let out = s.run_input(&["logs", "web"], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    let ps = s.ok(&["ps", "--format", "{{.Names}} {{.State}} {{.Status}}"]);
    assert!(ps.starts_with("web running Up "), "{ps}");
    let insp = s.ok(&[
        "container",
        "inspect",
        "--format",
        "{{.State.Status}} {{.Name}} {{.Id}}",
        "web",
    ]);
    assert_eq!(insp.trim(), format!("running /web {id}"));
    // rm refuses a running container.
    let err = s.fails(&["rm", "web"], b"");
    assert!(err.contains("container is running"), "{err}");
    assert_eq!(s.ok(&["stop", "web"]).trim(), "web");
    assert_eq!(s.ok(&["wait", "web"]).trim(), "7");
    assert!(s.ok(&["logs", "web"]).contains("bye"));
    let ps = s.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Exited (7) "), "{ps}");
    assert_eq!(s.ok(&["ps", "-q"]), "");
    // Started again, killed with a signal: 128 + 9.
    s.ok(&["start", "web"]);
    s.ok(&["kill", "web"]);
    assert_eq!(s.ok(&["wait", "web"]).trim(), "137");
    let err = s.fails(&["kill", "web"], b"");
    assert!(err.contains("is not running"), "{err}");
    s.ok(&["rm", "web"]);
    let err = s.fails(&["rm", "web"], b"");
    assert!(err.contains("No such container: web"), "{err}");
}

#[test]
fn container_pins_its_image() {
    let Some(s) = busybox_store() else { return };
    s.ok(&["create", "--name", "pinned", "busybox", "true"]);
    let err = s.fails(&["rmi", "busybox"], b"");
    assert!(
        err.contains("must be forced") && err.contains("container"),
        "{err}"
    );
    s.ok(&["image", "prune", "-a", "-f"]);
    // Still runnable: image content and layers kept.
    let (code, _, err) = run(&s, &["start", "-a", "pinned"]);
    assert_eq!(code, 0, "{err}");
    s.ok(&["rm", "pinned"]);
    s.ok(&["rmi", "busybox"]);
}

#[test]
fn create_flags_reach_the_process() {
    let Some(s) = busybox_store() else { return };
    let envfile = s.scratch("env").join("list");
    std::fs::write(&envfile, "# comment\nFROM_FILE=yes\n\n").unwrap();
    let host = s.scratch("bind");
    std::fs::write(host.join("data"), "from host").unwrap();
    let bind = format!("{}:/mnt/data:ro", host.display());
    let (code, out, err) = run(
        &s,
        &[
            "run",
            "--rm",
            "-e",
            "A=1",
            "--env-file",
            envfile.to_str().unwrap(),
            "-w",
            "/tmp",
            "-u",
            "app",
            "-h",
            "box",
            "-v",
            &bind,
            "busybox",
            "sh",
            "-c",
            "echo $A $FROM_FILE $(pwd) $(id -u):$(id -g) $(hostname) $(cat /mnt/data/data); touch /mnt/data/x 2>/dev/null || echo ro",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1 yes /tmp 1000:1000 box from host\nro\n");
    let (code, out, _) = run(
        &s,
        &[
            "run",
            "--rm",
            "--read-only",
            "busybox",
            "sh",
            "-c",
            "touch /x || echo read-only",
        ],
    );
    assert_eq!((code, out.trim()), (0, "read-only"));
    let (code, out, _) = run(
        &s,
        &["run", "--rm", "--entrypoint", "echo", "busybox", "a", "b"],
    );
    assert_eq!((code, out.as_str()), (0, "a b\n"));
    let (code, _, err) = run(&s, &["run", "--rm", "-u", "nosuchuser", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("nosuchuser"), "{err}");
}

#[test]
fn kill_9_of_the_monitor_is_cleaned_by_the_next_command() {
    let Some(s) = busybox_store() else { return };
    let id = s.ok(&["run", "-d", "busybox", "sleep", "1000"]);
    let id = id.trim();
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.root().join("containers").join(id).join("state.json")).unwrap(),
    )
    .unwrap();
    let monitor = st["monitor_pid"].as_i64().expect("monitor pid");
    let pid = st["pid"].as_i64().expect("pid");
    unsafe_kill(monitor as i32);
    until("the monitor to die", Duration::from_secs(5), || {
        !std::path::Path::new(&format!("/proc/{monitor}")).exists()
    });
    let ps = s.ok(&["ps", "-a", "--format", "{{.State}}"]);
    assert_eq!(ps.trim(), "exited");
    until(
        "the container process to be gone",
        Duration::from_secs(5),
        || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |st| st.contains(") Z"))
        },
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&id[..12]), "rootfs still mounted");
    s.ok(&["rm", id]);
}

fn unsafe_kill(pid: i32) {
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
}

#[test]
fn run_pulls_a_missing_image_and_the_hosts_variant() {
    if !ready() || !require_tool("docker-registry") {
        return;
    }
    let Some(layer) = busybox_layer() else {
        return;
    };
    let layer = layer.build(Compression::Gzip);
    let for_arch = |arch: &str| {
        ImageBuilder::new()
            .platform("linux", arch, None)
            .layer(layer.clone())
            .config(|c| c["config"]["Cmd"] = serde_json::json!(["echo", "from the host's variant"]))
            .build()
    };
    let reg = Registry::start().unwrap();
    let index = build_index(vec![for_arch("amd64"), for_arch("arm64")], None);
    push_index(&reg.url(), "demo/box", "latest", &index).unwrap();
    let name = format!("{}/demo/box", reg.addr());

    // Not here at all: pulled (progress on stderr, stdout is the container's).
    let s = Strata::new();
    let (code, out, err) = run(&s, &["run", "--rm", &name]);
    assert_eq!(
        (code, out.as_str()),
        (0, "from the host's variant\n"),
        "{err}"
    );
    assert!(err.contains("Unable to find image"), "{err}");
    assert!(err.contains("Status: Downloaded newer image"), "{err}");

    // Only another platform here: the host's is pulled.
    let s = Strata::new();
    s.ok(&["pull", "--platform", "linux/arm64", &name]);
    let (code, out, err) = run(&s, &["run", "--rm", &name]);
    assert_eq!(
        (code, out.as_str()),
        (0, "from the host's variant\n"),
        "{err}"
    );
    assert!(err.contains("Unable to find image"), "{err}");
    // --pull never refuses instead.
    let s = Strata::new();
    let (code, _, err) = run(&s, &["run", "--rm", "--pull", "never", &name]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("No such image"), "{err}");
}

#[test]
fn copy_up_diff_commit_export() {
    if !ready() {
        return;
    }
    let s = Strata::new();
    let Some(base) = busybox_layer() else {
        return;
    };
    let big = common::pseudo_random(3 << 20, 7);
    let data = LayerBuilder::new()
        .dir("data", 0o755)
        .file("data/big", &big, 0o644)
        .file("data/gone", b"delete me", 0o644)
        .build(Compression::Gzip);
    let img = ImageBuilder::new()
        .layer(base.build(Compression::Gzip))
        .layer(data)
        .config(|c| c["config"]["Cmd"] = serde_json::json!(["sh"]))
        .build();
    load(&s, &[("bigfile:1", &img)]);
    s.ok(&[
        "create",
        "--name",
        "cu",
        "bigfile:1",
        "sh",
        "-c",
        "printf X | dd of=/data/big bs=1 seek=100 conv=notrunc 2>/dev/null; rm /data/gone",
    ]);
    let size = |name: &str| {
        s.ok(&[
            "ps",
            "-a",
            "--size",
            "--filter",
            &format!("name={name}"),
            "--format",
            "{{.Size}}",
        ])
    };
    assert!(size("cu").starts_with("0B (virtual "), "{}", size("cu"));
    let (code, _, err) = run(&s, &["start", "-a", "cu"]);
    assert_eq!(code, 0, "{err}");
    // Copy-up: one byte changed costs the whole file.
    assert!(size("cu").starts_with("3.15MB (virtual "), "{}", size("cu"));
    assert_eq!(
        s.ok(&["diff", "cu"]),
        "C /data\nC /data/big\nD /data/gone\n"
    );
    // The committed layer carries the whiteout.
    let id = s.ok(&["commit", "-m", "edit", "cu", "bigfile:edited"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let layers: Vec<String> = serde_json::from_str(
        s.ok(&[
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            "bigfile:edited",
        ])
        .trim(),
    )
    .unwrap();
    assert_eq!(layers.len(), 3);
    let history = s.ok(&["history", "--no-trunc", "bigfile:edited"]);
    assert!(history.contains("edit"), "{history}");
    let saved = s.scratch("save").join("edited.tar");
    s.ok(&["save", "-o", saved.to_str().unwrap(), "bigfile:edited"]);
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&saved)
        .output()
        .unwrap();
    let manifest: serde_json::Value = {
        let listing = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(listing.contains("manifest.json"), "{listing}");
        let x = std::process::Command::new("tar")
            .arg("-xOf")
            .arg(&saved)
            .arg("manifest.json")
            .output()
            .unwrap();
        serde_json::from_slice(&x.stdout).unwrap()
    };
    let top = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let layer = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -xOf {} {top} | (gzip -dc 2>/dev/null || cat) | tar -t",
            saved.display()
        ))
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&layer.stdout);
    assert!(
        names.contains("data/.wh.gone") && names.contains("data/big"),
        "{names}"
    );
    // The image's own layer is unchanged: a second container sees the original file.
    let (code, out, _) = run(
        &s,
        &[
            "run",
            "--rm",
            "bigfile:1",
            "sh",
            "-c",
            "ls /data; dd if=/data/big bs=1 skip=100 count=1 2>/dev/null | od -An -tx1",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(out, format!("big\ngone\n {:02x}\n", big[100]));
    let (code, out, _) = run(
        &s,
        &[
            "run",
            "--rm",
            "bigfile:edited",
            "sh",
            "-c",
            "ls /data; dd if=/data/big bs=1 skip=100 count=1 2>/dev/null",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "big\nX"));
    // export: the merged filesystem, the deletion applied.
    let tar = s.cmd(&["export", "cu"]).output().unwrap();
    assert!(tar.status.success());
    let listing = std::process::Command::new("tar")
        .arg("-t")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(&tar.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("bin/busybox")
            && listing.contains("data/big")
            && !listing.contains("gone"),
        "{listing}"
    );
    s.ok(&["rm", "cu"]);
    // The committed image outlives its container.
    let (code, _, _) = run(&s, &["run", "--rm", "bigfile:edited", "true"]);
    assert_eq!(code, 0);
}

#[test]
fn volumes_outlive_containers() {
    if !ready() {
        return;
    }
    let s = Strata::new();
    let Some(base) = busybox_layer() else {
        return;
    };
    let img = ImageBuilder::new()
        .layer(
            base.dir("srv", 0o755)
                .dir("srv/app", 0o755)
                .file("srv/app/conf", b"from the image\n", 0o640)
                .build(Compression::Gzip),
        )
        .config(|c| c["config"]["Cmd"] = serde_json::json!(["sh"]))
        .build();
    load(&s, &[("vol:1", &img)]);
    // Named on first use; a new volume gets the image's content at its path.
    let (code, out, err) = run(
        &s,
        &[
            "run",
            "--name",
            "writer",
            "-v",
            "appdata:/srv/app",
            "vol:1",
            "sh",
            "-c",
            "cat /srv/app/conf; echo written > /srv/app/new",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "from the image\n"), "{err}");
    let err = s.fails(&["volume", "rm", "appdata"], b"");
    assert!(err.contains("volume is in use"), "{err}");
    s.ok(&["rm", "writer"]);
    let (code, out, _) = run(
        &s,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=appdata,target=/data,readonly",
            "vol:1",
            "sh",
            "-c",
            "cat /data/new; touch /data/x 2>/dev/null || echo ro",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "written\nro\n"));
    let ls = s.ok(&["volume", "ls"]);
    assert_eq!(ls, "DRIVER    VOLUME NAME\nlocal     appdata\n");
    let insp = s.ok(&[
        "volume",
        "inspect",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}} {{.Mountpoint}}",
        "appdata",
    ]);
    assert_eq!(
        insp.trim(),
        format!(
            "appdata local local {}/volumes/appdata/_data",
            s.root().display()
        )
    );
    // Anonymous: -v /path; `rm -v` removes it, `--rm` too.
    s.ok(&["create", "--name", "anon", "-v", "/cache", "vol:1", "true"]);
    let names = s.ok(&["volume", "ls", "-q"]);
    assert_eq!(names.lines().count(), 2, "{names}");
    s.ok(&["rm", "-v", "anon"]);
    assert_eq!(s.ok(&["volume", "ls", "-q"]), "appdata\n");
    run(&s, &["run", "--rm", "-v", "/cache", "vol:1", "true"]);
    assert_eq!(s.ok(&["volume", "ls", "-q"]), "appdata\n");
    // prune: anonymous only by default, every unused one with -a.
    s.ok(&["create", "--name", "keep", "-v", "/x", "vol:1", "true"]);
    s.ok(&["rm", "keep"]);
    let out = s.ok(&["volume", "prune", "-f"]);
    assert!(
        out.starts_with("Deleted Volumes:\n") && out.contains("Total reclaimed space:"),
        "{out}"
    );
    assert_eq!(s.ok(&["volume", "ls", "-q"]), "appdata\n");
    let out = s.ok(&["volume", "prune", "-a", "-f"]);
    assert!(
        out.contains("appdata") && out.contains("Total reclaimed space: 23B"),
        "{out}"
    );
    assert_eq!(s.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn prunes_remove_stopped_containers_only() {
    let Some(s) = busybox_store() else { return };
    let running = s.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "100"]);
    let stopped = s.ok(&["create", "--name", "down", "busybox", "true"]);
    let out = s.ok(&["container", "prune", "-f"]);
    assert_eq!(
        out,
        format!(
            "Deleted Containers:\n{}\nTotal reclaimed space: 0B\n",
            stopped
        )
    );
    s.ok(&["create", "--name", "down2", "busybox", "true"]);
    let out = s.ok(&["system", "prune", "-a", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    // The running container's image stays, and so does the container.
    assert_eq!(s.ok(&["ps", "-aq", "--no-trunc"]), running);
    assert!(s.ok(&["images", "-q"]).lines().count() == 1);
    assert_eq!(
        s.ok(&[
            "info",
            "--format",
            "{{.ContainersRunning}} {{.ContainersStopped}}"
        ])
        .trim(),
        "1 0"
    );
    s.ok(&["rm", "-f", "up"]);
}

#[test]
fn cp_both_ways_stays_inside_the_container() {
    let Some(s) = busybox_store() else { return };
    s.ok(&["run", "-d", "--name", "box", "busybox", "sh", "-c", "mkdir -p /data/sub; echo inside > /data/sub/f; echo container-secret > /etc/shadow; ln -s / /escape; ln -s ../../../.. /up; sleep 100"]);
    until("the container's files", Duration::from_secs(10), || {
        run(&s, &["exec", "box", "sh", "-c", "[ -L /up ]"]).0 == 0
    });
    let host = s.scratch("host");
    // Out of the container: a directory into an existing directory, a file under a new name.
    s.ok(&["cp", "box:/data", host.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(host.join("data/sub/f")).unwrap(),
        "inside\n"
    );
    // Through the container's own symlinks: its files, never the host's.
    for link in ["/escape", "/up"] {
        let dest = host.join("shadow");
        s.ok(&[
            "cp",
            &format!("box:{link}/etc/shadow"),
            dest.to_str().unwrap(),
        ]);
        assert_eq!(
            std::fs::read_to_string(&dest).unwrap(),
            "container-secret\n",
            "{link}"
        );
    }
    // Into the container through a symlink to `/`: lands in the container's /tmp.
    std::fs::write(host.join("note"), "from the host").unwrap();
    s.ok(&[
        "cp",
        host.join("note").to_str().unwrap(),
        "box:/escape/tmp/",
    ]);
    let (code, out, _) = run(&s, &["exec", "box", "cat", "/tmp/note"]);
    assert_eq!((code, out.as_str()), (0, "from the host"));
    assert!(
        !std::path::Path::new("/tmp/note").exists()
            || std::fs::read_to_string("/tmp/note").unwrap() != "from the host"
    );
    // A tar on stdout; a missing source is a clear error.
    let tar = s.cmd(&["cp", "box:/data/sub", "-"]).output().unwrap();
    assert!(tar.status.success());
    let names: Vec<String> = tar::Archive::new(&tar.stdout[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["sub", "sub/f"]);
    let err = s.fails(&["cp", "box:/nope", host.to_str().unwrap()], b"");
    assert!(
        err.contains("Could not find the file /nope in container"),
        "{err}"
    );
    // A stopped container works too (its layer is mounted for the copy).
    s.ok(&["stop", "-t", "0", "box"]);
    s.ok(&[
        "cp",
        host.join("note").to_str().unwrap(),
        "box:/data/renamed",
    ]);
    s.ok(&[
        "cp",
        "box:/data/renamed",
        host.join("back").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("back")).unwrap(),
        "from the host"
    );
    s.ok(&["rm", "box"]);
}

#[test]
fn kill_9_of_run_d_leaves_a_store_the_next_commands_clean() {
    let Some(s) = busybox_store() else { return };
    // Killed at different points of create and start.
    for (i, delay) in [0u64, 5, 15, 30, 60, 120].into_iter().enumerate() {
        let mut child = s
            .cmd(&[
                "run",
                "-d",
                "--name",
                &format!("k{i}"),
                "busybox",
                "sleep",
                "1000",
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
    }
    // Whatever was left is listed, and removable with one command.
    let ids = s.ok(&["ps", "-aq"]);
    let mut args = vec!["rm", "-f"];
    args.extend(ids.lines());
    if ids.lines().count() > 0 {
        s.ok(&args);
    }
    assert_eq!(s.ok(&["ps", "-aq"]), "");
    // No container snapshot, mount or runtime state is left: the next prune finds only the image.
    s.ok(&["system", "prune", "-f"]);
    let snaps = s.ok(&["snapshot", "ls", "--format", "{{.Key}} {{.Kind}}"]);
    assert!(
        snaps
            .lines()
            .all(|l| l.starts_with("sha256:") && l.ends_with("Committed")),
        "{snaps}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(s.root().to_str().unwrap()))
        .collect();
    assert!(left.is_empty(), "mounts left: {left:#?}");
    let state = std::fs::read_dir(s.root().join("runtime/runc"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(state, 0, "runc state left");
    // And the store still runs containers.
    let (code, out, _) = run(&s, &["run", "--rm", "busybox", "echo", "ok"]);
    assert_eq!((code, out.as_str()), (0, "ok\n"));
}

#[test]
fn stdin_logs_follow_exec_detached_and_network_modes() {
    if !ready() {
        return;
    }
    let s = Strata::new();
    let Some(base) = busybox_layer() else {
        return;
    };
    let img = ImageBuilder::new()
        .layer(base.build(Compression::Gzip))
        .config(|c| {
            c["config"]["Cmd"] = serde_json::json!(["sh"]);
            c["config"]["Env"] = serde_json::json!(["FROM_IMAGE=1", "PATH=/bin"]);
            c["config"]["StopSignal"] = serde_json::json!("SIGUSR1");
        })
        .build();
    load(&s, &[("bb:1", &img)]);
    // -i: this process's stdin is the container's.
    let out = s.run_input(
        &[
            "run",
            "--rm",
            "-i",
            "bb:1",
            "sh",
            "-c",
            "cat; echo \"$FROM_IMAGE $PATH $HOME\"",
        ],
        b"piped in\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "piped in\n1 /bin /root\n"
    );
    // Without -i the container's stdin is empty.
    let out = s.run_input(&["run", "--rm", "bb:1", "cat"], b"ignored\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    // stop sends the image's STOPSIGNAL.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "sig",
        "bb:1",
        "sh",
        "-c",
        "trap 'echo got usr1; exit 5' USR1; echo ready; while true; do sleep 0.1; done",
    ]);
    until("ready", Duration::from_secs(10), || {
        s.ok(&["logs", "sig"]).contains("ready")
    });
    // logs -f follows until the container exits.
    let follower = s
        .cmd(&["logs", "-f", "sig"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // exec -d runs in the background and returns at once.
    s.ok(&["exec", "-d", "sig", "sh", "-c", "echo from-exec > /tmp/e"]);
    until("the detached exec", Duration::from_secs(10), || {
        run(&s, &["exec", "sig", "cat", "/tmp/e"]).1 == "from-exec\n"
    });
    s.ok(&["stop", "sig"]);
    let followed = follower.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&followed.stdout),
        "ready\ngot usr1\n"
    );
    assert_eq!(s.ok(&["wait", "sig"]).trim(), "5");
    let tail = s.ok(&["logs", "--tail", "1", "sig"]);
    assert_eq!(tail, "got usr1\n");
    s.ok(&["rm", "sig"]);
    // --network none: loopback only; host: the host's interfaces.
    let (_, none, _) = run(
        &s,
        &["run", "--rm", "bb:1", "sh", "-c", "ls /sys/class/net"],
    );
    assert_eq!(none.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    let (_, host, _) = run(
        &s,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "bb:1",
            "sh",
            "-c",
            "ls /sys/class/net",
        ],
    );
    assert!(host.split_whitespace().count() > 1, "{host}");
    let (code, _, err) = run(&s, &["run", "--rm", "--network", "bridge", "bb:1", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("not supported"), "{err}");
}
