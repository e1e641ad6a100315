//! Starting the workflows of one batch of messages: the step the Lambda and the local loop share
//! after [`group::collect`](crate::group::collect).

use crate::group::{Plan, collect};
use imgpipe_core::metrics::{self, Refusal};
use imgpipe_core::policy::MAX_RECEIVES;
use imgpipe_core::ports::{MetadataStore, WorkflowStarter};
use imgpipe_core::seams::ImageId;
use tracing::{error, info, warn};

/// Which messages of a batch were handed over, and which must come back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Indices of messages whose workflow started, or that needed none: acknowledge them.
    pub handed_over: Vec<usize>,
    /// Indices of messages whose workflow did not start, that are unreadable, or that name an
    /// original without a record: leave them on the queue (redelivered after their lease; the
    /// dead-letter queue keeps the poison ones).
    pub failed: Vec<usize>,
    /// Of `failed`, the messages naming an original without a record, with its key (to log
    /// with the message's receive count: see [`report_unrecorded`]).
    pub unrecorded: Vec<(usize, String)>,
}

/// Groups message bodies (in receive order) and starts one workflow per group, for the
/// originals that have a record (one consistent [`MetadataStore::existing`] per batch).
///
/// Why here: a record is written before its original (see `imgpipe_core::ports::EventSource`),
/// so an event whose object has no record is either early beyond any ordering we control or
/// not an accepted upload. Past this point the queue message is acknowledged and only the
/// workflow holds the object, which would skip it for good; here, refusing the message makes
/// the queue retry it (visibility timeout) a bounded number of times, then dead-letter it.
pub async fn dispatch<'a>(
    workflows: &dyn WorkflowStarter,
    metadata: &dyn MetadataStore,
    bodies: impl IntoIterator<Item = &'a str>,
) -> Dispatched {
    let collected = collect(bodies);
    let ids = collected.ids();
    let plan = match metadata.existing(&ids).await {
        Ok(found) => collected.plan(|o| ImageId::from_original_key(&o.key).is_some_and(|id| found.contains(&id))),
        Err(e) => {
            // Nothing can be checked: every message that names an original comes back later.
            warn!(error = %e, images = ids.len(), "records could not be looked up; the batch will be redelivered");
            let plan = collected.plan(|_| true);
            let mut failed: Vec<usize> = plan.workflows.iter().flat_map(|w| w.messages.iter().copied()).collect();
            failed.extend(plan.unreadable);
            failed.sort_unstable();
            failed.dedup();
            metrics::messages_refused(Refusal::Lookup, failed.len());
            return Dispatched { handed_over: plan.nothing_to_do, failed, unrecorded: Vec::new() };
        }
    };
    start(workflows, plan).await
}

async fn start(workflows: &dyn WorkflowStarter, plan: Plan) -> Dispatched {
    let mut dispatched =
        Dispatched { handed_over: plan.nothing_to_do, failed: plan.unreadable, unrecorded: plan.unrecorded };
    for &index in &dispatched.failed {
        warn!(message = index, "unreadable message left for the dead-letter queue");
    }
    metrics::messages_refused(Refusal::Unreadable, dispatched.failed.len());
    metrics::messages_refused(Refusal::Unrecorded, dispatched.unrecorded.len());
    dispatched.failed.extend(dispatched.unrecorded.iter().map(|&(index, _)| index));
    for workflow in plan.workflows {
        let batch_id = workflow.input.batch_id.clone();
        let images: usize = workflow.input.chunks.iter().map(Vec::len).sum();
        match workflows.start(workflow.input).await {
            Ok(()) => {
                info!(%batch_id, images, "workflow started");
                metrics::execution_started(images);
                dispatched.handed_over.extend(workflow.messages);
            }
            Err(e) => {
                warn!(%batch_id, error = %e, "workflow did not start; its messages will be redelivered");
                metrics::execution_start_failed();
                metrics::messages_refused(Refusal::Start, workflow.messages.len());
                dispatched.failed.extend(workflow.messages);
            }
        }
    }
    dispatched.handed_over.sort_unstable();
    dispatched.failed.sort_unstable();
    dispatched.failed.dedup();
    dispatched
}

/// Logs why a message is left on the queue: its original has no record. At the last receive
/// before the dead-letter queue (`MAX_RECEIVES`, the template's default), the reason is logged
/// as an error, so the dead letter can be explained from the logs by its message id.
pub fn report_unrecorded(message_id: &str, key: &str, receive_count: u32) {
    let reason = "no record for this original (not an accepted upload, or its record is gone)";
    if receive_count >= MAX_RECEIVES {
        error!(message_id, key, receive_count, reason, "message goes to the dead-letter queue");
    } else {
        warn!(message_id, key, receive_count, max_receives = MAX_RECEIVES, reason, "message left for redelivery");
    }
}
