//! The timed events of the model and their order (earliest first, then first scheduled).

use super::flow::{Chunk, Item, Segment};
use std::cmp::Ordering;

/// What happens at a point in time.
pub(super) enum Event {
    Delivered(Segment),
    OrchestratorDone(Vec<Item>),
    WorkflowStart(usize),
    ChunkTry(usize, Chunk),
    ChunkDone(usize, Chunk),
    ChunkFinal(usize, Chunk),
    RedriveVisible(Chunk),
}

/// An event with its time and a sequence number that breaks ties.
pub(super) struct Timed {
    pub(super) at: f64,
    pub(super) seq: u64,
    pub(super) event: Event,
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
