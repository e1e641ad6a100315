//! The limits of the stack the model can run into, for the bottleneck.

/// A limit the model can run into; the one saturated longest is a run's bottleneck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// API Gateway's throttle.
    ApiGateway,
    /// S3 PUTs of originals (partitions of the originals bucket).
    S3Originals,
    /// The event source's MaximumConcurrency.
    OrchestratorConcurrency,
    /// StartExecution's token bucket.
    StartExecution,
    /// The account's Lambda concurrency.
    LambdaConcurrency,
    /// A function's scaling rate.
    LambdaScaling,
    /// DynamoDB's by-status index partitions.
    DynamoIndex,
    /// DynamoDB's table throughput (its on-demand ceiling).
    DynamoTable,
    /// S3 PUTs of renditions (partitions of the processed bucket).
    S3Renditions,
}

impl Resource {
    pub(super) const ALL: [Resource; 9] = [
        Resource::ApiGateway,
        Resource::S3Originals,
        Resource::OrchestratorConcurrency,
        Resource::StartExecution,
        Resource::LambdaConcurrency,
        Resource::LambdaScaling,
        Resource::DynamoIndex,
        Resource::DynamoTable,
        Resource::S3Renditions,
    ];

    /// A short name for tables.
    pub fn label(self) -> &'static str {
        match self {
            Resource::ApiGateway => "API Gateway throttle",
            Resource::S3Originals => "S3 PUTs (originals)",
            Resource::OrchestratorConcurrency => "orchestrator concurrency",
            Resource::StartExecution => "StartExecution rate",
            Resource::LambdaConcurrency => "Lambda account concurrency",
            Resource::LambdaScaling => "Lambda scaling rate",
            Resource::DynamoIndex => "DynamoDB index partitions",
            Resource::DynamoTable => "DynamoDB table throughput",
            Resource::S3Renditions => "S3 PUTs (renditions)",
        }
    }
}
