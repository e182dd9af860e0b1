//! Hostile layers: every case is applied into `dest` inside a temp dir that also holds
//! `dest-evil/` (a sibling sharing dest's prefix), `victim`, `victimdir/` and, in overlay mode,
//! the lower layer directories; a snapshot of everything outside the directory being written
//! (paths, types, modes, owners, sizes, content hashes, symlink targets, xattrs) must be the
//! same before and after every layer. Each case then either fails with an error naming the
//! layer and the entry, or is contained, as the table in HOSTILE.md says.
//!
//! Multi-layer cases apply their layers in sequence onto the same directory in delete mode,
//! and each into its own directory with the previous ones as `lowers` in overlay mode.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use common::cases::{Expect, cases, check_names, file, layer, symlink};
use common::{Env, apply_contained, opts, root_part};
use strata_archive::WhiteoutMode;

fn run(c: &common::cases::Case, mode: WhiteoutMode) -> Result<(), String> {
    let env = Env::new().map_err(|e| e.to_string())?;
    // Rebuild the case for this env (absolute paths differ per env).
    let cs = cases(&env);
    let c = cs
        .into_iter()
        .find(|x| x.name == c.name)
        .ok_or("case vanished")?;
    let mut lowers: Vec<PathBuf> = Vec::new();
    let mut last_dir = env.dest();
    for (i, tar) in c.layers.iter().enumerate() {
        let top = i + 1 == c.layers.len();
        let target = match mode {
            WhiteoutMode::Delete => env.dest(),
            WhiteoutMode::Overlay if top => env.dest(),
            WhiteoutMode::Overlay => {
                let d = env.path().join(format!("lower{i}"));
                fs::create_dir(&d).map_err(|e| e.to_string())?;
                d
            }
        };
        let layer = format!("layer-{i}");
        let mut o = opts(&layer, mode);
        o.limits = c.limits;
        o.lowers = lowers.iter().rev().cloned().collect();
        let r = apply_contained(&env, tar, &target, &o);
        match (c.expect(mode), r) {
            (Expect::Error { layer: l, entry }, Err(e)) if *l == i => {
                let msg = e.to_string();
                check_names(&e, &layer, entry).map_err(|m| format!("{m}: {msg}"))?;
                return Ok(());
            }
            (_, Err(e)) => return Err(format!("layer {i} failed unexpectedly: {e} ({e:?})")),
            (Expect::Error { layer: l, .. }, Ok(_)) if *l == i => {
                return Err(format!("layer {i} applied, expected an error"));
            }
            (_, Ok(_)) => {}
        }
        lowers.push(target.clone());
        last_dir = target;
    }
    match c.expect(mode) {
        Expect::Contained(check) => check(&last_dir, &env),
        Expect::Error { .. } => Err("no error".into()),
    }
}

#[test]
fn hostile_layers_are_refused_or_contained() {
    let env = match Env::new() {
        Ok(e) => e,
        Err(e) => panic!("temp dir: {e}"),
    };
    let all = cases(&env);
    assert!(all.len() >= 30, "only {} cases", all.len());
    let mut failures = Vec::new();
    let mut ran = 0;
    let overlay = root_part("overlay whiteouts are device nodes and trusted xattrs");
    for c in &all {
        for &mode in c.modes {
            if mode == WhiteoutMode::Overlay && !overlay {
                continue;
            }
            ran += 1;
            if let Err(e) = run(c, mode) {
                failures.push(format!("{} ({mode:?}): {e}", c.name));
            }
        }
    }
    eprintln!("{ran} hostile applies, {} cases", all.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn whiteouts_through_symlinks_act_inside_the_root() -> common::TestResult {
    // Delete mode: `up -> ../..` resolves to the root, so `up/.wh.victim` removes the root's
    // own victim and nothing else.
    let env = Env::new()?;
    let dest = env.dest();
    let o = opts("l", WhiteoutMode::Delete);
    apply_contained(&env, &layer(vec![file(b"victim", b"inner")]), &dest, &o)?;
    apply_contained(
        &env,
        &layer(vec![symlink(b"up", b"../.."), file(b"up/.wh.victim", b"")]),
        &dest,
        &o,
    )?;
    assert!(!dest.join("victim").exists());
    assert_eq!(fs::read(env.path().join("victim"))?, b"victim");
    if root_part("overlay whiteouts are device nodes") {
        // Overlay mode: the whiteout device lands inside the layer directory.
        let env = Env::new()?;
        let dest = env.dest();
        apply_contained(
            &env,
            &layer(vec![symlink(b"up", b"../.."), file(b"up/.wh.victim", b"")]),
            &dest,
            &opts("l", WhiteoutMode::Overlay),
        )?;
        let md = fs::symlink_metadata(dest.join("victim"))?;
        assert!(md.file_type().is_char_device() && md.rdev() == 0);
    }
    Ok(())
}
