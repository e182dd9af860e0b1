//! `strata images --tree`: each image with its platform variants and attestations under it.
//!
//! ```text
//! IMAGE                              ID             DISK USAGE   CONTENT SIZE   UNPACKED SIZE   STATE
//! multi:1                            8f1c0e1d2a3b   24.6kB       12.3kB         12.3kB
//! ├─ linux/amd64                     0b2c4d6e8f00   20.5kB       8.2kB          12.3kB          unpacked
//! ├─ linux/arm64/v8                  77aa00bb11cc   4.1kB        4.1kB          0B              not unpacked
//! └─ attestation for linux/amd64     c0ffee000000   1.2kB        1.2kB          -
//! ```
//!
//! DISK USAGE is content plus unpacked size, as Docker's `--tree`; STATE says whether a
//! variant is unpacked (its top snapshot exists), present but not unpacked, or incomplete
//! (some of its blobs are not in the content store), and "in use" for an image a container
//! uses.

use std::io::{self, Write};

use strata_format::{TabWriter, human_size};

use super::image::Listed;
use strata_engine::images::{ManifestKind, ManifestSummary, short_id};

const HEADER: &str = "IMAGE\tID\tDISK USAGE\tCONTENT SIZE\tUNPACKED SIZE\tSTATE\n";

pub(super) fn print(listed: &[Listed]) -> anyhow::Result<()> {
    let mut order: Vec<(Option<String>, &Listed)> = listed
        .iter()
        .map(|l| (l.names.first().map(|n| n.familiar()), l))
        .collect();
    // By name, untagged images last.
    order.sort_by(|a, b| (a.0.is_none(), &a.0).cmp(&(b.0.is_none(), &b.0)));
    let mut tw = TabWriter::docker();
    tw.write_str(HEADER);
    for (_, image) in order {
        let s = &image.summary;
        let names: Vec<String> = if image.names.is_empty() {
            vec!["<untagged>".to_owned()]
        } else {
            image.names.iter().map(|n| n.familiar()).collect()
        };
        if let Some((last, others)) = names.split_last() {
            for name in others {
                tw.write_str(&format!("{name}\t\t\t\t\t\n"));
            }
            tw.write_str(&format!(
                "{last}\t{}\t{}\t{}\t{}\t{}\n",
                short_id(&image.id),
                human_size(s.size()),
                human_size(s.content_size()),
                human_size(s.unpacked_size()),
                if image.containers > 0 { "in use" } else { "" },
            ));
        }
        let n = s.manifests.len();
        for (i, m) in s.manifests.iter().enumerate() {
            let branch = if i + 1 == n { "└─" } else { "├─" };
            let (label, unpacked, state) = match &m.kind {
                ManifestKind::Image => (m.platform_string(), human_size(m.unpacked_size), state(m)),
                ManifestKind::Attestation { subject } => (
                    format!(
                        "attestation for {}",
                        subject
                            .as_ref()
                            .and_then(|d| s.platform_of(d))
                            .unwrap_or_else(|| "unknown".to_owned())
                    ),
                    "-".to_owned(),
                    "",
                ),
            };
            tw.write_str(&format!(
                "{branch} {label}\t{}\t{}\t{}\t{unpacked}\t{state}\n",
                short_id(&m.descriptor.digest),
                human_size(m.size()),
                human_size(m.content_size),
            ));
        }
    }
    let text = tw.flush();
    let mut out = io::stdout().lock();
    for line in text.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(out.flush()?)
}

fn state(m: &ManifestSummary) -> &'static str {
    if m.unpacked {
        "unpacked"
    } else if m.available {
        "not unpacked"
    } else {
        "incomplete"
    }
}
