//! Peak memory per image: `cargo run --release -p benches --bin memory`.
//!
//! Makes photo-like test images of 1, 12, 24 and 50 megapixels (JPEG) and 50 MP (PNG), then
//! processes each with the built-in `default` preset (a WebP thumbnail and two watermarked JPEGs)
//! in a fresh child process, once on 1 thread and once on every core. Each child resets its
//! peak-RSS counter (`/proc/self/clear_refs`) once the input is read, processes it, and reports
//! `VmHWM`: the most resident memory it held while the kernel ran. The table gives that peak, the
//! part the kernel added over what the process held before, and the time. Linux only.

use anyhow::{Context, Result, bail, ensure};
use benches::procfs;
use clap::Parser;
use imgpipe_core::{Limits, PresetCatalog};
use processor::{Recipe, process};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The target for a 12 MP photo (issue 14): peak RSS of the process, in MiB.
const TARGET_12MP_MIB: f64 = 150.0;

#[derive(Parser)]
#[command(about = "Peak memory (RSS) per image through the kernel, one child process per image")]
struct Args {
    /// Keep the generated images here (made once, reused); a temporary directory otherwise.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Thread counts to run each image with (default: 1 and every core).
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Only the 1 MP image (a smoke run).
    #[arg(long)]
    quick: bool,
    /// Internal: process this file and print the measurement as JSON.
    #[arg(long, hide = true)]
    child: Option<PathBuf>,
}

/// One test image: its name, size and format.
struct Input {
    name: &'static str,
    width: u32,
    height: u32,
    format: image::ImageFormat,
}

const INPUTS: [Input; 5] = [
    Input { name: "1mp.jpg", width: 1224, height: 816, format: image::ImageFormat::Jpeg },
    Input { name: "12mp.jpg", width: 4000, height: 3000, format: image::ImageFormat::Jpeg },
    Input { name: "24mp.jpg", width: 6000, height: 4000, format: image::ImageFormat::Jpeg },
    Input { name: "50mp.jpg", width: 8660, height: 5773, format: image::ImageFormat::Jpeg },
    Input { name: "50mp.png", width: 8660, height: 5773, format: image::ImageFormat::Png },
];

/// What a child measured.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Measured {
    /// Resident memory before the kernel ran (binary, pools, the input's bytes), KiB.
    before_kib: u64,
    /// The most resident memory while it ran, KiB.
    peak_kib: u64,
    /// Wall time of the kernel, ms.
    ms: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(file) = &args.child {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        println!("{}", serde_json::to_string(&measure(&bytes)?)?);
        return Ok(());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if args.threads.is_empty() { vec![1, cores] } else { args.threads.clone() };
    // Removed when dropped, at the end of main; unused with --dir.
    let temp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let inputs = if args.quick { &INPUTS[..1] } else { &INPUTS[..] };

    println!("| input | pixels | file | threads | peak RSS | kernel's own | time |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut twelve = None;
    for input in inputs {
        let path = dir.join(input.name);
        if !path.is_file() {
            eprintln!("making {} ({}×{})…", input.name, input.width, input.height);
            make_photo(input, &path)?;
        }
        let file_mib = mib(std::fs::metadata(&path)?.len() / 1024);
        for &n in &threads {
            let got = run_child(&path, n)?;
            let peak = mib(got.peak_kib);
            println!(
                "| {} | {:.1} MP | {file_mib:.1} MiB | {n} | {peak:.0} MiB | {:.0} MiB | {:.0} ms |",
                input.name,
                f64::from(input.width) * f64::from(input.height) / 1e6,
                mib(got.peak_kib.saturating_sub(got.before_kib)),
                got.ms
            );
            if input.name == "12mp.jpg" {
                twelve = Some(twelve.map_or(peak, |p: f64| p.max(peak)));
            }
        }
    }
    if let Some(peak) = twelve {
        let verdict = if peak <= TARGET_12MP_MIB { "met" } else { "missed" };
        println!("\n12 MP JPEG: peak RSS {peak:.0} MiB against a target of {TARGET_12MP_MIB:.0} MiB: {verdict}");
    }
    Ok(())
}

/// Processes `bytes` with the `default` preset and measures the peak resident memory it took.
fn measure(bytes: &[u8]) -> Result<Measured> {
    let catalog = PresetCatalog::builtin();
    let preset = catalog.get("default").context("the built-in default preset")?.clone();
    let recipe = Recipe::text_only(preset)?;
    // Start the pool before measuring: its threads' stacks are the process's, not the image's.
    rayon::broadcast(|_| ());
    let before_kib = status_kib("VmRSS")?;
    // Writing 5 resets VmHWM to the current RSS (Linux 4.0+).
    std::fs::write("/proc/self/clear_refs", "5").context("resetting the peak RSS (/proc/self/clear_refs)")?;
    let started = Instant::now();
    let output = process(bytes, &recipe, &Limits::default())?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    ensure!(output.renditions.len() == 3, "the default preset makes 3 renditions, got {}", output.renditions.len());
    Ok(Measured { before_kib, peak_kib: status_kib("VmHWM")?, ms })
}

/// Runs this program on `path` in a child with `threads` rayon threads.
fn run_child(path: &Path, threads: usize) -> Result<Measured> {
    let output = Command::new(std::env::current_exe()?)
        .arg("--child")
        .arg(path)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .context("starting the measuring child")?;
    if !output.status.success() {
        bail!("measuring {} failed: {}", path.display(), String::from_utf8_lossy(&output.stderr));
    }
    serde_json::from_slice(&output.stdout).context("reading the child's measurement")
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status (Linux only)")?;
    procfs::status_kib(&status, field).with_context(|| format!("no {field} in /proc/self/status"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A photo-like image: smooth gradients with fine noise, so encoders and decoders do the work
/// they do on photos (a flat image would compress to nothing). PNGs get less noise: lossless
/// noise does not compress, and a 50 MP PNG must stay under the 50 MiB upload limit.
fn make_photo(input: &Input, path: &Path) -> Result<()> {
    let (w, h) = (input.width, input.height);
    let shift = if input.format == image::ImageFormat::Png { 30 } else { 27 };
    let image = image::RgbImage::from_fn(w, h, |x, y| {
        let noise = (x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77)).rotate_left(13) >> shift;
        let r = (x * 200 / w) as u8;
        let g = (y * 200 / h) as u8;
        let b = ((x + y) * 100 / (w + h)) as u8;
        image::Rgb([r.wrapping_add(noise as u8), g.wrapping_add(noise as u8), b.wrapping_add(noise as u8)])
    });
    image.save_with_format(path, input.format).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sizes_from_proc_status() {
        let status = "Name:\tx\nVmHWM:\t  123456 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(procfs::status_kib(status, "VmHWM"), Some(123_456));
        assert_eq!(procfs::status_kib(status, "VmRSS"), Some(2048));
        assert_eq!(procfs::status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn a_small_photo_is_measured_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.jpg");
        make_photo(&Input { name: "small.jpg", width: 640, height: 480, format: image::ImageFormat::Jpeg }, &path)
            .unwrap();
        let got = measure(&std::fs::read(&path).unwrap()).unwrap();
        assert!(got.peak_kib >= got.before_kib && got.before_kib > 0, "{got:?}");
        assert!(got.ms > 0.0);
    }
}
