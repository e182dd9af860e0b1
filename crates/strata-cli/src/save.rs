//! `strata save`: images as a tar archive (OCI layout + Docker's `manifest.json`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use strata_types::Platform;

use strata_engine::save::{SaveOptions, save};
use strata_engine::store::Store;

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Save only this platform's variant of a multi-platform image (os/arch[/variant]).
    #[arg(long)]
    platform: Option<String>,
    /// Images to save: names (a name without tag saves every tag), IDs or name@digest.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn run(store: &Store, args: &SaveArgs) -> anyhow::Result<()> {
    let opts = SaveOptions {
        platform: args
            .platform
            .as_deref()
            .map(str::parse::<Platform>)
            .transpose()?,
    };
    let saved = match &args.output {
        Some(path) => to_file(path, |out| {
            save(store, &args.images, &opts, out).context("save")
        })?,
        None => {
            let stdout = io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
            let saved = save(store, &args.images, &opts, &mut out).context("save")?;
            out.flush().context("save: write archive")?;
            saved
        }
    };
    for b in &saved.rebuilt {
        eprintln!(
            "layer {} could not be fetched from its source ({}): rebuilt from its unpacked \
             snapshot and compressed again as {}; the archive's manifest names the new digest",
            b.old, b.why, b.new
        );
    }
    for (name, platforms) in &saved.missing {
        eprintln!(
            "{name}: not present locally, left out of the archive: {}",
            platforms.join(", ")
        );
    }
    Ok(())
}

/// Runs `write` on a temporary file beside `path`, then renames it into place: a failure
/// leaves no file behind, and never half of one.
fn to_file<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let name = path
        .file_name()
        .with_context(|| format!("invalid output path {}", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!(
            "invalid output path: directory {:?} does not exist",
            dir.display().to_string()
        );
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        strata_engine::unique_suffix()
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    let result = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let value = write(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("write {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("sync {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(value)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
