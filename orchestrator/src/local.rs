//! The orchestrator loop of the local mode: what the SQS event source mapping and the
//! orchestrator Lambda do on AWS, over the same [`group`](crate::group) function.

use crate::dispatch::{dispatch, report_unrecorded};
use imgpipe_core::ports::{EventQueue, Message, MetadataStore, WorkflowStarter};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// Batching and leasing, as the event source mapping would be configured on AWS.
#[derive(Debug, Clone, Copy)]
pub struct LoopConfig {
    /// Most messages handed over in one batch.
    pub max_messages: usize,
    /// Longest wait to fill a batch once its first message arrived (the batching window).
    pub max_wait: Duration,
    /// Visibility lease of received messages: unacknowledged ones come back after it.
    pub lease: Duration,
    /// Longest pause between polls of an empty queue (a local send wakes the loop at once).
    pub idle_poll: Duration,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            max_messages: 100,
            max_wait: Duration::from_millis(200),
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_millis(250),
        }
    }
}

/// Receives, groups and starts until `stop` turns true. Only messages whose workflow started
/// (or that need no work) are acknowledged; the rest come back when their lease expires.
/// `start` waiting for a free runner slot slows receiving down to the pace of processing.
pub async fn run(
    queue: Arc<dyn EventQueue>,
    workflows: Arc<dyn WorkflowStarter>,
    metadata: Arc<dyn MetadataStore>,
    config: LoopConfig,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let batch = match receive_batch(queue.as_ref(), &config, &mut stop).await {
            Ok(batch) => batch,
            Err(e) => {
                warn!(error = %e, "receive failed; retrying");
                sleep_or_stop(config.idle_poll * 10, &mut stop).await;
                continue;
            }
        };
        if batch.is_empty() {
            wait_or_stop(queue.as_ref(), config.idle_poll, &mut stop).await;
            continue;
        }
        hand_over(queue.as_ref(), workflows.as_ref(), metadata.as_ref(), &batch).await;
    }
}

/// Receives until `max_messages` or until `max_wait` after the first message.
async fn receive_batch(
    queue: &dyn EventQueue,
    config: &LoopConfig,
    stop: &mut watch::Receiver<bool>,
) -> Result<Vec<Message>, imgpipe_core::ports::QueueError> {
    let mut batch = queue.receive(config.max_messages, config.lease).await?;
    if batch.is_empty() {
        return Ok(batch);
    }
    let window = tokio::time::Instant::now() + config.max_wait;
    while batch.len() < config.max_messages && tokio::time::Instant::now() < window && !*stop.borrow() {
        let more = queue.receive(config.max_messages - batch.len(), config.lease).await?;
        if more.is_empty() {
            let left = window.saturating_duration_since(tokio::time::Instant::now());
            wait_or_stop(queue, config.idle_poll.min(left), stop).await;
        }
        batch.extend(more);
    }
    Ok(batch)
}

/// Groups a batch, starts its workflows and acknowledges what was handed over.
pub async fn hand_over(
    queue: &dyn EventQueue,
    workflows: &dyn WorkflowStarter,
    metadata: &dyn MetadataStore,
    batch: &[Message],
) {
    let dispatched = dispatch(workflows, metadata, batch.iter().map(|m| m.body.as_str())).await;
    for (index, key) in &dispatched.unrecorded {
        report_unrecorded(&batch[*index].id, key, batch[*index].receive_count);
    }
    let done: Vec<String> = dispatched.handed_over.iter().map(|&i| batch[i].receipt.clone()).collect();
    if let Err(e) = queue.ack(&done).await {
        warn!(error = %e, "acknowledging failed; the messages will be redelivered (processing is idempotent)");
    }
}

async fn wait_or_stop(queue: &dyn EventQueue, timeout: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        () = queue.wait(timeout) => {}
        _ = stop.changed() => {}
    }
}

async fn sleep_or_stop(duration: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = stop.changed() => {}
    }
}
