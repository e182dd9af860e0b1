//! Driving the real `strata` binary against a throwaway store root.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod containers;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temporary store root and a way to run `strata` against it.
pub struct Strata {
    dir: tempfile::TempDir,
    root: Option<PathBuf>,
    env: Vec<(String, PathBuf)>,
}

impl Strata {
    pub fn new() -> Strata {
        Strata {
            dir: tempfile::tempdir().expect("temp dir"),
            root: None,
            env: Vec::new(),
        }
    }

    /// A store at `root` (e.g. on a loopback btrfs) instead of in a temp dir.
    pub fn on_root(root: PathBuf) -> Strata {
        Strata {
            dir: tempfile::tempdir().expect("temp dir"),
            root: Some(root),
            env: Vec::new(),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.root
            .clone()
            .unwrap_or_else(|| self.dir.path().join("root"))
    }

    /// Every command gets `key=value` in its environment.
    pub fn env(mut self, key: &str, value: &Path) -> Strata {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A directory of this instance's own (removed with it), e.g. for `DOCKER_CONFIG`.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).expect("scratch dir");
        p
    }

    pub fn bin() -> &'static Path {
        Path::new(env!("CARGO_BIN_EXE_strata"))
    }

    /// A `strata` command with `--root` set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(Self::bin());
        c.arg("--root").arg(self.root()).args(args);
        c.env_remove("STRATA_ROOT").env_remove("STRATA_LOG");
        // Never the machine's credentials or registry settings.
        c.env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env("STRATA_HOSTS_DIR", self.dir.path().join("hosts.d"));
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Starts `strata args` with a pipe for stdin and its output thrown away: for tests that
    /// feed or kill it as it runs.
    pub fn spawn_quiet(&self, args: &[&str]) -> std::process::Child {
        self.cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn strata")
    }

    /// Runs with `stdin` as input and returns the raw output, whatever the status.
    pub fn run_input(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strata");
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let feeder = std::thread::spawn(move || {
            // The command may fail before reading it all.
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait for strata");
        feeder.join().unwrap();
        out
    }

    /// Runs, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_input(args, b"")
    }

    pub fn ok_input(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run_input(args, stdin);
        assert!(
            out.status.success(),
            "strata {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs, asserts exit code 1, returns stderr.
    pub fn fails(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run_input(args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "strata {args:?}: expected exit 1, stderr: {stderr}"
        );
        stderr
    }

    /// Ingests `data` as a blob and returns its digest.
    pub fn ingest(&self, data: &[u8]) -> String {
        let digest = strata_testutil::sha256_digest(data);
        let size = data.len().to_string();
        let out = self.ok_input(
            &["content", "ingest", "--expected", &digest, "--size", &size],
            data,
        );
        assert_eq!(out.trim(), digest);
        digest
    }

    pub fn content_digests(&self) -> Vec<String> {
        self.ok(&["content", "ls", "-q"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The keys of every snapshot, as `snapshot ls -q` lists them.
    pub fn snapshot_keys(&self) -> Vec<String> {
        self.ok(&["snapshot", "ls", "-q"])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The chainIDs of an image's layers, bottom first.
pub fn chains(img: &strata_testutil::Image) -> Vec<String> {
    let config = img.config.as_json().unwrap();
    let diff_ids: Vec<strata_types::Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().parse().unwrap())
        .collect();
    (1..=diff_ids.len())
        .map(|i| strata_types::chain_id(&diff_ids[..i]).unwrap().to_string())
        .collect()
}

/// Deterministic incompressible bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A two-layer image for `arch`: a gzip base whose `etc/os` holds `text` (its own per `text`),
/// and a zstd top layer adding `hello` and deleting `etc/os` (the same in every image).
pub fn image(arch: &str, text: &str) -> strata_testutil::Image {
    use strata_testutil::{Compression, ImageBuilder, LayerBuilder};
    let base = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/os", text.as_bytes(), 0o644)
        .build(Compression::Gzip);
    let top = LayerBuilder::new()
        .file("hello", b"hi", 0o644)
        .whiteout("etc/os")
        .build(Compression::Zstd);
    ImageBuilder::new()
        .platform("linux", arch, (arch == "arm64").then_some("v8"))
        .layer(base)
        .layer(top)
        .build()
}

/// The realistic corpus (`../shared/corpus/build.sh rootfs images` into
/// `$STRATA_CORPUS_DIR`, default /var/tmp/strata-corpus), or `None` after saying why the test
/// skips; under `STRATA_TEST_REQUIRE_ROOT=1` a missing corpus fails the test instead.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(
        std::env::var("STRATA_CORPUS_DIR").unwrap_or_else(|_| "/var/tmp/strata-corpus".into()),
    );
    if dir.join("oci/python/index.json").exists() && dir.join("oci/multi/index.json").exists() {
        return Some(dir);
    }
    strata_testutil::skip(&format!(
        "needs the corpus: {} has no oci/python or oci/multi; \
         run ../shared/corpus/build.sh rootfs images",
        dir.display()
    ));
    None
}

/// `du -B1` of `dir`: blocks allocated, a hard-linked inode once.
pub fn du(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        total += std::fs::symlink_metadata(&d).unwrap().blocks() * 512;
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dirs.push(e.path());
            } else if m.nlink() < 2 || seen.insert(m.ino()) {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

/// A human size (`12.3MB`) back to bytes, roughly.
pub fn bytes(h: &str) -> f64 {
    let h = h.split(' ').next().unwrap();
    let (num, unit) = h.split_at(h.find(|c: char| c.is_ascii_alphabetic()).unwrap());
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("unit {other}"),
    };
    num.parse::<f64>().unwrap() * scale
}

/// `system df -v --format json`, and the image whose repository ends with `repo` in it.
pub struct DfVerbose(pub serde_json::Value);

impl DfVerbose {
    pub fn of(s: &Strata) -> DfVerbose {
        DfVerbose(serde_json::from_str(&s.ok(&["system", "df", "-v", "--format", "json"])).unwrap())
    }

    pub fn image(&self, repo: &str) -> serde_json::Value {
        self.0["Images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["Repository"].as_str().is_some_and(|r| r.ends_with(repo)))
            .unwrap_or_else(|| panic!("{repo} in {}", self.0))
            .clone()
    }
}

/// Runs `skopeo --insecure-policy ARGS…`, which must succeed; its stdout.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
