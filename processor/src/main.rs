//! The processor Lambda: fetch a chunk's originals from S3, process them on the rayon pool,
//! store renditions in the processed bucket and the records in DynamoDB.

use adapters::aws::{EmfMetrics, WatchedPresets, sdk_config};
use imgpipe_core::seams::ChunkInput;
use lambda_runtime::{Error, LambdaEvent, service_fn, tracing};
use processor::lambda::{Config, recipes, service};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let metrics = EmfMetrics::for_this_function()?;
    let sdk = sdk_config().await;
    let config = Config::from_env()?;
    let presets = WatchedPresets::from_env(&sdk, recipes).await?;
    let service = service(&sdk, &config, presets.live())?;
    let (service, presets) = (&service, &presets);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ChunkInput>| async move {
        presets.refresh().await;
        let invocation = processor::lambda::handle(service, event.payload);
        metrics.around(&event.context.request_id, invocation, &mut std::io::stdout()).await
    }))
    .await
}
