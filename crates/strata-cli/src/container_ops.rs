//! `stop`, `kill`, `wait`, `logs`, `rm`, `exec`, `container prune`.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use strata_runtime::logs::{LogOptions, copy_logs};
use strata_runtime::state::Status;

use super::{ExitStatus, Failed};
use strata_engine::Engine;
use strata_engine::containers::lifecycle::{self, DEFAULT_STOP_TIMEOUT, parse_signal};
use strata_engine::containers::{ContainerError, dir, lookup};
use strata_engine::store::Store;

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container.
    #[arg(
        short = 't',
        long = "timeout",
        visible_alias = "time",
        value_name = "SECONDS"
    )]
    timeout: Option<i64>,
    /// Signal to send to the container (default: the image's STOPSIGNAL, else SIGTERM).
    #[arg(short = 's', long)]
    signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container.
    #[arg(short = 's', long, default_value = "KILL")]
    signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Show timestamps.
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Number of lines to show from the end of the logs ("all" for every line).
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    #[arg(value_name = "CONTAINER")]
    container: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove anonymous volumes associated with the container.
    #[arg(short = 'v', long)]
    volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    tty: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long)]
    user: Option<String>,
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// COMMAND [ARG...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
}

/// Runs `f` on each named container, printing the argument on success and each failure on
/// stderr, as Docker's multi-container commands do.
pub(super) fn each<E>(
    store: &Store,
    args: &[String],
    mut f: impl FnMut(
        &dyn strata_snapshot::Snapshotter,
        &strata_metadata::ContainerRecord,
    ) -> Result<(), E>,
) -> anyhow::Result<()>
where
    E: From<ContainerError> + Into<anyhow::Error>,
{
    let sn = store.snapshotter()?;
    let mut errors = Vec::new();
    for arg in args {
        let result = store
            .db()
            .read(|tx| Ok(lookup(tx, arg)))
            .map_err(ContainerError::from)
            .and_then(|r| r)
            .map_err(E::from)
            .and_then(|record| f(sn.as_ref(), &record));
        match result {
            Ok(()) => println!("{arg}"),
            Err(e) => errors.push(e),
        }
    }
    super::output::fail_with_all(errors)
}

pub fn stop(store: &Store, args: &StopArgs) -> anyhow::Result<()> {
    let timeout = match args.timeout {
        None => DEFAULT_STOP_TIMEOUT,
        // As Docker: a negative timeout waits for ever.
        Some(t) if t < 0 => Duration::from_secs(u64::MAX / 4),
        Some(t) => Duration::from_secs(t as u64),
    };
    let signal = match &args.signal {
        None => None,
        Some(s) => Some(parse_signal(s).with_context(|| format!("invalid signal: {s}"))?),
    };
    each(store, &args.containers, |sn, record| {
        lifecycle::stop(store, sn, record, timeout, signal)
    })
}

pub fn kill(store: &Store, args: &KillArgs) -> anyhow::Result<()> {
    let signal =
        parse_signal(&args.signal).with_context(|| format!("invalid signal: {}", args.signal))?;
    each(store, &args.containers, |sn, record| {
        lifecycle::kill(store, sn, record, signal)
    })
}

pub fn wait(store: &Store, args: &WaitArgs) -> anyhow::Result<()> {
    let sn = store.snapshotter()?;
    let mut errors = Vec::new();
    for arg in &args.containers {
        let result = store
            .db()
            .read(|tx| Ok(lookup(tx, arg)))
            .map_err(ContainerError::from)
            .and_then(|r| r)
            .and_then(|record| lifecycle::wait(store, sn.as_ref(), &record));
        match result {
            Ok(code) => println!("{code}"),
            Err(e) => errors.push(e),
        }
    }
    super::output::fail_with_all(errors)
}

pub fn logs(store: &Store, args: &LogsArgs) -> anyhow::Result<()> {
    let record = store.db().read(|tx| Ok(lookup(tx, &args.container)))??;
    let d = dir(store.root(), &record.id);
    let config = strata_engine::containers::config::ContainerConfig::read(&d).unwrap_or_default();
    if config.log_config.kind == strata_runtime::logs::config::NONE {
        bail!("configured logging driver does not support reading");
    }
    let tail = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse::<usize>()
                .with_context(|| format!("invalid --tail value: {n}"))?,
        ),
    };
    let now = std::time::SystemTime::now();
    let time = |flag: &str, v: &Option<String>| -> anyhow::Result<_> {
        v.as_deref()
            .map(|s| {
                super::timefmt::parse_since(s, now).with_context(|| {
                    format!("invalid value for \"{flag}\": {s:?}: a timestamp (RFC 3339, a date, Unix seconds) or a duration such as 42m")
                })
            })
            .transpose()
    };
    let opts = LogOptions {
        follow: args.follow,
        timestamps: args.timestamps,
        tail,
        since: time("since", &args.since)?,
        until: time("until", &args.until)?,
    };
    let path = lifecycle::log_path(store.root(), &record.id);
    // Buffered: a long log is written in large pieces (the reader flushes when it waits).
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut err = std::io::stderr().lock();
    copy_logs(&path, &d, &opts, &mut out, &mut err)?;
    Ok(())
}

pub fn rm(store: &Store, args: &RmArgs) -> anyhow::Result<()> {
    each(store, &args.containers, |sn, record| {
        lifecycle::remove(store, sn, record, args.force, args.volumes)
    })
}

pub fn exec(engine: &Engine, args: &ExecArgs) -> anyhow::Result<()> {
    let store = engine.store();
    let sn = store.snapshotter()?;
    let record = store.db().read(|tx| Ok(lookup(tx, &args.container)))??;
    let state = lifecycle::reconcile(store, sn.as_ref(), &record)?;
    if state.status != Status::Running {
        bail!("container {} is not running", record.id);
    }
    let env: Vec<String> = args
        .env
        .iter()
        .filter_map(|e| super::container::expand_env(e))
        .collect();
    let monitor_args = strata_engine::monitor_args(store, &record, true);
    let code = lifecycle::exec(
        store,
        &record,
        lifecycle::ExecRequest {
            args: args.command.clone(),
            env,
            workdir: args.workdir.clone(),
            user: args.user.clone(),
            tty: args.tty,
            interactive: args.interactive,
            detach: args.detach,
        },
        engine.monitor_exe(),
        &monitor_args,
    )
    .map_err(|e| {
        let code = match &e {
            ContainerError::Runtime(r) => r.exit_code(),
            _ => 126,
        };
        anyhow::Error::from(Failed::new(code, e.into()))
    })?;
    if code != 0 {
        return Err(ExitStatus(u8::try_from(code).unwrap_or(255)).into());
    }
    Ok(())
}

pub fn prune(engine: &Engine, args: &PruneArgs) -> anyhow::Result<()> {
    if !args.force
        && !super::image_ops::confirm("WARNING! This will remove all stopped containers.")?
    {
        return Ok(());
    }
    let pruned = engine.prune_containers()?;
    if !pruned.deleted.is_empty() {
        println!("Deleted Containers:\n{}\n", pruned.deleted.join("\n"));
    }
    println!(
        "Total reclaimed space: {}",
        strata_format::human_size(pruned.reclaimed)
    );
    Ok(())
}
