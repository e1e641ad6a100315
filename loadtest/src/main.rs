//! `loadtest`: the command line over the library (see `loadtest --help`).

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use loadtest::config::{parse_duration, parse_sizes};
use loadtest::cost::{CostModel, Prices};
use loadtest::rss::RssMargin;
use loadtest::{Inputs, Load, Mode, Report, RunConfig, Size, SoakConfig, StackConfig};
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
    /// Soak a running server: thousands of uploads, good and hostile interleaved in a seeded
    /// order, each followed to its final record and checked against a fresh run of the kernel
    /// (DONE renditions byte-identical, FAILED with the same kind), its memory sampled
    /// throughout. Exits 1 when an upload ends otherwise, a record is left PENDING or
    /// PROCESSING, or memory grows.
    ///
    /// The server must run the built-in default preset and default limits. Try:
    /// imgpipe serve --workers 1 & loadtest soak --target http://127.0.0.1:8080 --pid $! --workers 1
    Soak(Box<SoakArgs>),
    /// Simulate a burst of uploads on the AWS stack (no stack needed): a discrete-event model
    /// of the queue, batching, orchestrator, workflows, Lambda concurrency and its scaling,
    /// DynamoDB and S3 limits. Reports latency percentiles, drain time, queue depth, the first
    /// bottleneck and where time goes, per rate.
    ///
    /// Try: loadtest simulate --rates 500,5000,50000 --images 1000000
    Simulate(Box<SimulateArgs>),
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
    /// Fraction of uploads replaced by hostile inputs, one kind after another (truncated JPEG,
    /// PNG and WebP; text posing as a PNG; bits flipped in JPEG Huffman and quantisation tables
    /// and frame headers, PNG headers and data, the WebP header), which must end FAILED, never
    /// lost.
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
    #[arg(long, default_value_t = 3538)]
    lambda_memory_mb: u32,
    /// For the cost estimate: the processor's storage wait per image in ms (fetch + rendition
    /// PUTs) instead of the records' measured `store` stage, e.g. an S3 figure for a local run.
    #[arg(long)]
    io_ms: Option<f64>,
    /// For the cost estimate: rendition downloads per image by clients (an API request, a record
    /// read, a presigned S3 GET and data transfer out each); 0 = processing only.
    #[arg(long, default_value_t = 0.0)]
    downloads_per_image: f64,
    /// For the cost estimate: bytes of one downloaded rendition [default: the run's mean rendition].
    #[arg(long)]
    download_rendition_bytes: Option<f64>,
    /// Never draw progress bars (they are drawn only on a terminal anyway).
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args)]
struct SoakArgs {
    /// Base URL of the API (`imgpipe serve`).
    #[arg(long, env = "LOADTEST_TARGET")]
    target: String,
    /// API key, sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "IMGPIPE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Process id of the server, to sample its resident memory (VmRSS in /proc/PID/status).
    #[arg(long)]
    pid: Option<u32>,
    /// Kernel threads the server runs (its --workers), for the report.
    #[arg(long)]
    workers: Option<usize>,
    /// Uploads to make.
    #[arg(long, default_value_t = 3000)]
    images: u64,
    /// Fraction of uploads that are hostile inputs (truncations, text, bit flips in JPEG
    /// Huffman and quantisation tables and frame headers, PNG headers and data, WebP headers).
    #[arg(long, default_value_t = 0.15)]
    hostile: f64,
    /// Synthetic images: sizes as WIDTHxHEIGHT, comma separated, each made as JPEG, PNG and WebP.
    #[arg(long, default_value = "640x480,160x120", value_parser = |s: &str| parse_sizes(s).map(Sizes))]
    synthetic: Sizes,
    /// Real photos to mix in: files or folders (e.g. ../shared/fixtures); repeat for several.
    #[arg(long)]
    photos: Vec<PathBuf>,
    /// Seed of the synthetic pixels, the damage done and the order of the uploads.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Images in the pipeline at once: each client uploads, waits for the final record, checks
    /// it, then uploads the next.
    #[arg(long, default_value_t = 6)]
    in_flight: usize,
    /// Images finished before the memory's start is taken [default: a tenth of --images].
    #[arg(long)]
    warmup: Option<u64>,
    /// Pause between memory samples.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    sample_every: Duration,
    /// How far the second half's memory peak may exceed the first half's, in percent…
    #[arg(long, default_value_t = 25.0)]
    rss_margin_percent: f64,
    /// …or in MiB, whichever is larger.
    #[arg(long, default_value_t = 48.0)]
    rss_margin_mib: f64,
    /// How long one image may take to become final before it counts as stuck.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    image_timeout: Duration,
    /// Stop starting uploads after this long (e.g. 30m), even before --images.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Write soak.json, soak.md and the memory plot (rss.svg, rss.png) here.
    #[arg(long, default_value = "soak-report")]
    out: PathBuf,
    /// Never draw the progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args)]
struct SimulateArgs {
    /// Upload rates to simulate, images/s: comma separated or repeated.
    #[arg(long = "rates", visible_alias = "rate", value_delimiter = ',', default_values_t = [500.0, 5000.0, 50000.0])]
    rates: Vec<f64>,
    /// Images in each burst.
    #[arg(long, default_value_t = 1_000_000)]
    images: u64,
    /// Write simulate.json, simulate.md and a figure per rate (rate-R.svg, rate-R.png) here.
    #[arg(long, default_value = "results/simulate")]
    out: PathBuf,
    /// Never draw the progress bar (drawn only on a terminal, for runs over a second).
    #[arg(long)]
    no_progress: bool,
    #[command(flatten)]
    stack: StackConfig,
}

impl SoakArgs {
    fn config(self) -> SoakConfig {
        let mut sources = vec![Inputs::Synthetic(self.synthetic.0)];
        sources.extend(self.photos.into_iter().map(Inputs::Corpus));
        SoakConfig {
            api_key: self.api_key,
            pid: self.pid,
            workers: self.workers,
            images: self.images,
            hostile: self.hostile,
            sources,
            seed: self.seed,
            in_flight: self.in_flight,
            warmup: self.warmup.unwrap_or(self.images / 10),
            sample_every: self.sample_every,
            margin: RssMargin { fraction: self.rss_margin_percent / 100.0, mib: self.rss_margin_mib },
            image_timeout: self.image_timeout,
            duration: self.duration,
            out: Some(self.out),
            progress: !self.no_progress,
            ..SoakConfig::new(self.target)
        }
    }
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
            cost_model: CostModel {
                lambda_memory_mb: self.lambda_memory_mb,
                downloads_per_image: self.downloads_per_image,
                download_bytes: self.download_rendition_bytes,
                ..CostModel::default()
            },
            io_ms: self.io_ms,
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
        Command::Soak(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
            .and_then(|runtime| runtime.block_on(soak(*args))),
        Command::Simulate(args) => simulate(*args),
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
    say(format_args!(
        "cost estimate: {:.2} USD per million images on AWS ({:.2} all direct, {:.2} all presigned; by service in the report)",
        report.cost.total_usd,
        report.cost.for_upload(false).total_usd,
        report.cost.for_upload(true).total_usd
    ));
    say(format_args!("report in {}", out.join("report.md").display()));
    if p.lost > 0 {
        bail!("{} accepted images never reached DONE or FAILED (e.g. {})", p.lost, p.lost_ids.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

async fn soak(args: SoakArgs) -> Result<ExitCode> {
    let out = args.out.clone();
    let report = loadtest::soak(args.config()).await?;
    say(format_args!(
        "{} uploads ({} good, {} hostile, {:.1} %) in {:.1} s: {} DONE, {} FAILED {:?}, {} refused, {} stuck; \
         {} renditions byte-identical to a fresh run; {} outcomes unlike a fresh run's",
        report.checked,
        report.good,
        report.hostile,
        report.hostile_share() * 100.0,
        report.duration_s,
        report.done,
        report.failed,
        report.failures_by_kind,
        report.refused,
        report.stuck,
        report.renditions_identical,
        report.mismatches
    ));
    if let Some(rss) = &report.rss {
        let mib = |kib: u64| kib as f64 / 1024.0;
        say(format_args!(
            "server memory: start {:.1} MiB (after {} images), peak {:.1} MiB, end {:.1} MiB; {:.0} KiB per 1000 images",
            mib(rss.start_kib),
            rss.warmup_images,
            mib(rss.peak_kib),
            mib(rss.end_kib),
            rss.slope_kib_per_1000
        ));
    }
    say(format_args!("report in {}", out.join("soak.md").display()));
    let failures = report.failures();
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for failure in &failures {
        eprintln!("soak failed: {failure}");
    }
    Ok(ExitCode::FAILURE)
}

/// Prints a line; a closed stdout (`loadtest run … | head`) is not an error worth a panic.
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn simulate(args: SimulateArgs) -> Result<ExitCode> {
    let report = loadtest::simulate(&args.stack, args.images, &args.rates, !args.no_progress)?;
    say(format_args!("{}", report.markdown().trim_end()));
    report.write(&args.out).with_context(|| format!("cannot write the report to {}", args.out.display()))?;
    say(format_args!("\nreport in {}", args.out.join("simulate.md").display()));
    Ok(ExitCode::SUCCESS)
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
            "--downloads-per-image",
            "2",
            "--io-ms",
            "90",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else { panic!("not run") };
        let config = args.config().unwrap();
        assert_eq!((config.cost_model.downloads_per_image, config.cost_model.download_bytes), (2.0, None));
        assert_eq!((config.cost_model.lambda_memory_mb, config.io_ms), (3538, Some(90.0)));
        assert_eq!(config.load, Load::Open { rate: 500.0, max_in_flight: 2048 });
        assert_eq!(config.mode, Mode::Mixed);
        assert_eq!(config.drain_timeout, Duration::from_secs(90));
        let sizes = vec![Size { width: 64, height: 48 }, Size { width: 320, height: 240 }];
        assert_eq!(config.inputs, Inputs::Synthetic(sizes));
        let both = ["loadtest", "run", "--target", "http://h:1", "--rate", "5", "--concurrency", "3"];
        assert!(Cli::try_parse_from(both).is_err(), "--rate and --concurrency exclude each other");
    }

    #[test]
    fn simulate_flags_become_the_stack_config() {
        let cli = Cli::try_parse_from([
            "loadtest",
            "simulate",
            "--rates",
            "500,5000",
            "--rate",
            "7",
            "--images",
            "10",
            "--kernel-ms",
            "30",
            "--upload",
            "direct",
        ])
        .unwrap();
        let Command::Simulate(args) = cli.command else { panic!("not simulate") };
        assert_eq!(args.rates, [500.0, 5000.0, 7.0]);
        assert_eq!(args.images, 10);
        assert_eq!(args.stack.kernel_ms, 30.0);
        assert_eq!(args.stack.upload_path, loadtest::simulate::UploadPath::Direct);
        assert_eq!(args.stack.lambda_concurrency, StackConfig::default().lambda_concurrency);
    }

    #[test]
    fn soak_flags_become_the_soak_config() {
        let cli = Cli::try_parse_from([
            "loadtest",
            "soak",
            "--target",
            "http://h:1",
            "--pid",
            "42",
            "--images",
            "500",
            "--photos",
            "a.jpg",
            "--photos",
            "dir",
            "--rss-margin-percent",
            "10",
        ])
        .unwrap();
        let Command::Soak(args) = cli.command else { panic!("not soak") };
        let config = args.config();
        assert_eq!((config.pid, config.images, config.warmup), (Some(42), 500, 50));
        assert_eq!(config.sources.len(), 3);
        assert_eq!(config.sources[1], Inputs::Corpus("a.jpg".into()));
        assert_eq!(config.margin, RssMargin { fraction: 0.1, mib: 48.0 });
        assert!(config.validate().is_ok());
    }
}
