//! The hostile-layer case table (HOSTILE.md), shared by `tests/hostile.rs` (plain
//! directories in both whiteout modes) and strata-snapshot's `tests/hostile.rs` (each
//! snapshotter's unpack path), which includes this module with `#[path]`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::{Env, pax, raw, root_cases};
use strata_archive::{ArchiveError, Limits, WhiteoutMode};
use strata_testutil::LayerBuilder;
use tar::EntryType;

pub const BOTH: &[WhiteoutMode] = &[WhiteoutMode::Delete, WhiteoutMode::Overlay];

pub type Check = fn(&Path, &Env) -> Result<(), String>;

pub enum Expect {
    /// Fails in layer `layer` (index) with an error naming `entry`.
    Error { layer: usize, entry: &'static str },
    /// Applies; then `check` looks at the top layer's directory.
    Contained(Check),
}

pub struct Case {
    pub name: &'static str,
    pub layers: Vec<Vec<u8>>,
    pub expect: Expect,
    pub modes: &'static [WhiteoutMode],
    pub limits: Limits,
    /// A different outcome in overlay mode, where each layer has its own directory.
    pub overlay: Option<Expect>,
}

impl Case {
    pub fn overlay(mut self, e: Expect) -> Case {
        self.overlay = Some(e);
        self
    }

    pub fn expect(&self, mode: WhiteoutMode) -> &Expect {
        match (&self.overlay, mode) {
            (Some(e), WhiteoutMode::Overlay) => e,
            _ => &self.expect,
        }
    }
}

pub fn case(name: &'static str, layers: Vec<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        layers,
        expect,
        modes: BOTH,
        limits: Limits::default(),
        overlay: None,
    }
}

pub fn file(name: &[u8], data: &[u8]) -> (tar::Header, Vec<u8>) {
    (
        raw(name, EntryType::Regular, b"", data.len() as u64),
        data.to_vec(),
    )
}

pub fn entry(b: LayerBuilder, (h, d): (tar::Header, Vec<u8>)) -> LayerBuilder {
    b.raw_entry(h, d)
}

pub fn layer(entries: Vec<(tar::Header, Vec<u8>)>) -> Vec<u8> {
    entries
        .into_iter()
        .fold(LayerBuilder::new(), entry)
        .tar_bytes()
}

pub fn symlink(name: &[u8], target: &[u8]) -> (tar::Header, Vec<u8>) {
    (raw(name, EntryType::Symlink, target, 0), Vec::new())
}

pub fn hardlink(name: &[u8], target: &[u8]) -> (tar::Header, Vec<u8>) {
    (raw(name, EntryType::Link, target, 0), Vec::new())
}

pub fn dir(name: &[u8], mode: u32) -> (tar::Header, Vec<u8>) {
    let mut h = raw(name, EntryType::Directory, b"", 0);
    h.set_mode(mode);
    h.set_cksum();
    (h, Vec::new())
}

pub fn with_pax(
    records: &[(&str, &[u8])],
    e: (tar::Header, Vec<u8>),
) -> Vec<(tar::Header, Vec<u8>)> {
    vec![pax(records), e]
}

pub fn read(p: &Path) -> Result<Vec<u8>, String> {
    fs::read(p).map_err(|e| format!("read {}: {e}", p.display()))
}

pub fn is_symlink(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// 24 MiB of zeros in one entry, gzipped (built once: debug-mode deflate is slow).
pub fn bomb() -> &'static Vec<u8> {
    static BOMB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BOMB.get_or_init(|| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = e.write_all(&layer(vec![file(b"zeros", &vec![0u8; 24 << 20])]));
        e.finish().unwrap_or_default()
    })
}

pub fn cases(env: &Env) -> Vec<Case> {
    let abs = env.abs();
    let abs_victim = format!("{abs}/victim");
    let abs_victimdir = format!("{abs}/victimdir");
    let leak = |p: &'static str| -> &'static [u8] { p.as_bytes() };
    let abs_victim: &'static [u8] = Box::leak(abs_victim.into_bytes().into_boxed_slice());
    let abs_victimdir: &'static [u8] = Box::leak(abs_victimdir.into_bytes().into_boxed_slice());
    let abs_root: &'static [u8] = Box::leak(abs.clone().into_bytes().into_boxed_slice());
    let _ = leak;

    let mut big_size = raw(b"huge", EntryType::Regular, b"", 0);
    big_size.as_old_mut().size = *b"77777777777\0";
    big_size.set_cksum();
    let mut base256 = raw(b"base256", EntryType::Regular, b"", 0);
    base256.as_old_mut().size = [0x80, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    base256.set_cksum();
    let mut bad_cksum = raw(b"badsum", EntryType::Regular, b"", 0);
    bad_cksum.as_old_mut().cksum = *b"0000001\0";
    let mut long_bomb = raw(b"././@LongLink", EntryType::GNULongName, b"", 1 << 30);
    long_bomb.set_cksum();

    let truncated_data = {
        let mut t = layer(vec![file(b"cut", &[7u8; 4000])]);
        t.truncate(512 + 1000);
        t
    };
    let truncated_header = {
        let mut t = layer(vec![file(b"first", b"x"), file(b"second", b"y")]);
        t.truncate(1024 + 100);
        t
    };
    let bomb = bomb().clone();
    let many = layer(
        (0..500)
            .map(|i| file(format!("f{i}").as_bytes(), b""))
            .collect(),
    );

    let mut cases = vec![
        // --- names ---
        case(
            "dotdot name",
            vec![layer(vec![file(b"../victim", b"pwned")])],
            Expect::Error {
                layer: 0,
                entry: "../victim",
            },
        ),
        case(
            "deep dotdot name",
            vec![layer(vec![file(b"../../../../../../victim", b"pwned")])],
            Expect::Error {
                layer: 0,
                entry: "../../../../../../victim",
            },
        ),
        case(
            "dotdot inside name",
            vec![layer(vec![file(b"a/../../victim", b"pwned")])],
            Expect::Error {
                layer: 0,
                entry: "a/../../victim",
            },
        ),
        case(
            "dot-slash dotdot name",
            vec![layer(vec![file(b"./../victim", b"pwned")])],
            Expect::Error {
                layer: 0,
                entry: "./../victim",
            },
        ),
        case(
            "sibling prefix dest-evil",
            vec![layer(vec![file(b"../dest-evil/file", b"pwned")])],
            Expect::Error {
                layer: 0,
                entry: "../dest-evil/file",
            },
        ),
        case(
            "dotdot directory name",
            vec![layer(vec![dir(b"../victimdir/", 0o777)])],
            Expect::Error {
                layer: 0,
                entry: "../victimdir/",
            },
        ),
        case(
            "bare dotdot name",
            vec![layer(vec![dir(b"..", 0o777)])],
            Expect::Error {
                layer: 0,
                entry: "..",
            },
        ),
        case(
            "absolute name",
            vec![layer(vec![file(b"/victim", b"inside")])],
            Expect::Contained(|d, _| {
                (read(&d.join("victim"))? == b"inside")
                    .then_some(())
                    .ok_or("absolute name not placed inside".into())
            }),
        ),
        case(
            "absolute name of the real outside path",
            vec![layer(vec![file(abs_victim, b"inside")])],
            Expect::Contained(|d, env| {
                let inside = d.join(env.path().strip_prefix("/").map_err(|e| e.to_string())?);
                (read(&inside.join("victim"))? == b"inside")
                    .then_some(())
                    .ok_or("not placed inside".into())
            }),
        ),
        case(
            "NUL in PAX path",
            vec![layer(with_pax(
                &[("path", b"a\0/../../victim")],
                file(b"x", b"pwned"),
            ))],
            Expect::Error {
                layer: 0,
                entry: "a\u{0}/../../victim",
            },
        ),
        case(
            "dotdot via PAX path",
            vec![layer(with_pax(
                &[("path", b"../victim")],
                file(b"innocent", b"pwned"),
            ))],
            Expect::Error {
                layer: 0,
                entry: "../victim",
            },
        ),
        // --- symlinks followed by writes ---
        case(
            "absolute symlink to / then write through it",
            vec![layer(vec![
                symlink(b"root", b"/"),
                file(b"root/victim", b"inside"),
            ])],
            Expect::Contained(|d, _| {
                (read(&d.join("victim"))? == b"inside")
                    .then_some(())
                    .ok_or("write through / link not inside".into())
            }),
        ),
        case(
            "absolute symlink to the real outside dir then write",
            vec![layer(vec![
                symlink(b"out", abs_root),
                file(b"out/victim", b"pwned"),
            ])],
            Expect::Error {
                layer: 0,
                entry: "out/victim",
            },
        ),
        case(
            "relative symlink climbing out then write",
            vec![layer(vec![
                symlink(b"up", b"../../../.."),
                file(b"up/victim", b"inside"),
            ])],
            Expect::Contained(|d, _| {
                (read(&d.join("victim"))? == b"inside")
                    .then_some(())
                    .ok_or("not inside".into())
            }),
        ),
        case(
            "symlink to sibling prefix dir then write",
            vec![layer(vec![
                symlink(b"ev", b"../dest-evil"),
                file(b"ev/file", b"pwned"),
            ])],
            Expect::Error {
                layer: 0,
                entry: "ev/file",
            },
        ),
        case(
            "two-hop symlink breakout",
            vec![layer(vec![
                symlink(b"a", b"b"),
                symlink(b"b", b"../../../.."),
                file(b"a/victim", b"inside"),
            ])],
            Expect::Contained(|d, _| {
                (read(&d.join("victim"))? == b"inside")
                    .then_some(())
                    .ok_or("not inside".into())
            }),
        ),
        case(
            "chained symlinks into a directory",
            vec![layer(vec![
                dir(b"real/", 0o755),
                symlink(b"l1", b"l2"),
                symlink(b"l2", b"/l3"),
                symlink(b"l3", b"../real"),
                file(b"l1/f", b"chained"),
            ])],
            Expect::Contained(|d, _| {
                (read(&d.join("real/f"))? == b"chained")
                    .then_some(())
                    .ok_or("chain not followed inside".into())
            }),
        ),
        case(
            "symlink loop",
            vec![layer(vec![
                symlink(b"loop1", b"loop2"),
                symlink(b"loop2", b"loop1"),
                file(b"loop1/x", b"x"),
            ])],
            Expect::Error {
                layer: 0,
                entry: "loop1/x",
            },
        ),
        case(
            "symlink in layer 1, write through it in layer 2",
            vec![
                layer(vec![
                    symlink(b"up", b"../../.."),
                    symlink(b"out", abs_victimdir),
                ]),
                layer(vec![
                    file(b"up/victim", b"inside"),
                    file(b"up/dest-evil/file", b"inside"),
                ]),
            ],
            Expect::Contained(|d, _| {
                (read(&d.join("up/victim")).or_else(|_| read(&d.join("victim")))? == b"inside")
                    .then_some(())
                    .ok_or("not inside".into())
            }),
        ),
        case(
            "absolute symlink in layer 1 to outside dir, write in layer 2",
            vec![
                layer(vec![symlink(b"out", abs_victimdir)]),
                layer(vec![file(b"out/inner", b"pwned")]),
            ],
            Expect::Error {
                layer: 1,
                entry: "out/inner",
            },
        )
        // Overlay: the symlink is in the lower layer; this layer's directory gets a real
        // directory `out` (which hides the symlink in the merged view).
        .overlay(Expect::Contained(|d, _| {
            (read(&d.join("out/inner"))? == b"pwned")
                .then_some(())
                .ok_or("not inside".into())
        })),
        case(
            "file replacing a symlink that points outside",
            vec![layer(vec![
                symlink(b"f", abs_victim),
                file(b"f", b"replaced"),
            ])],
            Expect::Contained(|d, _| {
                (!is_symlink(&d.join("f")) && read(&d.join("f"))? == b"replaced")
                    .then_some(())
                    .ok_or("link not replaced".into())
            }),
        ),
        case(
            "file replacing an outside symlink from a lower layer",
            vec![
                layer(vec![symlink(b"f", b"../victim")]),
                layer(vec![file(b"f", b"replaced")]),
            ],
            Expect::Contained(|d, _| {
                (!is_symlink(&d.join("f")) && read(&d.join("f"))? == b"replaced")
                    .then_some(())
                    .ok_or("link not replaced".into())
            }),
        ),
        case(
            "directory replacing a symlink to an outside directory",
            vec![layer(vec![symlink(b"d", abs_victimdir), dir(b"d/", 0o777)])],
            Expect::Contained(|d, _| {
                let md = fs::symlink_metadata(d.join("d")).map_err(|e| e.to_string())?;
                (md.is_dir() && md.mode() & 0o7777 == 0o777)
                    .then_some(())
                    .ok_or("dir did not replace link".into())
            }),
        ),
        case(
            "symlink replacing a directory",
            vec![layer(vec![
                dir(b"d/", 0o755),
                file(b"d/f", b"x"),
                symlink(b"d", b"../victimdir"),
                file(b"d/new", b"inside"),
            ])],
            Expect::Error {
                layer: 0,
                entry: "d/new",
            },
        ),
        case(
            "symlink replacing a directory, write through it to an inside dir",
            vec![layer(vec![
                dir(b"d/", 0o755),
                file(b"d/f", b"x"),
                dir(b"in/", 0o755),
                symlink(b"d", b"../../in"),
                file(b"d/new", b"inside"),
            ])],
            Expect::Contained(|d, _| {
                (is_symlink(&d.join("d"))
                    && read(&d.join("in/new"))? == b"inside"
                    && !d.join("in/f").exists())
                .then_some(())
                .ok_or("symlink did not replace dir, or write not inside".into())
            }),
        ),
        // --- hardlinks ---
        case(
            "hardlink to dotdot target",
            vec![layer(vec![hardlink(b"h", b"../victim")])],
            Expect::Error {
                layer: 0,
                entry: "h",
            },
        ),
        case(
            "hardlink to absolute outside path",
            vec![layer(vec![hardlink(b"h", abs_victim)])],
            Expect::Error {
                layer: 0,
                entry: "h",
            },
        ),
        case(
            "hardlink through a symlink pointing outside",
            vec![layer(vec![
                symlink(b"out", abs_root),
                hardlink(b"h", b"out/victim"),
            ])],
            Expect::Error {
                layer: 0,
                entry: "h",
            },
        ),
        case(
            "hardlink through a climbing symlink stays inside",
            vec![layer(vec![
                file(b"victim", b"inner victim"),
                symlink(b"up", b"../.."),
                hardlink(b"h", b"up/victim"),
            ])],
            Expect::Contained(|d, _| {
                (read(&d.join("h"))? == b"inner victim")
                    .then_some(())
                    .ok_or("hardlink not to the inside file".into())
            }),
        ),
        case(
            "hardlink to a symlink pointing outside, then write it",
            vec![layer(vec![
                symlink(b"s", abs_victim),
                hardlink(b"h", b"s"),
                file(b"h", b"replaced"),
            ])],
            Expect::Contained(|d, _| {
                (is_symlink(&d.join("s")) && read(&d.join("h"))? == b"replaced")
                    .then_some(())
                    .ok_or("hardlink to symlink wrote through".into())
            }),
        ),
        case(
            "hardlink to a directory",
            vec![layer(vec![dir(b"d/", 0o755), hardlink(b"h", b"d")])],
            Expect::Error {
                layer: 0,
                entry: "h",
            },
        ),
        case(
            "hardlink to the root",
            vec![layer(vec![hardlink(b"h", b"./")])],
            Expect::Error {
                layer: 0,
                entry: "h",
            },
        ),
        case(
            "hardlink to a target that comes later",
            vec![layer(vec![hardlink(b"h", b"later"), file(b"later", b"x")])],
            Expect::Error {
                layer: 0,
                entry: "h",
            },
        ),
        case(
            "hardlink with PAX linkpath climbing out",
            vec![layer(with_pax(
                &[("linkpath", b"../../victim")],
                hardlink(b"h", b"ok"),
            ))],
            Expect::Error {
                layer: 0,
                entry: "h",
            },
        ),
        // --- whiteouts ---
        case(
            "whiteout with empty name",
            vec![layer(vec![file(b".wh.", b"")])],
            Expect::Error {
                layer: 0,
                entry: ".wh.",
            },
        ),
        case(
            "whiteout of dot",
            vec![layer(vec![file(b"d/.wh..", b"")])],
            Expect::Error {
                layer: 0,
                entry: "d/.wh..",
            },
        ),
        case(
            "whiteout of dotdot",
            vec![layer(vec![file(b".wh...", b"")])],
            Expect::Error {
                layer: 0,
                entry: ".wh...",
            },
        ),
        case(
            "whiteout with dotdot parent",
            vec![layer(vec![file(b"../.wh.victim", b"")])],
            Expect::Error {
                layer: 0,
                entry: "../.wh.victim",
            },
        ),
        case(
            "whiteout through a climbing symlink",
            vec![
                layer(vec![file(b"victim", b"lower")]),
                layer(vec![symlink(b"up", b"../.."), file(b"up/.wh.victim", b"")]),
            ],
            Expect::Contained(|_, _| Ok(())),
        ),
        case(
            "whiteout through a symlink to the real outside dir",
            vec![layer(vec![
                symlink(b"out", abs_root),
                file(b"out/.wh.victim", b""),
            ])],
            Expect::Contained(|_, _| Ok(())),
        )
        // Overlay mode must create the whiteout's directory, and a dangling symlink is in
        // the way.
        .overlay(Expect::Error {
            layer: 0,
            entry: "out/.wh.victim",
        }),
        case(
            "opaque marker through a climbing symlink",
            vec![
                layer(vec![file(b"keep", b"lower")]),
                layer(vec![
                    symlink(b"up", b"../../.."),
                    file(b"up/.wh..wh..opq", b""),
                ]),
            ],
            Expect::Contained(|_, _| Ok(())),
        ),
        case(
            "opaque marker through a symlink to the real outside dir",
            vec![layer(vec![
                symlink(b"out", abs_victimdir),
                file(b"out/.wh..wh..opq", b""),
            ])],
            Expect::Contained(|_, _| Ok(())),
        )
        .overlay(Expect::Error {
            layer: 0,
            entry: "out/.wh..wh..opq",
        }),
        // --- forged metadata ---
        case(
            "trusted.overlay xattrs are filtered",
            vec![layer(with_pax(
                &[
                    ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
                    ("SCHILY.xattr.trusted.overlay.redirect", b"/victimdir"),
                    ("SCHILY.xattr.user.overlay.opaque", b"y"),
                    ("SCHILY.xattr.user.ok", b"kept"),
                ],
                dir(b"d/", 0o755),
            ))],
            Expect::Contained(|d, _| {
                let p = d.join("d");
                let get = |k: &str| {
                    let mut v = [0u8; 64];
                    rustix::fs::lgetxattr(&p, k, &mut v[..]).map(|n| v[..n].to_vec())
                };
                if get("trusted.overlay.opaque").is_ok()
                    || get("trusted.overlay.redirect").is_ok()
                    || get("user.overlay.opaque").is_ok()
                {
                    return Err("overlay xattr applied".into());
                }
                (get("user.ok").ok().as_deref() == Some(&b"kept"[..]))
                    .then_some(())
                    .ok_or("user xattr not applied".into())
            }),
        ),
        // --- malformed tars and bombs ---
        case(
            "truncated inside data",
            vec![truncated_data],
            Expect::Error {
                layer: 0,
                entry: "cut",
            },
        ),
        case(
            "truncated inside a header",
            vec![truncated_header],
            Expect::Error {
                layer: 0,
                entry: "<header after \"first\">",
            },
        ),
        case(
            "absurd octal size",
            vec![layer(vec![(big_size, Vec::new())])],
            Expect::Error {
                layer: 0,
                entry: "huge",
            },
        ),
        case(
            "absurd base-256 size",
            vec![layer(vec![(base256, Vec::new())])],
            Expect::Error {
                layer: 0,
                entry: "base256",
            },
        ),
        case(
            "bad checksum",
            vec![layer(vec![file(b"ok", b"1"), (bad_cksum, Vec::new())])],
            Expect::Error {
                layer: 0,
                entry: "badsum",
            },
        ),
        case(
            "GNU long name record bomb",
            vec![layer(vec![(long_bomb, Vec::new())])],
            Expect::Error {
                layer: 0,
                entry: "././@LongLink",
            },
        ),
        Case {
            limits: Limits {
                max_uncompressed_bytes: 4 << 20,
                ..Limits::default()
            },
            ..case(
                "decompression bomb (uncompressed bytes)",
                vec![bomb],
                Expect::Error {
                    layer: 0,
                    entry: "zeros",
                },
            )
        },
        Case {
            limits: Limits {
                max_entries: 100,
                ..Limits::default()
            },
            ..case(
                "entry count bomb",
                vec![many],
                Expect::Error {
                    layer: 0,
                    entry: "f100",
                },
            )
        },
    ];
    if root_cases() {
        cases.push(case(
            "fifo replacing a symlink that points outside",
            vec![layer(vec![symlink(b"p", abs_victim), {
                let mut h = raw(b"p", EntryType::Fifo, b"", 0);
                h.set_mode(0o600);
                h.set_uid(1234);
                h.set_cksum();
                (h, Vec::new())
            }])],
            Expect::Contained(|d, _| {
                let md = fs::symlink_metadata(d.join("p")).map_err(|e| e.to_string())?;
                (md.file_type().is_fifo() && md.uid() == 1234)
                    .then_some(())
                    .ok_or("fifo did not replace link".into())
            }),
        ));
        cases.push(case(
            "chown of a file replacing an outside symlink",
            vec![layer(vec![symlink(b"c", b"../victim"), {
                let mut h = raw(b"c", EntryType::Regular, b"", 0);
                h.set_uid(4321);
                h.set_mode(0o4777);
                h.set_cksum();
                (h, Vec::new())
            }])],
            Expect::Contained(|d, _| {
                let md = fs::symlink_metadata(d.join("c")).map_err(|e| e.to_string())?;
                (md.is_file() && md.uid() == 4321 && md.mode() & 0o7777 == 0o4777)
                    .then_some(())
                    .ok_or("file did not replace link".into())
            }),
        ));
    }
    cases
}

pub fn check_names(e: &ArchiveError, layer: &str, entry: &str) -> Result<(), String> {
    let msg = e.to_string();
    if !msg.contains(layer) {
        return Err(format!("error does not name layer {layer}"));
    }
    if e.entry() != Some(entry) {
        return Err(format!(
            "error names entry {:?}, expected {entry:?}",
            e.entry()
        ));
    }
    Ok(())
}
