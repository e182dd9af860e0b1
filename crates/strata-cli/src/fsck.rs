//! `strata fsck`: the store's database against its files (see `strata_engine::fsck`).

use anyhow::bail;
use clap::Args;
use serde_json::json;

use strata_engine::fsck::{FsckOptions, Severity, fsck as check};
use strata_engine::store::Store;

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Remove orphans (files, directories, ingests and mounts nothing references) and the
    /// records of missing or corrupt data, so the next pull or load restores it.
    #[arg(long)]
    repair: bool,
    /// Also re-hash every blob against its digest (reads all content).
    #[arg(long)]
    verify_content: bool,
    /// Print findings as JSON lines instead of text.
    #[arg(long, value_parser = ["json"])]
    format: Option<String>,
}

pub fn run(store: &Store, args: &FsckArgs) -> anyhow::Result<()> {
    let opts = FsckOptions {
        repair: args.repair,
        verify_content: args.verify_content,
    };
    let report = check(store, &opts)?;
    let word = |s: Severity| match s {
        Severity::Orphan => "orphan",
        Severity::Problem => "problem",
    };
    for f in &report.findings {
        if args.format.is_some() {
            let line = json!({"Severity": word(f.severity), "Subject": f.subject,
                              "Detail": f.detail, "Repaired": f.repaired});
            println!("{line}");
        } else {
            let done = f
                .repaired
                .as_deref()
                .map_or_else(String::new, |r| format!(": {r}"));
            println!("{:<8} {}: {}{done}", word(f.severity), f.subject, f.detail);
        }
    }
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    let (orphans, problems) = (count(Severity::Orphan), count(Severity::Problem));
    let unresolved = report.unresolved_problems();
    if args.format.is_none() {
        let hint = if !args.repair && orphans + problems > 0 {
            " (`strata fsck --repair` fixes them)"
        } else {
            ""
        };
        eprintln!(
            "fsck: {} records checked: {problems} problem(s), {orphans} orphan(s){hint}",
            report.checked
        );
    }
    if unresolved > 0 && args.repair {
        bail!("{unresolved} problem(s) could not be repaired (see the lines above)");
    }
    if unresolved > 0 {
        bail!(
            "{unresolved} problem(s): data the store records is missing or corrupt (run \
             `strata fsck --repair`, then pull or load the affected images again)"
        );
    }
    Ok(())
}
