//! Leases: short-lived roots that protect what a multi-step write (a pull, an ingest) has
//! written until the transaction that makes it reachable from a long-lived root. The records
//! and their resources; an operation holds one through a [`crate::LeaseGuard`].

use std::time::SystemTime;

use rusqlite::params;
use strata_types::Digest;

use crate::content::parse_digest;
use crate::db::{from_nanos, now, to_nanos};
use crate::labels::LEASE_LABELS;
use crate::{Labels, MetaError, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub created: SystemTime,
    /// `None`: until deleted.
    pub expires: Option<SystemTime>,
    pub labels: Labels,
}

/// Something a lease keeps alive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeaseResource {
    Content(Digest),
    Ingest(String),
    Snapshot { snapshotter: String, key: String },
}

impl LeaseResource {
    fn encode(&self) -> (&'static str, String) {
        match self {
            LeaseResource::Content(d) => ("content", d.to_string()),
            LeaseResource::Ingest(r) => ("ingest", r.clone()),
            LeaseResource::Snapshot { snapshotter, key } => {
                ("snapshot", format!("{snapshotter}/{key}"))
            }
        }
    }

    fn decode(kind: &str, resource: String) -> Result<LeaseResource, MetaError> {
        match kind {
            "content" => Ok(LeaseResource::Content(parse_digest(resource)?)),
            "ingest" => Ok(LeaseResource::Ingest(resource)),
            "snapshot" => match resource.split_once('/') {
                Some((s, k)) => Ok(LeaseResource::Snapshot {
                    snapshotter: s.into(),
                    key: k.into(),
                }),
                None => Err(MetaError::Corrupt {
                    what: "lease resource",
                    value: resource,
                }),
            },
            _ => Err(MetaError::Corrupt {
                what: "lease resource kind",
                value: kind.to_owned(),
            }),
        }
    }
}

impl Tx<'_> {
    pub fn create_lease(
        &self,
        id: &str,
        expires: Option<SystemTime>,
        labels: &Labels,
    ) -> Result<Lease, MetaError> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO leases (id, created_at, expires_at) VALUES (?1, ?2, ?3)",
                params![id, now(), expires.map(to_nanos)],
            )
            .map_err(MetaError::db("create lease"))?;
        if n == 0 {
            return Err(MetaError::AlreadyExists {
                what: "lease",
                id: id.to_owned(),
            });
        }
        self.update_labels(LEASE_LABELS, &id, labels)?;
        self.lease(id)?.ok_or_else(|| MetaError::NotFound {
            what: "lease",
            id: id.to_owned(),
        })
    }

    /// Creates the lease if it is missing, and moves its expiry to `expires` either way: for a
    /// resumable operation that reuses its lease.
    pub fn renew_lease(&self, id: &str, expires: Option<SystemTime>) -> Result<(), MetaError> {
        self.conn
            .execute(
                "INSERT INTO leases (id, created_at, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT DO UPDATE SET expires_at = excluded.expires_at",
                params![id, now(), expires.map(to_nanos)],
            )
            .map_err(MetaError::db("renew lease"))?;
        Ok(())
    }

    /// Moves an existing lease's expiry to `expires`.
    pub fn set_lease_expiry(&self, id: &str, expires: Option<SystemTime>) -> Result<(), MetaError> {
        self.change_one(
            "extend lease",
            "lease",
            id,
            "UPDATE leases SET expires_at = ?2 WHERE id = ?1",
            params![id, expires.map(to_nanos)],
        )
    }

    pub fn lease(&self, id: &str) -> Result<Option<Lease>, MetaError> {
        let row = self
            .row(
                "SELECT created_at, expires_at FROM leases WHERE id = ?1",
                [id],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
            )
            .map_err(MetaError::db("read lease"))?;
        let Some((created, expires)) = row else {
            return Ok(None);
        };
        Ok(Some(Lease {
            id: id.to_owned(),
            created: from_nanos(created),
            expires: expires.map(from_nanos),
            labels: self.labels(LEASE_LABELS, &id)?,
        }))
    }

    pub fn leases(&self) -> Result<Vec<Lease>, MetaError> {
        let ids: Vec<String> = self
            .conn
            .prepare_cached("SELECT id FROM leases ORDER BY id")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(MetaError::db("list leases"))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.lease(&id)?);
        }
        Ok(out)
    }

    /// Ends a lease; what it protected becomes collectable unless something else refers to it.
    pub fn delete_lease(&self, id: &str) -> Result<(), MetaError> {
        self.change_one(
            "delete lease",
            "lease",
            id,
            "DELETE FROM leases WHERE id = ?1",
            [id],
        )
    }

    /// Leases whose expiry is at or before `at`.
    pub fn expired_leases(&self, at: SystemTime) -> Result<Vec<String>, MetaError> {
        self.conn
            .prepare_cached("SELECT id FROM leases WHERE expires_at IS NOT NULL AND expires_at <= ?1 ORDER BY id")
            .and_then(|mut s| s.query_map([to_nanos(at)], |r| r.get(0))?.collect())
            .map_err(MetaError::db("list expired leases"))
    }

    pub fn add_lease_resource(
        &self,
        lease: &str,
        resource: &LeaseResource,
    ) -> Result<(), MetaError> {
        if self.lease(lease)?.is_none() {
            return Err(MetaError::NotFound {
                what: "lease",
                id: lease.to_owned(),
            });
        }
        let (kind, id) = resource.encode();
        self.conn
            .execute(
                "INSERT OR IGNORE INTO lease_resources (lease_id, kind, resource) VALUES (?1, ?2, ?3)",
                params![lease, kind, id],
            )
            .map_err(MetaError::db("add lease resource"))?;
        Ok(())
    }

    pub fn remove_lease_resource(
        &self,
        lease: &str,
        resource: &LeaseResource,
    ) -> Result<(), MetaError> {
        let (kind, id) = resource.encode();
        self.conn
            .execute(
                "DELETE FROM lease_resources WHERE lease_id = ?1 AND kind = ?2 AND resource = ?3",
                params![lease, kind, id],
            )
            .map_err(MetaError::db("remove lease resource"))?;
        Ok(())
    }

    /// Drops a resource from every lease that holds it.
    pub fn forget_resource(&self, resource: &LeaseResource) -> Result<(), MetaError> {
        let (kind, id) = resource.encode();
        self.conn
            .execute(
                "DELETE FROM lease_resources WHERE kind = ?1 AND resource = ?2",
                params![kind, id],
            )
            .map_err(MetaError::db("forget lease resource"))?;
        Ok(())
    }

    pub fn lease_resources(&self, lease: &str) -> Result<Vec<LeaseResource>, MetaError> {
        let rows: Vec<(String, String)> = self
            .conn
            .prepare_cached("SELECT kind, resource FROM lease_resources WHERE lease_id = ?1 ORDER BY kind, resource")
            .and_then(|mut s| s.query_map([lease], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(MetaError::db("list lease resources"))?;
        rows.into_iter()
            .map(|(k, r)| LeaseResource::decode(&k, r))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Db;

    #[test]
    fn lease_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        let soon = SystemTime::now() + Duration::from_secs(60);
        db.write(|tx| {
            let l = tx.create_lease("a", Some(soon), &Labels::from([("k".into(), "v".into())]))?;
            assert_eq!(l.labels.get("k").map(String::as_str), Some("v"));
            assert!(matches!(
                tx.create_lease("a", None, &Labels::new()),
                Err(MetaError::AlreadyExists { .. })
            ));
            tx.create_lease("forever", None, &Labels::new())?;
            let snap = LeaseResource::Snapshot {
                snapshotter: "overlayfs".into(),
                key: "k/1".into(),
            };
            tx.add_lease_resource("a", &snap)?;
            tx.add_lease_resource("a", &snap)?; // idempotent
            assert_eq!(tx.lease_resources("a")?, vec![snap.clone()]);
            assert!(matches!(
                tx.add_lease_resource("nope", &snap),
                Err(MetaError::NotFound { .. })
            ));
            assert!(tx.expired_leases(SystemTime::now())?.is_empty());
            assert_eq!(
                tx.expired_leases(soon + Duration::from_secs(1))?,
                vec!["a".to_owned()]
            );
            tx.delete_lease("a")?;
            assert!(
                tx.lease_resources("a")?.is_empty(),
                "resources go with their lease"
            );
            assert_eq!(tx.leases()?.len(), 1);
            tx.renew_lease("forever", Some(soon))?;
            assert_eq!(
                tx.lease("forever")?.and_then(|l| l.expires).map(to_nanos),
                Some(to_nanos(soon))
            );
            Ok(())
        })
        .unwrap();
    }
}
