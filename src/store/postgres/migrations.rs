//! Versioned, idempotent migrations of the PostgreSQL datastore.
//!
//! Each migration is applied once, in order, inside one transaction together with its row in
//! `tessera_migrations` (so a migration is either fully applied and recorded, or not at all),
//! under an advisory lock (so two `tessera datastore migrate` runs cannot interleave).
//! A database whose newest applied version is beyond what this build knows was written by a
//! newer Tessera: it is refused, never modified.

use tokio_postgres::Client;

use super::MIGRATION_LOCK;
use super::error::{OpenError, db_error};

/// One step of the database layout.
struct Migration {
    version: i32,
    description: &'static str,
    sql: &'static str,
}

/// Every migration this build knows, in order. Never edit a released one: add the next.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "relationship versions, change log, schema history, GC state",
    sql: r#"
CREATE TABLE tessera_relationships (
    resource_type    TEXT COLLATE "C" NOT NULL,
    resource_id      TEXT COLLATE "C" NOT NULL,
    relation         TEXT COLLATE "C" NOT NULL,
    subject_type     TEXT COLLATE "C" NOT NULL,
    subject_id       TEXT COLLATE "C" NOT NULL,
    -- '' is the ellipsis (no subject relation); it sorts before every relation name.
    subject_relation TEXT COLLATE "C" NOT NULL,
    caveat_name      TEXT,
    caveat_context   TEXT,
    expires_at       TIMESTAMPTZ,
    created_rev      BIGINT NOT NULL,
    -- The revision that ended this version; 9223372036854775807 while it is current.
    deleted_rev      BIGINT NOT NULL DEFAULT 9223372036854775807,
    PRIMARY KEY (resource_type, resource_id, relation, subject_type, subject_id,
                 subject_relation, created_rev)
);
CREATE INDEX tessera_relationships_by_subject ON tessera_relationships
    (subject_type, subject_id, subject_relation, resource_type, relation, resource_id);
CREATE INDEX tessera_relationships_expiring ON tessera_relationships (expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE tessera_transactions (
    revision       BIGINT PRIMARY KEY,
    committed_at   TIMESTAMPTZ NOT NULL,
    caller         TEXT,
    metadata       TEXT,
    schema_changed BOOLEAN NOT NULL
);

CREATE TABLE tessera_changes (
    revision         BIGINT NOT NULL,
    seq              INTEGER NOT NULL,
    op               SMALLINT NOT NULL,
    resource_type    TEXT COLLATE "C" NOT NULL,
    resource_id      TEXT COLLATE "C" NOT NULL,
    relation         TEXT COLLATE "C" NOT NULL,
    subject_type     TEXT COLLATE "C" NOT NULL,
    subject_id       TEXT COLLATE "C" NOT NULL,
    subject_relation TEXT COLLATE "C" NOT NULL,
    caveat_name      TEXT,
    caveat_context   TEXT,
    expires_at       TIMESTAMPTZ,
    PRIMARY KEY (revision, seq)
);

CREATE TABLE tessera_schemas (
    revision BIGINT PRIMARY KEY,
    text     TEXT NOT NULL
);

CREATE TABLE tessera_gc (
    singleton       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    oldest_revision BIGINT NOT NULL
);
INSERT INTO tessera_gc (oldest_revision) VALUES (0);
"#,
}];

/// The newest database version this build reads and writes.
pub const LATEST_VERSION: i32 = 1;

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The version before (`None`: a database Tessera had never used).
    pub from: Option<i32>,
    /// The version now ([`LATEST_VERSION`]).
    pub to: i32,
    /// The migrations applied, as `(version, description)`.
    pub applied: Vec<(i32, &'static str)>,
}

const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS tessera_migrations (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// The newest applied migration, `None` when the version table does not exist.
pub(super) async fn current_version(client: &Client) -> Result<Option<i32>, OpenError> {
    let exists = client
        .query_one("SELECT to_regclass('tessera_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| OpenError::Store(db_error("reading the datastore version", e)))?;
    if !exists.get::<_, bool>(0) {
        return Ok(None);
    }
    let row = client
        .query_one("SELECT max(version) FROM tessera_migrations", &[])
        .await
        .map_err(|e| OpenError::Store(db_error("reading the datastore version", e)))?;
    Ok(row.get::<_, Option<i32>>(0))
}

/// Refuses a database that is not at exactly [`LATEST_VERSION`].
pub(super) async fn require_latest(client: &Client) -> Result<(), OpenError> {
    match current_version(client).await? {
        Some(LATEST_VERSION) => Ok(()),
        Some(v) if v > LATEST_VERSION => Err(OpenError::TooNew {
            found: v,
            supported: LATEST_VERSION,
        }),
        found => Err(OpenError::NotMigrated {
            found,
            required: LATEST_VERSION,
        }),
    }
}

/// Brings the database to [`LATEST_VERSION`]; a no-op when it is there already.
pub(super) async fn migrate(client: &mut Client) -> Result<MigrationReport, OpenError> {
    let context = "migrating the datastore";
    let txn = client
        .transaction()
        .await
        .map_err(|e| OpenError::Store(db_error(context, e)))?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| OpenError::Store(db_error(context, e)))?;
    let had_table = txn
        .query_one("SELECT to_regclass('tessera_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| OpenError::Store(db_error(context, e)))?
        .get::<_, bool>(0);
    txn.batch_execute(CREATE_VERSION_TABLE)
        .await
        .map_err(|e| OpenError::Store(db_error(context, e)))?;
    let from: Option<i32> = txn
        .query_one("SELECT max(version) FROM tessera_migrations", &[])
        .await
        .map_err(|e| OpenError::Store(db_error(context, e)))?
        .get(0);
    if let Some(v) = from
        && v > LATEST_VERSION
    {
        return Err(OpenError::TooNew {
            found: v,
            supported: LATEST_VERSION,
        });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS
        .iter()
        .filter(|m| from.is_none_or(|v| m.version > v))
    {
        txn.batch_execute(m.sql).await.map_err(|e| {
            OpenError::Store(db_error(
                &format!("applying migration {} ({})", m.version, m.description),
                e,
            ))
        })?;
        txn.execute(
            "INSERT INTO tessera_migrations (version, description) VALUES ($1, $2)",
            &[&m.version, &m.description],
        )
        .await
        .map_err(|e| OpenError::Store(db_error(context, e)))?;
        applied.push((m.version, m.description));
    }
    txn.commit()
        .await
        .map_err(|e| OpenError::Store(db_error(context, e)))?;
    Ok(MigrationReport {
        from: if had_table { from } else { None },
        to: LATEST_VERSION,
        applied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_densely_up_to_the_latest() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.description);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(LATEST_VERSION));
    }
}
