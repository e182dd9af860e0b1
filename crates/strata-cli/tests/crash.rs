//! The crash harness: pull (plain and discarding compressed layers), load, migrate, create,
//! commit, rmi and prune, each killed with SIGKILL at a random moment (seeded, reproducible), then `fsck` and the
//! operation again. After every kill, `fsck` finds nothing but orphans, the retry succeeds, and the
//! image that was complete before stays complete; at the end every blob re-verifies and `fsck
//! --repair` leaves a store with nothing at all to report.
//!
//! `STRATA_CRASH_SEED=N` replays a run; `STRATA_CRASH_KILLS=N` sets how many processes must be
//! killed mid-operation (default 120). The seed and the counts are printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Strata, pseudo_random};
use strata_testutil::{
    Compression, Image, ImageBuilder, LayerBuilder, LayoutEntry, Registry, busybox_layer,
    push_image, require_root, require_tool, tar_dir, write_docker_root, write_layout,
};

/// splitmix64: small, seeded, good enough to place kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration in `[0, max)`.
    fn below(&mut self, max: Duration) -> Duration {
        let nanos = max.as_nanos().max(1) as u64;
        Duration::from_nanos(self.next() % nanos)
    }
}

/// An image of `files` small files and one incompressible blob: enough entries and bytes that
/// a kill can land in the middle of downloading, unpacking or committing it.
fn image(seed: u64, files: usize, big: usize) -> Image {
    let mut layer = LayerBuilder::new().dir("data", 0o755);
    for i in 0..files {
        layer = layer.file(
            &format!("data/f{i:04}"),
            format!("{seed}:{i}\n").as_bytes(),
            0o644,
        );
    }
    let layer = layer
        .file("data/big.bin", &pseudo_random(big, seed), 0o644)
        .build(Compression::Gzip);
    let top = LayerBuilder::new()
        .file("top.txt", format!("top {seed}\n").as_bytes(), 0o644)
        .build(Compression::Gzip);
    ImageBuilder::new().layer(layer).layer(top).build()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Pull,
    /// A pull that discards each compressed layer once unpacked (mark, then delete).
    PullDiscard,
    Load,
    Create,
    Commit,
    Rmi,
    Prune,
    /// A migration from a Docker overlay2 data root (layers hardlinked from it).
    Migrate,
}

const OPS: [Op; 8] = [
    Op::Pull,
    Op::PullDiscard,
    Op::Load,
    Op::Migrate,
    Op::Create,
    Op::Commit,
    Op::Rmi,
    Op::Prune,
];

struct Harness {
    s: Strata,
    pulled: String,
    archive: Vec<u8>,
    docker_root: String,
}

impl Harness {
    /// The command line of `op` in round `round`, and its stdin.
    fn command(&self, op: Op, round: usize) -> (Vec<String>, Vec<u8>) {
        let args: Vec<String> = match op {
            Op::Pull => vec!["pull".into(), "-q".into(), self.pulled.clone()],
            Op::PullDiscard => vec![
                "pull".into(),
                "-q".into(),
                "--discard-compressed".into(),
                self.pulled.clone(),
            ],
            Op::Load => vec!["load".into(), "-q".into()],
            // Not `c{round}`: a name of hex digits is also an ID prefix, and `rm -f c4` would
            // remove a container whose ID starts with c4 (Docker resolves names that way too).
            Op::Create => vec![
                "create".into(),
                "--name".into(),
                format!("crash-c{round}"),
                "crash/base:1".into(),
                "/bin/true".into(),
            ],
            Op::Commit => vec![
                "commit".into(),
                "committer".into(),
                format!("crash/committed:{round}"),
            ],
            Op::Rmi => vec!["rmi".into(), self.pulled.clone()],
            Op::Prune => vec!["image".into(), "prune".into(), "-a".into(), "-f".into()],
            Op::Migrate => vec![
                "migrate".into(),
                "-q".into(),
                "--from".into(),
                self.docker_root.clone(),
            ],
        };
        let stdin = if op == Op::Load {
            self.archive.clone()
        } else {
            Vec::new()
        };
        (args, stdin)
    }

    /// What must hold before `op` so that it has work to do.
    fn prepare(&self, op: Op, round: usize) {
        let quiet = |args: &[&str]| {
            self.s.run_input(args, b"");
        };
        match op {
            Op::Pull | Op::PullDiscard => {
                quiet(&["rmi", &self.pulled]);
                // Its layers too, so the pull unpacks (and discards) them again.
                quiet(&["image", "prune", "-a", "-f"]);
            }
            Op::Load => quiet(&["rmi", "crash/loaded:1"]),
            Op::Migrate => {
                quiet(&["rmi", "crash/migrated:1"]);
                quiet(&["image", "prune", "-a", "-f"]);
            }
            Op::Create => quiet(&["rm", "-f", &format!("crash-c{round}")]),
            Op::Commit => {}
            Op::Rmi => {
                self.s.ok(&["pull", "-q", &self.pulled]);
            }
            Op::Prune => {
                self.s.ok(&["pull", "-q", &self.pulled]);
                self.s.ok_input(&["load", "-q"], &self.archive);
            }
        }
    }

    /// Runs `op` to the end, as a user would after the crash.
    fn retry(&self, op: Op, round: usize) {
        let (args, stdin) = self.command(op, round);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match op {
            // A killed create may have left the container half made: `rm -f` finishes it.
            Op::Create => {
                self.s
                    .run_input(&["rm", "-f", &format!("crash-c{round}")], b"");
                self.s.ok(&args);
            }
            // The kill may have come after the image was gone.
            Op::Rmi => {
                let out = self.s.run_input(&args, b"");
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    out.status.success() || err.contains("No such image"),
                    "rmi after a crash: {err}"
                );
            }
            _ => {
                self.s.ok_input(&args, &stdin);
            }
        }
    }

    /// Starts `op` and kills it with SIGKILL after `after`; whether it had finished already.
    fn kill_after(&self, op: Op, round: usize, after: Duration) -> bool {
        let (args, stdin) = self.command(op, round);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = self.s.spawn_quiet(&args);
        let mut input = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            use std::io::Write;
            let _ = input.write_all(&stdin);
        });
        std::thread::sleep(after);
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        feeder.join().unwrap();
        finished
    }

    /// `fsck` reports no problem (orphans are what a crash may leave).
    fn fsck_clean(&self, what: &str) {
        let out = self.s.cmd(&["fsck", "--format", "json"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !text.contains("\"problem\""),
            "after {what}: fsck found problems:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Times one uninterrupted run of `op`: the window kills are placed in.
    fn calibrate(&self, op: Op) -> Duration {
        self.prepare(op, 0);
        let (args, stdin) = self.command(op, 0);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let start = Instant::now();
        let out = self.s.run_input(&args, &stdin);
        let took = start.elapsed();
        assert!(
            out.status.success() || op == Op::Rmi,
            "{op:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    }
}

#[test]
fn sigkill_anywhere_leaves_a_consistent_store() {
    if !(require_root("unpacks layers, mounts") && require_tool("docker-registry")) {
        return;
    }
    let Some(busybox) = busybox_layer() else {
        return;
    };
    let seed: u64 = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let min_kills: usize = std::env::var("STRATA_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    eprintln!(
        "crash harness: seed {seed} (STRATA_CRASH_SEED={seed} replays it), until {min_kills} \
         processes are killed mid-operation"
    );
    let mut rng = Rng(seed);

    let reg = Registry::start().unwrap();
    push_image(&reg.url(), "crash/pulled", "1", &image(1, 400, 2 << 20)).unwrap();
    let s = Strata::new();
    // The image that must survive everything, with a container keeping it from prune -a.
    let base = ImageBuilder::new()
        .layer(busybox.build(Compression::Gzip))
        .build();
    let layout = s.scratch("layout");
    write_layout(
        &layout,
        &[
            ("crash/base:1", LayoutEntry::Image(&base)),
            (
                "crash/loaded:1",
                LayoutEntry::Image(&image(2, 400, 2 << 20)),
            ),
        ],
    )
    .unwrap();
    let archive = tar_dir(&layout).unwrap();
    s.ok_input(&["load", "-q"], &archive);
    let docker_root = s.scratch("docker");
    write_docker_root(
        &docker_root,
        &[(&["crash/migrated:1"], &image(3, 400, 2 << 20))],
        0,
    )
    .unwrap();
    s.ok(&["create", "--name", "committer", "crash/base:1", "/bin/true"]);
    let base_id = s.ok(&["image", "inspect", "--format", "{{.Id}}", "crash/base:1"]);
    let h = Harness {
        s,
        pulled: format!("{}/crash/pulled:1", reg.addr()),
        archive,
        docker_root: docker_root.to_string_lossy().into_owned(),
    };

    let mut windows: Vec<Duration> = OPS.iter().map(|&op| h.calibrate(op)).collect();
    eprintln!(
        "crash harness: uninterrupted durations {:?}",
        OPS.iter().zip(&windows).collect::<Vec<_>>()
    );
    let (mut kills, mut finished_first, mut round) = (0, 0, 0);
    while kills < min_kills && round < min_kills {
        round += 1;
        for (i, &op) in OPS.iter().enumerate() {
            h.prepare(op, round);
            let after = rng.below(windows[i]);
            if h.kill_after(op, round, after) {
                finished_first += 1;
            } else {
                kills += 1;
            }
            let what = format!("{op:?} killed after {after:?} (round {round})");
            h.fsck_clean(&what);
            let start = Instant::now();
            h.retry(op, round);
            // The window follows how long the operation takes now (a store that grows, a
            // warm page cache), so kill points keep landing inside it.
            windows[i] = (windows[i] + start.elapsed()) / 2;
            h.fsck_clean(&format!("the retry of {what}"));
            let id =
                h.s.ok(&["image", "inspect", "--format", "{{.Id}}", "crash/base:1"]);
            assert_eq!(id, base_id, "after {what}");
            if op == Op::Create {
                h.s.ok(&["rm", &format!("crash-c{round}")]);
            }
        }
    }
    eprintln!(
        "crash harness: seed {seed}: {kills} processes killed mid-operation, {finished_first} \
         finished before their kill point, {round} rounds of {} operations",
        OPS.len()
    );
    assert!(
        kills >= min_kills,
        "only {kills} kills landed inside an operation"
    );
    // Whatever was complete is intact: every blob re-verifies; a repair collects the orphans
    // and leaves nothing to report.
    let out =
        h.s.cmd(&["fsck", "--verify-content", "--repair"])
            .output()
            .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = h.s.cmd(&["fsck", "--verify-content"]).output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "after repair: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    h.s.ok(&["run", "--rm", "crash/base:1", "/bin/sh", "-c", "exit 0"]);
}
