//! A process's resident memory over time: sampled from `/proc/PID/status` (`VmRSS`), and judged
//! steady or growing.
//!
//! The judgement compares halves of the run after its warm-up, by images finished: the second
//! half's peak must stay within a margin of the first half's. Allocators keep freed memory and
//! grow in steps, so one high sample proves nothing; a leak, though, makes every later peak
//! higher than every earlier one, and on a long enough run by more than any margin.

use crate::plot::{COMPLETED, DrawResult, Figure, GREY, MARKER, UPLOADED, chart, legend, line_key, seconds_label};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RssSample {
    /// Since the run started.
    pub ms: u64,
    /// Resident set size, KiB.
    pub kib: u64,
    /// Images finished (checked) when the sample was taken.
    pub finished: u64,
}

/// How much the second half's peak may exceed the first half's: `fraction` of it, or `mib`,
/// whichever is larger.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RssMargin {
    /// Relative allowance (0.2 = 20 %).
    pub fraction: f64,
    /// Absolute allowance, MiB.
    pub mib: f64,
}

impl Default for RssMargin {
    /// 25 % or 48 MiB: above what allocator arenas and a busier second half add on a 2-core
    /// machine, below what a per-image leak of a decoder handle or a buffer adds over hundreds
    /// of images.
    fn default() -> Self {
        Self { fraction: 0.25, mib: 48.0 }
    }
}

/// The samples' summary and verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RssFigures {
    /// The process sampled.
    pub pid: u32,
    /// The first sample after the warm-up, KiB.
    pub start_kib: u64,
    /// The largest sample after the warm-up, KiB.
    pub peak_kib: u64,
    /// The last sample, KiB.
    pub end_kib: u64,
    /// The largest sample of the first half after the warm-up (by images finished), KiB.
    pub first_half_peak_kib: u64,
    /// The largest sample of the second half, KiB.
    pub second_half_peak_kib: u64,
    /// Where the second half's peak may reach: the first half's plus the margin, KiB.
    pub allowed_kib: u64,
    /// Least-squares slope of RSS over images finished after the warm-up, KiB per 1000 images.
    pub slope_kib_per_1000: f64,
    /// Images finished when the warm-up ended.
    pub warmup_images: u64,
    /// The margin applied.
    pub margin: RssMargin,
    /// Every sample.
    pub samples: Vec<RssSample>,
}

impl RssFigures {
    /// Summarizes `samples` (in time order) after `warmup` images; `None` without a sample
    /// after the warm-up.
    pub fn new(pid: u32, samples: Vec<RssSample>, warmup: u64, margin: RssMargin) -> Option<Self> {
        let after: Vec<RssSample> = samples.iter().copied().filter(|s| s.finished >= warmup).collect();
        let (first, last) = (after.first()?, after.last()?);
        let middle = first.finished + (last.finished - first.finished) / 2;
        let peak = |part: &mut dyn Iterator<Item = &RssSample>| part.map(|s| s.kib).max().unwrap_or(0);
        let first_half_peak_kib = peak(&mut after.iter().filter(|s| s.finished <= middle));
        let second_half_peak_kib = peak(&mut after.iter().filter(|s| s.finished > middle)).max(last.kib);
        let allowance = (first_half_peak_kib as f64 * margin.fraction).max(margin.mib * 1024.0);
        Some(Self {
            pid,
            start_kib: first.kib,
            peak_kib: peak(&mut after.iter()),
            end_kib: last.kib,
            first_half_peak_kib,
            second_half_peak_kib,
            allowed_kib: first_half_peak_kib + allowance as u64,
            slope_kib_per_1000: slope(&after) * 1000.0,
            warmup_images: warmup,
            margin,
            samples,
        })
    }

    /// Whether the second half stayed within the margin.
    pub fn is_steady(&self) -> bool {
        self.second_half_peak_kib <= self.allowed_kib
    }
}

/// KiB per image finished, by least squares (0 when the images finished do not vary).
fn slope(samples: &[RssSample]) -> f64 {
    let n = samples.len() as f64;
    let mean_x = samples.iter().map(|s| s.finished as f64).sum::<f64>() / n;
    let mean_y = samples.iter().map(|s| s.kib as f64).sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for s in samples {
        let dx = s.finished as f64 - mean_x;
        covariance += dx * (s.kib as f64 - mean_y);
        variance += dx * dx;
    }
    if variance > 0.0 { covariance / variance } else { 0.0 }
}

/// Reads `VmRSS` of `pid` in KiB; `None` once the process is gone (or off Linux).
pub fn read_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status"))).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// How often to sample by default.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A soak's resident memory over time, with the warm-up's end, the first half's peak and the
/// peak the second half may reach.
pub(crate) struct RssPlot<'a> {
    /// The samples and their verdict.
    pub rss: &'a RssFigures,
    /// The chart's title.
    pub caption: String,
}

impl Figure for RssPlot<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let rss = self.rss;
        let seconds = |ms: u64| ms as f64 / 1000.0;
        let mib = |kib: u64| kib as f64 / 1024.0;
        let x_max = rss.samples.last().map_or(0.0, |s| seconds(s.ms)).max(0.001);
        let top = rss.samples.iter().map(|s| s.kib).max().unwrap_or(0).max(rss.allowed_kib);
        let y_max = (mib(top) * 1.3).max(1.0); // room for the legend
        let mut chart = chart(
            area,
            self.caption.clone(),
            (x_max, "seconds since start"),
            (y_max, "server resident memory (MiB)"),
            &|x| seconds_label(*x, x_max),
        )?;
        let line = |points: Vec<(f64, f64)>, colour: RGBColor| PathElement::new(points, colour.stroke_width(2));
        chart
            .draw_series(LineSeries::new(
                rss.samples.iter().map(|s| (seconds(s.ms), mib(s.kib))),
                UPLOADED.stroke_width(2),
            ))?
            .label("VmRSS")
            .legend(line_key(UPLOADED));
        if let Some(warm) = rss.samples.iter().find(|s| s.finished >= rss.warmup_images) {
            let x = seconds(warm.ms);
            chart
                .draw_series(std::iter::once(line(vec![(x, 0.0), (x, y_max)], GREY)))?
                .label(format!("warm-up done ({} images)", rss.warmup_images))
                .legend(line_key(GREY));
        }
        for (label, kib, colour) in [
            ("first half's peak", rss.first_half_peak_kib, COMPLETED),
            ("allowed peak in the second half", rss.allowed_kib, MARKER),
        ] {
            let y = mib(kib);
            chart
                .draw_series(std::iter::once(line(vec![(0.0, y), (x_max, y)], colour)))?
                .label(format!("{label}: {y:.0} MiB"))
                .legend(line_key(colour));
        }
        legend(&mut chart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(kib: impl Fn(u64) -> u64) -> Vec<RssSample> {
        (0..=100).map(|i| RssSample { ms: i * 250, kib: kib(i * 10), finished: i * 10 }).collect()
    }

    #[test]
    fn a_flat_run_with_noise_is_steady() {
        let noisy = RssFigures::new(1, samples(|n| 100_000 + (n * 7919) % 9_000), 100, RssMargin::default()).unwrap();
        assert!(noisy.is_steady(), "{noisy:?}");
        assert_eq!(noisy.start_kib, 100_000 + (100 * 7919) % 9_000);
        assert!(noisy.slope_kib_per_1000.abs() < 10_000.0, "{}", noisy.slope_kib_per_1000);
        // The warm-up's growth does not count.
        let warming =
            RssFigures::new(1, samples(|n| if n < 100 { n * 2_000 } else { 200_000 }), 100, RssMargin::default());
        assert!(warming.unwrap().is_steady());
    }

    #[test]
    fn a_leak_is_not_steady_and_its_slope_is_per_image() {
        // 256 KiB leaked per image finished, 1000 images.
        let leak = RssFigures::new(1, samples(|n| 80_000 + n * 256), 100, RssMargin::default()).unwrap();
        assert!(!leak.is_steady(), "{leak:?}");
        assert!((leak.slope_kib_per_1000 - 256_000.0).abs() < 1.0, "{}", leak.slope_kib_per_1000);
        assert_eq!(
            (leak.start_kib, leak.end_kib, leak.peak_kib),
            (80_000 + 25_600, 80_000 + 256_000, 80_000 + 256_000)
        );
    }

    #[test]
    fn no_sample_after_the_warm_up_gives_no_figures() {
        assert!(RssFigures::new(1, samples(|_| 1), 5_000, RssMargin::default()).is_none());
        assert!(RssFigures::new(1, Vec::new(), 0, RssMargin::default()).is_none());
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let kib = read_kib(std::process::id()).expect("/proc/self/status has VmRSS");
        assert!(kib > 100, "{kib} KiB");
        assert_eq!(read_kib(u32::MAX), None);
    }
}
