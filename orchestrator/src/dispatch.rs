//! Starting the workflows of one batch of messages: the step the Lambda and the local loop share
//! after [`group`](crate::group::group).

use crate::group::group;
use imgpipe_core::ports::WorkflowStarter;
use tracing::{info, warn};

/// Which messages of a batch were handed over, and which must come back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Indices of messages whose workflow started, or that needed none: acknowledge them.
    pub handed_over: Vec<usize>,
    /// Indices of messages whose workflow did not start, or that are unreadable: leave them on
    /// the queue (redelivered after their lease; the dead-letter queue keeps the poison ones).
    pub failed: Vec<usize>,
}

/// Groups message bodies (in receive order) and starts one workflow per group.
pub async fn dispatch<'a>(workflows: &dyn WorkflowStarter, bodies: impl IntoIterator<Item = &'a str>) -> Dispatched {
    let plan = group(bodies);
    let mut dispatched = Dispatched { handed_over: plan.nothing_to_do, failed: plan.unreadable };
    for &index in &dispatched.failed {
        warn!(message = index, "unreadable message left for the dead-letter queue");
    }
    for workflow in plan.workflows {
        let batch_id = workflow.input.batch_id.clone();
        let images: usize = workflow.input.chunks.iter().map(Vec::len).sum();
        match workflows.start(workflow.input).await {
            Ok(()) => {
                info!(%batch_id, images, "workflow started");
                dispatched.handed_over.extend(workflow.messages);
            }
            Err(e) => {
                warn!(%batch_id, error = %e, "workflow did not start; its messages will be redelivered");
                dispatched.failed.extend(workflow.messages);
            }
        }
    }
    dispatched.handed_over.sort_unstable();
    dispatched.failed.sort_unstable();
    dispatched
}
