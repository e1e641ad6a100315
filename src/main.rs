//! `imgpipe`: the embedded (single machine) mode of the pipeline.
//!
//! - `imgpipe serve`: the v1 upload API on 127.0.0.1 and the whole pipeline (queue with SQS
//!   semantics, orchestrator, workflow runner, processor, metadata) over a data directory.
//! - `imgpipe process DIR`: pushes every file of a folder through that same pipeline, shows
//!   progress, and exports the renditions and a summary when it is drained.

mod stack;

use adapters::local::Durability;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures_util::{StreamExt, stream};
use imgpipe_core::preset::DEFAULT_PRESET;
use imgpipe_core::record::MetadataRecord;
use imgpipe_core::seams::{ImageId, Status};
use imgpipe_core::{ErrorKind, ImageError, Limits, PresetCatalog};
use indicatif::{ProgressBar, ProgressStyle};
use ingest::IngestConfig;
use serde::Serialize;
use stack::{Stack, StackConfig};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "imgpipe", version, about = "Resize and watermark images at scale", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the upload API and run the whole pipeline on this machine.
    ///
    /// Try: curl -X POST --data-binary @photo.jpg http://127.0.0.1:8080/v1/images
    Serve(ServeArgs),
    /// Process every file in a folder (recursively) through the pipeline, then export the
    /// renditions and a summary.json.
    ///
    /// Formats are recognised from file contents, not names; files that are not images, or are
    /// broken or too large, end FAILED with the reason and do not stop the run.
    Process(ProcessArgs),
}

/// Settings both commands share.
#[derive(clap::Args)]
struct Common {
    /// TOML file of presets (see README, "Presets"); adds to the built-in ones.
    #[arg(long, env = "IMGPIPE_PRESETS")]
    presets: Option<PathBuf>,
    /// Threads that run the image kernel (default: one per core).
    #[arg(long, env = "IMGPIPE_WORKERS")]
    workers: Option<usize>,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Data directory: originals, renditions and the SQLite file.
    #[arg(long, default_value = "imgpipe-data", env = "IMGPIPE_DATA")]
    data: PathBuf,
    /// Address to listen on. Anything but loopback requires --api-key.
    #[arg(long, default_value = "127.0.0.1:8080", env = "IMGPIPE_ADDR")]
    addr: SocketAddr,
    /// API key clients must send (`Authorization: Bearer KEY` or `x-api-key: KEY`).
    #[arg(long, env = "IMGPIPE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Seconds to finish in-flight work on SIGINT/SIGTERM before exiting (the rest stays queued).
    #[arg(long, default_value_t = 30, env = "IMGPIPE_SHUTDOWN_SECONDS")]
    shutdown_seconds: u64,
    /// Visibility lease of received queue messages, in seconds: after a crash, unacknowledged
    /// messages are redelivered this long after they were received.
    #[arg(long, default_value_t = 60, env = "IMGPIPE_LEASE_SECONDS")]
    lease_seconds: u64,
    /// Accept and queue uploads without processing them (processing resumes on a normal start;
    /// also how the upload path is measured on its own).
    #[arg(long, env = "IMGPIPE_INGEST_ONLY")]
    ingest_only: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct ProcessArgs {
    /// Folder of images to process.
    dir: PathBuf,
    /// Where renditions go: OUT/<file>/<rendition>.<ext>, plus OUT/summary.json.
    #[arg(long, short, default_value = "imgpipe-out", env = "IMGPIPE_OUT")]
    out: PathBuf,
    /// Preset to apply (from --presets, or the built-in `default`).
    #[arg(long, default_value = DEFAULT_PRESET, env = "IMGPIPE_PRESET")]
    preset: String,
    /// Data directory to run the pipeline in (default: a temporary one, removed at the end).
    #[arg(long, env = "IMGPIPE_DATA")]
    data: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

/// The limits every image is checked against before its pixels are allocated.
#[derive(clap::Args)]
struct LimitArgs {
    /// Largest accepted file, in bytes.
    #[arg(long, env = "IMGPIPE_MAX_BYTES", default_value_t = Limits::default().max_input_bytes)]
    max_bytes: u64,
    /// Largest accepted image, in pixels (width × height).
    #[arg(long, env = "IMGPIPE_MAX_PIXELS", default_value_t = Limits::default().max_pixels)]
    max_pixels: u64,
    /// Longest accepted side, in pixels.
    #[arg(long, env = "IMGPIPE_MAX_SIDE", default_value_t = Limits::default().max_side)]
    max_side: u32,
}

impl Common {
    fn stack_config(&self, data: PathBuf, ingest: IngestConfig, base_url: String) -> Result<StackConfig> {
        let (presets, presets_dir) = match &self.presets {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("cannot read presets {}", path.display()))?;
                let catalog = PresetCatalog::from_toml(&text).with_context(|| format!("in {}", path.display()))?;
                (catalog, path.parent().unwrap_or(Path::new(".")).to_path_buf())
            }
            None => (PresetCatalog::builtin(), PathBuf::from(".")),
        };
        let limits = Limits {
            max_input_bytes: self.limits.max_bytes,
            max_pixels: self.limits.max_pixels,
            max_side: self.limits.max_side,
            ..Limits::default()
        };
        let workers = self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let lease = orchestrator::local::LoopConfig::default().lease;
        Ok(StackConfig {
            data,
            presets,
            presets_dir,
            workers: workers.max(1),
            limits,
            ingest,
            base_url,
            lease,
            process: true,
            durability: Durability::PowerLoss,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Process(args) => process_dir(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,imgpipe=info".into()),
        )
        .init();
    if !args.addr.ip().is_loopback() && args.api_key.is_none() {
        bail!("refusing to listen on {} without an API key: pass --api-key (or IMGPIPE_API_KEY)", args.addr);
    }
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {} (is another imgpipe running? try --addr)", args.addr))?;
    let addr = listener.local_addr()?;
    let ingest = IngestConfig {
        api_key: args.api_key.clone(),
        max_upload_bytes: args.common.limits.max_bytes,
        ..IngestConfig::default()
    };
    let mut config = args.common.stack_config(args.data.clone(), ingest, format!("http://{addr}"))?;
    config.lease = Duration::from_secs(args.lease_seconds.max(1));
    config.process = !args.ingest_only;
    let stack = Stack::start(config).await?;
    let mode = if args.ingest_only { ", ingest only: uploads are queued, not processed" } else { "" };
    say(format_args!("imgpipe listening on http://{addr} (data in {}{mode})", args.data.display()));
    axum::serve(listener, ingest::router(stack.state.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the server failed")?;
    say(format_args!("shutting down: finishing in-flight work (up to {} s)", args.shutdown_seconds));
    let idle = stack.shutdown(Duration::from_secs(args.shutdown_seconds)).await;
    if !idle {
        say(format_args!("unfinished work stays queued and resumes on the next start"));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a status line; a closed stdout (`imgpipe serve | head`) must not stop the server.
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return interrupt.await.unwrap_or(()),
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await.unwrap_or(());
}

/// One line of `summary.json`.
#[derive(Serialize)]
struct Line {
    file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<ImageId>,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ImageError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<MetadataRecord>,
    renditions: Vec<PathBuf>,
}

fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

async fn process_dir(args: ProcessArgs) -> Result<ExitCode> {
    let files = list_files(&args.dir)?;
    if files.is_empty() {
        bail!("{} holds no files to process", args.dir.display());
    }
    let temp = match &args.data {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("cannot create a temporary data directory")?),
    };
    let data = args.data.clone().unwrap_or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()).unwrap_or_default());
    let max_bytes = args.common.limits.max_bytes;
    let ingest = IngestConfig { max_upload_bytes: max_bytes, ..IngestConfig::default() };
    let mut config = args.common.stack_config(data, ingest, "http://127.0.0.1".into())?;
    if temp.is_some() {
        // The data directory is removed when this process ends: nothing in it is worth an fsync.
        config.durability = Durability::ProcessCrash;
    }
    if config.presets.get(&args.preset).is_none() {
        let known: Vec<_> = config.presets.iter().map(|p| p.name.clone()).collect();
        bail!("no preset named {:?} (known: {}); define it in --presets FILE", args.preset, known.join(", "));
    }
    let workers = config.workers;
    let stack = Stack::start(config).await?;
    let (finished_before, _) = progress(&stack).await?;
    let started = Instant::now();
    let started_ms = imgpipe_core::record::now_ms();

    let bar = ProgressBar::new(files.len() as u64).with_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg} ({per_sec})",
    )?);
    bar.set_message("uploaded");
    let state = stack.state.clone();
    let uploads: Vec<(PathBuf, Result<ImageId, ImageError>)> = stream::iter(&files)
        .map(|file| {
            let (state, bar, preset) = (state.clone(), bar.clone(), args.preset.clone());
            let relative = file.strip_prefix(&args.dir).unwrap_or(file).to_path_buf();
            let handoff = stack.handoff.clone();
            async move {
                // Stay just ahead of the processor, so that it takes each original from memory.
                handoff.until_room(UPLOAD_PATIENCE).await;
                let result = upload(&state, file, &preset, max_bytes).await;
                bar.inc(1);
                (relative, result)
            }
        })
        .buffered(16)
        .collect()
        .await;
    bar.finish_and_clear();

    let accepted: Vec<ImageId> = uploads.iter().filter_map(|(_, r)| r.as_ref().ok().copied()).collect();
    let bar = ProgressBar::new(accepted.len() as u64).with_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} processed ({per_sec})",
    )?);
    let records = wait_until_final(&stack, &accepted, finished_before, &bar).await?;
    bar.finish_and_clear();
    // From the first upload to the last record written final (not to when polling noticed).
    let last_final = records.values().filter_map(|r| r.finished_ms).max();
    let elapsed =
        last_final.map_or_else(|| started.elapsed(), |ms| Duration::from_millis(ms.saturating_sub(started_ms)));

    // Renditions in a throwaway data directory are linked into OUT, not copied: no bytes move,
    // and the files outlive the directory. Those of a kept `--data` are copied, so that editing
    // an exported file cannot change a stored rendition.
    let link = temp.is_some();
    let lines = export(&stack, uploads, &records, &args.out, link).await?;
    if !stack.shutdown(Duration::from_secs(10)).await {
        eprintln!("warning: the pipeline was still busy at exit");
    }
    report(&lines, &records, elapsed, workers, &args.out)
}

/// How long an upload of `process` waits for the processor to take earlier originals before it
/// goes ahead anyway (they are then read back from the files).
const UPLOAD_PATIENCE: Duration = Duration::from_secs(1);

/// Reads a file and hands it to the ingest path, as an upload would.
async fn upload(state: &ingest::AppState, file: &Path, preset: &str, max_bytes: u64) -> Result<ImageId, ImageError> {
    let path = file.to_path_buf();
    let bytes = tokio::task::spawn_blocking(move || read_file(&path, max_bytes))
        .await
        .map_err(|e| ImageError::internal(format!("reading the file failed: {e}")))??;
    let id = ImageId::generate();
    ingest::intake::accept_new(state, id, Bytes::from(bytes), preset)
        .await
        .map_err(|e| ImageError::internal(format!("the upload was refused: {e}")))?;
    Ok(id)
}

/// Reads `path` whole, refusing it from its size before reading when it is over `max_bytes`.
fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ImageError> {
    let unreadable = |e: std::io::Error| ImageError::internal(format!("cannot read the file: {e}"));
    let too_large =
        |size: u64| ImageError::too_large(format!("the file is {size} bytes; the limit is {max_bytes} bytes"));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    if size > max_bytes {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // A file that grew since it was measured is still read no further than the limit.
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(unreadable)?;
    match bytes.len() as u64 {
        read if read > max_bytes => Err(too_large(read)),
        _ => Ok(bytes),
    }
}

/// Records DONE or FAILED so far, and records still PENDING or PROCESSING.
async fn progress(stack: &Stack) -> Result<(u64, u64)> {
    let counts = stack.state.metadata.counts().await?;
    let count = |statuses: [Status; 2]| statuses.iter().map(|s| counts.by_status.get(s).copied().unwrap_or(0)).sum();
    Ok((count([Status::Done, Status::Failed]), count([Status::Pending, Status::Processing])))
}

/// Waits until no record is PENDING or PROCESSING (one count query per tick, whatever the
/// number of images), then reads the records of `ids`. `finished_before` is the number of final
/// records the data directory held before this run.
async fn wait_until_final(
    stack: &Stack,
    ids: &[ImageId],
    finished_before: u64,
    bar: &ProgressBar,
) -> Result<BTreeMap<ImageId, MetadataRecord>> {
    loop {
        let (finished, open) = progress(stack).await?;
        bar.set_position(finished.saturating_sub(finished_before));
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut records = BTreeMap::new();
    for &id in ids {
        let record = stack.state.metadata.get(id).await?.with_context(|| format!("the record of {id} vanished"))?;
        anyhow::ensure!(record.status.is_final(), "{id} is still {:?}", record.status);
        records.insert(id, record);
    }
    Ok(records)
}

/// Puts each DONE image's renditions in OUT/<file>/ (hard links to the stored files when `link`
/// and the filesystem allows, copies otherwise) and builds the summary lines.
async fn export(
    stack: &Stack,
    uploads: Vec<(PathBuf, Result<ImageId, ImageError>)>,
    records: &BTreeMap<ImageId, MetadataRecord>,
    out: &Path,
    link: bool,
) -> Result<Vec<Line>> {
    let mut lines = Vec::with_capacity(uploads.len());
    for (file, upload) in uploads {
        let line = match upload {
            Err(error) => {
                Line { file, id: None, status: Status::Failed, error: Some(error), record: None, renditions: vec![] }
            }
            Ok(id) => {
                let record = records.get(&id).cloned().context("a record vanished")?;
                let mut paths = Vec::new();
                for rendition in &record.renditions {
                    let dir = out.join(&file);
                    tokio::fs::create_dir_all(&dir)
                        .await
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                    let path = dir.join(format!("{}.{}", rendition.name, rendition.format.extension()));
                    let stored = stack.files.file_path(&rendition.key)?;
                    let linked = link && tokio::fs::hard_link(&stored, &path).await.is_ok();
                    if !linked {
                        tokio::fs::copy(&stored, &path)
                            .await
                            .with_context(|| format!("cannot copy {} to {}", stored.display(), path.display()))?;
                    }
                    paths.push(path);
                }
                Line {
                    file,
                    id: Some(id),
                    status: record.status,
                    error: record.error.clone(),
                    record: Some(record),
                    renditions: paths,
                }
            }
        };
        lines.push(line);
    }
    Ok(lines)
}

fn report(
    lines: &[Line],
    records: &BTreeMap<ImageId, MetadataRecord>,
    elapsed: Duration,
    workers: usize,
    out: &Path,
) -> Result<ExitCode> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let summary = out.join("summary.json");
    std::fs::write(&summary, serde_json::to_vec_pretty(lines)?)
        .with_context(|| format!("cannot write {}", summary.display()))?;
    let done = lines.iter().filter(|l| l.status == Status::Done).count();
    let mut latencies: Vec<u64> =
        records.values().filter_map(|r| r.finished_ms.map(|f| f.saturating_sub(r.created_ms))).collect();
    latencies.sort_unstable();
    let percentile =
        |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0);
    println!(
        "{} images in {:.2} s ({:.1} images/s, {workers} worker threads): {done} done, {} failed; latency p50 {} ms, p99 {} ms",
        lines.len(),
        elapsed.as_secs_f64(),
        lines.len() as f64 / elapsed.as_secs_f64(),
        lines.len() - done,
        percentile(0.5),
        percentile(0.99),
    );
    let mut by_kind: BTreeMap<ErrorKind, Vec<&Line>> = BTreeMap::new();
    for line in lines {
        if let Some(error) = &line.error {
            by_kind.entry(error.kind).or_default().push(line);
        }
    }
    for (kind, lines) in &by_kind {
        for line in lines {
            let message = line.error.as_ref().map_or("", |e| e.message.as_str());
            println!("  FAILED {kind:<11} {}: {message}", line.file.display());
        }
    }
    println!("renditions in {}, details in {}", out.display(), summary.display());
    // Bad images are expected; an internal failure is ours and fails the run.
    Ok(if by_kind.contains_key(&ErrorKind::Internal) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
