//! The processor: Map waves, Lambda slots (retry, re-drive, fail) and the chunk's writes.

use super::event::Event;
use super::flow::Chunk;
use super::limits::Bucket;
use super::resource::Resource;
use super::sim::Sim;
use super::stage::Stage;
use imgpipe_core::policy::RETRY;

impl Sim<'_> {
    /// Starts the workflow's next chunks while its Map has room; frees it when done.
    pub(super) fn fill(&mut self, id: usize, at: f64) {
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
    pub(super) fn try_chunk(&mut self, id: usize, mut chunk: Chunk, at: f64) {
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
    pub(super) fn store(&mut self, id: usize, mut chunk: Chunk, at: f64) {
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
    pub(super) fn drain_gate(&mut self, t: f64) {
        while let Some(images) = self.gate.front().map(|(_, chunk)| chunk.images()) {
            let Some(granted) = self.grant(images, t) else { return };
            let (id, chunk) = self.gate.pop_front().expect("a front");
            self.schedule(granted, Event::ChunkFinal(id, chunk));
        }
    }

    /// When a chunk's writes fit, if within this step (the tokens are then taken). Waiting
    /// across steps in the gate rather than in a bucket's debt keeps a rate that changes (the
    /// table's ceiling, S3's partitions) exact to a step.
    pub(super) fn grant(&mut self, images: u32, at: f64) -> Option<f64> {
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

    pub(super) fn write_bucket(&mut self, r: Resource) -> &mut Bucket {
        match r {
            Resource::DynamoIndex => &mut self.ddb_index,
            Resource::DynamoTable => &mut self.ddb_table,
            _ => &mut self.s3_renditions,
        }
    }
}
