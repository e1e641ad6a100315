//! The soak: one long-running target fed thousands of uploads, good and hostile interleaved in a
//! seeded order, each upload followed to its final record and checked against what the kernel
//! makes of the same bytes on fresh threads; the server's resident memory sampled throughout.
//!
//! What it proves: no input harms a later one (a DONE image's renditions are byte-identical to a
//! fresh run's, a FAILED one fails with the kind a fresh run gives), nothing stays PENDING or
//! PROCESSING, and memory does not grow with the images processed. The oracle is the kernel of
//! this build with the built-in `default` preset and the default limits: the target must run
//! those (as `imgpipe serve` does without `--presets` and limit flags).
//!
//! Uploads are paced by completion: `in_flight` clients each upload, wait for the final record,
//! check it, and only then upload the next. The pipeline holds a steady amount of work, so the
//! memory measured is what processing costs, not a backlog that grows with the upload rate.

use crate::api::Api;
use crate::config::{Inputs, Mode};
use crate::files::{self, WriteError};
use crate::inputs::{InputError, InputSet, Item};
use crate::plot;
use crate::rss::{self, RssFigures, RssMargin, RssPlot, RssSample};
use crate::stats::{Latencies, Percentiles};
use bytes::Bytes;
use imgpipe_core::preset::DEFAULT_PRESET;
use imgpipe_core::record::rfc3339;
use imgpipe_core::{Limits, PresetCatalog};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Everything a soak needs. [`SoakConfig::new`] fills in the defaults the command line shows.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Base URL of the API, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// API key, sent as `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// The server's process id, to sample its resident memory (`None`: not sampled).
    pub pid: Option<u32>,
    /// Kernel threads the target runs (`--workers`), for the report.
    pub workers: Option<usize>,
    /// Uploads to make.
    pub images: u64,
    /// Fraction (0..=1) of uploads that are hostile inputs.
    pub hostile: f64,
    /// Where the regular inputs come from (synthetic sizes, folders or files of photos).
    pub sources: Vec<Inputs>,
    /// Seed of the synthetic pixels, the damage done, and the order of the uploads.
    pub seed: u64,
    /// Images in the pipeline at once (clients that each wait for their image to be final).
    pub in_flight: usize,
    /// Images finished before the memory's start is taken.
    pub warmup: u64,
    /// Pause between two memory samples.
    pub sample_every: Duration,
    /// How far memory may grow from the first half to the second.
    pub margin: RssMargin,
    /// How long one image may take to become final before it counts as stuck.
    pub image_timeout: Duration,
    /// Stop starting uploads after this long.
    pub duration: Option<Duration>,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Write `soak.json`, `soak.md` and the memory plot here.
    pub out: Option<PathBuf>,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

impl SoakConfig {
    /// The defaults: 3000 uploads, 15 % hostile, synthetic 640x480 and 160x120 images, 6 in
    /// flight, memory start after a tenth of the images.
    pub fn new(target: impl Into<String>) -> Self {
        let images = 3000;
        Self {
            target: target.into(),
            api_key: None,
            pid: None,
            workers: None,
            images,
            hostile: 0.15,
            sources: vec![Inputs::Synthetic(vec![
                crate::Size { width: 640, height: 480 },
                crate::Size { width: 160, height: 120 },
            ])],
            seed: 1,
            in_flight: 6,
            warmup: images / 10,
            sample_every: rss::SAMPLE_EVERY,
            margin: RssMargin::default(),
            image_timeout: Duration::from_secs(120),
            duration: None,
            request_timeout: Duration::from_secs(60),
            out: None,
            progress: false,
        }
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.target.starts_with("http://") || self.target.starts_with("https://")) {
            return Err(format!("the target {:?} must start with http:// or https://", self.target));
        }
        if self.images == 0 || self.in_flight == 0 {
            return Err("--images and --in-flight must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.hostile) {
            return Err("--hostile must be a fraction in 0..=1".into());
        }
        if self.warmup >= self.images {
            return Err(format!("--warmup ({}) must be below --images ({})", self.warmup, self.images));
        }
        if self.sources.is_empty() || self.sample_every.is_zero() {
            return Err("a soak needs inputs and a non-zero sampling interval".into());
        }
        Ok(())
    }
}

/// Why a soak could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
    /// The target does not answer.
    #[error("cannot reach {0}")]
    Unreachable(String),
    /// The inputs could not be prepared.
    #[error(transparent)]
    Inputs(#[from] InputError),
    /// A generated hostile input does not fail on a fresh kernel, or fails otherwise than made
    /// to: the generator, not the target, is wrong.
    #[error("the generated input {name} ({kind}) {what} on a fresh kernel")]
    Generator {
        /// Its file name.
        name: String,
        /// Its kind.
        kind: &'static str,
        /// What the fresh kernel did.
        what: String,
    },
    /// The report could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What the kernel makes of one input on fresh threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// DONE with these renditions: name and bytes, in preset order.
    Done(Vec<(String, Bytes)>),
    /// FAILED.
    Failed {
        /// The error kind (`corrupt`, `unsupported`, …).
        kind: String,
        /// The error message.
        message: String,
    },
}

/// Runs `bytes` through the kernel with the built-in default preset and the default limits, on
/// a new one-thread rayon pool (so the decode, the resizes and the encodes all run on a thread
/// that never saw another image) with a new recipe (no cached overlay).
pub fn expect_fresh(bytes: &[u8]) -> Expected {
    let preset = PresetCatalog::builtin().get(DEFAULT_PRESET).expect("the built-in default preset exists").clone();
    let recipe = processor::Recipe::text_only(preset).expect("the default preset has no logo to read");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "soak-oracle".into())
        .build()
        .expect("a one-thread pool starts");
    match pool.install(|| processor::process(bytes, &recipe, &Limits::default())) {
        Ok(output) => Expected::Done(output.renditions.into_iter().map(|r| (r.name, Bytes::from(r.bytes))).collect()),
        Err(error) => Expected::Failed { kind: error.kind.as_str().to_owned(), message: error.message },
    }
}

/// The expected outcome of every input; a hostile input that does not fail with its kind on a
/// fresh kernel is an error of the generator.
pub fn expect_all(inputs: &InputSet) -> Result<Vec<Expected>, SoakError> {
    inputs
        .inputs()
        .iter()
        .map(|input| {
            let expected = expect_fresh(&input.bytes);
            match (input.kind.expected_failure(), &expected) {
                (Some(kind), Expected::Failed { kind: got, .. }) if got != kind => Err(SoakError::Generator {
                    name: input.name.clone(),
                    kind: input.kind.as_str(),
                    what: format!("fails {got}, not {kind}"),
                }),
                (Some(_), Expected::Done(_)) => Err(SoakError::Generator {
                    name: input.name.clone(),
                    kind: input.kind.as_str(),
                    what: "is DONE".into(),
                }),
                _ => Ok(expected),
            }
        })
        .collect()
}

/// The soak's parameters, as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakParameters {
    /// The target's base URL.
    pub target: String,
    /// Kernel threads of the target, when told.
    pub workers: Option<usize>,
    /// Uploads planned.
    pub images: u64,
    /// Fraction of hostile uploads planned.
    pub hostile: f64,
    /// Seed.
    pub seed: u64,
    /// Images in the pipeline at once.
    pub in_flight: usize,
    /// Where the regular inputs came from.
    pub sources: Vec<String>,
    /// Distinct inputs (regular and hostile).
    pub distinct_inputs: usize,
}

/// Everything a soak saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakReport {
    /// Version of the loadtest that ran.
    pub loadtest_version: String,
    /// When the uploads started, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// How it ran.
    pub parameters: SoakParameters,
    /// Uploads made and checked.
    pub checked: u64,
    /// Of them, inputs a fresh kernel makes DONE.
    pub good: u64,
    /// Of them, inputs a fresh kernel fails (every generated hostile input among them).
    pub hostile: u64,
    /// Ended DONE.
    pub done: u64,
    /// Ended FAILED.
    pub failed: u64,
    /// Refused at upload.
    pub refused: u64,
    /// Not final within the per-image timeout.
    pub stuck: u64,
    /// FAILED images by error kind.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Outcome (`done`, `failed:KIND`, `refused:REASON`, `stuck:STATUS`) counts by input kind.
    pub outcomes_by_input: BTreeMap<String, BTreeMap<String, u64>>,
    /// Renditions downloaded and found byte-identical to a fresh run's.
    pub renditions_identical: u64,
    /// Uploads whose outcome differs from a fresh run's (or that were refused or stuck).
    pub mismatches: u64,
    /// The first mismatches, described.
    pub mismatch_examples: Vec<String>,
    /// Records still PENDING or PROCESSING at the end, by status (or why they could not be
    /// listed).
    pub left_open: BTreeMap<String, Result<u64, String>>,
    /// From the first upload to the last check, in seconds.
    pub duration_s: f64,
    /// Images checked per second over that time.
    pub images_per_s: f64,
    /// Upload to final record, as the client saw it.
    pub latency: Percentiles,
    /// The server's resident memory (absent without a pid).
    pub rss: Option<RssFigures>,
}

/// Mismatches described in the report (all are counted).
const EXAMPLES: usize = 30;

/// One upload's outcome and check.
struct Check {
    input: u32,
    outcome: String,
    done: bool,
    mismatch: Option<String>,
    identical: u64,
    latency: Option<Duration>,
}

/// What the clients share.
struct Shared {
    api: Api,
    inputs: InputSet,
    expected: Vec<Expected>,
    plan: Vec<Item>,
    next: AtomicUsize,
    finished: AtomicU64,
    deadline: Option<Instant>,
    image_timeout: Duration,
}

/// Runs a soak as `config` says and returns its report (also written to `config.out`).
pub async fn soak(config: SoakConfig) -> Result<SoakReport, SoakError> {
    config.validate().map_err(SoakError::Config)?;
    let api = Api::new(&config.target, config.api_key.as_deref(), config.request_timeout).map_err(SoakError::Config)?;
    api.health().await.map_err(|e| SoakError::Unreachable(format!("{}: {e}", config.target)))?;
    let (sources, seed) = (config.sources.clone(), config.seed);
    let (inputs, expected) = tokio::task::spawn_blocking(move || {
        let inputs = InputSet::prepare_all(&sources, seed)?;
        let expected = expect_all(&inputs)?;
        Ok::<_, SoakError>((inputs, expected))
    })
    .await
    .expect("preparing the inputs does not panic")?;
    let plan = inputs.plan(config.images, config.hostile, Mode::Direct, config.seed);
    let distinct_inputs = inputs.inputs().len();

    let bar = crate::run::progress_bar(
        config.progress,
        plan.len() as u64,
        "{spinner} soak [{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
    );
    let started = Instant::now();
    let started_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let shared = Arc::new(Shared {
        api: api.clone(),
        inputs,
        expected,
        plan,
        next: AtomicUsize::new(0),
        finished: AtomicU64::new(0),
        deadline: config.duration.map(|d| started + d),
        image_timeout: config.image_timeout,
    });

    let (stop_sampling, sampler) = match config.pid {
        Some(pid) => {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            (Some(stop), Some(tokio::spawn(sample_rss(pid, shared.clone(), started, config.sample_every, stopped))))
        }
        None => (None, None),
    };
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Check>();
    let clients: Vec<_> = (0..config.in_flight)
        .map(|_| {
            let (shared, done) = (shared.clone(), done_tx.clone());
            tokio::spawn(async move {
                while let Some(check) = next_check(&shared).await {
                    shared.finished.fetch_add(1, Ordering::Relaxed);
                    if done.send(check).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(done_tx);
    let mut checks = Vec::with_capacity(shared.plan.len());
    let mut mismatches = 0u64;
    while let Some(check) = done_rx.recv().await {
        mismatches += u64::from(check.mismatch.is_some());
        bar.set_message(format!("checked, {mismatches} mismatched"));
        bar.inc(1);
        checks.push(check);
    }
    for client in clients {
        client.await.expect("a soak client does not panic");
    }
    let elapsed = started.elapsed();
    bar.finish();
    let samples = match (stop_sampling, sampler) {
        (Some(stop), Some(sampler)) => {
            let _ = stop.send(());
            sampler.await.expect("the sampler does not panic")
        }
        _ => Vec::new(),
    };

    let mut left_open = BTreeMap::new();
    for status in ["PENDING", "PROCESSING"] {
        let open = match api.list(status, None, 1000).await {
            Ok(page) => Ok(page.images.len() as u64),
            Err(error) => Err(format!("listing {status} records failed: {error}")),
        };
        left_open.insert(status.to_owned(), open);
    }

    let parameters = SoakParameters {
        target: config.target.clone(),
        workers: config.workers,
        images: config.images,
        hostile: config.hostile,
        seed: config.seed,
        in_flight: config.in_flight,
        sources: config.sources.iter().map(describe).collect(),
        distinct_inputs,
    };
    let rss = config.pid.and_then(|pid| RssFigures::new(pid, samples, config.warmup, config.margin));
    let report = summarize(parameters, started_unix_ms, &shared, &checks, elapsed, left_open, rss);
    if let Some(out) = &config.out {
        report.write(out)?;
    }
    Ok(report)
}

fn describe(source: &Inputs) -> String {
    match source {
        Inputs::Corpus(path) => path.display().to_string(),
        Inputs::Synthetic(sizes) => {
            let sizes: Vec<String> = sizes.iter().map(ToString::to_string).collect();
            format!("synthetic {} (JPEG, PNG, WebP)", sizes.join(", "))
        }
    }
}

/// Samples the resident memory of `pid` until told to stop (or the process is gone).
async fn sample_rss(
    pid: u32,
    shared: Arc<Shared>,
    started: Instant,
    every: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Vec<RssSample> {
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let take = |samples: &mut Vec<RssSample>| {
        let Some(kib) = rss::read_kib(pid) else { return false };
        let ms = started.elapsed().as_millis() as u64;
        samples.push(RssSample { ms, kib, finished: shared.finished.load(Ordering::Relaxed) });
        true
    };
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => if !take(&mut samples) { return samples },
        }
    }
    take(&mut samples); // the end, after the last check
    samples
}

/// Uploads the next planned input, follows it to its final record and checks it; `None` when
/// the plan is done or the deadline passed.
async fn next_check(shared: &Shared) -> Option<Check> {
    if shared.deadline.is_some_and(|d| Instant::now() >= d) {
        return None;
    }
    let index = shared.next.fetch_add(1, Ordering::Relaxed);
    let item = *shared.plan.get(index)?;
    let input = shared.inputs.get(item.input);
    let expected = &shared.expected[item.input as usize];
    let what = format!("upload #{index} ({}, {})", input.name, input.kind.as_str());
    let check = |outcome: String, done: bool, mismatch: Option<String>| Check {
        input: item.input,
        outcome,
        done,
        mismatch,
        identical: 0,
        latency: None,
    };
    let started = Instant::now();
    let id = match shared.api.upload(input, None).await {
        Ok(id) => id,
        Err(error) => {
            return Some(check(format!("refused:{}", error.label()), false, Some(format!("{what} refused: {error}"))));
        }
    };
    let record = match wait_final(&shared.api, &id, started + shared.image_timeout).await {
        Ok(record) => record,
        Err(status) => {
            let mismatch = format!("{what} {id} still {status} after {:?}", shared.image_timeout);
            return Some(check(format!("stuck:{status}"), false, Some(mismatch)));
        }
    };
    let latency = started.elapsed();
    let error_of = |record: &Value| {
        let text = |field: &str| record["error"][field].as_str().unwrap_or("?").to_owned();
        (text("kind"), text("message"))
    };
    let mut result = match (record["status"].as_str(), expected) {
        (Some("DONE"), Expected::Done(renditions)) => {
            let mut result = check("done".into(), true, None);
            for (name, fresh) in renditions {
                match shared.api.rendition(&id, name).await {
                    Ok(bytes) if bytes == *fresh => result.identical += 1,
                    Ok(bytes) => {
                        result.mismatch = Some(format!(
                            "{what} {id}: rendition {name} differs from a fresh run's ({} bytes, fresh {})",
                            bytes.len(),
                            fresh.len()
                        ));
                        break;
                    }
                    Err(error) => {
                        result.mismatch = Some(format!("{what} {id}: rendition {name} cannot be downloaded: {error}"));
                        break;
                    }
                }
            }
            result
        }
        (Some("DONE"), Expected::Failed { kind, message }) => {
            check("done".into(), true, Some(format!("{what} {id} is DONE; a fresh run fails it {kind} ({message})")))
        }
        (_, Expected::Done(_)) => {
            let (kind, message) = error_of(&record);
            let mismatch = format!("{what} {id} FAILED {kind} ({message}); a fresh run makes it DONE");
            check(format!("failed:{kind}"), false, Some(mismatch))
        }
        (_, Expected::Failed { kind: fresh, message: fresh_message }) => {
            let (kind, message) = error_of(&record);
            let mismatch = (kind != *fresh).then(|| {
                format!("{what} {id} FAILED {kind} ({message}); a fresh run fails it {fresh} ({fresh_message})")
            });
            check(format!("failed:{kind}"), false, mismatch)
        }
    };
    result.latency = Some(latency);
    Some(result)
}

/// Polls the record of `id` until it is DONE or FAILED (then `Ok(record)`), or `deadline`
/// passes (then `Err(last status seen)`). Polls start fast and back off to 100 ms.
async fn wait_final(api: &Api, id: &str, deadline: Instant) -> Result<Value, String> {
    let mut pause = Duration::from_millis(10);
    let mut status = "unknown".to_owned();
    loop {
        match api.record(id).await {
            Ok(record) => {
                status = record["status"].as_str().unwrap_or("?").to_owned();
                if status == "DONE" || status == "FAILED" {
                    return Ok(record);
                }
            }
            Err(error) => tracing::warn!(%error, image_id = id, "reading a record failed; retrying"),
        }
        if Instant::now() + pause >= deadline {
            return Err(status);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

fn summarize(
    parameters: SoakParameters,
    started_unix_ms: u64,
    shared: &Shared,
    checks: &[Check],
    elapsed: Duration,
    left_open: BTreeMap<String, Result<u64, String>>,
    rss: Option<RssFigures>,
) -> SoakReport {
    let mut report = SoakReport {
        loadtest_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_unix_ms,
        parameters,
        checked: checks.len() as u64,
        good: 0,
        hostile: 0,
        done: 0,
        failed: 0,
        refused: 0,
        stuck: 0,
        failures_by_kind: BTreeMap::new(),
        outcomes_by_input: BTreeMap::new(),
        renditions_identical: 0,
        mismatches: 0,
        mismatch_examples: Vec::new(),
        left_open,
        duration_s: elapsed.as_secs_f64(),
        images_per_s: checks.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        latency: Percentiles::default(),
        rss,
    };
    let mut latency = Latencies::default();
    for check in checks {
        match shared.expected[check.input as usize] {
            Expected::Done(_) => report.good += 1,
            Expected::Failed { .. } => report.hostile += 1,
        }
        if check.done {
            report.done += 1;
        } else if let Some(kind) = check.outcome.strip_prefix("failed:") {
            report.failed += 1;
            *report.failures_by_kind.entry(kind.to_owned()).or_default() += 1;
        } else if check.outcome.starts_with("refused:") {
            report.refused += 1;
        } else {
            report.stuck += 1;
        }
        let kind = shared.inputs.get(check.input).kind.as_str().to_owned();
        *report.outcomes_by_input.entry(kind).or_default().entry(check.outcome.clone()).or_default() += 1;
        report.renditions_identical += check.identical;
        if let Some(mismatch) = &check.mismatch {
            report.mismatches += 1;
            if report.mismatch_examples.len() < EXAMPLES {
                report.mismatch_examples.push(mismatch.clone());
            }
        }
        if let Some(l) = check.latency {
            latency.record(l);
        }
    }
    report.latency = latency.percentiles();
    report
}

impl SoakReport {
    /// Every expectation the run did not meet, one line each (empty: the soak passed).
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.mismatches > 0 {
            failures.push(format!(
                "{} of {} uploads did not end as a fresh run does, e.g. {}",
                self.mismatches,
                self.checked,
                self.mismatch_examples.first().map_or("", String::as_str)
            ));
        }
        if self.checked < self.parameters.images {
            failures.push(format!("only {} of {} planned uploads ran", self.checked, self.parameters.images));
        }
        for (status, open) in &self.left_open {
            match open {
                Ok(0) => {}
                Ok(count) => failures.push(format!("{count} records left {status} at the end")),
                Err(error) => failures.push(error.clone()),
            }
        }
        match &self.rss {
            Some(rss) if !rss.is_steady() => failures.push(format!(
                "resident memory grew: the second half's peak {} MiB is above the first half's {} MiB plus the margin \
                 ({} MiB allowed; {:.0} KiB per 1000 images)",
                rss.second_half_peak_kib / 1024,
                rss.first_half_peak_kib / 1024,
                rss.allowed_kib / 1024,
                rss.slope_kib_per_1000
            )),
            _ => {}
        }
        failures
    }

    /// Writes `soak.json`, `soak.md` and `rss.{svg,png}` into `dir` (created if needed); the
    /// paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
        let mut written = files::write_report(dir, "soak", self, &self.markdown())?;
        if let Some(rss) = &self.rss {
            let workers = match self.parameters.workers {
                Some(1) => ", 1 worker".to_owned(),
                Some(w) => format!(", {w} workers"),
                None => String::new(),
            };
            let caption = format!(
                "Server memory: {} uploads, {:.0} % hostile{workers}",
                self.checked,
                self.hostile_share() * 100.0
            );
            written.extend(plot::write_figure(dir, "rss", &RssPlot { rss, caption })?);
        }
        Ok(written)
    }

    /// The share of uploads that were hostile.
    pub fn hostile_share(&self) -> f64 {
        if self.checked == 0 { 0.0 } else { self.hostile as f64 / self.checked as f64 }
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let p = &self.parameters;
        let verdict = match self.failures().as_slice() {
            [] => "**passed**".to_owned(),
            failures => format!("**failed**:\n\n- {}", failures.join("\n- ")),
        };
        let _ = writeln!(md, "# imgpipe soak\n");
        let _ = writeln!(md, "Target `{}`, started {}: {verdict}\n", p.target, rfc3339(self.started_unix_ms));
        let _ = writeln!(md, "| figure | value |\n|---|---|");
        let workers = p.workers.map_or_else(|| "not told".into(), |w| w.to_string());
        let open = |status: &str| match self.left_open.get(status) {
            Some(Ok(count)) => count.to_string(),
            Some(Err(_)) => "not listed".to_owned(),
            None => "?".to_owned(),
        };
        let rows = [
            ("workers (kernel threads)", workers),
            ("uploads checked (planned)", format!("{} ({})", self.checked, p.images)),
            (
                "good / hostile",
                format!("{} / {} ({:.1} % hostile)", self.good, self.hostile, self.hostile_share() * 100.0),
            ),
            (
                "DONE / FAILED / refused / stuck",
                format!("{} / {} / {} / {}", self.done, self.failed, self.refused, self.stuck),
            ),
            ("renditions byte-identical to a fresh run", self.renditions_identical.to_string()),
            ("outcomes unlike a fresh run's", self.mismatches.to_string()),
            ("left PENDING / PROCESSING", format!("{} / {}", open("PENDING"), open("PROCESSING"))),
            ("duration", format!("{:.1} s", self.duration_s)),
            ("images/s", format!("{:.1}", self.images_per_s)),
            (
                "upload → final, p50 / p99 / max",
                format!("{:.0} / {:.0} / {:.0} ms", self.latency.p50_ms, self.latency.p99_ms, self.latency.max_ms),
            ),
            ("images in flight, seed", format!("{}, {}", p.in_flight, p.seed)),
            ("inputs", format!("{} distinct: {}", p.distinct_inputs, p.sources.join("; "))),
        ];
        for (name, value) in rows {
            let _ = writeln!(md, "| {name} | {value} |");
        }
        if let Some(rss) = &self.rss {
            let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
            let _ = writeln!(md, "\n## Server memory (VmRSS of pid {})\n\n| figure | value |\n|---|---|", rss.pid);
            let _ = writeln!(md, "| start (after {} images of warm-up) | {} |", rss.warmup_images, mib(rss.start_kib));
            let _ = writeln!(md, "| peak | {} |", mib(rss.peak_kib));
            let _ = writeln!(md, "| end | {} |", mib(rss.end_kib));
            let _ = writeln!(
                md,
                "| peak, first half / second half | {} / {} |",
                mib(rss.first_half_peak_kib),
                mib(rss.second_half_peak_kib)
            );
            let _ = writeln!(
                md,
                "| second half allowed up to ({:.0} % or {:.0} MiB over the first) | {} |",
                rss.margin.fraction * 100.0,
                rss.margin.mib,
                mib(rss.allowed_kib)
            );
            let _ = writeln!(md, "| trend | {:.0} KiB per 1000 images |", rss.slope_kib_per_1000);
            let _ = writeln!(md, "| samples | {} |", rss.samples.len());
            let _ = writeln!(md, "\n![server memory over time](rss.png)");
        }
        let _ = writeln!(md, "\n## Outcomes by input\n\n| input | outcome | uploads |\n|---|---|---:|");
        for (input, outcomes) in &self.outcomes_by_input {
            for (outcome, count) in outcomes {
                let _ = writeln!(md, "| {input} | {outcome} | {count} |");
            }
        }
        if !self.mismatch_examples.is_empty() {
            let _ = writeln!(md, "\n## Outcomes unlike a fresh run's (first {})\n", self.mismatch_examples.len());
            for example in &self.mismatch_examples {
                let _ = writeln!(md, "- {example}");
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::InputKind;

    #[test]
    fn every_hostile_input_fails_fresh_with_its_kind_and_the_huffman_one_says_so() {
        let inputs = InputSet::prepare(&Inputs::Synthetic(vec![crate::Size { width: 96, height: 64 }]), 5).unwrap();
        let expected = expect_all(&inputs).unwrap();
        for (input, expected) in inputs.inputs().iter().zip(&expected) {
            match (input.kind.expected_failure(), expected) {
                (None, Expected::Done(renditions)) => assert_eq!(renditions.len(), 3, "{}", input.name),
                (Some(kind), Expected::Failed { kind: got, .. }) => assert_eq!(kind, got, "{}", input.name),
                (_, other) => panic!("{} ({:?}): {other:?}", input.name, input.kind),
            }
        }
        let huffman = inputs.inputs().iter().position(|i| i.kind == InputKind::HuffmanFlippedJpeg).unwrap();
        let Expected::Failed { message, .. } = &expected[huffman] else { unreachable!() };
        assert!(message.contains("Bogus Huffman table definition"), "{message}");
    }

    #[test]
    fn a_fresh_run_is_the_same_every_time() {
        let inputs = InputSet::prepare(&Inputs::Synthetic(vec![crate::Size { width: 64, height: 48 }]), 9).unwrap();
        let input = &inputs.inputs()[0];
        assert_eq!(expect_fresh(&input.bytes), expect_fresh(&input.bytes));
    }

    #[test]
    fn validation_names_the_bad_setting() {
        assert!(SoakConfig::new("http://127.0.0.1:1").validate().is_ok());
        let config = SoakConfig { warmup: 10, images: 10, ..SoakConfig::new("http://x") };
        assert!(config.validate().unwrap_err().contains("--warmup"));
        let config = SoakConfig { hostile: 2.0, ..SoakConfig::new("http://x") };
        assert!(config.validate().unwrap_err().contains("--hostile"));
        assert!(SoakConfig::new("x:1").validate().unwrap_err().contains("http://"));
    }
}
