//! The conformance suite every snapshotter runs: containerd's `core/snapshots/testsuite`
//! behaviours, plus strata's own (usage, apply targets, cleanup and crash leftovers).
//!
//! A test file supplies a factory and expands [`suite!`]:
//!
//! ```ignore
//! mod conformance;
//! fn env(needs_root: bool) -> Option<conformance::Env> { ... }
//! conformance::suite!(env);
//! ```
//!
//! The factory returns `None` to skip (a gate said no); it gets `needs_root = true` for the
//! cases that mount. Every case gets a fresh store.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use strata_mount::{Mount, UnmountFlags};
use strata_snapshot::{Filter, Info, Labels, SnapshotKind, Snapshotter, Usage};
use strata_types::ErrorKind;

/// A store for one case: the snapshotter, a scratch directory, and whatever must outlive it.
pub struct Env {
    pub sn: Box<dyn Snapshotter>,
    /// The store root (`<root>/snapshots/<name>/...`).
    pub root: PathBuf,
    /// Scratch space: mount points, flat trees.
    pub work: PathBuf,
    /// Dropped after `sn` (fields drop in order): temp dirs, loop filesystems.
    _keep: Vec<Box<dyn std::any::Any>>,
}

impl Env {
    /// A store for snapshotter `name` in `dir`, keeping `keep` alive as long as the `Env`.
    pub fn new(name: &str, dir: &Path, keep: Vec<Box<dyn std::any::Any>>) -> Env {
        let root = dir.join("store");
        let work = dir.join("work");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&work).unwrap();
        let db = strata_metadata::Db::open(&root.join("metadata.db")).unwrap();
        let sn = strata_snapshot::open(name, &root, Arc::new(db)).unwrap();
        Env {
            sn,
            root,
            work,
            _keep: keep,
        }
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots").join(self.sn.name())
    }

    /// Mounts `mounts` on `work/<name>` until the guard drops.
    pub fn mount(&self, mounts: &[Mount], name: &str) -> Mounted {
        let target = self.work.join(name);
        fs::create_dir_all(&target).unwrap();
        strata_mount::mount_all(mounts, &target).unwrap();
        Mounted(target)
    }

    /// Mounts, runs `f` on the mount point, unmounts.
    pub fn with_mount<T>(&self, mounts: &[Mount], f: impl FnOnce(&Path) -> T) -> T {
        strata_mount::with_temp_mount_in(&self.work, mounts, f).unwrap()
    }

    /// Prepares a snapshot on `parent`, applies `a` through its mounts, commits it under a
    /// fresh name, and returns the name.
    pub fn create(&self, parent: Option<&str>, a: &dyn Fn(&Path)) -> String {
        let name = unique("layer");
        let key = format!("{name}-prepare");
        let mounts = self.sn.prepare(&key, parent, &gc()).unwrap();
        self.with_mount(&mounts, a);
        self.sn.commit(&name, &key, &gc()).unwrap();
        name
    }

    /// Checks through a view that the committed snapshot `name` equals the tree `expected`.
    pub fn check(&self, name: &str, expected: &Path) {
        let view = format!("{name}-view");
        let mounts = self.sn.view(&view, Some(name), &gc()).unwrap();
        self.with_mount(&mounts, |dir| assert_same_tree(expected, dir));
        self.sn.remove(&view).unwrap();
    }

    /// Builds a chain of snapshots from `appliers`, checking each against the same changes
    /// applied to one flat directory.
    pub fn check_snapshots(&self, appliers: &[&dyn Fn(&Path)]) {
        let flat = self.work.join(unique("flat"));
        fs::create_dir_all(&flat).unwrap();
        fs::set_permissions(&flat, fs::Permissions::from_mode(0o755)).unwrap();
        let mut parent: Option<String> = None;
        for a in appliers {
            let name = self.create(parent.as_deref(), a);
            a(&flat);
            self.check(&name, &flat);
            parent = Some(name);
        }
    }

    /// Prepares `key` on `parent` and mounts it at `work/<key>`.
    pub fn prepare_mounted(&self, key: &str, parent: Option<&str>) -> Mounted {
        let mounts = self.sn.prepare(key, parent, &gc()).unwrap();
        assert!(!mounts.is_empty(), "expected mounts");
        self.mount(&mounts, key)
    }
}

/// A mount point, unmounted on drop.
pub struct Mounted(pub PathBuf);

impl Mounted {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        strata_mount::unmount_all(&self.0, UnmountFlags::NONE)
            .or_else(|_| strata_mount::unmount_all(&self.0, UnmountFlags::DETACH))
            .unwrap();
    }
}

pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The label containerd's suite puts on everything.
pub fn gc() -> Labels {
    labels(&[("containerd.io/gc.root", "suite")])
}

// ---- tree helpers (continuity's fstest, in small) ----

pub fn create_file(root: &Path, rel: &str, content: &[u8], mode: u32) {
    let p = root.join(rel.trim_start_matches('/'));
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn create_dir(root: &Path, rel: &str, mode: u32) {
    let p = root.join(rel.trim_start_matches('/'));
    fs::create_dir(&p).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn remove_all(root: &Path, rel: &str) {
    let p = root.join(rel.trim_start_matches('/'));
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&p).unwrap(),
        Ok(_) => fs::remove_file(&p).unwrap(),
        Err(_) => {}
    }
}

pub fn link(root: &Path, old: &str, new: &str) {
    fs::hard_link(root.join(old), root.join(new)).unwrap();
}

pub fn set_owner(root: &Path, rel: &str, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(root.join(rel.trim_start_matches('/')), Some(uid), Some(gid))
        .unwrap();
}

#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        content: Vec<u8>,
    },
    Symlink {
        target: PathBuf,
        uid: u32,
        gid: u32,
    },
    Other {
        mode: u32,
        rdev: u64,
    },
}

fn tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            let (mode, uid, gid) = (m.mode() & 0o7777, m.uid(), m.gid());
            let entry = if m.is_dir() {
                stack.push(path.clone());
                Entry::Dir { mode, uid, gid }
            } else if m.is_file() {
                Entry::File {
                    mode,
                    uid,
                    gid,
                    content: fs::read(&path).unwrap(),
                }
            } else if m.file_type().is_symlink() {
                Entry::Symlink {
                    target: fs::read_link(&path).unwrap(),
                    uid,
                    gid,
                }
            } else {
                Entry::Other {
                    mode: m.mode(),
                    rdev: m.rdev(),
                }
            };
            out.insert(path.strip_prefix(root).unwrap().to_owned(), entry);
        }
    }
    out
}

/// Same names, kinds, modes, owners, contents and link targets (not times).
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let (e, a) = (tree(expected), tree(actual));
    if e != a {
        let only_e: Vec<_> = e.keys().filter(|k| !a.contains_key(*k)).collect();
        let only_a: Vec<_> = a.keys().filter(|k| !e.contains_key(*k)).collect();
        let differ: Vec<_> = e
            .iter()
            .filter(|(k, v)| a.get(*k).is_some_and(|av| av != *v))
            .map(|(k, v)| (k, v, &a[k]))
            .collect();
        panic!(
            "trees differ:\n missing: {only_e:?}\n unexpected: {only_a:?}\n different: {differ:#?}"
        );
    }
}

fn walk_names(sn: &dyn Snapshotter, filter: &Filter) -> Vec<String> {
    let mut names = Vec::new();
    sn.walk(filter, &mut |i| {
        names.push(i.name.clone());
        Ok(())
    })
    .unwrap();
    names.sort();
    names
}

/// The error and its sources, `: `-separated, as a CLI prints them.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

fn kind_of<T: std::fmt::Debug>(r: Result<T, strata_snapshot::SnapshotError>) -> ErrorKind {
    r.expect_err("expected an error").kind()
}

// ---- the cases ----

/// prepare → write → commit → stat → child → check → change → commit → walk → view → remove.
pub fn basic(env: &Env) {
    let sn = &*env.sn;
    let initial = |d: &Path| {
        create_file(d, "foo", b"foo\n", 0o777);
        create_dir(d, "a", 0o755);
        create_dir(d, "a/b", 0o755);
        create_dir(d, "a/b/c", 0o755);
    };
    let diff = |d: &Path| {
        create_file(d, "bar", b"bar\n", 0o777);
        create_file(d, "foo", b"bar\n", 0o777);
        remove_all(d, "a/b");
    };

    let m = env.prepare_mounted("preparing", None);
    initial(m.path());
    drop(m);
    sn.commit("committed", "preparing", &gc()).unwrap();
    let si = sn.stat("committed").unwrap();
    assert_eq!(
        (si.kind, si.parent.as_deref()),
        (SnapshotKind::Committed, None)
    );
    assert_eq!(kind_of(sn.stat("preparing")), ErrorKind::NotFound);

    let m = env.prepare_mounted("nextlayer", Some("committed"));
    let flat = env.work.join("flat");
    fs::create_dir(&flat).unwrap();
    fs::set_permissions(&flat, fs::Permissions::from_mode(0o755)).unwrap();
    initial(&flat);
    assert_same_tree(&flat, m.path());
    diff(m.path());
    drop(m);
    let ni = sn.stat("nextlayer").unwrap();
    assert_eq!(
        (ni.kind, ni.parent.as_deref()),
        (SnapshotKind::Active, Some("committed"))
    );
    sn.commit("committed-next", "nextlayer", &gc()).unwrap();
    let si2 = sn.stat("committed-next").unwrap();
    assert_eq!(
        (si2.kind, si2.parent.as_deref()),
        (SnapshotKind::Committed, Some("committed"))
    );
    assert_eq!(kind_of(sn.stat("nextlayer")), ErrorKind::NotFound);

    let mut walked: BTreeMap<String, Info> = BTreeMap::new();
    sn.walk(&Filter::all(), &mut |i| {
        walked.insert(i.name.clone(), i.clone());
        Ok(())
    })
    .unwrap();
    assert_eq!(walked.get("committed"), Some(&si));
    assert_eq!(walked.get("committed-next"), Some(&si2));

    let mounts = sn.view("nextnext", Some("committed-next"), &gc()).unwrap();
    diff(&flat);
    env.with_mount(&mounts, |d| assert_same_tree(&flat, d));
    sn.remove("nextnext").unwrap();

    let err = sn.remove("committed").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(err.to_string().contains("remove"), "{err}");
    let chain = error_chain(&err);
    assert!(
        chain.contains("child snapshot(s): committed-next"),
        "{chain}"
    );
    sn.remove("committed-next").unwrap();
    sn.remove("committed").unwrap();
}

pub fn stat_active(env: &Env) {
    let m = env.prepare_mounted("preparing", None);
    create_file(m.path(), "foo", b"foo\n", 0o777);
    drop(m);
    let si = env.sn.stat("preparing").unwrap();
    assert_eq!(si.name, "preparing");
    assert_eq!(si.kind, SnapshotKind::Active);
    assert_eq!(si.parent, None);
    assert_eq!(si.labels, gc());
}

pub fn stat_committed(env: &Env) {
    let m = env.prepare_mounted("preparing", None);
    create_file(m.path(), "foo", b"foo\n", 0o777);
    drop(m);
    env.sn
        .commit("committed", "preparing", &labels(&[("c", "1")]))
        .unwrap();
    let si = env.sn.stat("committed").unwrap();
    assert_eq!(si.name, "committed");
    assert_eq!(si.kind, SnapshotKind::Committed);
    assert_eq!(si.parent, None);
    assert_eq!(
        si.labels,
        labels(&[("c", "1")]),
        "commit labels replace, not inherit"
    );
}

/// A <- B: B's parent is A, A has none; the chain resolves through stat.
pub fn transitivity(env: &Env) {
    let sn = &*env.sn;
    let m = env.prepare_mounted("preparing", None);
    create_file(m.path(), "foo", b"foo\n", 0o777);
    drop(m);
    sn.commit("snapA", "preparing", &gc()).unwrap();
    let m = env.prepare_mounted("next", Some("snapA"));
    create_file(m.path(), "foo", b"foo bar\n", 0o777);
    drop(m);
    sn.commit("snapB", "next", &gc()).unwrap();
    let a = sn.stat("snapA").unwrap();
    let b = sn.stat("snapB").unwrap();
    let parent_of_b = sn.stat(b.parent.as_deref().unwrap()).unwrap();
    assert_eq!(a.parent, None);
    assert_eq!(b.parent.as_deref(), Some("snapA"));
    assert_eq!(parent_of_b.parent, None);
}

/// A taken key fails for prepare and view alike; so does committing to a taken name.
pub fn key_reuse_fails(env: &Env) {
    let sn = &*env.sn;
    sn.prepare("preparing", None, &gc()).unwrap();
    sn.commit("snapA", "preparing", &gc()).unwrap();

    sn.prepare("newlayer", Some("snapA"), &gc()).unwrap();
    assert_eq!(
        kind_of(sn.view("newlayer", Some("snapA"), &gc())),
        ErrorKind::AlreadyExists
    );
    sn.prepare("prepLayer", Some("snapA"), &gc()).unwrap();
    assert_eq!(
        kind_of(sn.prepare("prepLayer", Some("snapA"), &gc())),
        ErrorKind::AlreadyExists
    );
    sn.view("viewLayer", Some("snapA"), &gc()).unwrap();
    assert_eq!(
        kind_of(sn.view("viewLayer", Some("snapA"), &gc())),
        ErrorKind::AlreadyExists
    );
    // A key may not be a committed name either.
    assert_eq!(
        kind_of(sn.prepare("snapA", None, &gc())),
        ErrorKind::AlreadyExists
    );
    // Commit to a taken name fails and leaves the active snapshot as it was.
    assert_eq!(
        kind_of(sn.commit("snapA", "newlayer", &gc())),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind_of(sn.commit("viewLayer", "newlayer", &gc())),
        ErrorKind::AlreadyExists
    );
    assert_eq!(sn.stat("newlayer").unwrap().kind, SnapshotKind::Active);
    // Missing or uncommitted parents.
    assert_eq!(
        kind_of(sn.prepare("x", Some("missing"), &gc())),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind_of(sn.prepare("x", Some("newlayer"), &gc())),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        kind_of(sn.prepare("", None, &gc())),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind_of(sn.commit("", "newlayer", &gc())),
        ErrorKind::InvalidArgument
    );
    // Nothing half-made was left behind by the failures.
    assert!(sn.cleanup().unwrap().is_empty());
}

/// c1 <- c2 <- a1; a2; v1 on c2; v2 on nothing.
fn base_snapshots(sn: &dyn Snapshotter) {
    sn.prepare("c1-a", None, &gc()).unwrap();
    sn.commit("c1", "c1-a", &gc()).unwrap();
    sn.prepare("c2-a", Some("c1"), &gc()).unwrap();
    sn.commit("c2", "c2-a", &gc()).unwrap();
    sn.prepare("a1", Some("c2"), &gc()).unwrap();
    sn.prepare("a2", None, &gc()).unwrap();
    sn.view("v1", Some("c2"), &gc()).unwrap();
    sn.view("v2", None, &gc()).unwrap();
}

pub fn update(env: &Env) {
    let sn = &*env.sn;
    let t1 = SystemTime::now();
    base_snapshots(sn);
    let t2 = SystemTime::now();
    for (name, kind, parent) in [
        ("c1", SnapshotKind::Committed, None),
        ("c2", SnapshotKind::Committed, Some("c1")),
        ("a1", SnapshotKind::Active, Some("c2")),
        ("a2", SnapshotKind::Active, None),
        ("v1", SnapshotKind::View, Some("c2")),
        ("v2", SnapshotKind::View, None),
    ] {
        let st = sn.stat(name).unwrap();
        assert!(
            st.created >= t1 && st.created <= t2,
            "{name}: created {:?}",
            st.created
        );
        assert_eq!(st.created, st.updated, "{name}");
        assert_eq!(
            (st.kind, st.parent.as_deref(), st.name.as_str()),
            (kind, parent, name)
        );

        let u1 = SystemTime::now();
        let st = sn
            .update(name, &labels(&[("l1", "v1"), ("l2", "v2"), ("l3", "v3")]))
            .unwrap();
        let u2 = SystemTime::now();
        assert!(st.updated >= u1 && st.updated <= u2, "{name}");
        assert!(st.created < st.updated, "{name}");
        assert_eq!(
            (st.kind, st.parent.as_deref(), st.name.as_str()),
            (kind, parent, name)
        );
        let mut want = gc();
        want.extend(labels(&[("l1", "v1"), ("l2", "v2"), ("l3", "v3")]));
        assert_eq!(st.labels, want, "{name}");

        // Set one, remove one (empty value), leave the rest.
        let st = sn
            .update(name, &labels(&[("l1", "updated"), ("l2", "")]))
            .unwrap();
        let mut want = gc();
        want.extend(labels(&[("l1", "updated"), ("l3", "v3")]));
        assert_eq!(st.labels, want, "{name}");
        assert_eq!(sn.stat(name).unwrap(), st);
    }
    assert_eq!(kind_of(sn.update("missing", &gc())), ErrorKind::NotFound);
}

/// Removing a snapshot frees its key for any kind of snapshot.
pub fn remove_then_reuse(env: &Env) {
    let sn = &*env.sn;
    sn.prepare("committed-a", None, &gc()).unwrap();
    sn.commit("committed-1", "committed-a", &gc()).unwrap();
    sn.prepare("reuse-1", Some("committed-1"), &gc()).unwrap();
    sn.remove("reuse-1").unwrap();
    sn.view("reuse-1", Some("committed-1"), &gc()).unwrap();
    sn.remove("reuse-1").unwrap();
    sn.prepare("reuse-1", None, &gc()).unwrap();
    sn.remove("committed-1").unwrap();
    sn.commit("committed-1", "reuse-1", &gc()).unwrap();
    assert_eq!(kind_of(sn.remove("missing")), ErrorKind::NotFound);
    assert!(
        sn.cleanup().unwrap().is_empty(),
        "remove deletes its files itself"
    );
}

pub fn walk(env: &Env) {
    let sn = &*env.sn;
    let root = labels(&[("containerd.io/gc.root", "check-walk")]);
    let with = |l: &str| {
        let mut x = root.clone();
        x.insert("l".into(), l.into());
        x
    };
    sn.prepare("a-np", None, &root).unwrap();
    sn.prepare("p-tmp", None, &root).unwrap();
    sn.commit("p", "p-tmp", &root).unwrap();
    sn.prepare("a", Some("p"), &root).unwrap();
    sn.view("v", Some("p"), &root).unwrap();
    sn.prepare("p-wl-tmp", None, &root).unwrap();
    sn.commit("p-wl", "p-wl-tmp", &with("1")).unwrap();
    sn.prepare("a-wl", Some("p-wl"), &with("2")).unwrap();
    sn.view("v-wl", Some("p-wl"), &with("3")).unwrap();
    sn.prepare("a-np-wl", None, &with("2")).unwrap();

    let gcw = || Filter::all().label_eq("containerd.io/gc.root", "check-walk");
    let cases: Vec<(Filter, &[&str])> = vec![
        (
            gcw(),
            &["a", "a-np", "a-np-wl", "a-wl", "p", "p-wl", "v", "v-wl"],
        ),
        (
            gcw().kind(SnapshotKind::Active),
            &["a", "a-np", "a-np-wl", "a-wl"],
        ),
        (gcw().kind(SnapshotKind::View), &["v", "v-wl"]),
        (gcw().kind(SnapshotKind::Committed), &["p", "p-wl"]),
        (Filter::all().name("p"), &["p"]),
        (Filter::all().name("a-wl").label("l"), &["a-wl"]),
        (Filter::all().parent(Some("p")), &["a", "v"]),
        (gcw().has_parent(), &["a", "a-wl", "v", "v-wl"]),
        (
            Filter::all().parent(None),
            &["a-np", "a-np-wl", "p", "p-wl"],
        ),
        (
            Filter::all().label("l"),
            &["a-np-wl", "a-wl", "p-wl", "v-wl"],
        ),
        (Filter::all().label_eq("l", "2"), &["a-np-wl", "a-wl"]),
        (Filter::all().name_prefix("a-np"), &["a-np", "a-np-wl"]),
        (Filter::all().name_prefix("zzz"), &[]),
    ];
    for (i, (filter, want)) in cases.iter().enumerate() {
        assert_eq!(walk_names(sn, filter), *want, "case {i}: {filter:?}");
    }
    // Parents come before their children, and an error from the callback stops the walk.
    let mut order = Vec::new();
    sn.walk(&Filter::all(), &mut |i| {
        order.push(i.name.clone());
        Ok(())
    })
    .unwrap();
    let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
    assert!(pos("p") < pos("a") && pos("p-wl") < pos("a-wl"));
    let mut seen = 0;
    let err = sn.walk(&Filter::all(), &mut |_| {
        seen += 1;
        Err(strata_snapshot::SnapshotError::UnknownSnapshotter {
            name: "stop".into(),
        })
    });
    assert!(err.is_err());
    assert_eq!(seen, 1);
}

pub fn layer_file_update(env: &Env) {
    env.check_snapshots(&[
        &|d| {
            create_file(d, "foo", b"foo\n", 0o777);
            create_dir(d, "a", 0o700);
            create_file(d, "a/x", b"x\n", 0o644);
        },
        &|d| create_file(d, "foo", b"bar\n", 0o777),
        &|d| create_file(d, "a/x", b"changed in layer 3, and longer\n", 0o600),
        &|d| create_file(d, "foo", b"", 0o700),
    ]);
}

pub fn remove_directory_in_lower_layer(env: &Env) {
    env.check_snapshots(&[
        &|d| {
            create_dir(d, "lib", 0o700);
            create_file(d, "lib/hidden", b"hidden\n", 0o644);
            create_dir(d, "lib/deeper", 0o755);
            create_file(d, "lib/deeper/more", b"more\n", 0o644);
        },
        &|d| remove_all(d, "lib"),
        // Recreated: must be empty (opaque), not show the lower content again.
        &|d| {
            create_dir(d, "lib", 0o755);
            create_file(d, "lib/new", b"new\n", 0o644);
        },
    ]);
}

pub fn chown(env: &Env) {
    env.check_snapshots(&[
        &|d| {
            create_dir(d, "opt", 0o755);
            create_dir(d, "opt/a", 0o755);
            create_dir(d, "opt/a/b", 0o755);
            create_file(d, "opt/a/b/file.txt", b"hello", 0o644);
        },
        &|d| {
            set_owner(d, "opt", 1, 1);
            set_owner(d, "opt/a", 1, 1);
            set_owner(d, "opt/a/b", 1, 1);
            set_owner(d, "opt/a/b/file.txt", 1, 1);
        },
        // A file under the chowned directories, untouched itself, keeps its owner.
        &|d| create_file(d, "opt/a/b/other", b"x", 0o600),
    ]);
}

pub fn directory_permission_on_commit(env: &Env) {
    env.check_snapshots(&[
        &|d| {
            create_dir(d, "dir1", 0o700);
            create_dir(d, "dir2", 0o700);
            create_dir(d, "dir3", 0o700);
            create_file(d, "dir3/file", b"hello", 0o644);
            set_owner(d, "dir1", 1, 1);
            set_owner(d, "dir2", 1, 1);
        },
        &|d| {
            create_dir(d, "dir2/sub", 0o700);
            create_file(d, "dir3/file", b"hi", 0o644);
            set_owner(d, "dir3", 1, 1);
        },
    ]);
}

/// base <- inter <- top: inter cannot be removed before top.
pub fn remove_intermediate_fails(env: &Env) {
    let sn = &*env.sn;
    sn.prepare("base", None, &gc()).unwrap();
    sn.commit("committed-base", "base", &gc()).unwrap();
    sn.prepare("intermediate", Some("committed-base"), &gc())
        .unwrap();
    sn.commit("committed-inter", "intermediate", &gc()).unwrap();
    sn.prepare("toplayer", Some("committed-inter"), &gc())
        .unwrap();
    let err = sn.remove("committed-inter").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    let chain = error_chain(&err);
    assert!(chain.contains("toplayer"), "names the child: {chain}");
    // The refused removal changed nothing: the stack still mounts.
    assert_eq!(sn.mounts("toplayer").unwrap().len(), 1);
    sn.remove("toplayer").unwrap();
    sn.remove("committed-inter").unwrap();
    sn.remove("committed-base").unwrap();
}

pub fn deleted_files_in_child(env: &Env) {
    env.check_snapshots(&[
        &|d| {
            create_file(d, "foo", b"foo\n", 0o777);
            create_file(d, "foobar", b"foobar\n", 0o777);
        },
        &|d| remove_all(d, "foobar"),
        &|_| {},
    ]);
}

pub fn move_file_from_lower_layer(env: &Env) {
    env.check_snapshots(&[
        &|d| {
            create_dir(d, "dir1", 0o700);
            create_file(d, "dir1/f1", b"Hello", 0o644);
            create_dir(d, "dir2", 0o700);
            create_file(d, "dir2/f2", b"...", 0o644);
        },
        &|d| {
            create_dir(d, "dir3", 0o700);
            create_file(d, "dir3/f1", b"Hello", 0o644);
            remove_all(d, "dir1");
            link(d, "dir2/f2", "dir3/f2");
            remove_all(d, "dir2/f2");
        },
    ]);
}

/// A view's mount refuses writes (EROFS), on no parent, one parent and a stack.
pub fn view_readonly(env: &Env) {
    let sn = &*env.sn;
    sn.prepare("preparing", None, &gc()).unwrap();
    sn.commit("committed", "preparing", &gc()).unwrap();
    sn.prepare("preparing2", Some("committed"), &gc()).unwrap();
    sn.commit("committed2", "preparing2", &gc()).unwrap();
    for (view, parent) in [
        ("view0", None),
        ("view1", Some("committed")),
        ("view2", Some("committed2")),
    ] {
        let mounts = sn.view(view, parent, &gc()).unwrap();
        assert!(mounts.iter().all(Mount::is_readonly), "{mounts:?}");
        let err = env.with_mount(&mounts, |d| {
            fs::write(d.join("testfile"), b"x").unwrap_err()
        });
        assert_eq!(err.raw_os_error(), Some(libc_erofs()), "{view}: {err}");
        sn.remove(view).unwrap();
    }
    // A view can never be committed.
    sn.view("v", Some("committed"), &gc()).unwrap();
    assert_eq!(
        kind_of(sn.commit("c3", "v", &gc())),
        ErrorKind::FailedPrecondition
    );
}

fn libc_erofs() -> i32 {
    30
}

/// Callbacks of a walk may call back into the snapshotter.
pub fn stat_in_walk(env: &Env) {
    let sn = &*env.sn;
    base_snapshots(sn);
    let mut n = 0;
    sn.walk(&Filter::all(), &mut |i| {
        let st = sn.stat(&i.name)?;
        assert_eq!(&st, i);
        if let Some(p) = &i.parent {
            sn.stat(p)?;
        }
        sn.update(&i.name, &labels(&[("walked", "yes")]))?;
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 6);
    assert_eq!(walk_names(sn, &Filter::all().label("walked")).len(), 6);
}

/// The root of a new snapshot is 0755, whatever the umask.
pub fn root_permission(env: &Env) {
    let m = env.prepare_mounted("preparing", None);
    let mode = fs::metadata(m.path()).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o755, "got {mode:o}");
}

/// 128 layers, each overriding one file, adding one and replacing a directory: every layer
/// mounts equal to the flat tree, and so does a view of the top.
pub fn layers_128(env: &Env) {
    let sn = &*env.sn;
    let flat = env.work.join("flat");
    fs::create_dir(&flat).unwrap();
    fs::set_permissions(&flat, fs::Permissions::from_mode(0o755)).unwrap();
    let mut parent: Option<String> = None;
    for i in 0..128 {
        let apply = |d: &Path| {
            if i == 0 {
                create_file(d, "bottom", b"way at the bottom\n", 0o777);
                create_file(d, "overwriteme", b"FIRST!\n", 0o777);
                create_dir(d, "addhere", 0o755);
                create_dir(d, "onlyme", 0o755);
                create_file(d, "onlyme/bottom", b"bye!\n", 0o777);
            } else {
                create_file(
                    d,
                    "overwriteme",
                    format!("{i} WAS HERE!\n").as_bytes(),
                    0o777,
                );
                create_file(d, &format!("addhere/file-{i}"), b"same\n", 0o755);
                remove_all(d, "onlyme");
                create_dir(d, "onlyme", 0o755);
                create_file(d, &format!("onlyme/file-{i}"), b"only me!\n", 0o777);
            }
        };
        let key = format!("prepare-layer-{i}");
        let m = env.prepare_mounted(&key, parent.as_deref());
        assert_same_tree(&flat, m.path());
        apply(&flat);
        apply(m.path());
        assert_same_tree(&flat, m.path());
        drop(m);
        let name = format!("committed-{i}");
        sn.commit(&name, &key, &gc()).unwrap();
        parent = Some(name);
    }
    let mounts = sn.view("fullview", parent.as_deref(), &gc()).unwrap();
    let m = env.mount(&mounts, "fullview");
    assert_same_tree(&flat, m.path());
    assert_eq!(
        fs::read_to_string(m.path().join("overwriteme")).unwrap(),
        "127 WAS HERE!\n"
    );
}

/// A view cannot be a parent; a view of the view's parent sees the same tree.
pub fn view_of_views_parent(env: &Env) {
    let sn = &*env.sn;
    let base = env.create(None, &|d| create_file(d, "base", b"b", 0o644));
    let top = env.create(Some(&base), &|d| create_file(d, "top", b"t", 0o644));
    sn.view("v1", Some(&top), &gc()).unwrap();
    assert_eq!(
        kind_of(sn.prepare("on-view", Some("v1"), &gc())),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        kind_of(sn.view("on-view", Some("v1"), &gc())),
        ErrorKind::FailedPrecondition
    );
    let parent = sn.stat("v1").unwrap().parent.unwrap();
    assert_eq!(parent, top);
    sn.view("v2", Some(&parent), &gc()).unwrap();
    let a = env.mount(&sn.mounts("v1").unwrap(), "v1");
    let b = env.mount(&sn.mounts("v2").unwrap(), "v2");
    assert_same_tree(a.path(), b.path());
    assert!(a.path().join("base").exists() && a.path().join("top").exists());
    drop((a, b));
    // Views pin their parent like any child.
    assert_eq!(kind_of(sn.remove(&top)), ErrorKind::FailedPrecondition);
    sn.remove("v1").unwrap();
    sn.remove("v2").unwrap();
    sn.remove(&top).unwrap();
}

/// `mounts` gives back what prepare/view gave; committed snapshots have none.
pub fn mounts_recover(env: &Env) {
    let sn = &*env.sn;
    let m0 = sn.prepare("a", None, &gc()).unwrap();
    assert_eq!(sn.mounts("a").unwrap(), m0);
    sn.commit("c", "a", &gc()).unwrap();
    assert_eq!(kind_of(sn.mounts("c")), ErrorKind::FailedPrecondition);
    let m1 = sn.prepare("b", Some("c"), &gc()).unwrap();
    assert_eq!(sn.mounts("b").unwrap(), m1);
    let m2 = sn.view("v", Some("c"), &gc()).unwrap();
    assert_eq!(sn.mounts("v").unwrap(), m2);
    assert_eq!(kind_of(sn.mounts("missing")), ErrorKind::NotFound);
}

/// Changing a file in a child, in place, never changes the parent (no shared inodes).
pub fn child_writes_never_change_parent(env: &Env) {
    use std::io::Write;
    let sn = &*env.sn;
    let base = env.create(None, &|d| {
        create_file(d, "file", b"original", 0o644);
        link(d, "file", "hardlink");
        create_dir(d, "dir", 0o755);
    });
    let m = env.prepare_mounted("child", Some(&base));
    fs::OpenOptions::new()
        .append(true)
        .open(m.path().join("file"))
        .unwrap()
        .write_all(b" + child")
        .unwrap();
    fs::set_permissions(m.path().join("dir"), fs::Permissions::from_mode(0o700)).unwrap();
    create_file(m.path(), "dir/new", b"n", 0o644);
    drop(m);
    let expected = env.work.join("expected");
    fs::create_dir(&expected).unwrap();
    fs::set_permissions(&expected, fs::Permissions::from_mode(0o755)).unwrap();
    create_file(&expected, "file", b"original", 0o644);
    link(&expected, "file", "hardlink");
    create_dir(&expected, "dir", 0o755);
    env.check(&base, &expected);
    sn.remove("child").unwrap();
}

/// Usage counts the snapshot's own blocks and inodes, a hard-linked file once.
pub fn usage(env: &Env) {
    let sn = &*env.sn;
    let m = env.prepare_mounted("a", None);
    let empty = sn.usage("a").unwrap();
    assert!(empty.inodes >= 1);
    fs::write(m.path().join("big"), vec![1u8; 1 << 20]).unwrap();
    link(m.path(), "big", "big2");
    fs::create_dir(m.path().join("d")).unwrap();
    fs::write(m.path().join("d/small"), b"x").unwrap();
    drop(m);
    let u = sn.usage("a").unwrap();
    assert_eq!(u.inodes, empty.inodes + 3, "{u:?} vs {empty:?}");
    assert!(u.size >= empty.size + (1 << 20), "{u:?}");
    assert!(
        u.size < empty.size + (1 << 20) + (1 << 20),
        "hard link counted once: {u:?}"
    );
    sn.commit("c", "a", &gc()).unwrap();
    assert_eq!(sn.usage("c").unwrap(), u);
    assert_eq!(kind_of(sn.usage("missing")), ErrorKind::NotFound);
    // A committed snapshot is measured once, at commit, and the figure stored; one measured
    // before stores existed (no row) is measured when asked for and stored then.
    let db = strata_metadata::Db::open(&env.root.join("metadata.db")).unwrap();
    let stored = || {
        db.read(|tx| {
            let id = tx.snapshot(sn.name(), "c")?.unwrap().id;
            tx.snapshot_usage(id)
        })
        .unwrap()
    };
    assert_eq!(stored(), Some((u.size, u.inodes)));
    db.write(|tx| {
        let id = tx.snapshot(sn.name(), "c")?.unwrap().id;
        tx.set_snapshot_usage(id, 7, 1)
    })
    .unwrap();
    assert_eq!(sn.usage("c").unwrap().size, 7, "the stored figure is used");
    assert_eq!(
        db.read(|tx| tx.snapshot_usages(sn.name())).unwrap(),
        vec![("c".to_owned(), 7, 1)]
    );
    // All committed snapshots at once: active ones are not there.
    env.prepare_mounted("active", Some("c"));
    let all = sn.committed_usage().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all["c"], Usage { size: 7, inodes: 1 });
}

/// An unpacker writing to `apply_target` without a mount sees its files in the snapshot.
/// Layers filled before their parents exist, then moved onto them (overlayfs), or a clear
/// refusal (snapshotters that copy their parent).
pub fn rebase(env: &Env) {
    let sn = &*env.sn;
    sn.prepare("l2-a", None, &gc()).unwrap();
    if !sn.can_rebase() {
        assert_eq!(
            kind_of(sn.rebase("l2-a", None)),
            ErrorKind::FailedPrecondition
        );
        return;
    }
    let t = sn.apply_target("l2-a").unwrap();
    create_file(&t.dir, "top", b"2", 0o644);
    sn.prepare("l1-a", None, &gc()).unwrap();
    // The parent is not committed yet: refused, and nothing moved.
    assert_eq!(
        kind_of(sn.rebase("l2-a", Some("l1-a"))),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(sn.stat("l2-a").unwrap().parent, None);
    let base = sn.apply_target("l1-a").unwrap();
    create_file(&base.dir, "bottom", b"1", 0o644);
    std::fs::set_permissions(&base.dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    sn.commit("l1", "l1-a", &gc()).unwrap();
    let t = sn.rebase("l2-a", Some("l1")).unwrap();
    assert_eq!(t.lowers.len(), 1, "{t:?}");
    // The layer's root takes its new parent's mode, as if prepared on it.
    assert_eq!(fs::metadata(&t.dir).unwrap().mode() & 0o7777, 0o750);
    sn.commit("l2", "l2-a", &gc()).unwrap();
    assert_eq!(sn.stat("l2").unwrap().parent.as_deref(), Some("l1"));
    assert_eq!(
        kind_of(sn.rebase("l2", None)),
        ErrorKind::FailedPrecondition
    );
    sn.view("v", Some("l2"), &gc()).unwrap();
    let m = env.mount(&sn.mounts("v").unwrap(), "v");
    assert!(m.path().join("bottom").exists() && m.path().join("top").exists());
}

pub fn apply_target(env: &Env) {
    let sn = &*env.sn;
    sn.prepare("base-a", None, &gc()).unwrap();
    let t = sn.apply_target("base-a").unwrap();
    assert!(t.lowers.is_empty());
    create_file(&t.dir, "from-apply", b"1", 0o644);
    sn.commit("base", "base-a", &gc()).unwrap();
    sn.prepare("top-a", Some("base"), &gc()).unwrap();
    let t = sn.apply_target("top-a").unwrap();
    if t.overlay_whiteouts {
        assert_eq!(t.lowers.len(), 1, "{t:?}");
        assert!(t.lowers[0].join("from-apply").exists());
    } else {
        assert!(t.lowers.is_empty());
        assert!(t.dir.join("from-apply").exists(), "a full copy");
        remove_all(&t.dir, "from-apply");
    }
    create_file(&t.dir, "second", b"2", 0o644);
    if t.overlay_whiteouts {
        // An overlay whiteout for the lower file: a 0/0 character device.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            t.dir.join("from-apply"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
    }
    let m = env.mount(&sn.mounts("top-a").unwrap(), "top");
    assert!(m.path().join("second").exists());
    assert!(
        !m.path().join("from-apply").exists(),
        "deleted in the top layer"
    );
    drop(m);
    sn.commit("top", "top-a", &gc()).unwrap();
    // The committed layer is read back where it was applied.
    let layer = sn.layer_dir("top").unwrap();
    assert_eq!(fs::read(layer.join("second")).unwrap(), b"2");
    let gone = fs::symlink_metadata(layer.join("from-apply"));
    if t.overlay_whiteouts {
        use std::os::unix::fs::FileTypeExt;
        assert!(gone.unwrap().file_type().is_char_device(), "the whiteout");
    } else {
        assert!(gone.is_err(), "deleted from the full tree");
    }
    assert_eq!(kind_of(sn.layer_dir("top-a")), ErrorKind::NotFound);
    sn.view("v", Some("base"), &gc()).unwrap();
    assert_eq!(kind_of(sn.layer_dir("v")), ErrorKind::FailedPrecondition);
    assert_eq!(kind_of(sn.apply_target("v")), ErrorKind::FailedPrecondition);
    assert_eq!(
        kind_of(sn.apply_target("base")),
        ErrorKind::FailedPrecondition
    );
}

/// Cleanup removes what no record references — an orphan `<id>`, an abandoned `new-…`, a
/// half-deleted `rm-…` — and nothing live: not a snapshot, not a `new-…` being made.
pub fn cleanup(env: &Env) {
    let sn = &*env.sn;
    let base = env.create(None, &|d| create_file(d, "keep", b"k", 0o644));
    sn.prepare("active", Some(&base), &gc()).unwrap();
    sn.view("view", Some(&base), &gc()).unwrap();
    let dir = env.snapshots_dir();
    let orphan = dir.join("999999");
    fs::create_dir_all(orphan.join("fs/sub")).unwrap();
    fs::write(orphan.join("fs/sub/f"), b"x").unwrap();
    let abandoned = dir.join("new-1-2-3");
    fs::create_dir_all(abandoned.join("fs")).unwrap();
    let half_deleted = dir.join("rm-7-1-2-3");
    fs::create_dir_all(half_deleted.join("fs")).unwrap();
    let in_progress = dir.join("new-busy");
    fs::create_dir_all(&in_progress).unwrap();
    let lock = fs::File::open(&in_progress).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    // Old enough that cleanup does not take them for ones just being made.
    for d in [&abandoned, &in_progress] {
        backdate(d);
    }
    let foreign = dir.join("README");
    fs::write(&foreign, b"not ours").unwrap();

    let mut want = vec![orphan.clone(), abandoned.clone(), half_deleted.clone()];
    want.sort();
    // `check` reports what cleanup will remove, and removes nothing.
    let mut check = sn.check().unwrap();
    check.unrecorded.sort();
    assert_eq!(check.unrecorded, want);
    assert!(check.missing.is_empty(), "{check:?}");
    assert!(want.iter().all(|p| p.exists()));

    let mut removed = sn.cleanup().unwrap();
    removed.sort();
    assert_eq!(removed, want);
    assert_eq!(sn.check().unwrap(), strata_snapshot::Check::default());
    // A record whose tree is gone is reported as missing.
    let db = strata_metadata::Db::open(&env.root.join("metadata.db")).unwrap();
    let id = db
        .read(|tx| Ok(tx.snapshot(sn.name(), "view")?.unwrap().id))
        .unwrap();
    let tree = dir.join(id.to_string()).join("fs");
    fs::rename(&tree, dir.join(id.to_string()).join("away")).unwrap();
    assert_eq!(sn.check().unwrap().missing, ["view"]);
    fs::rename(dir.join(id.to_string()).join("away"), &tree).unwrap();
    for p in &want {
        assert!(!p.exists(), "{}", p.display());
    }
    assert!(in_progress.exists() && foreign.exists());
    let fresh = dir.join("new-just-made");
    fs::create_dir(&fresh).unwrap();
    assert!(
        sn.cleanup().unwrap().is_empty(),
        "a just-made new- dir is left alone"
    );
    fs::remove_dir(&fresh).unwrap();
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("rm-")), "{names:?}");
    drop(lock);
    // The live snapshots are intact.
    env.check(&base, &{
        let e = env.work.join("expected");
        fs::create_dir(&e).unwrap();
        fs::set_permissions(&e, fs::Permissions::from_mode(0o755)).unwrap();
        create_file(&e, "keep", b"k", 0o644);
        e
    });
    let m = env.mount(&sn.mounts("active").unwrap(), "active");
    assert!(m.path().join("keep").exists());
    drop(m);
    // Once unlocked, the abandoned staging directory goes too; then there is nothing left.
    assert_eq!(sn.cleanup().unwrap(), vec![in_progress]);
    assert!(sn.cleanup().unwrap().is_empty());
}

/// Sets `path`'s modification time an hour back.
pub fn backdate(path: &Path) {
    let hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::open(path)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
}

/// What a `kill -9` between "directory renamed into place" and "transaction committed"
/// leaves — an `<id>` directory whose id SQLite hands out again — is moved aside by the
/// next snapshot that gets the id, never mistaken for its content.
pub fn leftover_of_a_rolled_back_id(env: &Env) {
    let sn = &*env.sn;
    let dir = env.snapshots_dir();
    let ids = || -> Vec<i64> {
        fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok()?.parse().ok())
            .collect()
    };
    sn.prepare("probe", None, &gc()).unwrap();
    let probe = ids();
    assert_eq!(probe.len(), 1);
    // The next id: what a rolled-back prepare after "probe" would have used.
    let next = probe[0] + 1;
    let stale = dir.join(next.to_string());
    fs::create_dir_all(stale.join("fs")).unwrap();
    fs::write(stale.join("fs/stale"), b"from a crashed prepare").unwrap();
    let mounts = sn.prepare("fresh", None, &gc()).unwrap();
    env.with_mount(&mounts, |d| {
        assert_eq!(
            fs::read_dir(d).unwrap().count(),
            0,
            "a new snapshot starts empty"
        );
    });
    assert!(sn.cleanup().unwrap().is_empty());
}

/// Opening a second snapshotter on the same store (another process, in effect) sees the
/// same snapshots.
pub fn shared_between_handles(env: &Env) {
    let sn = &*env.sn;
    sn.prepare("a", None, &gc()).unwrap();
    sn.commit("c", "a", &gc()).unwrap();
    let db = strata_metadata::Db::open(&env.root.join("metadata.db")).unwrap();
    let other = strata_snapshot::open(sn.name(), &env.root, Arc::new(db)).unwrap();
    assert_eq!(other.stat("c").unwrap(), sn.stat("c").unwrap());
    other.prepare("b", Some("c"), &gc()).unwrap();
    assert_eq!(sn.stat("b").unwrap().parent.as_deref(), Some("c"));
    assert!(other.cleanup().unwrap().is_empty());
}

/// Snapshots made, committed and removed through one handle while another (its own database
/// connection, as another process would have) runs cleanup in a loop: cleanup never takes
/// anything live, and leaves nothing behind once the work is done.
pub fn concurrent_with_cleanup(env: &Env) {
    use std::sync::atomic::{AtomicBool, Ordering};

    let sn = &*env.sn;
    let db = strata_metadata::Db::open(&env.root.join("metadata.db")).unwrap();
    let other = strata_snapshot::open(sn.name(), &env.root, Arc::new(db)).unwrap();
    let stop = AtomicBool::new(false);
    let mut kept = Vec::new();
    std::thread::scope(|s| {
        let cleaner = s.spawn(|| {
            let mut removed = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                removed.extend(other.cleanup().unwrap());
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            removed
        });
        let mut parent: Option<String> = None;
        for i in 0..24 {
            let key = format!("a-{i}");
            sn.prepare(&key, parent.as_deref(), &gc()).unwrap();
            let dir = sn.apply_target(&key).unwrap().dir;
            fs::write(dir.join(format!("f-{i}")), i.to_string()).unwrap();
            let name = format!("c-{i}");
            sn.commit(&name, &key, &gc()).unwrap();
            sn.view(&format!("v-{i}"), Some(&name), &gc()).unwrap();
            if i % 3 == 2 {
                sn.remove(&format!("v-{i}")).unwrap();
            }
            kept.push(name.clone());
            parent = Some(name);
        }
        stop.store(true, Ordering::Relaxed);
        // Cleanup may finish deleting a removed view's directory (its record is gone); it
        // never takes a snapshot being made or one being deleted by its remover.
        for p in cleaner.join().unwrap() {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            assert!(name.parse::<i64>().is_ok(), "cleanup took {}", p.display());
        }
    });
    // Every layer's file is where it belongs.
    sn.prepare("check", Some(kept.last().unwrap()), &gc())
        .unwrap();
    let t = sn.apply_target("check").unwrap();
    for i in 0..24 {
        let f = format!("f-{i}");
        let found = if t.overlay_whiteouts {
            t.lowers[23 - i].join(&f)
        } else {
            t.dir.join(&f)
        };
        assert_eq!(fs::read_to_string(found).unwrap(), i.to_string());
    }
    assert!(sn.cleanup().unwrap().is_empty());
}

/// Expands to one `#[test]` per case for the factory `$env: fn(bool) -> Option<Env>`.
macro_rules! suite {
    ($env:path) => {
        $crate::conformance::suite!(@cases $env;
            basic: true,
            stat_active: true,
            stat_committed: true,
            transitivity: true,
            key_reuse_fails: false,
            update: false,
            remove_then_reuse: false,
            walk: false,
            layer_file_update: true,
            remove_directory_in_lower_layer: true,
            chown: true,
            directory_permission_on_commit: true,
            remove_intermediate_fails: false,
            deleted_files_in_child: true,
            move_file_from_lower_layer: true,
            view_readonly: true,
            stat_in_walk: false,
            root_permission: true,
            layers_128: true,
            view_of_views_parent: true,
            mounts_recover: false,
            child_writes_never_change_parent: true,
            usage: true,
            apply_target: true,
            rebase: true,
            cleanup: true,
            leftover_of_a_rolled_back_id: true,
            shared_between_handles: false,
            concurrent_with_cleanup: false,
        );
    };
    (@cases $env:path; $($case:ident: $root:expr),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                if let Some(env) = $env($root) {
                    $crate::conformance::$case(&env);
                }
            }
        )*
    };
}
pub(crate) use suite;
