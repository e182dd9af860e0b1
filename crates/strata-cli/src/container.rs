//! Container commands: `create`, `run`, `start` and the `container` group; the others are in
//! `container_ops.rs` (stop, kill, wait, logs, rm, exec, prune) and `ps.rs` (ps, inspect).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{ArgAction, Args, Subcommand};
use strata_metadata::ContainerRecord;
use strata_remote::Reference;
use strata_runtime::logs::LogConfig;
use strata_runtime::spec::{Network, SpecOptions};

use super::container_fs::{CommitArgs, CpArgs, DiffArgs, ExportArgs};
use super::container_ops::{ExecArgs, KillArgs, LogsArgs, PruneArgs, RmArgs, StopArgs, WaitArgs};
use super::ps::{InspectArgs, PsArgs};
use super::{ExitStatus, Failed};
use strata_engine::containers::create::CreateOptions;
use strata_engine::containers::lifecycle::{self, Started};
use strata_engine::containers::{ContainerError, lookup};
use strata_engine::pull::PullOptions;
use strata_engine::store::Store;
use strata_engine::{Engine, EngineError, PullPolicy};

/// The container commands reachable at the top level, as Docker has them.
#[derive(Debug, Subcommand)]
pub enum TopLevel {
    /// Create and run a new container from an image.
    Run(RunArgs),
    /// Create a new container.
    Create(CreateArgs),
    /// Start one or more stopped containers.
    Start(StartArgs),
    /// Stop one or more running containers.
    Stop(StopArgs),
    /// Kill one or more running containers.
    Kill(KillArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(WaitArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Remove one or more containers.
    Rm(RmArgs),
    /// Execute a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    Ps(PsArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(DiffArgs),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Export a container's filesystem as a tar archive.
    Export(ExportArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(CpArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// The per-container monitor (started by `run -d` and `start`; not for direct use).
    #[command(hide = true)]
    ContainerMonitor(MonitorArgs),
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    Run(RunArgs),
    Create(CreateArgs),
    Start(StartArgs),
    Stop(StopArgs),
    Kill(KillArgs),
    Wait(WaitArgs),
    Logs(LogsArgs),
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    Exec(ExecArgs),
    /// List containers.
    #[command(visible_aliases = ["list", "ps"])]
    Ls(PsArgs),
    /// Display detailed information on one or more containers.
    Inspect(InspectArgs),
    /// Remove all stopped containers.
    Prune(PruneArgs),
    Diff(DiffArgs),
    Commit(CommitArgs),
    Export(ExportArgs),
    Cp(CpArgs),
}

pub fn run(engine: &Engine, cmd: &TopLevel) -> anyhow::Result<()> {
    use ContainerCommand as C;
    use TopLevel as T;
    let store = engine.store();
    match cmd {
        T::Run(a) | T::Container(C::Run(a)) => run_container(engine, a),
        T::Create(a) | T::Container(C::Create(a)) => create_cmd(engine, a),
        T::Start(a) | T::Container(C::Start(a)) => start_cmd(engine, a),
        T::Stop(a) | T::Container(C::Stop(a)) => super::container_ops::stop(store, a),
        T::Kill(a) | T::Container(C::Kill(a)) => super::container_ops::kill(store, a),
        T::Wait(a) | T::Container(C::Wait(a)) => super::container_ops::wait(store, a),
        T::Logs(a) | T::Container(C::Logs(a)) => super::container_ops::logs(store, a),
        T::Rm(a) | T::Container(C::Rm(a)) => super::container_ops::rm(store, a),
        T::Exec(a) | T::Container(C::Exec(a)) => super::container_ops::exec(engine, a),
        T::Ps(a) | T::Container(C::Ls(a)) => super::ps::ps(store, a),
        T::Container(C::Inspect(a)) => super::ps::inspect(store, a),
        T::Container(C::Prune(a)) => super::container_ops::prune(engine, a),
        T::Diff(a) | T::Container(C::Diff(a)) => super::container_fs::diff(store, a),
        T::Commit(a) | T::Container(C::Commit(a)) => super::container_fs::commit_cmd(store, a),
        T::Export(a) | T::Container(C::Export(a)) => super::container_fs::export(store, a),
        T::Cp(a) | T::Container(C::Cp(a)) => super::container_fs::cp(store, a),
        T::ContainerMonitor(a) => monitor(store, a),
    }
}

/// `create` flags (also `run`'s). `-h` is `--hostname`, as Docker; help is `--help`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Assign a name to the container.
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to take the value from this environment).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image ("" clears it).
    #[arg(long, value_name = "COMMAND")]
    entrypoint: Option<String>,
    /// Bind mount a host directory or mount a volume: HOST-DIR:CTR-DIR[:ro], NAME:CTR-DIR[:ro,nocopy], or CTR-DIR alone (anonymous volume).
    #[arg(short = 'v', long = "volume", value_name = "[SRC:]DST[:OPTS]")]
    volume: Vec<String>,
    /// Attach a filesystem mount: type=bind|volume,source=…,target=…[,readonly][,volume-nocopy].
    #[arg(long = "mount", value_name = "MOUNT")]
    mount: Vec<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long)]
    read_only: bool,
    /// Give extended privileges to this container (all capabilities and host devices, no seccomp filter, no masked paths).
    #[arg(long)]
    privileged: bool,
    /// Add Linux capabilities (NAME, CAP_NAME or ALL).
    #[arg(long = "cap-add", value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities (NAME, CAP_NAME or ALL).
    #[arg(long = "cap-drop", value_name = "CAP")]
    cap_drop: Vec<String>,
    /// Security options: seccomp=unconfined|builtin|FILE, no-new-privileges[=true|false], apparmor=PROFILE.
    #[arg(long = "security-opt", value_name = "OPT")]
    security_opt: Vec<String>,
    /// Container host name (default: the short container ID).
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    tty: bool,
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Network: none (a private network namespace with loopback only, the default) or host.
    #[arg(
        long,
        visible_alias = "net",
        default_value = "none",
        value_name = "MODE"
    )]
    network: String,
    /// Automatically remove the container and its anonymous volumes when it exits.
    #[arg(long)]
    rm: bool,
    /// Set metadata on a container.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// OCI runtime to use for this container (found on the PATH).
    #[arg(
        long,
        env = "STRATA_RUNTIME",
        default_value = "runc",
        value_name = "NAME"
    )]
    runtime: String,
    /// Logging driver for the container: json-file or none (default: the store's `log-driver` setting).
    #[arg(long, value_name = "DRIVER")]
    log_driver: Option<String>,
    /// Log driver options: max-size=SIZE (k, m, g), max-file=N, compress=true|false (over the store's `log-opts` setting).
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    log_opt: Vec<String>,
    /// Pull image before running ("always", "missing", "never").
    #[arg(long, default_value = "missing", value_name = "POLICY")]
    pull: String,
    /// Suppress the pull output.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    args: Vec<String>,
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run the container in the background and print its ID.
    #[arg(short = 'd', long)]
    detach: bool,
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals.
    #[arg(short = 'a', long)]
    attach: bool,
    /// Attach the container's STDIN.
    #[arg(short = 'i', long)]
    interactive: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Monitor an `exec -d` process (read as JSON from stdin) instead of the container.
    #[arg(long)]
    exec: bool,
    id: String,
}

fn create_cmd(engine: &Engine, args: &CreateArgs) -> anyhow::Result<()> {
    let record = create_from_flags(engine, args).map_err(Failed::docker)?;
    println!("{}", record.id);
    Ok(())
}

fn run_container(engine: &Engine, args: &RunArgs) -> anyhow::Result<()> {
    let record = create_from_flags(engine, &args.create).map_err(Failed::docker)?;
    match engine
        .start_record(&record, !args.detach)
        .map_err(start_failure)?
    {
        Started::Detached(_) => {
            println!("{}", record.id);
            Ok(())
        }
        Started::Exited(state) => exit_with(state.exit_code.unwrap_or(0)),
    }
}

fn start_cmd(engine: &Engine, args: &StartArgs) -> anyhow::Result<()> {
    if args.attach || args.interactive {
        if args.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let record = engine.container(&args.containers[0])?;
        return match engine.start_record(&record, true).map_err(start_failure)? {
            Started::Exited(state) => exit_with(state.exit_code.unwrap_or(0)),
            Started::Detached(_) => Ok(()),
        };
    }
    super::container_ops::each(engine.store(), &args.containers, |_, record| {
        match engine.start_record(record, false) {
            Ok(_) | Err(EngineError::Container(ContainerError::AlreadyRunning(_))) => Ok(()),
            Err(e) => Err(start_failure(e)),
        }
    })
}

/// A start failure with Docker's exit code: 127 command not found, 126 not executable,
/// 125 anything else.
fn start_failure(e: EngineError) -> anyhow::Error {
    let code = match &e {
        EngineError::Container(ContainerError::Runtime(r)) => r.exit_code(),
        _ => 125,
    };
    Failed::new(code, e.into()).into()
}

fn exit_with(code: i32) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    Err(ExitStatus(u8::try_from(code).unwrap_or(255)).into())
}

/// `create`: resolves (and, per `--pull`, pulls) the image, then makes the container.
fn create_from_flags(engine: &Engine, args: &CreateArgs) -> anyhow::Result<ContainerRecord> {
    let (image, cmd) = args
        .args
        .split_first()
        .context("\"create\" requires at least 1 argument")?;
    let opts = create_options(args, image, cmd)?;
    let policy: PullPolicy = args.pull.parse().map_err(anyhow::Error::msg)?;
    let resolved = match engine.image_for_container(image, policy)? {
        Some(resolved) => resolved,
        None => {
            if policy == PullPolicy::Missing {
                let shown =
                    Reference::parse(image).map_or_else(|_| image.clone(), |r| r.familiar());
                eprintln!("Unable to find image '{shown}' locally");
            }
            let reference = Reference::parse(image)
                .with_context(|| format!("invalid reference format: {image}"))?;
            super::pull::pull_with(
                engine,
                &reference,
                &PullOptions::default(),
                args.quiet,
                true,
            )?;
            engine
                .image_for_container(image, PullPolicy::Never)?
                .context("the image is missing after its pull")?
        }
    };
    Ok(engine.create_from(&resolved, &opts)?)
}

fn create_options(args: &CreateArgs, image: &str, cmd: &[String]) -> anyhow::Result<CreateOptions> {
    let network = match args.network.as_str() {
        "none" => Network::None,
        "host" => Network::Host,
        other => bail!(
            "network {other:?} is not supported: strata sets up no container networking; use --network none (loopback only) or --network host"
        ),
    };
    let mut env = Vec::new();
    for file in &args.env_file {
        env.extend(read_env_file(file)?);
    }
    env.extend(args.env.iter().filter_map(|e| expand_env(e)));
    let mut mounts = Vec::new();
    for v in &args.volume {
        mounts.push(strata_engine::volumes::parse_volume_flag(v)?);
    }
    for m in &args.mount {
        mounts.push(strata_engine::volumes::parse_mount_flag(m)?);
    }
    Ok(CreateOptions {
        name: args.name.clone(),
        image: image.to_owned(),
        runtime: args.runtime.clone(),
        auto_remove: args.rm,
        spec: SpecOptions {
            cmd: cmd.to_vec(),
            entrypoint: args.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    Vec::new()
                } else {
                    vec![e.clone()]
                }
            }),
            env,
            workdir: args.workdir.clone(),
            user: args.user.clone(),
            hostname: args.hostname.clone(),
            tty: args.tty,
            open_stdin: args.interactive,
            read_only: args.read_only,
            network,
            mounts: Vec::new(),
            security: super::security_opts::security(
                args.privileged,
                &args.cap_add,
                &args.cap_drop,
                &args.security_opt,
            )?,
        },
        mounts,
        labels: super::parse_labels(&args.label).into_iter().collect(),
        log_config: LogConfig::from_flags(args.log_driver.as_deref(), &args.log_opt)?,
    })
}

/// `-e KEY` takes KEY's value from this environment, and is dropped when it is unset (Docker).
pub(super) fn expand_env(e: &str) -> Option<String> {
    if e.contains('=') {
        return Some(e.to_owned());
    }
    std::env::var(e).ok().map(|v| format!("{e}={v}"))
}

/// Docker's env file: `KEY=VALUE` or `KEY` lines; blank lines and `#` comments skipped.
fn read_env_file(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("open env file {}", path.display()))?;
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("read env file {}", path.display()))?;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed
            .split('=')
            .next()
            .is_some_and(|k| k.contains(char::is_whitespace))
        {
            bail!("variable '{trimmed}' contains whitespaces");
        }
        out.extend(expand_env(trimmed));
    }
    Ok(out)
}

/// The hidden monitor command: runs the container to its end (see strata_runtime::monitor).
fn monitor(store: &Store, args: &MonitorArgs) -> anyhow::Result<()> {
    let record = store.db().read(|tx| Ok(lookup(tx, &args.id)))??;
    let cfg = lifecycle::monitor_config(store, &record)?;
    if args.exec {
        strata_runtime::monitor::exec_monitor_main(cfg)?;
        return Ok(());
    }
    let sn = store.snapshotter()?;
    strata_runtime::monitor::monitor_main(cfg, |_state, lock| {
        lifecycle::after_exit(store, sn.as_ref(), &record, lock);
    })?;
    Ok(())
}
