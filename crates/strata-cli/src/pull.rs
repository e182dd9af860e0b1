//! `strata pull`: Docker's `docker pull`, plus containerd's `--all-platforms`.

use std::io::IsTerminal as _;

use clap::Args;
use strata_remote::Reference;
use strata_types::Platform;

use super::progress::PullDisplay;
use strata_engine::pull::{NoProgress, PullError, PullOptions};
use strata_engine::{Engine, EngineError};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Pull this platform's variant of a multi-platform image (os/arch[/variant]) instead
    /// of the host's.
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    /// Pull and unpack every platform of a multi-platform image (attestations are kept,
    /// never unpacked).
    #[arg(long, conflicts_with = "platform")]
    all_platforms: bool,
    /// Suppress verbose output: print only the image reference.
    #[arg(short, long)]
    quiet: bool,
    /// Layers downloaded and unpacked at once.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    max_concurrent_downloads: u32,
    /// Delete each layer's compressed blob once its unpacked snapshot is verified against it
    /// (the layer can be re-fetched or rebuilt for push and save). Default: the store's
    /// `discard-compressed` setting.
    #[arg(long)]
    discard_compressed: bool,
    /// Keep the compressed blobs even if the store's `discard-compressed` setting is on.
    #[arg(long, conflicts_with = "discard_compressed")]
    keep_compressed: bool,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

pub fn run(engine: &Engine, args: &PullArgs) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.name)?;
    let platform = args
        .platform
        .as_deref()
        .map(str::parse::<Platform>)
        .transpose()?;
    let opts = PullOptions {
        platform,
        all_platforms: args.all_platforms,
        max_concurrent_downloads: args.max_concurrent_downloads as usize,
        discard_compressed: match (args.discard_compressed, args.keep_compressed) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
    };
    let last = args.name.rsplit('/').next().unwrap_or_default();
    if !args.quiet && !last.contains(':') && !last.contains('@') {
        println!("Using default tag: {}", strata_remote::DEFAULT_TAG);
    }
    pull_with(engine, &reference, &opts, args.quiet, false)?;
    println!("{reference}");
    Ok(())
}

/// Pulls `reference` with Docker's display (on stderr when `stderr`: `run`'s stdout is the
/// container's), ending with the `Digest:` and `Status:` lines unless `quiet`.
pub fn pull_with(
    engine: &Engine,
    reference: &Reference,
    opts: &PullOptions,
    quiet: bool,
    stderr: bool,
) -> anyhow::Result<()> {
    let tty = if stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let display = PullDisplay::on(tty, stderr);
    let progress: &dyn strata_engine::pull::Progress = if quiet { &NoProgress } else { &display };
    let pulled = engine.pull_reference(reference, opts, progress);
    display.finish();
    let pulled = pulled.map_err(|e| match e {
        // These name the reference already.
        EngineError::Pull(
            PullError::Remote(_)
            | PullError::NoPlatform { .. }
            | PullError::PlatformMismatch { .. },
        ) => anyhow::Error::new(e),
        EngineError::Pull(_) => {
            anyhow::Error::new(e).context(format!("pull {}", reference.familiar()))
        }
        // Opening the snapshotter or the registry client.
        e => anyhow::Error::new(e),
    })?;
    if !quiet {
        let status = if pulled.up_to_date {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        let mut text = format!(
            "Digest: {}\nStatus: {status} {}",
            pulled.target.digest,
            reference.familiar()
        );
        let (count, bytes) = pulled.discarded;
        if count > 0 {
            text.push_str(&format!(
                "\nDiscarded {count} compressed layer{} after unpacking ({} freed)",
                if count == 1 { "" } else { "s" },
                strata_format::human_size(bytes)
            ));
        }
        if stderr {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
    Ok(())
}
