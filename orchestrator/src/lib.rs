//! The orchestrator: from queue messages (S3 ObjectCreated notifications) to workflow inputs.
//!
//! - [`group`]: the pure grouping shared by the Lambda and the local loop: parse each body,
//!   drop test events and non-original keys, dedupe repeated deliveries, chunk, and remember
//!   which messages each workflow carries so only those are acknowledged once it has started.

pub mod group;
