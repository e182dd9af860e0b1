//! `strata info` and `strata version`.

use std::env;
use std::fs;
use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use strata_format::bytes_size;

use super::output::print_inspect;
use strata_engine::store::Store;

/// OCI runtimes strata can drive, in order of preference.
const RUNTIMES: &[&str] = &["runc", "crun"];

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Format output using a Go template, or json.
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Format output using a Go template, or json.
    #[arg(short, long)]
    format: Option<String>,
}

/// The architecture as OCI and Docker name it.
pub fn go_arch() -> &'static str {
    match env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn client_version() -> Value {
    json!({
        "Platform": { "Name": "strata" },
        "Version": env!("CARGO_PKG_VERSION"),
        "GitCommit": env!("STRATA_GIT_COMMIT"),
        "RustVersion": env!("STRATA_RUSTC_VERSION"),
        "Os": env::consts::OS,
        "Arch": go_arch(),
    })
}

pub fn version(args: &VersionArgs) -> anyhow::Result<()> {
    let uname = rustix::system::uname();
    let v = json!({
        "Client": client_version(),
        // strata has no daemon: the "server" is the same binary, on this machine.
        "Server": {
            "Version": env!("CARGO_PKG_VERSION"),
            "GitCommit": env!("STRATA_GIT_COMMIT"),
            "Os": env::consts::OS,
            "Arch": go_arch(),
            "KernelVersion": uname.release().to_string_lossy(),
        },
    });
    if args.format.is_some() {
        return print_inspect(&[v], args.format.as_deref());
    }
    let c = &v["Client"];
    println!("Client:");
    println!(
        " Version:           {}",
        c["Version"].as_str().unwrap_or_default()
    );
    println!(
        " Rust version:      {}",
        c["RustVersion"].as_str().unwrap_or_default()
    );
    println!(
        " Git commit:        {}",
        c["GitCommit"].as_str().unwrap_or_default()
    );
    println!(" OS/Arch:           {}/{}", env::consts::OS, go_arch());
    println!(" Daemonless:        true");
    Ok(())
}

/// Finds an executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(name)).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn os_name() -> String {
    fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "Linux".to_owned())
}

fn mem_total() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Docker's `SecurityOptions`: the confinement every container gets unless its flags say
/// otherwise (no cgroup namespace, user namespace or rootless mode here).
fn security_options() -> Vec<String> {
    let mut v = Vec::new();
    if strata_runtime::security::apparmor_enabled() {
        v.push("name=apparmor".to_owned());
    }
    if strata_runtime::seccomp::kernel_supports_seccomp() {
        v.push("name=seccomp,profile=builtin".to_owned());
    }
    v
}

/// As Docker's CLI prints them (`seccomp` then `Profile: builtin`), and whether AppArmor is
/// there at all.
fn print_security_options() {
    println!(" Security Options:");
    for opt in security_options() {
        let mut parts = opt.split(',').filter_map(|kv| kv.split_once('='));
        if let Some((_, name)) = parts.next() {
            println!("  {name}");
        }
        for (k, v) in parts {
            let mut c = k.chars();
            let key: String = c
                .next()
                .map(|f| f.to_ascii_uppercase())
                .into_iter()
                .chain(c)
                .collect();
            println!("   {key}: {v}");
        }
    }
    if strata_runtime::security::apparmor_enabled() {
        println!(
            "  (apparmor: containers run under {} unless --security-opt apparmor=NAME names another)",
            strata_runtime::apparmor::DEFAULT_PROFILE
        );
    } else {
        println!(
            "  (apparmor: absent, not enabled in this kernel; containers run without an AppArmor profile)"
        );
    }
}

pub fn info(store: &Store, debug: bool, args: &InfoArgs) -> anyhow::Result<()> {
    let (images, ids) = store.db().read(|tx| {
        Ok((
            tx.count_images()?,
            tx.containers()?
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>(),
        ))
    })?;
    let containers = ids.len();
    let running = ids
        .iter()
        .filter(|id| {
            strata_runtime::state::monitor_alive(&strata_engine::containers::dir(store.root(), id))
        })
        .count();
    let runtimes: serde_json::Map<String, Value> = RUNTIMES
        .iter()
        .filter_map(|r| which(r).map(|p| ((*r).to_owned(), json!({ "path": p }))))
        .collect();
    // What `run` uses unless `--runtime` says otherwise.
    let default_runtime = std::env::var("STRATA_RUNTIME").unwrap_or_else(|_| "runc".to_owned());
    let uname = rustix::system::uname();
    let v = json!({
        "Containers": containers,
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": containers - running,
        "Images": images,
        "Driver": store.snapshotter_name(),
        "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
        "DockerRootDir": store.root(),
        "Debug": debug,
        "KernelVersion": uname.release().to_string_lossy(),
        "OperatingSystem": os_name(),
        "OSType": env::consts::OS,
        "Architecture": uname.machine().to_string_lossy(),
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": mem_total(),
        "Name": uname.nodename().to_string_lossy(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": runtimes,
        "DefaultRuntime": default_runtime,
        "SecurityOptions": security_options(),
        "MetadataSchemaVersion": store.db().schema_version()?,
        "ClientInfo": client_version(),
    });
    if args.format.is_some() {
        return print_inspect(&[v], args.format.as_deref());
    }
    let s = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(" Context:    daemonless");
    println!();
    println!("Server:");
    println!(" Containers: {}", s("Containers"));
    println!("  Running: {}", s("ContainersRunning"));
    println!("  Paused: {}", s("ContainersPaused"));
    println!("  Stopped: {}", s("ContainersStopped"));
    println!(" Images: {}", s("Images"));
    println!(" Server Version: {}", s("ServerVersion"));
    println!(" Storage Driver: {}", s("Driver"));
    println!("  driver-type: io.containerd.snapshotter.v1");
    let names: Vec<&str> = runtimes.keys().map(String::as_str).collect();
    println!(
        " Runtimes: {}",
        if names.is_empty() {
            "none found on PATH (install runc)".to_owned()
        } else {
            names.join(" ")
        }
    );
    let version =
        strata_runtime::runc::Runtime::find(&default_runtime, &store.root().join("runtime"))
            .and_then(|r| r.version())
            .map_or_else(|e| format!(" ({e})"), |v| format!(" ({v})"));
    println!(" Default Runtime: {default_runtime}{version}");
    print_security_options();
    println!(" Kernel Version: {}", s("KernelVersion"));
    println!(" Operating System: {}", s("OperatingSystem"));
    println!(" OSType: {}", s("OSType"));
    println!(" Architecture: {}", s("Architecture"));
    println!(" CPUs: {}", s("NCPU"));
    println!(" Total Memory: {}", bytes_size(mem_total() as f64));
    println!(" Name: {}", s("Name"));
    println!(" Strata Root Dir: {}", store.root().display());
    println!(" Metadata Schema Version: {}", s("MetadataSchemaVersion"));
    println!(" Debug Mode: {debug}");
    Ok(())
}
