//! One run: prepare the inputs, upload, drain, summarize, write.

use crate::api::{Api, CallError};
use crate::config::{Inputs, RunConfig};
use crate::cost::{self, CostInputs};
use crate::drain::{self, DrainError, Drained, Stages};
use crate::drive::{self, Clock, DriveOptions, UploadPhase};
use crate::files::WriteError;
use crate::inputs::{InputError, InputSet};
use crate::report::{Parameters, PipelineFigures, Report, TargetInfo, UploadFigures};
use crate::stats::{self, Latencies, Series};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
    /// The target does not answer at all.
    #[error("cannot reach {target}")]
    Unreachable {
        /// The target.
        target: String,
        /// Why.
        #[source]
        source: CallError,
    },
    /// The inputs could not be prepared.
    #[error(transparent)]
    Inputs(#[from] InputError),
    /// The records could not be listed.
    #[error(transparent)]
    Drain(#[from] DrainError),
    /// The report could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Runs a load test as `config` says and returns its report (also written to `config.out`).
pub async fn run(config: RunConfig) -> Result<Report, RunError> {
    config.validate().map_err(RunError::Config)?;
    let api = Api::new(&config.target, config.api_key.as_deref(), config.request_timeout).map_err(RunError::Config)?;
    let version =
        api.health().await.map_err(|source| RunError::Unreachable { target: config.target.clone(), source })?;
    let (inputs, seed) = (config.inputs.clone(), config.seed);
    let inputs = tokio::task::spawn_blocking(move || InputSet::prepare(&inputs, seed))
        .await
        .expect("preparing the inputs does not panic")?;
    let inputs = Arc::new(inputs);
    let items = inputs.plan(config.images, config.hostile, config.mode, config.seed);

    let bars = MultiProgress::with_draw_target(draw_target(config.progress));
    let upload_bar = bars.add(
        ProgressBar::new(items.len() as u64)
            .with_style(style("{spinner} upload [{elapsed_precise}] {bar:40} {pos}/{len} {msg} ({per_sec})")),
    );
    upload_bar.set_message("uploaded");

    let clock = Clock::now();
    let options = DriveOptions {
        load: config.load,
        preset: config.preset.clone(),
        presign_batch: config.presign_batch,
        deadline: config.duration.map(|d| clock.start + d),
    };
    let phase = drive::drive(api.clone(), inputs.clone(), items, options, clock, upload_bar).await;

    let accepted: Vec<String> =
        phase.uploads.iter().filter_map(|u| u.outcome.as_ref().ok().map(|a| a.id.clone())).collect();
    let drain_bar = bars.add(
        ProgressBar::new(accepted.len() as u64)
            .with_style(style("{spinner} drain  [{elapsed_precise}] {bar:40} {pos}/{len} final ({per_sec})")),
    );
    let drained = if config.drain {
        let deadline = Instant::now() + config.drain_timeout;
        Some(drain::drain(&api, accepted, deadline, config.poll_interval, &drain_bar).await?)
    } else {
        drain_bar.finish_and_clear();
        None
    };

    let report = summarize(&config, version, &inputs, clock, &phase, drained.as_ref());
    if let Some(out) = &config.out {
        report.write(out)?;
    }
    Ok(report)
}

/// Stderr when `progress` is on and stderr is a terminal; nowhere otherwise.
fn draw_target(progress: bool) -> ProgressDrawTarget {
    if progress && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("the progress templates are valid")
}

/// A bar of `len` steps drawn as `template`, where [`draw_target`] says.
pub(crate) fn progress_bar(progress: bool, len: u64, template: &str) -> ProgressBar {
    ProgressBar::with_draw_target(Some(len), draw_target(progress)).with_style(style(template))
}

/// Turns what was seen into the report's figures.
fn summarize(
    config: &RunConfig,
    version: Option<String>,
    inputs: &InputSet,
    clock: Clock,
    phase: &UploadPhase,
    drained: Option<&Drained>,
) -> Report {
    let no_records = Drained::default();
    let drained_or_empty = drained.unwrap_or(&no_records);
    // Uploads.
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    let mut upload_latency = Latencies::default();
    let (mut accepted, mut accepted_bytes, mut presigned_accepted) = (0u64, 0u64, 0u64);
    for upload in &phase.uploads {
        match &upload.outcome {
            Ok(_) => {
                accepted += 1;
                accepted_bytes += inputs.get(upload.input).bytes.len() as u64;
                presigned_accepted += u64::from(upload.presigned);
                upload_latency.record(upload.latency());
            }
            Err(error) => *refusals.entry(error.label()).or_default() += 1,
        }
    }
    let mut presign_latency = Latencies::default();
    for (latency, _) in &phase.presigns {
        presign_latency.record(*latency);
    }
    let elapsed_s = phase.elapsed.as_secs_f64();
    let uploads = UploadFigures {
        attempted: phase.uploads.len() as u64,
        accepted,
        refused: phase.uploads.len() as u64 - accepted,
        refusals,
        accepted_bytes,
        elapsed_s,
        per_s: if elapsed_s > 0.0 { accepted as f64 / elapsed_s } else { 0.0 },
        latency: upload_latency.percentiles(),
        presign_requests: phase.presigns.len() as u64,
        presign_failures: phase.presigns.iter().filter(|(_, ok)| !ok).count() as u64,
        presign_latency: presign_latency.percentiles(),
        unused_slots: phase.unused_slots as u64,
    };

    // The server's clock against ours, from each record-creating request's window.
    let offset = stats::clock_offset_ms(phase.uploads.iter().filter_map(|u| {
        let a = u.outcome.as_ref().ok()?;
        let server = ulid::Ulid::from_string(&a.id).ok()?.timestamp_ms();
        Some((server, a.created_during.0, a.created_during.1))
    }));

    // Outcomes.
    let (mut completed, mut failed, mut lost, mut unchecked) = (0u64, 0u64, 0u64, 0u64);
    let mut failures_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut outcomes_by_input: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut lost_ids = Vec::new();
    let (mut e2e, mut queue_wait, mut processing) = (Latencies::default(), Latencies::default(), Latencies::default());
    let (mut uploaded_at, mut completed_at) = (Vec::new(), Vec::new());
    let (mut first_created, mut last_finished) = (u64::MAX, 0u64);
    let mut timed = Vec::new();
    let (mut source_bytes, mut rendition_bytes, mut renditions, mut record_bytes) = (0u64, 0u64, 0u64, 0u64);
    for upload in &phase.uploads {
        let Ok(accepted) = &upload.outcome else { continue };
        uploaded_at.push(upload.answered.saturating_duration_since(clock.start).as_millis() as u64);
        let kind = inputs.get(upload.input).kind.as_str().to_owned();
        let outcome = match drained_or_empty.finals.get(&accepted.id) {
            None if drained.is_none() => {
                unchecked += 1;
                "unchecked".to_owned()
            }
            None => {
                lost += 1;
                if lost_ids.len() < 20 {
                    lost_ids.push(accepted.id.clone());
                }
                "lost".to_owned()
            }
            Some(record) => {
                first_created = first_created.min(record.created_ms);
                source_bytes += record.source.as_ref().map_or(upload_bytes(inputs, upload.input), |s| s.bytes);
                record_bytes += record.record_bytes as u64;
                if let Some(finished) = record.finished_ms {
                    last_finished = last_finished.max(finished);
                    e2e.record_ms(finished.saturating_sub(record.created_ms));
                    let ours = (finished as i64 - offset - clock.start_unix_ms as i64).max(0) as u64;
                    completed_at.push(ours);
                    if let Some(started) = record.started_ms {
                        queue_wait.record_ms(started.saturating_sub(record.created_ms));
                        processing.record_ms(finished.saturating_sub(started));
                    }
                }
                if record.status == "DONE" {
                    completed += 1;
                    renditions += record.renditions.len() as u64;
                    rendition_bytes += record.renditions.iter().map(|r| r.bytes).sum::<u64>();
                    timed.extend(record.durations_ms);
                    "done".to_owned()
                } else {
                    failed += 1;
                    let kind = record.error.as_ref().map_or("unknown", |e| e.kind.as_str()).to_owned();
                    *failures_by_kind.entry(kind.clone()).or_default() += 1;
                    format!("failed:{kind}")
                }
            }
        };
        *outcomes_by_input.entry(kind).or_default().entry(outcome).or_default() += 1;
    }
    let finals = completed + failed;
    let span_s = if finals > 0 { last_finished.saturating_sub(first_created) as f64 / 1000.0 } else { 0.0 };
    let mean = |sum: f64, n: u64| if n > 0 { sum / n as f64 } else { 0.0 };
    let stage_mean_ms = mean_stages(&timed);
    let pipeline = PipelineFigures {
        uploaded: accepted,
        completed,
        failed,
        lost,
        unchecked,
        failures_by_kind,
        outcomes_by_input,
        finished_per_s: if span_s > 0.0 { finals as f64 / span_s } else { 0.0 },
        span_s,
        drain_s: drained_or_empty.elapsed.as_secs_f64(),
        drain_requests: drained_or_empty.requests,
        drain_errors: drained_or_empty.errors,
        e2e_latency: e2e.percentiles(),
        queue_wait: queue_wait.percentiles(),
        processing: processing.percentiles(),
        stage_mean_ms,
        lost_ids,
    };

    // Per image for the cost model: the kernel stages of DONE images and, apart, their `store`
    // stage (fetching the original, storing the renditions: time the processor waits, billed at
    // its memory, not divided among vCPUs); for a target that does not report stages, the
    // processing time as kernel time and the I/O left to the model. `--io-ms` replaces a
    // measured I/O that does not stand for S3 (a local run's disk).
    let (processing_ms, io_ms) = if !timed.is_empty() {
        (stage_mean_ms.total() - stage_mean_ms.store, stage_mean_ms.store)
    } else {
        (pipeline.processing.mean_ms, 0.0)
    };
    let cost_inputs = CostInputs {
        processing_ms,
        io_ms: config.io_ms.unwrap_or(io_ms),
        original_bytes: mean(source_bytes as f64, finals),
        rendition_bytes: mean(rendition_bytes as f64, finals),
        renditions: mean(renditions as f64, finals),
        record_bytes: mean(record_bytes as f64, finals),
        presigned_fraction: mean(presigned_accepted as f64, accepted),
        presign_batch: config.presign_batch as f64,
    };
    let inputs_text = match &config.inputs {
        Inputs::Corpus(dir) => format!("corpus {}", dir.display()),
        Inputs::Synthetic(sizes) => {
            let sizes: Vec<String> = sizes.iter().map(ToString::to_string).collect();
            format!("synthetic {} (JPEG, PNG, WebP)", sizes.join(", "))
        }
    };
    Report {
        loadtest_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_unix_ms: clock.start_unix_ms,
        target: TargetInfo { url: config.target.clone(), version },
        parameters: Parameters {
            images: config.images,
            mode: config.mode,
            load: config.load,
            inputs: inputs_text,
            hostile: config.hostile,
            seed: config.seed,
            preset: config.preset.clone(),
            duration_s: config.duration.map(|d| d.as_secs_f64()),
            drain_timeout_s: config.drain_timeout.as_secs_f64(),
            drain: config.drain,
            presign_batch: config.presign_batch,
        },
        uploads,
        pipeline,
        clock_offset_ms: offset,
        series: Series::build(&uploaded_at, &completed_at),
        e2e_histogram: e2e.bins(40),
        e2e_cdf: e2e.cdf(200),
        cost: cost::estimate(cost_inputs, config.cost_model, config.prices),
    }
}

fn upload_bytes(inputs: &InputSet, input: u32) -> u64 {
    inputs.get(input).bytes.len() as u64
}

/// The mean of each stage over `timed` (zeros when empty).
fn mean_stages(timed: &[Stages]) -> Stages {
    let mean = |stage: fn(&Stages) -> f64| match timed.len() {
        0 => 0.0,
        n => timed.iter().map(stage).sum::<f64>() / n as f64,
    };
    Stages {
        decode: mean(|s| s.decode),
        resize: mean(|s| s.resize),
        watermark: mean(|s| s.watermark),
        encode: mean(|s| s.encode),
        store: mean(|s| s.store),
    }
}
