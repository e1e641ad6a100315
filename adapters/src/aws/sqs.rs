//! [`SqsQueue`]: an SQS queue (and its dead-letter queue, for the counts) as an [`EventQueue`].

use super::backend_error;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName};
use imgpipe_core::ports::{BackendError, EventQueue, MAX_SEND_DELAY, Message, QueueError, QueueStats};
use std::time::Duration;

/// Most messages SQS returns or deletes per call.
const SQS_BATCH: usize = 10;

/// An SQS queue; its redrive policy moves a message to the dead-letter queue after
/// `maxReceiveCount` receives.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    dead_letter_url: Option<String>,
}

impl SqsQueue {
    /// The queue at `url`; `dead_letter_url` (its DLQ) only feeds [`EventQueue::stats`].
    pub fn new(config: &SdkConfig, url: impl Into<String>, dead_letter_url: Option<String>) -> Self {
        Self { client: Client::new(config), url: url.into(), dead_letter_url }
    }

    async fn count(&self, url: &str, attribute: QueueAttributeName) -> Result<u64, QueueError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(attribute.clone())
            .send()
            .await
            .map_err(|e| backend_error("reading queue attributes", e))?;
        Ok(output.attributes().and_then(|a| a.get(&attribute)).and_then(|v| v.parse().ok()).unwrap_or(0))
    }
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn send(&self, body: &str) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| backend_error("sending a message", e))?;
        Ok(())
    }

    async fn send_delayed(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        let seconds = delay.min(MAX_SEND_DELAY).as_secs() as i32;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(seconds)
            .send()
            .await
            .map_err(|e| backend_error("sending a delayed message", e))?;
        Ok(())
    }

    async fn receive(&self, max: usize, lease: Duration) -> Result<Vec<Message>, QueueError> {
        // Visibility timeouts are whole seconds; round up so a lease is never shorter than asked.
        let seconds = i32::try_from(lease.as_millis().div_ceil(1000)).unwrap_or(i32::MAX);
        let mut messages = Vec::new();
        while messages.len() < max {
            let want = (max - messages.len()).min(SQS_BATCH);
            let output = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(want as i32)
                .visibility_timeout(seconds)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(|e| backend_error("receiving messages", e))?;
            let got = output.messages();
            if got.is_empty() {
                break;
            }
            messages.extend(got.iter().map(|m| {
                Message {
                    id: m.message_id().unwrap_or_default().to_owned(),
                    receipt: m.receipt_handle().unwrap_or_default().to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count: m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1),
                }
            }));
        }
        Ok(messages)
    }

    async fn ack(&self, receipts: &[String]) -> Result<(), QueueError> {
        for group in receipts.chunks(SQS_BATCH) {
            let entries = group
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .map_err(|e| BackendError::permanent("building a delete entry", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend_error("deleting messages", e))?;
            // A receipt whose lease expired is stale: the message will come back, as the port
            // says. Any other per-entry failure is the backend's.
            if let Some(failed) = output.failed().iter().find(|f| f.code() != "ReceiptHandleIsInvalid") {
                let message = format!("deleting a message: {}: {}", failed.code(), failed.message().unwrap_or(""));
                return Err(BackendError::without_source(message, !failed.sender_fault()).into());
            }
        }
        Ok(())
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let visible = self.count(&self.url, QueueAttributeName::ApproximateNumberOfMessages).await?;
        let in_flight = self.count(&self.url, QueueAttributeName::ApproximateNumberOfMessagesNotVisible).await?;
        let dead = match &self.dead_letter_url {
            Some(url) => self.count(url, QueueAttributeName::ApproximateNumberOfMessages).await?,
            None => 0,
        };
        Ok(QueueStats { visible, in_flight, dead })
    }

    async fn wait(&self, timeout: Duration) {
        // SQS long-polls inside `receive` (WaitTimeSeconds); between receives, just pause.
        tokio::time::sleep(timeout).await;
    }
}
