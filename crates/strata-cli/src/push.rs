//! `strata push`: an image to its registry, with Docker's output.

use std::io::{self, IsTerminal, Write};

use anyhow::bail;
use clap::Args;
use strata_remote::Reference;
use strata_remote::media::{is_config, is_layer};
use strata_types::Platform;

use super::progress::{Rows, bar, short};
use strata_engine::Engine;
use strata_engine::push::{BlobOutcome, PushEvent, PushOptions, Pushed};
use strata_engine::store::Store;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Push all tags of the image's repository.
    #[arg(short = 'a', long)]
    all_tags: bool,
    /// Push only the manifest of this platform (os/arch[/variant]) of a multi-platform image.
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output: print only the pushed reference.
    #[arg(short, long)]
    quiet: bool,
    /// How many blobs are uploaded at the same time.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent_uploads: u32,
    /// NAME[:TAG] or NAME@DIGEST.
    name: String,
}

pub fn run(engine: &Engine, args: &PushArgs) -> anyhow::Result<()> {
    let store = engine.store();
    let r = Reference::parse(&args.name)?;
    let opts = PushOptions {
        platform: args
            .platform
            .as_deref()
            .map(str::parse::<Platform>)
            .transpose()?,
        max_concurrent_uploads: args.max_concurrent_uploads as usize,
    };
    let refs = if args.all_tags {
        if has_tag_or_digest(&args.name) {
            bail!("tag can't be used with --all-tags/-a");
        }
        tags_of(store, &r)?
    } else {
        vec![r.clone()]
    };
    let mut out = io::stdout();
    if !args.quiet {
        writeln!(out, "The push refers to repository [{}]", r.name())?;
    }
    for r in &refs {
        let mut lines = Lines {
            tty: out.is_terminal(),
            rows: Rows::default(),
        };
        let mut progress = |event: PushEvent<'_>| {
            if !args.quiet {
                lines.show(&event);
            }
        };
        let pushed = engine.push(r, &opts, &mut progress)?;
        report(&mut out, &pushed, args.quiet)?;
    }
    Ok(())
}

/// The per-blob lines of a push, as Docker prints them: plain lines as blobs finish, or on a
/// terminal one line per layer and config, updated in place (`Preparing`, `Pushing [==>  ]
/// 1.2MB/3.4MB`, `Pushed`).
struct Lines {
    tty: bool,
    rows: Rows,
}

impl Lines {
    fn show(&mut self, event: &PushEvent<'_>) {
        let (desc, status, done) = match event {
            PushEvent::Preparing { desc } => (desc, "Preparing".to_owned(), false),
            PushEvent::Uploading { desc, sent } => {
                (desc, format!("Pushing {}", bar(*sent, desc.size)), false)
            }
            PushEvent::Blob { desc, outcome } => (desc, finished(outcome), true),
        };
        if !is_layer(&desc.media_type) && !is_config(&desc.media_type) {
            return;
        }
        let id = short(&desc.digest);
        if !self.tty {
            if done {
                // A closed pipe ends nothing here; the final lines report it.
                let _ = writeln!(io::stdout().lock(), "{id}: {status}");
            }
            return;
        }
        self.rows.set(id, status);
        self.rows.draw();
    }
}

fn finished(outcome: &BlobOutcome) -> String {
    match outcome {
        BlobOutcome::Exists => "Layer already exists".to_owned(),
        BlobOutcome::Mounted(from) => format!("Mounted from {from}"),
        BlobOutcome::Pushed => "Pushed".to_owned(),
    }
}

fn report(out: &mut impl Write, pushed: &Pushed, quiet: bool) -> io::Result<()> {
    if quiet {
        writeln!(out, "{}", pushed.reference)?;
    } else if let Some(tag) = pushed
        .reference
        .tag()
        .filter(|_| pushed.reference.digest().is_none())
    {
        writeln!(
            out,
            "{tag}: digest: {} size: {}",
            pushed.target.digest, pushed.target.size
        )?;
    }
    for b in &pushed.rebuilt {
        eprintln!(
            "Info -> layer {} could not be fetched from its source ({}): rebuilt from its \
             unpacked snapshot and compressed again as {}",
            b.old, b.why, b.new
        );
    }
    if let Some(local) = &pushed.local_target {
        eprintln!(
            "Info -> the pushed {} differs from the local image's {}: rebuilt layers have new \
             digests",
            pushed.target.digest, local.digest
        );
    }
    match &pushed.index {
        Some(index) => eprintln!(
            "\nInfo -> Not all multiplatform-content is present and only the available \
             single-platform image was pushed\n        {} -> {}\n        missing locally: {}",
            index.digest,
            pushed.target.digest,
            pushed.missing.join(", ")
        ),
        None if !pushed.missing.is_empty() => eprintln!(
            "\nInfo -> Not present locally, already in the registry: {}",
            pushed.missing.join(", ")
        ),
        None => {}
    }
    Ok(())
}

/// Whether the name the user typed carries a tag or a digest (`-a` refuses those).
fn has_tag_or_digest(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.contains(':') || name.contains('@')
}

/// Every tagged image of `r`'s repository, in tag order.
fn tags_of(store: &Store, r: &Reference) -> anyhow::Result<Vec<Reference>> {
    let images = store.db().read(|tx| tx.images())?;
    let mut refs: Vec<Reference> = images
        .iter()
        .filter_map(|i| Reference::parse(&i.name).ok())
        .filter(|n| n.name() == r.name() && n.tag().is_some() && n.digest().is_none())
        .collect();
    refs.sort_by(|a, b| a.tag().cmp(&b.tag()));
    if refs.is_empty() {
        bail!(
            "An image does not exist locally with the tag: {}",
            r.familiar_name()
        );
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_digests_are_spotted() {
        assert!(!has_tag_or_digest("localhost:5000/app"));
        assert!(has_tag_or_digest("localhost:5000/app:v1"));
        assert!(has_tag_or_digest("app:v1"));
        assert!(!has_tag_or_digest("me/app"));
        assert!(has_tag_or_digest(&format!("app@sha256:{}", "0".repeat(64))));
    }
}
