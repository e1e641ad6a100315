//! The orchestrator Lambda: SQS (S3 notifications) → Step Functions Express executions.

use adapters::aws::{DynamoMetadataStore, EmfMetrics, Env, SfnWorkflows, sdk_config, vars};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let metrics = EmfMetrics::for_this_function()?;
    let config = sdk_config().await;
    let workflows = SfnWorkflows::new(&config, Env.require(vars::STATE_MACHINE_ARN)?);
    let metadata = DynamoMetadataStore::new(&config, Env.require(vars::METADATA_TABLE)?);
    let (workflows, metadata) = (&workflows, &metadata);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let invocation = orchestrator::lambda::handle(event.payload, workflows, metadata);
        Ok::<SqsBatchResponse, Error>(
            metrics.around(&event.context.request_id, invocation, &mut std::io::stdout()).await,
        )
    }))
    .await
}
