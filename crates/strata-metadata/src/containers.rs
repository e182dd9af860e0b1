//! Container records: a container pins its image and its writable snapshot.

use std::time::SystemTime;

use rusqlite::{Row, params};

use crate::db::{from_nanos, now};
use crate::labels::CONTAINER_LABELS;
use crate::{Labels, MetaError, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique among containers.
    pub name: String,
    /// The image name (or ID) it was created from.
    pub image: String,
    pub snapshotter: String,
    /// Its writable layer, if it has one yet.
    pub snapshot_key: Option<String>,
    pub runtime: String,
    pub created: SystemTime,
    pub updated: SystemTime,
    pub labels: Labels,
}

const COLUMNS: &str = "id, name, image, snapshotter, snapshot_key, runtime, created_at, updated_at";

type RawContainer = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
);

/// Rows convert straight into the tuple (rusqlite implements `TryFrom<&Row>` for tuples).
fn raw(r: &Row<'_>) -> rusqlite::Result<RawContainer> {
    RawContainer::try_from(r)
}

impl Tx<'_> {
    fn container_from(
        &self,
        (id, name, image, snapshotter, snapshot_key, runtime, c, u): RawContainer,
    ) -> Result<ContainerRecord, MetaError> {
        Ok(ContainerRecord {
            labels: self.labels(CONTAINER_LABELS, &id)?,
            id,
            name,
            image,
            snapshotter,
            snapshot_key,
            runtime,
            created: from_nanos(c),
            updated: from_nanos(u),
        })
    }

    /// Records a new container; its id and name must both be free.
    pub fn insert_container(&self, c: &ContainerRecord) -> Result<ContainerRecord, MetaError> {
        if let Some(other) = self.container_by_name(&c.name)? {
            return Err(MetaError::FailedPrecondition {
                what: "container name",
                id: c.name.clone(),
                reason: format!("already in use by container {}", other.id),
            });
        }
        let now = now();
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO containers (id, name, image, snapshotter, snapshot_key, runtime, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                params![c.id, c.name, c.image, c.snapshotter, c.snapshot_key, c.runtime, now],
            )
            .map_err(MetaError::db("record container"))?;
        if n == 0 {
            return Err(MetaError::AlreadyExists {
                what: "container",
                id: c.id.clone(),
            });
        }
        self.update_labels(CONTAINER_LABELS, &c.id, &c.labels)?;
        self.container(&c.id)?.ok_or_else(|| MetaError::NotFound {
            what: "container",
            id: c.id.clone(),
        })
    }

    pub fn container(&self, id: &str) -> Result<Option<ContainerRecord>, MetaError> {
        self.container_where("id", id)
    }

    pub fn container_by_name(&self, name: &str) -> Result<Option<ContainerRecord>, MetaError> {
        self.container_where("name", name)
    }

    fn container_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<ContainerRecord>, MetaError> {
        let row = self
            .row(
                &format!("SELECT {COLUMNS} FROM containers WHERE {column} = ?1"),
                [value],
                raw,
            )
            .map_err(MetaError::db("read container"))?;
        row.map(|r| self.container_from(r)).transpose()
    }

    /// All containers, oldest first.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>, MetaError> {
        let rows: Vec<RawContainer> = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM containers ORDER BY created_at, id"
            ))
            .and_then(|mut s| s.query_map([], raw)?.collect())
            .map_err(MetaError::db("list containers"))?;
        rows.into_iter().map(|r| self.container_from(r)).collect()
    }

    /// Sets (or, with an empty value, removes) labels of container `id`.
    pub fn update_container_labels(&self, id: &str, labels: &Labels) -> Result<(), MetaError> {
        self.update_labels(CONTAINER_LABELS, &id, labels)
    }

    pub fn delete_container(&self, id: &str) -> Result<(), MetaError> {
        self.change_one(
            "delete container",
            "container",
            id,
            "DELETE FROM containers WHERE id = ?1",
            [id],
        )
    }

    pub fn count_containers(&self) -> Result<u64, MetaError> {
        self.count("SELECT count(*) FROM containers")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;

    fn rec(id: &str, name: &str) -> ContainerRecord {
        ContainerRecord {
            id: id.repeat(64 / id.len()),
            name: name.into(),
            image: "docker.io/library/busybox:latest".into(),
            snapshotter: "overlayfs".into(),
            snapshot_key: Some(format!("ctr-{name}")),
            runtime: "runc".into(),
            created: SystemTime::UNIX_EPOCH,
            updated: SystemTime::UNIX_EPOCH,
            labels: Labels::new(),
        }
    }

    #[test]
    fn names_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        db.write(|tx| {
            let a = tx.insert_container(&rec("a", "web"))?;
            assert_eq!(
                tx.container_by_name("web")?.map(|c| c.id),
                Some(a.id.clone())
            );
            let err = tx.insert_container(&rec("b", "web")).unwrap_err();
            assert!(
                err.to_string().contains("already in use by container"),
                "{err}"
            );
            assert!(matches!(
                tx.insert_container(&rec("a", "db")),
                Err(MetaError::AlreadyExists { .. })
            ));
            assert_eq!(tx.count_containers()?, 1);
            tx.delete_container(&a.id)?;
            assert!(tx.containers()?.is_empty());
            Ok(())
        })
        .unwrap();
    }
}
