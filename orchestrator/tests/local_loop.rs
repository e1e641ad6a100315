//! The local orchestrator loop over the real SQLite queue: batching, acknowledging only what
//! was handed over, leaving failures, unreadable messages and events without a record to come
//! back (and go to the dead-letter table).

use adapters::LocalBackend;
use async_trait::async_trait;
use imgpipe_core::event::S3Notification;
use imgpipe_core::ports::{EventQueue, MetadataStore, WorkflowError, WorkflowStarter};
use imgpipe_core::record::{MetadataRecord, Source};
use imgpipe_core::seams::{ImageId, ObjectRef, WorkflowInput};
use orchestrator::local::{LoopConfig, run};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// A workflow starter that records what it is given, and refuses while `refuse` is set.
#[derive(Default)]
struct Recorder {
    started: Mutex<Vec<WorkflowInput>>,
    refuse: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl WorkflowStarter for Recorder {
    async fn start(&self, input: WorkflowInput) -> Result<(), WorkflowError> {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(WorkflowError::InvalidInput("refused by the test".into()));
        }
        self.started.lock().unwrap().push(input);
        Ok(())
    }
}

fn event(id: ImageId) -> String {
    let object = ObjectRef { bucket: "local".into(), key: id.original_key("jpg"), size: 1, etag: format!("e{id}") };
    S3Notification::object_created(&object, "t").to_json()
}

/// An accepted upload: its record, and its event queued with it (as the intake does locally).
async fn accepted(backend: &LocalBackend) -> ImageId {
    let id = ImageId::generate();
    let source =
        Source { key: id.original_key("jpg"), bytes: 1, etag: format!("e{id}"), content_type: "image/jpeg".into() };
    let record = MetadataRecord::pending(id, source, "default".into(), 1);
    backend.metadata.accept(&record, &event(id)).await.unwrap();
    id
}

const FAST: LoopConfig = LoopConfig {
    max_messages: 10,
    max_wait: Duration::from_millis(30),
    lease: Duration::from_millis(400),
    idle_poll: Duration::from_millis(10),
};

async fn run_for(backend: &LocalBackend, starter: Arc<Recorder>, config: LoopConfig, duration: Duration) {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(backend.queue.clone(), starter, backend.metadata.clone(), config, stopped));
    tokio::time::sleep(duration).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn every_object_is_started_once_and_only_handed_over_messages_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path()).unwrap();
    let queue: Arc<dyn EventQueue> = backend.queue.clone();
    let mut ids = Vec::new();
    for _ in 0..25 {
        ids.push(accepted(&backend).await);
    }
    queue.send(&event(ids[3])).await.unwrap(); // a duplicate delivery
    queue.send(r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#).await.unwrap();
    queue.send("garbage").await.unwrap();
    let starter = Arc::new(Recorder::default());
    run_for(&backend, starter.clone(), FAST, Duration::from_millis(300)).await;

    let mut keys: Vec<String> =
        starter.started.lock().unwrap().iter().flat_map(|w| w.chunks.concat()).map(|o| o.key).collect();
    keys.sort();
    let started = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), 25);
    // The duplicate is dropped when both copies share a batch; it may start twice otherwise.
    assert!(started <= 26, "{started} starts");
    let stats = queue.stats().await.unwrap();
    // Only the unreadable message is left (leased, or visible between two leases).
    assert_eq!(stats.visible + stats.in_flight, 1, "{stats:?}");
}

#[tokio::test]
async fn messages_whose_workflow_did_not_start_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path()).unwrap();
    let queue: Arc<dyn EventQueue> = backend.queue.clone();
    accepted(&backend).await;
    let starter = Arc::new(Recorder::default());
    starter.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    run_for(&backend, starter.clone(), FAST, Duration::from_millis(150)).await;
    assert!(starter.started.lock().unwrap().is_empty());
    assert_eq!(queue.stats().await.unwrap().in_flight, 1);
    // After the lease it is received again and, now accepted, handed over and acknowledged.
    starter.refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    run_for(&backend, starter.clone(), FAST, Duration::from_millis(800)).await;
    assert_eq!(starter.started.lock().unwrap().len(), 1);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.visible, stats.in_flight), (0, 0));
}

#[tokio::test]
async fn events_without_a_record_are_retried_then_dead_lettered_and_a_late_record_is_processed() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path()).unwrap();
    let (orphan, late) = (ImageId::generate(), ImageId::generate());
    backend.queue.send(&event(orphan)).await.unwrap();
    backend.queue.send(&event(late)).await.unwrap();
    let starter = Arc::new(Recorder::default());
    let config = LoopConfig { lease: Duration::from_millis(100), ..FAST };
    run_for(&backend, starter.clone(), config, Duration::from_millis(150)).await;
    assert!(starter.started.lock().unwrap().is_empty(), "nothing without a record is handed over");
    let stats = backend.queue.stats().await.unwrap();
    assert_eq!((stats.visible + stats.in_flight, stats.dead), (2, 0), "both left on the queue: {stats:?}");

    // The record of one appears (as if its write were late): its event is handed over next time.
    let source =
        Source { key: late.original_key("jpg"), bytes: 1, etag: format!("e{late}"), content_type: "image/jpeg".into() };
    let record = MetadataRecord::pending(late, source, "default".into(), 1);
    backend
        .metadata
        .reserve(&[MetadataRecord { status: imgpipe_core::seams::Status::AwaitingUpload, ..record }])
        .await
        .unwrap();
    run_for(&backend, starter.clone(), config, Duration::from_millis(1500)).await;
    let started: Vec<String> =
        starter.started.lock().unwrap().iter().flat_map(|w| w.chunks.concat()).map(|o| o.key).collect();
    assert_eq!(started, [late.original_key("jpg")]);

    // The other was received `MAX_RECEIVES` times, never acknowledged, and is now dead.
    let stats = backend.queue.stats().await.unwrap();
    assert_eq!((stats.visible, stats.in_flight, stats.dead), (0, 0, 1), "{stats:?}");
    let letters = backend.queue.dead_letters().await.unwrap();
    assert!(letters[0].body.contains(&orphan.to_string()), "{:?}", letters[0].body);
    assert_eq!(letters[0].receive_count, imgpipe_core::policy::MAX_RECEIVES);
}
