//! Container logs end to end: `--log-opt max-size/max-file/compress` rotate the json-file log
//! while the container runs, `logs` reads across the rotated files (also following), the
//! store's `log-opts` default applies without flags, `system df -v` counts the logs and `rm`
//! removes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{Strata, bytes};
use serde_json::{Value, json};
use strata_testutil::{
    Compression, ImageBuilder, LayoutEntry, busybox_layer, require_root, require_tool, tar_dir,
    write_layout,
};

/// A store with `busybox:latest` loaded, or None when the test cannot run here.
fn store_with_busybox() -> Option<Strata> {
    if !(require_root("runs containers") && require_tool("runc") && require_tool("busybox")) {
        return None;
    }
    let layer = busybox_layer()?.build(Compression::Gzip);
    let img = ImageBuilder::new().layer(layer).build();
    let s = Strata::new();
    let layout = s.scratch("layout");
    write_layout(&layout, &[("busybox:latest", LayoutEntry::Image(&img))]).unwrap();
    s.ok_input(&["load"], &tar_dir(&layout).unwrap());
    Some(s)
}

/// A shell command printing lines `000001 xxx…` to `000N` (`width` bytes each, newline
/// included).
fn numbered_lines(n: usize, width: usize) -> String {
    format!(
        "awk 'BEGIN{{p=\"\"; for(j=0;j<{};j++) p=p \"x\"; for(i=1;i<={n};i++) printf \"%06d %s\\n\", i, p}}'",
        width - 8
    )
}

/// The container's log files: (name, bytes), sorted by name.
fn log_files(s: &Strata, id: &str) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(s.root().join("containers").join(id))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    files.sort();
    files
}

fn id_of(s: &Strata, name: &str) -> String {
    s.ok(&["container", "inspect", "--format", "{{.Id}}", name])
        .trim()
        .to_owned()
}

fn log_config(s: &Strata, name: &str) -> Value {
    let out = s.ok(&[
        "container",
        "inspect",
        "--format",
        "{{json .HostConfig.LogConfig}}",
        name,
    ]);
    serde_json::from_str(out.trim()).unwrap()
}

/// Numbers of `000123 xxx` lines, asserting each is one.
fn numbers(out: &str) -> Vec<usize> {
    out.lines()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

fn assert_contiguous_to(nums: &[usize], last: usize) {
    assert_eq!(nums.last(), Some(&last), "the last line is missing");
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "lines out of order or missing");
    }
}

#[test]
fn log_opts_rotate_while_running_and_logs_reads_across_files() {
    let Some(s) = store_with_busybox() else {
        return;
    };
    // ~5 MB of output, 100-byte lines.
    s.ok(&[
        "run",
        "--name",
        "big",
        "--log-opt",
        "max-size=100k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        &numbered_lines(50_000, 100),
    ]);
    let id = id_of(&s, "big");
    let files = log_files(&s, &id);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let base = format!("{id}-json.log");
    assert_eq!(
        names,
        [base.clone(), format!("{base}.1"), format!("{base}.2")]
    );
    let current =
        std::fs::read_to_string(s.root().join("containers").join(&id).join(&base)).unwrap();
    let entry = current.lines().next().unwrap().len() as u64 + 1;
    for (name, len) in &files {
        // max-size (decimal k, as Docker) plus at most one entry.
        assert!(*len < 100_000 + entry, "{name} is {len} bytes");
    }

    let all = s.ok(&["logs", "big"]);
    let nums = numbers(&all);
    assert_contiguous_to(&nums, 50_000);
    assert!(
        nums.len() as u64 > 2 * 100_000 / entry,
        "only {} lines: not read across the files",
        nums.len()
    );
    assert_eq!(
        numbers(&s.ok(&["logs", "--tail", "2", "big"])),
        [49_999, 50_000]
    );
    // A tail longer than the current file reaches into the rotated ones.
    let n = current.lines().count() + 5;
    let tail = numbers(&s.ok(&["logs", "--tail", &n.to_string(), "big"]));
    assert_eq!(tail.len(), n);
    assert_contiguous_to(&tail, 50_000);

    assert_eq!(
        log_config(&s, "big"),
        json!({"Type": "json-file", "Config": {"max-file": "3", "max-size": "100k"}})
    );

    // system df -v counts the log files; the summary too.
    let on_disk: u64 = files.iter().map(|(_, l)| l).sum();
    let df: Value =
        serde_json::from_str(&s.ok(&["system", "df", "-v", "--format", "json"])).unwrap();
    let shown = bytes(df["Containers"][0]["LogSize"].as_str().unwrap());
    assert!(
        (shown - on_disk as f64).abs() / (on_disk as f64) < 0.01,
        "{df}"
    );
    let summary = s.ok(&["system", "df", "--format", "json"]);
    let row: Value = serde_json::from_str(summary.lines().nth(1).unwrap()).unwrap();
    assert!(bytes(row["LogSize"].as_str().unwrap()) > 2e5, "{row}");
    assert!(s.ok(&["system", "df", "-v"]).contains("LOG SIZE"));

    // rm takes the log files with the container.
    let dir = s.root().join("containers").join(&id);
    s.ok(&["rm", "big"]);
    assert!(!dir.exists());
}

#[test]
fn the_store_default_applies_without_flags() {
    let Some(s) = store_with_busybox() else {
        return;
    };
    // A store that never set it bounds logs (Docker's json-file would not).
    assert_eq!(
        s.ok(&["system", "settings", "log-opts"]).trim(),
        "max-size=20m,max-file=5"
    );
    s.ok(&["create", "--name", "dflt", "busybox", "true"]);
    assert_eq!(
        log_config(&s, "dflt"),
        json!({"Type": "json-file", "Config": {"max-file": "5", "max-size": "20m"}})
    );

    s.ok(&["system", "settings", "log-opts", "max-size=50k, max-file=2"]);
    assert_eq!(
        s.ok(&["system", "settings", "log-opts"]).trim(),
        "max-file=2,max-size=50k"
    );
    s.ok(&[
        "run",
        "--name",
        "small",
        "busybox",
        "sh",
        "-c",
        &numbered_lines(20_000, 50),
    ]);
    let id = id_of(&s, "small");
    let files = log_files(&s, &id);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().all(|(_, l)| *l < 50_000 + 200), "{files:?}");
    assert_contiguous_to(&numbers(&s.ok(&["logs", "small"])), 20_000);
    // A flag overrides one key; the others still come from the store.
    s.ok(&[
        "create",
        "--name",
        "mixed",
        "--log-opt",
        "max-file=4",
        "busybox",
        "true",
    ]);
    assert_eq!(
        log_config(&s, "mixed"),
        json!({"Type": "json-file", "Config": {"max-file": "4", "max-size": "50k"}})
    );

    // Bad values are refused, by the setting and by the flag (no container made).
    for (key, bad, says) in [
        ("log-opts", "max-file=0", "max-file cannot be less than 1"),
        (
            "log-opts",
            "max-size=1m,colour=red",
            "unknown log opt 'colour'",
        ),
        ("log-opts", "max-size=lots", "invalid max-size"),
        ("log-driver", "syslog", "not supported"),
    ] {
        let err = s.fails(&["system", "settings", key, bad], b"");
        assert!(err.contains(says), "{key} {bad}: {err}");
    }
    let before = s.ok(&["ps", "-aq"]);
    let out = s.run_input(
        &[
            "run",
            "--log-opt",
            "max-size=1m",
            "--log-opt",
            "compress=true",
            "--log-opt",
            "max-file=1",
            "busybox",
            "true",
        ],
        b"",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("compress cannot be true"),
        "{out:?}"
    );
    assert_eq!(s.ok(&["ps", "-aq"]), before);

    // "" is Docker's default: one file, never rotated.
    s.ok(&["system", "settings", "log-opts", ""]);
    s.ok(&["create", "--name", "unbounded", "busybox", "true"]);
    assert_eq!(
        log_config(&s, "unbounded"),
        json!({"Type": "json-file", "Config": {}})
    );
}

#[test]
fn following_logs_reads_on_across_rotations() {
    let Some(s) = store_with_busybox() else {
        return;
    };
    // Nothing for 2 s (the follower starts meanwhile), then 3000 lines in 30 bursts: 140-byte
    // entries, about 0.7 of a rotation a burst.
    let script = format!(
        "sleep 2; for b in $(seq 0 29); do {} | sed \"s/^/$b/\"; usleep 50000; done",
        "awk 'BEGIN{for(i=1;i<=100;i++) printf \"%02d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\n\", i-1}'"
    );
    s.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--log-opt",
        "max-size=20k",
        "--log-opt",
        "max-file=5",
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    let follower = s
        .cmd(&["logs", "-f", "slow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let followed = String::from_utf8(out.stdout).unwrap();
    let nums = numbers(&followed);
    // Every line, in order, though the first files were gone by the end.
    assert_eq!(nums.first(), Some(&0), "{followed}");
    assert_contiguous_to(&nums, 2999);
    let id = id_of(&s, "slow");
    assert_eq!(log_files(&s, &id).len(), 5);
    let kept = numbers(&s.ok(&["logs", "slow"]));
    assert!(kept[0] > 0, "the oldest output should have been dropped");
}

#[test]
fn compress_and_the_none_driver() {
    let Some(s) = store_with_busybox() else {
        return;
    };
    s.ok(&[
        "run",
        "--name",
        "gz",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        "--log-opt",
        "compress=true",
        "busybox",
        "sh",
        "-c",
        &numbered_lines(2_000, 50),
    ]);
    let id = id_of(&s, "gz");
    let names: Vec<String> = log_files(&s, &id).into_iter().map(|(n, _)| n).collect();
    let base = format!("{id}-json.log");
    assert_eq!(
        names,
        [base.clone(), format!("{base}.1.gz"), format!("{base}.2.gz")]
    );
    let gz: PathBuf = s
        .root()
        .join("containers")
        .join(&id)
        .join(format!("{base}.1.gz"));
    assert!(is_gzip(&gz));
    let nums = numbers(&s.ok(&["logs", "gz"]));
    assert_contiguous_to(&nums, 2_000);
    assert!(nums.len() > 200, "the compressed files were not read");

    s.ok(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "hi",
    ]);
    let id = id_of(&s, "quiet");
    assert!(log_files(&s, &id).is_empty());
    assert_eq!(
        log_config(&s, "quiet"),
        json!({"Type": "none", "Config": {}})
    );
    let err = s.fails(&["logs", "quiet"], b"");
    assert!(
        err.contains("configured logging driver does not support reading"),
        "{err}"
    );
}

fn is_gzip(p: &Path) -> bool {
    std::fs::read(p).unwrap().starts_with(&[0x1f, 0x8b])
}
