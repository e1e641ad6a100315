//! The sweeper Lambda: on a schedule, re-drives records stuck PENDING or PROCESSING through the
//! ingest queue, and marks FAILED those out of re-drives (see `orchestrator::sweep`).

use adapters::aws::{DynamoMetadataStore, Env, SqsQueue, sdk_config, vars};
use imgpipe_core::policy::SWEEP;
use lambda_runtime::{Error, LambdaEvent, service_fn, tracing};
use orchestrator::sweep::Sweeper;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = sdk_config().await;
    let metadata = DynamoMetadataStore::new(&config, Env.require(vars::METADATA_TABLE)?);
    let queue = SqsQueue::new(&config, Env.require(vars::INGEST_QUEUE_URL)?, None);
    let sweeper = Sweeper::new(&metadata, &queue, Env.require(vars::ORIGINALS_BUCKET)?, SWEEP);
    let sweeper = &sweeper;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        orchestrator::lambda::sweep(sweeper).await.map_err(Error::from)
    }))
    .await
}
