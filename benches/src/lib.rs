//! Shared by the kernel benchmarks and the `compare` command: where the reference images are,
//! the workload of sharp's own benchmark, and the inputs of the `default`-preset workload.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

/// sharp's benchmark image (2725×2225 baseline JPEG), from `../shared/fixtures`.
pub const SHARP_BENCH_IMAGE: &str = "2569067123_aca715a2ee_o.jpg";

/// A PNG with alpha (2048×1536 RGBA), from `../shared/fixtures`.
pub const ALPHA_PNG: &str = "alpha-premultiply-2048x1536-paper.png";

/// The workload of sharp's benchmark: resize to 720×588 (Lanczos3), JPEG quality 80.
pub const SHARP_WORKLOAD_TOML: &str = r#"
[presets.sharp-bench]
renditions = [{ name = "out", width = 720, height = 588, fit = "cover", format = "jpeg", quality = 80 }]
"#;

/// imgpipe's side of `compare --workload avif`: sharp's workload as an AVIF at quality 60, rav1e
/// speed 6 (the defaults of an `avif` rendition).
pub const AVIF_WORKLOAD_TOML: &str = r#"
[presets.avif-bench]
renditions = [{ name = "out", width = 720, height = 588, fit = "cover", format = "avif", quality = 60, speed = 6 }]
"#;

/// An image file's width and height: from its headers, AVIF's included (from the container and
/// its AV1 sequence header; the `image` crate here reads no AVIF).
pub fn image_size(path: &Path) -> anyhow::Result<(u32, u32)> {
    use anyhow::Context;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.get(4..12) == Some(b"ftypavif") {
        let avif = avif_parse::read_avif(&mut std::io::Cursor::new(&bytes))
            .map_err(|e| anyhow::anyhow!("{}: not a valid AVIF: {e:?}", path.display()))?;
        let meta = avif.primary_item_metadata().map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?;
        return Ok((meta.max_frame_width.get(), meta.max_frame_height.get()));
    }
    image::image_dimensions(path).with_context(|| format!("reading {}", path.display()))
}

/// The fixtures directory: `$IMGPIPE_FIXTURES`, else `../shared/fixtures` beside the checkout.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("IMGPIPE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"))
}

/// Reads one fixture, with a message that says where it was looked for.
pub fn read_fixture(name: &str) -> std::io::Result<Vec<u8>> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).map_err(|e| {
        std::io::Error::new(e.kind(), format!("{}: {e} (set IMGPIPE_FIXTURES to ../shared/fixtures)", path.display()))
    })
}

/// sharp's benchmark photo re-encoded as a progressive JPEG (quality 90, 4:2:0), the way many
/// web and phone exports are: the same pixels, a decode several times as costly.
pub fn progressive_jpeg(photo: &image::RgbImage) -> Result<Vec<u8>, turbojpeg::Error> {
    let mut compressor = turbojpeg::Compressor::new()?;
    compressor.set_quality(90)?;
    compressor.set_progressive(true)?;
    compressor.compress_to_vec(turbojpeg::Image {
        pixels: photo.as_raw().as_slice(),
        width: photo.width() as usize,
        pitch: photo.width() as usize * 3,
        height: photo.height() as usize,
        format: turbojpeg::PixelFormat::RGB,
    })
}

/// The inputs of the `default`-preset workload, written into `dir`: sharp's benchmark photo as
/// it is (baseline JPEG), as a progressive JPEG, and as an RGB PNG. Returns (label, path) pairs.
pub fn default_workload_inputs(dir: &Path) -> anyhow::Result<Vec<(&'static str, PathBuf)>> {
    use anyhow::Context;
    let baseline = fixtures_dir().join(SHARP_BENCH_IMAGE);
    let bytes = read_fixture(SHARP_BENCH_IMAGE)?;
    let photo = image::load_from_memory(&bytes).context("decoding sharp's benchmark photo")?.into_rgb8();
    let progressive = dir.join("photo-progressive.jpg");
    std::fs::write(&progressive, progressive_jpeg(&photo).context("encoding the progressive JPEG")?)?;
    let png = dir.join("photo.png");
    photo.save(&png).with_context(|| format!("writing {}", png.display()))?;
    Ok(vec![("baseline JPEG", baseline), ("progressive JPEG", progressive), ("PNG", png)])
}

/// Reading what Linux's `/proc` says about processes, and the median the reports give.
pub mod procfs {
    /// Clock ticks per second in `/proc/*/stat` (`USER_HZ`: 100 on every Linux architecture).
    pub const USER_HZ: f64 = 100.0;

    /// utime, stime, cutime and cstime (clock ticks) from the text of a `/proc/PID/stat`.
    pub fn cpu_ticks(stat: &str) -> Option<[u64; 4]> {
        // After the parenthesised name (which may hold spaces): state is field 3, the four
        // times are fields 14 to 17.
        let (_, fields) = stat.rsplit_once(')')?;
        let mut times = fields.split_whitespace().skip(11).map(|ticks| ticks.parse::<u64>().ok());
        Some([times.next()??, times.next()??, times.next()??, times.next()??])
    }

    /// A field of a `/proc/PID/status` text in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(status: &str, field: &str) -> Option<u64> {
        status.lines().find_map(|line| {
            line.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok()
        })
    }

    /// The median of `values` (the mean of the middle two for an even count; NaN for none).
    pub fn median(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        match values.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => values[mid],
            _ => (values[mid - 1] + values[mid]) / 2.0,
        }
    }
}
