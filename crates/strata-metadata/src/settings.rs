//! The store's settings: a key → value table (`strata system settings`), so a choice such as
//! discarding compressed layers holds for every command run against the store.

use rusqlite::params;

use crate::{MetaError, Tx};

impl Tx<'_> {
    /// The value of setting `key`, if set.
    pub fn setting(&self, key: &str) -> Result<Option<String>, MetaError> {
        self.row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .map_err(MetaError::db("read setting"))
    }

    /// Sets `key` to `value`, or with `None` returns it to its default.
    pub fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), MetaError> {
        match value {
            Some(v) => self.conn.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, v],
            ),
            None => self
                .conn
                .execute("DELETE FROM settings WHERE key = ?1", [key]),
        }
        .map_err(MetaError::db("write setting"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Db;

    #[test]
    fn settings_are_set_read_and_reset() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        assert_eq!(db.read(|tx| tx.setting("k")).unwrap(), None);
        db.write(|tx| tx.set_setting("k", Some("1"))).unwrap();
        db.write(|tx| tx.set_setting("k", Some("2"))).unwrap();
        assert_eq!(db.read(|tx| tx.setting("k")).unwrap().as_deref(), Some("2"));
        db.write(|tx| tx.set_setting("k", None)).unwrap();
        assert_eq!(db.read(|tx| tx.setting("k")).unwrap(), None);
    }
}
