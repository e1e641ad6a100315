//! The orchestrator: from queue messages (S3 ObjectCreated notifications) to workflow inputs.
//!
//! - [`group`]: the pure grouping shared by the Lambda and the local loop: parse each body,
//!   drop test events and non-original keys, dedupe repeated deliveries, chunk, and remember
//!   which messages each workflow carries so only those are acknowledged once it has started.
//! - [`dispatch`]: looking the originals' records up (one consistent read per batch), starting
//!   the groups' workflows, and telling handed-over messages from failed ones (a message naming
//!   an original without a record is failed: retried, then dead-lettered).
//! - [`lambda`] (feature `lambda`): the Lambda handler, `SqsEvent` in, `SqsBatchResponse` out.
//! - [`local`]: the local loop: receive with a batching window, group, start each workflow on
//!   the in-process runner (which blocks when busy: backpressure), acknowledge what started.
//! - [`sweep`]: the scheduled sweeper: records stuck PENDING or PROCESSING go back through the
//!   queue a bounded number of times, then FAILED `internal`.

#![warn(missing_docs)]

pub mod dispatch;
pub mod group;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod local;
pub mod sweep;
