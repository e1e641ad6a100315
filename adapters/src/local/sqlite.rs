//! The one SQLite file behind the local queue and metadata store: opening it, its schema, and
//! running work on its connection without blocking the async runtime.
//!
//! Queue and metadata share one database (and one connection) so that accepting an upload can
//! create its record and enqueue its event in a single transaction.

use imgpipe_core::ports::BackendError;
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i32 = 1;

/// How long a statement waits for another process's write lock before failing with
/// SQLITE_BUSY: long enough to ride out a checkpoint or a burst of writes from a second process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Migrations, in order: entry `n` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1
    "CREATE TABLE records (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        record TEXT NOT NULL -- the MetadataRecord JSON, the same document as in DynamoDB
    );
    CREATE INDEX records_by_status ON records (status, created_ms DESC, id DESC);
    CREATE INDEX records_by_created ON records (created_ms DESC, id DESC);
    CREATE TABLE queue (
        seq INTEGER PRIMARY KEY,           -- send order
        message_id TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL,
        visible_at_ms INTEGER NOT NULL,    -- leased until then; visible from then on
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt TEXT UNIQUE                -- handle of the latest receive, NULL before the first
    );
    CREATE INDEX queue_by_visibility ON queue (visible_at_ms, seq);
    CREATE TABLE dead_letters (
        message_id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        receive_count INTEGER NOT NULL,
        died_ms INTEGER NOT NULL
    );",
];

/// An open imgpipe SQLite database: one connection, shared by the adapters built on it.
///
/// Cheap to clone (the clones share the connection).
#[derive(Debug, Clone)]
pub struct SqliteDb {
    // One connection behind a std (not tokio) mutex: it is only ever locked inside
    // `spawn_blocking`, never across an `.await`, and SQLite serialises writers anyway, so a pool
    // would buy nothing but SQLITE_BUSY between our own connections.
    conn: Arc<Mutex<Connection>>,
    // Wakes a consumer waiting on an empty queue when this process enqueues a message.
    sent: Arc<tokio::sync::Notify>,
}

/// Prepared statements kept for reuse.
const STATEMENT_CACHE: usize = 64;

impl SqliteDb {
    /// Opens (creating if missing) the database at `path`, in WAL mode, with the current schema.
    ///
    /// Blocking: call it at startup, or from `spawn_blocking`.
    pub fn open(path: &Path) -> Result<SqliteDb, BackendError> {
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sql_error(&format!("opening {}", path.display()), e))?;
        configure(&conn)?;
        migrate(&mut conn)?;
        // Every statement is prepared once and reused (they number about 25; the default keeps 16).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(SqliteDb { conn: Arc::new(Mutex::new(conn)), sent: Arc::new(tokio::sync::Notify::new()) })
    }

    /// Tells a waiting consumer that a message was committed to the queue.
    pub(crate) fn message_sent(&self) {
        // `notify_one` keeps a permit when no one waits yet, so a send that lands between a
        // consumer's empty receive and its wait is not missed.
        self.sent.notify_one();
    }

    /// Waits until [`message_sent`](Self::message_sent) or `timeout` (messages sent by another
    /// process, and leases that expire, are seen at the timeout).
    pub(crate) async fn wait_for_message(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.sent.notified()).await;
    }

    /// Runs `work` on the connection on the blocking pool; `what` names it in errors.
    pub(crate) async fn call<T, F>(&self, what: &'static str, work: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a transaction open (a `Transaction`
            // rolls back when dropped during unwinding), so a poisoned connection is still sound.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut conn)
        })
        .await
        .map_err(|e| BackendError::permanent(format!("{what}: the database task failed"), e))?
        .map_err(|e| sql_error(what, e))
    }
}

/// Starts a write transaction that takes the write lock up front.
///
/// A deferred transaction that reads and then writes cannot wait for the lock when another
/// process wrote in between (SQLite returns SQLITE_BUSY at once, ignoring `busy_timeout`);
/// IMMEDIATE waits at BEGIN instead, where `busy_timeout` applies.
pub(crate) fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Maps a SQLite error to a [`BackendError`]: lock contention may clear, anything else will not.
pub(crate) fn sql_error(what: &str, error: rusqlite::Error) -> BackendError {
    let retryable = matches!(error.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked));
    let message = format!("sqlite: {what}: {error}");
    if retryable { BackendError::retryable(message, error) } else { BackendError::permanent(message, error) }
}

/// Milliseconds as SQLite's INTEGER (i64); times past year 292 million saturate.
pub(crate) fn to_sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn configure(conn: &Connection) -> Result<(), BackendError> {
    let fail = |e| sql_error("configuring the database", e);
    // WAL: readers never block the writer and a commit is one append, not a journal rewrite.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        let message = format!("sqlite: journal_mode is {mode}: WAL is unavailable on this filesystem");
        return Err(BackendError::without_source(message, false));
    }
    // NORMAL is durable across application crashes in WAL mode; only a power loss can drop the
    // last commits, and it never corrupts the file. FULL would fsync on every commit.
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(fail)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)
}

fn migrate(conn: &mut Connection) -> Result<(), BackendError> {
    let fail = |e| sql_error("migrating the schema", e);
    let tx = write_tx(conn).map_err(fail)?;
    let version: i32 = tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(fail)?;
    if version > SCHEMA_VERSION {
        let message = format!(
            "the database has schema version {version}, newer than this build's {SCHEMA_VERSION}: upgrade imgpipe"
        );
        return Err(BackendError::without_source(message, false));
    }
    let pending = usize::try_from(version).unwrap_or(0);
    for sql in MIGRATIONS.iter().skip(pending) {
        tx.execute_batch(sql).map_err(fail)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(fail)?;
    tx.commit().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_versioned_and_a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        drop(SqliteDb::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let version: i32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        // Reopening an up-to-date file is a no-op.
        drop(SqliteDb::open(&path).unwrap());
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        let error = SqliteDb::open(&path).unwrap_err();
        assert!(error.to_string().contains("newer"), "{error}");
    }

    #[test]
    fn busy_errors_are_retryable() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        assert!(sql_error("x", busy).is_retryable());
        assert!(!sql_error("x", rusqlite::Error::QueryReturnedNoRows).is_retryable());
    }
}
