//! Creating the stack's resources on an AWS emulator (moto): what `infra/template.yaml`
//! declares, for tests and local experiments. Names are the caller's, so parallel tests do not
//! collide; the shapes (key schema, GSI, redrive, notifications) are the template's, which a
//! test checks.

use super::dynamo::{BY_STATUS, CREATED_KEY, STATUS_SHARD};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
    S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::time::Duration;

/// Any error of the set-up calls.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The environment variable that holds the test emulator's URL (`./scripts/test` starts moto
/// and sets it).
pub const URL_VAR: &str = "IMGPIPE_MOTO_URL";

/// The emulator the tests use, from [`URL_VAR`]; panics with how to start one (a test without
/// it must fail, never skip).
pub fn url_from_env() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{URL_VAR} is not set: this test needs a moto server; run ./scripts/test, or start one with \
             ./scripts/moto-server and export the URL it prints"
        )
    })
}

/// A resource name no other test uses: `prefix-<ulid>`, lowercase (S3 bucket rules).
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::generate().to_string().to_lowercase())
}

/// An SDK configuration for the emulator at `endpoint`: region `us-east-1`, dummy credentials.
pub async fn config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "emulator"))
        .load()
        .await
}

/// Creates a private bucket.
pub async fn create_bucket(config: &SdkConfig, name: &str) -> Result<(), Error> {
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build());
    s3.create_bucket().bucket(name).send().await?;
    Ok(())
}

/// The ingest queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct Queues {
    /// The ingest queue's URL.
    pub url: String,
    /// Its ARN (for the bucket's notification configuration).
    pub arn: String,
    /// The dead-letter queue's URL.
    pub dead_letter_url: String,
}

/// Creates `name` and `name-dlq`, the first redriving to the second after `max_receives`.
pub async fn create_queues(
    config: &SdkConfig,
    name: &str,
    visibility: Duration,
    max_receives: u32,
) -> Result<Queues, Error> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let dead_letter_url =
        sqs.create_queue().queue_name(format!("{name}-dlq")).send().await?.queue_url.unwrap_or_default();
    let dead_letter_arn = queue_arn(&sqs, &dead_letter_url).await?;
    let redrive = serde_json::json!({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receives});
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, visibility.as_secs().to_string())
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await?
        .queue_url
        .unwrap_or_default();
    let arn = queue_arn(&sqs, &url).await?;
    Ok(Queues { url, arn, dead_letter_url })
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, Error> {
    let attributes =
        sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::QueueArn).send().await?;
    Ok(attributes.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).cloned().unwrap_or_default())
}

/// Makes `bucket` send `s3:ObjectCreated:*` events for keys under `prefix` to the queue `queue_arn`.
pub async fn notify_queue(config: &SdkConfig, bucket: &str, queue_arn: &str, prefix: &str) -> Result<(), Error> {
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build());
    let filter = NotificationConfigurationFilter::builder()
        .key(
            S3KeyFilter::builder()
                .filter_rules(FilterRule::builder().name(FilterRuleName::Prefix).value(prefix).build())
                .build(),
        )
        .build();
    let queue =
        QueueConfiguration::builder().queue_arn(queue_arn).events(Event::S3ObjectCreated).filter(filter).build()?;
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(NotificationConfiguration::builder().queue_configurations(queue).build())
        .send()
        .await?;
    Ok(())
}

/// Creates the metadata table as the template declares it: key `id`, GSI [`BY_STATUS`] on
/// [`STATUS_SHARD`] and [`CREATED_KEY`], projecting the keys and `error`.
pub async fn create_table(config: &SdkConfig, name: &str) -> Result<(), Error> {
    let dynamo = aws_sdk_dynamodb::Client::new(config);
    let attribute = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(kind).build()
    };
    let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
    let index = GlobalSecondaryIndex::builder()
        .index_name(BY_STATUS)
        .key_schema(key(STATUS_SHARD, KeyType::Hash)?)
        .key_schema(key(CREATED_KEY, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::Include).non_key_attributes("error").build())
        .build()?;
    dynamo
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("id", ScalarAttributeType::S)?)
        .attribute_definitions(attribute(STATUS_SHARD, ScalarAttributeType::N)?)
        .attribute_definitions(attribute(CREATED_KEY, ScalarAttributeType::S)?)
        .key_schema(key("id", KeyType::Hash)?)
        .global_secondary_indexes(index)
        .send()
        .await?;
    Ok(())
}

/// The table's TTL attribute (the template's `TimeToLiveSpecification`).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Does what DynamoDB's TTL does and moto does not: deletes every item of `table` whose
/// [`TTL_ATTRIBUTE`] (a Number of Unix seconds) is before `now_secs`, whatever else it holds
/// (status included). Returns how many items it deleted.
pub async fn expire_ttl(config: &SdkConfig, table: &str, now_secs: u64) -> Result<usize, Error> {
    let dynamo = aws_sdk_dynamodb::Client::new(config);
    let mut pages = dynamo
        .scan()
        .table_name(table)
        .consistent_read(true)
        .projection_expression("id, #ttl")
        .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
        .into_paginator()
        .send();
    let mut expired = Vec::new();
    while let Some(page) = pages.next().await {
        for item in page?.items() {
            let due = item.get(TTL_ATTRIBUTE).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
            if due.is_some_and(|due| due < now_secs)
                && let Some(id) = item.get("id")
            {
                expired.push(id.clone());
            }
        }
    }
    for id in &expired {
        dynamo.delete_item().table_name(table).key("id", id.clone()).send().await?;
    }
    Ok(expired.len())
}
