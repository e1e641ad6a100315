//! What moves through the model: segments of images, chunks, queue items and workflows.

use super::stage::Stage;
use std::collections::VecDeque;

/// Images that arrived in one step (or part of them), moving together.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    pub(super) n: u32,
    pub(super) born: f64,
    pub(super) stage: Stage,
    pub(super) since: f64,
    pub(super) spent: [f64; Stage::ALL.len()],
}

impl Segment {
    /// Leaves the current stage at `at` for `stage`.
    pub(super) fn enter(&mut self, stage: Stage, at: f64) {
        self.spent[self.stage as usize] += at - self.since;
        self.stage = stage;
        self.since = at;
    }

    /// Splits off the first `n` images.
    pub(super) fn take(&mut self, n: u32) -> Segment {
        self.n -= n;
        Segment { n, ..self.clone() }
    }
}

/// One processor invocation's images.
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) segs: Vec<Segment>,
    pub(super) redrives: u32,
    pub(super) attempt: u32,
}

impl Chunk {
    pub(super) fn images(&self) -> u32 {
        self.segs.iter().map(|s| s.n).sum()
    }

    pub(super) fn enter(&mut self, stage: Stage, at: f64) {
        self.segs.iter_mut().for_each(|s| s.enter(stage, at));
    }
}

/// A queue message: fresh images (one message each) or a re-driven chunk (one message).
#[derive(Debug)]
pub(super) enum Item {
    Fresh(Segment),
    Redriven(Chunk),
}

impl Item {
    pub(super) fn messages(&self) -> u64 {
        match self {
            Item::Fresh(s) => u64::from(s.n),
            Item::Redriven(_) => 1,
        }
    }
}

/// One Express execution: its chunks not yet started and those in its Map.
pub(super) struct Workflow {
    pub(super) waiting: VecDeque<Chunk>,
    pub(super) running: u32,
    pub(super) started: f64,
}
