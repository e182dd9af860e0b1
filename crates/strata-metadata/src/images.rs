//! Image records: a name and the descriptor it points at (an index or a manifest).

use std::time::SystemTime;

use rusqlite::{Row, params};
use strata_types::{Descriptor, Digest};

use crate::content::{parse_digest, to_u64};
use crate::db::{from_nanos, now};
use crate::labels::IMAGE_LABELS;
use crate::{Labels, MetaError, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The full normalized reference, e.g. `docker.io/library/debian:bookworm`.
    pub name: String,
    pub target: Descriptor,
    pub created: SystemTime,
    pub updated: SystemTime,
    pub labels: Labels,
}

const COLUMNS: &str = "name, media_type, digest, size, created_at, updated_at";

type RawImage = (String, String, String, i64, i64, i64);

/// Rows convert straight into the tuple (rusqlite implements `TryFrom<&Row>` for tuples).
fn raw(r: &Row<'_>) -> rusqlite::Result<RawImage> {
    RawImage::try_from(r)
}

impl Tx<'_> {
    fn image_from(
        &self,
        (name, media_type, digest, size, created, updated): RawImage,
    ) -> Result<ImageRecord, MetaError> {
        Ok(ImageRecord {
            labels: self.labels(IMAGE_LABELS, &name)?,
            target: Descriptor::new(
                media_type,
                parse_digest(digest)?,
                to_u64(size, "image size")?,
            ),
            name,
            created: from_nanos(created),
            updated: from_nanos(updated),
        })
    }

    pub fn image(&self, name: &str) -> Result<Option<ImageRecord>, MetaError> {
        let row = self
            .row(
                &format!("SELECT {COLUMNS} FROM images WHERE name = ?1"),
                [name],
                raw,
            )
            .map_err(MetaError::db("read image"))?;
        row.map(|r| self.image_from(r)).transpose()
    }

    /// All images, by name.
    pub fn images(&self) -> Result<Vec<ImageRecord>, MetaError> {
        self.query_images(&format!("SELECT {COLUMNS} FROM images ORDER BY name"), &[])
    }

    /// The names pointing at `digest`.
    pub fn images_by_target(&self, digest: &Digest) -> Result<Vec<ImageRecord>, MetaError> {
        self.query_images(
            &format!("SELECT {COLUMNS} FROM images WHERE digest = ?1 ORDER BY name"),
            &[&digest.to_string()],
        )
    }

    fn query_images(
        &self,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<ImageRecord>, MetaError> {
        let rows: Vec<RawImage> = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| s.query_map(args, raw)?.collect())
            .map_err(MetaError::db("list images"))?;
        rows.into_iter().map(|r| self.image_from(r)).collect()
    }

    /// Points `name` at `target`, creating the record or moving an existing name (keeping its
    /// creation time), and sets `labels`.
    pub fn put_image(
        &self,
        name: &str,
        target: &Descriptor,
        labels: &Labels,
    ) -> Result<ImageRecord, MetaError> {
        let now = now();
        self.conn
            .execute(
                "INSERT INTO images (name, media_type, digest, size, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
                 ON CONFLICT DO UPDATE SET media_type = excluded.media_type, digest = excluded.digest, \
                 size = excluded.size, updated_at = excluded.updated_at",
                params![name, target.media_type, target.digest.to_string(), target.size as i64, now],
            )
            .map_err(MetaError::db("record image"))?;
        self.update_labels(IMAGE_LABELS, &name, labels)?;
        self.image(name)?.ok_or_else(|| MetaError::NotFound {
            what: "image",
            id: name.to_owned(),
        })
    }

    pub fn delete_image(&self, name: &str) -> Result<(), MetaError> {
        self.change_one(
            "delete image",
            "image",
            name,
            "DELETE FROM images WHERE name = ?1",
            [name],
        )
    }

    pub fn count_images(&self) -> Result<u64, MetaError> {
        self.count("SELECT count(*) FROM images")
    }

    pub(crate) fn count(&self, sql: &str) -> Result<u64, MetaError> {
        let n: i64 = self
            .conn
            .query_row(sql, [], |r| r.get(0))
            .map_err(MetaError::db("count"))?;
        to_u64(n, "count")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;

    #[test]
    fn put_move_and_delete_names() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        let a = Descriptor::new(
            "application/vnd.oci.image.index.v1+json",
            Digest::sha256_of(b"a"),
            10,
        );
        let b = Descriptor::new(
            "application/vnd.oci.image.manifest.v1+json",
            Digest::sha256_of(b"b"),
            20,
        );
        db.write(|tx| {
            let first = tx.put_image("docker.io/library/x:1", &a, &Labels::new())?;
            tx.put_image("docker.io/library/x:2", &a, &Labels::new())?;
            assert_eq!(tx.images_by_target(&a.digest)?.len(), 2);
            let moved = tx.put_image(
                "docker.io/library/x:1",
                &b,
                &Labels::from([("l".into(), "v".into())]),
            )?;
            assert_eq!(moved.target, b);
            assert_eq!(moved.created, first.created);
            assert_eq!(moved.labels.len(), 1);
            assert_eq!(tx.count_images()?, 2);
            tx.delete_image("docker.io/library/x:2")?;
            assert!(matches!(
                tx.delete_image("docker.io/library/x:2"),
                Err(MetaError::NotFound { .. })
            ));
            assert_eq!(tx.images()?.len(), 1);
            Ok(())
        })
        .unwrap();
    }
}
