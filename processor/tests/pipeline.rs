//! The chunk service and the local workflow runner over the real local adapters (filesystem and
//! SQLite in a temp dir): outcomes, stored renditions, idempotent retries, Retry and Catch.

mod support;

use async_trait::async_trait;
use bytes::Bytes;
use imgpipe_core::event::S3Notification;
use imgpipe_core::policy::RetryPolicy;
use imgpipe_core::ports::{
    BackendError, MetadataStore, ObjectInfo, ObjectMeta, ObjectStore, StoreError, WorkflowStarter,
};
use imgpipe_core::record::{MetadataRecord, Source, now_ms};
use imgpipe_core::seams::{ChunkInput, ImageId, ObjectRef, Status, WorkflowInput};
use imgpipe_core::{ErrorKind, Limits, PresetCatalog};
use processor::chunk::{ChunkConfig, ChunkService, Recipes};
use processor::workflow::LocalWorkflows;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

struct Stack {
    _dir: tempfile::TempDir,
    backend: adapters::local::LocalBackend,
}

fn stack() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let backend = adapters::local::LocalBackend::open(dir.path()).unwrap();
    Stack { _dir: dir, backend }
}

/// Stores `bytes` as an accepted upload, as the ingest API does.
async fn upload(stack: &Stack, bytes: Vec<u8>) -> ObjectRef {
    let id = ImageId::generate();
    let key = id.original_key("bin");
    let meta = ObjectMeta { content_type: "application/octet-stream".into(), ..ObjectMeta::default() };
    let info = stack.backend.objects.put(&key, Bytes::from(bytes), &meta).await.unwrap();
    let object = ObjectRef {
        bucket: adapters::local::LOCAL_BUCKET.into(),
        key: key.clone(),
        size: info.size,
        etag: info.etag.clone(),
    };
    let source = Source { key, bytes: info.size, etag: info.etag, content_type: meta.content_type };
    let record = MetadataRecord::pending(id, source, "default".into(), now_ms());
    stack.backend.metadata.accept(&record, &S3Notification::object_created(&object, "t").to_json()).await.unwrap();
    object
}

fn service(objects: Arc<dyn ObjectStore>, stack: &Stack) -> Arc<ChunkService> {
    let recipes = Recipes::new(&PresetCatalog::builtin(), |_| Err(std::io::ErrorKind::NotFound.into())).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    Arc::new(ChunkService::new(
        objects,
        stack.backend.metadata.clone(),
        Arc::new(recipes),
        Arc::new(pool),
        ChunkConfig { io_concurrency: 4, limits: Limits::default() },
    ))
}

fn id_of(object: &ObjectRef) -> ImageId {
    ImageId::from_original_key(&object.key).unwrap()
}

#[tokio::test]
async fn a_chunk_ends_each_image_done_or_failed_with_its_renditions_stored() {
    let stack = stack();
    let good = upload(&stack, support::fixture("2569067123_aca715a2ee_o.jpg")).await;
    let broken = upload(&stack, support::fixture("gradients-rgb8.png")[..4000].to_vec()).await;
    let not_image = upload(&stack, b"hello".to_vec()).await;
    let service = service(stack.backend.objects.clone(), &stack);
    let input =
        ChunkInput { batch_id: "b".into(), attempt: 0, images: vec![good.clone(), broken.clone(), not_image.clone()] };
    let output = service.process(&input).await.unwrap();
    let statuses: Vec<_> = output.results.iter().map(|r| (r.id, r.status, r.error.as_ref().map(|e| e.kind))).collect();
    assert_eq!(
        statuses,
        [
            (id_of(&good), Status::Done, None),
            (id_of(&broken), Status::Failed, Some(ErrorKind::Corrupt)),
            (id_of(&not_image), Status::Failed, Some(ErrorKind::Unsupported)),
        ]
    );
    let record = stack.backend.metadata.get(id_of(&good)).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Done);
    assert_eq!(record.attempts, 1);
    let original = record.original.unwrap();
    assert_eq!((original.width, original.height), (2725, 2225));
    assert_eq!(record.renditions.len(), 3);
    for rendition in &record.renditions {
        assert_eq!(rendition.key, id_of(&good).rendition_key(&rendition.name, rendition.format));
        let (bytes, info) = stack.backend.objects.get(&rendition.key).await.unwrap();
        assert_eq!(info.meta.content_type, rendition.format.content_type());
        let image = image::load_from_memory(&bytes).unwrap();
        assert_eq!((image.width(), image.height()), (rendition.width, rendition.height));
    }
    assert!(record.durations_ms.unwrap().decode > 0.0 && record.finished_ms.is_some());
    let failed = stack.backend.metadata.get(id_of(&broken)).await.unwrap().unwrap();
    assert_eq!(failed.error.unwrap().kind, ErrorKind::Corrupt);
    assert!(failed.renditions.is_empty());
}

#[tokio::test]
async fn running_a_chunk_again_changes_nothing() {
    let stack = stack();
    let object = upload(&stack, support::fixture("gradients-rgb8.png")).await;
    let service = service(stack.backend.objects.clone(), &stack);
    let input = ChunkInput { batch_id: "b".into(), attempt: 0, images: vec![object.clone()] };
    let first = service.process(&input).await.unwrap();
    let record = stack.backend.metadata.get(id_of(&object)).await.unwrap().unwrap();
    let thumb = stack.backend.objects.get(&record.renditions[0].key).await.unwrap();
    let second = service.process(&input).await.unwrap();
    assert_eq!(first, second);
    let again = stack.backend.metadata.get(id_of(&object)).await.unwrap().unwrap();
    assert_eq!(again, record, "a duplicate delivery must not touch a final record");
    assert_eq!(stack.backend.objects.get(&record.renditions[0].key).await.unwrap().1.etag, thumb.1.etag);
}

#[tokio::test]
async fn objects_without_an_accepted_upload_are_skipped() {
    let stack = stack();
    let stray =
        ObjectRef { bucket: "local".into(), key: ImageId::generate().original_key("jpg"), size: 1, etag: "e".into() };
    let output = service(stack.backend.objects.clone(), &stack)
        .process(&ChunkInput { batch_id: "b".into(), attempt: 0, images: vec![stray] })
        .await
        .unwrap();
    assert!(output.results.is_empty());
}

/// The real filesystem store, failing the first `failures` reads with a retryable error.
struct Flaky {
    inner: Arc<dyn ObjectStore>,
    failures: AtomicU32,
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn put(&self, key: &str, bytes: Bytes, meta: &ObjectMeta) -> Result<ObjectInfo, StoreError> {
        self.inner.put(key, bytes, meta).await
    }
    async fn get(&self, key: &str) -> Result<(Bytes, ObjectInfo), StoreError> {
        if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            let cause = std::io::Error::new(std::io::ErrorKind::TimedOut, "injected");
            return Err(BackendError::retryable("injected slow down", cause).into());
        }
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }
}

const QUICK: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    interval: Duration::from_millis(10),
    backoff_rate: 2.0,
    max_delay: Duration::from_millis(50),
};

async fn run_workflow(stack: &Stack, failures: u32, objects: Vec<ObjectRef>) {
    let flaky = Arc::new(Flaky { inner: stack.backend.objects.clone(), failures: AtomicU32::new(failures) });
    let runner = LocalWorkflows::new(service(flaky, stack), 2).with_retry(QUICK);
    runner.start(WorkflowInput { batch_id: "b".into(), attempt: 0, chunks: vec![objects] }).await.unwrap();
    assert!(runner.drain(Duration::from_secs(30)).await, "the workflow did not finish");
}

#[tokio::test]
async fn retryable_failures_are_retried_until_the_chunk_succeeds() {
    let stack = stack();
    let object = upload(&stack, support::fixture("gradients-rgb8.png")).await;
    run_workflow(&stack, 2, vec![object.clone()]).await;
    let record = stack.backend.metadata.get(id_of(&object)).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Done);
    assert_eq!(record.attempts, 3, "two failed attempts, then success");
}

#[tokio::test]
async fn chunks_that_keep_failing_are_caught_and_marked_failed() {
    let stack = stack();
    let objects = vec![
        upload(&stack, support::fixture("gradients-rgb8.png")).await,
        upload(&stack, support::fixture("gradients-rgb8.png")).await,
    ];
    run_workflow(&stack, u32::MAX, objects.clone()).await;
    for object in &objects {
        let record = stack.backend.metadata.get(id_of(object)).await.unwrap().unwrap();
        assert_eq!(record.status, Status::Failed);
        let error = record.error.unwrap();
        assert_eq!(error.kind, ErrorKind::Internal);
        assert!(error.message.contains("after 4 attempts"), "{}", error.message);
    }
}

/// The re-drive messages in the stack's queue.
async fn queued_redrives(stack: &Stack) -> Vec<imgpipe_core::event::Redrive> {
    use imgpipe_core::event::Notification;
    let bodies = stack.backend.queue.bodies().await.unwrap();
    bodies
        .iter()
        .filter_map(|b| match Notification::parse(b) {
            Ok(Notification::Redrive(r)) => Some(r),
            _ => None,
        })
        .collect()
}

/// Runs `objects` as a workflow at `attempt` whose every fetch is throttled, re-driving
/// through the stack's queue.
async fn run_short_of_capacity(stack: &Stack, objects: &[ObjectRef], attempt: u32) {
    let flaky = Arc::new(Flaky { inner: stack.backend.objects.clone(), failures: AtomicU32::new(u32::MAX) });
    let queue: Arc<dyn imgpipe_core::ports::EventQueue> = stack.backend.queue.clone();
    let runner = LocalWorkflows::new(service(flaky, stack), 2).with_retry(QUICK).with_redrive(queue, Duration::ZERO);
    runner.start(WorkflowInput { batch_id: "b".into(), attempt, chunks: vec![objects.to_vec()] }).await.unwrap();
    assert!(runner.drain(Duration::from_secs(30)).await, "the workflow did not finish");
}

/// With a queue to send to (as the local stack runs it), a chunk that keeps failing for lack of
/// capacity goes back to the queue as a re-drive with attempt + 1, its images left open; at the
/// budget (`MAX_REDRIVES`) they end FAILED "still throttled after N attempts", nothing queued.
#[tokio::test]
async fn chunks_short_of_capacity_are_redriven_through_the_queue_until_their_budget() {
    use imgpipe_core::policy::MAX_REDRIVES;
    let stack = stack();
    let objects = vec![
        upload(&stack, support::fixture("gradients-rgb8.png")).await,
        upload(&stack, support::fixture("gradients-rgb8.png")).await,
    ];

    run_short_of_capacity(&stack, &objects, 1).await;
    let redrives = queued_redrives(&stack).await;
    assert_eq!(redrives.len(), 1);
    assert_eq!((redrives[0].attempt, &redrives[0].images), (2, &objects));
    assert!(redrives[0].reason.contains("injected slow down"), "{}", redrives[0].reason);
    for object in &objects {
        let record = stack.backend.metadata.get(id_of(object)).await.unwrap().unwrap();
        assert_eq!(record.status, Status::Processing, "a chunk short of capacity fails nothing");
    }

    run_short_of_capacity(&stack, &objects, MAX_REDRIVES).await;
    assert_eq!(queued_redrives(&stack).await.len(), 1, "nothing more queued past the budget");
    for object in &objects {
        let record = stack.backend.metadata.get(id_of(object)).await.unwrap().unwrap();
        assert_eq!(record.status, Status::Failed);
        let error = record.error.unwrap();
        assert_eq!(error.kind, ErrorKind::Internal);
        let want = format!("still throttled after {} attempts", MAX_REDRIVES + 1);
        assert!(error.message.starts_with(&want), "{}", error.message);
    }
}
