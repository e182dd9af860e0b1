//! The hostile-layer suite (strata-archive's HOSTILE.md) through each snapshotter's real
//! unpack path: for every layer of a case, `prepare(key, parent)` → `apply_target(key)` →
//! `apply_layer` into `target.dir` (whiteout mode and lowers from the target) → `commit`.
//! An expected error must name the layer and the entry; before and after every layer,
//! nothing outside the store changes and nothing in the store outside the snapshot being
//! written does (parents included). The case's check then looks at the top snapshot's full
//! tree: a read-only view mounted for overlayfs, the snapshot's own directory otherwise.
//!
//! The case table is strata-archive's `tests/common` (with its outside-the-root snapshot),
//! included by path rather than moved into strata-testutil: it is test code of the applier,
//! next to the plain-directory runner and HOSTILE.md it documents, and strata-archive
//! cannot dev-depend on strata-snapshot (nor would a `pub` module belong in its API).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../strata-archive/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::cases::{Case, Expect, cases, check_names};
use common::{Env, apply_contained_in, opts};
use strata_archive::WhiteoutMode;
use strata_snapshot::{Labels, Snapshotter};

fn run(name: &str, store: &Path, case: &Case) -> Result<(), String> {
    let env = Env::new().map_err(|e| e.to_string())?;
    // Rebuild the case for this env (absolute paths differ per env).
    let c = cases(&env)
        .into_iter()
        .find(|x| x.name == case.name)
        .ok_or("case vanished")?;
    std::fs::create_dir_all(store).map_err(|e| e.to_string())?;
    let db = strata_metadata::Db::open(&store.join("metadata.db")).map_err(|e| e.to_string())?;
    let sn = strata_snapshot::open(name, store, Arc::new(db)).map_err(|e| e.to_string())?;
    let none = Labels::new();
    let mut parent: Option<String> = None;
    let mut mode = WhiteoutMode::Delete;
    for (i, tar) in c.layers.iter().enumerate() {
        let key = format!("active-{i}");
        sn.prepare(&key, parent.as_deref(), &none)
            .map_err(|e| e.to_string())?;
        let target = sn.apply_target(&key).map_err(|e| e.to_string())?;
        mode = if target.overlay_whiteouts {
            WhiteoutMode::Overlay
        } else {
            WhiteoutMode::Delete
        };
        if !c.modes.contains(&mode) {
            return Ok(());
        }
        let layer = format!("layer-{i}");
        let mut o = opts(&layer, mode);
        o.limits = c.limits;
        o.lowers = target.lowers.clone();
        let db_files = ["metadata.db", "metadata.db-wal", "metadata.db-shm"];
        let mut in_store = vec![target.dir.clone()];
        in_store.extend(db_files.iter().map(|f| store.join(f)));
        let watched = [(env.path(), vec![store.to_owned()]), (store, in_store)];
        let r = apply_contained_in(&watched, tar, &target.dir, &o);
        match (c.expect(mode), r) {
            (Expect::Error { layer: l, entry }, Err(e)) if *l == i => {
                let msg = e.to_string();
                check_names(&e, &layer, entry).map_err(|m| format!("{m}: {msg}"))?;
                // As unpack does: the partial snapshot is thrown away.
                return sn.remove(&key).map_err(|e| e.to_string());
            }
            (_, Err(e)) => return Err(format!("layer {i} failed unexpectedly: {e} ({e:?})")),
            (Expect::Error { layer: l, .. }, Ok(_)) if *l == i => {
                return Err(format!("layer {i} applied, expected an error"));
            }
            (_, Ok(_)) => {}
        }
        let committed = format!("chain-{i}");
        sn.commit(&committed, &key, &none)
            .map_err(|e| e.to_string())?;
        parent = Some(committed);
    }
    let Expect::Contained(check) = c.expect(mode) else {
        return Err("no error".into());
    };
    let top = parent.ok_or("no layers")?;
    check_top(&*sn, store, &top, &env, *check)
}

/// Runs `check` on the full tree of committed snapshot `top`.
fn check_top(
    sn: &dyn Snapshotter,
    store: &Path,
    top: &str,
    env: &Env,
    check: common::cases::Check,
) -> Result<(), String> {
    let none = Labels::new();
    if sn.name() == "overlayfs" {
        // Each layer is its own directory: check the merged view, mounted read-only.
        let mounts = sn
            .view("check", Some(top), &none)
            .map_err(|e| e.to_string())?;
        let work = store.join("mnt");
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        strata_mount::with_temp_mount_in(&work, &mounts, |d| check(d, env))
            .map_err(|e| e.to_string())?
    } else {
        // native and btrfs: a child starts as a full copy of `top`, no mount needed.
        sn.prepare("check", Some(top), &none)
            .map_err(|e| e.to_string())?;
        let dir = sn.apply_target("check").map_err(|e| e.to_string())?.dir;
        check(&dir, env)
    }
}

fn suite(name: &str, stores: &Path) {
    let env = Env::new().unwrap();
    let all = cases(&env);
    assert!(all.len() >= 30, "only {} cases", all.len());
    let start = std::time::Instant::now();
    let mut failures = Vec::new();
    for (n, c) in all.iter().enumerate() {
        let store: PathBuf = stores.join(format!("case-{n}"));
        if let Err(e) = run(name, &store, c) {
            failures.push(format!("{} ({name}): {e}", c.name));
        }
    }
    eprintln!(
        "{} hostile cases on {name} in {:.1?}",
        all.len(),
        start.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn hostile_layers_on_overlayfs() {
    if !strata_testutil::require_root("overlay whiteouts, trusted xattrs and mounts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    suite("overlayfs", t.path());
}

#[test]
fn hostile_layers_on_native() {
    let t = tempfile::tempdir().unwrap();
    suite("native", t.path());
}

#[test]
fn hostile_layers_on_btrfs() {
    if !strata_testutil::require_root("mounts a loopback btrfs")
        || !strata_testutil::require_tool("mkfs.btrfs")
    {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let fs = strata_testutil::LoopBtrfs::create(t.path(), 1 << 30).unwrap();
    suite("btrfs", fs.path());
}
