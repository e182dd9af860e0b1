//! `strata image inspect` and `strata image history`: what Docker 29 with the containerd
//! image store prints, read from the image's index, manifest and config.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::bail;
use clap::{ArgAction, Args};
use serde_json::{Value, json};
use strata_format::{ago, human_size};
use strata_types::Matcher;

use super::image::{created_of, image_id, open_snapshotter};
use super::output::{fail_with_all, print_inspect, print_list};
use super::timefmt::{parse_rfc3339, rfc3339};
use strata_engine::images::{self, ImageError, ImageSummary, Resolved, Sizer, is_dangling};
use strata_engine::store::Store;

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
    /// Format output using a Go template, or json.
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    image: String,
    /// Print sizes and dates in human readable format (--human=false for raw numbers).
    #[arg(
        short = 'H',
        long,
        default_value_t = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    human: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Format output: table, table TEMPLATE, json, or a Go template.
    #[arg(long)]
    format: Option<String>,
}

/// Resolves `arg` and summarizes its image for this host.
fn load(
    store: &Store,
    sizer: &mut Sizer<'_>,
    arg: &str,
) -> Result<(Resolved, ImageSummary), ImageError> {
    let resolved = store.db().read(|tx| Ok(images::resolve(tx, arg)))??;
    let summary = sizer
        .summarize(resolved.target(), &Matcher::host())
        .map_err(|source| ImageError::Read {
            name: arg.to_owned(),
            source,
        })?;
    Ok((resolved, summary))
}

pub fn inspect(store: &Store, args: &InspectArgs) -> anyhow::Result<()> {
    let sn = open_snapshotter(store);
    let mut sizer = Sizer::new(store.content(), sn.as_deref())?;
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for arg in &args.images {
        match load(store, &mut sizer, arg) {
            Ok((resolved, summary)) => items.push(inspect_value(store, &resolved, &summary)),
            Err(e) => errors.push(e),
        }
    }
    // As Docker: what was found is printed, then what was not fails the command.
    print_inspect(&items, args.format.as_deref())?;
    fail_with_all(errors)
}

fn inspect_value(store: &Store, resolved: &Resolved, summary: &ImageSummary) -> Value {
    let target = resolved.target();
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for rec in resolved.names() {
        let Ok(name) = strata_remote::Reference::parse(&rec.name) else {
            tags.push(rec.name.clone());
            continue;
        };
        tags.push(name.familiar());
        let digested = match name.digest() {
            Some(_) => name.familiar(),
            None => format!("{}@{}", name.familiar_name(), target.digest),
        };
        digests.push(digested);
    }
    tags.dedup();
    digests.sort();
    digests.dedup();
    let last_tag = resolved
        .all
        .iter()
        .filter(|r| !is_dangling(r))
        .map(|r| r.updated)
        .max()
        .unwrap_or(UNIX_EPOCH);
    let best = summary.best();
    let config = best.and_then(|m| m.config.clone());
    let mut v = json!({
        "Id": images::image_id(&resolved.all[0]).to_string(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": config.as_ref().and_then(|c| c.history.last()).and_then(|h| h.comment.clone()).unwrap_or_default(),
        "DockerVersion": "",
        "Author": config.as_ref().and_then(|c| c.author.clone()).unwrap_or_default(),
        "Config": config.as_ref().and_then(|c| c.config.clone()).unwrap_or_default(),
        "Architecture": config.as_ref().map(|c| c.architecture.clone()).unwrap_or_default(),
        "Os": config.as_ref().map(|c| c.os.clone()).unwrap_or_default(),
        "Size": best.map_or_else(|| summary.size(), |m| m.size()),
        "RootFS": {
            "Type": config.as_ref().map(|c| c.rootfs.kind.clone()).unwrap_or_default(),
            "Layers": config.as_ref().map(|c| c.rootfs.diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap_or_default(),
        },
        "Metadata": { "LastTagTime": rfc3339(last_tag) },
        "Descriptor": target,
        "GraphDriver": { "Name": store.snapshotter_name(), "Data": null },
    });
    if let Some(created) = created_of(summary) {
        v["Created"] = Value::String(rfc3339(created));
    }
    if let Some(variant) = config.as_ref().and_then(|c| c.variant.clone()) {
        v["Variant"] = Value::String(variant);
    }
    if let Some(os_version) = config.as_ref().and_then(|c| c.os_version.clone()) {
        v["OsVersion"] = Value::String(os_version);
    }
    v
}

const HISTORY_TABLE: &str = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
const HISTORY_TABLE_RAW: &str = "{{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// Dates up to this one read "N/A" in human form, as Docker (2000-01-01).
const EPOCH_2000: Duration = Duration::from_secs(946_684_800);

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn history(store: &Store, args: &HistoryArgs) -> anyhow::Result<()> {
    let sn = open_snapshotter(store);
    let mut sizer = Sizer::new(store.content(), sn.as_deref())?;
    let (resolved, summary) = load(store, &mut sizer, &args.image)?;
    let Some(best) = summary.best() else {
        bail!(
            "image {}: no manifest for any platform is in the store",
            args.image
        );
    };
    let mut layer_sizes = sizer.layer_sizes(best).into_iter();
    let history = best
        .config
        .as_ref()
        .map(|c| c.history.clone())
        .unwrap_or_default();
    let mut items = Vec::new();
    for h in &history {
        let size = if h.empty_layer {
            0
        } else {
            layer_sizes.next().unwrap_or(0)
        };
        let created = h
            .created
            .as_deref()
            .and_then(parse_rfc3339)
            .unwrap_or(UNIX_EPOCH);
        // Whole seconds, as Docker's API carries them.
        let secs = created
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let created = UNIX_EPOCH + Duration::from_secs(secs);
        let created_at = rfc3339(created);
        let since = match (args.human, created <= UNIX_EPOCH + EPOCH_2000) {
            (false, _) => created_at.clone(),
            (true, true) => "N/A".to_owned(),
            (true, false) => ago(created),
        };
        let created_by = h.created_by.clone().unwrap_or_default().replace('\t', " ");
        items.push(json!({
            "ID": "<missing>",
            "CreatedAt": created_at,
            "CreatedSince": since,
            "CreatedBy": if args.no_trunc { created_by } else { ellipsis(&created_by, 45) },
            "Size": if args.human { human_size(size) } else { size.to_string() },
            "Comment": h.comment.clone().unwrap_or_default(),
        }));
    }
    items.reverse();
    if let Some(top) = items.first_mut() {
        top["ID"] = Value::String(image_id(&images::image_id(&resolved.all[0]), args.no_trunc));
    }
    print_list(
        &items,
        args.format.as_deref(),
        args.quiet,
        "ID",
        if args.human {
            HISTORY_TABLE
        } else {
            HISTORY_TABLE_RAW
        },
        &[
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ],
    )
}
