//! The numbers the state machine and the local workflow runner share: one source of truth.
//!
//! `infra/statemachine/process-images.asl.json` is checked against these in a test, so the two
//! cannot drift.

use std::time::Duration;

/// Images per processor invocation (one Map iteration).
pub const CHUNK_SIZE: usize = 10;

/// Chunks in one workflow execution (its input stays well under 256 KB: keys only).
pub const MAX_CHUNKS_PER_WORKFLOW: usize = 50;

/// Chunks of one workflow processed at once (the Map state's MaxConcurrency).
pub const MAP_MAX_CONCURRENCY: usize = 8;

/// How a failed chunk is retried before it is caught and its images marked FAILED.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_attempts: u32,
    /// Wait before the first retry.
    pub interval: Duration,
    /// Multiplier applied to the wait after each retry.
    pub backoff_rate: f64,
    /// Longest wait between retries.
    pub max_delay: Duration,
}

/// The Task state's Retry for retryable processor errors.
pub const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    interval: Duration::from_secs(2),
    backoff_rate: 2.0,
    max_delay: Duration::from_secs(30),
};

impl RetryPolicy {
    /// The wait before retry `n` (1-based), before jitter: interval × rate^(n-1), capped.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = self.backoff_rate.powi(n.saturating_sub(1) as i32);
        self.interval.mul_f64(factor).min(self.max_delay)
    }
}

/// Receives of one queue message before it moves to the dead-letter queue.
pub const MAX_RECEIVES: u32 = 5;

/// Times a chunk that still fails for lack of capacity after its [`RETRY`] (throttling, Lambda
/// service errors, `RetryableError`, a task timeout) goes back to the ingest queue; the run
/// after the last re-drive that still fails marks its images FAILED `internal` ("still
/// throttled after N attempts"). With [`REDRIVE_DELAY`] that is about 10 minutes of waiting in
/// the queue, on top of each run's retries. The state machine's Choice compares with it.
pub const MAX_REDRIVES: u32 = 4;

/// How long a re-driven chunk waits in the queue before it is received again (SQS
/// `DelaySeconds`, at most 900 s): long enough for a throttled account to recover, short
/// enough that the sweeper's deadlines below do not take the wait for a lost execution.
pub const REDRIVE_DELAY: Duration = Duration::from_secs(120);

/// When the sweeper takes a record for stuck, and how often it re-drives one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPolicy {
    /// A PROCESSING record whose attempt started longer ago than this has no execution left:
    /// an Express execution ends after 5 minutes and a processor invocation after at most 4,
    /// so 10 minutes leaves no running attempt behind.
    pub processing_after: Duration,
    /// A PENDING record created longer ago than this was never picked up (an event lost, a
    /// message dead-lettered, an execution that ended before the Map reached it). A throttled
    /// chunk waits up to `MAX_REDRIVES` × `REDRIVE_DELAY` (8 minutes) plus its retries while
    /// still PENDING, so this stays well above that.
    pub pending_after: Duration,
    /// Re-drives of one record before the sweeper marks it FAILED `internal` instead.
    pub max_sweeps: u32,
}

/// The sweeper's defaults (the template's schedule runs it every 5 minutes).
pub const SWEEP: SweepPolicy = SweepPolicy {
    processing_after: Duration::from_secs(10 * 60),
    pending_after: Duration::from_secs(30 * 60),
    max_sweeps: 3,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_rate_up_to_the_cap() {
        assert_eq!(RETRY.delay(1), Duration::from_secs(2));
        assert_eq!(RETRY.delay(2), Duration::from_secs(4));
        assert_eq!(RETRY.delay(3), Duration::from_secs(8));
        assert_eq!(RETRY.delay(10), Duration::from_secs(30));
    }

    #[test]
    fn redrives_and_sweeps_fit_the_aws_limits() {
        // SQS DelaySeconds is at most 900.
        assert!(REDRIVE_DELAY.as_secs() <= 900);
        // A chunk waiting out its re-drives is not taken for stuck while it is still PENDING.
        assert!(SWEEP.pending_after > REDRIVE_DELAY * MAX_REDRIVES * 2);
        // Express ends at 5 minutes; the processor's timeout is at most 4 (the template's cap).
        assert!(SWEEP.processing_after >= Duration::from_secs(5 * 60 + 4 * 60));
    }
}
