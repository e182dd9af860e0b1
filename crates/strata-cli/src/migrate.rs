//! `strata migrate`: the images of Docker's classic overlay2 store, without the network.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use strata_format::{TabWriter, human_size};

use strata_engine::images::short_id;
use strata_engine::migrate::{DockerStore, Threshold, check_threshold, migrate, plan};
use strata_engine::store::Store;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The Docker data root to read (it is never modified; stop dockerd first).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/docker")]
    from: PathBuf,
    /// Migrate only a store without containers and with at most N images (a number), or at most SIZE bytes of layers (a number with a unit: 20GB, 512MiB).
    #[arg(long, value_name = "N|SIZE")]
    threshold: Option<Threshold>,
    /// Copy every layer file, instead of cloning (reflink) or hardlinking Docker's where the filesystem allows.
    #[arg(long)]
    copy: bool,
    /// Show what would be migrated, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print only the migrated image IDs.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(store: &Store, args: &MigrateArgs) -> anyhow::Result<()> {
    let src = DockerStore::open(&args.from).context("migrate")?;
    if let Some(threshold) = args.threshold {
        check_threshold(&src, threshold).context("migrate")?;
    }
    let sn = store.snapshotter()?;
    let containers = match src.containers {
        0 => String::new(),
        1 => "; its 1 container is not migrated".to_owned(),
        n => format!("; its {n} containers are not migrated"),
    };
    if args.dry_run {
        let planned = plan(store, sn.as_ref(), &src).context("migrate")?;
        let size: u64 = planned.iter().map(|p| p.size).sum();
        if args.quiet {
            for p in &planned {
                println!("{}", p.id);
            }
            return Ok(());
        }
        println!(
            "Would migrate {} image{} from {} ({} of layers to bring in){containers}:",
            planned.len(),
            if planned.len() == 1 { "" } else { "s" },
            src.root.display(),
            human_size(size)
        );
        let mut tw = TabWriter::docker();
        tw.write_str("IMAGE ID\tNAMES\tLAYERS\tPRESENT\tSIZE\n");
        for p in &planned {
            let names = if p.names.is_empty() {
                "<none>".to_owned()
            } else {
                p.names.join(", ")
            };
            tw.write_str(&format!(
                "{}\t{names}\t{}\t{}\t{}\n",
                short_id(&p.id),
                p.layers,
                p.present,
                human_size(p.size)
            ));
        }
        print!("{}", tw.flush());
        return Ok(());
    }
    let mut images = 0;
    let mut layers = 0;
    let mut reused = strata_archive::Reused::default();
    let migrated = migrate(store, sn.as_ref(), &src, !args.copy, |m| {
        images += 1;
        layers += m.new_layers;
        reused += m.reused;
        if args.quiet {
            println!("{}", m.id);
        } else if m.names.is_empty() {
            println!("Migrated image ID: {}", m.id);
        } else {
            for name in &m.names {
                println!("Migrated image: {}", name.familiar());
            }
        }
    });
    migrated.with_context(|| {
        format!(
            "migrate from {} ({images} images done; running it again goes on from there)",
            src.root.display()
        )
    })?;
    if !args.quiet {
        let shared = match (reused.cloned, reused.linked) {
            (0, 0) => String::new(),
            (c, l) => format!(
                "; {} of files shared with the source, not copied ({c} cloned, {l} hardlinked)",
                human_size(reused.bytes)
            ),
        };
        eprintln!(
            "Migrated {images} image{} ({layers} new layer{}) from {}{shared}{containers}",
            if images == 1 { "" } else { "s" },
            if layers == 1 { "" } else { "s" },
            src.root.display()
        );
    }
    Ok(())
}
