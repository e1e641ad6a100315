//! The orchestrator Lambda's handler: an SQS batch of S3 notifications in, the messages to
//! redeliver out (`ReportBatchItemFailures`).

use crate::dispatch::dispatch;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use imgpipe_core::ports::WorkflowStarter;

/// Starts a workflow per group of the batch; the response lists exactly the messages whose
/// group did not start (and unreadable ones), so SQS redelivers only those.
pub async fn handle(event: SqsEvent, workflows: &dyn WorkflowStarter) -> SqsBatchResponse {
    let dispatched = dispatch(workflows, event.records.iter().map(|r| r.body.as_deref().unwrap_or(""))).await;
    SqsBatchResponse {
        batch_item_failures: dispatched
            .failed
            .iter()
            .map(|&i| BatchItemFailure { item_identifier: event.records[i].message_id.clone().unwrap_or_default() })
            .collect(),
    }
}
