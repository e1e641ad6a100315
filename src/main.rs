//! `imgpipe`: the command line of the embedded (single machine) mode.
//!
//! `imgpipe process DIR` runs every file of a folder through the image kernel on all cores and
//! writes the renditions and a `summary.json`; the full local stack (`serve`, queue, SQLite)
//! builds on the same kernel.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use imgpipe_core::preset::DEFAULT_PRESET;
use imgpipe_core::{ErrorKind, ImageError, Limits, PresetCatalog};
use indicatif::{ProgressBar, ProgressStyle};
use processor::{Output, Recipe};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(name = "imgpipe", version, about = "Resize and watermark images at scale", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Process every file in a folder (recursively) into renditions, on all cores.
    ///
    /// Formats are recognised from file contents, not names; files that are not images, or are
    /// broken or too large, are reported as FAILED with the reason and do not stop the run.
    Process(ProcessArgs),
}

#[derive(clap::Args)]
struct ProcessArgs {
    /// Folder of images to process.
    dir: PathBuf,
    /// Where renditions go: OUT/<file name>/<rendition>.<ext>, plus OUT/summary.json.
    #[arg(long, short, default_value = "imgpipe-out", env = "IMGPIPE_OUT")]
    out: PathBuf,
    /// Preset to apply (from --presets, or the built-in `default`).
    #[arg(long, default_value = DEFAULT_PRESET, env = "IMGPIPE_PRESET")]
    preset: String,
    /// TOML file of presets (see README, "Presets"); adds to the built-in ones.
    #[arg(long, env = "IMGPIPE_PRESETS")]
    presets: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, env = "IMGPIPE_WORKERS")]
    workers: Option<usize>,
    #[command(flatten)]
    limits: LimitArgs,
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

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_input_bytes: self.max_bytes,
            max_pixels: self.max_pixels,
            max_side: self.max_side,
            ..Limits::default()
        }
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Process(args) => process_dir(&args),
    }
}

/// One line of `summary.json`.
#[derive(Serialize)]
struct Record {
    file: PathBuf,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ImageError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original: Option<Original>,
    renditions: Vec<RenditionRecord>,
    timings_ms: BTreeMap<&'static str, f64>,
}

#[derive(Serialize)]
struct Original {
    format: String,
    width: u32,
    height: u32,
    orientation: u8,
}

#[derive(Serialize)]
struct RenditionRecord {
    name: String,
    format: String,
    width: u32,
    height: u32,
    bytes: usize,
    path: PathBuf,
}

fn load_recipe(args: &ProcessArgs) -> Result<Recipe> {
    let (catalog, base) = match &args.presets {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read presets {}", path.display()))?;
            let catalog = PresetCatalog::from_toml(&text).with_context(|| format!("in {}", path.display()))?;
            (catalog, path.parent().unwrap_or(Path::new(".")).to_path_buf())
        }
        None => (PresetCatalog::builtin(), PathBuf::from(".")),
    };
    let Some(preset) = catalog.get(&args.preset) else {
        let known: Vec<_> = catalog.iter().map(|p| p.name.as_str()).collect();
        bail!("no preset named {:?} (known: {}); define it in --presets FILE", args.preset, known.join(", "));
    };
    Ok(Recipe::new(preset.clone(), |logo| std::fs::read(base.join(logo)))?)
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

fn process_dir(args: &ProcessArgs) -> Result<()> {
    let recipe = load_recipe(args)?;
    let limits = args.limits.limits();
    let files = list_files(&args.dir)?;
    if files.is_empty() {
        bail!("{} holds no files to process", args.dir.display());
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.workers.unwrap_or(0)).build()?;
    let bar = ProgressBar::new(files.len() as u64).with_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} images, {per_sec} {msg}",
    )?);
    let started = Instant::now();
    let records: Vec<Record> = pool.install(|| {
        files
            .par_iter()
            .map(|file| {
                let record = process_file(file, &args.dir, &args.out, &recipe, &limits);
                bar.inc(1);
                record
            })
            .collect()
    });
    bar.finish_and_clear();
    let elapsed = started.elapsed();

    let summary = args.out.join("summary.json");
    std::fs::write(&summary, serde_json::to_vec_pretty(&records)?)
        .with_context(|| format!("cannot write {}", summary.display()))?;
    let done = records.iter().filter(|r| r.error.is_none()).count();
    let mut failed: BTreeMap<ErrorKind, Vec<&Record>> = BTreeMap::new();
    for record in &records {
        if let Some(error) = &record.error {
            failed.entry(error.kind).or_default().push(record);
        }
    }
    println!(
        "{} images in {:.2} s ({:.1} images/s on {} threads): {done} done, {} failed",
        records.len(),
        elapsed.as_secs_f64(),
        records.len() as f64 / elapsed.as_secs_f64(),
        pool.current_num_threads(),
        records.len() - done,
    );
    for (kind, records) in &failed {
        for record in records {
            let message = record.error.as_ref().map_or("", |e| e.message.as_str());
            println!("  FAILED {kind:<11} {}: {message}", record.file.display());
        }
    }
    println!("renditions in {}, details in {}", args.out.display(), summary.display());
    Ok(())
}

fn process_file(file: &Path, root: &Path, out: &Path, recipe: &Recipe, limits: &Limits) -> Record {
    let relative = file.strip_prefix(root).unwrap_or(file).to_path_buf();
    let result = std::fs::read(file)
        .map_err(|e| ImageError::internal(format!("cannot read the file: {e}")))
        .and_then(|bytes| processor::process(&bytes, recipe, limits))
        .and_then(|output| store(&output, &out.join(&relative)).map(|paths| (output, paths)));
    match result {
        Ok((output, paths)) => {
            let facts = &output.facts;
            let t = facts.timings;
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
            Record {
                file: relative,
                status: "DONE",
                error: None,
                original: Some(Original {
                    format: facts.format.to_string(),
                    width: facts.width,
                    height: facts.height,
                    orientation: facts.orientation,
                }),
                renditions: output
                    .renditions
                    .iter()
                    .zip(paths)
                    .map(|(r, path)| RenditionRecord {
                        name: r.name.clone(),
                        format: r.format.to_string(),
                        width: r.width,
                        height: r.height,
                        bytes: r.bytes.len(),
                        path,
                    })
                    .collect(),
                timings_ms: BTreeMap::from([
                    ("decode", ms(t.decode)),
                    ("resize", ms(t.resize)),
                    ("watermark", ms(t.watermark)),
                    ("encode", ms(t.encode)),
                ]),
            }
        }
        Err(error) => Record {
            file: relative,
            status: "FAILED",
            error: Some(error),
            original: None,
            renditions: Vec::new(),
            timings_ms: BTreeMap::new(),
        },
    }
}

fn store(output: &Output, dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let io = |e: std::io::Error| ImageError::internal(format!("cannot write renditions to {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    output
        .renditions
        .iter()
        .map(|r| {
            let path = dir.join(format!("{}.{}", r.name, r.format.extension()));
            std::fs::write(&path, &r.bytes).map_err(io)?;
            Ok(path)
        })
        .collect()
}
