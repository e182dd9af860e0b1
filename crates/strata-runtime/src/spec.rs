//! The runtime spec (`config.json`) of a container: the image config plus the user's flags,
//! on Docker's default spec.
//!
//! Docker's defaults kept here: its mounts (`/proc`, `/dev`, `/dev/pts`, `/dev/shm` 64 MiB, `/dev/mqueue`, `/sys` and
//! `/sys/fs/cgroup` read-only), its masked and read-only paths, its device cgroup allow-list,
//! namespaces pid, ipc, uts, mount and — unless `--network host` — network (runc brings up
//! loopback in a new one; strata sets up no other networking), and `/etc/hostname`,
//! `/etc/hosts`, `/etc/resolv.conf` bind-mounted from files in the bundle. Capabilities,
//! seccomp, no-new-privileges, AppArmor and `--privileged` are [`crate::security`]'s.
//!
//! Users: `-u name|uid[:group|gid]` (else the image's `User`) resolves through the image's
//! `/etc/passwd` and `/etc/group`, read inside the root filesystem with
//! `openat2(RESOLVE_IN_ROOT)` so a hostile image's symlinked `/etc/passwd` never reads a
//! host file, and bounded to 1 MiB each.

use std::fs;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde_json::{Value, json};
use strata_types::oci::ImageConfig;

/// Docker's default `PATH` when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The mount option that makes a bind read-only recursively (runc ≥ 1.1, on
/// Linux ≥ 5.12).
pub const RECURSIVE_READ_ONLY: &str = "rro";

/// The most of `/etc/passwd` or `/etc/group` read.
const MAX_ID_FILE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// Docker's wording.
    #[error("No command specified")]
    NoCommand,
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("invalid mount destination {0:?}: it must be an absolute path")]
    Destination(String),
    #[error("the working directory '{0}' is invalid, it needs to be an absolute path")]
    Workdir(String),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("build the runtime spec")]
    Json(#[source] serde_json::Error),
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
}

/// `--network`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    /// The host's network namespace.
    Host,
    /// A private network namespace with loopback only.
    #[default]
    None,
}

/// A bind mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: String,
    pub access: BindAccess,
}

/// How a [`BindMount`] may be written. Read-only is always read-only all the way down (as
/// Docker 25+): a mount under the source (a tmpfs, another bind) is as read-only inside as
/// the source itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindAccess {
    ReadWrite,
    /// Made recursively read-only by the runtime's `rro` option; the caller makes sure the
    /// runtime knows it ([`crate::runc::Runtime::mount_options`]).
    ReadOnly,
    /// The source is already a recursively read-only mount tree that strata staged for a
    /// runtime without `rro` (`strata_mount::bind_read_only_recursive`); the runtime binds
    /// it `ro`, and the read-only flags of the mounts under it come along.
    ReadOnlyStaged,
}

impl BindAccess {
    pub fn is_read_only(self) -> bool {
        self != BindAccess::ReadWrite
    }
}

/// The user's flags that shape the spec.
#[derive(Debug, Clone, Default)]
pub struct SpecOptions {
    /// Arguments after the image (replace the image's Cmd).
    pub cmd: Vec<String>,
    /// `--entrypoint`: `Some(vec![])` clears the image's.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE`, in order; later ones win.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    pub open_stdin: bool,
    pub read_only: bool,
    pub network: Network,
    pub mounts: Vec<BindMount>,
    /// Capabilities, seccomp, no-new-privileges, AppArmor, `--privileged`.
    pub security: crate::security::Security,
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SpecError + use<> {
    let path = path.to_owned();
    move |source| SpecError::Io { what, path, source }
}

/// The spec for container `id` whose root filesystem is mounted at `rootfs`, writing the
/// files it bind-mounts (`hostname`, `hosts`, `resolv.conf`) into `bundle`.
pub fn build(
    id: &str,
    image: &ImageConfig,
    rootfs: &Path,
    bundle: &Path,
    opts: &SpecOptions,
) -> Result<Spec, SpecError> {
    let run = image.config.clone().unwrap_or_default();
    let (entrypoint, cmd) = match &opts.entrypoint {
        Some(e) => (e.clone(), opts.cmd.clone()),
        None if !opts.cmd.is_empty() => (run.entrypoint.clone(), opts.cmd.clone()),
        None => (run.entrypoint.clone(), run.cmd.clone()),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let hostname = opts
        .hostname
        .clone()
        .unwrap_or_else(|| id.get(..12).unwrap_or(id).to_owned());
    let user_spec = opts.user.clone().or(run.user.clone()).unwrap_or_default();
    let user = resolve_user(rootfs, &user_spec)?;
    let cwd = opts
        .workdir
        .clone()
        .or(run.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(SpecError::Workdir(cwd));
    }
    let mut env = vec![format!("HOSTNAME={hostname}")];
    env = merge_env(env, &run.env);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if opts.tty {
        env = merge_env(env, &["TERM=xterm".to_owned()]);
    }
    env = merge_env(env, &opts.env);
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }

    write_etc_files(bundle, &hostname, opts.network)?;
    let mut mounts = default_mounts();
    for (file, dest) in [
        ("hostname", "/etc/hostname"),
        ("hosts", "/etc/hosts"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        mounts.push(bind(&bundle.join(file), dest, BindAccess::ReadWrite));
    }
    let mut binds = opts.mounts.clone();
    for b in &binds {
        if !b.destination.starts_with('/') {
            return Err(SpecError::Destination(b.destination.clone()));
        }
    }
    // Parents before children, as Docker sorts mounts.
    binds.sort_by_key(|b| Path::new(&b.destination).components().count());
    mounts.extend(
        binds
            .iter()
            .map(|b| bind(&b.source, &b.destination, b.access)),
    );

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if opts.network == Network::None {
        namespaces.push(json!({"type": "network"}));
    }
    let mut v = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": opts.tty,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
            "args": args,
            "env": env,
            "cwd": cwd,
            "oomScoreAdj": 0,
        },
        "root": {"path": rootfs, "readonly": opts.read_only},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": format!("/strata/{id}"),
            "namespaces": namespaces,
            "resources": {"devices": device_rules()},
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    });
    opts.security.apply(&mut v)?;
    serde_json::from_value(v).map_err(SpecError::Json)
}

fn bind(source: &Path, destination: &str, access: BindAccess) -> Value {
    let mut options = vec!["rbind", "rprivate"];
    match access {
        BindAccess::ReadWrite => {}
        BindAccess::ReadOnly => options.extend(["ro", RECURSIVE_READ_ONLY]),
        BindAccess::ReadOnlyStaged => options.push("ro"),
    }
    json!({"destination": destination, "type": "bind", "source": source, "options": options})
}

fn default_mounts() -> Vec<Value> {
    let m = |dest: &str, typ: &str, options: &[&str]| json!({"destination": dest, "type": typ, "source": typ, "options": options});
    vec![
        m("/proc", "proc", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        m(
            "/dev/pts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        m("/sys", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        m(
            "/sys/fs/cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        m("/dev/mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}),
    ]
}

/// Docker's device cgroup rules: deny everything, then mknod of any device and the usual
/// character devices (null, zero, full, random, urandom, tty, console, ptmx, pts, tun).
fn device_rules() -> Vec<Value> {
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    rules.push(json!({"allow": true, "type": "c", "access": "m"}));
    rules.push(json!({"allow": true, "type": "b", "access": "m"}));
    for (major, minor) in [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(1)),
        (5, Some(2)),
        (136, None),
        (10, Some(200)),
    ] {
        let mut r = json!({"allow": true, "type": "c", "major": major, "access": "rwm"});
        if let Some(minor) = minor {
            r["minor"] = json!(minor);
        }
        rules.push(r);
    }
    rules
}

/// `base` then `extra`, a later `KEY=` replacing an earlier one in place.
fn merge_env(mut base: Vec<String>, extra: &[String]) -> Vec<String> {
    for e in extra {
        let key = e.split('=').next().unwrap_or(e);
        match base.iter_mut().find(|b| b.split('=').next() == Some(key)) {
            Some(slot) => *slot = e.clone(),
            None => base.push(e.clone()),
        }
    }
    base
}

/// `hostname`, `hosts`, `resolv.conf` for the bind mounts: with the host's network, the
/// host's hosts and resolv.conf; otherwise localhost entries and the host's resolv.conf.
fn write_etc_files(bundle: &Path, hostname: &str, network: Network) -> Result<(), SpecError> {
    let hosts = match network {
        Network::Host => fs::read_to_string("/etc/hosts").unwrap_or_default(),
        Network::None => format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        ),
    };
    let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for (name, text) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ] {
        write_atomic(&bundle.join(name), text.as_bytes())?;
    }
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SpecError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    crate::files::write_atomic(path, bytes, crate::files::mode_of(&name))
        .map_err(io_err("write", path))
}

/// Writes `bundle/config.json` atomically.
pub fn write(bundle: &Path, spec: &Spec) -> Result<(), SpecError> {
    let bytes = serde_json::to_vec_pretty(spec).map_err(SpecError::Json)?;
    write_atomic(&bundle.join("config.json"), &bytes)
}

/// Gives a privileged container the host's devices as they are now, in `bundle/config.json`:
/// its spec is written at `create`, but Docker builds a container's spec at each start, so
/// a device plugged in (or removed) since shows (or goes) at the next start.
pub fn refresh_host_devices(bundle: &Path) -> Result<(), SpecError> {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).map_err(io_err("read", &path))?;
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).map_err(SpecError::Json)?;
    v["linux"]["devices"] = crate::security::host_devices_json()?;
    let bytes = serde_json::to_vec_pretty(&v).map_err(SpecError::Json)?;
    write_atomic(&path, &bytes)
}

/// The process of an `exec`: `base`'s (env, cwd, user, capabilities) with these arguments,
/// extra environment, and `-w`/`-u`/`-t` when given.
pub fn exec_process(
    base: &Spec,
    rootfs: &Path,
    args: Vec<String>,
    env: &[String],
    workdir: Option<&str>,
    user: Option<&str>,
    tty: bool,
) -> Result<Process, SpecError> {
    let mut v = serde_json::to_value(base.process().clone().unwrap_or_default())
        .map_err(SpecError::Json)?;
    let base_env: Vec<String> = serde_json::from_value(v["env"].clone()).unwrap_or_default();
    let mut env = merge_env(base_env, env);
    if tty {
        env = merge_env(env, &["TERM=xterm".to_owned()]);
    }
    v["args"] = json!(args);
    v["env"] = json!(env);
    v["terminal"] = json!(tty);
    if let Some(w) = workdir {
        if !w.starts_with('/') {
            return Err(SpecError::Workdir(w.to_owned()));
        }
        v["cwd"] = json!(w);
    }
    if let Some(u) = user {
        let user = resolve_user(rootfs, u)?;
        v["user"] =
            json!({"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids});
    }
    serde_json::from_value(v).map_err(SpecError::Json)
}

/// A resolved `-u`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) as Docker does: names
/// must exist in the image's files, numbers need not; supplementary groups are the groups
/// of `/etc/group` that list the user.
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<User, SpecError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let passwd = read_in_root(rootfs, "etc/passwd")?;
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| {
            f.len() >= 7
                && (f[0] == user_part || (user_part.parse::<u32>().is_ok() && f[2] == user_part))
        });
    let (uid, mut gid, name, home) = match (&entry, user_part.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse()
                .map_err(|_| SpecError::NoUser(user_part.to_owned()))?,
            f[3].parse().unwrap_or(0),
            Some(f[0].to_owned()),
            f[5].to_owned(),
        ),
        (None, Ok(uid)) => (uid, 0, None, "/".to_owned()),
        (None, Err(_)) => return Err(SpecError::NoUser(user_part.to_owned())),
    };
    let group_file = read_in_root(rootfs, "etc/group")?;
    let groups: Vec<Vec<&str>> = group_file
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = group_part {
        gid = match groups.iter().find(|f| f[0] == g || f[2] == g) {
            Some(f) => f[2].parse().map_err(|_| SpecError::NoGroup(g.to_owned()))?,
            None => g.parse().map_err(|_| SpecError::NoGroup(g.to_owned()))?,
        };
    }
    let mut additional_gids = Vec::new();
    if group_part.is_none()
        && let Some(name) = &name
    {
        for f in &groups {
            if f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse::<u32>()
                && g != gid
                && !additional_gids.contains(&g)
            {
                additional_gids.push(g);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// `rel` inside `rootfs`, symlinks resolved as if `rootfs` were `/`; a missing file is empty.
fn read_in_root(rootfs: &Path, rel: &str) -> Result<String, SpecError> {
    let root: OwnedFd = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open root filesystem", rootfs)(e.into()))?;
    let open = || {
        rustix::fs::openat2(
            &root,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
        )
    };
    // EAGAIN: a rename or mount elsewhere on the system raced the scoped lookup; try again.
    let mut result = open();
    for _ in 0..1000 {
        if !matches!(result, Err(rustix::io::Errno::AGAIN)) {
            break;
        }
        result = open();
    }
    let fd = match result {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(String::new()),
        Err(e) => return Err(io_err("open", &rootfs.join(rel))(e.into())),
    };
    let mut text = String::new();
    fs::File::from(fd)
        .take(MAX_ID_FILE)
        .read_to_string(&mut text)
        .map_err(io_err("read", &rootfs.join(rel)))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_binds_ask_the_runtime_for_rro_unless_staged() {
        let options = |a| bind(Path::new("/src"), "/dst", a)["options"].clone();
        assert_eq!(options(BindAccess::ReadWrite), json!(["rbind", "rprivate"]));
        assert_eq!(
            options(BindAccess::ReadOnly),
            json!(["rbind", "rprivate", "ro", "rro"])
        );
        assert_eq!(
            options(BindAccess::ReadOnlyStaged),
            json!(["rbind", "rprivate", "ro"])
        );
    }
}
