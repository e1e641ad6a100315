//! The local orchestrator loop over the real SQLite queue: batching, acknowledging only what
//! was handed over, leaving failures and unreadable messages to come back.

use async_trait::async_trait;
use imgpipe_core::event::S3Notification;
use imgpipe_core::ports::{EventQueue, WorkflowError, WorkflowStarter};
use imgpipe_core::seams::{ObjectRef, WorkflowInput};
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

fn event(n: usize) -> String {
    let object =
        ObjectRef { bucket: "local".into(), key: format!("originals/{n:04}.jpg"), size: 1, etag: format!("e{n}") };
    S3Notification::object_created(&object, "t").to_json()
}

const FAST: LoopConfig = LoopConfig {
    max_messages: 10,
    max_wait: Duration::from_millis(30),
    lease: Duration::from_millis(400),
    idle_poll: Duration::from_millis(10),
};

async fn run_for(queue: Arc<dyn EventQueue>, starter: Arc<Recorder>, duration: Duration) {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(queue, starter, FAST, stopped));
    tokio::time::sleep(duration).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn every_object_is_started_once_and_only_handed_over_messages_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let backend = adapters::local::LocalBackend::open(dir.path()).unwrap();
    let queue: Arc<dyn EventQueue> = backend.queue.clone();
    for n in 0..25 {
        queue.send(&event(n)).await.unwrap();
    }
    queue.send(&event(3)).await.unwrap(); // a duplicate delivery
    queue.send(r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#).await.unwrap();
    queue.send("garbage").await.unwrap();
    let starter = Arc::new(Recorder::default());
    run_for(queue.clone(), starter.clone(), Duration::from_millis(300)).await;

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
    let backend = adapters::local::LocalBackend::open(dir.path()).unwrap();
    let queue: Arc<dyn EventQueue> = backend.queue.clone();
    queue.send(&event(1)).await.unwrap();
    let starter = Arc::new(Recorder::default());
    starter.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    run_for(queue.clone(), starter.clone(), Duration::from_millis(150)).await;
    assert!(starter.started.lock().unwrap().is_empty());
    assert_eq!(queue.stats().await.unwrap().in_flight, 1);
    // After the lease it is received again and, now accepted, handed over and acknowledged.
    starter.refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    run_for(queue.clone(), starter.clone(), Duration::from_millis(800)).await;
    assert_eq!(starter.started.lock().unwrap().len(), 1);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.visible, stats.in_flight), (0, 0));
}
