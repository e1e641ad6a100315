//! `lambda`: the real processor bootstrap under a Lambda Runtime API harness, timed.
//!
//! ```text
//! IMGPIPE_MOTO_URL=$(./scripts/moto-server /tmp/moto.pid) \
//!   cargo run --release -p benches --features lambda --bin lambda [-- --chunks 6 --chunk 10 --threads 1,2]
//! ```
//!
//! For each thread count, the release `processor` binary (built with `--features lambda`, as the
//! zip's `bootstrap` is) is started in an environment like Lambda's, pinned to that many cores
//! with `taskset` (Lambda shows a function one vCPU per 1,769 MB, and the processor runs a kernel
//! thread per vCPU it sees). This binary serves it the Runtime API on loopback: `next` hands out
//! chunks of fresh uploads (sharp's 2725×2225 photo, the `default` preset, originals and PENDING
//! records put in moto's S3 and DynamoDB first), `response` takes the outcomes. It measures:
//!
//! - **init**: from the process start to its first `next` (the cold start Lambda bills);
//! - **per chunk**: wall time from handing out an event to its response, and the bootstrap's CPU
//!   time over it (user + system, from `/proc`); the first chunk separately (its SDK clients
//!   connect), the rest as median and range;
//! - **peak RSS** of the process over all chunks (`VmHWM`), against the template's memory;
//! - **GB-s per image** at the memory that gives that many vCPUs (1,769 MB each), from the
//!   warm wall time, and the CPU-bound floor from CPU time alone.
//!
//! S3 and DynamoDB are moto on this machine, which uses CPU of its own: wall times carry its
//! latency and contention, CPU times do not. The results go to stdout as a table and to
//! `target/lambda-bench/lambda.json`; `loadtest`'s cost model takes its kernel time per image from
//! the latter's `cpu_ms_per_image` at one thread.

use adapters::aws::{DynamoMetadataStore, S3ObjectStore, emulator};
use anyhow::{Context, Result, bail, ensure};
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use benches::procfs::{self, USER_HZ, median};
use benches::{SHARP_BENCH_IMAGE, read_fixture};
use bytes::Bytes;
use clap::Parser;
use imgpipe_core::event::S3Notification;
use imgpipe_core::ports::{MetadataStore, ObjectMeta, ObjectStore};
use imgpipe_core::record::{MetadataRecord, Source, now_ms};
use imgpipe_core::seams::{ChunkInput, ChunkOutput, ImageId, ObjectRef, Status};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Lambda's CPU allocation: one vCPU's worth of time per this many MB of memory.
const MB_PER_VCPU: f64 = 1769.0;

/// Times the processor bootstrap under a Lambda Runtime API harness, against moto.
#[derive(Debug, Parser)]
struct Args {
    /// Chunks per thread count (the first is reported apart: its SDK clients connect).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(2..))]
    chunks: u32,

    /// Images per chunk (the orchestrator's default chunk is 10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    chunk: u32,

    /// Thread counts (cores the bootstrap is pinned to) [default: 1 and all cores].
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,

    /// The moto server [default: $IMGPIPE_MOTO_URL].
    #[arg(long, env = "IMGPIPE_MOTO_URL")]
    moto: String,

    /// Where lambda.json goes [default: target/lambda-bench].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// One thread count's measurements.
#[derive(Debug, Serialize)]
struct Run {
    /// Cores the bootstrap was pinned to (= kernel threads).
    threads: usize,
    /// The memory size that shows that many vCPUs.
    memory_mb: u32,
    /// Process start to its first `next`.
    init_ms: f64,
    /// The first chunk's wall time.
    first_chunk_ms: f64,
    /// Warm chunks' wall times.
    chunk_ms: Vec<f64>,
    /// Warm chunks' CPU times (user + system).
    chunk_cpu_ms: Vec<f64>,
    /// Median warm wall time per image.
    ms_per_image: f64,
    /// Median warm CPU time per image.
    cpu_ms_per_image: f64,
    /// GB-s per image at `memory_mb`, from the warm wall time.
    gb_s_per_image: f64,
    /// GB-s per image if CPU-bound at `memory_mb` (CPU time spread over the vCPUs).
    cpu_bound_gb_s_per_image: f64,
    /// Peak resident memory of the process.
    peak_rss_mib: f64,
}

/// `lambda.json`.
#[derive(Debug, Serialize)]
struct Report {
    /// The input photo.
    input: &'static str,
    /// Its size in bytes.
    input_bytes: usize,
    /// The preset.
    preset: &'static str,
    /// Images per chunk.
    chunk: u32,
    /// The runs.
    runs: Vec<Run>,
}

/// Where an invocation's answer goes: when it came, and its body.
type Answer = oneshot::Sender<(Instant, String)>;

/// What the Runtime API server shares with the harness.
struct Api {
    /// Events to hand out (JSON), each with where its answer goes.
    events: Mutex<mpsc::Receiver<(String, Answer)>>,
    /// Answers awaited, by request id.
    waiting: Mutex<Vec<(String, Answer)>>,
    /// When the function first asked for an event.
    first_next: Mutex<Option<Instant>>,
    /// When the last event was handed out.
    handed_out: Mutex<Option<Instant>>,
}

/// `GET /2018-06-01/runtime/invocation/next`: the next event, with Lambda's headers.
async fn next(State(api): State<Arc<Api>>) -> impl IntoResponse {
    api.first_next.lock().await.get_or_insert_with(Instant::now);
    let Some((event, answer)) = api.events.lock().await.recv().await else {
        // No more events: park the function until the harness stops it.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let id = ulid::Ulid::generate().to_string();
    api.waiting.lock().await.push((id.clone(), answer));
    *api.handed_out.lock().await = Some(Instant::now());
    let deadline = std::time::SystemTime::now() + Duration::from_secs(45);
    let deadline_ms = deadline.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("ASCII header"));
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:processor".into());
    set("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0".into());
    (headers, event)
}

/// `POST .../invocation/{id}/response` and `.../error`: the answer, kept with its time.
async fn answer(
    State(api): State<Arc<Api>>,
    UrlPath((id, kind)): UrlPath<(String, String)>,
    body: String,
) -> StatusCode {
    let at = Instant::now();
    let mut waiting = api.waiting.lock().await;
    match waiting.iter().position(|(waiting_id, _)| *waiting_id == id) {
        Some(i) => {
            let (_, tx) = waiting.swap_remove(i);
            let _ = tx.send((at, if kind == "error" { format!("error: {body}") } else { body }));
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

/// `POST /2018-06-01/runtime/init/error`: the function could not start.
async fn init_error(body: String) -> StatusCode {
    eprintln!("the processor failed to start: {body}");
    StatusCode::ACCEPTED
}

/// The moto resources and the uploads.
struct Stack {
    originals: String,
    processed: String,
    table: String,
    objects: S3ObjectStore,
    metadata: DynamoMetadataStore,
}

impl Stack {
    async fn create(moto: &str) -> Result<Self> {
        let config = emulator::config(moto).await;
        let (originals, processed, table) = (
            emulator::unique_name("bench-originals"),
            emulator::unique_name("bench-processed"),
            emulator::unique_name("bench-records"),
        );
        let in_moto =
            |what: &str, e: Box<dyn std::error::Error + Send + Sync>| anyhow::anyhow!("creating {what} in moto: {e}");
        emulator::create_bucket(&config, &originals).await.map_err(|e| in_moto("the originals bucket", e))?;
        emulator::create_bucket(&config, &processed).await.map_err(|e| in_moto("the processed bucket", e))?;
        emulator::create_table(&config, &table).await.map_err(|e| in_moto("the table", e))?;
        let objects = S3ObjectStore::new(&config, &originals);
        let metadata = DynamoMetadataStore::new(&config, &table);
        Ok(Self { originals, processed, table, objects, metadata })
    }

    /// Stores `bytes` as an accepted upload (original and PENDING record), as ingest does.
    async fn upload(&self, bytes: &Bytes) -> Result<ObjectRef> {
        let id = ImageId::generate();
        let key = id.original_key("jpg");
        let meta = ObjectMeta { content_type: "image/jpeg".into(), ..ObjectMeta::default() };
        let info = self.objects.put(&key, bytes.clone(), &meta).await?;
        let object = ObjectRef { bucket: self.originals.clone(), key: key.clone(), size: info.size, etag: info.etag };
        let source =
            Source { key, bytes: info.size, etag: object.etag.clone(), content_type: meta.content_type.clone() };
        let record = MetadataRecord::pending(id, source, "default".into(), now_ms());
        self.metadata.accept(&record, &S3Notification::object_created(&object, "bench").to_json()).await?;
        Ok(object)
    }
}

/// user + system CPU time of `pid`, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let [user, system, ..] = procfs::cpu_ticks(&stat).context("reading /proc/PID/stat")?;
    Ok(Duration::from_secs_f64((user + system) as f64 / USER_HZ))
}

/// The peak resident set of `pid` in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = procfs::status_kib(&status, "VmHWM").context("no VmHWM in /proc/PID/status")?;
    Ok(kib as f64 / 1024.0)
}

/// The memory size at which Lambda shows `threads` vCPUs.
fn memory_mb(threads: usize) -> u32 {
    (threads as f64 * MB_PER_VCPU).ceil() as u32
}

/// Kills the child when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the bootstrap pinned to `threads` cores, against the Runtime API at `api`.
fn start(program: &Path, threads: usize, api: &str, stack: &Stack, moto: &str) -> Result<Running> {
    let cores = format!("0-{}", threads - 1);
    let memory = memory_mb(threads);
    let child = Command::new("taskset")
        .args(["-c", &cores])
        .arg(program)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "processor")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.to_string())
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/processor")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("RUST_LOG", "warn")
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("ORIGINALS_BUCKET", &stack.originals)
        .env("PROCESSED_BUCKET", &stack.processed)
        .env("METADATA_TABLE", &stack.table)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the processor under taskset (util-linux)")?;
    Ok(Running(child))
}

/// One thread count: start the bootstrap, hand it `chunks` chunks, measure.
async fn run(args: &Args, program: &Path, threads: usize, stack: &Stack, photo: &Bytes) -> Result<Run> {
    let mut chunks = Vec::new();
    for _ in 0..args.chunks {
        let mut images = Vec::new();
        for _ in 0..args.chunk {
            images.push(stack.upload(photo).await.context("uploading to moto")?);
        }
        chunks.push(ChunkInput { batch_id: ulid::Ulid::generate().to_string(), attempt: 0, images });
    }

    let (events_tx, events_rx) = mpsc::channel(1);
    let api = Arc::new(Api {
        events: Mutex::new(events_rx),
        waiting: Mutex::new(Vec::new()),
        first_next: Mutex::new(None),
        handed_out: Mutex::new(None),
    });
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let started = Instant::now();
    let child = start(program, threads, &address.to_string(), stack, &args.moto)?;
    let pid = child.0.id();
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for chunk in &chunks {
        let (tx, rx) = oneshot::channel();
        let cpu_before = cpu_time(pid)?;
        events_tx.send((serde_json::to_string(chunk)?, tx)).await?;
        let (at, body) = tokio::time::timeout(Duration::from_secs(120), rx)
            .await
            .context("the processor did not answer a chunk within 120 s")??;
        let cpu = cpu_time(pid)? - cpu_before;
        let handed_out = api.handed_out.lock().await.context("answered before any event")?;
        let output: ChunkOutput =
            serde_json::from_str(&body).with_context(|| format!("the processor answered {body}"))?;
        let done = output.results.iter().filter(|r| r.status == Status::Done).count();
        ensure!(done == chunk.images.len(), "{done} of {} images DONE: {body}", chunk.images.len());
        walls.push((at - handed_out).as_secs_f64() * 1e3);
        cpus.push(cpu.as_secs_f64() * 1e3);
    }
    let first_next = api.first_next.lock().await.context("the processor never asked for an event")?;
    let peak = peak_rss_mib(pid)?;
    drop(child);
    server.abort();

    let images = f64::from(args.chunk);
    let memory_mb = memory_mb(threads);
    let gb = f64::from(memory_mb) / 1024.0;
    let warm_wall = walls[1..].to_vec();
    let warm_cpu = cpus[1..].to_vec();
    let ms_per_image = median(warm_wall.clone()) / images;
    let cpu_ms_per_image = median(warm_cpu.clone()) / images;
    Ok(Run {
        threads,
        memory_mb,
        init_ms: (first_next - started).as_secs_f64() * 1e3,
        first_chunk_ms: walls[0],
        chunk_ms: warm_wall,
        chunk_cpu_ms: warm_cpu,
        ms_per_image,
        cpu_ms_per_image,
        gb_s_per_image: ms_per_image / 1e3 * gb,
        cpu_bound_gb_s_per_image: cpu_ms_per_image / threads as f64 / 1e3 * gb,
        peak_rss_mib: peak,
    })
}

/// Builds the release bootstrap (a no-op when it is up to date).
fn build_processor(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "processor", "--features", "lambda", "--bin", "processor"])
        .status()
        .context("running cargo build")?;
    ensure!(status.success(), "building the processor failed");
    let program = root.join("target/release/processor");
    ensure!(program.is_file(), "{} was not built", program.display());
    Ok(program)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !args.moto.starts_with("http://127.0.0.1:") {
        bail!(
            "--moto must be a loopback moto URL; start one with IMGPIPE_MOTO_URL=$(./scripts/moto-server /tmp/moto.pid)"
        );
    }
    // SAFETY: set before any thread of ours reads the environment (the runtime's workers do not).
    unsafe { std::env::set_var("AWS_EC2_METADATA_DISABLED", "true") };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("the benches crate has no parent")?;
    let program = build_processor(root)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads =
        if args.threads.is_empty() { if cores > 1 { vec![1, cores] } else { vec![1] } } else { args.threads.clone() };
    ensure!(threads.iter().all(|&t| (1..=cores).contains(&t)), "thread counts must be 1..={cores}");

    let photo = Bytes::from(read_fixture(SHARP_BENCH_IMAGE)?);
    let stack = Stack::create(&args.moto).await?;
    let mut runs = Vec::new();
    for &t in &threads {
        eprintln!("processor on {t} core(s): {} chunks of {} images", args.chunks, args.chunk);
        runs.push(run(&args, &program, t, &stack, &photo).await?);
    }

    println!(
        "{:>7} {:>9} {:>8} {:>11} {:>14} {:>10} {:>9} {:>13} {:>14} {:>9}",
        "threads",
        "memory",
        "init",
        "1st chunk",
        "warm chunk",
        "ms/image",
        "CPU ms",
        "GB-s/image",
        "CPU-bound GB-s",
        "peak RSS"
    );
    for r in &runs {
        let (low, high) = r.chunk_ms.iter().fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        println!(
            "{:>7} {:>6} MB {:>5.0} ms {:>8.0} ms {:>5.0} ({:.0}–{:.0}) {:>10.1} {:>9.1} {:>13.5} {:>14.5} {:>5.0} MiB",
            r.threads,
            r.memory_mb,
            r.init_ms,
            r.first_chunk_ms,
            median(r.chunk_ms.clone()),
            low,
            high,
            r.ms_per_image,
            r.cpu_ms_per_image,
            r.gb_s_per_image,
            r.cpu_bound_gb_s_per_image,
            r.peak_rss_mib
        );
    }
    let out = args.out.clone().unwrap_or_else(|| root.join("target/lambda-bench"));
    std::fs::create_dir_all(&out)?;
    let report =
        Report { input: SHARP_BENCH_IMAGE, input_bytes: photo.len(), preset: "default", chunk: args.chunk, runs };
    let path = out.join("lambda.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
