//! The results: one row per tool and thread count, printed as a table on stdout and written as
//! `compare.json`.

use crate::job::{Measurement, Plan, Tool, Workload};
use crate::sample::BUSY;
use anyhow::{Context, Result, ensure};
use benches::procfs::median;
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};

/// One row of results: a tool at a thread count.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The tool.
    pub tool: Tool,
    /// Its thread count.
    pub threads: usize,
    /// Median over rounds of (round wall time / images in round).
    pub ms_per_image: f64,
    /// `1000 / ms_per_image`.
    pub images_per_s: f64,
    /// Size of the output JPEG.
    pub bytes: u64,
    /// The tool's version.
    pub version: String,
    /// Output width.
    pub out_width: u32,
    /// Output height.
    pub out_height: u32,
    /// imgpipe's images/s over this row's, at the same thread count (above 1: imgpipe is faster).
    pub imgpipe_x: Option<f64>,
    /// Cores' worth of CPU that other processes used during the run (Linux); much above 0 means
    /// the timing is skewed.
    pub other_cpu: Option<f64>,
    /// Wall time of each round, in milliseconds (of every pass).
    pub rounds_ms: Vec<f64>,
    /// Images in each round.
    pub images_per_round: usize,
    /// The output image.
    pub image: PathBuf,
}

impl Row {
    /// Summarises a measurement; the output image is read back for its size and dimensions.
    pub fn new(tool: Tool, threads: usize, plan: Plan, measured: Measurement, path: &Path) -> Result<Self> {
        ensure!(
            measured.rounds_ms.len() == plan.rounds,
            "{tool} reported {} rounds, not {}",
            measured.rounds_ms.len(),
            plan.rounds
        );
        let images_per_round = measured.per_round.unwrap_or(plan.per_round);
        let ms_per_image = ms_per_image(&measured.rounds_ms, images_per_round);
        ensure!(ms_per_image.is_finite() && ms_per_image > 0.0, "{tool} reported a time of {ms_per_image} ms");
        let bytes = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
        let (out_width, out_height) = benches::image_size(path)?;
        Ok(Self {
            tool,
            threads,
            ms_per_image,
            images_per_s: 1e3 / ms_per_image,
            bytes,
            version: measured.version,
            out_width,
            out_height,
            imgpipe_x: None,
            other_cpu: None,
            rounds_ms: measured.rounds_ms,
            images_per_round,
            image: path.to_owned(),
        })
    }

    /// Adds the rounds of a later pass of the same tool and thread count: the median is taken
    /// over all of them, and the busiest pass's `other_cpu` is kept.
    pub fn merge(&mut self, later: Row) {
        self.rounds_ms.extend(later.rounds_ms);
        self.ms_per_image = ms_per_image(&self.rounds_ms, self.images_per_round);
        self.images_per_s = 1e3 / self.ms_per_image;
        self.other_cpu = match (self.other_cpu, later.other_cpu) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.version = later.version;
    }
}

/// The median over rounds of (round wall time / images in round).
fn ms_per_image(rounds_ms: &[f64], images_per_round: usize) -> f64 {
    median(rounds_ms.iter().map(|ms| ms / images_per_round as f64).collect())
}

/// A (tool, threads) that could not run.
#[derive(Debug, Serialize)]
pub struct Skipped {
    /// The tool.
    pub tool: Tool,
    /// Its thread count.
    pub threads: usize,
    /// Why.
    pub reason: String,
}

/// What was run, as recorded in `compare.json`.
#[derive(Debug, Serialize)]
pub struct Run {
    /// The workload.
    pub workload: Workload,
    /// What kind of input it is.
    pub label: &'static str,
    /// The input image.
    pub input: PathBuf,
    /// Its width.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// What is made of it.
    pub output: &'static str,
    /// Untimed images per run.
    pub warmup: usize,
    /// Timed rounds per run.
    pub rounds: usize,
    /// Runs per tool and thread count, the tools taking turns.
    pub passes: usize,
    /// Images per round.
    pub per_round: usize,
    /// Thread count of the "all cores" rows.
    pub threads_all: usize,
    /// Available parallelism of this machine.
    pub cores: usize,
}

/// `compare.json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What was run.
    pub workload: Run,
    /// One entry per (tool, threads) that ran.
    pub results: Vec<Row>,
    /// One entry per (tool, threads) that could not run.
    pub skipped: Vec<Skipped>,
}

impl Report {
    /// Writes the report as pretty JSON to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).context("serialising the report")?;
        fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// Sets each row's `imgpipe_x`: imgpipe's images/s at the row's thread count over the row's.
pub fn compare_with_imgpipe(results: &mut [Row]) {
    let imgpipe_rate = |threads: usize| {
        results.iter().find(|row| row.tool == Tool::Imgpipe && row.threads == threads).map(|row| row.images_per_s)
    };
    let ratios: Vec<_> =
        results.iter().map(|row| imgpipe_rate(row.threads).map(|rate| rate / row.images_per_s)).collect();
    for (row, ratio) in results.iter_mut().zip(ratios) {
        row.imgpipe_x = ratio;
    }
}

/// Prints the table and the summary lines on stdout.
pub fn print_table(tools: &[Tool], thread_counts: &[usize], results: &[Row], skipped: &[Skipped]) {
    println!(
        "{:<14} {:<24} {:>7} {:>9} {:>9} {:>8} {:>8} {:>10}",
        "tool", "version", "threads", "ms/image", "images/s", "bytes", "size", "imgpipe ×"
    );
    let find = |tool, threads| results.iter().find(|row: &&Row| row.tool == tool && row.threads == threads);
    let mut any_busy = false;
    for &threads in thread_counts {
        for &tool in tools {
            if let Some(row) = find(tool, threads) {
                let ratio = row.imgpipe_x.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"));
                let busy = row.other_cpu.is_some_and(|others| others > BUSY);
                any_busy |= busy;
                println!(
                    "{:<14} {:<24} {:>7} {:>9.2} {:>9.1} {:>8} {:>8} {:>10}{}",
                    tool.name(),
                    row.version,
                    threads,
                    row.ms_per_image,
                    row.images_per_s,
                    row.bytes,
                    format!("{}x{}", row.out_width, row.out_height),
                    ratio,
                    if busy { " *" } else { "" }
                );
            } else if let Some(skip) = skipped.iter().find(|skip| skip.tool == tool && skip.threads == threads) {
                let reason = skip.reason.lines().next().unwrap_or_default();
                println!("{:<14} {:<24} {:>7}  unavailable: {reason}", tool.name(), "-", threads);
            }
        }
    }
    if any_busy {
        println!("* other processes used over {BUSY} cores during this run: its timing is skewed");
    }
    println!();
    for &threads in thread_counts {
        let label = if threads == 1 { "1 thread".to_owned() } else { format!("{threads} threads") };
        match find(Tool::Sharp, threads).and_then(|sharp| sharp.imgpipe_x) {
            Some(x) => println!("imgpipe vs sharp, {label}: {x:.2}×"),
            None => println!("imgpipe vs sharp, {label}: n/a (not both measured)"),
        }
        if let Some(x) = find(Tool::ImgpipePipeline, threads).and_then(|pipeline| pipeline.imgpipe_x) {
            println!("imgpipe-pipeline, {label}: {:.0}% of the bare kernel's images/s", 100.0 / x);
        }
    }
}
