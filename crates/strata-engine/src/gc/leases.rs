//! What the leases say, for one collection: which are live (roots, with what they keep) and
//! which are over. A lease is live until it expires or its owner dies ([`super::owner`]);
//! with `keep_resumable`, a dead owner's ingests stay live until the expiry, and so does the
//! lease that holds them.

use std::collections::HashSet;
use std::time::SystemTime;

use strata_metadata::{Lease, LeaseResource, MetaError, Tx};

use super::owner_dead;

/// The leases, sorted for one collection.
#[derive(Debug, Default)]
pub(crate) struct LeaseState {
    /// Live leases (roots) and what each keeps: everything, or a dead owner's resumable
    /// ingests only.
    pub live: Vec<(String, Vec<LeaseResource>)>,
    /// Ingests a live lease holds (or a dead owner's, kept resumable).
    pub live_ingests: HashSet<String>,
    /// Ingests only leases that are over held.
    pub ended_ingests: HashSet<String>,
    /// Leases that are over (expired, or of a dead owner and holding nothing kept): deleted.
    pub over: Vec<String>,
    /// What leases that are over (or of a dead owner) held, by lease: for `fsck`.
    pub left: Vec<(Lease, LeaseResource)>,
}

/// Reads and sorts the leases at `now`.
pub(crate) fn read_leases(
    tx: &Tx<'_>,
    now: SystemTime,
    keep_resumable: bool,
) -> Result<LeaseState, MetaError> {
    let mut state = LeaseState::default();
    for lease in tx.leases()? {
        let expired = lease.expires.is_some_and(|e| e <= now);
        let dead = !expired && owner_dead(&lease.labels);
        let mut kept = Vec::new();
        for r in tx.lease_resources(&lease.id)? {
            match r {
                LeaseResource::Ingest(i) if !expired && (!dead || keep_resumable) => {
                    state.live_ingests.insert(i.clone());
                    kept.push(LeaseResource::Ingest(i));
                }
                LeaseResource::Ingest(i) => {
                    state.ended_ingests.insert(i.clone());
                    state.left.push((lease.clone(), LeaseResource::Ingest(i)));
                }
                r if expired || dead => state.left.push((lease.clone(), r)),
                r => kept.push(r),
            }
        }
        if expired || (dead && kept.is_empty()) {
            state.over.push(lease.id);
        } else {
            state.live.push((lease.id, kept));
        }
    }
    // An ingest a live lease holds is not over because a dead one held it too.
    state
        .ended_ingests
        .retain(|i| !state.live_ingests.contains(i));
    Ok(state)
}
