//! `volume create|ls|inspect|rm|prune`, as Docker's.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use strata_format::human_size;
use strata_metadata::VolumeRecord;

use super::output::{fail_with_all, print_inspect, print_list};
use super::timefmt::rfc3339;
use strata_engine::store::Store;
use strata_engine::volumes::{self, data_dir, in_use_by};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes.
    Inspect(InspectArgs),
    /// Remove one or more volumes.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name.
    #[arg(short = 'd', long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Set driver specific options.
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
    #[arg(value_name = "VOLUME")]
    name: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Provide filter values (dangling=true|false, name=, label=, driver=).
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
    #[arg(required = true, value_name = "VOLUME")]
    names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not fail when a volume does not exist (a volume in use is still refused).
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones.
    #[arg(short = 'a', long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (label=KEY[=VALUE]).
    #[arg(long = "filter", value_name = "FILTER")]
    filter: Vec<String>,
}

pub fn run(store: &Store, cmd: &VolumeCommand) -> anyhow::Result<()> {
    match cmd {
        VolumeCommand::Create(a) => create(store, a),
        VolumeCommand::Ls(a) => ls(store, a),
        VolumeCommand::Inspect(a) => inspect(store, a),
        VolumeCommand::Rm(a) => rm(store, a),
        VolumeCommand::Prune(a) => prune(store, a),
    }
}

fn create(store: &Store, args: &CreateArgs) -> anyhow::Result<()> {
    if args.driver != "local" {
        return Err(volumes::VolumeError::Driver(args.driver.clone()).into());
    }
    let labels = super::parse_labels(&args.label);
    let opts: BTreeMap<String, String> = super::parse_labels(&args.opt).into_iter().collect();
    let (rec, _) = volumes::create(store, args.name.as_deref(), labels, opts)?;
    println!("{}", rec.name);
    Ok(())
}

/// Every volume with the number of containers using it.
pub(super) fn all_volumes(store: &Store) -> anyhow::Result<Vec<(VolumeRecord, usize)>> {
    Ok(store.db().read(|tx| {
        tx.volumes()?
            .into_iter()
            .map(|v| {
                let users = in_use_by(tx, &v.name)?.len();
                Ok((v, users))
            })
            .collect::<Result<Vec<_>, _>>()
    })?)
}

fn label_match(rec: &VolumeRecord, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => rec.labels.get(k).is_some_and(|x| x == v),
        None => rec.labels.contains_key(filter),
    }
}

fn ls(store: &Store, args: &LsArgs) -> anyhow::Result<()> {
    let mut items = Vec::new();
    for (v, users) in all_volumes(store)? {
        let mut keep = true;
        for f in &args.filter {
            let (k, val) = f
                .split_once('=')
                .with_context(|| format!("bad format of filter (expected name=value): {f}"))?;
            keep &= match k {
                "dangling" => match val {
                    "true" | "1" => users == 0,
                    "false" | "0" => users > 0,
                    _ => bail!("invalid filter 'dangling={val}'"),
                },
                "name" => v.name.contains(val),
                "label" => label_match(&v, val),
                "driver" => v.driver == val,
                _ => bail!("invalid filter '{k}'"),
            };
        }
        if keep {
            items.push(json!({
                "Driver": v.driver,
                "Name": v.name,
                "Labels": super::labels_string(&v.labels),
                "Mountpoint": data_dir(store.root(), &v.name),
                "Scope": "local",
                "Links": users.to_string(),
                "Size": human_size(volumes::size(store.root(), &v.name)),
            }));
        }
    }
    print_list(
        &items,
        args.format.as_deref(),
        args.quiet,
        "Name",
        "{{.Driver}}\t{{.Name}}",
        &[
            ("Driver", "DRIVER"),
            ("Name", "VOLUME NAME"),
            ("Mountpoint", "MOUNTPOINT"),
        ],
    )
}

fn inspect(store: &Store, args: &InspectArgs) -> anyhow::Result<()> {
    let mut items: Vec<Value> = Vec::new();
    let mut errors: Vec<anyhow::Error> = Vec::new();
    for name in &args.names {
        match store.db().read(|tx| tx.volume(name))? {
            Some(v) => items.push(json!({
                "CreatedAt": rfc3339(v.created),
                "Driver": v.driver,
                "Labels": v.labels,
                "Mountpoint": data_dir(store.root(), &v.name),
                "Name": v.name,
                "Options": v.options,
                "Scope": "local",
            })),
            None => errors.push(volumes::VolumeError::NotFound(name.clone()).into()),
        }
    }
    print_inspect(&items, args.format.as_deref())?;
    fail_with_all(errors)
}

fn rm(store: &Store, args: &RmArgs) -> anyhow::Result<()> {
    let mut errors: Vec<anyhow::Error> = Vec::new();
    for name in &args.names {
        match volumes::remove(store, name, args.force) {
            Ok(()) => println!("{name}"),
            Err(e) => errors.push(e.into()),
        }
    }
    fail_with_all(errors)
}

fn prune(store: &Store, args: &PruneArgs) -> anyhow::Result<()> {
    let what = if args.all {
        "all local volumes"
    } else {
        "anonymous local volumes"
    };
    if !args.force
        && !super::image_ops::confirm(&format!(
            "WARNING! This will remove {what} not used by at least one container."
        ))?
    {
        return Ok(());
    }
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for (v, users) in all_volumes(store)? {
        let labels_ok = args
            .filter
            .iter()
            .all(|f| f.strip_prefix("label=").is_some_and(|l| label_match(&v, l)));
        if users > 0 || !(args.all || v.anonymous) || !labels_ok {
            continue;
        }
        let size = volumes::size(store.root(), &v.name);
        match volumes::remove(store, &v.name, false) {
            Ok(()) => {
                reclaimed += size;
                deleted.push(v.name);
            }
            // Taken into use meanwhile: not unused after all.
            Err(volumes::VolumeError::InUse { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !deleted.is_empty() {
        println!("Deleted Volumes:\n{}\n", deleted.join("\n"));
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(())
}
