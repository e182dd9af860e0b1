//! `ps` / `container ls` and `container inspect`, with Docker's columns, filters and JSON.

use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use strata_format::{ago, human_duration, human_size};
use strata_runtime::state::{ContainerState, Status};

use super::output::{fail_with_all, print_inspect, print_list};
use super::timefmt::{go_time, rfc3339};
use strata_engine::containers::list::{self, ContainerSummary, Sizes};
use strata_engine::containers::{ContainerError, lookup};
use strata_engine::images::{glob_match, short_id};
use strata_engine::store::Store;

const TABLE: &str =
    "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
pub(super) const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("Ports", "PORTS"),
    ("Names", "NAMES"),
    ("Size", "SIZE"),
    ("State", "STATE"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display container IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Display total file sizes.
    #[arg(short = 's', long)]
    size: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Show n last created containers (includes all states).
    #[arg(short = 'n', long, value_name = "N")]
    last: Option<usize>,
    /// Show the latest created container (includes all states).
    #[arg(long)]
    latest: bool,
    /// Filter output based on conditions provided (id, name, label, status, exited, ancestor).
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    filter: Vec<String>,
    /// Format output using a Go template, "table", "table TEMPLATE" or "json".
    #[arg(long)]
    format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a Go template, or json.
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Display total file sizes.
    #[arg(short = 's', long)]
    size: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub fn ps(store: &Store, args: &PsArgs) -> anyhow::Result<()> {
    let sn = store.snapshotter()?;
    let filters = Filters::parse(&args.filter)?;
    let mut all = list::list(store, sn.as_ref())?;
    // Newest first, as Docker.
    all.reverse();
    let limit = if args.latest { Some(1) } else { args.last };
    let mut shown: Vec<ContainerSummary> = all
        .into_iter()
        .filter(|c| {
            args.all || limit.is_some() || c.state.status == Status::Running || filters.has_status()
        })
        .filter(|c| filters.matches(c))
        .collect();
    if let Some(n) = limit {
        shown.truncate(n);
    }
    let with_size = args.size
        || args
            .format
            .as_deref()
            .is_some_and(|f| f.contains("{{.Size}}"));
    let mut sizes = Sizes::default();
    let items: Vec<Value> = shown
        .iter()
        .map(|c| {
            let size = with_size.then(|| sizes.of(sn.as_ref(), &c.record));
            ps_item(store, c, size, args.no_trunc)
        })
        .collect();
    let table = if args.size {
        format!("{TABLE}\t{{{{.Size}}}}")
    } else {
        TABLE.to_owned()
    };
    print_list(
        &items,
        args.format.as_deref(),
        args.quiet,
        "ID",
        &table,
        HEADERS,
    )
}

pub(super) fn ps_item(
    store: &Store,
    c: &ContainerSummary,
    size: Option<(u64, u64)>,
    no_trunc: bool,
) -> Value {
    let config = c.config.clone().unwrap_or_default();
    let id = if no_trunc {
        c.record.id.clone()
    } else {
        c.record.id[..12].to_owned()
    };
    let command = config.args.join(" ");
    let command = if no_trunc || command.chars().count() <= 20 {
        command
    } else {
        format!("{}…", command.chars().take(19).collect::<String>())
    };
    json!({
        "ID": id,
        "Image": image_column(store, &c.record.image, &config.image_id),
        "Command": format!("\"{command}\""),
        "CreatedAt": go_time(c.record.created),
        "RunningFor": ago(c.record.created),
        "Ports": "",
        "State": status_word(&c.state),
        "Status": status_text(&c.state),
        "Size": size.map(|(rw, virt)| format!("{} (virtual {})", human_size(rw), human_size(virt))).unwrap_or_default(),
        "Names": c.record.name,
        "Labels": super::labels_string(&c.record.labels.iter().filter(|(k, _)| !strata_types::labels::is_internal(k)).map(|(k, v)| (k.clone(), v.clone())).collect()),
        "Mounts": config.mounts.iter().map(|m| if m.name.is_empty() { m.source.clone() } else { m.name.clone() }).collect::<Vec<_>>().join(","),
        "Networks": config.network,
        "LocalVolumes": config.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
    })
}

/// The IMAGE column: the name the container was made with while it still names the same
/// image, else the short image ID (Docker's rule).
fn image_column(store: &Store, image: &str, image_id: &str) -> String {
    let same = store
        .db()
        .read(|tx| {
            Ok(strata_engine::images::resolve(tx, image)
                .ok()
                .map(|r| r.target().digest.to_string()))
        })
        .ok()
        .flatten()
        .is_some_and(|d| d == image_id);
    if same || image_id.is_empty() {
        return image.to_owned();
    }
    image_id
        .parse()
        .map_or_else(|_| image.to_owned(), |d| short_id(&d).to_owned())
}

fn status_word(st: &ContainerState) -> &'static str {
    match st.status {
        Status::Created => "created",
        Status::Running => "running",
        Status::Exited => "exited",
    }
}

/// `Up 2 minutes`, `Exited (0) 3 seconds ago`, `Created`.
fn status_text(st: &ContainerState) -> String {
    let now = SystemTime::now();
    match st.status {
        Status::Created => "Created".into(),
        Status::Running => {
            let since = st.started_at.unwrap_or(now);
            format!(
                "Up {}",
                human_duration(now.duration_since(since).unwrap_or_default())
            )
        }
        Status::Exited => format!(
            "Exited ({}) {}",
            st.exit_code.unwrap_or(0),
            st.finished_at.map_or_else(String::new, ago)
        ),
    }
}

/// `--filter` as Docker's `ps`: several values of one key are ORed, different keys ANDed.
#[derive(Debug, Default)]
struct Filters {
    id: Vec<String>,
    name: Vec<String>,
    label: Vec<String>,
    status: Vec<String>,
    exited: Vec<i32>,
    ancestor: Vec<String>,
}

impl Filters {
    fn parse(args: &[String]) -> anyhow::Result<Filters> {
        let mut f = Filters::default();
        for a in args {
            let (k, v) = a
                .split_once('=')
                .with_context(|| format!("bad format of filter (expected name=value): {a}"))?;
            match k {
                "id" => f.id.push(v.to_owned()),
                "name" => f.name.push(v.to_owned()),
                "label" => f.label.push(v.to_owned()),
                "status" => {
                    if ![
                        "created",
                        "restarting",
                        "running",
                        "removing",
                        "paused",
                        "exited",
                        "dead",
                    ]
                    .contains(&v)
                    {
                        bail!("invalid filter 'status={v}'");
                    }
                    f.status.push(v.to_owned());
                }
                "exited" => f.exited.push(
                    v.parse()
                        .with_context(|| format!("invalid filter 'exited={v}'"))?,
                ),
                "ancestor" => f.ancestor.push(v.to_owned()),
                _ => bail!("invalid filter '{k}'"),
            }
        }
        Ok(f)
    }

    fn has_status(&self) -> bool {
        !self.status.is_empty() || !self.exited.is_empty()
    }

    fn matches(&self, c: &ContainerSummary) -> bool {
        let any = |list: &[String], f: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| f(v))
        };
        any(&self.id, &|v| c.record.id.starts_with(v))
            && any(&self.name, &|v| {
                c.record.name.contains(v) || glob_match(v, &c.record.name).unwrap_or(false)
            })
            && self.label.iter().all(|v| match v.split_once('=') {
                Some((k, val)) => c.record.labels.get(k).is_some_and(|x| x == val),
                None => c.record.labels.contains_key(v.as_str()),
            })
            && any(&self.status, &|v| v == status_word(&c.state))
            && (self.exited.is_empty()
                || (c.state.status == Status::Exited
                    && self.exited.contains(&c.state.exit_code.unwrap_or(0))))
            && any(&self.ancestor, &|v| {
                c.record.image == v
                    || c.config.as_ref().is_some_and(|cfg| {
                        cfg.image_id
                            .trim_start_matches("sha256:")
                            .starts_with(v.trim_start_matches("sha256:"))
                    })
            })
    }
}

pub fn inspect(store: &Store, args: &InspectArgs) -> anyhow::Result<()> {
    let sn = store.snapshotter()?;
    let mut items = Vec::new();
    let mut errors: Vec<anyhow::Error> = Vec::new();
    let mut sizes = Sizes::default();
    for arg in &args.containers {
        let found = store
            .db()
            .read(|tx| Ok(lookup(tx, arg)))
            .map_err(ContainerError::from)
            .and_then(|r| r)
            .and_then(|r| list::summary(store, sn.as_ref(), r));
        match found {
            Ok(c) => {
                let size = args.size.then(|| sizes.of(sn.as_ref(), &c.record));
                items.push(inspect_item(store, &c, size));
            }
            Err(e) => errors.push(e.into()),
        }
    }
    print_inspect(&items, args.format.as_deref())?;
    fail_with_all(errors)
}

/// Docker shows an empty list as `null`.
fn null_if_empty(v: &[String]) -> Value {
    if v.is_empty() { Value::Null } else { json!(v) }
}

/// The AppArmor profile the container runs under: none where the kernel lacks AppArmor.
fn apparmor_profile(config: &strata_engine::containers::config::ContainerConfig) -> String {
    let security = strata_runtime::security::Security {
        privileged: config.privileged,
        apparmor: config
            .security_opt
            .iter()
            .find_map(|o| o.strip_prefix("apparmor="))
            .map(str::to_owned),
        ..Default::default()
    };
    let enabled = strata_runtime::security::apparmor_enabled();
    match security.apparmor_profile(enabled) {
        Ok(p) => p.unwrap_or_default().to_owned(),
        Err(_) => String::new(),
    }
}

fn inspect_item(store: &Store, c: &ContainerSummary, size: Option<(u64, u64)>) -> Value {
    let config = c.config.clone().unwrap_or_default();
    let st = &c.state;
    let zero = "0001-01-01T00:00:00Z".to_owned();
    let mut log_config = config.log_config.clone();
    if log_config.kind.is_empty() {
        log_config.kind = strata_runtime::logs::config::JSON_FILE.into();
    }
    let mut v = json!({
        "Id": c.record.id,
        "Created": rfc3339(c.record.created),
        "Path": config.args.first().cloned().unwrap_or_default(),
        "Args": config.args.get(1..).unwrap_or_default(),
        "State": {
            "Status": status_word(st),
            "Running": st.status == Status::Running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": if st.status == Status::Running { st.pid.unwrap_or(0) } else { 0 },
            "ExitCode": st.exit_code.unwrap_or(0),
            "Error": st.error.clone().unwrap_or_default(),
            "StartedAt": st.started_at.map_or_else(|| zero.clone(), rfc3339),
            "FinishedAt": st.finished_at.map_or_else(|| zero.clone(), rfc3339),
        },
        "Image": config.image_id,
        "LogPath": if log_config.kind == strata_runtime::logs::config::NONE { std::path::PathBuf::new() } else { strata_engine::containers::lifecycle::log_path(store.root(), &c.record.id) },
        "Name": format!("/{}", c.record.name),
        "Driver": c.record.snapshotter,
        "Platform": "linux",
        "HostConfig": {
            "NetworkMode": config.network,
            "AutoRemove": config.auto_remove,
            "ReadonlyRootfs": config.read_only,
            "Runtime": c.record.runtime,
            "LogConfig": log_config,
            "Binds": config.mounts.iter().filter(|m| m.kind == "bind").map(|m| format!("{}:{}{}", m.source, m.destination, if m.rw { "" } else { ":ro" })).collect::<Vec<_>>(),
            "Privileged": config.privileged,
            "CapAdd": null_if_empty(&config.cap_add),
            "CapDrop": null_if_empty(&config.cap_drop),
            "SecurityOpt": null_if_empty(&config.security_opt),
        },
        "AppArmorProfile": apparmor_profile(&config),
        "Mounts": config.mounts,
        "Config": {
            "Hostname": config.hostname,
            "User": config.user,
            "Tty": config.tty,
            "OpenStdin": config.open_stdin,
            "Env": config.env,
            "Cmd": config.cmd,
            "Image": config.image,
            "WorkingDir": config.working_dir,
            "Entrypoint": if config.entrypoint.is_empty() { Value::Null } else { json!(config.entrypoint) },
            "Labels": c.record.labels.iter().filter(|(k, _)| !strata_types::labels::is_internal(k)).collect::<std::collections::BTreeMap<_, _>>(),
            "StopSignal": config.stop_signal,
        },
    });
    if let Some((rw, root)) = size {
        v["SizeRw"] = json!(rw);
        v["SizeRootFs"] = json!(root);
    }
    v
}
