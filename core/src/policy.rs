//! The numbers the state machine and the local workflow runner share: one source of truth.
//!
//! `infra/statemachine/process-images.asl.json` is checked against these in a test, so the two
//! cannot drift.

use std::time::Duration;

/// Images per processor invocation (one Map iteration).
pub const CHUNK_SIZE: usize = 10;

/// Chunks in one workflow execution (its input stays well under 256 KB: keys only). No more
/// than [`MAP_MAX_CONCURRENCY`]: every chunk runs in the Map's first wave, so an execution's
/// worst case is one chunk's ([`worst_case_execution`]), not one per wave. Executions are
/// cheap (USD 1 per million); one that outlives Express's 5 minutes is stopped without its
/// Catch.
pub const MAX_CHUNKS_PER_WORKFLOW: usize = 8;

/// Chunks of one workflow processed at once (the Map state's MaxConcurrency).
pub const MAP_MAX_CONCURRENCY: usize = 8;

// Every chunk of an execution in the Map's first wave: checked when the crate compiles.
const _: () = assert!(MAX_CHUNKS_PER_WORKFLOW <= MAP_MAX_CONCURRENCY, "one Map wave");

/// Express executions are stopped after 5 minutes, without running a Catch.
pub const EXPRESS_LIMIT: Duration = Duration::from_secs(300);

/// Longest a Lambda function's init (a cold start) may take; it comes before, and on top of,
/// the invocation's timeout.
pub const LAMBDA_INIT_LIMIT: Duration = Duration::from_secs(10);

/// Longest one call of the state machine's own service integrations is taken to last (the
/// re-drive's `sqs:sendMessage`, the Catch's `dynamodb:updateItem`): single small requests.
pub const SERVICE_CALL_LIMIT: Duration = Duration::from_secs(5);

/// An execution's worst case with processor timeout `processor_timeout`: each Map wave's chunk
/// takes every attempt [`RETRY`] allows, each to its timeout after a full cold start, with the
/// longest waits between them, then its re-drive or its FAILED records (each call retried the
/// same way). It must stay under [`EXPRESS_LIMIT`]; `processor/tests/asl.rs` checks it with
/// the template's largest `ProcessorTimeout`.
pub fn worst_case_execution(processor_timeout: Duration) -> Duration {
    let waves = MAX_CHUNKS_PER_WORKFLOW.div_ceil(MAP_MAX_CONCURRENCY) as u32;
    let tries = RETRY.max_attempts + 1;
    let waits: Duration = (1..=RETRY.max_attempts).map(|n| RETRY.delay(n)).sum();
    let chunk = (processor_timeout + LAMBDA_INIT_LIMIT) * tries + waits;
    let afterwards = SERVICE_CALL_LIMIT * tries + waits;
    (chunk + afterwards) * waves
}

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
        let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        // Capped before it becomes a Duration: a large `n` would overflow `Duration::mul_f64`.
        let seconds = self.interval.as_secs_f64() * self.backoff_rate.powi(exponent);
        Duration::from_secs_f64(seconds.min(self.max_delay.as_secs_f64()))
    }

    /// The wait before retry `n` with full jitter (the AWS Architecture Blog's recommendation):
    /// `random` (uniform in `[0, 1)`, e.g. `fastrand::f64()`) of [`delay`](Self::delay)`(n)`.
    /// Clients retrying at random points of the window spread out instead of all coming back
    /// together. The caller passes the randomness in, so this stays pure and testable.
    pub fn jittered(&self, n: u32, random: f64) -> Duration {
        self.delay(n).mul_f64(random.clamp(0.0, 1.0))
    }
}

/// Receives of one queue message before it moves to the dead-letter queue.
pub const MAX_RECEIVES: u32 = 5;

/// Times a chunk that still fails for lack of capacity after its [`RETRY`] (throttling, Lambda
/// service errors, `RetryableError`, a task timeout) goes back to the ingest queue; the run
/// after the last re-drive that still fails marks its images FAILED `internal` ("still
/// throttled after N attempts"). With [`REDRIVE_DELAY`] that is 24 minutes of waiting in the
/// queue, on top of each run's retries: long enough for a burst on a new stack, whose DynamoDB
/// table takes about 800 images/s until it doubles after 30 minutes, to finish slower rather
/// than fail (`loadtest simulate`: a million uploads at 5,000/s on a cold stack end with a
/// third FAILED after 4 re-drives, none after 12). The state machine's Choice compares with it.
pub const MAX_REDRIVES: u32 = 12;

/// How long a re-driven chunk waits in the queue before it is received again (SQS
/// `DelaySeconds`, at most 900 s): long enough for a throttled account to recover, short
/// enough that the sweeper's deadlines below do not take the wait for a lost execution.
pub const REDRIVE_DELAY: Duration = Duration::from_secs(120);

/// When the sweeper takes a record for stuck, and how often it re-drives one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPolicy {
    /// A PROCESSING record whose attempt started longer ago than this has no execution left:
    /// an Express execution ends after 5 minutes (and its processor invocations within it).
    /// A chunk begun and then re-driven while Lambda throttles every later invocation keeps
    /// its first `started_ms` through up to `MAX_REDRIVES` × `REDRIVE_DELAY` (24 minutes) and
    /// their retries, so this stays above that.
    pub processing_after: Duration,
    /// A PENDING record created longer ago than this was never picked up (an event lost, a
    /// message dead-lettered, an execution that ended before the Map reached it). A throttled
    /// chunk waits up to `MAX_REDRIVES` × `REDRIVE_DELAY` (24 minutes) plus its runs while still
    /// PENDING: 82 minutes if every run took its execution's worst case. A record lost for
    /// good is rare (the dead-letter alarm fires first); one re-driven twice costs nothing.
    pub pending_after: Duration,
    /// Re-drives of one record before the sweeper marks it FAILED `internal` instead.
    pub max_sweeps: u32,
    /// A record swept `n` times is due again only `n` × this after its deadline. Sweeps then
    /// depend on the record and the clock alone: two sweepers at once (EventBridge delivers a
    /// schedule at least once), or one that reads the record just after another swept it,
    /// count one sweep, not two.
    pub resweep_after: Duration,
}

/// The sweeper's defaults (the template's schedule runs it every 5 minutes).
pub const SWEEP: SweepPolicy = SweepPolicy {
    processing_after: Duration::from_secs(40 * 60),
    pending_after: Duration::from_secs(90 * 60),
    max_sweeps: 3,
    resweep_after: Duration::from_secs(5 * 60),
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
    fn jitter_picks_a_point_under_the_growing_ceiling() {
        assert_eq!(RETRY.jittered(2, 0.0), Duration::ZERO);
        assert_eq!(RETRY.jittered(2, 0.5), Duration::from_secs(2));
        assert_eq!(RETRY.jittered(3, 1.0), RETRY.delay(3));
        for n in 1..40 {
            assert!(RETRY.jittered(n, 0.999) <= RETRY.delay(n));
            assert!(RETRY.delay(n) <= RETRY.max_delay, "retry {n}");
        }
        assert_eq!(RETRY.delay(u32::MAX), RETRY.max_delay, "no overflow however many retries");
    }

    #[test]
    fn redrives_and_sweeps_fit_the_aws_limits() {
        // SQS DelaySeconds is at most 900.
        assert!(REDRIVE_DELAY.as_secs() <= 900);
        // A chunk waiting out its re-drives is not taken for stuck while it is still PENDING.
        assert!(SWEEP.pending_after > REDRIVE_DELAY * MAX_REDRIVES * 2);
        // No attempt outlives its execution, and a chunk's re-drives end before the sweeper
        // takes their records for stuck.
        let redriving = (REDRIVE_DELAY + worst_case_execution(Duration::from_secs(50))) * MAX_REDRIVES;
        assert!(SWEEP.processing_after >= EXPRESS_LIMIT * 2);
        assert!(SWEEP.processing_after > REDRIVE_DELAY * MAX_REDRIVES, "{redriving:?}");
        assert!(SWEEP.pending_after > redriving, "{redriving:?}");
        assert!(SWEEP.resweep_after > Duration::ZERO);
    }

    #[test]
    fn one_wave_and_its_worst_case_worked_by_hand() {
        // 4 tries × (50 s + 10 s of init) + waits of 2 + 4 + 8 s = 254 s for the chunk; then
        // 4 × 5 s + 14 s = 34 s for its re-drive or FAILED records: 288 s.
        assert_eq!(worst_case_execution(Duration::from_secs(50)), Duration::from_secs(288));
        assert!(worst_case_execution(Duration::from_secs(50)) <= EXPRESS_LIMIT);
        assert!(worst_case_execution(Duration::from_secs(60)) > EXPRESS_LIMIT, "the old 60 s default did not fit");
    }
}
