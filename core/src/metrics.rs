//! In-process latency histograms, rendered in the Prometheus text format (local mode's
//! `GET /metrics`; on AWS the same numbers go to CloudWatch through the logs).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the histogram buckets, in milliseconds.
pub const BUCKETS_MS: [f64; 12] = [1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0];

/// The stages timed per image.
pub const STAGES: [&str; 6] = ["decode", "resize", "watermark", "encode", "store", "end_to_end"];

/// One Prometheus histogram: cumulative bucket counts, sum and count.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_MS.len()],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// A latency histogram per stage, safe to update from any thread.
#[derive(Debug, Default)]
pub struct StageHistograms {
    stages: [Histogram; STAGES.len()],
}

impl StageHistograms {
    /// Records that `stage` (one of [`STAGES`]) took `ms`; unknown stages are ignored.
    pub fn observe(&self, stage: &str, ms: f64) {
        let Some(i) = STAGES.iter().position(|s| *s == stage) else { return };
        let h = &self.stages[i];
        for (bound, bucket) in BUCKETS_MS.iter().zip(&h.buckets) {
            if ms <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        h.sum_us.fetch_add((ms * 1000.0) as u64, Ordering::Relaxed);
        h.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends `imgpipe_stage_duration_seconds` in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let name = "imgpipe_stage_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Time spent per image in each pipeline stage.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (stage, h) in STAGES.iter().zip(&self.stages) {
            for (bound, bucket) in BUCKETS_MS.iter().zip(&h.buckets) {
                let le = bound / 1000.0;
                let _ =
                    writeln!(out, "{name}_bucket{{stage=\"{stage}\",le=\"{le}\"}} {}", bucket.load(Ordering::Relaxed));
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {count}");
            let sum = h.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{stage=\"{stage}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{stage=\"{stage}\"}} {count}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_rendered() {
        let h = StageHistograms::default();
        h.observe("decode", 3.0);
        h.observe("decode", 30.0);
        h.observe("nonsense", 1.0);
        let mut text = String::new();
        h.render(&mut text);
        assert!(text.contains("imgpipe_stage_duration_seconds_bucket{stage=\"decode\",le=\"0.0025\"} 0"), "{text}");
        assert!(text.contains("imgpipe_stage_duration_seconds_bucket{stage=\"decode\",le=\"0.005\"} 1"));
        assert!(text.contains("imgpipe_stage_duration_seconds_bucket{stage=\"decode\",le=\"0.05\"} 2"));
        assert!(text.contains("imgpipe_stage_duration_seconds_count{stage=\"decode\"} 2"));
        assert!(text.contains("imgpipe_stage_duration_seconds_sum{stage=\"decode\"} 0.033"));
        assert!(text.contains("imgpipe_stage_duration_seconds_count{stage=\"resize\"} 0"));
    }
}
