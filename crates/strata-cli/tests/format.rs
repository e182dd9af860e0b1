//! Every `--format` form the CLI promises, on real commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Strata;
use serde_json::Value;

fn store_with_two_blobs() -> (Strata, String, String) {
    let s = Strata::new();
    let a = s.ingest(b"aaaa");
    let b = s.ingest(b"bbbbbbbb");
    s.ok(&["content", "label", &b, "org.example/k=v"]);
    (s, a, b)
}

#[test]
fn field_template_one_line_per_item() {
    let (s, a, b) = store_with_two_blobs();
    let mut want = [a, b];
    want.sort();
    assert_eq!(
        s.ok(&["content", "ls", "--format", "{{.Digest}}"]),
        format!("{}\n{}\n", want[0], want[1])
    );
}

#[test]
fn json_is_one_object_per_line() {
    let (s, ..) = store_with_two_blobs();
    let out = s.ok(&["content", "ls", "--format", "json"]);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    let sizes: Vec<u64> = rows
        .iter()
        .map(|r| r["SizeBytes"].as_u64().unwrap())
        .collect();
    assert!(sizes.contains(&4) && sizes.contains(&8), "{rows:?}");
}

#[test]
fn table_with_tabs_and_header() {
    let (s, a, b) = store_with_two_blobs();
    // As typed in a shell: a literal backslash-t.
    let out = s.ok(&["content", "ls", "--format", r"table {{.Digest}}\t{{.Size}}"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    // Docker's tabwriter: the first column is as wide as the widest cell plus 3 spaces.
    let width = a.len() + 3;
    assert_eq!(lines[0], format!("{:<width$}SIZE", "DIGEST"));
    for (line, (d, size)) in lines[1..].iter().zip(
        [(&a, "4B"), (&b, "8B")]
            .iter()
            .copied()
            .collect::<std::collections::BTreeMap<_, _>>(),
    ) {
        assert_eq!(*line, format!("{d:<width$}{size}"));
    }
}

#[test]
fn default_table_has_docker_style_header() {
    let (s, ..) = store_with_two_blobs();
    let out = s.ok(&["content", "ls"]);
    let header = out.lines().next().unwrap();
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(cols, ["DIGEST", "SIZE", "AGE", "LABELS"]);
    assert!(out.contains("org.example/k=v"), "{out}");
}

#[test]
fn nested_fields_and_json_function_on_inspect() {
    let (s, _, b) = store_with_two_blobs();
    assert_eq!(
        s.ok(&["content", "info", &b, "--format", "{{json .Labels}}"])
            .trim(),
        r#"{"org.example/k":"v"}"#
    );
    assert_eq!(
        s.ok(&["info", "--format", "{{.ClientInfo.Platform.Name}}"])
            .trim(),
        "strata"
    );
    assert_eq!(
        s.ok(&["version", "--format", "{{.Client.Version}}"]).trim(),
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn info_driver_status_prints_as_docker_does() {
    let s = Strata::new();
    assert_eq!(
        s.ok(&["info", "-f", "{{ .DriverStatus }}"]),
        "[[driver-type io.containerd.snapshotter.v1]]\n"
    );
    assert_eq!(
        s.ok(&["info", "--format", "{{.Driver}}"]).trim(),
        "overlayfs"
    );
    assert_eq!(
        s.ok(&["--snapshotter", "native", "info", "--format", "{{.Driver}}"])
            .trim(),
        "native"
    );
    let info: Value = serde_json::from_str(&s.ok(&["info", "--format", "{{json .}}"])).unwrap();
    assert_eq!(info["Images"], 0);
    assert_eq!(info["DockerRootDir"], s.root().to_str().unwrap());
}

#[test]
fn bad_template_is_a_clear_error() {
    let s = Strata::new();
    let err = s.fails(&["content", "ls", "--format", "{{.Digest"], b"");
    assert!(err.starts_with("strata: invalid --format"), "{err}");
    let err = s.fails(&["info", "--format", "{{nosuchfunc .X}}"], b"");
    assert!(err.contains("nosuchfunc"), "{err}");
}
