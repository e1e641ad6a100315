//! The local stack: the same parts as on AWS, wired in one process over a data directory.
//!
//! `data/objects/` holds originals and renditions, `data/imgpipe.sqlite` the queue and the
//! metadata. The ingest router accepts uploads, the orchestrator loop groups queued events into
//! workflows, the in-process runner processes their chunks on the rayon pool.

use crate::recover::recover;
use adapters::local::{Durability, Handoff, LocalBackend};
use anyhow::{Context, Result};
use imgpipe_core::ports::{EventQueue, MetadataStore, ObjectStore};
use imgpipe_core::{Limits, PresetCatalog};
use ingest::metrics::Exposition;
use ingest::{AppState, IngestConfig, LocalUploadUrls};
use orchestrator::local::LoopConfig;
use processor::chunk::{ChunkConfig, ChunkService, Recipes};
use processor::workflow::LocalWorkflows;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the local stack needs to start.
pub struct StackConfig {
    /// The data directory.
    pub data: PathBuf,
    /// The presets uploads may name.
    pub presets: PresetCatalog,
    /// Where relative logo paths of the presets are resolved.
    pub presets_dir: PathBuf,
    /// Threads that run the image kernel.
    pub workers: usize,
    /// Limits on every image.
    pub limits: Limits,
    /// API settings (key, upload limits).
    pub ingest: IngestConfig,
    /// The URL clients reach the API at (for signed upload URLs).
    pub base_url: String,
    /// Visibility lease of received queue messages.
    pub lease: Duration,
    /// Whether to process the queue (false: accept and queue only).
    pub process: bool,
    /// What a stored object survives: a power loss, or (for a throwaway data directory) only a
    /// killed process.
    pub durability: Durability,
}

/// Bytes of just-uploaded originals held in memory for the processor (see [`Handoff`]).
const HANDOFF_BUDGET: u64 = 128 << 20;

/// How often expired upload slots are looked for.
const SLOT_SWEEP: Duration = Duration::from_secs(60);

/// A running local pipeline.
pub struct Stack {
    /// The ingest router's state (the same ports the pipeline uses).
    pub state: AppState,
    /// The workflow runner (to wait for it to drain).
    pub runner: LocalWorkflows,
    /// Where renditions are stored: the files behind `state.objects`, without the hand-off.
    pub renditions: Arc<dyn ObjectStore>,
    /// The hand-off in front of the files that `state.objects` is: uploads pass originals to
    /// the processor through it.
    pub handoff: Arc<Handoff>,
    stop: watch::Sender<bool>,
    orchestrator: Option<JoinHandle<()>>,
}

impl Stack {
    /// Opens the data directory, requeues what a previous run left unfinished, and starts the
    /// orchestrator loop and the runner.
    pub async fn start(config: StackConfig) -> Result<Stack> {
        let backend = LocalBackend::open_with(&config.data, config.durability)
            .with_context(|| format!("cannot open the data directory {}", config.data.display()))?;
        // One recorder for the whole process: the chunk service records, `/metrics` renders.
        let recorder = ingest::metrics::install();
        imgpipe_core::metrics::register_pipeline();
        let presets_dir = config.presets_dir.clone();
        let recipes = Recipes::new(&config.presets, |logo| std::fs::read(presets_dir.join(logo)))?;
        // A bulk upload may declare only the types the processor takes.
        let ingest_config = IngestConfig { formats: config.limits.formats.clone(), ..config.ingest };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.workers)
            .thread_name(|i| format!("imgpipe-kernel-{i}"))
            .build()?;
        // Originals go through the hand-off (the processor reads them soon after the upload);
        // renditions, read later if at all, go straight to the files.
        let handoff = Arc::new(Handoff::new(backend.objects.clone(), HANDOFF_BUDGET));
        let objects: Arc<dyn ObjectStore> = handoff.clone();
        let metadata: Arc<dyn MetadataStore> = backend.metadata.clone();
        let queue: Arc<dyn EventQueue> = backend.queue.clone();
        let service = ChunkService::new(
            objects.clone(),
            metadata.clone(),
            Arc::new(recipes),
            Arc::new(pool),
            ChunkConfig { io_concurrency: 2 * config.workers + 2, limits: config.limits },
        )
        .with_rendition_store(backend.objects.clone());
        // Two workflows per worker keep the pool busy while others wait on I/O. A chunk that
        // runs out of retries goes back to the queue after the same delay as on AWS.
        let runner = LocalWorkflows::new(Arc::new(service), 2 * config.workers)
            .with_redrive(queue.clone(), imgpipe_core::policy::REDRIVE_DELAY);
        recover(objects.as_ref(), metadata.as_ref(), &backend.queue, config.process).await?;
        let (stop, stopped) = watch::channel(false);
        // Presigned upload slots whose URL expired and whose bytes never came (DynamoDB's TTL
        // does this on AWS).
        let slots = backend.metadata.clone();
        let mut stopped_sweeping = stopped.clone();
        tokio::spawn(async move {
            loop {
                match slots.expire_slots(ingest::signing::unix_now()).await {
                    Ok(0) => {}
                    Ok(expired) => tracing::info!(expired, "expired upload slots removed"),
                    Err(e) => tracing::warn!(error = %e, "removing expired upload slots failed"),
                }
                tokio::select! {
                    () = tokio::time::sleep(SLOT_SWEEP) => {}
                    _ = stopped_sweeping.changed() => return,
                }
            }
        });

        let loop_config =
            LoopConfig { max_messages: 10 * config.workers.max(1), lease: config.lease, ..LoopConfig::default() };
        let orchestrator = config.process.then(|| {
            tokio::spawn(orchestrator::local::run(
                queue.clone(),
                Arc::new(runner.clone()),
                metadata.clone(),
                loop_config,
                stopped,
            ))
        });
        let secret = signing_key(&config.data)?;
        // Fixed presets: the local ones are read once, at start.
        let urls = Arc::new(LocalUploadUrls::new(config.base_url, secret));
        let state = AppState::new(objects, metadata, urls, config.presets, ingest_config)
            .with_queue(queue)
            .with_metrics(Exposition { recorder: Some(recorder), record_counts: true });
        Ok(Stack { state, runner, renditions: backend.objects, handoff, stop, orchestrator })
    }

    /// Stops receiving, then waits up to `deadline` for running workflows. What is not done
    /// stays queued (or PENDING) and is picked up by the next start.
    pub async fn shutdown(self, deadline: Duration) -> bool {
        let _ = self.stop.send(true);
        if let Some(orchestrator) = self.orchestrator {
            let _ = orchestrator.await;
        }
        self.runner.drain(deadline).await
    }
}

/// The HMAC key for upload URLs: random, created once per data directory and kept there, so
/// URLs handed out stay valid across restarts.
fn signing_key(data: &Path) -> Result<[u8; 32]> {
    let path = data.join("signing.key");
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for the signing key: {e}"))?;
    write_private(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}
