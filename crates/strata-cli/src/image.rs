//! `strata images` / `image ls`: Docker's image list (columns, flags, filters, JSON), and the
//! `image` command group. The other image commands are in `image_info.rs` (inspect, history)
//! and `image_ops.rs` (tag, rmi, prune); `--tree` is in `image_tree.rs`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;
use strata_format::{ago, human_size};
use strata_metadata::ImageRecord;
use strata_remote::Reference;
use strata_snapshot::Snapshotter;
use strata_types::{Digest, Matcher};

use super::image_info::{HistoryArgs, InspectArgs};
use super::image_ops::{PruneArgs, RmiArgs, TagArgs};
use super::output::print_list;
use super::timefmt::{go_time, parse_rfc3339};
use strata_engine::Engine;
use strata_engine::images::{self, ImageSummary, Sizer, is_dangling, reference_matches};
use strata_engine::store::Store;

/// The image commands reachable at the top level, as Docker has them.
#[derive(Debug, Subcommand)]
pub enum TopLevel {
    /// List images.
    Images(ListArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more images.
    Inspect(InspectArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Remove one or more images.
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Remove unused images (records only; space is freed by garbage collection).
    Prune(PruneArgs),
}

pub fn run(engine: &Engine, cmd: &TopLevel) -> anyhow::Result<()> {
    let store = engine.store();
    match cmd {
        TopLevel::Images(args) | TopLevel::Image(ImageCommand::Ls(args)) => list(store, args),
        TopLevel::Image(ImageCommand::Inspect(args)) => super::image_info::inspect(store, args),
        TopLevel::History(args) | TopLevel::Image(ImageCommand::History(args)) => {
            super::image_info::history(store, args)
        }
        TopLevel::Tag(args) | TopLevel::Image(ImageCommand::Tag(args)) => {
            super::image_ops::tag(store, args)
        }
        TopLevel::Rmi(args) | TopLevel::Image(ImageCommand::Rm(args)) => {
            super::image_ops::rmi(engine, args)
        }
        TopLevel::Image(ImageCommand::Prune(args)) => super::image_ops::prune(engine, args),
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only images whose name matches REPOSITORY[:TAG] (a glob, as --filter reference=).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Show all images (default hides dangling images).
    #[arg(short, long)]
    all: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Filter output: dangling=true|false, reference=PATTERN, label=KEY[=VALUE].
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output: table, table TEMPLATE, json, or a Go template.
    #[arg(long)]
    format: Option<String>,
    /// List each image's platform variants and attestations as a tree.
    #[arg(long)]
    tree: bool,
}

const TABLE: &str = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}";
const TABLE_DIGESTS: &str = "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}";
pub(super) const HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
];

/// `--filter` values, parsed.
#[derive(Debug, Default)]
struct Filters {
    dangling: Option<bool>,
    references: Vec<String>,
    labels: Vec<(String, Option<String>)>,
}

impl Filters {
    fn parse(args: &ListArgs) -> anyhow::Result<Filters> {
        let mut f = Filters::default();
        for arg in &args.filter {
            let Some((key, value)) = arg.split_once('=') else {
                bail!("bad format of filter (expected name=value): {arg}");
            };
            match key {
                "dangling" => {
                    f.dangling = Some(match value.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => bail!("invalid filter 'dangling={value}'"),
                    });
                }
                "reference" => f.references.push(value.to_owned()),
                "label" => f.labels.push(match value.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (value.to_owned(), None),
                }),
                _ => bail!("invalid filter '{key}' (strata supports dangling, reference, label)"),
            }
        }
        f.references.extend(args.reference.clone());
        Ok(f)
    }

    /// Whether a record passes the name filters (Docker filters records, then groups them).
    fn keeps(&self, rec: &ImageRecord) -> bool {
        let dangling = is_dangling(rec);
        if self.dangling.is_some_and(|d| d != dangling) {
            return false;
        }
        if self.references.is_empty() {
            return true;
        }
        let Ok(name) = Reference::parse(&rec.name) else {
            return false;
        };
        !dangling && self.references.iter().any(|p| reference_matches(p, &name))
    }

    fn keeps_labels(&self, summary: &ImageSummary) -> bool {
        let labels = summary
            .best()
            .and_then(|m| m.config.as_ref())
            .and_then(|c| c.config.as_ref())
            .map(|c| &c.labels);
        self.labels.iter().all(|(k, v)| {
            labels
                .and_then(|l| l.get(k))
                .is_some_and(|have| v.as_ref().is_none_or(|v| v == have))
        })
    }
}

/// One image of the list: its summary, names and containers.
#[derive(Debug)]
pub(super) struct Listed {
    pub summary: ImageSummary,
    /// The image ID ([`images::image_id`]).
    pub id: Digest,
    /// The names that passed the filters, familiar form, sorted; empty for a dangling image.
    pub names: Vec<Reference>,
    pub created: Option<SystemTime>,
    pub containers: usize,
}

/// Opens the snapshotter for sizes; without one, unpacked sizes read 0.
pub(super) fn open_snapshotter(store: &Store) -> Option<Box<dyn Snapshotter>> {
    store
        .snapshotter()
        .map_err(|e| tracing::warn!("unpacked sizes unknown: {e}"))
        .ok()
}

fn list_images(store: &Store, filters: &Filters, all: bool) -> anyhow::Result<Vec<Listed>> {
    let (records, users) = store.db().read(images::records_and_users)?;
    let mut groups: BTreeMap<Digest, (strata_types::Descriptor, Digest, Vec<Reference>)> =
        BTreeMap::new();
    for rec in records.iter().filter(|r| filters.keeps(r)) {
        let group = groups
            .entry(rec.target.digest.clone())
            .or_insert_with(|| (rec.target.clone(), images::image_id(rec), Vec::new()));
        if !is_dangling(rec)
            && let Ok(name) = Reference::parse(&rec.name)
        {
            group.2.push(name);
        }
    }
    let hide_dangling = !all && filters.dangling != Some(true);
    let sn = open_snapshotter(store);
    let mut sizer = Sizer::new(store.content(), sn.as_deref())?;
    let matcher = Matcher::host();
    let mut out = Vec::new();
    for (digest, (target, id, mut names)) in groups {
        if names.is_empty() && hide_dangling {
            continue;
        }
        // One unreadable image does not hide the others (it lists with what is known).
        let summary = sizer.summarize_lenient(&target, &matcher);
        if !filters.keeps_labels(&summary) {
            continue;
        }
        names.sort_by_key(Reference::familiar);
        out.push(Listed {
            created: created_of(&summary),
            containers: users.get(&digest).copied().unwrap_or(0),
            summary,
            id,
            names,
        });
    }
    // Newest first, as Docker sorts.
    out.sort_by_key(|l| std::cmp::Reverse(l.created));
    Ok(out)
}

/// The `created` time of the image's best manifest's config.
pub(super) fn created_of(summary: &ImageSummary) -> Option<SystemTime> {
    summary
        .best()
        .and_then(|m| m.config.as_ref())
        .and_then(|c| c.created.as_deref())
        .and_then(parse_rfc3339)
}

/// One row of the image list, for the name `(repository, tag, digest)`; Docker's JSON fields.
pub(super) fn list_item(
    image: &Listed,
    (repo, tag, digest): (String, String, String),
    no_trunc: bool,
) -> serde_json::Value {
    let size = human_size(image.summary.size());
    json!({
        "Containers": image.containers.to_string(),
        "CreatedAt": go_time(image.created.unwrap_or(UNIX_EPOCH)),
        "CreatedSince": image.created.map(ago).unwrap_or_default(),
        "Digest": digest,
        "ID": image_id(&image.id, no_trunc),
        "Repository": repo,
        "SharedSize": "N/A",
        "Size": size,
        "Tag": tag,
        "UniqueSize": "N/A",
        "VirtualSize": size,
    })
}

/// Docker's `TruncateID`: the hex without the algorithm, 12 digits.
pub(super) fn image_id(digest: &Digest, no_trunc: bool) -> String {
    if no_trunc {
        digest.to_string()
    } else {
        images::short_id(digest).to_owned()
    }
}

fn list(store: &Store, args: &ListArgs) -> anyhow::Result<()> {
    if args.tree && (args.quiet || args.no_trunc || args.digests || args.format.is_some()) {
        bail!("--tree cannot be combined with --quiet, --no-trunc, --digests or --format");
    }
    let filters = Filters::parse(args)?;
    let listed = list_images(store, &filters, args.all)?;
    if args.tree {
        return super::image_tree::print(&listed);
    }
    let show_digest = args.digests
        || args
            .format
            .as_deref()
            .is_some_and(|f| f.contains("{{.Digest}}"));
    let mut items = Vec::new();
    for image in &listed {
        let digest = image.summary.target.digest.to_string();
        let mut rows: Vec<(String, String, String)> = image
            .names
            .iter()
            .map(|n| match n.tag() {
                Some(tag) => (
                    n.familiar_name(),
                    tag.to_owned(),
                    if show_digest {
                        digest.clone()
                    } else {
                        "<none>".to_owned()
                    },
                ),
                None => (n.familiar_name(), "<none>".to_owned(), digest.clone()),
            })
            .collect();
        if rows.is_empty() {
            rows.push(("<none>".into(), "<none>".into(), "<none>".into()));
        }
        for row in rows {
            items.push(list_item(image, row, args.no_trunc));
        }
    }
    let format = match args.format.as_deref() {
        // As Docker: `--digests` adds the column to a custom table that lacks it.
        Some(f) if args.digests && f.starts_with("table") && !f.contains("{{.Digest}}") => {
            Some(format!("{f}\t{{{{.Digest}}}}"))
        }
        f => f.map(str::to_owned),
    };
    let default = if args.digests { TABLE_DIGESTS } else { TABLE };
    print_list(
        &items,
        format.as_deref(),
        args.quiet,
        "ID",
        default,
        HEADERS,
    )
}
