//! The report: every figure of a run with its parameters ([`Report`], written as `report.json`),
//! the same as tables a person reads (`report.md`), its [`Plot`]s, and [`compare`] of two runs.

use crate::config::{Load, Mode};
use crate::cost::{CostEstimate, dynamodb_write_units, modelled_io_ms};
use crate::drain::Stages;
use crate::files::{self, WriteError};
use crate::plot::{COMPLETED, DrawResult, Figure, MARKER, UPLOADED, chart, legend, line_key, seconds_label, whole};
use crate::stats::{Bin, Percentiles, Series};
use imgpipe_core::record::rfc3339;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Version of the loadtest that ran.
    pub loadtest_version: String,
    /// When the upload phase started, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// What was driven.
    pub target: TargetInfo,
    /// How it was driven.
    pub parameters: Parameters,
    /// The upload phase.
    pub uploads: UploadFigures,
    /// What became of the accepted uploads.
    pub pipeline: PipelineFigures,
    /// How far the target's clock is ahead of ours (server timestamps are shifted by it on the
    /// time axis).
    pub clock_offset_ms: i64,
    /// Uploaded, completed and in-flight images over time.
    pub series: Series,
    /// End-to-end latency histogram (the plot's bars).
    pub e2e_histogram: Vec<Bin>,
    /// End-to-end latency CDF: `(ms, fraction)` points.
    pub e2e_cdf: Vec<(f64, f64)>,
    /// What a million images would cost on AWS.
    pub cost: CostEstimate,
}

/// The target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// Its base URL.
    pub url: String,
    /// Its version, as `GET /healthz` reports it (absent when it does not say).
    pub version: Option<String>,
}

/// The run's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameters {
    /// Images planned.
    pub images: u64,
    /// Upload mode.
    pub mode: Mode,
    /// Closed or open loop.
    pub load: Load,
    /// Where the bodies came from.
    pub inputs: String,
    /// Fraction of hostile inputs.
    pub hostile: f64,
    /// Seed.
    pub seed: u64,
    /// Preset asked for (the target's default when absent).
    pub preset: Option<String>,
    /// Cap on the upload phase, in seconds.
    pub duration_s: Option<f64>,
    /// Cap on the drain, in seconds.
    pub drain_timeout_s: f64,
    /// Whether the run waited for the images to finish (`--no-drain` turns it off).
    #[serde(default = "yes")]
    pub drain: bool,
    /// Files per presign request.
    pub presign_batch: usize,
}

fn yes() -> bool {
    true
}

/// The upload phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadFigures {
    /// Uploads started.
    pub attempted: u64,
    /// Uploads the target accepted (202, or 200 to a signed PUT).
    pub accepted: u64,
    /// Uploads refused or failed.
    pub refused: u64,
    /// Refusals by reason (`http_503_unavailable`, `timeout`, …).
    pub refusals: BTreeMap<String, u64>,
    /// Bytes accepted.
    pub accepted_bytes: u64,
    /// From the first start to the last answer, in seconds.
    pub elapsed_s: f64,
    /// Accepted uploads per second.
    pub per_s: f64,
    /// Latency of accepted uploads: due → answered (the signed PUT for presigned ones).
    pub latency: Percentiles,
    /// Presign requests made.
    pub presign_requests: u64,
    /// Presign requests that failed.
    pub presign_failures: u64,
    /// Latency of presign requests.
    pub presign_latency: Percentiles,
    /// Slots reserved but never uploaded to (the run stopped first).
    pub unused_slots: u64,
}

/// What became of the accepted uploads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineFigures {
    /// Accepted uploads (= completed + failed + lost + unchecked).
    pub uploaded: u64,
    /// DONE.
    pub completed: u64,
    /// FAILED.
    pub failed: u64,
    /// Never final within the drain timeout.
    pub lost: u64,
    /// Not waited for (`--no-drain`: the upload path alone was measured).
    #[serde(default)]
    pub unchecked: u64,
    /// FAILED images by error kind.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Outcome (`done`, `failed:KIND`, `lost`) counts by input kind.
    pub outcomes_by_input: BTreeMap<String, BTreeMap<String, u64>>,
    /// DONE or FAILED images per second, over `span_s`.
    pub finished_per_s: f64,
    /// From the first accepted upload to the last final record, in seconds (server clock).
    pub span_s: f64,
    /// How long the drain waited after the last upload, in seconds.
    pub drain_s: f64,
    /// Listing requests the drain made.
    pub drain_requests: u64,
    /// Listing requests that failed and were retried.
    pub drain_errors: u64,
    /// End-to-end latency: accepted (`created_ms`) → DONE/FAILED (`finished_ms`).
    pub e2e_latency: Percentiles,
    /// Accepted → processing started.
    pub queue_wait: Percentiles,
    /// Processing started → final.
    pub processing: Percentiles,
    /// Mean stage times of DONE images, in ms.
    pub stage_mean_ms: Stages,
    /// Some of the lost ids (at most 20), to look up.
    pub lost_ids: Vec<String>,
}

impl Report {
    /// Writes `report.json`, `report.md` and each plot as SVG and PNG into `dir` (created if
    /// needed); the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
        let mut written = files::write_report(dir, "report", self, &self.markdown())?;
        for plot in Plot::ALL {
            written.extend(crate::plot::write_figure(dir, plot.file_stem(), &ReportFigure { plot, report: self })?);
        }
        Ok(written)
    }

    /// Reads a `report.json`.
    pub fn read(path: &Path) -> Result<Self, WriteError> {
        let read = |message: String| WriteError::Read { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| read(e.to_string()))
    }

    /// The report as Markdown tables.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let (u, p) = (&self.uploads, &self.pipeline);
        let version = self.target.version.as_deref().unwrap_or("not reported");
        let _ = writeln!(md, "# imgpipe load test\n");
        let _ = writeln!(
            md,
            "Target `{}` (version: {version}), started {}.\n",
            self.target.url,
            rfc3339(self.started_unix_ms)
        );
        let _ = writeln!(md, "| parameter | value |\n|---|---|");
        let params = &self.parameters;
        let rows = [
            ("images", params.images.to_string()),
            ("mode", params.mode.to_string()),
            ("load", params.load.to_string()),
            ("inputs", params.inputs.clone()),
            ("hostile inputs", format!("{:.1} %", params.hostile * 100.0)),
            ("preset", params.preset.clone().unwrap_or_else(|| "(target default)".into())),
            ("seed", params.seed.to_string()),
            ("presign batch", params.presign_batch.to_string()),
            ("duration cap", params.duration_s.map_or_else(|| "none".into(), |s| format!("{s} s"))),
            ("drain timeout", if params.drain { format!("{} s", params.drain_timeout_s) } else { "no drain".into() }),
        ];
        for (name, value) in rows {
            let _ = writeln!(md, "| {name} | {value} |");
        }

        let _ = writeln!(md, "\n## Uploads\n\n| figure | value |\n|---|---|");
        let _ = writeln!(md, "| accepted | {} of {} ({} refused) |", u.accepted, u.attempted, u.refused);
        let _ = writeln!(md, "| **uploads/s** | **{:.1}** |", u.per_s);
        let _ = writeln!(md, "| bytes accepted | {:.1} MB |", u.accepted_bytes as f64 / 1e6);
        let _ = writeln!(md, "| upload phase | {:.2} s |", u.elapsed_s);
        let _ = writeln!(md, "| upload latency p50 / p90 / p99 / max | {} |", ms4(&u.latency));
        if u.presign_requests > 0 {
            let _ = writeln!(md, "| presign requests (failed) | {} ({}) |", u.presign_requests, u.presign_failures);
            let _ = writeln!(md, "| presign latency p50 / p90 / p99 / max | {} |", ms4(&u.presign_latency));
            let _ = writeln!(md, "| slots reserved, never used | {} |", u.unused_slots);
        }
        for (reason, count) in &u.refusals {
            let _ = writeln!(md, "| refused: {reason} | {count} |");
        }

        if !params.drain {
            let _ = writeln!(
                md,
                "\n## Pipeline\n\nNot measured: the run did not wait for its {} images (`--no-drain`), \
                 only the upload path was.\n\n## Plots\n\n![throughput](throughput.png)",
                p.unchecked
            );
            return md;
        }
        let _ = writeln!(md, "\n## Pipeline\n\n| figure | value |\n|---|---|");
        let _ = writeln!(
            md,
            "| uploaded = completed + failed + lost | {} = {} + {} + {} |",
            p.uploaded, p.completed, p.failed, p.lost
        );
        let _ = writeln!(
            md,
            "| **finished images/s** (DONE or FAILED) | **{:.1}** over {:.2} s |",
            p.finished_per_s, p.span_s
        );
        let _ = writeln!(md, "| **end-to-end latency** p50 / p90 / p99 / max | **{}** |", ms4(&p.e2e_latency));
        let _ = writeln!(md, "| queue wait p50 / p90 / p99 / max | {} |", ms4(&p.queue_wait));
        let _ = writeln!(md, "| processing p50 / p90 / p99 / max | {} |", ms4(&p.processing));
        let s = &p.stage_mean_ms;
        let _ = writeln!(
            md,
            "| mean stages: decode / resize / watermark / encode / store | {:.1} / {:.1} / {:.1} / {:.1} / {:.1} ms |",
            s.decode, s.resize, s.watermark, s.encode, s.store
        );
        let _ = writeln!(
            md,
            "| drain after the last upload | {:.2} s ({} listing requests, {} failed) |",
            p.drain_s, p.drain_requests, p.drain_errors
        );
        if !p.lost_ids.is_empty() {
            let _ = writeln!(md, "| lost (some ids) | {} |", p.lost_ids.join(", "));
        }

        if !p.failures_by_kind.is_empty() {
            let _ = writeln!(md, "\n## Failures by kind\n\n| kind | images |\n|---|---|");
            for (kind, count) in &p.failures_by_kind {
                let _ = writeln!(md, "| {kind} | {count} |");
            }
        }
        let _ = writeln!(md, "\n## Outcomes by input\n\n| input | outcome | images |\n|---|---|---|");
        for (input, outcomes) in &p.outcomes_by_input {
            for (outcome, count) in outcomes {
                let _ = writeln!(md, "| {input} | {outcome} | {count} |");
            }
        }

        md.push_str(&cost_markdown(&self.cost));

        let _ = writeln!(md, "\n## Plots\n");
        for plot in Plot::ALL {
            let name = plot.file_stem();
            let _ = writeln!(md, "![{name}]({name}.png)");
        }
        md
    }
}

/// The plots every report has, each its own file (`NAME.svg`, `NAME.png`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plot {
    /// End-to-end latency histogram, with p50 and p99.
    LatencyHistogram,
    /// End-to-end latency CDF.
    LatencyCdf,
    /// Uploaded and completed images per second.
    Throughput,
    /// Images accepted, not yet final.
    InFlight,
}

impl Plot {
    /// Every plot, in the report's order.
    pub const ALL: [Plot; 4] = [Plot::LatencyHistogram, Plot::LatencyCdf, Plot::Throughput, Plot::InFlight];

    /// The file name without extension.
    pub fn file_stem(self) -> &'static str {
        match self {
            Plot::LatencyHistogram => "latency_histogram",
            Plot::LatencyCdf => "latency_cdf",
            Plot::Throughput => "throughput",
            Plot::InFlight => "in_flight",
        }
    }

    /// The chart's title for `report`.
    pub fn title(self, report: &Report) -> String {
        let p = &report.parameters;
        let run = format!("{} images, {}, {}", report.pipeline.uploaded, p.mode, p.load);
        match self {
            Plot::LatencyHistogram => format!("End-to-end latency (accepted → DONE/FAILED): {run}"),
            Plot::LatencyCdf => format!("End-to-end latency CDF: {run}"),
            Plot::Throughput => format!("Throughput per {} ms: {run}", report.series.bucket_ms),
            Plot::InFlight => format!("Images accepted, not yet final: {run}"),
        }
    }

    /// Draws this plot of `report` over `area`.
    fn draw<DB: DrawingBackend>(self, report: &Report, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let caption = self.title(report);
        match self {
            Plot::LatencyHistogram => latency_histogram(report, caption, area),
            Plot::LatencyCdf => latency_cdf(report, caption, area),
            Plot::Throughput => throughput(report, caption, area),
            Plot::InFlight => in_flight(report, caption, area),
        }
    }
}

/// One plot of one report, ready to draw.
struct ReportFigure<'a> {
    plot: Plot,
    report: &'a Report,
}

impl Figure for ReportFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        self.plot.draw(self.report, area)
    }
}

/// Bars of end-to-end latency, with p50 and p99 marked.
fn latency_histogram<DB: DrawingBackend>(report: &Report, caption: String, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let bins = &report.e2e_histogram;
    let x_max = bins.last().map_or(1.0, |b| b.hi_ms).max(1.0);
    let y_max = bins.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64 * 1.3; // room for the legend
    let mut chart = chart(area, caption, (x_max, "latency (ms)"), (y_max, "images"), &|x| whole(*x))?;
    chart.draw_series(
        bins.iter().map(|b| Rectangle::new([(b.lo_ms, 0.0), (b.hi_ms, b.count as f64)], UPLOADED.mix(0.75).filled())),
    )?;
    let e2e = &report.pipeline.e2e_latency;
    for (label, value, colour) in [("p50", e2e.p50_ms, COMPLETED), ("p99", e2e.p99_ms, MARKER)] {
        if e2e.count == 0 {
            break;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(value, 0.0), (value, y_max)], colour.stroke_width(2))))?
            .label(format!("{label} {value:.0} ms"))
            .legend(line_key(colour));
    }
    if e2e.count > 0 {
        legend(&mut chart)?;
    }
    Ok(())
}

/// The share of images at or under each latency.
fn latency_cdf<DB: DrawingBackend>(report: &Report, caption: String, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let points = &report.e2e_cdf;
    let x_max = points.last().map_or(1.0, |p| p.0).max(1.0);
    let mut chart = chart(area, caption, (x_max, "latency (ms)"), (100.0, "images at or under (%)"), &|x| whole(*x))?;
    chart.draw_series(LineSeries::new(points.iter().map(|&(ms, q)| (ms, q * 100.0)), UPLOADED.stroke_width(2)))?;
    Ok(())
}

/// Uploads and completions per second, per time bucket.
fn throughput<DB: DrawingBackend>(report: &Report, caption: String, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let s = &report.series;
    let x_max = s.seconds(s.uploaded.len()).max(0.001);
    let peak = s.uploaded.iter().chain(&s.completed).copied().max().unwrap_or(0);
    let y_max = (s.rate(peak) * 1.3).max(1.0); // room for the legend
    let mut chart =
        chart(area, caption, (x_max, "seconds since start"), (y_max, "images/s"), &|x| seconds_label(*x, x_max))?;
    for (label, counts, colour) in
        [("uploaded", &s.uploaded, UPLOADED), ("completed (DONE or FAILED)", &s.completed, COMPLETED)]
    {
        // Steps: each bucket's rate held across its width.
        let steps =
            counts.iter().enumerate().flat_map(|(i, &c)| [(s.seconds(i), s.rate(c)), (s.seconds(i + 1), s.rate(c))]);
        chart.draw_series(LineSeries::new(steps, colour.stroke_width(2)))?.label(label).legend(line_key(colour));
    }
    legend(&mut chart)?;
    Ok(())
}

/// Images accepted and not yet final, over time.
fn in_flight<DB: DrawingBackend>(report: &Report, caption: String, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let s = &report.series;
    let x_max = s.seconds(s.in_flight.len()).max(0.001);
    let y_max = (s.in_flight.iter().copied().max().unwrap_or(0) as f64 * 1.15).max(1.0);
    let mut chart = chart(area, caption, (x_max, "seconds since start"), (y_max, "images in flight"), &|x| {
        seconds_label(*x, x_max)
    })?;
    let points = s.in_flight.iter().enumerate().map(|(i, &n)| (s.seconds(i + 1), n as f64));
    let start = std::iter::once((0.0, 0.0));
    chart.draw_series(
        AreaSeries::new(start.chain(points), 0.0, UPLOADED.mix(0.35)).border_style(UPLOADED.stroke_width(2)),
    )?;
    Ok(())
}

/// A side-by-side table of two runs, with the change from `a` to `b`.
pub fn compare(a: &Report, b: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "| figure | A | B | change |\n|---|---:|---:|---:|");
    let text = |name: &str, a: String, b: String| format!("| {name} | {a} | {b} | |\n");
    md.push_str(&text("target", a.target.url.clone(), b.target.url.clone()));
    md.push_str(&text("mode", a.parameters.mode.to_string(), b.parameters.mode.to_string()));
    md.push_str(&text("load", a.parameters.load.to_string(), b.parameters.load.to_string()));
    md.push_str(&text("inputs", a.parameters.inputs.clone(), b.parameters.inputs.clone()));
    type Figure = fn(&Report) -> f64;
    let rows: [(&str, Figure); 14] = [
        ("images uploaded", |r| r.pipeline.uploaded as f64),
        ("uploads/s", |r| r.uploads.per_s),
        ("finished images/s", |r| r.pipeline.finished_per_s),
        ("e2e latency p50 (ms)", |r| r.pipeline.e2e_latency.p50_ms),
        ("e2e latency p90 (ms)", |r| r.pipeline.e2e_latency.p90_ms),
        ("e2e latency p99 (ms)", |r| r.pipeline.e2e_latency.p99_ms),
        ("e2e latency max (ms)", |r| r.pipeline.e2e_latency.max_ms),
        ("upload latency p50 (ms)", |r| r.uploads.latency.p50_ms),
        ("upload latency p99 (ms)", |r| r.uploads.latency.p99_ms),
        ("processing per image, mean (ms)", |r| r.cost.inputs.processing_ms),
        ("completed", |r| r.pipeline.completed as f64),
        ("failed", |r| r.pipeline.failed as f64),
        ("lost", |r| r.pipeline.lost as f64),
        ("cost per million images (USD)", |r| r.cost.total_usd),
    ];
    for (name, figure) in rows {
        let (x, y) = (figure(a), figure(b));
        let change = if x == 0.0 {
            if y == 0.0 { "0 %".to_owned() } else { "new".to_owned() }
        } else {
            format!("{:+.1} %", (y - x) / x * 100.0)
        };
        let _ = writeln!(md, "| {name} | {} | {} | {change} |", number(x), number(y));
    }
    md
}

/// The cost section of a report: the assumptions, the cost per service for all-direct and
/// all-presigned uploads of the same images (and the run's own mix, when mixed), every priced
/// line of the run, and storage.
pub fn cost_markdown(c: &CostEstimate) -> String {
    let mut md = String::new();
    let (i, m) = (&c.inputs, &c.model);
    let writes = dynamodb_write_units(i.record_bytes);
    let _ = writeln!(md, "\n## Cost per million images on AWS (estimate)\n");
    let _ = writeln!(
        md,
        "From {:.1} ms of kernel time and {:.1} ms of storage I/O per image, {:.0} KB originals, {:.1} renditions \
         ({:.0} KB together), {:.0} B records ({} WRU on the table and {} on the index per image), {:.0} % \
         presigned; processor at {} MB in chunks of {}, {} images per execution; {:.0} B logged per image by the \
         pipeline, {:.0} B per direct upload by the ingest, {:.0} B of Lambda platform records per invocation; \
         {} rendition downloads per image; us-east-1 list prices (see loadtest/README.md for the model).\n",
        i.processing_ms,
        if i.io_ms > 0.0 { i.io_ms } else { modelled_io_ms(i, m) },
        i.original_bytes / 1e3,
        i.renditions,
        i.rendition_bytes / 1e3,
        i.record_bytes,
        writes.table,
        writes.index,
        i.presigned_fraction * 100.0,
        m.lambda_memory_mb,
        m.images_per_invocation,
        m.images_per_workflow,
        m.pipeline_log_bytes_per_image,
        m.ingest_log_bytes_per_upload,
        m.platform_log_bytes_per_invocation,
        m.downloads_per_image,
    );
    let (direct, presigned) = (c.for_upload(false), c.for_upload(true));
    let mixed = c.inputs.presigned_fraction > 0.0 && c.inputs.presigned_fraction < 1.0;
    let mut columns = vec![("direct uploads".to_owned(), &direct), ("presigned uploads".to_owned(), &presigned)];
    if mixed {
        columns.push((format!("this run ({:.0} % presigned)", c.inputs.presigned_fraction * 100.0), c));
    }
    md.push_str(&by_service_table(&columns));
    let _ = writeln!(md, "\nThe run's lines:\n\n| service | item | quantity | USD |\n|---|---|---:|---:|");
    for line in &c.lines {
        let _ = writeln!(
            md,
            "| {} | {} | {} {} | {:.4} |",
            line.service,
            line.item,
            count(line.quantity),
            line.unit,
            line.usd
        );
    }
    let _ = writeln!(md, "| **total** | | | **{:.2}** |", c.total_usd);
    let _ = writeln!(
        md,
        "\nStoring a million images (originals and renditions) in S3 Standard: {:.2} USD a month.",
        c.storage_usd_per_month
    );
    md
}

/// USD per million images per service, one column per estimate, with the totals.
pub fn by_service_table(columns: &[(String, &CostEstimate)]) -> String {
    let mut md = String::new();
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    let _ = writeln!(md, "| service | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(columns.len()));
    let mut services: Vec<String> = Vec::new();
    for (_, estimate) in columns {
        for (service, _) in estimate.by_service() {
            if !services.contains(&service) {
                services.push(service);
            }
        }
    }
    for service in &services {
        let cells: Vec<String> = columns.iter().map(|(_, e)| format!("{:.2}", e.service_usd(service))).collect();
        let _ = writeln!(md, "| {service} | {} |", cells.join(" | "));
    }
    let totals: Vec<String> = columns.iter().map(|(_, e)| format!("**{:.2}**", e.total_usd)).collect();
    let _ = writeln!(md, "| **total** | {} |", totals.join(" | "));
    let storage: Vec<String> = columns.iter().map(|(_, e)| format!("{:.2}", e.storage_usd_per_month)).collect();
    let _ = writeln!(md, "| S3 storage, per month | {} |", storage.join(" | "));
    md
}

fn ms4(p: &Percentiles) -> String {
    format!("{} / {} / {} / {} ms", number(p.p50_ms), number(p.p90_ms), number(p.p99_ms), number(p.max_ms))
}

/// A figure with as many decimals as its size deserves.
fn number(x: f64) -> String {
    if (x == x.trunc() && x.abs() < 1e15) || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// A count with thousands separators (`1,200,000`), fractions kept when small.
fn count(x: f64) -> String {
    if x < 100.0 && x != x.trunc() {
        return format!("{x:.2}");
    }
    thousands(x)
}

/// A whole number with thousands separators (`1,000,000`).
pub(crate) fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    if x < -0.5 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{CostInputs, CostModel, Prices, REFERENCE, estimate};

    /// The READMEs' table: `cargo test -p loadtest --lib reference_breakdown -- --nocapture`
    /// prints it.
    #[test]
    fn reference_breakdown() {
        let e = estimate(REFERENCE, CostModel::default(), Prices::default());
        let columns = [
            ("direct uploads".to_owned(), &e.for_upload(false)),
            ("presigned uploads".to_owned(), &e.for_upload(true)),
        ];
        let table = by_service_table(&columns);
        println!("{table}");
        // API Gateway: six 512 KB increments + a status read, or 1/100 presign + a status read.
        assert!(table.contains("| API Gateway | 7.00 | 1.01 |"), "{table}");
        // DynamoDB: 8 WRU (3 table + 5 index) × $0.625 + 2 RRU × $0.125, either way.
        assert!(table.contains("| DynamoDB | 5.25 | 5.25 |"), "{table}");
        // S3: 4 PUTs × $0.005/1000 + 1 GET × $0.0004/1000.
        assert!(table.contains("| S3 | 20.40 | 20.40 |"), "{table}");
        // Logs at $0.50/GB ingested + $0.03 a month for 30 days: direct 334 + 414 B of lines,
        // 2.102 invocations × 600 B of platform records, 2 access lines × 256 B = 2,521.2 B;
        // presigned 334 + 1.112 × 600 + 1.01 × 256 = 1,259.76 B; per GB of 2^30 bytes.
        assert!(table.contains("| CloudWatch Logs | 1.24 | 0.62 |"), "{table}");
        assert!(table.contains("| **total** | **39.55** | **31.46** |"), "{table}");
        assert!(!table.contains("Data transfer"), "downloads are an option, off by default");
        // loadtest/README.md: one download of the 491 KB large rendition adds $2.66 (request
        // $1, invocation $0.20 and 20 ms at 1 GB $0.27, a read $0.125, an S3 GET $0.40,
        // 856 B of logs $0.42, 5 % of a trace $0.25) + 491,208 B out at $0.09/GB = $41.17.
        let model = CostModel { downloads_per_image: 1.0, download_bytes: Some(491_208.0), ..CostModel::default() };
        let download = estimate(REFERENCE, model, Prices::default()).total_usd - e.total_usd;
        assert!((download - (2.66 + 41.17)).abs() < 0.01, "{download}");
    }

    #[test]
    fn the_cost_section_shows_both_upload_modes_and_a_mixed_run() {
        let mixed = CostInputs { presigned_fraction: 0.5, ..REFERENCE };
        let model = CostModel { downloads_per_image: 1.0, ..CostModel::default() };
        let md = cost_markdown(&estimate(mixed, model, Prices::default()));
        assert!(md.contains("| service | direct uploads | presigned uploads | this run (50 % presigned) |"), "{md}");
        assert!(md.contains("| Data transfer |"), "{md}");
        assert!(md.contains("| DynamoDB | index write units | 5,000,000 WRU |"), "{md}");
        assert!(md.contains("3 WRU on the table and 5 on the index"), "{md}");
        let direct = cost_markdown(&estimate(REFERENCE, CostModel::default(), Prices::default()));
        assert!(direct.contains("| service | direct uploads | presigned uploads |\n"), "{direct}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(2000.0), "2000");
        assert_eq!(number(1234.56), "1235");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(0.0634), "0.063");
        assert_eq!(count(1_200_000.0), "1,200,000");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(2.5), "2.50");
    }
}
