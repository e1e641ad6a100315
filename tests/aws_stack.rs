//! The serverless path end to end on an AWS emulator (moto at `IMGPIPE_MOTO_URL`):
//!
//! 1. the buckets, queues, table and notification are created from what `infra/template.yaml`
//!    declares (read here, so the two cannot drift), the state machine from its ASL file;
//! 2. uploads go through the ingest `Router` (as the Lambda serves it), direct and presigned;
//! 3. the real S3 notifications are received from SQS and fed to the orchestrator handler as an
//!    `SqsEvent`, acknowledging what it did not report as failed (as the event source does);
//! 4. moto runs the real state machine; its Lambda only echoes, so each execution's output is
//!    the exact payload every processor invocation would get;
//! 5. the processor handler is invoked with each of those payloads;
//! 6. renditions, records, queue and dead-letter queue are checked;
//! 7. DynamoDB's TTL, which moto does not run, is done by the test (every item whose
//!    `expires_at` has passed is deleted, whatever its status): no final record may go with it.

mod support;

use adapters::aws::{DynamoMetadataStore, S3ObjectStore, SqsQueue, dynamo, emulator};
use aws_config::SdkConfig;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use imgpipe_core::ports::{
    EventQueue, Message, MetadataStore, ObjectInfo, ObjectMeta, ObjectStore, QueueStats, StoreError,
};
use imgpipe_core::record::{MetadataRecord, Source, now_ms};
use imgpipe_core::seams::{ChunkInput, ImageId, Status};
use imgpipe_core::{ErrorKind, Limits, PresetCatalog};
use ingest::IngestConfig;
use orchestrator::lambda::Orchestrator;
use processor::chunk::{ChunkService, Recipes};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const API_KEY: &str = "stack-test-key";
/// moto's Lambda echoes its input; any function ARN will do.
const PROCESSOR_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:processor";

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// What the template declares that the emulated stack must share.
struct Declared {
    max_receives: u32,
    visibility: Duration,
    notify_prefix: String,
    definition: String,
}

/// Reads `infra/template.yaml` and checks it against the names the code uses.
fn declared() -> Declared {
    let text = std::fs::read_to_string(repo("infra/template.yaml")).unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let resource = |name: &str| &template["Resources"][name]["Properties"];
    let max_receives = template["Parameters"]["MaxReceiveCount"]["Default"].as_u64().unwrap() as u32;
    assert_eq!(max_receives, imgpipe_core::policy::MAX_RECEIVES, "the template's MaxReceiveCount default");
    let queue = resource("IngestQueue");
    let visibility = Duration::from_secs(queue["VisibilityTimeout"].as_u64().unwrap());
    let table = resource("MetadataTable");
    let index = &table["GlobalSecondaryIndexes"][0];
    assert_eq!(index["IndexName"].as_str(), Some(dynamo::BY_STATUS));
    assert_eq!(index["KeySchema"][0]["AttributeName"].as_str(), Some(dynamo::STATUS_SHARD));
    assert_eq!(index["KeySchema"][1]["AttributeName"].as_str(), Some(dynamo::CREATED_KEY));
    assert_eq!(index["Projection"]["ProjectionType"].as_str(), Some("INCLUDE"));
    assert_eq!(index["Projection"]["NonKeyAttributes"][0].as_str(), Some("error"));
    assert_eq!(table["KeySchema"][0]["AttributeName"].as_str(), Some("id"));
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"].as_str(), Some("expires_at"));
    let notification = &resource("OriginalsBucket")["NotificationConfiguration"]["QueueConfigurations"][0];
    assert_eq!(notification["Event"].as_str(), Some("s3:ObjectCreated:*"));
    let notify_prefix = notification["Filter"]["S3Key"]["Rules"][0]["Value"].as_str().unwrap().to_owned();
    assert_eq!(notify_prefix, imgpipe_core::seams::ORIGINALS_PREFIX);
    let machine = resource("ProcessImagesStateMachine");
    assert_eq!(machine["Type"].as_str(), Some("EXPRESS"));
    let definition = machine["DefinitionUri"].as_str().unwrap();
    let definition = std::fs::read_to_string(repo("infra").join(definition)).unwrap();
    Declared { max_receives, visibility, notify_prefix, definition }
}

/// One emulated stack, with names of its own.
struct Stack {
    config: SdkConfig,
    originals: S3ObjectStore,
    processed: S3ObjectStore,
    queue: SqsQueue,
    queue_url: String,
    metadata: DynamoMetadataStore,
    table: String,
    state_machine_arn: String,
    declared: Declared,
}

impl Stack {
    async fn create() -> Stack {
        let declared = declared();
        let config = emulator::config(&emulator::url_from_env()).await;
        let (originals, processed, table) =
            (emulator::unique_name("originals"), emulator::unique_name("processed"), emulator::unique_name("records"));
        emulator::create_bucket(&config, &originals).await.unwrap();
        emulator::create_bucket(&config, &processed).await.unwrap();
        emulator::create_table(&config, &table).await.unwrap();
        let queues = emulator::create_queues(
            &config,
            &emulator::unique_name("ingest"),
            declared.visibility,
            declared.max_receives,
        )
        .await
        .unwrap();
        emulator::notify_queue(&config, &originals, &queues.arn, &declared.notify_prefix).await.unwrap();
        let definition = declared
            .definition
            .replace("${MetadataTable}", &table)
            .replace("${ProcessorFunctionArn}", PROCESSOR_ARN)
            .replace("${IngestQueueUrl}", &queues.url);
        let sfn = aws_sdk_sfn::Client::new(&config);
        let machine = sfn
            .create_state_machine()
            .name(emulator::unique_name("process-images"))
            .definition(definition)
            .role_arn("arn:aws:iam::123456789012:role/state-machine")
            .r#type(aws_sdk_sfn::types::StateMachineType::Express)
            .send()
            .await
            .unwrap();
        Stack {
            originals: S3ObjectStore::new(&config, &originals),
            processed: S3ObjectStore::new(&config, &processed),
            queue: SqsQueue::new(&config, &queues.url, Some(queues.dead_letter_url.clone())),
            queue_url: queues.url,
            metadata: DynamoMetadataStore::new(&config, &table),
            table,
            state_machine_arn: machine.state_machine_arn,
            config,
            declared,
        }
    }

    /// The ingest Lambda's configuration for this stack.
    fn ingest_config(&self) -> ingest::aws::Config {
        ingest::aws::Config {
            originals_bucket: self.originals.bucket().to_owned(),
            processed_bucket: self.processed.bucket().to_owned(),
            metadata_table: self.table.clone(),
            api_key: API_KEY.into(),
        }
    }

    /// The orchestrator Lambda's clients for this stack, starting `state_machine_arn`.
    fn orchestrator(&self, state_machine_arn: impl Into<String>) -> Orchestrator {
        let config = orchestrator::lambda::Config {
            state_machine_arn: state_machine_arn.into(),
            metadata_table: self.table.clone(),
        };
        Orchestrator::new(&self.config, &config)
    }

    /// Serves the ingest Router as the Lambda builds it, on a loopback port.
    async fn serve_ingest(&self) -> String {
        self.serve_ingest_with(Arc::new(self.originals.clone())).await
    }

    /// Serves the ingest Router with `originals` as its object store.
    async fn serve_ingest_with(&self, originals: Arc<dyn ObjectStore>) -> String {
        let mut state = ingest::aws::state(&self.config, &self.ingest_config(), PresetCatalog::builtin().into());
        // What the test puts in front of S3 (e.g. a check that the record came first).
        state.objects = originals;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, ingest::router(state)).await.unwrap() });
        format!("http://{addr}")
    }

    /// The processor's chunk service as the Lambda builds it (two kernel threads), with the
    /// built-in presets.
    fn chunk_service(&self) -> ChunkService {
        let recipes = Recipes::new(&PresetCatalog::builtin(), |logo| std::fs::read(logo)).unwrap();
        let config = processor::lambda::Config {
            threads: 2,
            ..processor::lambda::Config::new(self.originals.bucket(), self.processed.bucket(), &self.table)
        };
        processor::lambda::service(&self.config, &config, Arc::new(recipes)).unwrap()
    }

    /// Receives until `wanted` ObjectCreated notifications (and whatever else is there) arrived.
    async fn receive_events(&self, wanted: usize) -> Vec<Message> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut messages: Vec<Message> = Vec::new();
        while messages.iter().filter(|m| m.body.contains("ObjectCreated")).count() < wanted {
            assert!(Instant::now() < deadline, "only {} notifications arrived", messages.len());
            messages.extend(self.queue.receive(10, Duration::from_secs(60)).await.unwrap());
        }
        messages
    }

    /// Makes received messages visible again now (instead of after the visibility timeout).
    async fn release(&self, messages: &[&Message]) {
        let sqs = aws_sdk_sqs::Client::new(&self.config);
        for message in messages {
            sqs.change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(&message.receipt)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
    }

    /// Outputs of every execution of the state machine, once each has finished.
    async fn execution_outputs(&self) -> Vec<Value> {
        let sfn = aws_sdk_sfn::Client::new(&self.config);
        let listed = sfn.list_executions().state_machine_arn(&self.state_machine_arn).send().await.unwrap();
        let mut outputs = Vec::new();
        for execution in listed.executions() {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let described = sfn.describe_execution().execution_arn(execution.execution_arn()).send().await.unwrap();
                match described.status() {
                    aws_sdk_sfn::types::ExecutionStatus::Running => {
                        assert!(Instant::now() < deadline, "execution still running");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    aws_sdk_sfn::types::ExecutionStatus::Succeeded => {
                        outputs.push(serde_json::from_str(described.output().unwrap()).unwrap());
                        break;
                    }
                    other => panic!("execution ended {other:?}: {:?}", described.error()),
                }
            }
        }
        outputs
    }
}

/// Delivers messages to the orchestrator handler as the SQS event source does: one `SqsEvent`,
/// then deletes every message the response does not list as failed.
async fn deliver(stack: &Stack, orchestrator: &Orchestrator, messages: &[Message]) -> SqsBatchResponse {
    let event = SqsEvent {
        records: messages
            .iter()
            .map(|m| SqsMessage {
                message_id: Some(m.id.clone()),
                receipt_handle: Some(m.receipt.clone()),
                body: Some(m.body.clone()),
                event_source: Some("aws:sqs".into()),
                aws_region: Some("us-east-1".into()),
                ..SqsMessage::default()
            })
            .collect(),
    };
    let response = orchestrator.handle(event).await;
    let failed: BTreeSet<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    let done: Vec<String> =
        messages.iter().filter(|m| !failed.contains(m.id.as_str())).map(|m| m.receipt.clone()).collect();
    stack.queue.ack(&done).await.unwrap();
    response
}

/// Uploads `bytes` through `POST /v1/images`, declared as what `curl --data-binary` declares.
async fn upload_direct(client: &reqwest::Client, api: &str, bytes: Vec<u8>) -> ImageId {
    let response = post_image(client, api, bytes).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["images"][0]["id"].as_str().unwrap().parse().unwrap()
}

async fn post_image(client: &reqwest::Client, api: &str, bytes: Vec<u8>) -> reqwest::Response {
    client
        .post(format!("{api}/v1/images"))
        .bearer_auth(API_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// PUTs `file` to a presigned upload's URL with every header the grant lists.
async fn put_presigned(client: &reqwest::Client, upload: &Value, file: &[u8]) -> reqwest::Response {
    let mut put = client.put(upload["url"].as_str().unwrap()).body(file.to_vec());
    for (name, value) in upload["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    put.send().await.unwrap()
}

/// Reserves slots through `POST /v1/uploads` and PUTs each file to its presigned S3 URL; a
/// second PUT to the same URL is refused.
async fn upload_presigned(client: &reqwest::Client, api: &str, files: &[Vec<u8>]) -> Vec<ImageId> {
    let request = json!({"files": files.iter().enumerate().map(|(i, f)| json!({
        "filename": format!("photo{i}.jpg"), "content_type": "image/jpeg", "bytes": f.len()
    })).collect::<Vec<_>>()});
    let response = client.post(format!("{api}/v1/uploads")).bearer_auth(API_KEY).json(&request).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let mut ids = Vec::new();
    for (upload, file) in body["uploads"].as_array().unwrap().iter().zip(files) {
        let url = upload["url"].as_str().unwrap();
        assert!(url.starts_with(&emulator::url_from_env()), "a presigned S3 URL: {url}");
        // S3 refuses a PUT of another size or type, after the upload slot expired, or without
        // `If-None-Match: *` (signed: moto checks no signature, so the URL is checked here).
        assert!(url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bif-none-match"), "{url}");
        assert!(url.contains("X-Amz-Expires=900"), "{url}");
        assert_eq!(upload["headers"], json!({"content-type": "image/jpeg", "if-none-match": "*"}));
        let put = put_presigned(client, upload, file).await;
        assert!(put.status().is_success(), "PUT to the presigned URL: {}", put.status());
        // A second PUT to the same URL would replace the original the record describes: S3
        // refuses it (moto 5.2.5 implements `If-None-Match: *` on PutObject).
        let again = put_presigned(client, upload, &file[..]).await;
        assert_eq!(again.status(), 412, "a second PUT to a presigned URL must be refused");
        ids.push(upload["id"].as_str().unwrap().parse().unwrap());
    }
    ids
}

fn photo() -> Vec<u8> {
    std::fs::read(support::shared("IMGPIPE_FIXTURES", "fixtures").join("2569067123_aca715a2ee_o.jpg")).unwrap()
}

/// Runs the processor handler on every chunk payload the executions produced.
async fn process_all(service: &ChunkService, outputs: &[Value]) -> usize {
    let mut invocations = 0;
    for output in outputs {
        for payload in output.as_array().expect("the Map's output: one entry per chunk") {
            let input: ChunkInput = serde_json::from_value(payload.clone()).expect("a processor payload");
            assert_eq!(payload.as_object().unwrap().keys().collect::<Vec<_>>(), ["attempt", "batch_id", "images"]);
            processor::lambda::handle(service, input).await.unwrap();
            invocations += 1;
        }
    }
    invocations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_flow_through_queue_state_machine_and_processor_exactly_once() {
    let stack = Stack::create().await;
    let api = stack.serve_ingest().await;
    let client = reqwest::Client::new();
    let photo = photo();
    let truncated = photo[..photo.len() / 3].to_vec();
    let text = b"this is not an image, whatever its content type says".to_vec();

    let mut good = vec![upload_direct(&client, &api, photo.clone()).await];
    good.extend(upload_presigned(&client, &api, &[photo.clone(), photo.clone()]).await);
    let corrupt = upload_direct(&client, &api, truncated).await;
    let unsupported = upload_direct(&client, &api, text).await;
    let all: Vec<ImageId> = good.iter().copied().chain([corrupt, unsupported]).collect();

    let messages = stack.receive_events(all.len()).await;
    assert!(messages.iter().any(|m| m.body.contains("s3:TestEvent")), "moto sends a test event first");
    let workflows = stack.orchestrator(&stack.state_machine_arn);
    let response = deliver(&stack, &workflows, &messages).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);

    let service = stack.chunk_service();
    let outputs = stack.execution_outputs().await;
    assert!(process_all(&service, &outputs).await >= 1);

    let mut renditions = BTreeMap::new();
    let default = processor::Recipe::text_only(PresetCatalog::builtin().get("default").unwrap().clone()).unwrap();
    let kernel = processor::process(&photo, &default, &Limits::default()).unwrap();
    for &id in &good {
        let record = stack.metadata.get(id).await.unwrap().expect("one record per image");
        assert_eq!(record.status, Status::Done, "{record:?}");
        assert_eq!(record.renditions.len(), 3);
        // The placeholder round-trips through DynamoDB as the kernel made it.
        assert_eq!(record.placeholder, Some(kernel.facts.placeholder.clone()), "{id}");
        for rendition in &record.renditions {
            let (bytes, info) = stack.processed.get(&rendition.key).await.unwrap();
            let decoded = image::load_from_memory(&bytes).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (rendition.width, rendition.height), "{}", rendition.key);
            renditions.insert(rendition.key.clone(), info.etag);
        }
        let sizes: BTreeMap<&str, (u32, u32)> =
            record.renditions.iter().map(|r| (r.name.as_str(), (r.width, r.height))).collect();
        assert_eq!(sizes["thumb"], (256, 256));
        assert_eq!(sizes["medium"], (1024, 836));
        assert_eq!(sizes["large"], (2048, 1672));
    }
    // A rendition download is a redirect to a presigned S3 GET.
    let response =
        client.get(format!("{api}/v1/images/{}/renditions/thumb", good[0])).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.url().as_str().starts_with(&emulator::url_from_env()), "served by S3: {}", response.url());
    let thumb = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (256, 256));
    for (id, kind) in [(corrupt, ErrorKind::Corrupt), (unsupported, ErrorKind::Unsupported)] {
        let record = stack.metadata.get(id).await.unwrap().unwrap();
        assert_eq!(record.status, Status::Failed);
        assert_eq!(record.error.as_ref().map(|e| e.kind), Some(kind), "{record:?}");
    }
    // Every final record carries what S3 reports for the object processed (presigned uploads'
    // bytes never pass through the ingest) and the type sniffed from its bytes, not the
    // client's `application/x-www-form-urlencoded`; none keeps a slot's `expires_at`.
    for &id in &all {
        let record = stack.metadata.get(id).await.unwrap().unwrap();
        let stored = stack.originals.head(&record.source.key).await.unwrap();
        assert!(!record.source.etag.is_empty(), "{record:?}");
        assert_eq!((&record.source.etag, record.source.bytes), (&stored.etag, stored.size), "{id}");
        let sniffed = if id == unsupported { "application/octet-stream" } else { "image/jpeg" };
        assert_eq!(record.source.content_type, sniffed, "{id}");
        assert_eq!(record.expires_at, None, "{id}");
    }
    assert_eq!(stack.queue.stats().await.unwrap(), QueueStats { visible: 0, in_flight: 0, dead: 0 });

    // Every S3 event delivered again: no new record, no changed record, identical renditions.
    let records: Vec<MetadataRecord> = futures_util::future::try_join_all(all.iter().map(|&id| stack.metadata.get(id)))
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    for message in messages.iter().filter(|m| m.body.contains("ObjectCreated")) {
        stack.queue.send(&message.body).await.unwrap();
    }
    let again = stack.receive_events(all.len()).await;
    assert!(deliver(&stack, &workflows, &again).await.batch_item_failures.is_empty());
    process_all(&service, &stack.execution_outputs().await).await;
    for (id, before) in all.iter().zip(&records) {
        assert_eq!(stack.metadata.get(*id).await.unwrap().as_ref(), Some(before), "{id} changed");
    }
    for (key, etag) in &renditions {
        assert_eq!(&stack.processed.head(key).await.unwrap().etag, etag, "{key} changed");
    }
    let page = stack.metadata.list(None, None, 100).await.unwrap();
    assert_eq!(page.records.len(), all.len(), "one record per image");
    assert_eq!(stack.queue.stats().await.unwrap(), QueueStats { visible: 0, in_flight: 0, dead: 0 });

    // DynamoDB's TTL, as AWS would run it an hour after every upload URL expired: the slot whose
    // bytes never came goes; every final record stays, unchanged.
    let request = json!({"files": [{"filename": "never.jpg", "content_type": "image/jpeg", "bytes": 10}]});
    let response = client.post(format!("{api}/v1/uploads")).bearer_auth(API_KEY).json(&request).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let later = now_ms() / 1000 + IngestConfig::default().upload_url_ttl.as_secs() + 3600;
    let expired = emulator::expire_ttl(&stack.config, &stack.table, later).await.unwrap();
    assert_eq!(expired, 1, "only the slot that never received its bytes expires");
    for (id, before) in all.iter().zip(&records) {
        assert_eq!(stack.metadata.get(*id).await.unwrap().as_ref(), Some(before), "{id} was deleted by the TTL");
    }
}

/// An object store that checks, at every put, that the original's record already exists: on
/// AWS, S3 announces the object the moment the put succeeds.
struct RecordFirst {
    inner: S3ObjectStore,
    metadata: DynamoMetadataStore,
    fail_puts: bool,
}

/// The future every `ObjectStore` method returns (what `#[async_trait]` expands to; written out
/// here so this test needs no extra dependency).
type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>>;

impl ObjectStore for RecordFirst {
    fn put<'s, 'k, 'm, 'f>(&'s self, key: &'k str, bytes: Bytes, meta: &'m ObjectMeta) -> Boxed<'f, ObjectInfo>
    where
        's: 'f,
        'k: 'f,
        'm: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            let id = ImageId::from_original_key(key).unwrap();
            assert!(self.metadata.get(id).await.unwrap().is_some(), "{key} written before its record");
            if self.fail_puts {
                let error = std::io::Error::other("injected");
                return Err(imgpipe_core::ports::BackendError::permanent("injected put failure", error).into());
            }
            self.inner.put(key, bytes, meta).await
        })
    }
    fn get<'s, 'k, 'f>(&'s self, key: &'k str) -> Boxed<'f, (Bytes, ObjectInfo)>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.inner.get(key)
    }
    fn head<'s, 'k, 'f>(&'s self, key: &'k str) -> Boxed<'f, ObjectInfo>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.inner.head(key)
    }
    fn delete<'s, 'k, 'f>(&'s self, key: &'k str) -> Boxed<'f, ()>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.inner.delete(key)
    }
    fn list<'s, 'k, 'f>(&'s self, prefix: &'k str) -> Boxed<'f, Vec<String>>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.inner.list(prefix)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_upload_writes_its_record_before_its_original_and_never_leaves_it_pending() {
    let stack = Stack::create().await;
    let client = reqwest::Client::new();
    let check = |fail_puts| {
        Arc::new(RecordFirst { inner: stack.originals.clone(), metadata: stack.metadata.clone(), fail_puts })
    };
    let api = stack.serve_ingest_with(check(false)).await;
    let id = upload_direct(&client, &api, photo()).await;
    let record = stack.metadata.get(id).await.unwrap().unwrap();
    assert_eq!((record.status, record.source.content_type.as_str()), (Status::Pending, "image/jpeg"));

    // The original cannot be stored: the client is told, and the record does not stay PENDING.
    let failing = stack.serve_ingest_with(check(true)).await;
    assert_eq!(post_image(&client, &failing, photo()).await.status(), 500);
    let failed = stack.metadata.list(Some(Status::Failed), None, 10).await.unwrap().records;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].error.as_ref().map(|e| e.kind), Some(ErrorKind::Internal));
    assert!(stack.metadata.list(Some(Status::Pending), None, 10).await.unwrap().records.iter().all(|r| r.id == id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_without_a_record_is_redelivered_then_dead_lettered_and_a_late_record_is_processed() {
    let stack = Stack::create().await;
    let meta = ObjectMeta { content_type: "image/jpeg".into(), ..Default::default() };
    let (orphan, late) = (ImageId::generate(), ImageId::generate());
    for id in [orphan, late] {
        stack.originals.put(&id.original_key("jpg"), photo().into(), &meta).await.unwrap();
    }
    let workflows = stack.orchestrator(&stack.state_machine_arn);
    let created = |messages: &[Message]| -> Vec<Message> {
        messages.iter().filter(|m| m.body.contains("ObjectCreated")).cloned().collect()
    };
    let first = stack.receive_events(2).await;
    // moto's s3:TestEvent: nothing to do with it here.
    let others: Vec<String> =
        first.iter().filter(|m| !m.body.contains("ObjectCreated")).map(|m| m.receipt.clone()).collect();
    stack.queue.ack(&others).await.unwrap();
    let mut messages = created(&first);
    for receive in 1..=stack.declared.max_receives {
        assert!(messages.iter().all(|m| m.receive_count == receive), "{messages:?}");
        let response = deliver(&stack, &workflows, &messages).await;
        let failed: BTreeSet<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, messages.iter().map(|m| m.id.as_str()).collect(), "no record: left on the queue");
        if receive == 1 {
            // The late one's record appears (as if written late): handed over next time.
            let source = Source {
                key: late.original_key("jpg"),
                bytes: 1,
                etag: String::new(),
                content_type: "image/jpeg".into(),
            };
            stack
                .metadata
                .accept(&MetadataRecord::pending(late, source, "default".into(), now_ms()), "")
                .await
                .unwrap();
        }
        stack.release(&messages.iter().collect::<Vec<_>>()).await;
        let wanted = if receive == 1 { 2 } else { 1 };
        if receive < stack.declared.max_receives {
            messages = created(&stack.receive_events(wanted).await);
            if receive == 1 {
                let late_message = messages.iter().find(|m| m.body.contains(&late.to_string())).unwrap().clone();
                assert!(
                    deliver(&stack, &workflows, std::slice::from_ref(&late_message))
                        .await
                        .batch_item_failures
                        .is_empty()
                );
                messages.retain(|m| m.id != late_message.id);
            }
        }
    }
    assert!(stack.queue.receive(10, Duration::from_secs(60)).await.unwrap().is_empty());
    assert_eq!(stack.queue.stats().await.unwrap(), QueueStats { visible: 0, in_flight: 0, dead: 1 });
    let started: Vec<Value> = stack.execution_outputs().await;
    let keys: Vec<&str> = started
        .iter()
        .flat_map(|o| o.as_array().unwrap())
        .flat_map(|c| c["images"].as_array().unwrap())
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [late.original_key("jpg")], "only the recorded original reached a workflow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_does_not_start_is_redelivered_and_poison_reaches_the_dead_letter_queue() {
    let stack = Stack::create().await;
    let meta = ObjectMeta { content_type: "image/jpeg".into(), ..Default::default() };
    let id = ImageId::generate();
    let source =
        Source { key: id.original_key("jpg"), bytes: 1, etag: String::new(), content_type: "image/jpeg".into() };
    stack.metadata.accept(&MetadataRecord::pending(id, source, "default".into(), now_ms()), "").await.unwrap();
    stack.originals.put(&id.original_key("jpg"), photo().into(), &meta).await.unwrap();
    let messages = stack.receive_events(1).await;

    // The state machine does not exist: the group's message is a batch item failure, kept.
    let missing = stack.orchestrator(format!("{}-missing", stack.state_machine_arn));
    let response = deliver(&stack, &missing, &messages).await;
    let created = messages.iter().find(|m| m.body.contains("ObjectCreated")).unwrap().clone();
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, [created.id.as_str()]);
    stack.release(&[&created]).await;
    let messages = stack.receive_events(1).await;
    assert_eq!(messages[0].id, created.id);
    assert_eq!(messages[0].receive_count, 2, "the same message, received again");
    let workflows = stack.orchestrator(&stack.state_machine_arn);
    assert!(deliver(&stack, &workflows, &messages).await.batch_item_failures.is_empty());
    assert_eq!(stack.execution_outputs().await.len(), 1);

    // A message that is no S3 notification is never acknowledged: after max_receives it is dead.
    stack.queue.send("this is not an S3 notification").await.unwrap();
    for _ in 0..stack.declared.max_receives {
        let poison = stack.queue.receive(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(poison.len(), 1);
        assert_eq!(deliver(&stack, &workflows, &poison).await.batch_item_failures.len(), 1);
        stack.release(&poison.iter().collect::<Vec<_>>()).await;
    }
    assert!(stack.queue.receive(10, Duration::from_secs(60)).await.unwrap().is_empty());
    assert_eq!(stack.queue.stats().await.unwrap(), QueueStats { visible: 0, in_flight: 0, dead: 1 });
}

/// At-least-once, at the same moment: Express does not deduplicate executions by name, so one
/// batch may run twice at once (a redelivered message), and each chunk may reach two processors
/// together (two warm instances). The conditional `begin`, final records never overwritten and
/// deterministic keys make that harmless: one final record per image, the renditions a single
/// run of the kernel makes, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_batch_run_twice_at_once_ends_each_image_once_with_identical_renditions() {
    let stack = Stack::create().await;
    let api = stack.serve_ingest().await;
    let client = reqwest::Client::new();
    let photo = photo();
    let good = [upload_direct(&client, &api, photo.clone()).await, upload_direct(&client, &api, photo.clone()).await];
    let corrupt = upload_direct(&client, &api, photo[..photo.len() / 3].to_vec()).await;
    let messages = stack.receive_events(3).await;

    // The orchestrator's grouping, started twice at once under two names, as AWS allows.
    let plan = orchestrator::group::group(messages.iter().map(|m| m.body.as_str()));
    assert_eq!(plan.workflows.len(), 1, "{plan:?}");
    let input = serde_json::to_string(&plan.workflows[0].input).unwrap();
    let sfn = aws_sdk_sfn::Client::new(&stack.config);
    let start = |name: String| {
        sfn.start_execution().state_machine_arn(&stack.state_machine_arn).name(name).input(&input).send()
    };
    let batch = &plan.workflows[0].input.batch_id;
    let (first, second) = tokio::join!(start(batch.clone()), start(format!("{batch}-again")));
    first.unwrap();
    second.unwrap();
    let outputs = stack.execution_outputs().await;
    assert_eq!(outputs.len(), 2, "both executions ran");

    // Every chunk payload of both executions, each on two processors (two warm instances with
    // their own pools), all at once.
    let (one, two) = (stack.chunk_service(), stack.chunk_service());
    let payloads: Vec<ChunkInput> = outputs
        .iter()
        .flat_map(|output| output.as_array().unwrap().iter())
        .map(|payload| serde_json::from_value(payload.clone()).unwrap())
        .collect();
    let runs = payloads.iter().flat_map(|input| {
        [processor::lambda::handle(&one, input.clone()), processor::lambda::handle(&two, input.clone())]
    });
    // Meanwhile a reader watches every record: once final, a record never reads otherwise (a
    // late `begin` must not move it back to PROCESSING, a late `finish` must not rewrite it).
    let ids: Vec<ImageId> = good.iter().copied().chain([corrupt]).collect();
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = tokio::spawn({
        let (metadata, ids, watching) = (stack.metadata.clone(), ids.clone(), watching.clone());
        async move {
            let mut first_final: BTreeMap<ImageId, MetadataRecord> = BTreeMap::new();
            let mut reads = 0;
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                for &id in &ids {
                    let Some(record) = metadata.get(id).await.unwrap() else { continue };
                    reads += 1;
                    match first_final.get(&id) {
                        Some(before) => assert_eq!(&record, before, "a final record changed"),
                        None if record.status.is_final() => drop(first_final.insert(id, record)),
                        None => {}
                    }
                }
            }
            reads
        }
    });
    let answers = futures_util::future::try_join_all(runs).await.unwrap();
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(watcher.await.unwrap() > 0, "the watcher read records while the processors ran");
    assert_eq!(answers.len(), 4, "one chunk, two executions, two processors each");

    // Every invocation reports the same final outcome for every image.
    let expected: BTreeMap<ImageId, Status> =
        good.iter().map(|&id| (id, Status::Done)).chain([(corrupt, Status::Failed)]).collect();
    for answer in &answers {
        let seen: BTreeMap<ImageId, Status> = answer.results.iter().map(|r| (r.id, r.status)).collect();
        assert_eq!(seen, expected);
    }
    let page = stack.metadata.list(None, None, 100).await.unwrap();
    assert_eq!(page.records.len(), 3, "one record per image");
    let failed = stack.metadata.get(corrupt).await.unwrap().unwrap();
    assert_eq!(failed.error.as_ref().map(|e| e.kind), Some(ErrorKind::Corrupt), "{failed:?}");

    // The renditions stored are those of one run of the kernel on the same bytes.
    let recipe = processor::Recipe::new(
        PresetCatalog::builtin().get(imgpipe_core::preset::DEFAULT_PRESET).unwrap().clone(),
        |logo| std::fs::read(logo),
    )
    .unwrap();
    let reference = processor::process(&photo, &recipe, &Limits::default()).unwrap();
    for &id in &good {
        let record = stack.metadata.get(id).await.unwrap().unwrap();
        assert_eq!(record.status, Status::Done);
        assert!((1..=4).contains(&record.attempts), "{record:?}");
        assert_eq!(record.renditions.len(), reference.renditions.len());
        for (stored, made) in record.renditions.iter().zip(&reference.renditions) {
            assert_eq!(stored.name, made.name);
            let (bytes, _) = stack.processed.get(&stored.key).await.unwrap();
            assert!(bytes == made.bytes, "{} differs from a single run's {}", stored.key, made.name);
            assert_eq!(stored.bytes, made.bytes.len() as u64);
        }
    }
}

/// On Lambda the orchestrator and the processor write what they recorded as CloudWatch
/// Embedded Metric Format log lines after each invocation (`EmfMetrics::around`, as their mains
/// do). Two photos, a truncated one and a text file go through both handlers; the lines are read
/// as CloudWatch Logs reads them, and their numbers must match the records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invocation_writes_its_metrics_as_embedded_metric_format() {
    let emf = adapters::aws::EmfMetrics::install("imgpipe-test-function").unwrap();
    let stack = Stack::create().await;
    let meta = ObjectMeta { content_type: "image/jpeg".into(), ..Default::default() };
    let photo = photo();
    let files = [photo.clone(), photo.clone(), photo[..photo.len() / 3].to_vec(), b"not an image at all".to_vec()];
    let mut ids = Vec::new();
    for bytes in &files {
        let id = ImageId::generate();
        let key = id.original_key("jpg");
        let source = Source { key: key.clone(), bytes: 1, etag: String::new(), content_type: "image/jpeg".into() };
        stack.metadata.accept(&MetadataRecord::pending(id, source, "default".into(), now_ms()), "").await.unwrap();
        stack.originals.put(&key, Bytes::from(bytes.clone()), &meta).await.unwrap();
        ids.push(id);
    }
    let messages = stack.receive_events(files.len()).await;
    let workflows = stack.orchestrator(&stack.state_machine_arn);
    let mut orchestrator_log = Vec::new();
    let response =
        emf.around("orchestrator-invocation", deliver(&stack, &workflows, &messages), &mut orchestrator_log).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
    let service = stack.chunk_service();
    let outputs = stack.execution_outputs().await;
    let mut processor_log = Vec::new();
    let invocations = emf.around("processor-invocation", process_all(&service, &outputs), &mut processor_log).await;
    assert_eq!(invocations, 1, "four images make one chunk");
    let mut after = Vec::new();
    emf.flush_to(&mut after).unwrap();
    assert!(after.is_empty(), "a flush writes what was recorded since the last one only");

    let orchestrator = emf_metrics(&orchestrator_log, "orchestrator-invocation");
    let function = [("function", "imgpipe-test-function")];
    assert_eq!(orchestrator[&metric("imgpipe_executions_started_total", &function)], ("Count", vec![1.0]));
    assert_eq!(orchestrator[&metric("imgpipe_batch_images", &function)], ("Count", vec![4.0]));
    assert_eq!(orchestrator.len(), 2, "nothing refused, nothing failed to start: {orchestrator:?}");

    let processor = emf_metrics(&processor_log, "processor-invocation");
    let records: Vec<MetadataRecord> = futures_util::future::try_join_all(ids.iter().map(|&id| stack.metadata.get(id)))
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let kinds: Vec<Option<ErrorKind>> = records.iter().map(|r| r.error.as_ref().map(|e| e.kind)).collect();
    assert_eq!(kinds, [None, None, Some(ErrorKind::Corrupt), Some(ErrorKind::Unsupported)]);
    assert_eq!(processor[&metric("imgpipe_images_done_total", &function)], ("Count", vec![2.0]));
    for kind in ["corrupt", "unsupported"] {
        let key = metric("imgpipe_images_failed_total", &[function[0], ("kind", kind)]);
        assert_eq!(processor[&key], ("Count", vec![1.0]), "{kind}");
    }
    let read: usize = files.iter().map(Vec::len).sum();
    assert_eq!(processor[&metric("imgpipe_processor_read_bytes_total", &function)], ("Bytes", vec![read as f64]));
    let written: u64 = records.iter().flat_map(|r| &r.renditions).map(|r| r.bytes).sum();
    assert_eq!(processor[&metric("imgpipe_processor_written_bytes_total", &function)], ("Bytes", vec![written as f64]));
    for stage in imgpipe_core::metrics::Stage::ALL {
        let key = metric("imgpipe_stage_duration_seconds", &[function[0], ("stage", stage.as_str())]);
        let (unit, values) = &processor[&key];
        assert_eq!((*unit, values.len()), ("Seconds", 2), "{stage:?}: one value per DONE image");
        assert!(values.iter().all(|v| (0.0..60.0).contains(v)), "{stage:?} in seconds: {values:?}");
    }
    assert_eq!(processor.len(), 5 + 6, "no other metric: {processor:?}");
}

/// A metric as CloudWatch identifies it: its name and its dimensions.
type MetricKey = (String, BTreeMap<String, String>);

fn metric(name: &str, dimensions: &[(&str, &str)]) -> MetricKey {
    (name.to_owned(), dimensions.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect())
}

/// Reads EMF log lines as CloudWatch Logs does and checks the specification on the way: one
/// JSON object per line, `_aws` with a millisecond `Timestamp` and one `CloudWatchMetrics`
/// directive in namespace `imgpipe`, every dimension a top-level string, every metric a
/// top-level number or array of at most 100 numbers. Returns each metric's unit and values.
fn emf_metrics(log: &[u8], request_id: &str) -> BTreeMap<MetricKey, (&'static str, Vec<f64>)> {
    let text = std::str::from_utf8(log).unwrap();
    assert!(text.ends_with('\n'), "every document ends its line: {text}");
    let mut metrics = BTreeMap::new();
    for line in text.lines() {
        let document: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let timestamp = document["_aws"]["Timestamp"].as_u64().expect("a Timestamp in ms");
        assert!(timestamp.abs_diff(now_ms()) < 600_000, "{line}");
        let directives = document["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1, "{line}");
        assert_eq!(directives[0]["Namespace"], "imgpipe", "{line}");
        assert_eq!(document["request_id"], request_id, "the invocation's request id: {line}");
        let sets = directives[0]["Dimensions"].as_array().unwrap();
        assert_eq!(sets.len(), 1, "{line}");
        let dimensions: BTreeMap<String, String> = sets[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| {
                let name = name.as_str().unwrap();
                (
                    name.to_owned(),
                    document[name].as_str().unwrap_or_else(|| panic!("{name} not a string: {line}")).into(),
                )
            })
            .collect();
        assert!(dimensions.len() <= 2, "function and at most one label: {line}");
        for definition in directives[0]["Metrics"].as_array().unwrap() {
            let name = definition["Name"].as_str().unwrap();
            let unit = match definition["Unit"].as_str() {
                Some("Count") => "Count",
                Some("Bytes") => "Bytes",
                Some("Seconds") => "Seconds",
                other => panic!("{name}: unit {other:?}"),
            };
            let values = match &document[name] {
                Value::Number(n) => vec![n.as_f64().unwrap()],
                Value::Array(values) => values.iter().map(|v| v.as_f64().unwrap()).collect(),
                other => panic!("{name}: {other}"),
            };
            assert!(!values.is_empty() && values.len() <= 100, "{line}");
            let previous = metrics.insert((name.to_owned(), dimensions.clone()), (unit, values));
            assert!(previous.is_none(), "{name} twice: {text}");
        }
    }
    metrics
}

/// The sweeper on the emulated stack: an execution that never finished (a record left
/// PROCESSING with an old start) and an event that never came (one left PENDING) are re-driven
/// through the ingest queue as one re-drive message, which the orchestrator handler starts as a
/// workflow carrying the attempt; two sweeps at once count once; with the budget spent they end
/// FAILED `internal` with the reason; fresh open records and DONE/FAILED ones are never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_redrives_stuck_records_through_the_queue_then_fails_them() {
    use imgpipe_core::event::{Notification, Redrive};
    use imgpipe_core::policy::SWEEP;
    use orchestrator::lambda::{SweeperClients, SweeperConfig};
    let stack = Stack::create().await;
    let minute = 60_000;
    let now = now_ms();
    let record = |created_ms: u64| {
        let id = ImageId::generate();
        let source =
            Source { key: id.original_key("jpg"), bytes: 3, etag: "e".into(), content_type: "image/jpeg".into() };
        MetadataRecord::pending(id, source, "default".into(), created_ms)
    };
    // Ages relative to the sweeper's deadlines: just past them, or well inside.
    let (pending_after, processing_after) =
        (SWEEP.pending_after.as_millis() as u64, SWEEP.processing_after.as_millis() as u64);
    let lost_execution = record(now - processing_after - 30 * minute);
    let lost_event = record(now - pending_after - minute);
    let fresh_pending = record(now - 5 * minute);
    let fresh_processing = record(now - pending_after - 10 * minute);
    let done = record(now - pending_after - 30 * minute);
    let failed = record(now - pending_after - 30 * minute);
    for r in [&lost_execution, &lost_event, &fresh_pending, &fresh_processing, &done, &failed] {
        stack.metadata.accept(r, "").await.unwrap();
    }
    stack.metadata.begin(lost_execution.id, now - processing_after - minute).await.unwrap();
    stack.metadata.begin(fresh_processing.id, now - 2 * minute).await.unwrap();
    for (r, status) in [(&done, Status::Done), (&failed, Status::Failed)] {
        let imgpipe_core::ports::Begin::Started(begun) =
            stack.metadata.begin(r.id, now - pending_after - 20 * minute).await.unwrap()
        else {
            panic!("not started")
        };
        let end = MetadataRecord {
            error: (status == Status::Failed).then(|| imgpipe_core::ImageError::corrupt("x")),
            ..begun
        };
        stack.metadata.finish(&[end.finished(status, now - pending_after - 19 * minute)]).await.unwrap();
    }
    let metadata = &stack.metadata;
    let untouched = |ids: [ImageId; 4]| async move {
        let mut got = Vec::new();
        for id in ids {
            got.push(metadata.get(id).await.unwrap().unwrap());
        }
        got
    };
    let others = [fresh_pending.id, fresh_processing.id, done.id, failed.id];
    let before = untouched(others).await;
    let bucket = stack.originals.bucket().to_owned();
    // The sweeper as its Lambda builds it.
    let config = SweeperConfig {
        metadata_table: stack.table.clone(),
        ingest_queue_url: stack.queue_url.clone(),
        originals_bucket: bucket.clone(),
    };
    let clients = SweeperClients::new(&stack.config, &config);
    let sweeper = clients.sweeper(SWEEP);
    let stuck_keys: BTreeSet<String> = [&lost_execution, &lost_event].iter().map(|r| r.source.key.clone()).collect();

    // Sweep 1, twice at once: one count per record, one re-drive message between them.
    let (a, b) = tokio::join!(sweeper.run(now), sweeper.run(now));
    let (a, b) = (a.unwrap(), b.unwrap());
    // Each found both, or one found a record only after the other had swept it (the listing
    // reads records after the index): either way one re-drive per record.
    assert!(a.stuck + b.stuck >= 2, "{a:?} {b:?}");
    assert_eq!((a.redriven + b.redriven, a.failed + b.failed), (2, 0), "{a:?} {b:?}");
    assert_eq!(a.stuck + b.stuck, 2 + a.moved_on + b.moved_on, "{a:?} {b:?}");
    let mut messages = Vec::new();
    while let Some(more) =
        Some(stack.queue.receive(10, Duration::from_secs(60)).await.unwrap()).filter(|m| !m.is_empty())
    {
        messages.extend(more);
    }
    let redriven: Vec<Redrive> = messages
        .iter()
        .filter_map(|m| match Notification::parse(&m.body) {
            Ok(Notification::Redrive(r)) => Some(r),
            _ => None,
        })
        .collect();
    let keys: BTreeSet<String> = redriven.iter().flat_map(|r| r.images.iter().map(|o| o.key.clone())).collect();
    assert_eq!(keys, stuck_keys, "each stuck record re-driven once through the queue");
    assert!(redriven.iter().all(|r| r.attempt == 1 && r.images.iter().all(|o| o.bucket == bucket)));
    for r in [&lost_execution, &lost_event] {
        let swept = stack.metadata.get(r.id).await.unwrap().unwrap();
        assert_eq!(swept.sweeps, 1);
        assert!(!swept.status.is_final(), "a re-drive fails nothing");
    }

    // The orchestrator handler starts the re-drive as a workflow carrying its attempt.
    let workflows = stack.orchestrator(&stack.state_machine_arn);
    let redrives: Vec<Message> = messages.into_iter().filter(|m| m.body.contains("imgpipe_redrive")).collect();
    assert!(deliver(&stack, &workflows, &redrives).await.batch_item_failures.is_empty());
    let outputs = stack.execution_outputs().await;
    assert_eq!(outputs.len(), 1);
    // moto's Lambda echoes the processor's input: the chunk carries the attempt.
    let chunk: ChunkInput = serde_json::from_value(outputs[0][0].clone()).unwrap();
    assert_eq!(chunk.attempt, 1);
    assert!(chunk.batch_id.ends_with("-r1"), "{}", chunk.batch_id);
    assert_eq!(chunk.images.iter().map(|o| o.key.clone()).collect::<BTreeSet<_>>(), stuck_keys);

    // Nobody processes them (moto's Lambda only echoes): each later sweep re-drives again, up
    // to the budget, then fails them with the reason.
    // A sweep is due again only `resweep_after` later per sweep so far: not at the same time,
    // and then at once with no spacing (the fresh records must stay fresh meanwhile).
    assert_eq!(sweeper.run(now).await.unwrap().stuck, 0, "swept once: not due again yet");
    let resweep = SWEEP.resweep_after.as_millis() as u64;
    assert_eq!(sweeper.run(now + resweep + 1).await.unwrap().redriven, 2, "due again after resweep_after");
    let sweeper = clients.sweeper(imgpipe_core::policy::SweepPolicy { resweep_after: Duration::ZERO, ..SWEEP });
    for sweep in 3..=SWEEP.max_sweeps {
        let report = sweeper.run(now).await.unwrap();
        assert_eq!((report.redriven, report.failed), (2, 0), "sweep {sweep}");
    }
    let last = sweeper.run(now).await.unwrap();
    assert_eq!((last.redriven, last.failed), (0, 2));
    for (r, status) in [(&lost_execution, "PROCESSING"), (&lost_event, "PENDING")] {
        let end = stack.metadata.get(r.id).await.unwrap().unwrap();
        assert_eq!(end.status, Status::Failed);
        let error = end.error.unwrap();
        assert_eq!(error.kind, ErrorKind::Internal);
        assert_eq!(error.message, format!("stuck in {status} after {} re-drives", SWEEP.max_sweeps));
        assert_eq!(end.finished_ms, Some(now));
    }
    assert_eq!(sweeper.run(now).await.unwrap(), orchestrator::sweep::SweepReport::default(), "nothing left");
    assert_eq!(untouched(others).await, before, "fresh open records and final ones are never touched");
}
