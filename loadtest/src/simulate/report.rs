//! The simulation's report: `simulate.json`, `simulate.md` and a figure per run.

use super::config::StackConfig;
use super::plot::RunPlot;
use super::result::RunResult;
use super::stage::Stage;
use crate::files::{self, WriteError};
use crate::plot::write_figure;
use crate::report::thousands;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Every run of one `loadtest simulate` with the parameters they share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    /// Version of the loadtest that ran.
    pub loadtest_version: String,
    /// The model's parameters.
    pub stack: StackConfig,
    /// Images in each burst.
    pub images: u64,
    /// One per rate.
    pub runs: Vec<RunResult>,
}

impl SimReport {
    /// Writes `simulate.json`, `simulate.md` and `rate-R.{svg,png}` per run into `dir`
    /// (created if needed); the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
        let mut written = files::write_report(dir, "simulate", self, &self.markdown())?;
        for run in &self.runs {
            written.extend(write_figure(dir, &plot_name(run.rate), &RunPlot { run })?);
        }
        Ok(written)
    }

    /// The runs as Markdown tables.
    pub fn markdown(&self) -> String {
        let c = &self.stack;
        let mut md = String::new();
        let _ = writeln!(md, "# Simulated burst on AWS\n");
        let _ = writeln!(
            md,
            "{} images per run, {:?} uploads; Lambda concurrency {} (+{} per {} s per function), \
             orchestrator batches of {} (window {} s, {} at once), chunks of {} in workflows of {} \
             (Map {} at once), {:.3} s per chunk ({} ms per image on {:.1} vCPUs); DynamoDB from {} WCU/s \
             (quota {}, index {} images/s); S3 from {} partition(s) of {} PUT/s, doubling every {} s.\n",
            self.images,
            c.upload_path,
            c.lambda_concurrency,
            c.lambda_scale_step,
            c.lambda_scale_period_s,
            c.batch_size,
            c.batch_window_s,
            c.orchestrator_concurrency,
            c.chunk_size,
            c.chunks_per_workflow,
            c.map_concurrency,
            c.chunk_s(c.chunk_size),
            c.kernel_ms,
            c.vcpus(),
            c.ddb_start_wcu,
            c.ddb_table_max_wcu,
            c.ddb_index_images_per_s,
            c.s3_start_partitions,
            c.s3_put_per_partition,
            c.s3_split_period_s,
        );
        let _ = writeln!(
            md,
            "| rate (images/s) | p50 | p90 | p99 | max | throughput (images/s) | drain | peak queue | \
             DONE | FAILED | first bottleneck |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for r in &self.runs {
            let l = &r.latency;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                thousands(r.rate),
                duration(l.p50_s),
                duration(l.p90_s),
                duration(l.p99_s),
                duration(l.max_s),
                thousands(r.throughput_per_s),
                duration(r.drain_s),
                thousands(r.peak_queue as f64),
                thousands(r.done as f64),
                thousands(r.failed as f64),
                r.bottleneck.as_deref().unwrap_or("none"),
            );
        }
        let rates: Vec<String> = self.runs.iter().map(|r| format!("{}/s", thousands(r.rate))).collect();
        let header = |md: &mut String, first: &str| {
            let _ = writeln!(md, "\n| {first} | {} |", rates.join(" | "));
            let _ = writeln!(md, "|---|{}", "---:|".repeat(rates.len()));
        };
        header(&mut md, "where time goes (mean s per image)");
        for stage in Stage::ALL {
            let cells: Vec<String> = self
                .runs
                .iter()
                .map(|r| r.stages.iter().find(|(s, _)| *s == stage).map_or(0.0, |(_, s)| *s))
                .map(|s| format!("{s:.2}"))
                .collect();
            let _ = writeln!(md, "| {} | {} |", stage.label(), cells.join(" | "));
        }
        header(&mut md, "seconds saturated");
        let mut resources: Vec<&String> = self.runs.iter().flat_map(|r| r.saturated_s.keys()).collect();
        resources.sort();
        resources.dedup();
        for resource in resources {
            let cells: Vec<String> = self
                .runs
                .iter()
                .map(|r| format!("{:.0}", r.saturated_s.get(resource).copied().unwrap_or(0.0)))
                .collect();
            let _ = writeln!(md, "| {resource} | {} |", cells.join(" | "));
        }
        header(&mut md, "events");
        type Count = fn(&RunResult) -> f64;
        let counts: [(&str, Count); 5] = [
            ("peak processor invocations", |r| f64::from(r.peak_processor_in_flight)),
            ("peak images final per s", |r| r.peak_finished_per_s),
            ("throttled processor invocations", |r| r.throttled_invocations as f64),
            ("chunks re-driven", |r| r.redriven_chunks as f64),
            ("images past the Express 5-minute cap", |r| r.express_timeouts as f64),
        ];
        for (label, count) in counts {
            let cells: Vec<String> = self.runs.iter().map(|r| thousands(count(r))).collect();
            let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
        }
        md
    }
}

/// A run's figure's file name (without extension).
pub(super) fn plot_name(rate: f64) -> String {
    format!("rate-{}", rate.round())
}

/// Seconds to a second's tenth under a minute, else minutes and seconds.
fn duration(s: f64) -> String {
    let whole = s.round() as u64;
    if s < 59.95 { format!("{s:.1} s") } else { format!("{}m{:02}s", whole / 60, whole % 60) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(16_000.4), "16,000");
        assert_eq!(thousands(500.0), "500");
        assert_eq!(duration(4.34), "4.3 s");
        assert_eq!(duration(119.7), "2m00s");
        assert_eq!(duration(1505.0), "25m05s");
        assert_eq!(plot_name(5000.0), "rate-5000");
    }
}
