//! Snapshot records. The snapshotters own the directories; these rows say which exist, what
//! kind they are and which parent they stand on. A record's `id` names its directory and is
//! never reused, so a leftover directory can never be mistaken for a new snapshot's.

use std::time::SystemTime;

use rusqlite::{Row, params};

use crate::db::{from_nanos, now};
use crate::labels::SNAPSHOT_LABELS;
use crate::{Labels, MetaError, Tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotKind {
    /// Writable: a container's layer, or a layer being unpacked.
    Active,
    /// Read-only view of a committed parent.
    View,
    /// Immutable; may be a parent.
    Committed,
}

impl SnapshotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Active => "active",
            SnapshotKind::View => "view",
            SnapshotKind::Committed => "committed",
        }
    }

    fn parse(s: &str) -> Result<SnapshotKind, MetaError> {
        match s {
            "active" => Ok(SnapshotKind::Active),
            "view" => Ok(SnapshotKind::View),
            "committed" => Ok(SnapshotKind::Committed),
            _ => Err(MetaError::Corrupt {
                what: "snapshot kind",
                value: s.to_owned(),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub id: i64,
    pub snapshotter: String,
    pub key: String,
    pub kind: SnapshotKind,
    pub parent: Option<String>,
    pub created: SystemTime,
    pub updated: SystemTime,
    pub labels: Labels,
}

const COLUMNS: &str = "id, snapshotter, key, kind, parent, created_at, updated_at";

type RawSnapshot = (i64, String, String, String, Option<String>, i64, i64);

/// Rows convert straight into the tuple (rusqlite implements `TryFrom<&Row>` for tuples).
fn raw(r: &Row<'_>) -> rusqlite::Result<RawSnapshot> {
    RawSnapshot::try_from(r)
}

impl Tx<'_> {
    fn snapshot_from(
        &self,
        (id, snapshotter, key, kind, parent, c, u): RawSnapshot,
    ) -> Result<SnapshotRecord, MetaError> {
        Ok(SnapshotRecord {
            id,
            snapshotter,
            key,
            kind: SnapshotKind::parse(&kind)?,
            parent,
            created: from_nanos(c),
            updated: from_nanos(u),
            labels: self.labels(SNAPSHOT_LABELS, &id)?,
        })
    }

    pub fn snapshot(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> Result<Option<SnapshotRecord>, MetaError> {
        let row = self
            .row(
                &format!("SELECT {COLUMNS} FROM snapshots WHERE snapshotter = ?1 AND key = ?2"),
                params![snapshotter, key],
                raw,
            )
            .map_err(MetaError::db("read snapshot"))?;
        row.map(|r| self.snapshot_from(r)).transpose()
    }

    /// The snapshots of one snapshotter, by id (parents before children).
    pub fn snapshots(&self, snapshotter: &str) -> Result<Vec<SnapshotRecord>, MetaError> {
        let rows: Vec<RawSnapshot> = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM snapshots WHERE snapshotter = ?1 ORDER BY id"
            ))
            .and_then(|mut s| s.query_map([snapshotter], raw)?.collect())
            .map_err(MetaError::db("list snapshots"))?;
        rows.into_iter().map(|r| self.snapshot_from(r)).collect()
    }

    /// Records a new active or view snapshot on `parent`, which must be committed.
    pub fn insert_snapshot(
        &self,
        snapshotter: &str,
        key: &str,
        kind: SnapshotKind,
        parent: Option<&str>,
        labels: &Labels,
    ) -> Result<SnapshotRecord, MetaError> {
        let id = || format!("{snapshotter}/{key}");
        if self.snapshot(snapshotter, key)?.is_some() {
            return Err(MetaError::AlreadyExists {
                what: "snapshot",
                id: id(),
            });
        }
        if let Some(parent) = parent {
            match self.snapshot(snapshotter, parent)? {
                Some(p) if p.kind == SnapshotKind::Committed => {}
                Some(_) => {
                    return Err(MetaError::FailedPrecondition {
                        what: "snapshot",
                        id: id(),
                        reason: format!("parent {parent} is not committed"),
                    });
                }
                None => {
                    return Err(MetaError::NotFound {
                        what: "parent snapshot",
                        id: format!("{snapshotter}/{parent}"),
                    });
                }
            }
        }
        let now = now();
        self.conn
            .execute(
                "INSERT INTO snapshots (snapshotter, key, kind, parent, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![snapshotter, key, kind.as_str(), parent, now],
            )
            .map_err(MetaError::db("record snapshot"))?;
        let rowid = self.conn.last_insert_rowid();
        self.update_labels(SNAPSHOT_LABELS, &rowid, labels)?;
        self.snapshot(snapshotter, key)?
            .ok_or_else(|| MetaError::NotFound {
                what: "snapshot",
                id: id(),
            })
    }

    /// Turns the active snapshot `key` into the committed snapshot `name`.
    pub fn commit_snapshot(
        &self,
        snapshotter: &str,
        key: &str,
        name: &str,
    ) -> Result<SnapshotRecord, MetaError> {
        match self.snapshot(snapshotter, key)? {
            Some(s) if s.kind == SnapshotKind::Active => {}
            Some(s) => {
                return Err(MetaError::FailedPrecondition {
                    what: "snapshot",
                    id: format!("{snapshotter}/{key}"),
                    reason: format!(
                        "is {}, only an active snapshot can be committed",
                        s.kind.as_str()
                    ),
                });
            }
            None => {
                return Err(MetaError::NotFound {
                    what: "snapshot",
                    id: format!("{snapshotter}/{key}"),
                });
            }
        }
        if self.snapshot(snapshotter, name)?.is_some() {
            return Err(MetaError::AlreadyExists {
                what: "snapshot",
                id: format!("{snapshotter}/{name}"),
            });
        }
        self.conn
            .execute(
                "UPDATE snapshots SET key = ?3, kind = 'committed', updated_at = ?4 \
                 WHERE snapshotter = ?1 AND key = ?2",
                params![snapshotter, key, name, now()],
            )
            .map_err(MetaError::db("commit snapshot"))?;
        self.snapshot(snapshotter, name)?
            .ok_or_else(|| MetaError::NotFound {
                what: "snapshot",
                id: format!("{snapshotter}/{name}"),
            })
    }

    /// Commits as containerd's snapshotters do: like [`Tx::commit_snapshot`], and the committed
    /// snapshot is a new object — created and updated now, its labels exactly `labels` (the
    /// active snapshot's labels are not inherited). The id, and so the directory, is kept.
    pub fn commit_snapshot_with_labels(
        &self,
        snapshotter: &str,
        key: &str,
        name: &str,
        labels: &Labels,
    ) -> Result<SnapshotRecord, MetaError> {
        let rec = self.commit_snapshot(snapshotter, key, name)?;
        self.conn
            .execute(
                "UPDATE snapshots SET created_at = updated_at WHERE id = ?1",
                [rec.id],
            )
            .map_err(MetaError::db("commit snapshot"))?;
        self.conn
            .execute(
                "DELETE FROM snapshot_labels WHERE snapshot_id = ?1",
                [rec.id],
            )
            .map_err(MetaError::db("write labels"))?;
        self.update_labels(SNAPSHOT_LABELS, &rec.id, labels)?;
        self.snapshot(snapshotter, name)?
            .ok_or_else(|| MetaError::NotFound {
                what: "snapshot",
                id: format!("{snapshotter}/{name}"),
            })
    }

    /// Moves the active snapshot `key` onto `parent` (committed, or `None`): for snapshotters
    /// whose layers do not depend on their parents' files until mounted (overlayfs), so an
    /// unpacker can fill a layer before its parent exists.
    pub fn set_snapshot_parent(
        &self,
        snapshotter: &str,
        key: &str,
        parent: Option<&str>,
    ) -> Result<SnapshotRecord, MetaError> {
        let id = |k: &str| format!("{snapshotter}/{k}");
        match self.snapshot(snapshotter, key)? {
            Some(s) if s.kind == SnapshotKind::Active => {}
            Some(s) => {
                return Err(MetaError::FailedPrecondition {
                    what: "snapshot",
                    id: id(key),
                    reason: format!("is {}, only an active snapshot can move", s.kind.as_str()),
                });
            }
            None => {
                return Err(MetaError::NotFound {
                    what: "snapshot",
                    id: id(key),
                });
            }
        }
        if let Some(parent) = parent {
            match self.snapshot(snapshotter, parent)? {
                Some(p) if p.kind == SnapshotKind::Committed => {}
                Some(p) => {
                    return Err(MetaError::FailedPrecondition {
                        what: "snapshot",
                        id: id(parent),
                        reason: format!("is {}, a parent must be committed", p.kind.as_str()),
                    });
                }
                None => {
                    return Err(MetaError::NotFound {
                        what: "parent snapshot",
                        id: id(parent),
                    });
                }
            }
        }
        self.conn
            .execute(
                "UPDATE snapshots SET parent = ?3, updated_at = ?4 \
                 WHERE snapshotter = ?1 AND key = ?2",
                params![snapshotter, key, parent, now()],
            )
            .map_err(MetaError::db("move snapshot"))?;
        self.snapshot(snapshotter, key)?
            .ok_or_else(|| MetaError::NotFound {
                what: "snapshot",
                id: id(key),
            })
    }

    /// Keys of the snapshots standing on `key`.
    pub fn snapshot_children(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> Result<Vec<String>, MetaError> {
        self.conn
            .prepare_cached(
                "SELECT key FROM snapshots WHERE snapshotter = ?1 AND parent = ?2 ORDER BY key",
            )
            .and_then(|mut s| {
                s.query_map(params![snapshotter, key], |r| r.get(0))?
                    .collect()
            })
            .map_err(MetaError::db("list snapshot children"))
    }

    /// Forgets a snapshot; refuses one that has children. Returns the removed record.
    pub fn remove_snapshot(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> Result<SnapshotRecord, MetaError> {
        let id = format!("{snapshotter}/{key}");
        let Some(rec) = self.snapshot(snapshotter, key)? else {
            return Err(MetaError::NotFound {
                what: "snapshot",
                id,
            });
        };
        let children = self.snapshot_children(snapshotter, key)?;
        if !children.is_empty() {
            return Err(MetaError::FailedPrecondition {
                what: "snapshot",
                id,
                reason: format!(
                    "has {} child snapshot(s): {}",
                    children.len(),
                    children.join(", ")
                ),
            });
        }
        self.conn
            .execute("DELETE FROM snapshots WHERE id = ?1", [rec.id])
            .map_err(MetaError::db("remove snapshot"))?;
        Ok(rec)
    }

    pub fn update_snapshot_labels(
        &self,
        snapshotter: &str,
        key: &str,
        labels: &Labels,
    ) -> Result<SnapshotRecord, MetaError> {
        let Some(rec) = self.snapshot(snapshotter, key)? else {
            return Err(MetaError::NotFound {
                what: "snapshot",
                id: format!("{snapshotter}/{key}"),
            });
        };
        self.conn
            .execute(
                "UPDATE snapshots SET updated_at = ?2 WHERE id = ?1",
                params![rec.id, now()],
            )
            .map_err(MetaError::db("update snapshot"))?;
        self.update_labels(SNAPSHOT_LABELS, &rec.id, labels)?;
        self.snapshot(snapshotter, key)?
            .ok_or_else(|| MetaError::NotFound {
                what: "snapshot",
                id: key.to_owned(),
            })
    }

    /// The measured usage `(bytes, inodes)` of the committed snapshot record `id`, if stored.
    pub fn snapshot_usage(&self, id: i64) -> Result<Option<(u64, u64)>, MetaError> {
        self.row(
            "SELECT size, inodes FROM snapshot_usage WHERE snapshot_id = ?1",
            [id],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
        .map_err(MetaError::db("read snapshot usage"))
    }

    /// Stores the measured usage of the committed snapshot record `id` (it never changes: a
    /// committed snapshot is read-only). Refused for a record that is not committed.
    pub fn set_snapshot_usage(&self, id: i64, size: u64, inodes: u64) -> Result<(), MetaError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO snapshot_usage (snapshot_id, size, inodes)
                 SELECT id, ?2, ?3 FROM snapshots WHERE id = ?1 AND kind = 'committed'",
                params![id, size as i64, inodes as i64],
            )
            .map_err(MetaError::db("write snapshot usage"))?;
        Ok(())
    }

    /// `snapshotter`'s committed snapshots without a stored usage: `(id, key)`.
    pub fn unmeasured_snapshots(&self, snapshotter: &str) -> Result<Vec<(i64, String)>, MetaError> {
        self.conn
            .prepare_cached(
                "SELECT id, key FROM snapshots s WHERE snapshotter = ?1 AND kind = 'committed'
                 AND NOT EXISTS (SELECT 1 FROM snapshot_usage u WHERE u.snapshot_id = s.id)",
            )
            .and_then(|mut s| {
                s.query_map([snapshotter], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(MetaError::db("list snapshots"))
    }

    /// Every stored usage of `snapshotter`'s committed snapshots: key → `(bytes, inodes)`.
    pub fn snapshot_usages(&self, snapshotter: &str) -> Result<Vec<(String, u64, u64)>, MetaError> {
        self.conn
            .prepare_cached(
                "SELECT s.key, u.size, u.inodes FROM snapshot_usage u
                 JOIN snapshots s ON s.id = u.snapshot_id WHERE s.snapshotter = ?1",
            )
            .and_then(|mut s| {
                s.query_map([snapshotter], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                    ))
                })?
                .collect()
            })
            .map_err(MetaError::db("list snapshot usage"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;

    #[test]
    fn lifecycle_parents_and_children() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        db.write(|tx| {
            let none = Labels::new();
            let a =
                tx.insert_snapshot("overlayfs", "extract-a", SnapshotKind::Active, None, &none)?;
            assert!(matches!(
                tx.insert_snapshot(
                    "overlayfs",
                    "x",
                    SnapshotKind::Active,
                    Some("extract-a"),
                    &none
                ),
                Err(MetaError::FailedPrecondition { .. })
            ));
            let base = tx.commit_snapshot("overlayfs", "extract-a", "sha256:base")?;
            assert_eq!((base.id, base.kind), (a.id, SnapshotKind::Committed));
            assert!(matches!(
                tx.commit_snapshot("overlayfs", "sha256:base", "again"),
                Err(MetaError::FailedPrecondition { .. })
            ));
            tx.insert_snapshot(
                "overlayfs",
                "ctr",
                SnapshotKind::Active,
                Some("sha256:base"),
                &none,
            )?;
            assert!(matches!(
                tx.insert_snapshot("overlayfs", "ctr", SnapshotKind::Active, None, &none),
                Err(MetaError::AlreadyExists { .. })
            ));
            // Same key in another snapshotter is another snapshot.
            tx.insert_snapshot("native", "ctr", SnapshotKind::Active, None, &none)?;
            let err = tx.remove_snapshot("overlayfs", "sha256:base").unwrap_err();
            assert!(
                err.to_string().contains("has 1 child snapshot(s): ctr"),
                "{err}"
            );
            tx.remove_snapshot("overlayfs", "ctr")?;
            tx.remove_snapshot("overlayfs", "sha256:base")?;
            let again =
                tx.insert_snapshot("overlayfs", "extract-a", SnapshotKind::Active, None, &none)?;
            assert!(again.id > a.id, "ids are never reused");
            let l = tx.update_snapshot_labels(
                "overlayfs",
                "extract-a",
                &Labels::from([("k".into(), "v".into())]),
            )?;
            assert_eq!(l.labels.len(), 1);
            assert_eq!(tx.snapshots("overlayfs")?.len(), 1);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn an_active_snapshot_moves_onto_a_committed_parent_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        db.write(|tx| {
            let none = Labels::new();
            tx.insert_snapshot("overlayfs", "l1", SnapshotKind::Active, None, &none)?;
            tx.insert_snapshot("overlayfs", "l2", SnapshotKind::Active, None, &none)?;
            // The parent is still active: refused.
            assert!(matches!(
                tx.set_snapshot_parent("overlayfs", "l2", Some("l1")),
                Err(MetaError::FailedPrecondition { .. })
            ));
            assert!(matches!(
                tx.set_snapshot_parent("overlayfs", "l2", Some("nope")),
                Err(MetaError::NotFound { .. })
            ));
            tx.commit_snapshot("overlayfs", "l1", "c1")?;
            let moved = tx.set_snapshot_parent("overlayfs", "l2", Some("c1"))?;
            assert_eq!(moved.parent.as_deref(), Some("c1"));
            assert_eq!(tx.snapshot_children("overlayfs", "c1")?, ["l2"]);
            // A committed snapshot never moves.
            assert!(matches!(
                tx.set_snapshot_parent("overlayfs", "c1", None),
                Err(MetaError::FailedPrecondition { .. })
            ));
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn commit_with_labels_replaces_labels_and_restarts_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        db.write(|tx| {
            let l = |k: &str, v: &str| Labels::from([(k.to_owned(), v.to_owned())]);
            let a =
                tx.insert_snapshot("native", "a", SnapshotKind::Active, None, &l("old", "1"))?;
            std::thread::sleep(std::time::Duration::from_millis(2));
            let c = tx.commit_snapshot_with_labels("native", "a", "c", &l("new", "2"))?;
            assert_eq!((c.id, c.kind), (a.id, SnapshotKind::Committed));
            assert_eq!(c.labels, l("new", "2"));
            assert_eq!(c.created, c.updated);
            assert!(c.created > a.created);
            assert!(matches!(
                tx.commit_snapshot_with_labels("native", "missing", "x", &Labels::new()),
                Err(MetaError::NotFound { .. })
            ));
            Ok(())
        })
        .unwrap();
    }
}
