//! The orchestrator Lambda: SQS (S3 notifications) → Step Functions Express executions.

use adapters::aws::{EmfMetrics, sdk_config};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn, tracing};
use orchestrator::lambda::{Config, Orchestrator};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let metrics = EmfMetrics::for_this_function()?;
    let orchestrator = Orchestrator::new(&sdk_config().await, &Config::from_env()?);
    let orchestrator = &orchestrator;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let invocation = orchestrator.handle(event.payload);
        Ok::<SqsBatchResponse, Error>(
            metrics.around(&event.context.request_id, invocation, &mut std::io::stdout()).await,
        )
    }))
    .await
}
