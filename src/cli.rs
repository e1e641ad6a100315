//! The command line: clap types, and the local stack's settings built from flags and env.

use crate::stack::StackConfig;
use adapters::local::Durability;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use imgpipe_core::preset::DEFAULT_PRESET;
use imgpipe_core::{Limits, PresetCatalog};
use ingest::IngestConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `imgpipe`'s arguments.
#[derive(Parser)]
#[command(name = "imgpipe", version, about = "Resize and watermark images at scale", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// The command to run.
    pub fn into_command(self) -> Command {
        self.command
    }
}

/// `imgpipe`'s commands.
#[derive(Subcommand)]
pub enum Command {
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
pub struct Common {
    /// TOML file of presets (see README, "Presets"); adds to the built-in ones.
    #[arg(long, env = "IMGPIPE_PRESETS")]
    pub presets: Option<PathBuf>,
    /// Threads that run the image kernel (default: one per core).
    #[arg(long, env = "IMGPIPE_WORKERS")]
    pub workers: Option<usize>,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
}

/// `imgpipe serve`'s arguments.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Data directory: originals, renditions and the SQLite file.
    #[arg(long, default_value = "imgpipe-data", env = "IMGPIPE_DATA")]
    pub data: PathBuf,
    /// Address to listen on. Anything but loopback requires --api-key.
    #[arg(long, default_value = "127.0.0.1:8080", env = "IMGPIPE_ADDR")]
    pub addr: SocketAddr,
    /// API key clients must send (`Authorization: Bearer KEY` or `x-api-key: KEY`).
    #[arg(long, env = "IMGPIPE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Seconds to finish in-flight work on SIGINT/SIGTERM before exiting (the rest stays queued).
    #[arg(long, default_value_t = 30, env = "IMGPIPE_SHUTDOWN_SECONDS")]
    pub shutdown_seconds: u64,
    /// Visibility lease of received queue messages, in seconds: after a crash, unacknowledged
    /// messages are redelivered this long after they were received.
    #[arg(long, default_value_t = 60, env = "IMGPIPE_LEASE_SECONDS")]
    pub lease_seconds: u64,
    /// Accept and queue uploads without processing them (processing resumes on a normal start;
    /// also how the upload path is measured on its own).
    #[arg(long, env = "IMGPIPE_INGEST_ONLY")]
    pub ingest_only: bool,
    #[command(flatten)]
    pub(crate) common: Common,
}

/// `imgpipe process`'s arguments.
#[derive(clap::Args)]
pub struct ProcessArgs {
    /// Folder of images to process.
    pub dir: PathBuf,
    /// Where renditions go: OUT/<file>/<rendition>.<ext>, plus OUT/summary.json.
    #[arg(long, short, default_value = "imgpipe-out", env = "IMGPIPE_OUT")]
    pub out: PathBuf,
    /// Preset to apply (from --presets, or the built-in `default`).
    #[arg(long, default_value = DEFAULT_PRESET, env = "IMGPIPE_PRESET")]
    pub preset: String,
    /// Data directory to run the pipeline in (default: a temporary one, removed at the end).
    #[arg(long, env = "IMGPIPE_DATA")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) common: Common,
}

impl ProcessArgs {
    /// The arguments of `imgpipe process ARGS…` (flags as on the command line, environment
    /// variables as fallbacks): how a test or another program asks for a run.
    pub fn parse_from<I, T>(args: I) -> Result<ProcessArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args = ["imgpipe".into(), "process".into()].into_iter().chain(args.into_iter().map(Into::into));
        match Cli::try_parse_from(args)?.command {
            Command::Process(args) => Ok(args),
            Command::Serve(_) => unreachable!("the arguments start with `process`"),
        }
    }
}

/// The limits every image is checked against before its pixels are allocated.
#[derive(clap::Args)]
pub struct LimitArgs {
    /// Largest accepted file, in bytes.
    #[arg(long, env = "IMGPIPE_MAX_BYTES", default_value_t = Limits::default().max_input_bytes)]
    pub max_bytes: u64,
    /// Largest accepted image, in pixels (width × height).
    #[arg(long, env = "IMGPIPE_MAX_PIXELS", default_value_t = Limits::default().max_pixels)]
    pub max_pixels: u64,
    /// Longest accepted side, in pixels.
    #[arg(long, env = "IMGPIPE_MAX_SIDE", default_value_t = Limits::default().max_side)]
    pub max_side: u32,
}

impl Common {
    /// The local stack's settings over `data`: presets read (and checked) from `--presets`,
    /// limits and workers from the flags, durable against a power loss.
    pub fn stack_config(&self, data: PathBuf, ingest: IngestConfig, base_url: String) -> Result<StackConfig> {
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

    /// The largest accepted file, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.limits.max_bytes
    }
}
