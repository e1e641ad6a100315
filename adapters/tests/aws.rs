//! The AWS adapters on moto (`IMGPIPE_MOTO_URL`): the same conformance suite as the local ones,
//! then what only AWS needs (retries on throttling, SlowDown and unprocessed batch items).

#[macro_use]
mod conformance;
mod faults;

use adapters::aws::{DynamoMetadataStore, S3ObjectStore, SqsQueue, emulator};
use aws_config::SdkConfig;
use faults::{Fault, Faults};
use imgpipe_core::ports::{MetadataStore, ObjectMeta, ObjectStore};
use std::time::Duration;

async fn config() -> SdkConfig {
    emulator::config(&emulator::url_from_env()).await
}

async fn objects_with(config: &SdkConfig) -> S3ObjectStore {
    let bucket = emulator::unique_name("objects");
    emulator::create_bucket(config, &bucket).await.unwrap();
    S3ObjectStore::new(config, bucket)
}

async fn objects() -> S3ObjectStore {
    objects_with(&config().await).await
}

async fn queue_with(max_receives: u32) -> SqsQueue {
    let config = config().await;
    let queues =
        emulator::create_queues(&config, &emulator::unique_name("queue"), Duration::from_secs(30), max_receives)
            .await
            .unwrap();
    SqsQueue::new(&config, queues.url, Some(queues.dead_letter_url))
}

async fn queue() -> SqsQueue {
    queue_with(imgpipe_core::policy::MAX_RECEIVES).await
}

async fn metadata() -> DynamoMetadataStore {
    let config = config().await;
    let table = emulator::unique_name("records");
    emulator::create_table(&config, &table).await.unwrap();
    DynamoMetadataStore::new(&config, table)
}

conformance_suite!(objects as objects, ((), Box::new(super::objects().await)));
conformance_suite!(queue as queue, ((), Box::new(super::queue().await)));
conformance_suite!(metadata as metadata, ((), Box::new(super::metadata().await)));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_dead_letters_after_max_receives() {
    conformance::queue::dead_letters_after_max_receives(&queue_with(2).await, 2).await;
}

/// moto runs no TTL: the test deletes what DynamoDB's TTL would (any item whose `expires_at` has
/// passed, whatever its status), then checks no final record went with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_records_survive_dynamodb_ttl() {
    let config = config().await;
    let table = emulator::unique_name("records");
    emulator::create_table(&config, &table).await.unwrap();
    let store = DynamoMetadataStore::new(&config, &table);
    conformance::metadata::final_records_survive_expiry(&store, |now| {
        let (config, table) = (config.clone(), table.clone());
        async move { emulator::expire_ttl(&config, &table, now).await.unwrap() }
    })
    .await;
}

#[tokio::test]
async fn s3_slow_down_and_5xx_are_retried_by_the_sdk() {
    // One fault on the put, one on the get: the SDK's retry takes each.
    let faults = Faults::new([Fault::status(503, "SlowDown"), Fault::status(500, "InternalError")]);
    let config = config().await;
    let store = S3ObjectStore::from_client(faults.s3(&config), objects_with(&config).await.bucket());
    let meta = ObjectMeta { content_type: "text/plain".into(), ..ObjectMeta::default() };
    let info = store.put("a/b.txt", bytes::Bytes::from_static(b"hello"), &meta).await.unwrap();
    assert_eq!(faults.injected(), 1);
    assert_eq!(store.get("a/b.txt").await.unwrap().1, info);
    assert_eq!(faults.injected(), 2, "both faults were served and retried past");
}

#[tokio::test]
async fn throttled_and_slowed_calls_that_outlast_the_retries_are_retryable_errors() {
    let faults = Faults::new([Fault::Persistent(503, "SlowDown")]);
    let config = config().await;
    let store = S3ObjectStore::from_client(faults.s3(&config), objects_with(&config).await.bucket());
    let error = store.get("missing").await.unwrap_err();
    assert!(
        matches!(&error, imgpipe_core::ports::StoreError::Backend(_)) && error.is_retryable(),
        "SlowDown must be retryable: {error:?}"
    );
}

/// Final records are conditional puts (never `BatchWriteItem`, which takes no condition): a
/// throttled one is retried by the SDK, and a second outcome for a final record, from another
/// attempt with other timings, leaves the first in place.
#[tokio::test]
async fn final_records_are_written_through_throttling_and_never_rewritten() {
    let faults = Faults::new([Fault::status(400, "ThrottlingException"), Fault::status(500, "InternalServerError")]);
    let config = config().await;
    let table = emulator::unique_name("records");
    emulator::create_table(&config, &table).await.unwrap();
    let plain = DynamoMetadataStore::new(&config, &table);
    let store = DynamoMetadataStore::from_client(faults.dynamodb(&config), table);
    let mut records = Vec::new();
    for i in 0..60 {
        let record = conformance::metadata::pending(1_700_000_000_000 + i);
        plain.accept(&record, "").await.unwrap();
        records.push(conformance::metadata::done(&record));
    }
    store.finish(&records).await.unwrap();
    assert_eq!(faults.injected(), 2, "both faults were served and retried past");
    let later: Vec<_> = records
        .iter()
        .map(|r| imgpipe_core::record::MetadataRecord { attempts: r.attempts + 1, finished_ms: Some(1), ..r.clone() })
        .collect();
    store.finish(&later).await.unwrap();
    for record in &records {
        assert_eq!(plain.get(record.id).await.unwrap().as_ref(), Some(record), "the first final record stays");
    }
    assert!(faults.batch_sizes().is_empty(), "no BatchWriteItem carries a final record");
}

/// `POST /v1/uploads` reserves up to 1,000 slots inside API Gateway's 30 s: they go 25 per
/// `BatchWriteItem`, several calls at once, with unprocessed items retried. The timings are
/// printed (`--no-capture`) for the record, beside 1,000 single `PutItem`s one after another
/// (what the route did before); they are not asserted, the machines are shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slots_are_reserved_in_batches_of_25_with_unprocessed_items_retried() {
    let faults = Faults::new([Fault::Unprocessed, Fault::Unprocessed, Fault::Unprocessed]);
    let config = config().await;
    let table = emulator::unique_name("records");
    emulator::create_table(&config, &table).await.unwrap();
    let store = DynamoMetadataStore::from_client(faults.dynamodb(&config), table);
    let slots: Vec<_> = (0..1000).map(|i| conformance::metadata::awaiting(1_700_000_000_000 + i)).collect();

    let started = std::time::Instant::now();
    store.reserve(&slots).await.unwrap();
    let batched = started.elapsed();

    let ids: Vec<_> = slots.iter().map(|s| s.id).collect();
    assert_eq!(store.existing(&ids).await.unwrap().len(), 1000, "every slot was written");
    for slot in [&slots[0], &slots[499], &slots[999]] {
        assert_eq!(store.get(slot.id).await.unwrap().as_ref(), Some(slot));
    }
    assert_eq!(faults.injected(), 3);
    let calls = faults.batch_sizes();
    assert!(calls.iter().all(|&n| n <= 25), "a BatchWriteItem carried more than 25 items: {calls:?}");
    assert_eq!(calls.len(), 40 + 3, "40 full batches, plus one retry per injected partial answer: {calls:?}");

    let one_by_one = metadata().await;
    let fresh: Vec<_> = (0..1000).map(|i| conformance::metadata::awaiting(1_700_000_000_000 + i)).collect();
    let started = std::time::Instant::now();
    for slot in &fresh {
        one_by_one.reserve(std::slice::from_ref(slot)).await.unwrap();
    }
    let sequential = started.elapsed();
    eprintln!(
        "1,000 slots on moto: {:.0} ms in {} BatchWriteItem calls; one slot per call, one call at a time: {:.0} ms",
        batched.as_secs_f64() * 1e3,
        calls.len(),
        sequential.as_secs_f64() * 1e3
    );
}
