//! The processor Lambda: fetch a chunk's originals from S3, process them on the rayon pool,
//! store renditions in the processed bucket and the records in DynamoDB.

use adapters::aws::{DynamoMetadataStore, EmfMetrics, Env, S3ObjectStore, WatchedPresets, sdk_config, vars};
use imgpipe_core::Limits;
use imgpipe_core::seams::ChunkInput;
use lambda_runtime::{Error, LambdaEvent, service_fn, tracing};
use processor::chunk::{ChunkConfig, ChunkService};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let metrics = EmfMetrics::for_this_function()?;
    let config = sdk_config().await;
    let originals = Arc::new(S3ObjectStore::new(&config, Env.require(vars::ORIGINALS_BUCKET)?));
    let processed = Arc::new(S3ObjectStore::new(&config, Env.require(vars::PROCESSED_BUCKET)?));
    let metadata = Arc::new(DynamoMetadataStore::new(&config, Env.require(vars::METADATA_TABLE)?));
    let presets = WatchedPresets::from_env(&config, processor::lambda::recipes).await?;
    // One kernel thread per vCPU Lambda shows. It gives one vCPU's worth of time per 1,769 MB:
    // the template's default of 3538 MB is two whole ones.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let service = ChunkService::new(
        originals,
        metadata,
        presets.live(),
        Arc::new(pool),
        ChunkConfig { io_concurrency: 4 * threads, limits: Limits::default() },
    )
    .with_rendition_store(processed);
    let (service, presets) = (&service, &presets);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ChunkInput>| async move {
        presets.refresh().await;
        let invocation = processor::lambda::handle(service, event.payload);
        metrics.around(&event.context.request_id, invocation, &mut std::io::stdout()).await
    }))
    .await
}
