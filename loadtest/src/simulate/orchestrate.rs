//! The SQS event source's batches and the orchestrator: chunks, workflows, StartExecution.

use super::event::Event;
use super::flow::{Chunk, Item, Segment, Workflow};
use super::resource::Resource;
use super::sim::{EPS, Sim};
use super::stage::Stage;
use std::collections::VecDeque;

impl Sim<'_> {
    /// Releases batches that are ripe by `horizon` while an orchestrator may run; a batch
    /// released at `now` or when it ripened, whichever is later.
    pub(super) fn release(&mut self, now: f64, horizon: f64) {
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
    pub(super) fn start_workflows(&mut self, at: f64, items: Vec<Item>) {
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
}
