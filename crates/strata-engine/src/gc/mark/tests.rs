#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;

use super::tricolor;

/// An in-memory graph: node → the nodes it references.
fn graph(edges: &[(&'static str, &[&'static str])]) -> HashMap<&'static str, Vec<&'static str>> {
    edges.iter().map(|(n, r)| (*n, r.to_vec())).collect()
}

fn mark(
    g: &HashMap<&'static str, Vec<&'static str>>,
    roots: &[&'static str],
) -> HashSet<&'static str> {
    tricolor(roots.iter().copied(), |n| {
        Ok::<_, Infallible>(g.get(n).cloned().unwrap_or_default())
    })
    .unwrap()
}

fn set(nodes: &[&'static str]) -> HashSet<&'static str> {
    nodes.iter().copied().collect()
}

#[test]
fn marks_what_the_roots_reach_and_nothing_else() {
    let g = graph(&[
        ("image", &["index"]),
        ("index", &["manifest-a", "manifest-b"]),
        ("manifest-a", &["config", "layer-1", "layer-2"]),
        ("manifest-b", &["config", "layer-2"]),
        ("config", &["snap-2"]),
        ("snap-2", &["snap-1"]),
        ("stray-manifest", &["stray-layer", "layer-1"]),
    ]);
    assert_eq!(
        mark(&g, &["image"]),
        set(&[
            "image",
            "index",
            "manifest-a",
            "manifest-b",
            "config",
            "layer-1",
            "layer-2",
            "snap-2",
            "snap-1"
        ])
    );
    // A node referenced only by something unreachable stays white.
    assert!(!mark(&g, &["image"]).contains("stray-layer"));
    assert_eq!(mark(&g, &[]), set(&[]));
    // A root with no references (and none known) is marked alone.
    assert_eq!(mark(&g, &["lonely"]), set(&["lonely"]));
}

#[test]
fn cycles_and_shared_children_are_followed_once() {
    let g = graph(&[("a", &["b", "c"]), ("b", &["c", "a"]), ("c", &["a", "c"])]);
    let mut visits: HashMap<&str, usize> = HashMap::new();
    let marked = tricolor(["a", "a", "b"], |n| {
        *visits.entry(*n).or_default() += 1;
        Ok::<_, Infallible>(g[n].clone())
    })
    .unwrap();
    assert_eq!(marked, set(&["a", "b", "c"]));
    assert!(visits.values().all(|v| *v == 1), "{visits:?}");
}

#[test]
fn an_error_in_refs_ends_the_mark() {
    let g = graph(&[("a", &["b"]), ("b", &["c"])]);
    let result = tricolor(["a"], |n| {
        if *n == "b" {
            Err("cannot read b")
        } else {
            Ok(g.get(n).cloned().unwrap_or_default())
        }
    });
    assert_eq!(result, Err("cannot read b"));
}
