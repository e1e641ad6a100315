//! The local backend: objects as files, queue and metadata in one SQLite file (WAL).
//!
//! - [`fs`]: [`FsObjectStore`], atomic puts, metadata in extended attributes (or sidecars).
//! - [`handoff`]: [`Handoff`], just-written objects handed to their first reader from memory.
//! - [`sqlite`]: [`SqliteDb`], the database file, its schema and its one connection.
//! - [`queue`]: [`SqliteQueue`], SQS semantics on a table.
//! - [`metadata`]: [`SqliteMetadataStore`], records; `accept` enqueues in the same transaction.

pub mod fs;
pub mod handoff;
pub mod metadata;
pub mod queue;
pub mod sqlite;

pub use fs::{Durability, FsObjectStore};
pub use handoff::Handoff;
pub use metadata::SqliteMetadataStore;
pub use queue::{DeadLetter, SqliteQueue};
pub use sqlite::SqliteDb;

use imgpipe_core::ports::BackendError;
use std::path::Path;
use std::sync::Arc;

/// The bucket name in the object references and S3-shaped events of the local mode.
pub const LOCAL_BUCKET: &str = "local";

/// Every local adapter over one data directory: `objects/` and `imgpipe.sqlite`.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    /// Originals and renditions, under `data_dir/objects`.
    pub objects: Arc<FsObjectStore>,
    /// The ingest queue, in `data_dir/imgpipe.sqlite`.
    pub queue: Arc<SqliteQueue>,
    /// The metadata records, in the same database as the queue.
    pub metadata: Arc<SqliteMetadataStore>,
}

impl LocalBackend {
    /// Opens (creating if missing) the backend kept in `data_dir`.
    ///
    /// Blocking: call it at startup, or from `spawn_blocking`.
    pub fn open(data_dir: &Path) -> Result<LocalBackend, BackendError> {
        LocalBackend::open_with(data_dir, Durability::PowerLoss)
    }

    /// Opens the backend kept in `data_dir`, its objects as durable as `durability` says (the
    /// database is the same either way: WAL, `synchronous=NORMAL`, no fsync per commit).
    pub fn open_with(data_dir: &Path, durability: Durability) -> Result<LocalBackend, BackendError> {
        let objects = data_dir.join("objects");
        std::fs::create_dir_all(&objects)
            .map_err(|e| BackendError::permanent(format!("creating {}", objects.display()), e))?;
        let db = SqliteDb::open(&data_dir.join("imgpipe.sqlite"))?;
        Ok(LocalBackend {
            objects: Arc::new(FsObjectStore::with_durability(objects, durability)),
            queue: Arc::new(SqliteQueue::new(db.clone())),
            metadata: Arc::new(SqliteMetadataStore::new(db)),
        })
    }
}
