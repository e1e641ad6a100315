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
//!
//! The modules, in the order an image meets them: [`config`](StackConfig) (the parameters),
//! `flow` (segments, chunks, workflows), `event` and `limits` (the event queue, token buckets,
//! scaling), `sim` (the state and the time step), `upload`, `orchestrate`, `process` (each
//! stage's logic), `tally` (final records, samples, the [`RunResult`]), `run` ([`run_one`]),
//! and the report with its figures (`report`, `plot`).

mod config;
mod error;
mod event;
mod flow;
mod limits;
mod orchestrate;
mod plot;
mod process;
mod report;
mod resource;
mod result;
mod run;
mod sim;
mod stage;
mod tally;
mod upload;

pub use config::{StackConfig, UploadPath};
pub use error::SimulateError;
pub use report::SimReport;
pub use resource::Resource;
pub use result::{Latency, RunResult, Sample};
pub use run::run_one;
pub use stage::Stage;

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

#[cfg(test)]
mod tests;
