//! `system df`: Docker's disk usage table (Images, Containers, Local Volumes, Build Cache),
//! `-v` for each image, container and volume, and a breakdown Docker lacks: the compressed
//! and unpacked bytes of images apart, and what no image uses.

use anyhow::bail;
use clap::Args;
use serde_json::{Value, json};
use strata_format::human_size;
use strata_remote::Reference;
use strata_runtime::state::Status;

use super::image::{Listed, created_of, list_item};
use super::output::print_list;
use strata_engine::containers::list::{self as containers, writable_size};
use strata_engine::df::{ImagesUsage, images_usage};
use strata_engine::images::{self, is_dangling};
use strata_engine::store::Store;

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage.
    #[arg(short, long)]
    verbose: bool,
    /// Format output: table, table TEMPLATE, json, or a Go template (with -v: json only).
    #[arg(long)]
    format: Option<String>,
}

const TABLE: &str = "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
const HEADERS: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];
const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}";
const CONTAINERS_TABLE: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.LogSize}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}";
const VOLUMES_TABLE: &str = "table {{.Name}}\t{{.Links}}\t{{.Size}}";
const VOLUME_HEADERS: &[(&str, &str)] = &[("Name", "VOLUME NAME"), ("Links", "LINKS")];
const CACHE_TABLE: &str = "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}";
const CACHE_HEADERS: &[(&str, &str)] = &[
    ("ID", "CACHE ID"),
    ("CacheType", "CACHE TYPE"),
    ("CreatedSince", "CREATED"),
    ("LastUsedSince", "LAST USED"),
    ("UsageCount", "USAGE"),
];

/// `12.3MB (45%)`, as Docker prints a reclaimable figure (no percentage of nothing).
fn reclaimable(part: u64, total: u64) -> String {
    if total == 0 {
        return human_size(part);
    }
    format!("{} ({}%)", human_size(part), part * 100 / total)
}

pub fn df(store: &Store, args: &DfArgs) -> anyhow::Result<()> {
    let json_out = args.format.as_deref().map(str::trim) == Some("json");
    if args.verbose && args.format.is_some() && !json_out {
        bail!("--format with --verbose takes only json (the verbose tables are fixed)");
    }
    // Containers' sizes need the snapshotter too: without it there is no df to give.
    let sn = store.snapshotter()?;
    let usage = images_usage(store, Some(sn.as_ref()))?;
    let ((containers, logs), volumes) =
        (container_items(store, sn.as_ref())?, volume_items(store)?);

    let count = |items: &[(Value, u64, bool)]| {
        let size: u64 = items.iter().map(|(_, s, _)| s).sum();
        let idle: u64 = items.iter().filter(|(_, _, a)| !a).map(|(_, s, _)| s).sum();
        let active = items.iter().filter(|(_, _, a)| *a).count();
        (items.len(), active, size, idle)
    };
    let (nc, ac, sc, rc) = count(&containers);
    let (nv, av, sv, rv) = count(&volumes);
    let total = usage.total.total();
    let rows = [
        json!({"Type": "Images", "TotalCount": usage.images.len().to_string(),
               "Active": usage.active().to_string(), "Size": human_size(total),
               "Reclaimable": reclaimable(usage.reclaimable, total),
               "ContentSize": human_size(usage.total.content),
               "UnpackedSize": human_size(usage.total.unpacked),
               "DiscardedSize": human_size(usage.discarded)}),
        json!({"Type": "Containers", "TotalCount": nc.to_string(), "Active": ac.to_string(),
               "Size": human_size(sc), "Reclaimable": reclaimable(rc, sc),
               "LogSize": human_size(logs)}),
        json!({"Type": "Local Volumes", "TotalCount": nv.to_string(), "Active": av.to_string(),
               "Size": human_size(sv), "Reclaimable": reclaimable(rv, sv)}),
        json!({"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B",
               "Reclaimable": "0B"}),
    ];
    if !args.verbose {
        print_list(&rows, args.format.as_deref(), false, "Type", TABLE, HEADERS)?;
        if args.format.is_none() {
            breakdown(&usage, sc, logs);
        }
        return Ok(());
    }
    let images = image_items(&usage);
    let strip = |items: Vec<(Value, u64, bool)>| items.into_iter().map(|(v, _, _)| v).collect();
    let (containers, volumes): (Vec<Value>, Vec<Value>) = (strip(containers), strip(volumes));
    if json_out {
        let all = json!({"Images": images, "Containers": containers, "Volumes": volumes,
                         "BuildCache": []});
        println!("{}", serde_json::to_string(&all)?);
        return Ok(());
    }
    println!("Images space usage:\n");
    print_list(
        &images,
        Some(IMAGES_TABLE),
        false,
        "ID",
        "",
        super::image::HEADERS,
    )?;
    println!("\nContainers space usage:\n");
    let headers: Vec<(&str, &str)> = super::ps::HEADERS
        .iter()
        .copied()
        .chain([("LogSize", "LOG SIZE")])
        .collect();
    print_list(
        &containers,
        Some(CONTAINERS_TABLE),
        false,
        "ID",
        "",
        &headers,
    )?;
    println!("\nLocal Volumes space usage:\n");
    print_list(
        &volumes,
        Some(VOLUMES_TABLE),
        false,
        "Name",
        "",
        VOLUME_HEADERS,
    )?;
    println!("\nBuild cache usage: 0B\n");
    print_list(&[], Some(CACHE_TABLE), false, "ID", "", CACHE_HEADERS)?;
    breakdown(&usage, sc, logs);
    Ok(())
}

/// What Docker's table does not show: compressed and unpacked image bytes apart (with the
/// containerd image store every layer is on disk twice), what no image uses, and the
/// containers' logs beside their writable layers.
fn breakdown(usage: &ImagesUsage, writable: u64, logs: u64) {
    print!(
        "\nImages: {} compressed content + {} unpacked layers",
        human_size(usage.total.content),
        human_size(usage.total.unpacked)
    );
    if usage.discarded > 0 {
        print!(
            " ({} of layer blobs discarded after unpacking)",
            human_size(usage.discarded)
        );
    }
    println!();
    let loose = usage.unreferenced.total() + usage.ingests;
    if loose > 0 {
        println!(
            "Not used by any image: {} content, {} unpacked layers, {} partial downloads \
             (`strata image prune` frees them)",
            human_size(usage.unreferenced.content),
            human_size(usage.unreferenced.unpacked),
            human_size(usage.ingests)
        );
    }
    if logs > 0 {
        println!(
            "Containers: {} writable layers + {} logs",
            human_size(writable),
            human_size(logs)
        );
    }
}

/// One row per image, as Docker's `-v`: its first name only, sizes shared and unique.
fn image_items(usage: &ImagesUsage) -> Vec<Value> {
    let mut listed: Vec<(Listed, u64, u64)> = usage
        .images
        .iter()
        .map(|i| {
            let mut names: Vec<Reference> = i
                .records
                .iter()
                .filter(|r| !is_dangling(r))
                .filter_map(|r| Reference::parse(&r.name).ok())
                .collect();
            names.sort_by_key(Reference::familiar);
            let l = Listed {
                created: created_of(&i.summary),
                summary: i.summary.clone(),
                id: i
                    .records
                    .first()
                    .map_or_else(|| i.summary.target.digest.clone(), images::image_id),
                names,
                containers: i.containers,
            };
            (l, i.size, i.shared_size)
        })
        .collect();
    listed.sort_by_key(|(l, _, _)| std::cmp::Reverse(l.created));
    listed
        .iter()
        .map(|(l, size, shared)| {
            let row = match l.names.first() {
                Some(n) => (
                    n.familiar_name(),
                    n.tag().unwrap_or("<none>").to_owned(),
                    n.digest().map_or("<none>".to_owned(), ToString::to_string),
                ),
                None => ("<none>".into(), "<none>".into(), "<none>".into()),
            };
            let mut item = list_item(l, row, false);
            item["Size"] = json!(human_size(*size));
            item["SharedSize"] = json!(human_size(*shared));
            item["UniqueSize"] = json!(human_size(size - shared));
            item
        })
        .collect()
}

/// Each container's row (SIZE: its writable layer, as Docker's; LOG SIZE: its log files),
/// size and whether it runs; and all their logs' bytes.
type ContainerItems = (Vec<(Value, u64, bool)>, u64);

fn container_items(
    store: &Store,
    sn: &dyn strata_snapshot::Snapshotter,
) -> anyhow::Result<ContainerItems> {
    let mut all = containers::list(store, sn)?;
    all.reverse();
    let mut logs = 0;
    let items = all
        .iter()
        .map(|c| {
            let rw = c.record.snapshot_key.as_deref().map_or(0, |key| {
                writable_size(sn, key).unwrap_or_else(|e| {
                    tracing::debug!("size of {key}: {e}");
                    0
                })
            });
            let log = strata_engine::containers::logs::log_size(store.root(), &c.record.id);
            logs += log;
            let mut item = super::ps::ps_item(store, c, None, false);
            item["Size"] = json!(human_size(rw));
            item["LogSize"] = json!(human_size(log));
            (item, rw, c.state.status == Status::Running)
        })
        .collect();
    Ok((items, logs))
}

/// Each volume's row, size and whether a container uses it.
fn volume_items(store: &Store) -> anyhow::Result<Vec<(Value, u64, bool)>> {
    Ok(super::volume::all_volumes(store)?
        .into_iter()
        .map(|(v, links)| {
            let size = strata_engine::volumes::size(store.root(), &v.name);
            let item = json!({
                "Name": v.name,
                "Links": links.to_string(),
                "Size": human_size(size),
                "Driver": v.driver,
                "Scope": "local",
            });
            (item, size, links > 0)
        })
        .collect())
}
