//! `strata load`: images from a tar archive or a directory (OCI image layout).

use std::io::{self, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use strata_types::{Matcher, Platform};

use strata_engine::load::{LoadOptions, LoadSource, load};
use strata_engine::store::Store;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from a tar archive file (plain, gzip or zstd; OCI layout or Docker archive) or an OCI layout directory, instead of STDIN.
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    quiet: bool,
    /// Unpack the variant for this platform (os/arch[/variant]) instead of the host's.
    #[arg(long)]
    platform: Option<String>,
    /// Name images that the archive names only by tag as BASE:TAG (like `ctr images import --base-name`).
    #[arg(long)]
    base_name: Option<String>,
}

pub fn run(store: &Store, args: &LoadArgs) -> anyhow::Result<()> {
    let platform = match &args.platform {
        Some(p) => Matcher::only(&p.parse::<Platform>()?),
        None => Matcher::host(),
    };
    let opts = LoadOptions {
        base_name: args.base_name.as_deref(),
        platform,
    };
    let sn = store.snapshotter()?;
    let mut stdin = io::stdin().lock();
    let source = match &args.input {
        Some(path) => LoadSource::Path(path),
        None if stdin.is_terminal() => {
            bail!(
                "requested load from stdin, but stdin is empty: use -i FILE or pipe an archive in"
            )
        }
        None => LoadSource::Stream(&mut stdin),
    };
    let loaded = load(store, sn.as_ref(), source, &opts).context("load")?;
    if !args.quiet {
        for image in loaded {
            match image.name {
                Some(name) => println!("Loaded image: {}", name.familiar()),
                None => println!("Loaded image ID: {}", image.target.digest),
            }
        }
    }
    Ok(())
}
