//! The sweeper Lambda: on a schedule, re-drives records stuck PENDING or PROCESSING through the
//! ingest queue, and marks FAILED those out of re-drives (see `orchestrator::sweep`).

use adapters::aws::sdk_config;
use imgpipe_core::policy::SWEEP;
use lambda_runtime::{Error, LambdaEvent, service_fn, tracing};
use orchestrator::lambda::{SweeperClients, SweeperConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let clients = SweeperClients::new(&sdk_config().await, &SweeperConfig::from_env()?);
    let sweeper = clients.sweeper(SWEEP);
    let sweeper = &sweeper;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        orchestrator::lambda::sweep(sweeper).await.map_err(Error::from)
    }))
    .await
}
