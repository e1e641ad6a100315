//! `compare`: imgpipe side by side with sharp, libvips' `vipsthumbnail` and Pillow, on this machine,
//! on the workload of sharp's own benchmark — a 2725×2225 JPEG resized to 720×588 (Lanczos3) and
//! encoded as JPEG quality 80 — single-threaded and with all cores.
//!
//! ```text
//! cargo run --release -p benches --bin compare [-- --rounds 7 --per-round 20 --only imgpipe,sharp]
//! ```
//!
//! Peers are installed on first use into `target/compare/`: npm `sharp@0.35.5`, a venv with
//! `pillow==12.2.0`, and `libvips-tools` with apt-get when `vipsthumbnail` is missing and we are
//! root (`--no-install` skips all of it). A peer that cannot run is reported and skipped; only a
//! failure of imgpipe itself fails the command. The table goes to stdout, the same results as JSON
//! to `target/compare/compare.json`, and one output image per tool beside it. The peer runners and
//! their exact settings are described in `benches/peers/README.md`.

use anyhow::{Context, Result, bail, ensure};
use benches::{SHARP_BENCH_IMAGE, SHARP_WORKLOAD_TOML, fixtures_dir};
use clap::{Parser, ValueEnum};
use imgpipe_core::{Limits, PresetCatalog};
use processor::{Recipe, process};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The sharp release compared against (npm).
const SHARP_VERSION: &str = "0.35.5";
/// The Pillow release compared against (PyPI).
const PILLOW_VERSION: &str = "12.2.0";
/// Output width of the workload.
const WIDTH: u32 = 720;
/// Output height of the workload.
const HEIGHT: u32 = 588;
/// JPEG quality of the workload.
const QUALITY: u32 = 80;
/// The workload's output, as recorded in `compare.json`.
const WORKLOAD: &str = "720x588 lanczos3 jpeg q80";
/// Cores' worth of CPU used by other processes during a run above which its timing is suspect.
const BUSY: f64 = 0.2;
/// The preset of [`SHARP_WORKLOAD_TOML`].
const PRESET: &str = "sharp-bench";

/// Times imgpipe, sharp, vipsthumbnail and Pillow on sharp's benchmark workload, side by side.
///
/// Each tool runs single-threaded and with all cores; ms/image is the median over rounds of
/// (round wall time / images in round). Missing peers are installed into target/compare/ first.
#[derive(Debug, Parser)]
struct Args {
    /// Timed rounds per tool and thread count.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,

    /// Images per timed round.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    per_round: u32,

    /// Untimed images before the first round.
    #[arg(long, default_value_t = 5)]
    warmup: u32,

    /// Threads of the "all cores" rows [default: available parallelism].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,

    /// Run only these tools (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "TOOL,...")]
    only: Vec<Tool>,

    /// Do not install missing peers; report them as unavailable instead.
    #[arg(long)]
    no_install: bool,

    /// Where compare.json and the output images go [default: target/compare].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// The input image [default: sharp's benchmark JPEG from the fixtures directory].
    #[arg(long, value_name = "PATH")]
    input: Option<PathBuf>,

    /// Where `imgpipe process` keeps its throwaway data directory and its outputs (TMPDIR)
    /// [default: /dev/shm when it exists, a tmpfs as /tmp is on many Linux systems; else the
    /// system temporary directory].
    #[arg(long, value_name = "DIR")]
    pipeline_tmp: Option<PathBuf>,
}

/// A tool being compared, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Tool {
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
    fn name(self) -> &'static str {
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

/// How many images each run processes.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Untimed images first.
    warmup: usize,
    /// Timed rounds.
    rounds: usize,
    /// Images per timed round.
    per_round: usize,
}

/// One timed run of one tool: what to process, with how many threads, and where things go.
struct Job<'a> {
    /// The input image (absolute path).
    input: &'a Path,
    /// Threads (or processes, or operations in flight) to use.
    threads: usize,
    /// How many images.
    plan: Plan,
    /// Where to leave one output image.
    image: &'a Path,
    /// A private scratch directory.
    scratch: &'a Path,
}

/// What a run measured. Script peers print it as JSON (with more fields, which are ignored).
#[derive(Debug, Deserialize)]
struct Measurement {
    /// Wall time of each timed round, in milliseconds.
    rounds_ms: Vec<f64>,
    /// The tool's version.
    version: String,
    /// Images per timed round, when the tool does not use the plan's.
    #[serde(default)]
    per_round: Option<usize>,
}

/// A tool made ready to run.
enum Runner {
    /// imgpipe's kernel with the workload's recipe.
    Imgpipe(Recipe),
    /// A runner script in `benches/peers/`.
    Script(ScriptPeer),
    /// The `vipsthumbnail` command.
    Vips(Vipsthumbnail),
    /// The `imgpipe process` command.
    Pipeline(Pipeline),
}

impl Runner {
    /// Makes `tool` ready, installing it first if allowed.
    fn prepare(tool: Tool, setup: &Setup) -> Result<Self> {
        Ok(match tool {
            Tool::Imgpipe => Runner::Imgpipe(workload_recipe()?),
            Tool::ImgpipePipeline => Runner::Pipeline(Pipeline::build(setup)?),
            Tool::Sharp => Runner::Script(ScriptPeer::sharp(setup)?),
            Tool::Vipsthumbnail => Runner::Vips(Vipsthumbnail::find(setup)?),
            Tool::Pillow => Runner::Script(ScriptPeer::pillow(setup)?),
        })
    }

    /// Runs `job`, leaving one output image at `job.image`.
    fn run(&self, job: &Job) -> Result<Measurement> {
        match self {
            Runner::Imgpipe(recipe) => run_imgpipe(recipe, job),
            Runner::Script(peer) => peer.run(job),
            Runner::Vips(vips) => vips.run(job),
            Runner::Pipeline(pipeline) => pipeline.run(job),
        }
    }
}

/// The recipe of sharp's benchmark workload.
fn workload_recipe() -> Result<Recipe> {
    let catalog = PresetCatalog::from_toml(SHARP_WORKLOAD_TOML).context("parsing the sharp workload preset")?;
    let preset = catalog.get(PRESET).with_context(|| format!("the workload defines no preset {PRESET:?}"))?;
    Recipe::text_only(preset.clone()).context("preparing the sharp workload recipe")
}

/// imgpipe: a rayon pool of `job.threads` threads, each image read from disk then processed.
fn run_imgpipe(recipe: &Recipe, job: &Job) -> Result<Measurement> {
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(job.threads).build().context("building the rayon thread pool")?;
    let one = || -> Result<Vec<u8>> {
        let bytes = fs::read(job.input).with_context(|| format!("reading {}", job.input.display()))?;
        let output = process(&bytes, recipe, &Limits::default()).context("imgpipe could not process the input")?;
        let rendition = output.renditions.into_iter().next().context("imgpipe made no rendition")?;
        Ok(rendition.bytes)
    };
    // `n` images in parallel on the pool; the result is one of the outputs.
    let batch = |n: usize| (0..n).into_par_iter().map(|_| one()).try_reduce_with(|_, last| Ok(last)).transpose();

    let (rounds_ms, last) = pool.install(|| -> Result<_> {
        batch(job.plan.warmup)?;
        let mut rounds_ms = Vec::with_capacity(job.plan.rounds);
        let mut last = None;
        for _ in 0..job.plan.rounds {
            let started = Instant::now();
            last = batch(job.plan.per_round)?;
            rounds_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        Ok((rounds_ms, last))
    })?;
    let last = last.context("no image was processed")?;
    fs::write(job.image, last).with_context(|| format!("writing {}", job.image.display()))?;
    Ok(Measurement { rounds_ms, version: env!("CARGO_PKG_VERSION").to_owned(), per_round: None })
}

/// Images per round of the pipeline: enough that start-up and draining are amortised.
const PIPELINE_IMAGES: usize = 200;

/// The `imgpipe` binary, timed by its own report ("N images in S s"): from the first upload
/// to the last record DONE, renditions stored (process start-up and the export excluded).
struct Pipeline {
    /// `target/release/imgpipe`.
    program: PathBuf,
    /// The workload as a presets file.
    presets: PathBuf,
    /// Its TMPDIR, which holds its throwaway data directory, and where its outputs go.
    tmp: PathBuf,
}

impl Pipeline {
    /// Builds the release binary (a no-op when it is up to date) and writes the presets file.
    fn build(setup: &Setup) -> Result<Self> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run_visible(Command::new(cargo).args(["build", "--release", "--quiet", "-p", "imgpipe", "--bin", "imgpipe"]))?;
        let program = setup.install_dir.join("../release/imgpipe");
        ensure!(program.is_file(), "{} was not built", program.display());
        fs::create_dir_all(&setup.install_dir)?;
        let presets = setup.install_dir.join("sharp-workload.toml");
        fs::write(&presets, SHARP_WORKLOAD_TOML).with_context(|| format!("writing {}", presets.display()))?;
        Ok(Self {
            program,
            presets,
            tmp: setup.pipeline_tmp.join(format!("imgpipe-compare-pipeline-{}", std::process::id())),
        })
    }

    /// One `imgpipe process` per round over [`PIPELINE_IMAGES`] links to the input.
    fn run(&self, job: &Job) -> Result<Measurement> {
        let inputs = job.scratch.join("pipeline-in");
        let outputs = self.tmp.join("pipeline-out");
        eprintln!("imgpipe-pipeline: data directories and outputs in {}", self.tmp.display());
        fs::create_dir_all(&inputs).with_context(|| format!("creating {}", inputs.display()))?;
        for i in 1..=PIPELINE_IMAGES {
            let link = inputs.join(format!("img{i:04}.jpg"));
            if !link.exists() {
                std::os::unix::fs::symlink(job.input, &link).with_context(|| format!("linking {}", link.display()))?;
            }
        }
        let mut rounds_ms = Vec::with_capacity(job.plan.rounds);
        let mut version = String::new();
        // Each round writes its own folder, all removed at the end: deleting the last round's
        // files just before a round would charge it for them (on an ext4 without a journal, as
        // here, allocating an inode skips each one freed in the last seconds, one by one).
        let _ = fs::remove_dir_all(&self.tmp);
        fs::create_dir_all(&self.tmp).with_context(|| format!("creating {}", self.tmp.display()))?;
        for round in 0..job.plan.rounds {
            let out = outputs.join(format!("round-{round}"));
            let report = capture(
                Command::new(&self.program)
                    .env("TMPDIR", &self.tmp)
                    .arg("process")
                    .arg(&inputs)
                    .arg("--out")
                    .arg(&out)
                    .arg("--presets")
                    .arg(&self.presets)
                    .args(["--preset", PRESET, "--workers", &job.threads.to_string()]),
            )?;
            let seconds = report
                .split_once(" images in ")
                .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<f64>().ok())
                .with_context(|| format!("unexpected imgpipe report: {report}"))?;
            ensure!(report.contains(&format!("{PIPELINE_IMAGES} done")), "not every image was done: {report}");
            rounds_ms.push(seconds * 1e3);
            version = capture(Command::new(&self.program).arg("--version"))?;
        }
        let made = outputs.join(format!("round-{}/img0001.jpg/out.jpg", job.plan.rounds.saturating_sub(1)));
        fs::copy(&made, job.image).with_context(|| format!("copying {} to {}", made.display(), job.image.display()))?;
        let _ = fs::remove_dir_all(&self.tmp);
        Ok(Measurement { rounds_ms, version, per_round: Some(PIPELINE_IMAGES) })
    }
}

/// A peer whose runner is a script in `benches/peers/`, started once per run.
///
/// The script takes `INPUT THREADS WARMUP ROUNDS PER_ROUND OUTPUT` and prints one line of JSON
/// with at least `rounds_ms` and `version`.
struct ScriptPeer {
    /// The interpreter.
    program: PathBuf,
    /// The runner script.
    script: PathBuf,
    /// Environment for every run.
    env: Vec<(&'static str, OsString)>,
    /// An environment variable set to the run's thread count.
    threads_env: Option<&'static str>,
}

impl ScriptPeer {
    /// sharp under Node.js, installed with npm into `target/compare/node`.
    fn sharp(setup: &Setup) -> Result<Self> {
        let node = find_on_path("node").context("node is not on PATH (install Node.js >= 20.9)")?;
        let prefix = setup.install_dir.join("node");
        let installed = installed_npm_version(&prefix.join("node_modules/sharp/package.json"));
        if installed.as_deref() == Some(SHARP_VERSION) {
            eprintln!("sharp {SHARP_VERSION} is installed in {}", prefix.display());
        } else {
            ensure!(
                setup.install,
                "sharp@{SHARP_VERSION} is not installed in {} (run without --no-install)",
                prefix.display()
            );
            let npm = find_on_path("npm").context("npm is not on PATH (install Node.js >= 20.9 with npm)")?;
            eprintln!("installing sharp@{SHARP_VERSION} into {}", prefix.display());
            run_visible(
                Command::new(npm)
                    .args(["install", "--save-exact", "--no-audit", "--no-fund", "--prefix"])
                    .arg(&prefix)
                    .arg(format!("sharp@{SHARP_VERSION}")),
            )?;
        }
        Ok(Self {
            program: node,
            script: setup.peers_dir.join("sharp.mjs"),
            env: vec![("IMGPIPE_NODE_PREFIX", prefix.into_os_string())],
            threads_env: Some("UV_THREADPOOL_SIZE"),
        })
    }

    /// Pillow in a venv at `target/compare/venv`.
    fn pillow(setup: &Setup) -> Result<Self> {
        let venv = setup.install_dir.join("venv");
        let python = venv.join("bin/python");
        if pillow_version(&python).as_deref() == Some(PILLOW_VERSION) {
            eprintln!("Pillow {PILLOW_VERSION} is installed in {}", venv.display());
        } else {
            ensure!(
                setup.install,
                "pillow=={PILLOW_VERSION} is not installed in {} (run without --no-install)",
                venv.display()
            );
            if !python.is_file() {
                let python3 = find_on_path("python3").context("python3 is not on PATH")?;
                eprintln!("creating a venv in {}", venv.display());
                run_visible(Command::new(python3).args(["-m", "venv"]).arg(&venv))?;
            }
            eprintln!("installing pillow=={PILLOW_VERSION} into {}", venv.display());
            run_visible(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--disable-pip-version-check", "--quiet"])
                    .arg(format!("pillow=={PILLOW_VERSION}")),
            )?;
        }
        Ok(Self { program: python, script: setup.peers_dir.join("pillow.py"), env: Vec::new(), threads_env: None })
    }

    /// Runs the script on `job` and parses the line of JSON it prints.
    fn run(&self, job: &Job) -> Result<Measurement> {
        let Plan { warmup, rounds, per_round } = job.plan;
        let mut command = Command::new(&self.program);
        command
            .arg(&self.script)
            .arg(job.input)
            .args([job.threads, warmup, rounds, per_round].map(|n| n.to_string()))
            .arg(job.image)
            .envs(self.env.iter().map(|(key, value)| (*key, value)));
        if let Some(key) = self.threads_env {
            command.env(key, job.threads.to_string());
        }
        let stdout = capture(&mut command)?;
        let line = stdout
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .with_context(|| format!("{} printed no result", self.script.display()))?;
        serde_json::from_str(line)
            .with_context(|| format!("{} printed {line:?}, not the expected JSON", self.script.display()))
    }
}

/// The version in an installed npm package's `package.json`, if it is there and readable.
fn installed_npm_version(manifest: &Path) -> Option<String> {
    /// The part of `package.json` we read.
    #[derive(Deserialize)]
    struct Package {
        /// The package's version.
        version: String,
    }
    let text = fs::read_to_string(manifest).ok()?;
    serde_json::from_str::<Package>(&text).ok().map(|package| package.version)
}

/// Pillow's version as `python` imports it, if it does.
fn pillow_version(python: &Path) -> Option<String> {
    if !python.is_file() {
        return None;
    }
    capture(Command::new(python).args(["-c", "import PIL; print(PIL.__version__)"])).ok()
}

/// libvips' `vipsthumbnail`, run as `threads` processes in parallel, each over its share of files.
struct Vipsthumbnail {
    /// The executable.
    program: PathBuf,
    /// `vipsthumbnail --vips-version`.
    version: String,
}

impl Vipsthumbnail {
    /// Finds `vipsthumbnail` on PATH, installing `libvips-tools` with apt-get if allowed and root.
    fn find(setup: &Setup) -> Result<Self> {
        let program = match find_on_path("vipsthumbnail") {
            Some(program) => program,
            None => {
                ensure!(setup.install, "vipsthumbnail is not on PATH (install it: apt-get install libvips-tools)");
                ensure!(is_root(), "vipsthumbnail is not on PATH (install it: sudo apt-get install libvips-tools)");
                eprintln!("installing libvips-tools with apt-get");
                let install = || {
                    run_visible(
                        Command::new("apt-get")
                            .args(["install", "-y", "libvips-tools"])
                            .env("DEBIAN_FRONTEND", "noninteractive"),
                    )
                };
                if install().is_err() {
                    run_visible(Command::new("apt-get").arg("update"))?;
                    install()?;
                }
                find_on_path("vipsthumbnail")
                    .context("vipsthumbnail is still not on PATH after installing libvips-tools")?
            }
        };
        let version = capture(Command::new(&program).arg("--vips-version"))?;
        Ok(Self { program, version })
    }

    /// Times `job`: the input is symlinked under many names, so that each process start-up is
    /// shared by many images, and each round's images are split between `job.threads` processes.
    fn run(&self, job: &Job) -> Result<Measurement> {
        let inputs = job.scratch.join("vips-in");
        let outputs = job.scratch.join("vips-out");
        for dir in [&inputs, &outputs] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let links = (1..=job.plan.per_round.max(job.plan.warmup))
            .map(|i| {
                let link = inputs.join(format!("img{i:04}.jpg"));
                if !link.exists() {
                    std::os::unix::fs::symlink(job.input, &link)
                        .with_context(|| format!("linking {} to the input", link.display()))?;
                }
                Ok(link)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut pattern = outputs.join("%s.jpg").into_os_string();
        pattern.push(format!("[Q={QUALITY}]"));

        let batch = |files: &[PathBuf]| -> Result<()> {
            if files.is_empty() {
                return Ok(());
            }
            let children = files
                .chunks(files.len().div_ceil(job.threads))
                .map(|share| {
                    Command::new(&self.program)
                        .env("VIPS_CONCURRENCY", "1")
                        .arg("--size")
                        .arg(format!("{WIDTH}x{HEIGHT}"))
                        .arg("-o")
                        .arg(&pattern)
                        .args(share)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .with_context(|| format!("starting {}", self.program.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            for child in children {
                let output = child.wait_with_output().context("waiting for vipsthumbnail")?;
                ensure!(
                    output.status.success(),
                    "vipsthumbnail failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            Ok(())
        };

        batch(&links[..job.plan.warmup])?;
        let mut rounds_ms = Vec::with_capacity(job.plan.rounds);
        for _ in 0..job.plan.rounds {
            let started = Instant::now();
            batch(&links[..job.plan.per_round])?;
            rounds_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        let made = outputs.join("img0001.jpg");
        fs::copy(&made, job.image).with_context(|| format!("copying {} to {}", made.display(), job.image.display()))?;
        Ok(Measurement { rounds_ms, version: self.version.clone(), per_round: None })
    }
}

/// Where peers are installed and found.
struct Setup {
    /// `target/compare` in the workspace.
    install_dir: PathBuf,
    /// `benches/peers`, the runner scripts.
    peers_dir: PathBuf,
    /// Whether missing peers may be installed.
    install: bool,
    /// TMPDIR of `imgpipe process`.
    pipeline_tmp: PathBuf,
}

/// An executable named `name` in a directory of `$PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// Whether this process runs as root.
fn is_root() -> bool {
    capture(Command::new("id").arg("-u")).is_ok_and(|uid| uid == "0")
}

/// Runs `command` with its output shown on stderr (stdout is kept for the table); fails unless
/// it succeeds.
fn run_visible(command: &mut Command) -> Result<()> {
    let status = command
        .stdin(Stdio::null())
        .stdout(io::stderr())
        .status()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    ensure!(status.success(), "{command:?} failed ({status})");
    Ok(())
}

/// Runs `command` and returns its stdout, trimmed; on failure the error carries its stderr.
fn capture(command: &mut Command) -> Result<String> {
    let output =
        command.stdin(Stdio::null()).output().with_context(|| format!("starting {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!("{command:?} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stderr.trim().is_empty() {
        eprintln!("{}", stderr.trim_end());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A scratch directory under the system temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    /// Creates a fresh scratch directory for this process.
    fn new() -> Result<Self> {
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

/// One row of results: a tool at a thread count.
#[derive(Debug, Serialize)]
struct Row {
    /// The tool.
    tool: Tool,
    /// Its thread count.
    threads: usize,
    /// Median over rounds of (round wall time / images in round).
    ms_per_image: f64,
    /// `1000 / ms_per_image`.
    images_per_s: f64,
    /// Size of the output JPEG.
    bytes: u64,
    /// The tool's version.
    version: String,
    /// Output width.
    out_width: u32,
    /// Output height.
    out_height: u32,
    /// imgpipe's images/s over this row's, at the same thread count (above 1: imgpipe is faster).
    imgpipe_x: Option<f64>,
    /// Cores' worth of CPU that other processes used during the run (Linux); much above 0 means
    /// the timing is skewed.
    other_cpu: Option<f64>,
    /// Wall time of each round, in milliseconds.
    rounds_ms: Vec<f64>,
    /// The output image.
    image: PathBuf,
}

impl Row {
    /// Summarises a measurement; the output image is read back for its size and dimensions.
    fn new(tool: Tool, threads: usize, plan: Plan, measured: Measurement, path: &Path) -> Result<Self> {
        ensure!(
            measured.rounds_ms.len() == plan.rounds,
            "{tool} reported {} rounds, not {}",
            measured.rounds_ms.len(),
            plan.rounds
        );
        let per_round = measured.per_round.unwrap_or(plan.per_round) as f64;
        let ms_per_image = median(measured.rounds_ms.iter().map(|ms| ms / per_round).collect());
        ensure!(ms_per_image.is_finite() && ms_per_image > 0.0, "{tool} reported a time of {ms_per_image} ms");
        let bytes = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
        let (out_width, out_height) =
            image::image_dimensions(path).with_context(|| format!("reading {}", path.display()))?;
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
            image: path.to_owned(),
        })
    }
}

/// A (tool, threads) that could not run.
#[derive(Debug, Serialize)]
struct Skipped {
    /// The tool.
    tool: Tool,
    /// Its thread count.
    threads: usize,
    /// Why.
    reason: String,
}

/// The workload, as recorded in `compare.json`.
#[derive(Debug, Serialize)]
struct Workload {
    /// The input image.
    input: PathBuf,
    /// Its width.
    width: u32,
    /// Its height.
    height: u32,
    /// What is made of it.
    output: &'static str,
    /// Untimed images per run.
    warmup: usize,
    /// Timed rounds per run.
    rounds: usize,
    /// Images per round.
    per_round: usize,
    /// Thread count of the "all cores" rows.
    threads_all: usize,
    /// Available parallelism of this machine.
    cores: usize,
}

/// `compare.json`.
#[derive(Debug, Serialize)]
struct Report {
    /// What was run.
    workload: Workload,
    /// One entry per (tool, threads) that ran.
    results: Vec<Row>,
    /// One entry per (tool, threads) that could not run.
    skipped: Vec<Skipped>,
}

/// Clock ticks per second in `/proc` (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// CPU time used so far, from `/proc` (Linux only): to tell whether other work on the machine
/// competed with a run, which on a small machine skews its timings.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    /// When it was taken.
    at: Instant,
    /// Ticks every CPU spent busy (user, nice, system, irq, softirq, steal).
    machine: u64,
    /// Ticks used by this process and its waited-for children.
    ours: u64,
}

impl CpuSample {
    /// Reads `/proc/stat` and `/proc/self/stat`; `None` where they are unavailable.
    fn now() -> Option<Self> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let cpu = stat.lines().next()?.split_whitespace().skip(1).take(8);
        let busy = cpu.enumerate().filter(|&(i, _)| !matches!(i, 3 | 4)).map(|(_, ticks)| ticks.parse::<u64>().ok());
        let machine = busy.sum::<Option<u64>>()?;
        let own = fs::read_to_string("/proc/self/stat").ok()?;
        // After the parenthesised name: state is field 3, utime stime cutime cstime fields 14 to 17.
        let (_, fields) = own.rsplit_once(')')?;
        let ours =
            fields.split_whitespace().skip(11).take(4).map(|ticks| ticks.parse::<u64>().ok()).sum::<Option<u64>>()?;
        Some(Self { at: Instant::now(), machine, ours })
    }

    /// How many cores' worth of CPU other processes used since this sample.
    fn others_since(self) -> Option<f64> {
        let now = Self::now()?;
        let others = (now.machine - self.machine).saturating_sub(now.ours - self.ours);
        Some(others as f64 / USER_HZ / now.at.duration_since(self.at).as_secs_f64())
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[mid],
        _ => (values[mid - 1] + values[mid]) / 2.0,
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().context("the benches crate has no parent directory")?;
    let setup = Setup {
        install_dir: root.join("target/compare"),
        peers_dir: manifest_dir.join("peers"),
        install: !args.no_install,
        pipeline_tmp: args.pipeline_tmp.unwrap_or_else(|| {
            let shm = Path::new("/dev/shm");
            if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() }
        }),
    };
    let out_dir = args.out.unwrap_or_else(|| setup.install_dir.clone());
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let input = args.input.unwrap_or_else(|| fixtures_dir().join(SHARP_BENCH_IMAGE));
    let input = fs::canonicalize(&input).with_context(|| format!("finding the input {}", input.display()))?;
    let (width, height) =
        image::image_dimensions(&input).with_context(|| format!("reading the input {}", input.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads_all = args.threads.map_or(cores, |n| n as usize);
    let thread_counts = if threads_all == 1 { vec![1] } else { vec![1, threads_all] };
    let plan = Plan { warmup: args.warmup as usize, rounds: args.rounds as usize, per_round: args.per_round as usize };
    let mut tools = if args.only.is_empty() { Tool::value_variants().to_vec() } else { args.only };
    tools.sort();
    tools.dedup();

    let scratch = Scratch::new()?;
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    for &tool in &tools {
        let runner = match Runner::prepare(tool, &setup) {
            Ok(runner) => runner,
            Err(e) if tool == Tool::Imgpipe => return Err(e),
            Err(e) => {
                eprintln!("{tool}: unavailable: {e:#}");
                skipped.extend(thread_counts.iter().map(|&threads| Skipped {
                    tool,
                    threads,
                    reason: format!("{e:#}"),
                }));
                continue;
            }
        };
        for &threads in &thread_counts {
            eprintln!(
                "{tool}, {threads} thread(s): {} warm-up + {} × {} images",
                plan.warmup, plan.rounds, plan.per_round
            );
            let image = out_dir.join(format!("{tool}.jpg"));
            let job = Job { input: &input, threads, plan, image: &image, scratch: &scratch.0 };
            let before = CpuSample::now();
            let measured = runner.run(&job);
            match measured.and_then(|measured| Row::new(tool, threads, plan, measured, &image)) {
                Ok(row) => {
                    let others = before.and_then(CpuSample::others_since);
                    if let Some(others) = others.filter(|&others| others > BUSY) {
                        eprintln!("warning: other processes used {others:.2} cores during this run");
                    }
                    results.push(Row { other_cpu: others, ..row });
                }
                Err(e) if tool == Tool::Imgpipe => return Err(e.context(format!("imgpipe failed ({threads} threads)"))),
                Err(e) => {
                    eprintln!("{tool}, {threads} thread(s): failed: {e:#}");
                    skipped.push(Skipped { tool, threads, reason: format!("{e:#}") });
                }
            }
        }
    }

    let imgpipe_rate = |threads: usize| {
        results.iter().find(|row| row.tool == Tool::Imgpipe && row.threads == threads).map(|row| row.images_per_s)
    };
    let ratios: Vec<_> =
        results.iter().map(|row| imgpipe_rate(row.threads).map(|rate| rate / row.images_per_s)).collect();
    for (row, ratio) in results.iter_mut().zip(ratios) {
        row.imgpipe_x = ratio;
    }

    print_table(&tools, &thread_counts, &results, &skipped);
    let report = Report {
        workload: Workload {
            input,
            width,
            height,
            output: WORKLOAD,
            warmup: plan.warmup,
            rounds: plan.rounds,
            per_round: plan.per_round,
            threads_all,
            cores,
        },
        results,
        skipped,
    };
    let json_path = out_dir.join("compare.json");
    let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
    fs::write(&json_path, json + "\n").with_context(|| format!("writing {}", json_path.display()))?;
    eprintln!("wrote {} and the output images beside it", json_path.display());
    Ok(())
}

/// Prints the table and the summary lines on stdout.
fn print_table(tools: &[Tool], thread_counts: &[usize], results: &[Row], skipped: &[Skipped]) {
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
