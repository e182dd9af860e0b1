//! `strata snapshot`: the snapshotter by hand, like `ctr snapshot`, for debugging and tests.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use strata_format::human_size;
use strata_mount::{Mount, UnmountFlags};
use strata_snapshot::{Filter, Info, SnapshotKind, Snapshotter};

use super::output::{print_inspect, print_list};
use super::timefmt::rfc3339;
use super::{labels_string, need_root, parse_labels};
use strata_engine::store::Store;

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List snapshots.
    #[command(visible_alias = "list")]
    Ls {
        /// Only display keys.
        #[arg(short, long)]
        quiet: bool,
        /// Filter: kind=active|view|committed, parent=NAME, label=KEY or label=KEY=VALUE.
        #[arg(long)]
        filter: Vec<String>,
        /// Format output: table, table TEMPLATE, json, or a Go template.
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more snapshots.
    Info {
        #[arg(required = true)]
        keys: Vec<String>,
        /// Format output using a Go template, or json.
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Show the disk usage of snapshots (all when no key is given).
    Usage {
        keys: Vec<String>,
        /// Format output: table, table TEMPLATE, json, or a Go template.
        #[arg(long)]
        format: Option<String>,
    },
    /// Create a writable snapshot KEY on PARENT.
    Prepare(MakeArgs),
    /// Create a read-only view KEY of PARENT.
    View(MakeArgs),
    /// Commit the active snapshot KEY as NAME.
    Commit {
        name: String,
        key: String,
        /// Set a label (KEY=VALUE).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Remove one or more snapshots.
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Print the mount commands for an active snapshot or view.
    Mounts { target: PathBuf, key: String },
    /// Mount an active snapshot or view at TARGET (needs root).
    Mount { target: PathBuf, key: String },
    /// Unmount TARGET (needs root).
    #[command(visible_alias = "umount")]
    Unmount {
        target: PathBuf,
        /// Lazy unmount (MNT_DETACH).
        #[arg(long)]
        detach: bool,
    },
    /// Set (KEY=VALUE) or remove (KEY= or KEY) labels on a snapshot.
    Label {
        key: String,
        #[arg(required = true)]
        labels: Vec<String>,
    },
    /// Remove snapshot directories no record refers to (leftovers of crashes).
    Cleanup,
}

#[derive(Debug, clap::Args)]
pub struct MakeArgs {
    key: String,
    parent: Option<String>,
    /// Mount the new snapshot at this directory (needs root).
    #[arg(long)]
    target: Option<PathBuf>,
    /// Print the mount commands.
    #[arg(long)]
    mounts: bool,
    /// Set a label (KEY=VALUE).
    #[arg(long = "label")]
    labels: Vec<String>,
}

pub fn run(store: &Store, cmd: &SnapshotCommand) -> anyhow::Result<()> {
    let sn = store.snapshotter()?;
    let sn = sn.as_ref();
    match cmd {
        SnapshotCommand::Ls {
            quiet,
            filter,
            format,
        } => ls(sn, *quiet, filter, format.as_deref()),
        SnapshotCommand::Info { keys, format } => {
            let items = keys
                .iter()
                .map(|k| Ok(inspect_value(&sn.stat(k)?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            print_inspect(&items, format.as_deref())
        }
        SnapshotCommand::Usage { keys, format } => usage(sn, keys, format.as_deref()),
        SnapshotCommand::Prepare(args) => make(sn, args, false),
        SnapshotCommand::View(args) => make(sn, args, true),
        SnapshotCommand::Commit { name, key, labels } => {
            Ok(sn.commit(name, key, &parse_labels(labels))?)
        }
        SnapshotCommand::Rm { keys } => {
            for key in keys {
                sn.remove(key)?;
                println!("{key}");
            }
            Ok(())
        }
        SnapshotCommand::Mounts { target, key } => {
            for line in mount_commands(&sn.mounts(key)?, target) {
                println!("{line}");
            }
            Ok(())
        }
        SnapshotCommand::Mount { target, key } => mount(&sn.mounts(key)?, target),
        SnapshotCommand::Unmount { target, detach } => {
            need_root("strata snapshot unmount")?;
            let flags = if *detach {
                UnmountFlags::DETACH
            } else {
                UnmountFlags::NONE
            };
            strata_mount::unmount(target, flags)
                .with_context(|| format!("unmount {}", target.display()))
        }
        SnapshotCommand::Label { key, labels } => {
            let info = sn.update(key, &parse_labels(labels))?;
            println!("{}", labels_string(&info.labels));
            Ok(())
        }
        SnapshotCommand::Cleanup => {
            for path in sn.cleanup()? {
                println!("removed {}", path.display());
            }
            Ok(())
        }
    }
}

fn kind_str(kind: SnapshotKind) -> &'static str {
    match kind {
        SnapshotKind::Active => "Active",
        SnapshotKind::View => "View",
        SnapshotKind::Committed => "Committed",
    }
}

fn inspect_value(info: &Info) -> Value {
    json!({
        "Kind": kind_str(info.kind),
        "Name": info.name,
        "Parent": info.parent,
        "Labels": info.labels,
        "Created": rfc3339(info.created),
        "Updated": rfc3339(info.updated),
    })
}

fn parse_filter(args: &[String]) -> anyhow::Result<Filter> {
    let mut filter = Filter::all();
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            bail!("invalid filter {arg:?}: expected KEY=VALUE");
        };
        filter = match key {
            "kind" => filter.kind(match value {
                "active" => SnapshotKind::Active,
                "view" => SnapshotKind::View,
                "committed" => SnapshotKind::Committed,
                _ => bail!("invalid filter {arg:?}: kind is active, view or committed"),
            }),
            "parent" => filter.parent(Some(value)),
            "label" => match value.split_once('=') {
                Some((k, v)) => filter.label_eq(k, v),
                None => filter.label(value),
            },
            _ => bail!("invalid filter {arg:?}: known filters are kind, parent and label"),
        };
    }
    Ok(filter)
}

fn ls(
    sn: &dyn Snapshotter,
    quiet: bool,
    filter: &[String],
    format: Option<&str>,
) -> anyhow::Result<()> {
    let filter = parse_filter(filter)?;
    let mut items = Vec::new();
    sn.walk(&filter, &mut |info| {
        items.push(json!({
            "Key": info.name,
            "Parent": info.parent.clone().unwrap_or_default(),
            "Kind": kind_str(info.kind),
            "Labels": labels_string(&info.labels),
            "CreatedAt": rfc3339(info.created),
        }));
        Ok(())
    })?;
    print_list(
        &items,
        format,
        quiet,
        "Key",
        "{{.Key}}\t{{.Parent}}\t{{.Kind}}",
        &[
            ("Key", "KEY"),
            ("Parent", "PARENT"),
            ("Kind", "KIND"),
            ("Labels", "LABELS"),
            ("CreatedAt", "CREATED AT"),
        ],
    )
}

fn usage(sn: &dyn Snapshotter, keys: &[String], format: Option<&str>) -> anyhow::Result<()> {
    let mut keys = keys.to_vec();
    if keys.is_empty() {
        sn.walk(&Filter::all(), &mut |info| {
            keys.push(info.name.clone());
            Ok(())
        })?;
    }
    let mut items = Vec::new();
    for key in &keys {
        let u = sn.usage(key)?;
        items.push(json!({ "Key": key, "Size": human_size(u.size), "SizeBytes": u.size, "Inodes": u.inodes }));
    }
    print_list(
        &items,
        format,
        false,
        "Key",
        "{{.Key}}\t{{.Size}}\t{{.Inodes}}",
        &[
            ("Key", "KEY"),
            ("Size", "SIZE"),
            ("SizeBytes", "BYTES"),
            ("Inodes", "INODES"),
        ],
    )
}

fn make(sn: &dyn Snapshotter, args: &MakeArgs, view: bool) -> anyhow::Result<()> {
    if args.target.is_some() {
        need_root(if view {
            "strata snapshot view --target"
        } else {
            "strata snapshot prepare --target"
        })?;
    }
    let labels = parse_labels(&args.labels);
    let parent = args.parent.as_deref();
    let mounts = if view {
        sn.view(&args.key, parent, &labels)?
    } else {
        sn.prepare(&args.key, parent, &labels)?
    };
    if let Some(target) = &args.target {
        mount(&mounts, target)?;
    }
    if args.mounts {
        let target = args
            .target
            .clone()
            .unwrap_or_else(|| PathBuf::from("TARGET"));
        for line in mount_commands(&mounts, &target) {
            println!("{line}");
        }
    }
    Ok(())
}

fn mount(mounts: &[Mount], target: &Path) -> anyhow::Result<()> {
    need_root("strata snapshot mount")?;
    strata_mount::mount_all(mounts, target)
        .with_context(|| format!("mount at {}", target.display()))
}

/// `mount(8)` command lines equivalent to `mounts` at `target`, as `ctr snapshot mounts` prints.
fn mount_commands(mounts: &[Mount], target: &Path) -> Vec<String> {
    mounts
        .iter()
        .map(|m| {
            let options = if m.options.is_empty() {
                String::new()
            } else {
                format!(" -o {}", m.options.join(","))
            };
            format!(
                "mount -t {} {} {}{options}",
                m.kind,
                m.source.display(),
                target.display()
            )
        })
        .collect()
}
