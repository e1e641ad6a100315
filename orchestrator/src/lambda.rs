//! The orchestrator Lambda's handler: an SQS batch of S3 notifications (and re-drives) in, the
//! messages to redeliver out (`ReportBatchItemFailures`); and the sweeper Lambda's.

use crate::dispatch::{dispatch, report_unrecorded};
use crate::sweep::{SweepError, Sweeper};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use imgpipe_core::ports::{MetadataStore, WorkflowStarter};

/// Starts a workflow per group of the batch; the response lists exactly the messages whose
/// group did not start, unreadable ones and those naming an original without a record, so SQS
/// redelivers only those (and dead-letters them after the queue's `maxReceiveCount`).
pub async fn handle(
    event: SqsEvent,
    workflows: &dyn WorkflowStarter,
    metadata: &dyn MetadataStore,
) -> SqsBatchResponse {
    let dispatched = dispatch(workflows, metadata, event.records.iter().map(|r| r.body.as_deref().unwrap_or(""))).await;
    for (index, key) in &dispatched.unrecorded {
        let record = &event.records[*index];
        let receives = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
        report_unrecorded(record.message_id.as_deref().unwrap_or_default(), key, receives);
    }
    SqsBatchResponse {
        batch_item_failures: dispatched
            .failed
            .iter()
            .map(|&i| BatchItemFailure { item_identifier: event.records[i].message_id.clone().unwrap_or_default() })
            .collect(),
    }
}

/// One scheduled sweep (the EventBridge event carries nothing it needs); its counts are the
/// answer, and the summary log line the template's metric filters read.
pub async fn sweep(sweeper: &Sweeper<'_>) -> Result<serde_json::Value, SweepError> {
    let report = sweeper.run(imgpipe_core::record::now_ms()).await?;
    Ok(serde_json::json!({
        "stuck": report.stuck,
        "redriven": report.redriven,
        "failed": report.failed,
        "moved_on": report.moved_on,
    }))
}
