//! Schema migrations. Entry `i` takes the database from version `i` to `i + 1`; never edit one
//! that has shipped, append a new one.

pub const MIGRATIONS: &[&str] = &[
    // 1: the foundation tables.
    r#"
    CREATE TABLE images (
        name        TEXT PRIMARY KEY,
        media_type  TEXT NOT NULL,
        digest      TEXT NOT NULL,
        size        INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX images_by_digest ON images(digest);
    CREATE TABLE image_labels (
        name  TEXT NOT NULL REFERENCES images(name) ON DELETE CASCADE ON UPDATE CASCADE,
        key   TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (name, key)
    );
    CREATE TABLE blobs (
        digest      TEXT PRIMARY KEY,
        size        INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE blob_labels (
        digest TEXT NOT NULL REFERENCES blobs(digest) ON DELETE CASCADE,
        key    TEXT NOT NULL,
        value  TEXT NOT NULL,
        PRIMARY KEY (digest, key)
    );
    CREATE TABLE snapshots (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        snapshotter TEXT NOT NULL,
        key         TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
        parent      TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        UNIQUE (snapshotter, key),
        FOREIGN KEY (snapshotter, parent) REFERENCES snapshots(snapshotter, key) ON DELETE RESTRICT
    );
    CREATE INDEX snapshots_by_parent ON snapshots(snapshotter, parent);
    CREATE TABLE snapshot_labels (
        snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
        key         TEXT NOT NULL,
        value       TEXT NOT NULL,
        PRIMARY KEY (snapshot_id, key)
    );
    CREATE TABLE containers (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,
        image        TEXT NOT NULL,
        snapshotter  TEXT NOT NULL,
        snapshot_key TEXT,
        runtime      TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE TABLE container_labels (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        key          TEXT NOT NULL,
        value        TEXT NOT NULL,
        PRIMARY KEY (container_id, key)
    );
    CREATE TABLE leases (
        id          TEXT PRIMARY KEY,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER
    );
    CREATE TABLE lease_labels (
        lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
        key      TEXT NOT NULL,
        value    TEXT NOT NULL,
        PRIMARY KEY (lease_id, key)
    );
    CREATE TABLE lease_resources (
        lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
        kind     TEXT NOT NULL CHECK (kind IN ('content', 'ingest', 'snapshot')),
        resource TEXT NOT NULL,
        PRIMARY KEY (lease_id, kind, resource)
    );
    CREATE INDEX lease_resources_by_resource ON lease_resources(kind, resource);
    "#,
    // 2: named volumes.
    r#"
    CREATE TABLE volumes (
        name        TEXT PRIMARY KEY,
        driver      TEXT NOT NULL,
        anonymous   INTEGER NOT NULL,
        options     TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE volume_labels (
        volume_name TEXT NOT NULL REFERENCES volumes(name) ON DELETE CASCADE,
        key         TEXT NOT NULL,
        value       TEXT NOT NULL,
        PRIMARY KEY (volume_name, key)
    );
    "#,
    // 3: the measured disk usage of committed snapshots (immutable, so measured once), so
    // `system df` and `images` need not walk every layer's tree.
    r#"
    CREATE TABLE snapshot_usage (
        snapshot_id INTEGER PRIMARY KEY REFERENCES snapshots(id) ON DELETE CASCADE,
        size        INTEGER NOT NULL,
        inodes      INTEGER NOT NULL
    );
    "#,
    // 4: blobs whose file was let go after their layer was unpacked and its tar split kept
    // (`--discard-compressed`): the record stays (labels, size, references), the file does
    // not. And the store's settings.
    r#"
    ALTER TABLE blobs ADD COLUMN discarded_at INTEGER;
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
];

/// The schema version this build of strata writes.
pub fn current_version() -> u32 {
    MIGRATIONS.len() as u32
}
