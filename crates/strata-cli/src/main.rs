//! `strata`, the command line: Docker-shaped names, flags, columns and `--format`, as a thin
//! client of the engine (crate `strata-engine`).
//!
//! Exit codes (also in docs/CLI.md): 0 success; 1 the command failed (the message says why);
//! 2 the command line is wrong (unknown flag, missing argument). `run`, `start -a`, `exec`
//! add Docker's: the container's own status; 125 strata failed; 126 the command cannot be
//! invoked; 127 the command was not found.

#![forbid(unsafe_code)]

mod container;
mod container_fs;
mod container_ops;
mod content;
mod df;
mod fsck;
mod image;
mod image_info;
mod image_ops;
mod image_tree;
mod import;
mod load;
mod login;
mod migrate;
mod output;
mod progress;
mod ps;
mod pull;
mod push;
mod save;
mod security_opts;
mod settings;
mod snapshot;
mod system;
mod timefmt;
mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use strata_engine::store::DEFAULT_ROOT;
use strata_engine::{Engine, EngineOptions};

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    ", build ",
    env!("STRATA_GIT_COMMIT")
);

/// strata: a container image store.
#[derive(Debug, Parser)]
#[command(name = "strata", version = LONG_VERSION, disable_help_subcommand = true, max_term_width = 100)]
pub struct Cli {
    /// Root directory of the store.
    #[arg(long, global = true, env = "STRATA_ROOT", default_value = DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    /// Snapshotter that unpacks layers and makes container layers (overlayfs, native, btrfs).
    #[arg(
        long,
        global = true,
        env = "STRATA_SNAPSHOTTER",
        default_value = "overlayfs",
        value_name = "NAME"
    )]
    snapshotter: String,
    /// Enable debug output (same as --log-level debug).
    #[arg(short = 'D', long, global = true)]
    debug: bool,
    /// Set the logging level.
    #[arg(short = 'l', long, global = true, value_enum, default_value_t = LogLevel::Warn)]
    log_level: LogLevel,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Display system-wide information.
    Info(system::InfoArgs),
    /// Show the strata version information.
    Version(system::VersionArgs),
    /// Load images from a tar archive or an OCI layout directory.
    Load(load::LoadArgs),
    /// Create an image from a root filesystem tarball.
    Import(import::ImportArgs),
    /// Save images to a tar archive (streamed to STDOUT by default).
    Save(save::SaveArgs),
    /// Bring in the images of Docker's classic overlay2 store (never modified), without the network.
    Migrate(migrate::MigrateArgs),
    /// Download an image from a registry and unpack it.
    Pull(pull::PullArgs),
    #[command(flatten)]
    Images(image::TopLevel),
    #[command(flatten)]
    Containers(Box<container::TopLevel>),
    /// Manage the store as a whole.
    #[command(subcommand)]
    System(SystemCommand),
    /// Check the store: database against files; --repair fixes what it finds.
    Fsck(fsck::FsckArgs),
    /// Low-level access to the content store (blobs by digest), like `ctr content`.
    #[command(subcommand)]
    Content(content::ContentCommand),
    /// Upload an image to a registry.
    Push(push::PushArgs),
    /// Log in to a registry.
    Login(login::LoginArgs),
    /// Log out from a registry.
    Logout(login::LogoutArgs),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Low-level access to the snapshotter (unpacked layers, writable layers), like `ctr snapshot`.
    #[command(subcommand, visible_alias = "snapshots")]
    Snapshot(snapshot::SnapshotCommand),
}

#[derive(Debug, Subcommand)]
enum SystemCommand {
    /// Display system-wide information.
    Info(system::InfoArgs),
    /// Show disk usage: images, containers, volumes (shared layers counted once).
    Df(df::DfArgs),
    /// Remove unused data: dangling images (-a: every unused image), then everything no
    /// image, container or live lease needs.
    Prune(image_ops::PruneArgs),
    /// Show or change the store's settings (`discard-compressed`).
    Settings(settings::SettingsArgs),
}

/// Parses the command line, runs the command and turns its outcome into an exit code.
fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ExitStatus>().is_some() => {
            ExitCode::from(e.downcast_ref::<ExitStatus>().map_or(1, |s| s.0))
        }
        Err(e) if e.downcast_ref::<Failed>().is_some() => {
            report(&cli.root, &e);
            ExitCode::from(e.downcast_ref::<Failed>().map_or(125, |f| f.code))
        }
        Err(e) => {
            report(&cli.root, &e);
            ExitCode::FAILURE
        }
    }
}

/// One line: what failed, then each cause, as `a: b: c`; on a full disk, a second one that
/// says how to free space.
fn report(root: &std::path::Path, e: &anyhow::Error) {
    eprintln!("strata: {e:#}");
    if strata_engine::space::is_out_of_space(e.as_ref()) {
        eprintln!("strata: {}", strata_engine::space::out_of_space_hint(root));
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let open = || Engine::open(engine_options(cli));
    match &cli.command {
        Command::Info(args) | Command::System(SystemCommand::Info(args)) => {
            system::info(open()?.store(), cli.debug, args)
        }
        Command::System(SystemCommand::Df(args)) => df::df(open()?.store(), args),
        Command::Fsck(args) => fsck::run(open()?.store(), args),
        Command::System(SystemCommand::Prune(args)) => image_ops::system_prune(&open()?, args),
        Command::System(SystemCommand::Settings(args)) => settings::run(open()?.store(), args),
        Command::Version(args) => system::version(args),
        Command::Content(cmd) => content::run(open()?.store(), cmd),
        Command::Load(args) => load::run(open()?.store(), args),
        Command::Migrate(args) => migrate::run(open()?.store(), args),
        Command::Save(args) => save::run(open()?.store(), args),
        Command::Import(args) => import::run(open()?.store(), args),
        Command::Pull(args) => pull::run(&open()?, args),
        Command::Images(cmd) => image::run(&open()?, cmd),
        Command::Containers(cmd) => container::run(&open().map_err(Failed::docker)?, cmd),
        Command::Snapshot(cmd) => snapshot::run(open()?.store(), cmd),
        Command::Volume(cmd) => volume::run(open()?.store(), cmd),
        Command::Push(args) => push::run(&open()?, args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
    }
}

/// The engine the global flags describe; this binary is the containers' monitor.
fn engine_options(cli: &Cli) -> EngineOptions {
    let mut opts = EngineOptions::new(&cli.root);
    opts.snapshotter.clone_from(&cli.snapshotter);
    // Without /proc, `strata` from the PATH.
    if let Ok(exe) = std::env::current_exe() {
        opts.monitor_exe = exe;
    }
    opts.lease_expiry = lease_expiry();
    opts.sync_commits = sync_commits(std::env::var(SYNC_ENV).ok().as_deref());
    opts.hosts_dir = hosts_dir_env();
    opts
}

/// Turns off writing each layer back to disk before its commit is recorded (`0`/`false`):
/// faster pulls, at the price of layers a power loss can leave recorded but empty. See
/// docs/ARCHITECTURE.md, "Power loss".
const SYNC_ENV: &str = "STRATA_SYNC_COMMITS";

/// Whether a `STRATA_SYNC_COMMITS` value (or its absence) asks for synced commits.
fn sync_commits(value: Option<&str>) -> bool {
    !matches!(
        value.map(str::to_ascii_lowercase).as_deref(),
        Some("0" | "false" | "no" | "off")
    )
}

/// `$STRATA_HOSTS_DIR`: where per-registry host configuration is read from instead of
/// `/etc/strata/certs.d`.
fn hosts_dir_env() -> Option<PathBuf> {
    std::env::var_os("STRATA_HOSTS_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// The registry client of a command that opens no store (`login`, `logout`).
fn remote_without_store() -> anyhow::Result<strata_remote::Remote> {
    let opts = strata_remote::RemoteOptions {
        hosts_dir: hosts_dir_env().or_else(strata_engine::runtime::default_hosts_dir),
        ..strata_remote::RemoteOptions::default()
    };
    Ok(strata_engine::runtime::remote_with(opts)?)
}

/// The environment variable that sets how long the leases of pull, load and the other
/// operations that protect unfinished work last.
const LEASE_EXPIRY_ENV: &str = "STRATA_LEASE_EXPIRY";

/// `$STRATA_LEASE_EXPIRY` (a Go-style duration: `24h`, `90m`, `30s`, `1h30m`, `500ms`) when
/// set and valid; `None`: each operation's default.
fn lease_expiry() -> Option<std::time::Duration> {
    let v = std::env::var(LEASE_EXPIRY_ENV).ok()?;
    let expiry = strata_types::parse_duration(&v);
    if expiry.is_none() {
        tracing::warn!(
            "{LEASE_EXPIRY_ENV}={v:?} is not a duration (e.g. 24h, 30m, 10s); using the default"
        );
    }
    expiry
}

/// A command's own exit status (`run`, `start -a`, `exec`): nothing more is printed.
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
struct ExitStatus(u8);

/// A failure with a Docker exit code of its own (`run`: 125, 126, 127).
#[derive(Debug, thiserror::Error)]
#[error("{inner:#}")]
struct Failed {
    code: u8,
    inner: anyhow::Error,
}

impl Failed {
    fn new(code: i32, inner: anyhow::Error) -> Failed {
        Failed {
            code: u8::try_from(code).unwrap_or(125),
            inner,
        }
    }

    /// Docker's 125: strata itself failed (not the container's command).
    fn docker(source: impl Into<anyhow::Error>) -> anyhow::Error {
        let source = source.into();
        if source.downcast_ref::<Failed>().is_some()
            || source.downcast_ref::<ExitStatus>().is_some()
        {
            return source;
        }
        Failed::new(125, source).into()
    }
}

fn init_logging(cli: &Cli) {
    let level = match (cli.debug, cli.log_level) {
        (true, _) | (_, LogLevel::Debug) => "debug",
        (_, LogLevel::Info) => "info",
        (_, LogLevel::Warn) => "warn",
        (_, LogLevel::Error | LogLevel::Fatal) => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Fails with a one-line explanation when the process is not root.
fn need_root(what: &str) -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        anyhow::bail!("{what} needs root: mounting is privileged (run it as root)");
    }
    Ok(())
}

/// Labels as Docker's list commands print them: `k1=v1,k2=v2`.
fn labels_string(labels: &strata_metadata::Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `KEY=VALUE` sets a label; `KEY=` or `KEY` alone removes it.
fn parse_labels(args: &[String]) -> strata_metadata::Labels {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (a.clone(), String::new()),
        })
        .collect()
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_synced_unless_the_setting_says_not() {
        assert!(sync_commits(None));
        for off in ["0", "false", "OFF", "no"] {
            assert!(!sync_commits(Some(off)), "{off}");
        }
        assert!(sync_commits(Some("1")));
    }
}
