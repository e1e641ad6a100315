//! The end of `process`: one summary line per file, `summary.json`, the printed report, and
//! the exit policy.

use anyhow::{Context, Result};
use imgpipe_core::record::MetadataRecord;
use imgpipe_core::seams::{ImageId, Status};
use imgpipe_core::{ErrorKind, ImageError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One line of `summary.json`: a file of the folder and what became of it.
#[derive(Debug, Serialize)]
pub struct Line {
    /// The file, relative to the folder.
    pub file: PathBuf,
    /// Its image id, when the upload was accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<ImageId>,
    /// DONE or FAILED.
    pub status: Status,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ImageError>,
    /// Its final metadata record, when the upload was accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<MetadataRecord>,
    /// The exported rendition files.
    pub renditions: Vec<PathBuf>,
}

/// What a `process` run did.
#[derive(Debug)]
pub struct Summary {
    /// One line per file, in the folder's order.
    pub lines: Vec<Line>,
    /// From the first upload to the last record written final.
    pub elapsed: Duration,
    /// Threads that ran the image kernel.
    pub workers: usize,
    /// The export folder.
    pub out: PathBuf,
    /// Upload-to-final latency of every final record, in milliseconds, sorted.
    latencies_ms: Vec<u64>,
}

impl Summary {
    /// The summary of `lines`, with latencies from the final `records`.
    pub fn new(
        lines: Vec<Line>,
        records: &BTreeMap<ImageId, MetadataRecord>,
        elapsed: Duration,
        workers: usize,
        out: &Path,
    ) -> Self {
        let mut latencies_ms: Vec<u64> =
            records.values().filter_map(|r| r.finished_ms.map(|f| f.saturating_sub(r.created_ms))).collect();
        latencies_ms.sort_unstable();
        Self { lines, elapsed, workers, out: out.to_path_buf(), latencies_ms }
    }

    /// Files whose images are DONE.
    pub fn done(&self) -> usize {
        self.lines.iter().filter(|l| l.status == Status::Done).count()
    }

    /// Files that ended FAILED (refused at upload, or by the pipeline).
    pub fn failed(&self) -> usize {
        self.lines.len() - self.done()
    }

    /// Where `summary.json` goes.
    pub fn path(&self) -> PathBuf {
        self.out.join("summary.json")
    }

    /// Whether the run succeeded: bad images are expected, an internal failure is ours and
    /// fails the run.
    pub fn succeeded(&self) -> bool {
        !self.lines.iter().any(|l| l.error.as_ref().is_some_and(|e| e.kind == ErrorKind::Internal))
    }

    /// Writes `summary.json` (the lines) into the export folder.
    pub fn write(&self) -> Result<()> {
        std::fs::create_dir_all(&self.out).with_context(|| format!("cannot create {}", self.out.display()))?;
        let path = self.path();
        std::fs::write(&path, serde_json::to_vec_pretty(&self.lines)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Prints the report: counts, throughput and latency, then every failure by kind.
    pub fn print(&self, to: &mut dyn Write) -> std::io::Result<()> {
        let percentile = |p: f64| {
            self.latencies_ms.get(((self.latencies_ms.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0)
        };
        let (total, seconds) = (self.lines.len(), self.elapsed.as_secs_f64());
        writeln!(
            to,
            "{total} images in {seconds:.2} s ({:.1} images/s, {} worker threads): {} done, {} failed; latency p50 {} ms, p99 {} ms",
            total as f64 / seconds,
            self.workers,
            self.done(),
            self.failed(),
            percentile(0.5),
            percentile(0.99),
        )?;
        let mut by_kind: BTreeMap<ErrorKind, Vec<&Line>> = BTreeMap::new();
        for line in &self.lines {
            if let Some(error) = &line.error {
                by_kind.entry(error.kind).or_default().push(line);
            }
        }
        for (kind, lines) in &by_kind {
            for line in lines {
                let message = line.error.as_ref().map_or("", |e| e.message.as_str());
                writeln!(to, "  FAILED {kind:<11} {}: {message}", line.file.display())?;
            }
        }
        writeln!(to, "renditions in {}, details in {}", self.out.display(), self.path().display())
    }
}
