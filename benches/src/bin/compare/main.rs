//! `compare`: imgpipe side by side with sharp, libvips' `vipsthumbnail` and Pillow, on this machine,
//! on the workload of sharp's own benchmark — a 2725×2225 JPEG resized to 720×588 (Lanczos3) and
//! encoded as JPEG quality 80 — single-threaded and with all cores. `--workload default` runs
//! imgpipe's built-in `default` preset instead (three renditions, two watermarked) on the same
//! photo as a baseline JPEG, a progressive JPEG and a PNG, against sharp making the same outputs.
//! `--workload avif` makes sharp's 720×588 as an AVIF instead: rav1e against sharp's libaom.
//!
//! ```text
//! cargo run --release -p benches --bin compare [-- --rounds 7 --per-round 20 --only imgpipe,sharp]
//! cargo run --release -p benches --bin compare -- --workload default
//! cargo run --release -p benches --bin compare -- --workload avif
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
//! - `sample`: CPU used by other processes during a run;
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
use clap::Parser;
use job::{Plan, Scratch, Setup, Tool, Workload};
use report::{Report, Run};
use std::fs;
use std::path::{Path, PathBuf};

/// Times imgpipe, sharp, vipsthumbnail and Pillow on sharp's benchmark workload, side by side.
///
/// Each tool runs single-threaded and with all cores; ms/image is the median over rounds of
/// (round wall time / images in round). Missing peers are installed into target/compare/ first.
#[derive(Debug, Parser)]
struct Args {
    /// What each tool makes: sharp's benchmark (one 720×588 JPEG), or imgpipe's `default` preset
    /// (three renditions; run on a baseline JPEG, a progressive JPEG and a PNG; imgpipe, its
    /// pipeline and sharp only).
    #[arg(long, value_enum, default_value_t = Workload::Sharp)]
    workload: Workload,

    /// Timed rounds per tool and thread count.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,

    /// Images per timed round.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    per_round: u32,

    /// Times over: each pass runs every tool once at each thread count, the tools taking turns,
    /// and each row's median is over the rounds of every pass. More than one evens out a machine
    /// whose speed drifts during the run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    passes: u32,

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

    /// The input image [default: sharp's benchmark JPEG from the fixtures directory; with
    /// `--workload default`, that photo as a baseline JPEG, a progressive JPEG and a PNG].
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
        workload: args.workload,
    };
    let out_dir = args.out.unwrap_or_else(|| setup.install_dir.clone());
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let scratch = Scratch::new()?;
    let inputs = match (args.input, args.workload) {
        (Some(input), _) => vec![("input", input)],
        (None, Workload::Sharp | Workload::Avif) => vec![("baseline JPEG", fixtures_dir().join(SHARP_BENCH_IMAGE))],
        (None, Workload::Default) => benches::default_workload_inputs(&scratch.0)?,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads_all = args.threads.map_or(cores, |n| n as usize);
    let thread_counts = if threads_all == 1 { vec![1] } else { vec![1, threads_all] };
    let plan = Plan { warmup: args.warmup as usize, rounds: args.rounds as usize, per_round: args.per_round as usize };
    let mut tools = if args.only.is_empty() { args.workload.tools().to_vec() } else { args.only };
    tools.sort();
    tools.dedup();

    for (label, input) in inputs {
        let input = fs::canonicalize(&input).with_context(|| format!("finding the input {}", input.display()))?;
        let (width, height) =
            image::image_dimensions(&input).with_context(|| format!("reading the input {}", input.display()))?;
        // The sharp workload keeps its files where they always were; the default workload's
        // three inputs each get a folder. Runners link their input under many names in their
        // scratch: a folder per input there too.
        let slug = label.replace(' ', "-").to_lowercase();
        let run_dir = match args.workload {
            Workload::Sharp => out_dir.clone(),
            Workload::Default => out_dir.join(format!("default-{slug}")),
            Workload::Avif => out_dir.join("avif"),
        };
        let scratch_dir = scratch.0.join(&slug);
        for dir in [&run_dir, &scratch_dir] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        eprintln!("== {label}: {} ({width}×{height}) ==", input.display());
        let (mut results, skipped) = runner::run_all(
            &tools,
            &thread_counts,
            plan,
            args.passes as usize,
            &setup,
            &input,
            &run_dir,
            &scratch_dir,
        )?;
        report::compare_with_imgpipe(&mut results);

        println!("{label} ({width}×{height}), {}", args.workload.output());
        report::print_table(&tools, &thread_counts, &results, &skipped);
        let report = Report {
            workload: Run {
                workload: args.workload,
                label,
                input,
                width,
                height,
                output: args.workload.output(),
                warmup: plan.warmup,
                rounds: plan.rounds,
                passes: args.passes as usize,
                per_round: plan.per_round,
                threads_all,
                cores,
            },
            results,
            skipped,
        };
        let json_path = run_dir.join("compare.json");
        report.write(&json_path)?;
        eprintln!("wrote {} and the output images beside it", json_path.display());
    }
    Ok(())
}
