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
//!
//! This file parses the flags and hands over to:
//! - `job`: the tools, and what a run is given and what it measured;
//! - `runner`: each tool made ready, and the loop over tools and thread counts;
//! - `imgpipe`: the kernel in process, and the whole pipeline (`imgpipe process`);
//! - `peers`: sharp and Pillow through their scripts, `vipsthumbnail`, and their installs;
//! - `command`: running external programs;
//! - `sample`: CPU used by other processes during a run, and the median;
//! - `report`: the table on stdout and `compare.json`.

mod command;
mod imgpipe;
mod job;
mod peers;
mod report;
mod runner;
mod sample;

use anyhow::{Context, Result};
use benches::{SHARP_BENCH_IMAGE, fixtures_dir};
use clap::{Parser, ValueEnum};
use job::{Plan, Scratch, Setup, Tool};
use report::{Report, Workload};
use std::fs;
use std::path::{Path, PathBuf};

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
    let (mut results, skipped) = runner::run_all(&tools, &thread_counts, plan, &setup, &input, &out_dir, &scratch)?;
    report::compare_with_imgpipe(&mut results);

    report::print_table(&tools, &thread_counts, &results, &skipped);
    let report = Report {
        workload: Workload {
            input,
            width,
            height,
            output: report::WORKLOAD,
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
    report.write(&json_path)?;
    eprintln!("wrote {} and the output images beside it", json_path.display());
    Ok(())
}
