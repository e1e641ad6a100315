//! What one simulated burst reports: latency, drain, peaks, stages and the time series.

use super::stage::Stage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One sample of the time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the first upload.
    pub t: f64,
    /// Visible messages in the SQS queue.
    pub queue: u64,
    /// Images uploaded (arrived) and not yet final.
    pub in_system: u64,
    /// Processor invocations running.
    pub processor_in_flight: u32,
    /// Images arriving per second since the previous sample.
    pub arrived_per_s: f64,
    /// Images becoming final (DONE or FAILED) per second since the previous sample.
    pub finished_per_s: f64,
    /// Of those, images FAILED per second.
    pub failed_per_s: f64,
}

/// End-to-end latency (arrival to final record), seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_s: f64,
    /// 90th percentile.
    pub p90_s: f64,
    /// 99th percentile.
    pub p99_s: f64,
    /// Largest.
    pub max_s: f64,
    /// Mean.
    pub mean_s: f64,
}

/// What one burst did to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Uploads per second.
    pub rate: f64,
    /// Images in the burst.
    pub images: u64,
    /// Images DONE.
    pub done: u64,
    /// Images FAILED (still throttled after every re-drive).
    pub failed: u64,
    /// End-to-end latency of every final image.
    pub latency: Latency,
    /// Seconds from the first upload to the last final record.
    pub drain_s: f64,
    /// Images over `drain_s`.
    pub throughput_per_s: f64,
    /// Most images final in one sample interval, per second.
    pub peak_finished_per_s: f64,
    /// Most visible messages in the queue.
    pub peak_queue: u64,
    /// Most processor invocations at once.
    pub peak_processor_in_flight: u32,
    /// The resource saturated longest (none if nothing was).
    pub bottleneck: Option<String>,
    /// Seconds each resource was saturated (made someone wait), by label.
    pub saturated_s: BTreeMap<String, f64>,
    /// Mean seconds per image in each stage, in pipeline order.
    pub stages: Vec<(Stage, f64)>,
    /// Processor invocations refused by Lambda.
    pub throttled_invocations: u64,
    /// Chunks re-driven to the queue.
    pub redriven_chunks: u64,
    /// Images final later than the Express cap after their execution started (their execution
    /// would have been stopped; the model lets them finish).
    pub express_timeouts: u64,
    /// The time series.
    pub samples: Vec<Sample>,
}
