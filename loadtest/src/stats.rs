//! The report's arithmetic: HDR latency histograms, per-bucket time series, and the clock
//! offset between this machine and the target's.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Latency percentiles in milliseconds (from an HDR histogram at 3 significant digits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// One bar of a latency histogram: samples in `[lo_ms, hi_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Lower bound.
    pub lo_ms: f64,
    /// Upper bound.
    pub hi_ms: f64,
    /// Samples in the bin.
    pub count: u64,
}

/// Latencies in microseconds, from 1 µs to an hour (longer ones are clamped to an hour).
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

const MAX_US: u64 = 3_600_000_000;

impl Default for Latencies {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_US, 3).expect("static histogram bounds are valid"))
    }
}

impl Latencies {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(MAX_US));
    }

    /// Records one latency given in milliseconds.
    pub fn record_ms(&mut self, ms: u64) {
        self.record_us(ms.saturating_mul(1000));
    }

    fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.clamp(1, MAX_US));
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The percentiles (all zero when empty).
    pub fn percentiles(&self) -> Percentiles {
        if self.0.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let at = |q: f64| ms(self.0.value_at_quantile(q));
        Percentiles {
            count: self.0.len(),
            min_ms: ms(self.0.min()),
            mean_ms: self.0.mean() / 1000.0,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: ms(self.0.max()),
        }
    }

    /// `bins` equal-width bars from 0 to the largest sample.
    pub fn bins(&self, bins: usize) -> Vec<Bin> {
        if self.0.is_empty() || bins == 0 {
            return Vec::new();
        }
        let top = self.0.max() as f64 / 1000.0;
        let width = (top / bins as f64).max(0.001);
        let mut out: Vec<Bin> =
            (0..bins).map(|i| Bin { lo_ms: i as f64 * width, hi_ms: (i + 1) as f64 * width, count: 0 }).collect();
        for value in self.0.iter_recorded() {
            let ms = self.0.median_equivalent(value.value_iterated_to()) as f64 / 1000.0;
            let index = ((ms / width) as usize).min(bins - 1);
            out[index].count += value.count_at_value();
        }
        out
    }

    /// The cumulative distribution at `points` quantiles (plus the maximum): `(ms, fraction)`.
    pub fn cdf(&self, points: usize) -> Vec<(f64, f64)> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<(f64, f64)> = (0..points)
            .map(|i| {
                let q = i as f64 / points as f64;
                (self.0.value_at_quantile(q) as f64 / 1000.0, q)
            })
            .collect();
        out.push((self.0.max() as f64 / 1000.0, 1.0));
        out
    }
}

/// Counts per time bucket since the run's start: uploads accepted, images finished, and images
/// accepted but not yet finished at the bucket's end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Bucket width in milliseconds.
    pub bucket_ms: u64,
    /// Uploads accepted in each bucket.
    pub uploaded: Vec<u64>,
    /// Images that reached DONE or FAILED in each bucket.
    pub completed: Vec<u64>,
    /// Images accepted and not yet final at each bucket's end.
    pub in_flight: Vec<u64>,
}

impl Series {
    /// Buckets `uploaded` and `completed` (milliseconds since the start), with a width that
    /// gives at most about 150 buckets.
    pub fn build(uploaded: &[u64], completed: &[u64]) -> Self {
        let span = uploaded.iter().chain(completed).copied().max().unwrap_or(0) + 1;
        let bucket_ms = bucket_width(span);
        let buckets = span.div_ceil(bucket_ms) as usize;
        let count = |times: &[u64]| {
            let mut counts = vec![0u64; buckets];
            for &t in times {
                counts[(t / bucket_ms) as usize] += 1;
            }
            counts
        };
        let (up, done) = (count(uploaded), count(completed));
        let mut open = 0i64;
        let in_flight = up
            .iter()
            .zip(&done)
            .map(|(&u, &d)| {
                open += u as i64 - d as i64;
                open.max(0) as u64
            })
            .collect();
        Self { bucket_ms, uploaded: up, completed: done, in_flight }
    }

    /// Per-second rate of a bucket count.
    pub fn rate(&self, count: u64) -> f64 {
        count as f64 * 1000.0 / self.bucket_ms as f64
    }

    /// Seconds from the start to where bucket `i` begins.
    pub fn seconds(&self, i: usize) -> f64 {
        (i as u64 * self.bucket_ms) as f64 / 1000.0
    }
}

/// The narrowest round bucket width giving at most 150 buckets over `span_ms`.
fn bucket_width(span_ms: u64) -> u64 {
    const WIDTHS: [u64; 12] = [50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000, 300_000];
    WIDTHS.iter().copied().find(|w| span_ms.div_ceil(*w) <= 150).unwrap_or(span_ms.div_ceil(150).max(1))
}

/// How far the target's clock is ahead of ours, in ms: the median over requests of the server's
/// timestamp minus the middle of the request's send/receive window (as NTP does). Positive when
/// the server's clock is ahead. `samples` are `(server_ms, sent_ms, received_ms)`.
pub fn clock_offset_ms(samples: impl IntoIterator<Item = (u64, u64, u64)>) -> i64 {
    let mut offsets: Vec<i64> = samples
        .into_iter()
        .map(|(server, sent, received)| server as i64 - (sent as i64 + received as i64) / 2)
        .collect();
    if offsets.is_empty() {
        return 0;
    }
    let middle = offsets.len() / 2;
    *offsets.select_nth_unstable(middle).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_thousand_ms() {
        let mut latencies = Latencies::default();
        for ms in 1..=1000 {
            latencies.record(Duration::from_millis(ms));
        }
        let p = latencies.percentiles();
        assert_eq!(p.count, 1000);
        // 3 significant digits: within 0.1% of the exact answer.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(p.min_ms, 1.0) && close(p.p50_ms, 500.0) && close(p.p90_ms, 900.0), "{p:?}");
        assert!(close(p.p99_ms, 990.0) && close(p.p999_ms, 999.0) && close(p.max_ms, 1000.0), "{p:?}");
        assert!(close(p.mean_ms, 500.5), "{p:?}");
        assert!(p.min_ms <= p.p50_ms && p.p50_ms <= p.p90_ms && p.p90_ms <= p.p99_ms && p.p99_ms <= p.max_ms);
        assert_eq!(Latencies::default().percentiles(), Percentiles::default());
    }

    #[test]
    fn bins_cover_every_sample_and_the_cdf_ends_at_one() {
        let mut latencies = Latencies::default();
        for ms in [1, 2, 2, 3, 10, 100] {
            latencies.record_ms(ms);
        }
        let bins = latencies.bins(10);
        assert_eq!(bins.len(), 10);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 6);
        // Bars 10 ms wide (the largest sample over 10): 1, 2, 2 and 3 in the first, 10 in the
        // second, 100 in the last.
        assert_eq!((bins[0].count, bins[1].count, bins[9].count), (4, 1, 1), "{bins:?}");
        let cdf = latencies.cdf(100);
        let (top, all) = *cdf.last().unwrap();
        assert!(all == 1.0 && (top - 100.0).abs() <= 0.1, "{top} {all}"); // 3 significant digits
        assert!(cdf.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn series_count_per_bucket_and_track_what_is_in_flight() {
        // 10 uploads in the first second, finished 5 in the second second and 5 in the third.
        let uploaded: Vec<u64> = (0..10).map(|i| i * 100).collect();
        let completed: Vec<u64> = (0..10).map(|i| 1000 + i * 200).collect();
        let series = Series::build(&uploaded, &completed);
        assert_eq!(series.bucket_ms, 50); // span 2801 ms / 50 = 57 buckets
        let per_second = |v: &[u64]| -> Vec<u64> { v.chunks(20).map(|c| c.iter().sum()).collect() };
        assert_eq!(per_second(&series.uploaded), vec![10, 0, 0]);
        assert_eq!(per_second(&series.completed), vec![0, 5, 5]);
        assert_eq!(series.in_flight[19], 10);
        assert_eq!(*series.in_flight.last().unwrap(), 0);
        assert_eq!(series.rate(5), 100.0);
    }

    #[test]
    fn bucket_widths_are_round_and_few() {
        assert_eq!(bucket_width(1000), 50);
        assert_eq!(bucket_width(60_000), 500);
        assert_eq!(bucket_width(3_600_000), 30_000);
    }

    #[test]
    fn the_clock_offset_is_the_median_of_midpoint_differences() {
        // Server 5 s ahead; the requests took 10 to 30 ms; one outlier.
        let samples = [(5_015, 0, 30), (6_010, 1_000, 1_020), (7_005, 2_000, 2_010), (9_000, 3_000, 3_002)];
        assert_eq!(clock_offset_ms(samples), 5_000);
        assert_eq!(clock_offset_ms([]), 0);
    }
}
