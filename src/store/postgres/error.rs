//! Classifying PostgreSQL failures: "the database cannot be reached" (retryable, UNAVAILABLE)
//! is kept apart from everything else (a bug or corrupt data, INTERNAL).

use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// Why a PostgreSQL store could not be opened or migrated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpenError {
    /// `--datastore-conn-uri` is not a PostgreSQL connection string.
    #[error("invalid PostgreSQL connection URI: {0}")]
    InvalidUri(String),
    /// The database has not been migrated to the layout this build needs.
    #[error(
        "the PostgreSQL datastore is {}, this build needs version {required}: run `tessera datastore migrate --datastore-engine postgres --datastore-conn-uri URI` first",
        match found { Some(v) => format!("at version {v}"), None => "not initialized".to_string() }
    )]
    NotMigrated { found: Option<i32>, required: i32 },
    /// The database was migrated by a newer Tessera: this build must not touch it.
    #[error(
        "the PostgreSQL datastore is at version {found}, written by a newer Tessera; this build supports versions up to {supported}: upgrade Tessera"
    )]
    TooNew { found: i32, supported: i32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// SQLSTATE classes and codes that mean "the server is not there (right now)".
fn unavailable_state(state: &SqlState) -> bool {
    let code = state.code();
    // 08: connection exception; 53: insufficient resources (too many connections, out of
    // memory or disk); 57P01-57P03: administrator or crash shutdown, cannot connect now.
    code.starts_with("08") || code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// A driver error, with what was being done.
pub(crate) fn db_error(context: &str, e: tokio_postgres::Error) -> StoreError {
    if e.is_closed() {
        return StoreError::Unavailable(format!(
            "{context}: the connection to PostgreSQL was lost ({e})"
        ));
    }
    match e.as_db_error() {
        Some(db) if unavailable_state(db.code()) => StoreError::Unavailable(format!(
            "{context}: PostgreSQL is not accepting work ({}: {})",
            db.code().code(),
            db.message()
        )),
        Some(db) => StoreError::Backend(format!(
            "{context}: PostgreSQL error {}: {}",
            db.code().code(),
            db.message()
        )),
        // No server error: the connection or the socket failed (refused, reset, timed out).
        None => StoreError::Unavailable(format!("{context}: cannot reach PostgreSQL ({e})")),
    }
}

/// A connection-pool error.
pub(crate) fn pool_error(
    context: &str,
    e: deadpool_postgres::PoolError,
    target: &str,
) -> StoreError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => match db_error(context, e) {
            StoreError::Unavailable(m) => {
                StoreError::Unavailable(format!("{m} [PostgreSQL at {target}]"))
            }
            other => other,
        },
        PoolError::Timeout(kind) => StoreError::Unavailable(format!(
            "{context}: no PostgreSQL connection became available in time ({kind:?}) [PostgreSQL at {target}]"
        )),
        PoolError::Closed => {
            StoreError::Unavailable(format!("{context}: the connection pool is closed"))
        }
        other => StoreError::Backend(format!("{context}: connection pool: {other}")),
    }
}
