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
}
