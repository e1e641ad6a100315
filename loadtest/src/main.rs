//! `loadtest`: the command line over the library (see `loadtest --help`).

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use loadtest::config::{parse_duration, parse_sizes};
use loadtest::cost::{CostModel, Prices};
use loadtest::{Inputs, Load, Mode, Report, RunConfig, Size};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "loadtest", version, about = "Drive an imgpipe stack with bulk uploads and measure it", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Upload images to a running stack, wait until each is DONE or FAILED, and report
    /// throughput, latency, failures and the cost per million images on AWS.
    ///
    /// Try: imgpipe serve & loadtest run --target http://127.0.0.1:8080 --images 2000 --out results
    Run(Box<RunArgs>),
    /// Rewrite report.md and the plots from a report.json (e.g. after upgrading loadtest).
    Render {
        /// The run's report.json.
        report: PathBuf,
        /// Where to write (default: beside the report).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare two runs side by side (a Markdown table on stdout).
    Compare {
        /// The first run's report.json.
        a: PathBuf,
        /// The second run's report.json.
        b: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Base URL of the API (`imgpipe serve`, or the deployed API's invoke URL).
    #[arg(long, env = "LOADTEST_TARGET")]
    target: String,
    /// API key, sent as `Authorization: Bearer KEY` (never to signed upload URLs).
    #[arg(long, env = "IMGPIPE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Images to upload.
    #[arg(long, default_value_t = 1000)]
    images: u64,
    /// Closed loop: uploads in flight at once, each starting when one ends [default: 32].
    #[arg(long, conflicts_with = "rate")]
    concurrency: Option<usize>,
    /// Open loop: uploads started per second on a fixed schedule; latency counts from each
    /// upload's scheduled start, so queueing shows.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: most uploads in flight; past it, starts wait (and the wait counts).
    #[arg(long, default_value_t = 2048, requires = "rate")]
    max_in_flight: usize,
    /// How images reach the target: direct POSTs, presigned PUTs, or half each.
    #[arg(long, value_enum, default_value_t = Mode::Direct)]
    mode: Mode,
    /// Upload the files of this folder (recursively, read into memory first).
    #[arg(long, conflicts_with = "synthetic")]
    corpus: Option<PathBuf>,
    /// Generate images in memory: sizes as WIDTHxHEIGHT, comma separated, each made as JPEG,
    /// PNG and WebP.
    #[arg(long, default_value = "640x480", value_parser = |s: &str| parse_sizes(s).map(Sizes))]
    synthetic: Sizes,
    /// Fraction of uploads replaced by hostile inputs (a truncated JPEG, text posing as a PNG),
    /// which must end FAILED, never lost.
    #[arg(long, default_value_t = 0.0)]
    hostile: f64,
    /// Seed of the synthetic pixels and of which input each upload sends.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Preset to ask for (default: the target's default preset).
    #[arg(long)]
    preset: Option<String>,
    /// Stop starting uploads after this long (e.g. 30s, 5m), even before --images.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// How long to wait after the uploads for every image to reach DONE or FAILED; what is
    /// still open then is reported lost.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Do not wait for the images to finish: measure the upload path alone (e.g. against
    /// `imgpipe serve --ingest-only`).
    #[arg(long)]
    no_drain: bool,
    /// Pause between polls of the listing while draining.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    poll_interval: Duration,
    /// Files per presign request (`POST /v1/uploads`).
    #[arg(long, default_value_t = 100)]
    presign_batch: usize,
    /// Timeout of one HTTP request.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    /// Write report.json, report.md and the plots (SVG and PNG) here.
    #[arg(long, default_value = "loadtest-report")]
    out: PathBuf,
    /// Unit prices for the cost estimate (TOML, or JSON if it ends in .json); fields left out
    /// keep the us-east-1 defaults (see loadtest/README.md).
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Processor Lambda memory in MB for the cost estimate.
    #[arg(long, default_value_t = 3008)]
    lambda_memory_mb: u32,
    /// Never draw progress bars (they are drawn only on a terminal anyway).
    #[arg(long)]
    no_progress: bool,
}

/// `--synthetic`'s list (a newtype, so clap takes it as one value rather than many).
#[derive(Debug, Clone)]
struct Sizes(Vec<Size>);

impl RunArgs {
    fn config(self) -> Result<RunConfig> {
        let load = match (self.concurrency, self.rate) {
            (_, Some(rate)) => Load::Open { rate, max_in_flight: self.max_in_flight },
            (concurrency, None) => Load::Closed { concurrency: concurrency.unwrap_or(32) },
        };
        let inputs = match self.corpus {
            Some(dir) => Inputs::Corpus(dir),
            None => Inputs::Synthetic(self.synthetic.0),
        };
        let prices = match &self.prices {
            Some(path) => Prices::load(path)?,
            None => Prices::default(),
        };
        let base = RunConfig::new(self.target);
        Ok(RunConfig {
            api_key: self.api_key,
            images: self.images,
            load,
            mode: self.mode,
            inputs,
            hostile: self.hostile,
            seed: self.seed,
            preset: self.preset,
            duration: self.duration,
            drain: !self.no_drain,
            drain_timeout: self.drain_timeout,
            poll_interval: self.poll_interval,
            presign_batch: self.presign_batch,
            request_timeout: self.timeout,
            out: Some(self.out),
            progress: !self.no_progress,
            prices,
            cost_model: CostModel { lambda_memory_mb: self.lambda_memory_mb, ..CostModel::default() },
            ..base
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
            .and_then(|runtime| runtime.block_on(run(*args))),
        Command::Render { report, out } => render(&report, out),
        Command::Compare { a, b } => compare(&a, &b),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> Result<ExitCode> {
    let out = args.out.clone();
    let config = args.config()?;
    let report = loadtest::run(config).await?;
    let (u, p) = (&report.uploads, &report.pipeline);
    say(format_args!(
        "{} uploads accepted of {} ({:.1}/s); {} completed, {} failed, {} lost; {:.1} images/s finished",
        u.accepted, u.attempted, u.per_s, p.completed, p.failed, p.lost, p.finished_per_s
    ));
    if p.unchecked > 0 {
        say(format_args!(
            "upload latency p50 {:.1} ms, p99 {:.1} ms; not waited for the pipeline (--no-drain)",
            u.latency.p50_ms, u.latency.p99_ms
        ));
        say(format_args!("report in {}", out.join("report.md").display()));
        return Ok(ExitCode::SUCCESS);
    }
    let e2e = &p.e2e_latency;
    say(format_args!(
        "end-to-end latency p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms; upload latency p50 {:.1} ms, p99 {:.1} ms",
        e2e.p50_ms, e2e.p90_ms, e2e.p99_ms, e2e.max_ms, u.latency.p50_ms, u.latency.p99_ms
    ));
    say(format_args!("cost estimate: {:.2} USD per million images on AWS", report.cost.total_usd));
    say(format_args!("report in {}", out.join("report.md").display()));
    if p.lost > 0 {
        bail!("{} accepted images never reached DONE or FAILED (e.g. {})", p.lost, p.lost_ids.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a line; a closed stdout (`loadtest run … | head`) is not an error worth a panic.
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn render(path: &Path, out: Option<PathBuf>) -> Result<ExitCode> {
    let report = Report::read(path)?;
    let dir = out.unwrap_or_else(|| {
        path.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    for written in report.write(&dir)? {
        say(format_args!("wrote {}", written.display()));
    }
    Ok(ExitCode::SUCCESS)
}

fn compare(a: &Path, b: &Path) -> Result<ExitCode> {
    let (a, b) = (Report::read(a)?, Report::read(b)?);
    say(format_args!("{}", loadtest::compare(&a, &b).trim_end()));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_become_the_run_config() {
        let cli = Cli::try_parse_from([
            "loadtest",
            "run",
            "--target",
            "http://h:1",
            "--rate",
            "500",
            "--synthetic",
            "64x48,320x240",
            "--mode",
            "mixed",
            "--drain-timeout",
            "90s",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else { panic!("not run") };
        let config = args.config().unwrap();
        assert_eq!(config.load, Load::Open { rate: 500.0, max_in_flight: 2048 });
        assert_eq!(config.mode, Mode::Mixed);
        assert_eq!(config.drain_timeout, Duration::from_secs(90));
        let sizes = vec![Size { width: 64, height: 48 }, Size { width: 320, height: 240 }];
        assert_eq!(config.inputs, Inputs::Synthetic(sizes));
        let both = ["loadtest", "run", "--target", "http://h:1", "--rate", "5", "--concurrency", "3"];
        assert!(Cli::try_parse_from(both).is_err(), "--rate and --concurrency exclude each other");
    }
}
