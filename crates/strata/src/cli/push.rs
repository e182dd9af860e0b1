//! `strata push`: an image to its registry, with Docker's output.

use anyhow::{Context, bail};
use clap::Args;
use strata_remote::Reference;
use strata_remote::media::{is_config, is_layer};
use strata_types::Platform;

use crate::push::{BlobOutcome, PushEvent, PushOptions, Pushed, push};
use crate::store::Store;

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

pub fn run(store: &Store, args: &PushArgs) -> anyhow::Result<()> {
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
    let remote = crate::runtime::remote()?;
    let rt = crate::runtime::runtime().context("starting the network runtime")?;
    if !args.quiet {
        println!("The push refers to repository [{}]", r.name());
    }
    for r in &refs {
        let mut progress = |event: PushEvent<'_>| {
            if args.quiet {
                return;
            }
            let PushEvent::Blob { desc, outcome } = event;
            if !is_layer(&desc.media_type) && !is_config(&desc.media_type) {
                return;
            }
            let id = &desc.digest.hex()[..12];
            match outcome {
                BlobOutcome::Exists => println!("{id}: Layer already exists"),
                BlobOutcome::Mounted(from) => println!("{id}: Mounted from {from}"),
                BlobOutcome::Pushed => println!("{id}: Pushed"),
            }
        };
        let pushed = push(store, &remote, &rt, r, &opts, &mut progress)?;
        report(&pushed, args.quiet);
    }
    Ok(())
}

fn report(pushed: &Pushed, quiet: bool) {
    if quiet {
        println!("{}", pushed.reference);
    } else if let Some(tag) = pushed
        .reference
        .tag()
        .filter(|_| pushed.reference.digest().is_none())
    {
        println!(
            "{tag}: digest: {} size: {}",
            pushed.target.digest, pushed.target.size
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
