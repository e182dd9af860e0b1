//! Tests of the public entry points: `OutputFormat::parse` and `write_items`.

use serde_json::{Value, json};

use super::*;

const DEFAULT: &str = "{{.ID}}\t{{.Image}}\t{{.Names}}";
const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Names", "NAMES"),
    ("Size", "SIZE"),
];

fn parse(user: Option<&str>) -> OutputFormat {
    match OutputFormat::parse(user, DEFAULT) {
        Ok(f) => f,
        Err(e) => panic!("{user:?}: {e}"),
    }
}

fn write(format: &OutputFormat, items: &[Value], headers: &[(&str, &str)]) -> String {
    let mut out = Vec::new();
    if let Err(e) = write_items(&mut out, format, items, headers) {
        panic!("{e}");
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn containers() -> Vec<Value> {
    vec![
        json!({"ID": "4f66ad9a0b2e", "Image": "nginx:1.27", "Names": "web", "Size": "1.23kB", "State": "running"}),
        json!({"ID": "b1", "Image": "alpine", "Names": "job", "Size": "0B", "State": "exited"}),
    ]
}

#[test]
fn parse_chooses_like_docker() {
    let source = |f: &OutputFormat| match f {
        OutputFormat::Table(t) => format!("table:{}", t.source()),
        OutputFormat::Template(t) => format!("template:{}", t.source()),
        OutputFormat::Json => "json".to_owned(),
    };
    assert_eq!(source(&parse(None)), format!("table:{DEFAULT}"));
    assert_eq!(source(&parse(Some(""))), format!("table:{DEFAULT}"));
    assert_eq!(source(&parse(Some("table"))), format!("table:{DEFAULT}"));
    assert_eq!(source(&parse(Some("table  "))), format!("table:{DEFAULT}"));
    assert_eq!(
        source(&parse(Some(r"table {{.ID}}\t{{.Size}}"))),
        "table:{{.ID}}\t{{.Size}}"
    );
    assert_eq!(source(&parse(Some("json"))), "json");
    assert_eq!(source(&parse(Some(" json "))), "json");
    assert_eq!(source(&parse(Some("{{json .}}"))), "template:{{json .}}");
    assert_eq!(source(&parse(Some("  {{.ID}}  "))), "template:{{.ID}}");
    assert_eq!(source(&parse(Some(r"{{.ID}}\n"))), "template:{{.ID}}\n");
    assert_eq!(source(&parse(Some("JSON"))), "template:JSON");
}

#[test]
fn parse_reports_template_errors() {
    let err = |user: &str| match OutputFormat::parse(Some(user), DEFAULT) {
        Ok(f) => panic!("{user:?} parsed as {f:?}"),
        Err(e) => e.to_string(),
    };
    assert_eq!(err("{{.ID"), "template: 1:6: unclosed action");
    assert_eq!(
        err("table {{foo}}"),
        "template: 1:3: function \"foo\" not defined"
    );
    assert!(OutputFormat::parse(None, "{{").is_err());
}

#[test]
fn table_with_headers_is_aligned_like_docker() {
    let f = parse(Some(r"table {{.ID}}\t{{.Size}}"));
    assert_eq!(
        write(
            &f,
            &containers(),
            &[("ID", "CONTAINER ID"), ("Size", "SIZE")]
        ),
        concat!(
            "CONTAINER ID   SIZE\n",
            "4f66ad9a0b2e   1.23kB\n",
            "b1             0B\n",
        )
    );
}

#[test]
fn default_table() {
    assert_eq!(
        write(&parse(None), &containers(), HEADERS),
        concat!(
            "CONTAINER ID   IMAGE        NAMES\n",
            "4f66ad9a0b2e   nginx:1.27   web\n",
            "b1             alpine       job\n",
        )
    );
}

#[test]
fn table_header_without_items() {
    assert_eq!(
        write(&parse(None), &[], HEADERS),
        "CONTAINER ID   IMAGE     NAMES\n"
    );
}

#[test]
fn table_header_falls_back_to_upper_case_field_name() {
    let f = parse(Some(r"table {{.ID}}\t{{.State}}"));
    assert_eq!(
        write(&f, &containers(), HEADERS),
        "CONTAINER ID   STATE\n4f66ad9a0b2e   running\nb1             exited\n"
    );
}

#[test]
fn single_column_table() {
    let f = parse(Some("table {{.Names}}"));
    assert_eq!(write(&f, &containers(), HEADERS), "NAMES\nweb\njob\n");
}

#[test]
fn json_lines() {
    let items = [
        json!({"b": 1, "a": "<x>"}),
        json!({"ID": "b1", "Labels": {}}),
    ];
    assert_eq!(
        write(&OutputFormat::Json, &items, HEADERS),
        "{\"a\":\"<x>\",\"b\":1}\n{\"ID\":\"b1\",\"Labels\":{}}\n"
    );
    assert_eq!(write(&OutputFormat::Json, &[], HEADERS), "");
}

#[test]
fn template_lines_keep_real_tabs() {
    let f = parse(Some(r"{{.ID}}\t{{.Size}}"));
    assert_eq!(
        write(&f, &containers(), HEADERS),
        "4f66ad9a0b2e\t1.23kB\nb1\t0B\n"
    );
    let f = parse(Some(
        "{{.Names}}: {{if eq .State \"running\"}}up{{else}}down{{end}}",
    ));
    assert_eq!(write(&f, &containers(), HEADERS), "web: up\njob: down\n");
}

#[test]
fn nothing_is_written_when_an_item_fails() {
    let f = parse(Some("table {{.ID.X}}"));
    let mut out = Vec::new();
    let err = write_items(&mut out, &f, &containers(), HEADERS);
    assert!(matches!(err, Err(FormatError::Exec { .. })), "{err:?}");
    assert!(out.is_empty());
}

#[test]
fn io_errors_are_reported() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let err = write_items(&mut Broken, &OutputFormat::Json, &[json!(1)], HEADERS);
    match err {
        Err(e @ FormatError::Io(_)) => {
            assert_eq!(e.to_string(), "writing formatted output: disk on fire")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn docker_info_driver_status() {
    let info = json!({"DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]});
    let f = parse(Some("{{ .DriverStatus }}"));
    assert_eq!(
        write(&f, &[info], HEADERS),
        "[[driver-type io.containerd.snapshotter.v1]]\n"
    );
}

#[test]
fn go_display_is_public() {
    assert_eq!(
        go_display(&json!({"b": [1, 2.5], "a": null})),
        "map[a:<nil> b:[1 2.5]]"
    );
}

#[test]
fn images_table_like_docker() {
    let items = [json!({
        "Repository": "alpine",
        "Tag": "3.20",
        "ID": "91ef0af61f39",
        "CreatedSince": "2 weeks ago",
        "Size": human_size(7_800_000),
    })];
    let headers = [
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("ID", "IMAGE ID"),
        ("CreatedSince", "CREATED"),
        ("Size", "SIZE"),
    ];
    let f = match OutputFormat::parse(
        None,
        r"{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
    ) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        write(&f, &items, &headers),
        concat!(
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n",
            "alpine       3.20      91ef0af61f39   2 weeks ago   7.8MB\n",
        )
    );
}
