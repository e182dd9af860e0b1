use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::MetaError;
use crate::reserve::Reserve;
use crate::schema::{MIGRATIONS, current_version};

/// How long a writer waits for another process's write transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// An open metadata database. Cheap to share between threads (`Arc<Db>`); each process opens
/// its own.
#[derive(Debug)]
pub struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Space set aside so that write transactions commit on a full disk (see [`Reserve`]).
    reserve: Option<Reserve>,
}

/// A transaction: every record operation runs inside one, so that a multi-step change is
/// all-or-nothing.
#[derive(Debug)]
pub struct Tx<'a> {
    pub(crate) conn: &'a rusqlite::Transaction<'a>,
}

impl Tx<'_> {
    /// Runs `sql` (an update or delete of the record `what` `id`); `NotFound` when it
    /// changed no row.
    pub(crate) fn change_one<P: rusqlite::Params>(
        &self,
        op: &'static str,
        what: &'static str,
        id: &str,
        sql: &str,
        params: P,
    ) -> Result<(), MetaError> {
        let n = self.conn.execute(sql, params).map_err(MetaError::db(op))?;
        if n == 0 {
            return Err(MetaError::NotFound {
                what,
                id: id.to_owned(),
            });
        }
        Ok(())
    }

    /// The one row `sql` selects, if any, through the connection's statement cache (listings
    /// look records up by the thousand: parsing each statement again dominated them).
    pub(crate) fn row<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Option<T>> {
        use rusqlite::OptionalExtension;
        self.conn
            .prepare_cached(sql)?
            .query_row(params, f)
            .optional()
    }
}

impl Db {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Db, MetaError> {
        Db::open_with_reserve(path, None)
    }

    /// [`Db::open`], with `reserve` released before any write transaction when the disk is
    /// nearly full.
    pub fn open_with_reserve(path: &Path, reserve: Option<Reserve>) -> Result<Db, MetaError> {
        let open_err = |source| MetaError::Open {
            path: path.to_owned(),
            source,
        };
        create_private(path);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL: readers do not block the writer and a torn write is rolled back on open.
        // FULL: a committed transaction survives power loss, like the fsynced blobs it names.
        set_wal(&conn).map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        let db = Db {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            reserve,
        };
        db.migrate()?;
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&self) -> Result<(), MetaError> {
        if self.schema_version()? == current_version() {
            return Ok(());
        }
        // Re-read the version inside the write transaction: another process may have
        // migrated while we waited for the lock.
        self.write(|tx| {
            let found = version(tx.conn)?;
            if found > current_version() {
                return Err(MetaError::SchemaTooNew {
                    path: self.path.clone(),
                    found,
                    supported: current_version(),
                });
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
                tracing::info!(from = i, to = i + 1, "migrating metadata schema");
                tx.conn
                    .execute_batch(sql)
                    .map_err(MetaError::db("migrate schema"))?;
            }
            tx.conn
                .pragma_update(None, "user_version", current_version())
                .map_err(MetaError::db("set schema version"))
        })
    }

    /// The schema version the file is at.
    pub fn schema_version(&self) -> Result<u32, MetaError> {
        let found = self.read(|tx| version(tx.conn))?;
        if found > current_version() {
            return Err(MetaError::SchemaTooNew {
                path: self.path.clone(),
                found,
                supported: current_version(),
            });
        }
        Ok(found)
    }

    /// SQLite's own consistency check of the file: `ok`, or the problems it found.
    pub fn integrity_check(&self) -> Result<Vec<String>, MetaError> {
        self.read(|tx| {
            tx.conn
                .prepare("PRAGMA integrity_check")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(MetaError::db("integrity check"))
        })
    }

    /// Runs `f` in a write transaction, committed if `f` succeeds and rolled back otherwise.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        if let Some(r) = &self.reserve {
            r.release_if_short();
        }
        self.transaction(TransactionBehavior::Immediate, f)
    }

    /// Runs `f` in a read transaction: a consistent snapshot of the database.
    pub fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, MetaError>) -> Result<T, MetaError> {
        self.transaction(TransactionBehavior::Deferred, f)
    }

    fn transaction<T>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Tx<'_>) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        // A panic inside `f` drops the transaction, which rolls it back: the connection is
        // still sound, so a poisoned lock can be taken over.
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tx = conn
            .transaction_with_behavior(behavior)
            .map_err(MetaError::db("begin transaction"))?;
        let value = f(&Tx { conn: &tx })?;
        tx.commit().map_err(MetaError::db("commit transaction"))?;
        Ok(value)
    }
}

/// Makes a new database file the owner's only before SQLite opens it: it names every image,
/// label and container. SQLite gives the `-wal` and `-shm` files the database file's mode.
/// Failing here is left to SQLite's open to report.
fn create_private(path: &Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o600)));
}

fn version(conn: &Connection) -> Result<u32, MetaError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(MetaError::db("read schema version"))
}

/// Now, as stored: nanoseconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    to_nanos(SystemTime::now())
}

pub(crate) fn to_nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn from_nanos(n: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}

/// Switches the database to WAL. Going to WAL needs the file to itself, and SQLite answers
/// `SQLITE_BUSY` at once — without the busy handler — while another connection has it open in
/// the default mode: the case of processes opening a new store at the same time. So retry.
fn set_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Ok(mode) => {
                if !mode.eq_ignore_ascii_case("wal") {
                    tracing::warn!(mode, "the metadata database cannot use WAL here");
                }
                return Ok(());
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_processes_open_a_new_database_at_once() {
        // Separate connections behave as separate processes do for SQLite's file locks.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("metadata.db");
            let opened: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8).map(|_| s.spawn(|| Db::open(&path))).collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for db in opened {
                let db = db.unwrap();
                assert_eq!(db.schema_version().unwrap(), current_version());
            }
        }
    }

    #[test]
    fn database_files_are_the_owners_only() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        let db = Db::open(&path).unwrap();
        db.write(|tx| tx.set_setting("k", Some("v"))).unwrap();
        for name in ["metadata.db", "metadata.db-wal", "metadata.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name)).unwrap().mode() & 0o7777;
            assert_eq!(mode, 0o600, "{name}: {mode:o}");
        }
    }

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        let db = Db::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), current_version());
        drop(db);
        let db = Db::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), current_version());
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        Db::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", current_version() + 1)
            .unwrap();
        drop(conn);
        let err = Db::open(&path).unwrap_err();
        assert!(matches!(err, MetaError::SchemaTooNew { .. }), "{err}");
        assert!(err.to_string().contains("upgrade strata"), "{err}");
    }

    #[test]
    fn failed_transactions_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("metadata.db")).unwrap();
        let err = db.write(|tx| {
            tx.conn
                .execute("INSERT INTO leases (id, created_at) VALUES ('l', 0)", [])
                .map_err(MetaError::db("insert"))?;
            Err::<(), _>(MetaError::NotFound {
                what: "thing",
                id: "x".into(),
            })
        });
        assert!(err.is_err());
        let n: i64 = db
            .read(|tx| {
                tx.conn
                    .query_row("SELECT count(*) FROM leases", [], |r| r.get(0))
                    .map_err(MetaError::db("count"))
            })
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn time_round_trips() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(from_nanos(to_nanos(t)), t);
    }
}
