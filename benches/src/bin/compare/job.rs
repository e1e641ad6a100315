//! What every runner shares: the tools, how many images a run processes, what a run is given
//! and what it measured, and where peers are installed and scratch files go.

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// A tool being compared, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    /// imgpipe's kernel, in process.
    Imgpipe,
    /// imgpipe's whole local pipeline (`imgpipe process`: intake, queue, orchestrator, runner,
    /// kernel, stored renditions and records) over copies of the input.
    #[value(name = "imgpipe-pipeline")]
    #[serde(rename = "imgpipe-pipeline")]
    ImgpipePipeline,
    /// sharp (Node.js), through `peers/sharp.mjs`.
    Sharp,
    /// libvips' command line thumbnailer.
    #[value(alias = "vips")]
    Vipsthumbnail,
    /// Pillow (Python), through `peers/pillow.py`.
    Pillow,
}

impl Tool {
    /// The name used in the table, the JSON and the output image's file name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Imgpipe => "imgpipe",
            Tool::ImgpipePipeline => "imgpipe-pipeline",
            Tool::Sharp => "sharp",
            Tool::Vipsthumbnail => "vipsthumbnail",
            Tool::Pillow => "pillow",
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What each tool makes of each input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// sharp's own benchmark: one 720×588 JPEG (Lanczos3, fit cover, quality 80), on its photo.
    Sharp,
    /// imgpipe's built-in `default` preset: a 256×256 WebP thumb and 1024- and 2048-wide
    /// watermarked JPEGs, on sharp's photo as a baseline JPEG, a progressive JPEG and a PNG.
    Default,
    /// sharp's workload as an AVIF at quality 60: rav1e (imgpipe, speed 6) against libaom
    /// (sharp's libheif, effort 4, its default), on sharp's photo.
    Avif,
}

impl Workload {
    /// The preset imgpipe runs, and the presets file that defines it (`None`: the built-in one).
    pub fn preset(self) -> (&'static str, Option<&'static str>) {
        match self {
            Workload::Sharp => ("sharp-bench", Some(benches::SHARP_WORKLOAD_TOML)),
            Workload::Default => (imgpipe_core::preset::DEFAULT_PRESET, None),
            Workload::Avif => ("avif-bench", Some(benches::AVIF_WORKLOAD_TOML)),
        }
    }

    /// What is made of each input, as recorded in the report.
    pub fn output(self) -> &'static str {
        match self {
            Workload::Sharp => "720x588 lanczos3 jpeg q80",
            Workload::Avif => "720x588 lanczos3 avif q60, 8-bit 4:4:4 (imgpipe: rav1e speed 6; sharp: libaom effort 4)",
            Workload::Default => {
                "preset default: thumb 256x256 webp q80, medium 1024w jpeg q82 + watermark, large 2048w jpeg q85 + watermark (the large one is kept)"
            }
        }
    }

    /// The tools that can run it; sharp's runner script for it.
    pub fn tools(self) -> &'static [Tool] {
        match self {
            Workload::Sharp => Tool::value_variants(),
            Workload::Default => &[Tool::Imgpipe, Tool::ImgpipePipeline, Tool::Sharp],
            Workload::Avif => &[Tool::Imgpipe, Tool::Sharp],
        }
    }

    /// The file extension of the output kept.
    pub fn extension(self) -> &'static str {
        match self {
            Workload::Sharp | Workload::Default => "jpg",
            Workload::Avif => "avif",
        }
    }

    /// sharp's runner script in `benches/peers/`.
    pub fn sharp_script(self) -> &'static str {
        match self {
            Workload::Sharp => "sharp.mjs",
            Workload::Default => "sharp-default.mjs",
            Workload::Avif => "sharp-avif.mjs",
        }
    }
}

/// How many images each run processes.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Untimed images first.
    pub warmup: usize,
    /// Timed rounds.
    pub rounds: usize,
    /// Images per timed round.
    pub per_round: usize,
}

/// One timed run of one tool: what to process, with how many threads, and where things go.
pub struct Job<'a> {
    /// The input image (absolute path).
    pub input: &'a Path,
    /// Threads (or processes, or operations in flight) to use.
    pub threads: usize,
    /// How many images.
    pub plan: Plan,
    /// Where to leave one output image.
    pub image: &'a Path,
    /// A private scratch directory.
    pub scratch: &'a Path,
}

/// What a run measured. Script peers print it as JSON (with more fields, which are ignored).
#[derive(Debug, Deserialize)]
pub struct Measurement {
    /// Wall time of each timed round, in milliseconds.
    pub rounds_ms: Vec<f64>,
    /// The tool's version.
    pub version: String,
    /// Images per timed round, when the tool does not use the plan's.
    #[serde(default)]
    pub per_round: Option<usize>,
}

/// Where peers are installed and found.
pub struct Setup {
    /// `target/compare` in the workspace.
    pub install_dir: PathBuf,
    /// `benches/peers`, the runner scripts.
    pub peers_dir: PathBuf,
    /// Whether missing peers may be installed.
    pub install: bool,
    /// TMPDIR of `imgpipe process`.
    pub pipeline_tmp: PathBuf,
    /// What is made of each input.
    pub workload: Workload,
}

/// A scratch directory under the system temp dir, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Creates a fresh scratch directory for this process.
    pub fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("imgpipe-compare-{}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort: a leftover directory in /tmp is harmless.
        let _ = fs::remove_dir_all(&self.0);
    }
}
