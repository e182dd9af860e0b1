//! End-to-end template tests: parse, then render against JSON.

use serde_json::{Value, json};

use super::*;

fn render(src: &str, data: &Value) -> String {
    match Template::parse(src).and_then(|t| t.render(data)) {
        Ok(s) => s,
        Err(e) => panic!("{src:?}: {e}"),
    }
}

fn render_err(src: &str, data: &Value) -> String {
    match Template::parse(src).and_then(|t| t.render(data)) {
        Ok(s) => panic!("{src:?}: expected an error, rendered {s:?}"),
        Err(e) => e.to_string(),
    }
}

fn container() -> Value {
    json!({
        "ID": "4f66ad9a0b2e",
        "Name": "web",
        "Image": "nginx:1.27",
        "Names": ["web", "frontend"],
        "State": "running",
        "Size": 1024,
        "Ratio": 1.5,
        "Labels": {"tier": "front", "app": "shop"},
        "Health": null,
        "Empty": [],
        "RootFS": {"Type": "layers", "Layers": ["sha256:a", "sha256:b"]},
        "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
        "Items": [{"Name": "a", "N": 1}, {"Name": "b", "N": 2}],
        "A": {"B": {"C": "deep"}}
    })
}

#[test]
fn fields() {
    let c = container();
    assert_eq!(render("{{.ID}}", &c), "4f66ad9a0b2e");
    assert_eq!(render("{{.A.B}}", &c), "map[C:deep]");
    assert_eq!(render("{{.A.B.C}}", &c), "deep");
    assert_eq!(render("id={{ .ID }}!", &c), "id=4f66ad9a0b2e!");
    assert_eq!(render("{{.}}", &json!("scalar")), "scalar");
    assert_eq!(render("{{$}}", &json!(7)), "7");
    assert_eq!(render("{{$.Name}}", &c), "web");
    assert_eq!(render("no actions at all", &c), "no actions at all");
}

#[test]
fn go_value_printing() {
    let c = container();
    assert_eq!(
        render("{{ .DriverStatus }}", &c),
        "[[driver-type io.containerd.snapshotter.v1]]"
    );
    assert_eq!(render("{{.Names}}", &c), "[web frontend]");
    assert_eq!(render("{{.Labels}}", &c), "map[app:shop tier:front]");
    assert_eq!(render("{{.Size}}", &c), "1024");
    assert_eq!(render("{{.Ratio}}", &c), "1.5");
    assert_eq!(render("{{.Health}}", &c), "<nil>");
    assert_eq!(render("{{.Empty}}", &c), "[]");
    assert_eq!(
        render("{{.Items}}", &c),
        "[map[N:1 Name:a] map[N:2 Name:b]]"
    );
    assert_eq!(
        render("{{true}} {{false}} {{1.5}} {{0x10}} {{-3}} {{'a'}}", &c),
        "true false 1.5 16 -3 97"
    );
}

#[test]
fn missing_keys_print_no_value() {
    let c = container();
    assert_eq!(render("{{.Nope}}", &c), "<no value>");
    assert_eq!(render("{{.Nope.Deeper}}", &c), "<no value>");
    assert_eq!(render("{{.A.Nope}}", &c), "<no value>");
    assert_eq!(render("{{if .Nope}}yes{{else}}no{{end}}", &c), "no");
}

#[test]
fn json_function() {
    let c = container();
    assert_eq!(
        render("{{json .RootFS.Layers}}", &c),
        r#"["sha256:a","sha256:b"]"#
    );
    assert_eq!(
        render("{{json .Labels}}", &c),
        r#"{"app":"shop","tier":"front"}"#
    );
    assert_eq!(render("{{json .Health}}", &c), "null");
    assert_eq!(render("{{json .Nope}}", &c), "null");
    assert_eq!(render("{{json .Name}}", &c), r#""web""#);
    assert_eq!(
        render("{{json .}}", &json!({"b": "<&>", "a": 1})),
        r#"{"a":1,"b":"<&>"}"#
    );
}

#[test]
fn range() {
    let c = container();
    assert_eq!(render("{{range .Names}}{{.}},{{end}}", &c), "web,frontend,");
    assert_eq!(
        render("{{range $i, $e := .Names}}{{$i}}={{$e}} {{end}}", &c),
        "0=web 1=frontend "
    );
    assert_eq!(
        render("{{range $e := .Names}}[{{$e}}]{{end}}", &c),
        "[web][frontend]"
    );
    assert_eq!(
        render("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}", &c),
        "app=shop;tier=front;"
    );
    assert_eq!(render("{{range .Labels}}{{.}} {{end}}", &c), "shop front ");
    assert_eq!(
        render("{{range .Items}}{{.Name}}{{.N}}-{{$.Name}} {{end}}", &c),
        "a1-web b2-web "
    );
    assert_eq!(render("{{range .Empty}}x{{else}}none{{end}}", &c), "none");
    assert_eq!(render("{{range .Nope}}x{{else}}none{{end}}", &c), "none");
    assert_eq!(render("{{range .Health}}x{{else}}none{{end}}", &c), "none");
    assert_eq!(render("{{range 3}}{{.}}{{end}}", &c), "012");
    assert_eq!(render("{{range $i := 2}}<{{$i}}>{{end}}", &c), "<0><1>");
    assert_eq!(
        render(
            "{{range .Items}}{{if eq .Name \"b\"}}{{break}}{{end}}{{.Name}}{{end}}",
            &c
        ),
        "a"
    );
    assert_eq!(
        render(
            "{{range .Items}}{{if eq .Name \"a\"}}{{continue}}{{end}}{{.Name}}{{end}}",
            &c
        ),
        "b"
    );
    assert_eq!(
        render("{{range .Names}}{{$x := .}}{{$x}}{{end}}", &c),
        "webfrontend"
    );
    // Assignment inside a range body updates the outer variable.
    assert_eq!(
        render("{{$n := 0}}{{range .Names}}{{$n = .}}{{end}}{{$n}}", &c),
        "frontend"
    );
}

#[test]
fn range_errors() {
    let c = container();
    assert_eq!(
        render_err("{{range .Name}}x{{end}}", &c),
        "template: 1:9: executing at <.Name>: range can't iterate over web"
    );
    assert_eq!(
        render_err("{{range $i, $e := 3}}x{{end}}", &c),
        "template: 1:9: executing at <$i, $e := 3>: can't use 3 to iterate over more than one variable"
    );
}

#[test]
fn conditionals() {
    let c = container();
    assert_eq!(
        render("{{if eq .State \"running\"}}up{{else}}down{{end}}", &c),
        "up"
    );
    let stopped = json!({"State": "exited"});
    assert_eq!(
        render(
            "{{if eq .State \"running\"}}up{{else}}down{{end}}",
            &stopped
        ),
        "down"
    );
    let chain = "{{if eq .N 1}}one{{else if eq .N 2}}two{{else}}many{{end}}";
    assert_eq!(render(chain, &json!({"N": 1})), "one");
    assert_eq!(render(chain, &json!({"N": 2})), "two");
    assert_eq!(render(chain, &json!({"N": 3})), "many");
    assert_eq!(
        render("{{with .Name}}<{{.}}>{{else}}anon{{end}}", &c),
        "<web>"
    );
    assert_eq!(
        render("{{with .Nope}}<{{.}}>{{else}}anon{{end}}", &c),
        "anon"
    );
    assert_eq!(
        render("{{with .Nope}}a{{else with .Name}}b{{.}}{{end}}", &c),
        "bweb"
    );
    assert_eq!(render("{{with $x := .A.B}}{{$x.C}}{{end}}", &c), "deep");
    assert_eq!(render("{{if and .Name .Size}}both{{end}}", &c), "both");
    assert_eq!(
        render("{{if or .Empty .Nope}}any{{else}}none{{end}}", &c),
        "none"
    );
    assert_eq!(render("{{if not .Empty}}empty{{end}}", &c), "empty");
    assert_eq!(render("{{if lt .Size 2000}}small{{end}}", &c), "small");
    assert_eq!(render("{{if ge .Ratio 1.5}}big{{end}}", &c), "big");
}

#[test]
fn and_or_short_circuit() {
    let c = container();
    // `index .Nope 1` would fail; `and` stops before evaluating it.
    assert_eq!(render("{{and .Nope (index .Nope 1)}}", &c), "<no value>");
    assert_eq!(render("{{or .Name (index .Nope 1)}}", &c), "web");
    assert_eq!(render("{{or .Empty \"default\"}}", &c), "default");
    assert_eq!(render("{{and 1 2 3}}", &c), "3");
    assert_eq!(render("{{.Nope | or \"piped\"}}", &c), "piped");
}

#[test]
fn docker_functions() {
    let c = container();
    assert_eq!(render("{{join .Names \", \"}}", &c), "web, frontend");
    assert_eq!(render("{{upper .Name}}", &c), "WEB");
    assert_eq!(render("{{lower \"ABC\"}}", &c), "abc");
    assert_eq!(render("{{title \"hello world\"}}", &c), "Hello World");
    assert_eq!(render("{{split .Image \":\"}}", &c), "[nginx 1.27]");
    assert_eq!(render("{{index (split .Image \":\") 1}}", &c), "1.27");
    assert_eq!(render("[{{pad .Name 2 1}}]", &c), "[  web ]");
    assert_eq!(render("{{truncate .ID 4}}", &c), "4f66");
    assert_eq!(render("{{.Name | upper}}", &c), "WEB");
}

#[test]
fn go_builtins() {
    let c = container();
    assert_eq!(render("{{printf \"%s:%d\" .Name .Size}}", &c), "web:1024");
    assert_eq!(
        render("{{printf \"%-6s|%5.1f\" .Name .Ratio}}", &c),
        "web   |  1.5"
    );
    assert_eq!(render("{{.Name | printf \"%q\"}}", &c), "\"web\"");
    assert_eq!(render("{{printf `%s-%s` .Name .State}}", &c), "web-running");
    assert_eq!(render("{{printf \"%c\" 'x'}}", &c), "x");
    assert_eq!(render("{{print \"a\" 1 2 \"b\"}}", &c), "a1 2b");
    assert_eq!(render("{{println .Name .Size}}", &c), "web 1024\n");
    assert_eq!(
        render("{{len .Names}} {{len .Labels}} {{len .Name}}", &c),
        "2 2 3"
    );
    assert_eq!(
        render("{{index .Names 1}} {{index .Labels \"app\"}}", &c),
        "frontend shop"
    );
    assert_eq!(render("{{index .Labels \"nope\"}}", &c), "<no value>");
    assert_eq!(
        render("{{slice .Names 1}} {{slice .Name 0 2}}", &c),
        "[frontend] we"
    );
    assert_eq!(
        render(
            "{{eq .Size 1024}} {{ne .Name \"web\"}} {{eq .State \"a\" \"running\"}}",
            &c
        ),
        "true false true"
    );
    assert_eq!(
        render("{{urlquery \"a b\"}} {{html \"<b>\"}} {{js \"'\"}}", &c),
        "a+b &lt;b&gt; \\'"
    );
    assert_eq!(render("{{(index .Items 1).Name}}", &c), "b");
    assert_eq!(render("{{(index .Names 0)}}", &c), "web");
}

#[test]
fn variables() {
    let c = container();
    assert_eq!(render("{{$x := .Name}}{{$x}}-{{$x}}", &c), "web-web");
    assert_eq!(render("{{$x := 1}}{{$x = \"two\"}}{{$x}}", &c), "two");
    assert_eq!(render("{{$r := .RootFS}}{{$r.Type}}", &c), "layers");
    assert_eq!(
        render(
            "{{$x := .Name}}{{if true}}{{$x := \"inner\"}}{{$x}}{{end}}{{$x}}",
            &c
        ),
        "innerweb"
    );
}

#[test]
fn trim_markers_and_comments() {
    let c = container();
    assert_eq!(render("a   {{- .Name -}}   b", &c), "awebb");
    assert_eq!(render("a {{- /* gone */ -}} b", &c), "ab");
    assert_eq!(render("{{/* gone */}}x", &c), "x");
    assert_eq!(
        render("{{range .Names -}}\n  {{.}}\n{{- end}}", &c),
        "webfrontend"
    );
}

#[test]
fn backslash_sequences_become_tabs_and_newlines() {
    let c = container();
    assert_eq!(render(r"{{.Name}}\t{{.State}}\n", &c), "web\trunning\n");
    // Docker expands `\n` inside quoted strings too; that must still parse.
    assert_eq!(render(r#"{{join .Names "\n"}}"#, &c), "web\nfrontend");
    assert_eq!(render(r"a\\b", &c), "a\\\\b");
    assert_eq!(expand_escapes(r"\\t"), "\\\t");
    assert_eq!(expand_escapes(r"x\ty\nz\q"), "x\ty\nz\\q");
}

#[test]
fn parse_errors() {
    assert_eq!(
        render_err("{{.ID}} {{foo .ID}}", &json!({})),
        "template: 1:11: function \"foo\" not defined"
    );
    assert_eq!(
        render_err("{{.ID", &json!({})),
        "template: 1:6: unclosed action"
    );
    assert_eq!(
        render_err("{{.ID }", &json!({})),
        "template: 1:7: unexpected \"}\" in operand"
    );
    assert_eq!(
        render_err("{{if .A}}", &json!({})),
        "template: 1:10: unexpected EOF"
    );
}

#[test]
fn exec_errors_name_the_action() {
    let c = container();
    assert_eq!(
        render_err("{{.Name.First}}", &c),
        "template: 1:3: executing at <.Name.First>: can't evaluate field First in type string"
    );
    assert_eq!(
        render_err("ab{{.Health.Status}}", &c),
        "template: 1:5: executing at <.Health.Status>: nil pointer evaluating <nil>.Status"
    );
    assert_eq!(
        render_err("{{.Size.X}}", &c),
        "template: 1:3: executing at <.Size.X>: can't evaluate field X in type int"
    );
    assert_eq!(
        render_err("{{index .Names 5}}", &c),
        "template: 1:3: executing at <index .Names 5>: error calling index: index out of range: 5"
    );
    assert_eq!(
        render_err("{{upper}}", &c),
        "template: 1:3: executing at <upper>: wrong number of args for upper: want 1 got 0"
    );
    assert_eq!(
        render_err("{{upper .Size}}", &c),
        "template: 1:3: executing at <upper .Size>: wrong type for value; expected string; got int"
    );
    assert_eq!(
        render_err("{{.Name 1}}", &c),
        "template: 1:3: executing at <.Name>: Name is not a method but has arguments"
    );
    assert_eq!(
        render_err("{{\"x\" 1}}", &c),
        "template: 1:3: executing at <\"x\">: can't give argument to non-function \"x\""
    );
    assert_eq!(
        render_err("{{nil}}", &c),
        "template: 1:3: executing at <nil>: nil is not a command"
    );
    assert_eq!(
        render_err("{{$x = 1}}", &c),
        "template: 1:3: executing at <$x = 1>: undefined variable: $x"
    );
    assert_eq!(
        render_err("{{if eq .Name 1}}{{end}}", &c),
        "template: 1:6: executing at <eq .Name 1>: error calling eq: incompatible types for comparison"
    );
    assert_eq!(
        render_err("line1\n  {{len .Size}}", &c),
        "template: 2:5: executing at <len .Size>: error calling len: len of type int"
    );
}

#[test]
fn deep_but_allowed_nesting_renders() {
    let depth = 95;
    let src = format!("{}x{}", "{{if .}}".repeat(depth), "{{end}}".repeat(depth));
    assert_eq!(render(&src, &json!(true)), "x");
    let src = format!("{{{{{}.{}}}}}", "(".repeat(depth), ")".repeat(depth));
    assert_eq!(render(&src, &json!("v")), "v");
}

#[test]
fn header_rendering() {
    let t = match Template::parse(
        r"{{.ID}}\t{{upper .Name}}\t{{.Other}}\t{{json .Labels}}\t{{.A.B}}",
    ) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let headers = [
        ("ID", "CONTAINER ID"),
        ("Name", "NAME"),
        ("Labels", "LABELS"),
    ];
    assert_eq!(
        t.render_header(&headers),
        "CONTAINER ID\tNAME\tOTHER\tLABELS\tA"
    );
    let padded =
        match Template::parse("{{pad .Name 1 1}}|{{truncate .Name 2}}|{{join .Names \",\"}}") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
    assert_eq!(
        padded.render_header(&[("Name", "NAME")]),
        " NAME |NAME|NAMES"
    );
    // Docker ignores errors in the header and keeps what was written.
    let broken = match Template::parse("{{.ID}} {{range .Names}}x{{end}}") {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        broken.render_header(&[("ID", "CONTAINER ID")]),
        "CONTAINER ID "
    );
}

#[test]
fn template_is_reusable_and_displayable() {
    let t = match "{{.N}}".parse::<Template>() {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(t.render(&json!({"N": 1})).ok().as_deref(), Some("1"));
    assert_eq!(t.render(&json!({"N": 2})).ok().as_deref(), Some("2"));
    assert_eq!(t.to_string(), "{{.N}}");
    assert_eq!(t.source(), "{{.N}}");
}

/// A tiny deterministic generator for the robustness tests.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn random_templates_never_panic() {
    const TOKENS: &[&str] = &[
        "{{",
        "}}",
        "{{- ",
        " -}}",
        ".A",
        ".B",
        ".Names",
        "$x",
        "$",
        ":=",
        "=",
        "|",
        "(",
        ")",
        "\"s\"",
        "`r`",
        "'c'",
        "1",
        "1.5",
        "-2",
        "0x1F",
        "if",
        "else",
        "end",
        "range",
        "with",
        "break",
        "continue",
        "nil",
        "true",
        "printf",
        "len",
        "index",
        "slice",
        "json",
        "join",
        "upper",
        "eq",
        "and",
        " ",
        "/*",
        "*/",
        ",",
        "\\t",
        "\\n",
        "é",
        "\n",
        ".",
        "}",
        "{",
        "\"%d %s\"",
        "-",
    ];
    let data = json!({"A": {"B": [1, "x", null]}, "B": "b", "Names": ["n1", "n2"], "N": 3});
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    for _ in 0..20_000 {
        let n = 1 + rng.below(14);
        let src: String = (0..n).map(|_| TOKENS[rng.below(TOKENS.len())]).collect();
        if let Ok(t) = Template::parse(&src) {
            parsed += 1;
            let _ = t.render(&data);
            let _ = t.render(&json!(null));
            let _ = t.render_header(&[("A", "AH")]);
        }
    }
    // The generator must exercise the executor, not only the parser.
    assert!(parsed > 500, "only {parsed} random templates parsed");
}
