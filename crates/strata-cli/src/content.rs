//! `strata content`: the content store by hand, for debugging and tests (ctr's `content`).

use std::fs::File;
use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use strata_content::{ContentError, WriterOptions};
use strata_format::{human_duration, human_size};
use strata_metadata::{BlobRecord, Labels, LeaseGuard, MetaError};
use strata_types::Digest;

use super::output::{print_inspect, print_list};
use super::timefmt::{go_time, rfc3339};
use super::{labels_string, parse_labels};
use strata_engine::store::Store;

/// How long an interrupted `content ingest` stays protected from garbage collection.
const INGEST_LEASE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Subcommand)]
pub enum ContentCommand {
    /// List blobs.
    #[command(visible_alias = "list")]
    Ls {
        /// Only display digests.
        #[arg(short, long)]
        quiet: bool,
        /// Format output: table, table TEMPLATE, json, or a Go template.
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more blobs.
    Info {
        #[arg(required = true)]
        digests: Vec<String>,
        /// Format output using a Go template, or json.
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Write a blob to stdout.
    Get { digest: String },
    /// Remove one or more blobs.
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        digests: Vec<String>,
    },
    /// Write a blob read from stdin, verified against --expected. An interrupted ingest with
    /// the same ref resumes where it stopped.
    Ingest {
        /// The digest the blob must have.
        #[arg(long)]
        expected: String,
        /// The size the blob must have, in bytes; a shorter input is kept to be resumed.
        #[arg(long)]
        size: Option<u64>,
        /// Name of the ingest (default: the expected digest).
        #[arg(long = "ref")]
        ingest_ref: Option<String>,
        /// Set a label on the blob (KEY=VALUE).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// List ingests in progress or interrupted.
    Active {
        /// Only display refs.
        #[arg(short, long)]
        quiet: bool,
        /// Format output: table, table TEMPLATE, json, or a Go template.
        #[arg(long)]
        format: Option<String>,
    },
    /// Set (KEY=VALUE) or remove (KEY= or KEY) labels on a blob.
    Label {
        digest: String,
        #[arg(required = true)]
        labels: Vec<String>,
    },
}

pub fn run(store: &Store, cmd: &ContentCommand) -> anyhow::Result<()> {
    match cmd {
        ContentCommand::Ls { quiet, format } => ls(store, *quiet, format.as_deref()),
        ContentCommand::Info { digests, format } => info(store, digests, format.as_deref()),
        ContentCommand::Get { digest } => get(store, digest),
        ContentCommand::Rm { digests } => rm(store, digests),
        ContentCommand::Ingest {
            expected,
            size,
            ingest_ref,
            labels,
        } => ingest(store, expected, *size, ingest_ref.as_deref(), labels),
        ContentCommand::Active { quiet, format } => active(store, *quiet, format.as_deref()),
        ContentCommand::Label { digest, labels } => label(store, digest, labels),
    }
}

fn parse_digest(s: &str) -> anyhow::Result<Digest> {
    Ok(s.parse()?)
}

fn since(t: SystemTime) -> String {
    human_duration(SystemTime::now().duration_since(t).unwrap_or_default())
}

fn ls(store: &Store, quiet: bool, format: Option<&str>) -> anyhow::Result<()> {
    let items: Vec<Value> = store
        .content()
        .list()?
        .into_iter()
        .map(|b| {
            // A discarded blob's size is that of bytes not on disk (`pull --discard-compressed`).
            let size = if b.discarded {
                format!("{} (discarded)", human_size(b.size))
            } else {
                human_size(b.size)
            };
            json!({
                "Digest": b.digest.to_string(),
                "Size": size,
                "SizeBytes": b.size,
                "Discarded": b.discarded,
                "Age": since(b.created),
                "CreatedAt": go_time(b.created),
                "Labels": labels_string(&b.labels),
            })
        })
        .collect();
    print_list(
        &items,
        format,
        quiet,
        "Digest",
        "{{.Digest}}\t{{.Size}}\t{{.Age}}\t{{.Labels}}",
        &[
            ("Digest", "DIGEST"),
            ("Size", "SIZE"),
            ("SizeBytes", "BYTES"),
            ("Age", "AGE"),
            ("CreatedAt", "CREATED AT"),
            ("Labels", "LABELS"),
        ],
    )
}

fn inspect_value(b: &BlobRecord) -> Value {
    json!({
        "Digest": b.digest.to_string(),
        "Size": b.size,
        "Discarded": b.discarded,
        "CreatedAt": rfc3339(b.created),
        "UpdatedAt": rfc3339(b.updated),
        "Labels": b.labels,
    })
}

fn info(store: &Store, digests: &[String], format: Option<&str>) -> anyhow::Result<()> {
    let mut items = Vec::new();
    for d in digests {
        items.push(inspect_value(&store.content().info(&parse_digest(d)?)?));
    }
    print_inspect(&items, format)
}

fn get(store: &Store, digest: &str) -> anyhow::Result<()> {
    let digest = parse_digest(digest)?;
    let mut blob = store.content().reader(&digest)?;
    let mut out = io::stdout().lock();
    io::copy(&mut blob, &mut out).with_context(|| format!("write blob {digest} to stdout"))?;
    Ok(out.flush()?)
}

fn rm(store: &Store, digests: &[String]) -> anyhow::Result<()> {
    let mut failed = 0;
    for d in digests {
        match parse_digest(d).and_then(|digest| Ok(store.content().delete(&digest)?)) {
            Ok(()) => println!("{d}"),
            Err(e) => {
                // Like `docker rmi`: report each failure, go on, fail at the end.
                eprintln!("strata: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} blob(s) could not be removed", digests.len());
    }
    Ok(())
}

fn ingest(
    store: &Store,
    expected: &str,
    size: Option<u64>,
    ingest_ref: Option<&str>,
    labels: &[String],
) -> anyhow::Result<()> {
    let expected = parse_digest(expected)?;
    let ingest_ref = ingest_ref.map_or_else(|| expected.to_string(), str::to_owned);
    let mut stdin = io::stdin().lock();
    if stdin.is_terminal() {
        bail!("strata content ingest reads the blob from stdin: pipe or redirect it in");
    }
    // The lease keeps an interrupted ingest from being collected before it is resumed: on
    // any failure but a refused commit it is kept, to expire. It is this process's own
    // (several processes may be writing, or waiting on, the same ref), and names no owner:
    // what it holds waits for a resume after this process exits.
    let lease = LeaseGuard::create(store.db(), "ingest", INGEST_LEASE, &Labels::new())?;
    let opts = WriterOptions {
        expected: Some(expected.clone()),
        total: size,
        wait: true,
    };
    let mut writer = match store.content().writer(&ingest_ref, opts, Some(lease.id())) {
        Ok(w) => w,
        Err(MetaError::Content(ContentError::AlreadyExists(d))) => {
            lease.finish()?;
            tracing::info!("blob {d} already exists");
            println!("{d}");
            return Ok(());
        }
        Err(e) => return Err(kept(lease, e.into())),
    };
    if writer.offset() > 0 {
        eprintln!("resuming ingest {ingest_ref} at offset {}", writer.offset());
        if let Err(e) = skip_input(&mut stdin, writer.offset()) {
            let e = anyhow::Error::from(e).context("skip the part of stdin already ingested");
            return Err(kept(lease, e));
        }
    }
    if let Err(e) = writer.copy_from(&mut stdin) {
        return Err(kept(lease, e.into()));
    }
    let committed = store.content().commit(
        writer,
        size,
        Some(&expected),
        &parse_labels(labels),
        Some(lease.id()),
    );
    match committed {
        // The partial data waits to be resumed.
        Err(e @ MetaError::Content(ContentError::Truncated { .. })) => Err(kept(lease, e.into())),
        // The lease ends as it goes; the commit's error is the one to report.
        Err(e) => Err(e.into()),
        Ok(committed) => {
            lease.finish()?;
            println!("{}", committed.digest);
            Ok(())
        }
    }
}

/// `e`, with `lease` left to expire: what it holds is resumable.
fn kept(lease: LeaseGuard, e: anyhow::Error) -> anyhow::Error {
    lease.keep();
    e
}

/// Moves past the first `n` bytes of the input: a seek when stdin is a file, reading and
/// discarding otherwise.
fn skip_input(stdin: &mut io::StdinLock<'_>, n: u64) -> io::Result<()> {
    let fd = stdin.as_fd().try_clone_to_owned()?;
    let mut file = File::from(fd);
    if file.metadata().is_ok_and(|m| m.is_file()) && file.seek(SeekFrom::Current(n as i64)).is_ok()
    {
        return Ok(());
    }
    io::copy(&mut stdin.take(n), &mut io::sink())?;
    Ok(())
}

fn active(store: &Store, quiet: bool, format: Option<&str>) -> anyhow::Result<()> {
    let items: Vec<Value> = store
        .content()
        .ingests()?
        .into_iter()
        .map(|s| {
            json!({
                "Ref": s.r#ref,
                "Offset": s.offset,
                "Total": s.total,
                "Size": human_size(s.offset),
                "StartedAt": rfc3339(s.started),
                "UpdatedAt": rfc3339(s.updated),
                "Started": since(s.started),
                "Updated": since(s.updated),
            })
        })
        .collect();
    print_list(
        &items,
        format,
        quiet,
        "Ref",
        "{{.Ref}}\t{{.Size}}\t{{.Started}}\t{{.Updated}}",
        &[
            ("Ref", "REF"),
            ("Offset", "OFFSET"),
            ("Total", "TOTAL"),
            ("Size", "SIZE"),
            ("Started", "STARTED"),
            ("Updated", "UPDATED"),
        ],
    )
}

fn label(store: &Store, digest: &str, labels: &[String]) -> anyhow::Result<()> {
    let digest = parse_digest(digest)?;
    let rec = store
        .content()
        .update_labels(&digest, &parse_labels(labels))?;
    println!("{}", labels_string(&rec.labels));
    Ok(())
}
