//! The model's state and its time step: capacities, arrivals, events, batch releases, samples.
//! The stages' logic lives beside it (`upload`, `orchestrate`, `process`, `tally`).

use super::config::StackConfig;
use super::event::{Event, Timed};
use super::flow::{Chunk, Item, Segment, Workflow};
use super::limits::{Bucket, Scaling};
use super::resource::Resource;
use super::result::Sample;
use super::stage::Stage;
use std::collections::{BinaryHeap, VecDeque};

/// Slack when comparing times that are sums of the same delays in another order.
pub(super) const EPS: f64 = 1e-9;

/// One burst in progress: every queue, limit and counter of the model.
pub(super) struct Sim<'a> {
    pub(super) c: &'a StackConfig,
    pub(super) images: u64,
    pub(super) rate: f64,
    pub(super) k: u64,
    pub(super) now: f64,
    pub(super) seq: u64,
    pub(super) events: BinaryHeap<Timed>,
    // Uploads not yet admitted, FIFO.
    pub(super) clients: VecDeque<Segment>,
    pub(super) arrived: u64,
    pub(super) queue: VecDeque<(f64, Item)>,
    pub(super) queued: u64,
    pub(super) workflows: Vec<Option<Workflow>>,
    pub(super) free_workflows: Vec<usize>,
    pub(super) api: Bucket,
    pub(super) s3_originals: Bucket,
    pub(super) start_execution: Bucket,
    pub(super) ddb_index: Bucket,
    pub(super) ddb_table: Bucket,
    pub(super) s3_renditions: Bucket,
    pub(super) ddb_ceiling: f64,
    pub(super) ddb_peak_by_step: Vec<f64>,
    pub(super) ddb_used_step: f64,
    pub(super) ingest_in_flight: f64,
    pub(super) orchestrators: u32,
    pub(super) processors: u32,
    pub(super) scale_ingest: Scaling,
    pub(super) scale_orchestrator: Scaling,
    pub(super) scale_processor: Scaling,
    pub(super) processor_ceiling: u32,
    pub(super) saturated: [bool; Resource::ALL.len()],
    pub(super) saturated_s: [f64; Resource::ALL.len()],
    pub(super) finished: u64,
    pub(super) failed: u64,
    pub(super) last_final: f64,
    pub(super) latencies: Vec<(f64, u32)>,
    pub(super) spent: [f64; Stage::ALL.len()],
    pub(super) throttled: u64,
    pub(super) redriven: u64,
    pub(super) express_timeouts: u64,
    pub(super) peak_queue: u64,
    pub(super) peak_processors: u32,
    pub(super) samples: Vec<Sample>,
    pub(super) sample_arrived: u64,
    pub(super) sample_finished: u64,
    pub(super) sample_failed: u64,
    /// Chunks whose writes wait for DynamoDB or S3, FIFO (they keep their Lambda slot).
    pub(super) gate: VecDeque<(usize, Chunk)>,
    pub(super) step_end: f64,
}

impl<'a> Sim<'a> {
    pub(super) fn new(c: &'a StackConfig, images: u64, rate: f64) -> Self {
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

    pub(super) fn schedule(&mut self, at: f64, event: Event) {
        self.seq += 1;
        self.events.push(Timed { at, seq: self.seq, event });
    }

    pub(super) fn saturate(&mut self, resource: Resource) {
        self.saturated[resource as usize] = true;
    }

    /// Lambda slots of the account not taken.
    pub(super) fn account_free(&self) -> f64 {
        f64::from(self.c.lambda_concurrency)
            - self.ingest_in_flight.ceil()
            - f64::from(self.orchestrators)
            - f64::from(self.processors)
    }

    /// One step: capacities, arrivals, admissions, the step's events, batch releases, samples.
    pub(super) fn step(&mut self) {
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
    pub(super) fn capacities(&mut self, t: f64) {
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

    pub(super) fn run_events(&mut self, end: f64) {
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

    pub(super) fn enqueue(&mut self, at: f64, item: Item) {
        self.queued += item.messages();
        self.queue.push_back((at, item));
    }

    pub(super) fn workflow(&mut self, id: usize) -> &mut Workflow {
        self.workflows[id].as_mut().expect("a live workflow")
    }
}
