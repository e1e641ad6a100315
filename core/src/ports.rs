//! The ports: what the pipeline needs from storage, queueing, workflows and metadata, shaped
//! so that S3, SQS, Step Functions and DynamoDB on AWS, and the filesystem and SQLite locally,
//! implement them with the same meaning (as `object_store`'s backends do).
//!
//! Errors mean the same on every backend; the backend's own error is kept as the `source`.

use crate::record::MetadataRecord;
use crate::seams::{ImageId, Status, WorkflowInput};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// A backend failure, with whether trying again may help (throttling, 5xx, timeouts).
///
/// Whether a failure is worth retrying is decided here, once: each backend says so when it maps
/// its own error in (`BackendError::retryable` or `permanent`), and every caller (the chunk
/// service, the workflow runner, the API's status codes) asks [`is_retryable`](Self::is_retryable)
/// of the port error it got.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    message: String,
    retryable: bool,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BackendError {
    /// A failure that may go away on retry.
    pub fn retryable(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self { message: message.into(), retryable: true, source: Some(Box::new(source)) }
    }

    /// A failure that will not go away by itself.
    pub fn permanent(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self { message: message.into(), retryable: false, source: Some(Box::new(source)) }
    }

    /// A failure the backend reported without an error value of its own (a per-entry failure
    /// in a batch response, retries of unprocessed items run out, a refused setting).
    pub fn without_source(message: impl Into<String>, retryable: bool) -> Self {
        Self { message: message.into(), retryable, source: None }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// Gives a port error whose only retryable case is a [`BackendError`] its `is_retryable`.
macro_rules! retryable_when_backend {
    ($($error:ident),+) => {$(
        impl $error {
            /// Whether the same call may succeed later: only a backend failure may, and only
            /// when [`BackendError::is_retryable`] says so.
            pub fn is_retryable(&self) -> bool {
                matches!(self, Self::Backend(b) if b.is_retryable())
            }
        }
    )+};
}

retryable_when_backend!(StoreError, QueueError, WorkflowError, MetadataError);

// ---- object store ----

/// What travels with an object: its content type and user metadata (the upload options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// MIME type.
    pub content_type: String,
    /// User metadata (`x-amz-meta-*` on S3), e.g. `preset`.
    pub metadata: BTreeMap<String, String>,
}

/// A stored object's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its entity tag (changes when the bytes change).
    pub etag: String,
    /// Content type and user metadata.
    pub meta: ObjectMeta,
}

/// Object store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No object has this key.
    #[error("no object at {key}")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// The key is not acceptable (empty, absolute, `..`, …).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key given.
        key: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Objects by key, with atomic puts: a reader sees the old bytes or the new, never a mix.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores `bytes` at `key`, replacing any object there.
    async fn put(&self, key: &str, bytes: Bytes, meta: &ObjectMeta) -> Result<ObjectInfo, StoreError>;
    /// Reads the object at `key`.
    async fn get(&self, key: &str) -> Result<(Bytes, ObjectInfo), StoreError>;
    /// Describes the object at `key` without reading it.
    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError>;
    /// Removes the object at `key`; removing a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Every key that starts with `prefix`, in lexical order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
}

// ---- event queue ----

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message's id (stable across receives).
    pub id: String,
    /// The handle that acknowledges this receive (changes with every receive).
    pub receipt: String,
    /// The body: an S3 event notification.
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
}

/// The longest delay of [`EventQueue::send_delayed`] (SQS `DelaySeconds`).
pub const MAX_SEND_DELAY: Duration = Duration::from_secs(900);

/// Counts for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Waiting to be received.
    pub visible: u64,
    /// Received, lease not expired, not acknowledged.
    pub in_flight: u64,
    /// Moved to the dead-letter queue.
    pub dead: u64,
}

/// Queue errors.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The receipt is unknown or its lease expired (the message may be received again).
    #[error("receipt {0} is not current")]
    StaleReceipt(String),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A queue with SQS semantics: at-least-once delivery, a visibility lease per receive, and a
/// dead-letter queue for messages received more than `max_receives` times.
#[async_trait]
pub trait EventQueue: Send + Sync + 'static {
    /// Appends a message.
    async fn send(&self, body: &str) -> Result<(), QueueError>;
    /// Appends a message that becomes visible only after `delay` (whole seconds, at most 900
    /// as SQS `DelaySeconds`; longer is cut to 900): a re-drive waiting for capacity.
    async fn send_delayed(&self, body: &str, delay: Duration) -> Result<(), QueueError>;
    /// Leases up to `max` visible messages for `lease`; unacknowledged, they come back after it.
    async fn receive(&self, max: usize, lease: Duration) -> Result<Vec<Message>, QueueError>;
    /// Deletes the received messages these receipts belong to.
    async fn ack(&self, receipts: &[String]) -> Result<(), QueueError>;
    /// Current counts.
    async fn stats(&self) -> Result<QueueStats, QueueError>;
    /// Returns when a message may have become visible, or after `timeout` at the latest: a
    /// consumer's pause between receives of an empty queue (SQS long-polls inside `receive`).
    async fn wait(&self, timeout: Duration);
}

// ---- workflows ----

/// Workflow errors.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The input is refused (too large, malformed).
    #[error("workflow input refused: {0}")]
    InvalidInput(String),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Starts a workflow execution per batch. Delivery is at-least-once: the same batch may be
/// started twice (Express does not deduplicate by name), so what a workflow does must be safe
/// to run twice, at once too (see [`MetadataStore::begin`]).
#[async_trait]
pub trait WorkflowStarter: Send + Sync + 'static {
    /// Starts processing `input` (returns once it is accepted, not when it is done).
    async fn start(&self, input: WorkflowInput) -> Result<(), WorkflowError>;
}

// ---- metadata ----

/// Metadata errors.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The write would move a record backwards (e.g. DONE to PROCESSING), or create a duplicate.
    #[error("image {id}: refused transition to {to:?}")]
    Conflict {
        /// The image.
        id: ImageId,
        /// The status that was refused.
        to: Status,
    },
    /// A list cursor that this store did not hand out.
    #[error("invalid list cursor {0:?}")]
    InvalidCursor(String),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A page of records.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Records, newest first.
    pub records: Vec<MetadataRecord>,
    /// Pass back to get the next page; `None` at the end.
    pub cursor: Option<String>,
}

/// What [`MetadataStore::begin`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// The record is now PROCESSING with its attempt counted.
    Started(MetadataRecord),
    /// The record is already DONE or FAILED: nothing to do (a duplicate event or a retry).
    AlreadyFinal(MetadataRecord),
    /// No record has this id (an object without an accepted upload).
    Unknown,
}

/// Where the ObjectCreated event of a stored original comes from. It fixes the order of an
/// upload's two writes, so that an event never finds an object without its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    /// The object store announces every new object itself (S3 → SQS, as soon as the PUT
    /// succeeds): the record is written first, then the object.
    ObjectStore,
    /// [`MetadataStore::accept`] enqueues the event in the transaction that writes the record:
    /// the object is written first, so the event never precedes its bytes (local).
    MetadataStore,
}

/// One record per image. Status only moves forward: AWAITING_UPLOAD → PENDING → PROCESSING →
/// DONE | FAILED, and a final record is never overwritten. Only an AWAITING_UPLOAD record has
/// `expires_at` (see [`crate::record`] for the lifecycle).
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Who announces a stored original, and so whether [`accept`](Self::accept) comes before
    /// the original is written or after.
    fn event_source(&self) -> EventSource;
    /// Records an accepted upload: after its original is stored ([`EventSource::MetadataStore`])
    /// or just before ([`EventSource::ObjectStore`]). `notification` is the S3 ObjectCreated event
    /// for it: S3 sends its own, so the AWS backend ignores it; the local backend enqueues it in
    /// the same transaction that creates the record.
    async fn accept(&self, record: &MetadataRecord, notification: &str) -> Result<(), MetadataError>;
    /// Creates AWAITING_UPLOAD slots (bulk presigned upload), in as few round trips as the
    /// backend allows. A record whose status is not AWAITING_UPLOAD is refused before anything is
    /// written. The ids must be freshly generated: the local store refuses an existing id, but
    /// DynamoDB's `BatchWriteItem` takes no condition, so there a slot would replace it. Not
    /// atomic: after an error some slots may exist, and they expire with their upload URLs.
    async fn reserve(&self, slots: &[MetadataRecord]) -> Result<(), MetadataError>;
    /// The record of `id`.
    async fn get(&self, id: ImageId) -> Result<Option<MetadataRecord>, MetadataError>;
    /// Which of `ids` have a record, read consistently (a record written before this call is
    /// seen).
    async fn existing(&self, ids: &[ImageId]) -> Result<HashSet<ImageId>, MetadataError>;
    /// Moves `id` to PROCESSING, counts the attempt and removes `expires_at`, unless it is
    /// already final.
    async fn begin(&self, id: ImageId, now_ms: u64) -> Result<Begin, MetadataError>;
    /// Writes final (DONE or FAILED) records in batches, without `expires_at`; a record already
    /// final is left as is.
    async fn finish(&self, records: &[MetadataRecord]) -> Result<(), MetadataError>;
    /// Records with `status` (all when `None`), newest first, `limit` per page.
    async fn list(&self, status: Option<Status>, cursor: Option<&str>, limit: usize) -> Result<Page, MetadataError>;
    /// How many records have each status, and FAILED ones per error kind (for metrics).
    async fn counts(&self) -> Result<Counts, MetadataError>;
    /// The sweeper's write on a record it found stuck (`seen`, as [`list`](Self::list) returned
    /// it): counts a re-drive (`sweeps` + 1) or makes it FAILED with `error` (no `expires_at`),
    /// only if the record is still as seen (same status, `attempts`, `started_ms` and
    /// `sweeps`), so a record that moved meanwhile is left alone and two sweepers count once.
    /// Returns whether it wrote; never overwrites a final record.
    async fn sweep(&self, seen: &MetadataRecord, action: &SweepAction, now_ms: u64) -> Result<bool, MetadataError>;
}

/// What [`MetadataStore::sweep`] does to a stuck record.
#[derive(Debug, Clone, PartialEq)]
pub enum SweepAction {
    /// Count one more re-drive; the status stays.
    Redrive,
    /// Give up: FAILED with this error, finished now.
    Fail(crate::ImageError),
}

/// Record counts for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Per status.
    pub by_status: BTreeMap<Status, u64>,
    /// FAILED records per error kind.
    pub failed_by_kind: BTreeMap<crate::ErrorKind, u64>,
}
