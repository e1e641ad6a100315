//! The ports' backends: AWS (S3, SQS, Step Functions, DynamoDB) and local (filesystem, SQLite).
//!
//! - [`keys`]: the object keys every backend accepts (one rule, so keys are portable).
//! - [`local`]: [`LocalBackend`] — [`FsObjectStore`](local::FsObjectStore) for objects, and
//!   [`SqliteQueue`](local::SqliteQueue) and [`SqliteMetadataStore`](local::SqliteMetadataStore)
//!   sharing one [`SqliteDb`](local::SqliteDb).
//! - [`aws`] (feature `aws`): [`S3ObjectStore`](aws::S3ObjectStore),
//!   [`SqsQueue`](aws::SqsQueue), [`SfnWorkflows`](aws::SfnWorkflows) and
//!   [`DynamoMetadataStore`](aws::DynamoMetadataStore) through the official SDK.
//!
//! Every adapter passes the same conformance suite (`tests/conformance`), so the pipeline cannot
//! tell the backends apart.

#![warn(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod keys;
pub mod local;

pub use local::{LOCAL_BUCKET, LocalBackend};

use imgpipe_core::ports::{BackendError, MetadataError};

/// A name stored by a metadata store (a status, an error kind) read back as its type.
pub(crate) fn parse_name<T: serde::de::DeserializeOwned>(name: &str, what: &str) -> Result<T, MetadataError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|e| MetadataError::Backend(BackendError::permanent(format!("stored {what} {name:?} is unknown"), e)))
}
