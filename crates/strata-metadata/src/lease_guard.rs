//! A lease as a value: made when an operation starts, ended when the value goes, so no path
//! out of the operation (an error, a panic unwinding) leaves it to its expiry.
//!
//! The guard names the lease ([`LeaseGuard::id`]) for the calls that add resources to it. It
//! ends the lease when dropped, logging a failure: the operation's own outcome is what its
//! caller needs, and a lease left behind pins nothing once it expires (or, with owner labels
//! its collector understands, once its process is gone). [`LeaseGuard::finish`] ends it and
//! returns the delete's result instead; [`LeaseGuard::keep`] leaves it to expire, for work
//! that a later operation resumes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::{Db, Labels, LeaseResource, MetaError};

/// A lease this process holds (see the module doc).
#[derive(Debug)]
#[must_use = "a lease guard ends its lease when dropped"]
pub struct LeaseGuard {
    db: Arc<Db>,
    id: String,
    /// Ended or kept already: nothing left for `drop`.
    done: bool,
}

impl LeaseGuard {
    /// Creates the lease `<prefix>/<unique>`, expiring `expiry` from now, with `labels` (who
    /// holds it: the caller's business, e.g. its process).
    pub fn create(
        db: &Arc<Db>,
        prefix: &str,
        expiry: Duration,
        labels: &Labels,
    ) -> Result<LeaseGuard, MetaError> {
        let id = format!("{prefix}/{}", strata_types::unique_suffix());
        let expires = SystemTime::now() + expiry;
        db.write(|tx| tx.create_lease(&id, Some(expires), labels))?;
        Ok(LeaseGuard {
            db: db.clone(),
            id,
            done: false,
        })
    }

    /// The lease's id, for the calls that put what the operation writes under it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Puts `resource` under the lease, in a transaction of its own.
    pub fn add(&self, resource: &LeaseResource) -> Result<(), MetaError> {
        self.add_all([resource.clone()])
    }

    /// Puts `resources` under the lease, in one transaction.
    pub fn add_all(
        &self,
        resources: impl IntoIterator<Item = LeaseResource>,
    ) -> Result<(), MetaError> {
        self.db.write(|tx| {
            for resource in resources {
                tx.add_lease_resource(&self.id, &resource)?;
            }
            Ok(())
        })
    }

    /// Moves the expiry to `expiry` from now: for an operation that runs longer than it
    /// thought.
    pub fn extend(&self, expiry: Duration) -> Result<(), MetaError> {
        let expires = SystemTime::now() + expiry;
        self.db
            .write(|tx| tx.set_lease_expiry(&self.id, Some(expires)))
    }

    /// Ends the lease now; what it held stays only if something else keeps it.
    pub fn finish(mut self) -> Result<(), MetaError> {
        self.done = true;
        self.delete()
    }

    /// Leaves the lease to its expiry (what it holds waits for a later operation to resume
    /// it); returns its id.
    pub fn keep(mut self) -> String {
        self.done = true;
        std::mem::take(&mut self.id)
    }

    fn delete(&self) -> Result<(), MetaError> {
        self.db.write(|tx| tx.delete_lease(&self.id))
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Err(e) = self.delete() {
            tracing::warn!("end lease {}: {e}", self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Arc<Db>) {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&dir.path().join("m.db")).unwrap());
        (dir, db)
    }

    fn lease_ids(db: &Db) -> Vec<String> {
        let leases = db.read(|tx| tx.leases()).unwrap();
        leases.into_iter().map(|l| l.id).collect()
    }

    #[test]
    fn a_dropped_guard_deletes_its_lease() {
        let (_dir, db) = db();
        let labels = Labels::from([("owner".into(), "me".into())]);
        let guard = LeaseGuard::create(&db, "pull", Duration::from_secs(60), &labels).unwrap();
        let id = guard.id().to_owned();
        assert!(id.starts_with("pull/"), "{id}");
        let lease = db.read(|tx| tx.lease(&id)).unwrap().unwrap();
        assert_eq!(lease.labels, labels);
        let snap = LeaseResource::Snapshot {
            snapshotter: "overlayfs".into(),
            key: "k".into(),
        };
        guard.add(&snap).unwrap();
        let blob = LeaseResource::Content(strata_types::Digest::sha256_of(b"blob"));
        guard.add_all([blob.clone(), snap.clone()]).unwrap();
        assert_eq!(db.read(|tx| tx.lease_resources(&id)).unwrap(), [blob, snap]);

        let other = LeaseGuard::create(&db, "pull", Duration::from_secs(60), &labels).unwrap();
        assert_ne!(other.id(), id, "each guard its own lease");
        drop(guard);
        assert_eq!(lease_ids(&db), [other.id()]);
        // Unwinding ends it too.
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = other;
            panic!("the operation failed");
        }));
        assert!(unwound.is_err());
        assert!(lease_ids(&db).is_empty());
    }

    #[test]
    fn finish_returns_the_delete_error() {
        let (_dir, db) = db();
        let guard =
            LeaseGuard::create(&db, "load", Duration::from_secs(60), &Labels::new()).unwrap();
        // Someone (a collection of an expired lease) deleted it first.
        db.write(|tx| tx.delete_lease(guard.id())).unwrap();
        assert!(matches!(
            guard.finish(),
            Err(MetaError::NotFound { what: "lease", .. })
        ));

        let guard =
            LeaseGuard::create(&db, "load", Duration::from_secs(60), &Labels::new()).unwrap();
        guard.finish().unwrap();
        assert!(lease_ids(&db).is_empty());

        // Dropped after the same loss: nothing to return it to, and no panic.
        let guard =
            LeaseGuard::create(&db, "load", Duration::from_secs(60), &Labels::new()).unwrap();
        db.write(|tx| tx.delete_lease(guard.id())).unwrap();
        drop(guard);
    }

    #[test]
    fn extend_moves_the_expiry_and_keep_leaves_the_lease() {
        let (_dir, db) = db();
        let guard =
            LeaseGuard::create(&db, "ingest", Duration::from_secs(60), &Labels::new()).unwrap();
        let expires = |id: &str| {
            db.read(|tx| tx.lease(id))
                .unwrap()
                .unwrap()
                .expires
                .unwrap()
        };
        let first = expires(guard.id());
        let before = SystemTime::now();
        guard.extend(Duration::from_secs(3600)).unwrap();
        let extended = expires(guard.id());
        assert!(
            extended >= before + Duration::from_secs(3600),
            "{extended:?}"
        );
        assert!(extended > first + Duration::from_secs(3000));
        assert!(db.read(|tx| tx.expired_leases(first)).unwrap().is_empty());

        let id = guard.keep();
        assert_eq!(lease_ids(&db), [id.as_str()]);
        assert_eq!(expires(&id), extended);

        // A lease that is gone cannot be extended back into being.
        db.write(|tx| tx.delete_lease(&id)).unwrap();
        let guard =
            LeaseGuard::create(&db, "ingest", Duration::from_secs(60), &Labels::new()).unwrap();
        db.write(|tx| tx.delete_lease(guard.id())).unwrap();
        assert!(matches!(
            guard.extend(Duration::from_secs(60)),
            Err(MetaError::NotFound { .. })
        ));
        assert!(lease_ids(&db).is_empty());
    }
}
