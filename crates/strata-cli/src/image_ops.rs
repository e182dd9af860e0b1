//! `strata tag`, `strata rmi` and `strata image prune`. `rmi` and `prune` remove image
//! records, then run the garbage collector, which frees what no record, container or lease
//! needs any more: the layers it removes are listed as Docker lists them, and prune prints the
//! bytes freed.

use std::io::{self, BufRead, Write};

use anyhow::{Context, bail};
use clap::Args;
use strata_format::human_size;
use strata_remote::Reference;

use super::output::fail_with_all;
use strata_engine::gc::GcOptions;
use strata_engine::images::{self, Removal};
use strata_engine::store::Store;
use strata_engine::{Engine, EngineError};

#[derive(Debug, Args)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
    /// Force removal of the image (several names, or used by a container).
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all images without a container, not just dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
}

pub fn tag(store: &Store, args: &TagArgs) -> anyhow::Result<()> {
    let name = Reference::parse(&args.target)?;
    if name.digest().is_some() {
        bail!(
            "refusing to create a tag with a digest reference: {}",
            args.target
        );
    }
    images::write(store.db(), |tx| {
        let source = images::resolve(tx, &args.source)?;
        images::set_image_name(tx, &name.to_string(), source.target())?;
        Ok(())
    })?;
    Ok(())
}

fn print_removals(out: &mut impl Write, removals: &[Removal], lower: bool) -> io::Result<()> {
    for r in removals {
        let (word, what) = match r {
            Removal::Untagged(name) => ("Untagged", name.clone()),
            Removal::Deleted(digest) => ("Deleted", digest.to_string()),
        };
        if lower {
            writeln!(out, "{}: {what}", word.to_lowercase())?;
        } else {
            writeln!(out, "{word}: {what}")?;
        }
    }
    Ok(())
}

pub fn rmi(engine: &Engine, args: &RmiArgs) -> anyhow::Result<()> {
    let mut errors: Vec<EngineError> = Vec::new();
    let mut out = io::stdout().lock();
    let mut removed = false;
    for arg in &args.images {
        match engine.remove_image(arg, args.force) {
            Ok(removals) => {
                removed |= removals.iter().any(|r| matches!(r, Removal::Deleted(_)));
                print_removals(&mut out, &removals, false)?;
            }
            Err(e) => errors.push(e),
        }
    }
    if removed {
        // The layers no other image uses, as Docker lists the layers an rmi deletes.
        let collected = engine.collect_garbage(&GcOptions::default())?;
        for layer in collected.removed_layers() {
            writeln!(out, "Deleted: {layer}")?;
        }
    }
    out.flush()?;
    fail_with_all(errors)
}

pub(super) fn confirm(question: &str) -> anyhow::Result<bool> {
    print!("{question}\nAre you sure you want to continue? [y/N] ");
    io::stdout().flush()?;
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("read answer")?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

fn what_images(all: bool) -> &'static str {
    if all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    }
}

pub fn prune(engine: &Engine, args: &PruneArgs) -> anyhow::Result<()> {
    let question = format!("WARNING! This will remove {}.", what_images(args.all));
    if !args.force && !confirm(&question)? {
        bail!("image prune has been cancelled");
    }
    prune_and_collect(engine, args.all, 0, &GcOptions::default())
}

/// `system prune`: images as `image prune` (there are no networks or build cache; stopped
/// containers will join when `run` lands), then garbage collection of the whole store.
pub fn system_prune(engine: &Engine, args: &PruneArgs) -> anyhow::Result<()> {
    let question = format!(
        "WARNING! This will remove:\n  - all stopped containers\n  - {}\n  - content, snapshots and ingests nothing uses, and leases that expired or whose process is gone\n",
        what_images(args.all)
    );
    if !args.force && !confirm(&question)? {
        bail!("system prune has been cancelled");
    }
    let containers = engine.prune_containers()?;
    if !containers.deleted.is_empty() {
        println!("Deleted Containers:\n{}\n", containers.deleted.join("\n"));
    }
    // An explicit cleanup: partial downloads nobody is writing go too (a full disk is the
    // usual reason to run it).
    let reclaimed = containers.reclaimed;
    prune_and_collect(engine, args.all, reclaimed, &GcOptions::free_everything())
}

/// Removes the dangling (`all`: unused) image records, collects garbage and prints both.
fn prune_and_collect(
    engine: &Engine,
    all: bool,
    reclaimed: u64,
    gc: &GcOptions,
) -> anyhow::Result<()> {
    let removals = engine.prune_images(all)?;
    let collected = engine.collect_garbage(gc)?;
    let mut out = io::stdout().lock();
    let layers: Vec<&str> = collected.removed_layers().collect();
    if !removals.is_empty() || !layers.is_empty() {
        writeln!(out, "Deleted Images:")?;
        print_removals(&mut out, &removals, true)?;
        for layer in layers {
            writeln!(out, "deleted: {layer}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size(collected.reclaimed() + reclaimed)
    )?;
    Ok(out.flush()?)
}
