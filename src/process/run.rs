//! The `process` command from start to finish.

use crate::cli::ProcessArgs;
use crate::process::export::export;
use crate::process::summary::Summary;
use crate::process::upload::{list_files, upload_all};
use crate::stack::Stack;
use adapters::local::Durability;
use anyhow::{Context, Result, bail};
use imgpipe_core::record::MetadataRecord;
use imgpipe_core::seams::{ImageId, Status};
use indicatif::{ProgressBar, ProgressStyle};
use ingest::IngestConfig;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long the pipeline may take to stop once drained.
const SHUTDOWN: Duration = Duration::from_secs(10);

/// Pushes every file under `args.dir` through a local stack, waits until each image is DONE or
/// FAILED, exports the renditions and `summary.json` to `args.out`, and prints the report.
/// Bad files are lines of the summary, not errors; an error is a run that could not be done.
pub async fn run(args: &ProcessArgs) -> Result<Summary> {
    let files = list_files(&args.dir)?;
    if files.is_empty() {
        bail!("{} holds no files to process", args.dir.display());
    }
    let temp = match &args.data {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("cannot create a temporary data directory")?),
    };
    let data = args.data.clone().unwrap_or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()).unwrap_or_default());
    let max_bytes = args.common.max_bytes();
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

    let uploads = upload_all(&stack, &args.dir, &files, &args.preset, max_bytes).await?;
    let accepted: Vec<ImageId> = uploads.iter().filter_map(|u| u.result.as_ref().ok().copied()).collect();
    let bar = ProgressBar::new(accepted.len() as u64).with_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} processed ({per_sec})",
    )?);
    let records = wait_until_final(&stack, &accepted, finished_before, &bar).await?;
    bar.finish_and_clear();
    // From the first upload to the last record written final (not to when polling noticed).
    let last_final = records.values().filter_map(|r| r.finished_ms).max();
    let elapsed =
        last_final.map_or_else(|| started.elapsed(), |ms| Duration::from_millis(ms.saturating_sub(started_ms)));

    let lines = export(stack.renditions.as_ref(), uploads, &records, &args.out).await?;
    if !stack.shutdown(SHUTDOWN).await {
        eprintln!("warning: the pipeline was still busy at exit");
    }
    let summary = Summary::new(lines, &records, elapsed, workers, &args.out);
    summary.write()?;
    summary.print(&mut std::io::stdout().lock())?;
    Ok(summary)
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
