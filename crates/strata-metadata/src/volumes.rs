//! Volume records: named (or anonymous) directories under the store root that outlive the
//! containers mounting them. Which containers use a volume is on the containers' side.

use std::collections::BTreeMap;
use std::time::SystemTime;

use rusqlite::params;

use crate::db::{from_nanos, now};
use crate::labels::VOLUME_LABELS;
use crate::{Labels, MetaError, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRecord {
    pub name: String,
    /// `local`: a directory under the store root.
    pub driver: String,
    /// Made for one container (`-v /path`, an image's `VOLUME`), with a generated name.
    pub anonymous: bool,
    /// Driver options (`--opt`).
    pub options: BTreeMap<String, String>,
    pub labels: Labels,
    pub created: SystemTime,
}

type Raw = (String, String, bool, String, i64);

impl Tx<'_> {
    /// Records a new volume; its name must be free.
    pub fn insert_volume(&self, v: &VolumeRecord) -> Result<VolumeRecord, MetaError> {
        let options = serde_json::to_string(&v.options).unwrap_or_else(|_| "{}".into());
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO volumes (name, driver, anonymous, options, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![v.name, v.driver, v.anonymous, options, now()],
            )
            .map_err(MetaError::db("record volume"))?;
        if n == 0 {
            return Err(MetaError::AlreadyExists {
                what: "volume",
                id: v.name.clone(),
            });
        }
        self.update_labels(VOLUME_LABELS, &v.name, &v.labels)?;
        self.volume(&v.name)?.ok_or_else(|| MetaError::NotFound {
            what: "volume",
            id: v.name.clone(),
        })
    }

    fn volume_from(
        &self,
        (name, driver, anonymous, options, created): Raw,
    ) -> Result<VolumeRecord, MetaError> {
        Ok(VolumeRecord {
            labels: self.labels(VOLUME_LABELS, &name)?,
            options: serde_json::from_str(&options).unwrap_or_default(),
            name,
            driver,
            anonymous,
            created: from_nanos(created),
        })
    }

    pub fn volume(&self, name: &str) -> Result<Option<VolumeRecord>, MetaError> {
        let row: Option<Raw> = self
            .row(
                "SELECT name, driver, anonymous, options, created_at FROM volumes WHERE name = ?1",
                [name],
                |r| Raw::try_from(r),
            )
            .map_err(MetaError::db("read volume"))?;
        row.map(|r| self.volume_from(r)).transpose()
    }

    /// All volumes, by name.
    pub fn volumes(&self) -> Result<Vec<VolumeRecord>, MetaError> {
        let rows: Vec<Raw> = self
            .conn
            .prepare_cached(
                "SELECT name, driver, anonymous, options, created_at FROM volumes ORDER BY name",
            )
            .and_then(|mut s| s.query_map([], |r| Raw::try_from(r))?.collect())
            .map_err(MetaError::db("list volumes"))?;
        rows.into_iter().map(|r| self.volume_from(r)).collect()
    }

    pub fn delete_volume(&self, name: &str) -> Result<(), MetaError> {
        self.change_one(
            "delete volume",
            "volume",
            name,
            "DELETE FROM volumes WHERE name = ?1",
            [name],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;

    #[test]
    fn volumes_round_trip_and_names_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        db.write(|tx| {
            let v = VolumeRecord {
                name: "data".into(),
                driver: "local".into(),
                anonymous: false,
                options: BTreeMap::from([("o".into(), "bind".into())]),
                labels: Labels::from([("team".into(), "a".into())]),
                created: SystemTime::UNIX_EPOCH,
            };
            let got = tx.insert_volume(&v)?;
            assert_eq!(
                (got.labels.clone(), got.options.clone()),
                (v.labels.clone(), v.options.clone())
            );
            assert!(matches!(
                tx.insert_volume(&v),
                Err(MetaError::AlreadyExists { .. })
            ));
            assert_eq!(tx.volumes()?.len(), 1);
            tx.delete_volume("data")?;
            assert!(tx.volume("data")?.is_none());
            assert!(tx.delete_volume("data").is_err());
            Ok(())
        })
        .unwrap();
    }
}
