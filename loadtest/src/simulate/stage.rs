//! The stages an image passes through, for "where time goes".

use serde::{Deserialize, Serialize};

/// Where an image's time goes, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Arrival to original stored: API Gateway, ingest, the PUT, and waits for any of them.
    Upload,
    /// S3 event to SQS.
    Delivery,
    /// In the queue, waiting for the batch to fill or its window to pass.
    Batching,
    /// In the queue with the batch ripe, waiting for an orchestrator.
    QueueWait,
    /// The orchestrator's invocation.
    Orchestrator,
    /// StartExecution throttling and the Map's waves (a chunk waiting for its turn).
    WorkflowWait,
    /// Throttled invocations: retry backoff and re-drive delays.
    LambdaThrottle,
    /// The processor's invocation, not throttled.
    Processing,
    /// Writes held back by DynamoDB or S3 throttling.
    StoreThrottle,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 9] = [
        Stage::Upload,
        Stage::Delivery,
        Stage::Batching,
        Stage::QueueWait,
        Stage::Orchestrator,
        Stage::WorkflowWait,
        Stage::LambdaThrottle,
        Stage::Processing,
        Stage::StoreThrottle,
    ];

    /// A short name for tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Upload => "API/ingest/upload",
            Stage::Delivery => "S3 event delivery",
            Stage::Batching => "batching",
            Stage::QueueWait => "queue wait",
            Stage::Orchestrator => "orchestrator",
            Stage::WorkflowWait => "workflow wait (start, Map waves)",
            Stage::LambdaThrottle => "Lambda throttle/retry/re-drive",
            Stage::Processing => "processing",
            Stage::StoreThrottle => "DynamoDB/S3 throttling",
        }
    }
}
