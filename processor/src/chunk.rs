//! The chunk service: one processor invocation (one Map iteration) around the kernel.
//!
//! Fetch originals with bounded I/O concurrency, run the kernel on the rayon pool (never on the
//! async runtime's threads), store renditions at deterministic keys, then write the final
//! records in batches. Safe to run twice on the same chunk: an image already DONE or FAILED is
//! reported as it is and not processed again, and a retry overwrites identical bytes.

use crate::{Encoded, Facts, Output, Recipe, RecipeError};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use imgpipe_core::metrics::{self, Stage};
use imgpipe_core::ports::{Begin, MetadataError, MetadataStore, ObjectMeta, ObjectStore, StoreError};
use imgpipe_core::record::{MetadataRecord, Original, RenditionRecord, StageDurations, now_ms};
use imgpipe_core::seams::{ChunkInput, ChunkOutput, ImageId, ImageOutcome, ObjectRef, Status};
use imgpipe_core::{ImageError, InputFormat, Limits, Live, PresetCatalog};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{Instrument, info_span, warn};

/// Records handed to one [`MetadataStore::finish`] call.
pub const RECORD_BATCH: usize = 25;

/// Every preset of a catalog, ready to run.
pub struct Recipes(HashMap<String, Recipe>);

impl Recipes {
    /// Prepares every preset of `catalog`; `read` loads watermark logos by path.
    pub fn new(catalog: &PresetCatalog, read: impl Fn(&str) -> std::io::Result<Vec<u8>>) -> Result<Self, RecipeError> {
        let recipes = catalog
            .iter()
            .map(|preset| Ok((preset.name.clone(), Recipe::new(preset.clone(), &read)?)))
            .collect::<Result<_, RecipeError>>()?;
        Ok(Self(recipes))
    }

    /// The recipe of preset `name`.
    pub fn get(&self, name: &str) -> Option<&Recipe> {
        self.0.get(name)
    }
}

/// A chunk that failed as a whole; [`is_retryable`](Self::is_retryable) failures are retried by
/// the workflow. The port's error stays the `source`; the message (what the state machine and
/// the logs see) names the store, then that error.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// Reading an original or storing a rendition failed.
    #[error("object store: {0}")]
    Objects(#[from] StoreError),
    /// Reading or writing a record failed.
    #[error("metadata store: {0}")]
    Metadata(#[from] MetadataError),
}

impl ChunkError {
    /// Whether running the chunk again may succeed (throttling, timeouts, 5xx), as the port
    /// error says.
    pub fn is_retryable(&self) -> bool {
        match self {
            ChunkError::Objects(e) => e.is_retryable(),
            ChunkError::Metadata(e) => e.is_retryable(),
        }
    }
}

/// Processes chunks of images end to end.
pub struct ChunkService {
    objects: Arc<dyn ObjectStore>,
    renditions: Arc<dyn ObjectStore>,
    metadata: Arc<dyn MetadataStore>,
    recipes: Live<Recipes>,
    limits: Arc<Limits>,
    pool: Arc<rayon::ThreadPool>,
    io_concurrency: usize,
}

/// How the chunk service is set up.
pub struct ChunkConfig {
    /// Originals fetched (and renditions stored) at once.
    pub io_concurrency: usize,
    /// Limits applied to every image.
    pub limits: Limits,
}

impl ChunkService {
    /// A service over the given stores, running the kernel on `pool` with the recipes `recipes`
    /// holds when each image starts (a fixed `Arc<Recipes>`, or a [`Live`] handle that a presets
    /// reload replaces).
    pub fn new(
        objects: Arc<dyn ObjectStore>,
        metadata: Arc<dyn MetadataStore>,
        recipes: impl Into<Live<Recipes>>,
        pool: Arc<rayon::ThreadPool>,
        config: ChunkConfig,
    ) -> Self {
        Self {
            renditions: objects.clone(),
            objects,
            metadata,
            recipes: recipes.into(),
            limits: Arc::new(config.limits),
            pool,
            io_concurrency: config.io_concurrency.max(1),
        }
    }

    /// Stores renditions in `store` instead of beside the originals (on AWS: the processed
    /// bucket, while originals are read from the originals bucket).
    pub fn with_rendition_store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.renditions = store;
        self
    }

    /// The metadata store the service records into.
    pub fn metadata(&self) -> &Arc<dyn MetadataStore> {
        &self.metadata
    }

    /// Processes one chunk: an outcome per image, in input order (images without a record are
    /// skipped). On a retryable failure the images already finished are recorded first, so the
    /// retry only redoes the rest.
    // The span puts `batch_id` on every line of the chunk, each image's `image_id` under it.
    #[tracing::instrument(name = "chunk", skip_all, fields(batch_id = %input.batch_id, images = input.images.len()))]
    pub async fn process(&self, input: &ChunkInput) -> Result<ChunkOutput, ChunkError> {
        // Futures built up front (not in a stream closure) keep callers' futures `Send`.
        let images: Vec<_> = input.images.iter().map(|object| self.image(object)).collect();
        let outcomes: Vec<Result<Option<Finished>, ChunkError>> =
            stream::iter(images).buffered(self.io_concurrency).collect().await;
        let mut results = Vec::with_capacity(outcomes.len());
        let mut records = Vec::new();
        let mut failure = None;
        for outcome in outcomes {
            match outcome {
                Ok(Some(finished)) => {
                    results.push(finished.outcome);
                    records.extend(finished.record);
                }
                Ok(None) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        for batch in records.chunks(RECORD_BATCH) {
            self.metadata.finish(batch).await?;
            // Counted once written: a chunk retried after a failed write counts its images once.
            count_finished(batch);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(ChunkOutput { results }),
        }
    }

    async fn image(&self, object: &ObjectRef) -> Result<Option<Finished>, ChunkError> {
        let Some(id) = ImageId::from_original_key(&object.key) else {
            warn!(key = %object.key, "not an original's key; skipped");
            return Ok(None);
        };
        let span = info_span!("image", image_id = %id, key = %object.key);
        async move {
            let mut record = match self.metadata.begin(id, now_ms()).await? {
                Begin::Unknown => {
                    // The orchestrator only hands over objects that have a record (it sends the
                    // others back to the queue): the record was deleted since.
                    tracing::error!("no record for this object any more; skipped");
                    return Ok(None);
                }
                Begin::AlreadyFinal(record) => return Ok(Some(Finished::already(&record))),
                Begin::Started(record) => record,
            };
            let fetch = Instant::now();
            let bytes = match self.objects.get(&object.key).await {
                Ok((bytes, info)) => {
                    // What was processed, as the store reports it: on AWS a presigned upload's
                    // bytes never pass through the ingest, so only here are they known.
                    record.source.etag = info.etag;
                    record.source.bytes = info.size;
                    record.source.content_type = InputFormat::sniff_content_type(&bytes).to_owned();
                    metrics::bytes_in(info.size);
                    bytes
                }
                Err(StoreError::NotFound { .. }) => {
                    return Ok(Some(Finished::failed(record, ImageError::internal("the original is missing"))));
                }
                Err(e) => return Err(e.into()),
            };
            let fetched = fetch.elapsed();
            let output = match self.run_kernel(bytes, record.preset.clone()).await {
                Ok(output) => output,
                Err(error) => return Ok(Some(Finished::failed(record, error))),
            };
            let store = Instant::now();
            let facts = output.facts.clone();
            let renditions = self.store(id, output.renditions).await?;
            let stored = fetched + store.elapsed();
            Ok(Some(self.done(record, facts, renditions, stored)))
        }
        .instrument(span)
        .await
    }

    /// Runs the kernel on the rayon pool and waits for it without blocking the runtime.
    async fn run_kernel(&self, bytes: Bytes, preset: String) -> Result<Output, ImageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (recipes, limits) = (self.recipes.current(), self.limits.clone());
        self.pool.spawn(move || {
            let result = match recipes.get(&preset) {
                Some(recipe) => crate::process(&bytes, recipe, &limits),
                None => Err(ImageError::internal(format!("preset {preset:?} is not defined on this processor"))),
            };
            let _ = tx.send(result);
        });
        rx.await.unwrap_or_else(|_| Err(ImageError::internal("the worker pool dropped the image")))
    }

    async fn store(&self, id: ImageId, renditions: Vec<Encoded>) -> Result<Vec<RenditionRecord>, ChunkError> {
        let puts = renditions.into_iter().map(|r| async move {
            let key = id.rendition_key(&r.name, r.format);
            let meta = ObjectMeta { content_type: r.format.content_type().to_owned(), ..ObjectMeta::default() };
            let size = r.bytes.len() as u64;
            self.renditions.put(&key, Bytes::from(r.bytes), &meta).await?;
            metrics::bytes_out(size);
            Ok::<_, ChunkError>(RenditionRecord {
                name: r.name,
                key,
                format: r.format,
                width: r.width,
                height: r.height,
                bytes: size,
            })
        });
        futures_util::future::try_join_all(puts).await
    }

    fn done(
        &self,
        mut record: MetadataRecord,
        facts: Facts,
        renditions: Vec<RenditionRecord>,
        store: Duration,
    ) -> Finished {
        let t = facts.timings;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let durations = StageDurations {
            decode: ms(t.decode),
            resize: ms(t.resize),
            watermark: ms(t.watermark),
            encode: ms(t.encode),
            store: ms(store),
        };
        for (stage, time) in [
            (Stage::Decode, t.decode),
            (Stage::Resize, t.resize),
            (Stage::Watermark, t.watermark),
            (Stage::Encode, t.encode),
            (Stage::Store, store),
        ] {
            metrics::stage(stage, time.as_secs_f64());
        }
        record.placeholder = Some(facts.placeholder.clone());
        record.original = Some(Original {
            format: facts.format,
            width: facts.width,
            height: facts.height,
            orientation: facts.orientation,
        });
        record.renditions = renditions;
        record.error = None;
        record.durations_ms = Some(durations);
        let record = record.finished(Status::Done, now_ms());
        Finished { outcome: ImageOutcome { id: record.id, status: Status::Done, error: None }, record: Some(record) }
    }
}

/// An image's outcome, and the final record to write (none when it was already final).
struct Finished {
    outcome: ImageOutcome,
    record: Option<MetadataRecord>,
}

impl Finished {
    fn already(record: &MetadataRecord) -> Self {
        Finished {
            outcome: ImageOutcome { id: record.id, status: record.status, error: record.error.clone() },
            record: None,
        }
    }

    fn failed(mut record: MetadataRecord, error: ImageError) -> Self {
        tracing::info!(kind = %error.kind, message = %error.message, "image failed");
        record.error = Some(error.clone());
        let record = record.finished(Status::Failed, now_ms());
        Finished {
            outcome: ImageOutcome { id: record.id, status: Status::Failed, error: Some(error) },
            record: Some(record),
        }
    }
}

/// FAILED records for every image of `images` that is not final yet: the workflow's Catch.
pub async fn fail_all(
    metadata: &dyn MetadataStore,
    images: &[ObjectRef],
    error: &ImageError,
) -> Result<(), MetadataError> {
    let mut records = Vec::new();
    for object in images {
        let Some(id) = ImageId::from_original_key(&object.key) else { continue };
        if let Some(record) = metadata.get(id).await?.filter(|r| !r.status.is_final()) {
            records.push(Finished::failed(record, error.clone()).record.expect("failed records are written"));
        }
    }
    for batch in records.chunks(RECORD_BATCH) {
        metadata.finish(batch).await?;
        count_finished(batch);
    }
    Ok(())
}

/// Counts final records just written: DONE ones with their time from upload to record, FAILED
/// ones by error kind.
fn count_finished(records: &[MetadataRecord]) {
    for record in records {
        match (record.status, &record.error) {
            (Status::Done, _) => {
                metrics::image_done();
                if let Some(finished) = record.finished_ms {
                    let ms = finished.saturating_sub(record.created_ms);
                    metrics::stage(Stage::EndToEnd, ms as f64 / 1e3);
                }
            }
            (Status::Failed, Some(error)) => metrics::image_failed(error.kind),
            _ => {}
        }
    }
}
