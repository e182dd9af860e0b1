//! `strata import`: a root filesystem tar becomes a one-layer image.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Args;
use strata_remote::Reference;
use strata_types::Platform;

use super::timefmt::rfc3339;
use strata_engine::import::{ImportOptions, import};
use strata_engine::store::Store;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL).
    #[arg(short, long, value_name = "CHANGE")]
    change: Vec<String>,
    /// Set the commit message (history comment) of the image.
    #[arg(short, long)]
    message: Option<String>,
    /// Set the platform of the image (os/arch[/variant]; default: the host's).
    #[arg(long)]
    platform: Option<String>,
    /// A tar file (plain, gzip or zstd), or `-` for STDIN.
    #[arg(value_name = "FILE|-")]
    file: String,
    /// Name of the image.
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
}

pub fn run(store: &Store, args: &ImportArgs) -> anyhow::Result<()> {
    let name = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()
        .context("import")?;
    let opts = ImportOptions {
        changes: args.change.clone(),
        message: args.message.clone(),
        platform: match &args.platform {
            Some(p) => p.parse::<Platform>()?,
            None => Platform::host(),
        },
        created: rfc3339(SystemTime::now()),
    };
    let sn = store.snapshotter()?;
    let mut stdin;
    let mut file;
    let (src, source_name): (&mut dyn Read, String) = if args.file == "-" {
        stdin = io::stdin().lock();
        if stdin.is_terminal() {
            bail!("import: requested import from stdin, but stdin is a terminal: pipe a tar in");
        }
        (&mut stdin, "-".to_owned())
    } else {
        file = File::open(Path::new(&args.file))
            .with_context(|| format!("import: open {}", args.file))?;
        (&mut file, args.file.clone())
    };
    let target =
        import(store, sn.as_ref(), src, &source_name, name.as_ref(), &opts).context("import")?;
    println!("{}", target.digest);
    Ok(())
}
