//! `diff`, `commit`, `export`: a container's filesystem changes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use strata_remote::Reference;

use super::timefmt::rfc3339;
use strata_engine::containers::commit::{CommitOptions, commit};
use strata_engine::containers::{changes, lookup};
use strata_engine::store::Store;

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[arg(value_name = "CONTAINER")]
    container: String,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short = 'a', long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short = 'c', long = "change", value_name = "CHANGE")]
    change: Vec<String>,
    /// Commit message.
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Pause the container during commit.
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    #[arg(value_name = "CONTAINER")]
    container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[arg(value_name = "CONTAINER")]
    container: String,
}

pub fn diff(store: &Store, args: &DiffArgs) -> anyhow::Result<()> {
    let sn = store.snapshotter()?;
    let record = store.db().read(|tx| Ok(lookup(tx, &args.container)))??;
    let key = record
        .snapshot_key
        .as_deref()
        .context("the container has no writable layer")?;
    let mut out = std::io::stdout().lock();
    for c in changes::changes(sn.as_ref(), key)? {
        writeln!(out, "{} {}", c.kind, c.path)?;
    }
    Ok(out.flush()?)
}

pub fn commit_cmd(store: &Store, args: &CommitArgs) -> anyhow::Result<()> {
    let sn = store.snapshotter()?;
    let record = store.db().read(|tx| Ok(lookup(tx, &args.container)))??;
    let name = args
        .reference
        .as_deref()
        .map(|r| Reference::parse(r).with_context(|| format!("invalid reference format: {r}")))
        .transpose()?;
    let opts = CommitOptions {
        author: args.author.clone(),
        message: args.message.clone(),
        changes: args.change.clone(),
        pause: args.pause,
        created: rfc3339(std::time::SystemTime::now()),
    };
    let target = commit(store, sn.as_ref(), &record, name.as_ref(), &opts)?;
    println!("{}", target.digest);
    Ok(())
}

pub fn export(store: &Store, args: &ExportArgs) -> anyhow::Result<()> {
    let sn = store.snapshotter()?;
    let record = store.db().read(|tx| Ok(lookup(tx, &args.container)))??;
    match &args.output {
        Some(path) => {
            // Written beside the target and renamed: never half an archive under its name.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("create {}", path.display()))?;
            strata_engine::containers::export::export(
                store,
                sn.as_ref(),
                &record,
                std::io::BufWriter::new(tmp.as_file_mut()),
            )?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("write {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut out = std::io::BufWriter::new(stdout.lock());
            strata_engine::containers::export::export(store, sn.as_ref(), &record, &mut out)?;
            out.flush()?;
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information).
    #[arg(short = 'a', long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH.
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// CONTAINER:SRC_PATH, or a host path, or - (a tar on stdin)
    #[arg(value_name = "SRC")]
    src: String,
    /// CONTAINER:DEST_PATH, or a host path, or - (a tar on stdout)
    #[arg(value_name = "DEST")]
    dest: String,
}

/// `CONTAINER:PATH` → (container, path); a host path (containing no `:` before a `/`) → None.
fn container_path(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    arg.split_once(':')
}

pub fn cp(store: &Store, args: &CpArgs) -> anyhow::Result<()> {
    let sn = store.snapshotter()?;
    let find = |c: &str| store.db().read(|tx| Ok(lookup(tx, c)));
    match (container_path(&args.src), container_path(&args.dest)) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        (Some((c, path)), None) => {
            let record = find(c)??;
            let dest = (args.dest != "-").then_some(args.dest.as_str());
            if dest.is_none() && std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut out = std::io::stdout().lock();
            strata_engine::containers::copy::copy_out(
                store,
                sn.as_ref(),
                &record,
                path,
                dest,
                args.follow_link,
                args.archive,
                &mut out,
            )?;
            out.flush()?;
        }
        (None, Some((c, path))) => {
            let record = find(c)??;
            let src = (args.src != "-").then_some(args.src.as_str());
            strata_engine::containers::copy::copy_in(
                store,
                sn.as_ref(),
                &record,
                src,
                path,
                args.follow_link,
                args.archive,
                &mut std::io::stdin(),
            )?;
        }
    }
    Ok(())
}
