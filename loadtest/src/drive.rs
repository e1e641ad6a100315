//! The upload phase: a closed loop (fixed concurrency) or an open loop (fixed arrival rate on a
//! wall-clock schedule), direct POSTs and presigned PUTs, each upload's outcome timed.
//!
//! Presigned uploads get their URLs from a producer that asks `POST /v1/uploads` for batches
//! just ahead of need (at most two batches in flight and one buffered), so a slot's creation,
//! which is its record's `created_ms`, stays close to its PUT.

use crate::api::{Api, CallError, Grant};
use crate::config::Load;
use crate::inputs::{InputSet, Item};
use futures_util::StreamExt;
use indicatif::ProgressBar;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, Semaphore, mpsc};

/// The run's time origin, on the monotonic clock and on the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// When the upload phase started.
    pub start: Instant,
    /// The same moment in ms since the Unix epoch.
    pub start_unix_ms: u64,
}

impl Clock {
    /// Now.
    pub fn now() -> Self {
        let start_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Self { start: Instant::now(), start_unix_ms }
    }

    /// `at` in ms since the Unix epoch.
    pub fn unix_ms(&self, at: Instant) -> u64 {
        self.start_unix_ms + at.saturating_duration_since(self.start).as_millis() as u64
    }
}

/// An upload the target accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The image id.
    pub id: String,
    /// The request that created the record (the upload, or the presign batch of its slot):
    /// sent and answered, in ms since the Unix epoch, to place the server's clock against ours.
    pub created_during: (u64, u64),
}

/// One upload's outcome.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The input it sent.
    pub input: u32,
    /// Through a presigned URL.
    pub presigned: bool,
    /// When it was due (its start in a closed loop, its slot on the schedule in an open loop).
    pub due: Instant,
    /// When its answer arrived.
    pub answered: Instant,
    /// Accepted, or why not.
    pub outcome: Result<Accepted, CallError>,
}

impl Upload {
    /// From due to answered: in an open loop this includes any wait for a free slot.
    pub fn latency(&self) -> Duration {
        self.answered.saturating_duration_since(self.due)
    }
}

/// Everything the upload phase saw.
#[derive(Debug, Default)]
pub struct UploadPhase {
    /// Every upload, in the order they were answered.
    pub uploads: Vec<Upload>,
    /// Latency of each presign request, and whether it succeeded.
    pub presigns: Vec<(Duration, bool)>,
    /// Slots reserved but never used (the run stopped before their PUT).
    pub unused_slots: usize,
    /// From the start to the last answer.
    pub elapsed: Duration,
}

/// What the uploaders share.
struct Shared {
    api: Api,
    inputs: Arc<InputSet>,
    items: Vec<Item>,
    preset: Option<String>,
    clock: Clock,
    grants: Mutex<mpsc::Receiver<GrantMessage>>,
}

/// A slot for one presigned input, or why the batch it was in was refused.
type GrantMessage = Result<(u32, Grant, (u64, u64)), (u32, CallError)>;

/// Options of the upload phase.
#[derive(Debug, Clone)]
pub struct DriveOptions {
    /// Closed or open loop.
    pub load: Load,
    /// Preset to ask for.
    pub preset: Option<String>,
    /// Files per presign request.
    pub presign_batch: usize,
    /// Stop starting uploads at this instant.
    pub deadline: Option<Instant>,
}

/// Runs the upload phase over `items`.
pub async fn drive(
    api: Api,
    inputs: Arc<InputSet>,
    items: Vec<Item>,
    options: DriveOptions,
    clock: Clock,
    bar: ProgressBar,
) -> UploadPhase {
    let presigned: Vec<u32> = items.iter().filter(|i| i.presigned).map(|i| i.input).collect();
    let batch = options.presign_batch.max(1);
    let (grant_tx, grant_rx) = mpsc::channel::<GrantMessage>(batch);
    let (presign_tx, mut presign_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        api: api.clone(),
        inputs: inputs.clone(),
        items,
        preset: options.preset.clone(),
        clock,
        grants: Mutex::new(grant_rx),
    });
    let producer = tokio::spawn(produce_grants(
        api,
        inputs,
        presigned,
        batch,
        options.preset.clone(),
        clock,
        grant_tx,
        presign_tx,
    ));

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Upload>();
    let collector = tokio::spawn(async move {
        let mut uploads = Vec::new();
        let mut refused = 0u64;
        while let Some(upload) = done_rx.recv().await {
            if upload.outcome.is_err() {
                refused += 1;
                bar.set_message(format!("uploaded, {refused} refused"));
            }
            bar.inc(1);
            uploads.push(upload);
        }
        bar.finish();
        uploads
    });

    match options.load {
        Load::Closed { concurrency } => closed_loop(&shared, concurrency, options.deadline, done_tx).await,
        Load::Open { rate, max_in_flight } => open_loop(&shared, rate, max_in_flight, options.deadline, done_tx).await,
    }
    let uploads = collector.await.expect("the collector does not panic");
    let elapsed = uploads.iter().map(|u| u.answered).max().map_or(Duration::ZERO, |end| end - clock.start);
    producer.abort();
    let mut presigns = Vec::new();
    while let Some(presign) = presign_rx.recv().await {
        presigns.push(presign);
    }
    // Slots handed out but never taken: still buffered in the channel.
    let mut unused_slots = 0;
    let mut grants = shared.grants.lock().await;
    while let Ok(message) = grants.try_recv() {
        unused_slots += usize::from(message.is_ok());
    }
    UploadPhase { uploads, presigns, unused_slots, elapsed }
}

async fn closed_loop(
    shared: &Arc<Shared>,
    concurrency: usize,
    deadline: Option<Instant>,
    done: mpsc::UnboundedSender<Upload>,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (shared, next, done) = (shared.clone(), next.clone(), done.clone());
            tokio::spawn(async move {
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&item) = shared.items.get(index) else { break };
                    let upload = upload_one(&shared, item, Instant::now()).await;
                    if done.send(upload).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("an upload worker does not panic");
    }
}

async fn open_loop(
    shared: &Arc<Shared>,
    rate: f64,
    max_in_flight: usize,
    deadline: Option<Instant>,
    done: mpsc::UnboundedSender<Upload>,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, &item) in shared.items.iter().enumerate() {
        // Due on the schedule, whatever happened before: lateness counts in the latency.
        let due = start + Duration::from_secs_f64(index as f64 / rate);
        if deadline.is_some_and(|d| due >= d) {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (shared, done) = (shared.clone(), done.clone());
        tasks.spawn(async move {
            let upload = upload_one(&shared, item, due).await;
            drop(permit);
            let _ = done.send(upload);
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn upload_one(shared: &Shared, item: Item, due: Instant) -> Upload {
    let (input, outcome) = if item.presigned {
        let message = shared.grants.lock().await.recv().await;
        match message {
            Some(Ok((input, grant, created_during))) => {
                let result = shared.api.put(&grant, shared.inputs.get(input)).await;
                (input, result.map(|()| Accepted { id: grant.id, created_during }))
            }
            Some(Err((input, error))) => (input, Err(error)),
            None => (item.input, Err(CallError::Transport("presign: no upload URL left".into()))),
        }
    } else {
        let sent = shared.clock.unix_ms(Instant::now());
        let result = shared.api.upload(shared.inputs.get(item.input), shared.preset.as_deref()).await;
        let answered = shared.clock.unix_ms(Instant::now());
        (item.input, result.map(|id| Accepted { id, created_during: (sent, answered) }))
    };
    Upload { input, presigned: item.presigned, due, answered: Instant::now(), outcome }
}

#[allow(clippy::too_many_arguments)]
async fn produce_grants(
    api: Api,
    inputs: Arc<InputSet>,
    presigned: Vec<u32>,
    batch: usize,
    preset: Option<String>,
    clock: Clock,
    grants: mpsc::Sender<GrantMessage>,
    presigns: mpsc::UnboundedSender<(Duration, bool)>,
) {
    let batches = futures_util::stream::iter(presigned.chunks(batch).map(<[u32]>::to_vec))
        .map(|batch| {
            let (api, inputs, preset) = (&api, &inputs, preset.as_deref());
            async move {
                let files: Vec<_> = batch.iter().map(|&i| inputs.get(i)).collect();
                let started = Instant::now();
                let result = api.presign(&files, preset).await;
                let window = (clock.unix_ms(started), clock.unix_ms(Instant::now()));
                (batch, started.elapsed(), window, result)
            }
        })
        .buffered(2);
    let mut batches = std::pin::pin!(batches);
    while let Some((batch, latency, window, result)) = batches.next().await {
        let _ = presigns.send((latency, result.is_ok()));
        let messages: Vec<GrantMessage> = match result {
            Ok(list) => batch.into_iter().zip(list).map(|(input, grant)| Ok((input, grant, window))).collect(),
            Err(error) => batch.into_iter().map(|input| Err((input, error.clone()))).collect(),
        };
        for message in messages {
            if grants.send(message).await.is_err() {
                return; // the upload phase is over
            }
        }
    }
}
