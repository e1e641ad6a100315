//! The local workflow runner: what Step Functions Express does on AWS, in process.
//!
//! Same chunking (the input's chunks), same Map concurrency and the same Retry/Catch policy as
//! the state machine (`imgpipe_core::policy`): a retryable chunk failure is retried with
//! exponential backoff and full jitter; when retries run out, the chunk goes back to the queue
//! as a [`Redrive`] delayed by `REDRIVE_DELAY` (with [`LocalWorkflows::with_redrive`]) until it
//! has been sent back `MAX_REDRIVES` times, then its unfinished images are marked FAILED
//! (`internal`, "still throttled after N attempts"). A permanent failure marks them FAILED at
//! once. Either way every accepted image still ends DONE or FAILED.

use crate::chunk::{ChunkService, fail_all};
use async_trait::async_trait;
use futures_util::{StreamExt, stream};
use imgpipe_core::ImageError;
use imgpipe_core::event::Redrive;
use imgpipe_core::policy::{MAP_MAX_CONCURRENCY, MAX_REDRIVES, RETRY, RetryPolicy};
use imgpipe_core::ports::{EventQueue, WorkflowError, WorkflowStarter};
use imgpipe_core::seams::{ChunkInput, WorkflowInput};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::{Instrument, error, info_span, warn};

/// Runs workflows in process, at most `max_running` at once: `start` waits for a free slot,
/// which is the backpressure the orchestrator loop feels.
#[derive(Clone)]
pub struct LocalWorkflows {
    service: Arc<ChunkService>,
    slots: Arc<Semaphore>,
    max_running: u32,
    retry: RetryPolicy,
    redrive: Option<(Arc<dyn EventQueue>, Duration)>,
}

impl LocalWorkflows {
    /// A runner over `service` with `max_running` concurrent workflows.
    pub fn new(service: Arc<ChunkService>, max_running: usize) -> Self {
        let max_running = max_running.clamp(1, Semaphore::MAX_PERMITS) as u32;
        Self {
            service,
            slots: Arc::new(Semaphore::new(max_running as usize)),
            max_running,
            retry: RETRY,
            redrive: None,
        }
    }

    /// The same runner sending chunks that run out of retries back to `queue`, `delay` later
    /// (`REDRIVE_DELAY` in the stack, shorter in tests), as the state machine does. Without
    /// it, such a chunk's images are marked FAILED at once.
    pub fn with_redrive(mut self, queue: Arc<dyn EventQueue>, delay: Duration) -> Self {
        self.redrive = Some((queue, delay));
        self
    }

    /// The same runner with another retry policy (tests use short delays).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Waits until no workflow is running (or `deadline` passes); returns whether it is idle.
    pub async fn drain(&self, deadline: Duration) -> bool {
        let all = self.slots.acquire_many(self.max_running);
        matches!(tokio::time::timeout(deadline, all).await, Ok(Ok(_)))
    }

    /// Workflows running now.
    pub fn running(&self) -> usize {
        self.max_running as usize - self.slots.available_permits()
    }

    async fn run(self, input: WorkflowInput) {
        let (batch_id, attempt) = (input.batch_id, input.attempt);
        // Owned futures (no borrow of `self` across the stream) keep the task `Send + 'static`.
        stream::iter(input.chunks)
            .map(|images| self.clone().run_chunk(ChunkInput { batch_id: batch_id.clone(), attempt, images }))
            .buffer_unordered(MAP_MAX_CONCURRENCY)
            .collect::<()>()
            .await;
    }

    async fn run_chunk(self, input: ChunkInput) {
        let mut attempt = 0;
        loop {
            match self.service.process(&input).await {
                Ok(_) => return,
                Err(e) if e.is_retryable() && attempt < self.retry.max_attempts => {
                    attempt += 1;
                    let delay = self.retry.jittered(attempt, fastrand::f64());
                    warn!(attempt, ?delay, error = %e, "chunk failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    let tries = attempt + 1;
                    let failure = match &self.redrive {
                        Some((queue, delay)) if e.is_retryable() => {
                            if input.attempt < MAX_REDRIVES {
                                let redrive = Redrive {
                                    attempt: input.attempt + 1,
                                    images: input.images.clone(),
                                    reason: e.to_string(),
                                };
                                match queue.send_delayed(&redrive.to_json(), *delay).await {
                                    Ok(()) => {
                                        warn!(attempt = redrive.attempt, ?delay, error = %e, "chunk sent back to the queue");
                                        return;
                                    }
                                    // As the state machine: not the images' fault, so not FAILED;
                                    // the records stay open for the start-up recovery.
                                    Err(send) => {
                                        error!(error = %e, send_error = %send, "chunk could not be sent back");
                                        return;
                                    }
                                }
                            }
                            ImageError::internal(format!(
                                "still throttled after {} attempts ({tries} tries each): {e}",
                                input.attempt + 1
                            ))
                        }
                        _ => ImageError::internal(format!("processing failed after {tries} attempts: {e}")),
                    };
                    error!(error = %e, "chunk failed for good; marking its images FAILED");
                    if let Err(e) = fail_all(self.service.metadata().as_ref(), &input.images, &failure).await {
                        // The records stay PENDING/PROCESSING; the start-up sweep requeues them.
                        error!(error = %e, "could not record the failure");
                    }
                    return;
                }
            }
        }
    }
}

#[async_trait]
impl WorkflowStarter for LocalWorkflows {
    async fn start(&self, input: WorkflowInput) -> Result<(), WorkflowError> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| WorkflowError::InvalidInput("runner stopped".into()))?;
        let runner = self.clone();
        let span = info_span!("workflow", batch_id = %input.batch_id);
        tokio::spawn(
            async move {
                runner.run(input).await;
                drop(slot);
            }
            .instrument(span),
        );
        Ok(())
    }
}
