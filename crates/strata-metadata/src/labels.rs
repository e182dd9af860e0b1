//! Label maps, stored one row per key in a `<thing>_labels` table.

use std::collections::BTreeMap;

use rusqlite::params;

use crate::{MetaError, Tx};

/// Labels on a record, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// A label table and the column naming its owner. Only this crate's constants are used, so
/// formatting them into SQL is safe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LabelTable {
    pub table: &'static str,
    pub owner: &'static str,
}

pub(crate) const IMAGE_LABELS: LabelTable = LabelTable {
    table: "image_labels",
    owner: "name",
};
pub(crate) const BLOB_LABELS: LabelTable = LabelTable {
    table: "blob_labels",
    owner: "digest",
};
pub(crate) const SNAPSHOT_LABELS: LabelTable = LabelTable {
    table: "snapshot_labels",
    owner: "snapshot_id",
};
pub(crate) const CONTAINER_LABELS: LabelTable = LabelTable {
    table: "container_labels",
    owner: "container_id",
};
pub(crate) const VOLUME_LABELS: LabelTable = LabelTable {
    table: "volume_labels",
    owner: "volume_name",
};
pub(crate) const LEASE_LABELS: LabelTable = LabelTable {
    table: "lease_labels",
    owner: "lease_id",
};

impl Tx<'_> {
    pub(crate) fn labels(
        &self,
        t: LabelTable,
        owner: &dyn rusqlite::ToSql,
    ) -> Result<Labels, MetaError> {
        let sql = format!("SELECT key, value FROM {} WHERE {} = ?1", t.table, t.owner);
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .map_err(MetaError::db("read labels"))?;
        let rows = stmt
            .query_map([owner], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(MetaError::db("read labels"))?;
        rows.collect::<Result<_, _>>()
            .map_err(MetaError::db("read labels"))
    }

    /// Sets the labels in `set` and removes those with an empty value, as containerd's
    /// label updates do.
    pub(crate) fn update_labels(
        &self,
        t: LabelTable,
        owner: &dyn rusqlite::ToSql,
        set: &Labels,
    ) -> Result<(), MetaError> {
        let upsert = format!(
            "INSERT INTO {} ({}, key, value) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO UPDATE SET value = excluded.value",
            t.table, t.owner
        );
        let delete = format!(
            "DELETE FROM {} WHERE {} = ?1 AND key = ?2",
            t.table, t.owner
        );
        for (key, value) in set {
            if value.is_empty() {
                self.conn.execute(&delete, params![owner, key])
            } else {
                self.conn.execute(&upsert, params![owner, key, value])
            }
            .map_err(MetaError::db("write labels"))?;
        }
        Ok(())
    }
}
