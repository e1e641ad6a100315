//! Measures what the functions write to CloudWatch Logs per image, for the cost model's
//! `MEASURED_*_LOG_BYTES_*` defaults (`loadtest/src/cost.rs`):
//!
//! ```sh
//! cargo test -p loadtest --test log_bytes -- --nocapture
//! ```
//!
//! The processor's part is real: 30 photos in three chunks of 10 through the chunk service over
//! the local adapters, inside the span the Lambda runtime opens per invocation, logged by the
//! subscriber `lambda_runtime::tracing::init_default_subscriber` builds when Lambda sets
//! `AWS_LAMBDA_LOG_FORMAT=JSON` (its configuration, copied: JSON, no target, no timestamp, `info`)
//! and followed by the EMF documents `adapters::aws::EmfMetrics` flushes after each invocation
//! (the same builder: namespace `imgpipe`, a `function` dimension, a `request_id` property).
//! The ingest's and the orchestrator's lines are their events as the code writes them
//! (`ingest/src/intake.rs`, `orchestrator/src/dispatch.rs`) with realistic values, in the same
//! spans; the API access line is the template's format filled in. Lambda's platform records are
//! not written by the function and stay an assumption (`PLATFORM_LOG_BYTES_PER_INVOCATION`).

use bytes::Bytes;
use imgpipe_core::preset::DEFAULT_PRESET;
use imgpipe_core::seams::{ChunkInput, ImageId, ObjectRef, Status};
use imgpipe_core::{Limits, PresetCatalog};
use ingest::{AppState, IngestConfig, LocalUploadUrls};
use processor::chunk::{ChunkConfig, ChunkService, Recipes};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::Instrument;

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

const CHUNKS: usize = 3;
const CHUNK: usize = 10;

/// A photo-like JPEG (a gradient with noise, 3000×2000 = 6 MP) that the default preset makes
/// three renditions of.
fn photo(seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let img = image::RgbImage::from_fn(3000, 2000, |x, y| {
        let n = rng.u8(0..32);
        image::Rgb([(x / 12) as u8 ^ n, (y / 8) as u8 ^ n, ((x + y) / 20) as u8 ^ n])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(&img).unwrap();
    out.into_inner()
}

fn lambda_span(request: usize) -> tracing::Span {
    // Lambda request ids are UUIDs; X-Ray trace ids look like this one.
    let request_id = format!("8f5e3c2a-1b4d-4e6f-9a7b-{request:012x}");
    let trace_id = format!("Root=1-6750a1b2-{request:024x};Parent=53995c3f42cd8ad8;Sampled=1");
    tracing::info_span!("Lambda runtime invoke", requestId = request_id.as_str(), xrayTraceId = trace_id.as_str())
}

#[tokio::test]
async fn what_the_functions_log_per_image() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .json()
        .init();
    let emf = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace("imgpipe")
        .with_dimension("function", "imgpipe-ProcessorFunction-AbCdEfGh1234".to_owned())
        .init()
        .unwrap();
    imgpipe_core::metrics::describe();

    let dir = tempfile::tempdir().unwrap();
    let backend = adapters::local::LocalBackend::open(dir.path()).unwrap();
    let recipes = Recipes::new(&PresetCatalog::builtin(), |_| Err(std::io::ErrorKind::NotFound.into())).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let service = ChunkService::new(
        backend.objects.clone(),
        backend.metadata.clone(),
        Arc::new(recipes),
        Arc::new(pool),
        ChunkConfig { io_concurrency: 8, limits: Limits::default() },
    );
    let ingest = AppState::new(
        backend.objects.clone(),
        backend.metadata.clone(),
        Arc::new(LocalUploadUrls::new("http://127.0.0.1:1/", [0; 32])),
        PresetCatalog::builtin(),
        IngestConfig::default(),
    );
    let bodies: Vec<Bytes> = (0..4).map(|seed| Bytes::from(photo(seed))).collect();

    let (mut tracing_bytes, mut emf_bytes, mut done) = (0usize, 0usize, 0usize);
    for chunk in 0..CHUNKS {
        let mut images = Vec::new();
        for i in 0..CHUNK {
            images.push(upload(&ingest, bodies[(chunk * CHUNK + i) % bodies.len()].clone()).await);
        }
        // What the uploads logged and counted is the ingest's, not the processor's.
        logs.take();
        emf.flush(std::io::sink()).unwrap();
        let input = ChunkInput { batch_id: format!("01JB{chunk:022}"), attempt: 0, images };
        let output = service.process(&input).instrument(lambda_span(chunk)).await.unwrap();
        done += output.results.iter().filter(|r| r.status == Status::Done).count();
        tracing_bytes += logs.take().len();
        emf.set_property("request_id", format!("8f5e3c2a-1b4d-4e6f-9a7b-{chunk:012x}"));
        let mut documents = Vec::new();
        emf.flush(&mut documents).unwrap();
        emf_bytes += documents.len();
        if chunk == 0 {
            println!("a processor invocation's EMF:\n{}", String::from_utf8_lossy(&documents));
        }
    }
    assert_eq!(done, CHUNKS * CHUNK, "every photo DONE");
    let images = (CHUNKS * CHUNK) as f64;
    let processor = (tracing_bytes + emf_bytes) as f64 / images;

    // The orchestrator, per invocation of 500 messages: one `workflow started` line per
    // execution of 80 images, and its EMF (executions started, images per execution).
    let orchestrator_span = lambda_span(99);
    for n in 0..7 {
        let batch_id = format!("01JB{n:022}");
        orchestrator_span.in_scope(|| tracing::info!(%batch_id, images = 80usize, "workflow started"));
        imgpipe_core::metrics::execution_started(80);
    }
    let orchestrator_lines = logs.take().len();
    emf.set_property("request_id", "8f5e3c2a-1b4d-4e6f-9a7b-000000000099".to_owned());
    let mut documents = Vec::new();
    emf.flush(&mut documents).unwrap();
    let orchestrator = (orchestrator_lines + documents.len()) as f64 / 500.0;

    // The ingest, per direct upload: one `upload accepted` line inside the route's span.
    let id = ImageId::generate();
    let key = id.original_key("jpg");
    lambda_span(7).in_scope(|| {
        // The route's span, opened inside the runtime's (`#[tracing::instrument]` on `upload`).
        let route = tracing::info_span!("upload", files = 1usize);
        route.in_scope(|| tracing::info!(image_id = %id, key = %key, bytes = 3_000_000u64, "upload accepted"))
    });
    let ingest_line = logs.take();
    let ingest = ingest_line.len() as f64;

    // API Gateway's access log line: the template's format, filled in.
    let access = concat!(
        r#"{"requestId":"SGVsbG8gV29ybGQ=","ip":"203.0.113.201","requestTime":"01/Dec/2026:22:13:32 +0000","#,
        r#""method":"GET","path":"/v1/images/01JB6Z5K8Q4R2T7W9Y3N5M1P0H","status":"200","bytes":"912","#,
        r#""latencyMs":"38","integrationLatencyMs":"36","integrationError":"-"}"#,
        "\n"
    )
    .len();

    println!("processor: {tracing_bytes} B of tracing lines + {emf_bytes} B of EMF over {images} images");
    println!("processor per image: {processor:.0} B; orchestrator per image: {orchestrator:.1} B");
    println!("pipeline per image (processor + orchestrator): {:.0} B", processor + orchestrator);
    println!("ingest per direct upload: {ingest} B: {}", String::from_utf8_lossy(&ingest_line).trim_end());
    println!("API access line: {access} B");
    // The cost model's defaults are these measurements, rounded: keep them in step.
    let defaults = loadtest::cost::CostModel::default();
    let near = |measured: f64, default: f64| (measured - default).abs() <= default * 0.15;
    assert!(
        near(processor + orchestrator, defaults.pipeline_log_bytes_per_image),
        "measured {:.0} B per image, the model assumes {}",
        processor + orchestrator,
        defaults.pipeline_log_bytes_per_image
    );
    assert!(near(ingest, defaults.ingest_log_bytes_per_upload), "ingest {ingest} B");
    assert!(near(access as f64, defaults.access_log_bytes_per_request), "access line {access} B");
}

/// Accepts `bytes` as a direct upload through the ingest's own write path; the original as a
/// chunk names it.
async fn upload(ingest: &AppState, bytes: Bytes) -> ObjectRef {
    let id = ImageId::generate();
    ingest::intake::accept_new(ingest, id, bytes, DEFAULT_PRESET, None).await.unwrap();
    let source = ingest.metadata.get(id).await.unwrap().expect("an accepted upload has its record").source;
    ObjectRef { bucket: ingest.config.bucket.clone(), key: source.key, size: source.bytes, etag: source.etag }
}
