//! Counting what became of the images: final records, samples and the run's result.

use super::flow::Chunk;
use super::resource::Resource;
use super::result::{Latency, RunResult, Sample};
use super::sim::Sim;
use super::stage::Stage;
use std::collections::BTreeMap;

impl Sim<'_> {
    pub(super) fn finalize(&mut self, chunk: Chunk, at: f64, failed: bool) {
        for mut seg in chunk.segs {
            seg.enter(Stage::Processing, at);
            for (total, spent) in self.spent.iter_mut().zip(seg.spent) {
                *total += spent * f64::from(seg.n);
            }
            self.latencies.push((at - seg.born, seg.n));
            self.finished += u64::from(seg.n);
            if failed {
                self.failed += u64::from(seg.n);
            }
        }
        self.last_final = self.last_final.max(at);
    }

    pub(super) fn sample(&mut self, t: f64) {
        let since = self.samples.last().map_or(0.0, |s| s.t);
        let span = (t - since).max(self.c.step_s);
        self.samples.push(Sample {
            t,
            queue: self.queued,
            in_system: self.arrived - self.finished,
            processor_in_flight: self.processors,
            arrived_per_s: (self.arrived - self.sample_arrived) as f64 / span,
            finished_per_s: (self.finished - self.sample_finished) as f64 / span,
            failed_per_s: (self.failed - self.sample_failed) as f64 / span,
        });
        self.sample_failed = self.failed;
        self.sample_arrived = self.arrived;
        self.sample_finished = self.finished;
    }

    pub(super) fn result(mut self) -> RunResult {
        self.latencies.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: u64 = self.latencies.iter().map(|l| u64::from(l.1)).sum();
        let quantile = |q: f64| {
            let rank = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for &(latency, n) in &self.latencies {
                seen += u64::from(n);
                if seen >= rank {
                    return latency;
                }
            }
            0.0
        };
        let count = (total as f64).max(1.0);
        let mean_s = self.latencies.iter().map(|&(l, n)| l * f64::from(n)).sum::<f64>() / count;
        let latency = Latency {
            p50_s: quantile(0.5),
            p90_s: quantile(0.9),
            p99_s: quantile(0.99),
            max_s: self.latencies.last().map_or(0.0, |l| l.0),
            mean_s,
        };
        let saturated_s: BTreeMap<String, f64> = Resource::ALL
            .iter()
            .zip(self.saturated_s)
            .filter(|(_, s)| *s > 0.0)
            .map(|(r, s)| (r.label().to_string(), s))
            .collect();
        let bottleneck = Resource::ALL
            .iter()
            .zip(self.saturated_s)
            .filter(|(_, s)| *s > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(r, _)| r.label().to_string());
        RunResult {
            rate: self.rate,
            images: self.images,
            done: self.finished - self.failed,
            failed: self.failed,
            latency,
            drain_s: self.last_final,
            throughput_per_s: self.finished as f64 / self.last_final.max(f64::EPSILON),
            peak_finished_per_s: self.samples.iter().map(|s| s.finished_per_s).fold(0.0, f64::max),
            peak_queue: self.peak_queue,
            peak_processor_in_flight: self.peak_processors,
            bottleneck,
            saturated_s,
            stages: Stage::ALL.iter().zip(self.spent).map(|(&s, t)| (s, t / count)).collect(),
            throttled_invocations: self.throttled,
            redriven_chunks: self.redriven,
            express_timeouts: self.express_timeouts,
            samples: self.samples,
        }
    }
}
