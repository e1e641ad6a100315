//! `loadtest simulate`: a small discrete-event model of the AWS stack under a burst of uploads,
//! to check the capacity arithmetic before paying for a real burst (issue 12).
//!
//! The model runs in time steps of [`StackConfig::step_s`] with fluid, FIFO quantities where
//! images move as a flow (uploads, the SQS queue, batching) and exact event times where they
//! move as units (orchestrator invocations, workflows, chunks), so a million images take a
//! fraction of a second. Images travel in *segments*: the images that arrived in one step, split
//! wherever a stage takes only part of them; each segment carries the seconds it spent in each
//! [`Stage`], which gives "where time goes" exactly.
//!
//! - Uploads arrive at a constant rate, are admitted by the API Gateway token bucket, the ingest
//!   Lambda's concurrency and the originals bucket's S3 PUT rate (a client retries what is
//!   refused: that wait counts as upload time), and reach SQS a fixed delay after the PUT.
//! - The SQS event source releases a batch when [`StackConfig::batch_size`] messages are in the
//!   queue or the oldest has waited [`StackConfig::batch_window_s`], while fewer than
//!   [`StackConfig::orchestrator_concurrency`] orchestrators run; a finishing orchestrator takes
//!   the next ripe batch at once.
//! - The orchestrator groups a batch into chunks and workflows as `orchestrator::group` does;
//!   workflows start through the StartExecution token bucket; each Map runs
//!   [`StackConfig::map_concurrency`] chunks at once.
//! - A chunk invocation needs a Lambda slot: the account's concurrency (shared, in this order,
//!   by ingest, orchestrator and processor) and the processor's scaling limit (1,000 more every
//!   10 s than it ran 10 s before). A throttled chunk is retried after the state machine's
//!   backoff, then re-driven to the queue, then FAILED (`imgpipe_core::policy`).
//! - A chunk's writes (DynamoDB index and table, S3 renditions) pass FIFO token buckets at the
//!   end of its run: a throttled chunk keeps its Lambda slot until its writes fit (the SDK's
//!   retries), so DynamoDB or S3 throttling shows as added latency and, through the held slots,
//!   as Lambda throttling upstream.
//!
//! Not modelled: cold starts, SQS's non-FIFO order, the sweeper (images of an execution
//! past the Express 5-minute cap are only counted), and failures other than throttling.

mod config;
mod plot;
mod report;

pub use config::{StackConfig, UploadPath};
pub use report::SimReport;

use imgpipe_core::policy::RETRY;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

/// Slack when comparing times that are sums of the same delays in another order.
const EPS: f64 = 1e-9;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulateError {
    /// A parameter out of range.
    #[error("{0}")]
    Parameter(String),
    /// The report could not be written.
    #[error(transparent)]
    Write(#[from] crate::report::WriteError),
}

/// Where an image's time goes, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Arrival to original stored: API Gateway, ingest, the PUT, and waits for any of them.
    Upload,
    /// S3 event to SQS.
    Delivery,
    /// In the queue, waiting for the batch to fill or its window to pass.
    Batching,
    /// In the queue with the batch ripe, waiting for an orchestrator.
    QueueWait,
    /// The orchestrator's invocation.
    Orchestrator,
    /// StartExecution throttling and the Map's waves (a chunk waiting for its turn).
    WorkflowWait,
    /// Throttled invocations: retry backoff and re-drive delays.
    LambdaThrottle,
    /// The processor's invocation, not throttled.
    Processing,
    /// Writes held back by DynamoDB or S3 throttling.
    StoreThrottle,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 9] = [
        Stage::Upload,
        Stage::Delivery,
        Stage::Batching,
        Stage::QueueWait,
        Stage::Orchestrator,
        Stage::WorkflowWait,
        Stage::LambdaThrottle,
        Stage::Processing,
        Stage::StoreThrottle,
    ];

    /// A short name for tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Upload => "API/ingest/upload",
            Stage::Delivery => "S3 event delivery",
            Stage::Batching => "batching",
            Stage::QueueWait => "queue wait",
            Stage::Orchestrator => "orchestrator",
            Stage::WorkflowWait => "workflow wait (start, Map waves)",
            Stage::LambdaThrottle => "Lambda throttle/retry/re-drive",
            Stage::Processing => "processing",
            Stage::StoreThrottle => "DynamoDB/S3 throttling",
        }
    }
}

/// A limit the model can run into; the one saturated longest is a run's bottleneck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// API Gateway's throttle.
    ApiGateway,
    /// S3 PUTs of originals (partitions of the originals bucket).
    S3Originals,
    /// The event source's MaximumConcurrency.
    OrchestratorConcurrency,
    /// StartExecution's token bucket.
    StartExecution,
    /// The account's Lambda concurrency.
    LambdaConcurrency,
    /// A function's scaling rate.
    LambdaScaling,
    /// DynamoDB's by-status index partitions.
    DynamoIndex,
    /// DynamoDB's table throughput (its on-demand ceiling).
    DynamoTable,
    /// S3 PUTs of renditions (partitions of the processed bucket).
    S3Renditions,
}

impl Resource {
    const ALL: [Resource; 9] = [
        Resource::ApiGateway,
        Resource::S3Originals,
        Resource::OrchestratorConcurrency,
        Resource::StartExecution,
        Resource::LambdaConcurrency,
        Resource::LambdaScaling,
        Resource::DynamoIndex,
        Resource::DynamoTable,
        Resource::S3Renditions,
    ];

    /// A short name for tables.
    pub fn label(self) -> &'static str {
        match self {
            Resource::ApiGateway => "API Gateway throttle",
            Resource::S3Originals => "S3 PUTs (originals)",
            Resource::OrchestratorConcurrency => "orchestrator concurrency",
            Resource::StartExecution => "StartExecution rate",
            Resource::LambdaConcurrency => "Lambda account concurrency",
            Resource::LambdaScaling => "Lambda scaling rate",
            Resource::DynamoIndex => "DynamoDB index partitions",
            Resource::DynamoTable => "DynamoDB table throughput",
            Resource::S3Renditions => "S3 PUTs (renditions)",
        }
    }
}

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

/// Simulates each rate in turn with `images` uploads; `progress` draws a bar on stderr for
/// runs that take longer than a second.
pub fn simulate(config: &StackConfig, images: u64, rates: &[f64], progress: bool) -> Result<SimReport, SimulateError> {
    config.validate()?;
    if let Some(bad) = rates.iter().find(|r| !(**r > 0.0 && r.is_finite())) {
        return Err(SimulateError::Parameter(format!("a rate must be positive, not {bad}")));
    }
    let runs = rates.iter().map(|&rate| run_one(config, images, rate, progress)).collect();
    Ok(SimReport { loadtest_version: env!("CARGO_PKG_VERSION").to_string(), stack: config.clone(), images, runs })
}

/// Simulates one burst of `images` uploads at `rate` per second until every image is final.
pub fn run_one(config: &StackConfig, images: u64, rate: f64, progress: bool) -> RunResult {
    let bar = progress.then(|| Bar::new(images, rate));
    let mut sim = Sim::new(config, images, rate);
    while sim.finished < images {
        sim.step();
        if let Some(bar) = &bar {
            bar.update(sim.finished, sim.k as f64 * config.step_s);
        }
        // A guard against a model that never drains (every image FAILs at the latest after its
        // re-drives, so this takes a broken parameter): stop after a simulated week.
        if sim.k as f64 * config.step_s > 7.0 * 86_400.0 {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    sim.result()
}

/// A progress bar over final images, drawn only once a run has taken a second.
struct Bar {
    bar: indicatif::ProgressBar,
    started: std::time::Instant,
}

impl Bar {
    fn new(images: u64, rate: f64) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(Some(images), indicatif::ProgressDrawTarget::hidden());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} final")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(format!("{rate}/s"));
        Bar { bar, started: std::time::Instant::now() }
    }

    fn update(&self, finished: u64, t: f64) {
        if self.bar.is_hidden() && self.started.elapsed().as_secs_f64() > 1.0 {
            self.bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        if finished != self.bar.position() {
            self.bar.set_position(finished);
            self.bar.set_message(format!("t = {t:.0} s"));
        }
    }

    fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// Images that arrived in one step (or part of them), moving together.
#[derive(Debug, Clone)]
struct Segment {
    n: u32,
    born: f64,
    stage: Stage,
    since: f64,
    spent: [f64; Stage::ALL.len()],
}

impl Segment {
    /// Leaves the current stage at `at` for `stage`.
    fn enter(&mut self, stage: Stage, at: f64) {
        self.spent[self.stage as usize] += at - self.since;
        self.stage = stage;
        self.since = at;
    }

    /// Splits off the first `n` images.
    fn take(&mut self, n: u32) -> Segment {
        self.n -= n;
        Segment { n, ..self.clone() }
    }
}

/// One processor invocation's images.
#[derive(Debug)]
struct Chunk {
    segs: Vec<Segment>,
    redrives: u32,
    attempt: u32,
}

impl Chunk {
    fn images(&self) -> u32 {
        self.segs.iter().map(|s| s.n).sum()
    }

    fn enter(&mut self, stage: Stage, at: f64) {
        self.segs.iter_mut().for_each(|s| s.enter(stage, at));
    }
}

/// A queue message: fresh images (one message each) or a re-driven chunk (one message).
#[derive(Debug)]
enum Item {
    Fresh(Segment),
    Redriven(Chunk),
}

impl Item {
    fn messages(&self) -> u64 {
        match self {
            Item::Fresh(s) => u64::from(s.n),
            Item::Redriven(_) => 1,
        }
    }
}

/// One Express execution: its chunks not yet started and those in its Map.
struct Workflow {
    waiting: VecDeque<Chunk>,
    running: u32,
    started: f64,
}

enum Event {
    Delivered(Segment),
    OrchestratorDone(Vec<Item>),
    WorkflowStart(usize),
    ChunkTry(usize, Chunk),
    ChunkDone(usize, Chunk),
    ChunkFinal(usize, Chunk),
    RedriveVisible(Chunk),
}

struct Timed {
    at: f64,
    seq: u64,
    event: Event,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timed {
    // Reversed: BinaryHeap pops the earliest (then the first scheduled).
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.total_cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

/// A token bucket. `reserve` serves FIFO by going into debt: the tokens are granted when the
/// debt is paid back, which is how a throttled client retrying behind others sees it.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: f64,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Self {
        Bucket { rate, burst, tokens: burst, last: 0.0 }
    }

    fn refill(&mut self, now: f64) {
        if now > self.last {
            self.tokens = (self.tokens + (now - self.last) * self.rate).min(self.burst);
            self.last = now;
        }
    }

    fn set_rate(&mut self, now: f64, rate: f64, burst: f64) {
        self.refill(now);
        self.rate = rate;
        self.burst = burst;
    }

    /// When `n` tokens would be there, counting from `now` at today's rate (nothing taken).
    fn when(&self, now: f64, n: f64) -> f64 {
        let dt = (now - self.last).max(0.0);
        let tokens = (self.tokens + dt * self.rate).min(self.burst.max(self.tokens));
        if tokens >= n { now } else { now + (n - tokens) / self.rate }
    }

    /// Takes `n` tokens at `now`; the time they are granted (`now` unless in debt).
    fn reserve(&mut self, now: f64, n: f64) -> f64 {
        self.refill(now);
        self.tokens -= n;
        if self.tokens >= 0.0 { now } else { now - self.tokens / self.rate }
    }
}

/// A function's concurrency ceiling under the scaling rate: `step` more than it ran one
/// period ago.
struct Scaling {
    history: VecDeque<u32>,
    len: usize,
}

impl Scaling {
    fn new(period_steps: usize) -> Self {
        Scaling { history: VecDeque::from(vec![0; period_steps.max(1)]), len: period_steps.max(1) }
    }

    /// Records this step's concurrency; the ceiling one period later follows from it.
    fn record(&mut self, in_flight: u32) {
        self.history.push_back(in_flight);
        while self.history.len() > self.len {
            self.history.pop_front();
        }
    }

    fn ceiling(&self, step: u32) -> u32 {
        step.saturating_add(self.history.front().copied().unwrap_or(0))
    }
}

struct Sim<'a> {
    c: &'a StackConfig,
    images: u64,
    rate: f64,
    k: u64,
    now: f64,
    seq: u64,
    events: BinaryHeap<Timed>,
    // Uploads not yet admitted, FIFO.
    clients: VecDeque<Segment>,
    arrived: u64,
    queue: VecDeque<(f64, Item)>,
    queued: u64,
    workflows: Vec<Option<Workflow>>,
    free_workflows: Vec<usize>,
    api: Bucket,
    s3_originals: Bucket,
    start_execution: Bucket,
    ddb_index: Bucket,
    ddb_table: Bucket,
    s3_renditions: Bucket,
    ddb_ceiling: f64,
    ddb_peak_by_step: Vec<f64>,
    ddb_used_step: f64,
    ingest_in_flight: f64,
    orchestrators: u32,
    processors: u32,
    scale_ingest: Scaling,
    scale_orchestrator: Scaling,
    scale_processor: Scaling,
    processor_ceiling: u32,
    saturated: [bool; Resource::ALL.len()],
    saturated_s: [f64; Resource::ALL.len()],
    finished: u64,
    failed: u64,
    last_final: f64,
    latencies: Vec<(f64, u32)>,
    spent: [f64; Stage::ALL.len()],
    throttled: u64,
    redriven: u64,
    express_timeouts: u64,
    peak_queue: u64,
    peak_processors: u32,
    samples: Vec<Sample>,
    sample_arrived: u64,
    sample_finished: u64,
    sample_failed: u64,
    /// Chunks whose writes wait for DynamoDB or S3, FIFO (they keep their Lambda slot).
    gate: VecDeque<(usize, Chunk)>,
    step_end: f64,
}

impl<'a> Sim<'a> {
    fn new(c: &'a StackConfig, images: u64, rate: f64) -> Self {
        let period_steps = (c.lambda_scale_period_s / c.step_s).round() as usize;
        let mut sim = Sim {
            c,
            images,
            rate,
            k: 0,
            now: 0.0,
            seq: 0,
            events: BinaryHeap::new(),
            clients: VecDeque::new(),
            arrived: 0,
            queue: VecDeque::new(),
            queued: 0,
            workflows: Vec::new(),
            free_workflows: Vec::new(),
            api: Bucket::new(c.api_rps.min(c.api_account_rps), c.api_burst.min(c.api_account_burst)),
            s3_originals: Bucket::new(0.0, 0.0),
            start_execution: Bucket::new(c.start_execution_per_s, c.start_execution_per_s),
            ddb_index: Bucket::new(0.0, 0.0),
            ddb_table: Bucket::new(0.0, 0.0),
            s3_renditions: Bucket::new(0.0, 0.0),
            ddb_ceiling: c.ddb_start_wcu.min(c.ddb_table_max_wcu),
            ddb_peak_by_step: Vec::new(),
            ddb_used_step: 0.0,
            ingest_in_flight: 0.0,
            orchestrators: 0,
            processors: 0,
            scale_ingest: Scaling::new(period_steps),
            scale_orchestrator: Scaling::new(period_steps),
            scale_processor: Scaling::new(period_steps),
            processor_ceiling: c.lambda_scale_step,
            saturated: [false; Resource::ALL.len()],
            saturated_s: [0.0; Resource::ALL.len()],
            finished: 0,
            failed: 0,
            last_final: 0.0,
            latencies: Vec::new(),
            spent: [0.0; Stage::ALL.len()],
            throttled: 0,
            redriven: 0,
            express_timeouts: 0,
            peak_queue: 0,
            peak_processors: 0,
            samples: Vec::new(),
            sample_arrived: 0,
            sample_finished: 0,
            sample_failed: 0,
            gate: VecDeque::new(),
            step_end: c.step_s,
        };
        // Every bucket starts full at its first rate.
        sim.capacities(0.0);
        for bucket in [&mut sim.s3_originals, &mut sim.s3_renditions, &mut sim.ddb_index, &mut sim.ddb_table] {
            bucket.tokens = bucket.burst;
        }
        sim
    }

    fn schedule(&mut self, at: f64, event: Event) {
        self.seq += 1;
        self.events.push(Timed { at, seq: self.seq, event });
    }

    fn saturate(&mut self, resource: Resource) {
        self.saturated[resource as usize] = true;
    }

    /// Lambda slots of the account not taken.
    fn account_free(&self) -> f64 {
        f64::from(self.c.lambda_concurrency)
            - self.ingest_in_flight.ceil()
            - f64::from(self.orchestrators)
            - f64::from(self.processors)
    }

    /// One step: capacities, arrivals, admissions, the step's events, batch releases, samples.
    fn step(&mut self) {
        let c = self.c;
        let t = self.k as f64 * c.step_s;
        let end = t + c.step_s;
        self.now = t;
        self.step_end = end;
        self.capacities(t);
        self.drain_gate(t);

        // Images due by the end of step k, on exact step boundaries (1e-6: no lost image to
        // rounding).
        let due = |k: u64| ((self.rate * k as f64 * c.step_s + 1e-6).floor() as u64).min(self.images);
        let arriving = due(self.k + 1) - due(self.k);
        if arriving > 0 {
            self.arrived += arriving;
            let n = u32::try_from(arriving).expect("fewer than 4 billion images per step");
            self.clients.push_back(Segment { n, born: t, stage: Stage::Upload, since: t, spent: [0.0; 9] });
        }
        self.admit(t);
        self.run_events(end);
        // The queue's depth before the poller takes this step's batches (after, a queue that
        // never backs up would always read 0).
        self.peak_queue = self.peak_queue.max(self.queued);
        self.release(t, end - 1e-9);
        self.run_events(end);

        self.scale_ingest.record(self.ingest_in_flight.ceil() as u32);
        self.scale_orchestrator.record(self.orchestrators);
        self.scale_processor.record(self.processors);
        for (seconds, hit) in self.saturated_s.iter_mut().zip(&mut self.saturated) {
            if std::mem::take(hit) {
                *seconds += c.step_s;
            }
        }
        self.ddb_peak_by_step.push(
            self.ddb_peak_by_step
                .last()
                .copied()
                .unwrap_or(0.0)
                .max((self.ddb_used_step / c.step_s).min(self.ddb_ceiling)),
        );
        self.ddb_used_step = 0.0;
        self.peak_queue = self.peak_queue.max(self.queued);
        self.peak_processors = self.peak_processors.max(self.processors);
        self.k += 1;
        let per_sample = (c.sample_s / c.step_s).round().max(1.0) as u64;
        if self.k.is_multiple_of(per_sample) || self.finished >= self.images {
            self.sample(end);
        }
    }

    /// This step's rates: S3 partitions, the table's on-demand ceiling, functions' scaling.
    /// Rates are per second, so each bucket holds a second's worth: a burst shorter than a
    /// second is not throttled.
    fn capacities(&mut self, t: f64) {
        let c = self.c;
        let doublings = (t / c.s3_split_period_s).floor().min(30.0) as i32;
        let partitions = (f64::from(c.s3_start_partitions) * 2f64.powi(doublings)).min(f64::from(c.s3_max_partitions));
        let s3 = partitions * c.s3_put_per_partition;
        self.s3_originals.set_rate(t, s3, s3);
        self.s3_renditions.set_rate(t, s3, s3);
        let back = (c.ddb_growth_period_s / c.step_s).round() as usize;
        // The peak served up to one growth period ago.
        let old_peak = self.ddb_peak_by_step.len().checked_sub(back.max(1)).map_or(0.0, |i| self.ddb_peak_by_step[i]);
        self.ddb_ceiling = c.ddb_start_wcu.max(2.0 * old_peak).min(c.ddb_table_max_wcu);
        self.ddb_table.set_rate(t, self.ddb_ceiling, self.ddb_ceiling);
        self.ddb_index.set_rate(t, c.ddb_index_images_per_s, c.ddb_index_images_per_s);
        self.processor_ceiling = self.scale_processor.ceiling(c.lambda_scale_step);
    }

    /// Admits waiting uploads as far as API Gateway, the ingest Lambda and S3 let them.
    fn admit(&mut self, t: f64) {
        let c = self.c;
        let waiting: u64 = self.clients.iter().map(|s| u64::from(s.n)).sum();
        let (requests_per_image, ingest_s_per_image, upload_s) = match c.upload_path {
            UploadPath::Direct => (1.0, c.direct_upload_s, c.direct_upload_s),
            UploadPath::Presigned => {
                (1.0 / f64::from(c.presign_batch), c.presign_s / f64::from(c.presign_batch), c.put_s)
            }
        };
        let slots = f64::from(self.scale_ingest.ceiling(c.lambda_scale_step))
            .min(self.account_free() + self.ingest_in_flight.ceil())
            .max(0.0);
        let by_lambda = if ingest_s_per_image > 0.0 { slots * c.step_s / ingest_s_per_image } else { f64::INFINITY };
        self.api.refill(t);
        let by_api = self.api.tokens.max(0.0) / requests_per_image;
        self.s3_originals.refill(t);
        let by_s3 = self.s3_originals.tokens.max(0.0);
        let admitted = (waiting as f64).min(by_lambda).min(by_api).min(by_s3).floor() as u64;
        if admitted < waiting {
            let limits = [
                (by_api, Resource::ApiGateway),
                (by_s3, Resource::S3Originals),
                (by_lambda, Resource::LambdaConcurrency),
            ];
            let (_, binding) = limits.into_iter().min_by(|a, b| a.0.total_cmp(&b.0)).expect("three limits");
            self.saturate(binding);
        }
        self.api.tokens -= admitted as f64 * requests_per_image;
        self.s3_originals.tokens -= admitted as f64;
        self.ingest_in_flight = admitted as f64 * ingest_s_per_image / c.step_s;
        let mut left = admitted;
        while left > 0 {
            let front = self.clients.front_mut().expect("admitted no more than waiting");
            let take = u32::try_from(left.min(u64::from(front.n))).expect("a segment's size");
            let mut seg = front.take(take);
            if front.n == 0 {
                self.clients.pop_front();
            }
            left -= u64::from(take);
            let stored = t.max(seg.born) + upload_s;
            seg.enter(Stage::Delivery, stored);
            self.schedule(stored + c.delivery_s, Event::Delivered(seg));
        }
    }

    fn run_events(&mut self, end: f64) {
        while self.events.peek().is_some_and(|e| e.at < end) {
            let Timed { at, event, .. } = self.events.pop().expect("peeked");
            self.now = at;
            match event {
                Event::Delivered(mut seg) => {
                    seg.enter(Stage::Batching, at);
                    self.enqueue(at, Item::Fresh(seg));
                }
                Event::RedriveVisible(mut chunk) => {
                    chunk.enter(Stage::Batching, at);
                    self.enqueue(at, Item::Redriven(chunk));
                }
                Event::OrchestratorDone(items) => {
                    self.orchestrators -= 1;
                    // The poller hands the next ripe batch to the orchestrator that just freed.
                    self.release(at, at);
                    self.start_workflows(at, items);
                }
                Event::WorkflowStart(id) => {
                    self.workflow(id).started = at;
                    self.fill(id, at);
                }
                Event::ChunkTry(id, chunk) => {
                    self.try_chunk(id, chunk, at);
                    self.fill(id, at);
                }
                Event::ChunkDone(id, chunk) => self.store(id, chunk, at),
                Event::ChunkFinal(id, chunk) => {
                    self.processors -= 1;
                    let started = self.workflow(id).started;
                    if at - started > self.c.express_cap_s {
                        self.express_timeouts += u64::from(chunk.images());
                    }
                    self.finalize(chunk, at, false);
                    self.workflow(id).running -= 1;
                    self.fill(id, at);
                }
            }
        }
    }

    fn enqueue(&mut self, at: f64, item: Item) {
        self.queued += item.messages();
        self.queue.push_back((at, item));
    }

    /// Releases batches that are ripe by `horizon` while an orchestrator may run; a batch
    /// released at `now` or when it ripened, whichever is later.
    fn release(&mut self, now: f64, horizon: f64) {
        let c = self.c;
        let batch = u64::from(c.batch_size);
        while let Some(&(head, _)) = self.queue.front() {
            // When this batch ripens: the batch-size-th message's arrival, or the window's end.
            let mut count = 0;
            let mut full_at = None;
            for (at, item) in &self.queue {
                count += item.messages();
                if count >= batch {
                    full_at = Some(*at);
                    break;
                }
            }
            let ripe = full_at.unwrap_or(f64::INFINITY).min(head + c.batch_window_s);
            if ripe > horizon + EPS {
                return;
            }
            let ceiling = self.scale_orchestrator.ceiling(c.lambda_scale_step).min(c.orchestrator_concurrency);
            if self.orchestrators >= ceiling {
                self.saturate(if self.orchestrators >= c.orchestrator_concurrency {
                    Resource::OrchestratorConcurrency
                } else {
                    Resource::LambdaScaling
                });
                return;
            }
            if self.account_free() < 1.0 {
                self.saturate(Resource::LambdaConcurrency);
                return;
            }
            let at = ripe.max(now);
            let mut items = Vec::new();
            let mut room = batch;
            while room > 0 {
                let Some((entered, item)) = self.queue.front_mut() else { break };
                if *entered > at + EPS {
                    break;
                }
                let entered = *entered;
                let mut taken = match item {
                    Item::Fresh(seg) if u64::from(seg.n) > room => {
                        Some(Item::Fresh(seg.take(u32::try_from(room).expect("room < a segment"))))
                    }
                    _ => None,
                }
                .unwrap_or_else(|| self.queue.pop_front().expect("a front").1);
                room -= taken.messages();
                self.queued -= taken.messages();
                let waited_for_batch = (ripe - entered).max(0.0);
                let segs: &mut [Segment] = match &mut taken {
                    Item::Fresh(seg) => std::slice::from_mut(seg),
                    Item::Redriven(chunk) => &mut chunk.segs,
                };
                for seg in segs {
                    seg.enter(Stage::QueueWait, entered + waited_for_batch.min(at - entered));
                    seg.enter(Stage::Orchestrator, at);
                }
                items.push(taken);
            }
            self.orchestrators += 1;
            self.schedule(at + c.orchestrator_s, Event::OrchestratorDone(items));
        }
    }

    /// Groups a batch as the orchestrator does (fresh images into chunks of `chunk_size`, a
    /// re-driven chunk as it is; chunks into workflows) and starts the workflows.
    fn start_workflows(&mut self, at: f64, items: Vec<Item>) {
        let c = self.c;
        let mut chunks = Vec::new();
        let mut open: Option<Chunk> = None;
        for item in items {
            match item {
                Item::Redriven(mut chunk) => {
                    chunk.attempt = 0;
                    chunks.push(chunk);
                }
                Item::Fresh(mut seg) => {
                    while seg.n > 0 {
                        let chunk = open.get_or_insert_with(|| Chunk { segs: Vec::new(), redrives: 0, attempt: 0 });
                        let room = c.chunk_size - chunk.images();
                        let part = seg.take(room.min(seg.n));
                        chunk.segs.push(part);
                        if chunk.images() == c.chunk_size {
                            chunks.extend(open.take());
                        }
                    }
                }
            }
        }
        chunks.extend(open);
        let mut chunks = chunks.into_iter().peekable();
        while chunks.peek().is_some() {
            let mut waiting: VecDeque<Chunk> = chunks.by_ref().take(c.chunks_per_workflow as usize).collect();
            waiting.iter_mut().for_each(|chunk| chunk.enter(Stage::WorkflowWait, at));
            let start = self.start_execution.reserve(at, 1.0);
            if start > at {
                self.saturate(Resource::StartExecution);
            }
            let workflow = Workflow { waiting, running: 0, started: start };
            let id = match self.free_workflows.pop() {
                Some(id) => {
                    self.workflows[id] = Some(workflow);
                    id
                }
                None => {
                    self.workflows.push(Some(workflow));
                    self.workflows.len() - 1
                }
            };
            self.schedule(start, Event::WorkflowStart(id));
        }
    }

    fn workflow(&mut self, id: usize) -> &mut Workflow {
        self.workflows[id].as_mut().expect("a live workflow")
    }

    /// Starts the workflow's next chunks while its Map has room; frees it when done.
    fn fill(&mut self, id: usize, at: f64) {
        loop {
            let map = self.c.map_concurrency;
            let wf = self.workflow(id);
            if wf.running >= map {
                return;
            }
            let Some(chunk) = wf.waiting.pop_front() else {
                if wf.running == 0 {
                    self.workflows[id] = None;
                    self.free_workflows.push(id);
                }
                return;
            };
            wf.running += 1;
            self.try_chunk(id, chunk, at);
        }
    }

    /// One invocation attempt: run it, or retry it later, or re-drive it, or fail it.
    fn try_chunk(&mut self, id: usize, mut chunk: Chunk, at: f64) {
        let c = self.c;
        let limit = f64::from(self.processor_ceiling).min(self.account_free() + f64::from(self.processors));
        if f64::from(self.processors) < limit {
            self.processors += 1;
            chunk.enter(Stage::Processing, at);
            let done = at + c.chunk_s(chunk.images());
            self.schedule(done, Event::ChunkDone(id, chunk));
            return;
        }
        self.throttled += 1;
        self.saturate(if self.processors >= self.processor_ceiling {
            Resource::LambdaScaling
        } else {
            Resource::LambdaConcurrency
        });
        chunk.enter(Stage::LambdaThrottle, at);
        if chunk.attempt < c.retries {
            chunk.attempt += 1;
            // The Retry's FULL jitter (uniform in [0, delay]), drawn from the golden-ratio
            // sequence: spread like random draws, and the same every run.
            let u = (self.throttled as f64 * 0.618_033_988_749_895).fract();
            let delay = RETRY.delay(chunk.attempt).as_secs_f64() * u;
            self.schedule(at + delay, Event::ChunkTry(id, chunk));
            return;
        }
        self.workflow(id).running -= 1;
        if chunk.redrives < c.max_redrives {
            chunk.redrives += 1;
            self.redriven += 1;
            self.schedule(at + c.redrive_delay_s, Event::RedriveVisible(chunk));
        } else {
            self.finalize(chunk, at, true);
        }
    }

    /// A chunk's writes at the end of its run: granted when DynamoDB and S3 have room, FIFO.
    fn store(&mut self, id: usize, mut chunk: Chunk, at: f64) {
        if self.gate.is_empty()
            && let Some(granted) = self.grant(chunk.images(), at)
        {
            if granted > at {
                chunk.enter(Stage::StoreThrottle, at);
            }
            self.schedule(granted, Event::ChunkFinal(id, chunk));
            return;
        }
        chunk.enter(Stage::StoreThrottle, at);
        self.gate.push_back((id, chunk));
    }

    /// Grants the chunks at the gate's head what this step's rates allow.
    fn drain_gate(&mut self, t: f64) {
        while let Some(images) = self.gate.front().map(|(_, chunk)| chunk.images()) {
            let Some(granted) = self.grant(images, t) else { return };
            let (id, chunk) = self.gate.pop_front().expect("a front");
            self.schedule(granted, Event::ChunkFinal(id, chunk));
        }
    }

    /// When a chunk's writes fit, if within this step (the tokens are then taken). Waiting
    /// across steps in the gate rather than in a bucket's debt keeps a rate that changes (the
    /// table's ceiling, S3's partitions) exact to a step.
    fn grant(&mut self, images: u32, at: f64) -> Option<f64> {
        let c = self.c;
        let n = f64::from(images);
        let needs = [
            (n, Resource::DynamoIndex),
            (n * c.ddb_units_per_image, Resource::DynamoTable),
            (n * f64::from(c.renditions), Resource::S3Renditions),
        ];
        let (granted, binding) = needs
            .iter()
            .map(|&(need, r)| (self.write_bucket(r).when(at, need), r))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .expect("three needs");
        if granted > at {
            self.saturate(binding);
        }
        if granted >= self.step_end {
            return None;
        }
        for (need, r) in needs {
            self.write_bucket(r).reserve(at, need);
        }
        self.ddb_used_step += n * c.ddb_units_per_image;
        Some(granted)
    }

    fn write_bucket(&mut self, r: Resource) -> &mut Bucket {
        match r {
            Resource::DynamoIndex => &mut self.ddb_index,
            Resource::DynamoTable => &mut self.ddb_table,
            _ => &mut self.s3_renditions,
        }
    }

    fn finalize(&mut self, chunk: Chunk, at: f64, failed: bool) {
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

    fn sample(&mut self, t: f64) {
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

    fn result(mut self) -> RunResult {
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

#[cfg(test)]
mod tests;
