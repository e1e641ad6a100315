//! What a run does: the target, the load shape, the upload mode, the inputs and the limits.

use crate::cost::CostModel;
use crate::cost::Prices;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How images reach the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `POST /v1/images` with the image as the raw body.
    Direct,
    /// `POST /v1/uploads` in batches for signed URLs, then a `PUT` of each file to its URL.
    Presigned,
    /// Each image picks direct or presigned (half each, from the seed).
    Mixed,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Direct => "direct",
            Mode::Presigned => "presigned",
            Mode::Mixed => "mixed",
        })
    }
}

/// The load shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "loop")]
pub enum Load {
    /// Closed loop: `concurrency` uploads in flight, each starting when one ends. Shows the
    /// capacity, but hides queueing: a slow server slows the client down with it.
    Closed {
        /// Uploads in flight.
        concurrency: usize,
    },
    /// Open loop: uploads start on a fixed wall-clock schedule whatever the server does, and
    /// latency counts from the scheduled start, so queueing shows up instead of hiding.
    Open {
        /// Uploads started per second.
        rate: f64,
        /// Most uploads in flight at once; beyond it, starts wait (and the wait counts).
        max_in_flight: usize,
    },
}

impl fmt::Display for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Load::Closed { concurrency } => write!(f, "closed loop, {concurrency} in flight"),
            Load::Open { rate, .. } => write!(f, "open loop, {rate} uploads/s"),
        }
    }
}

/// Where the uploaded bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inputs {
    /// Every file of a folder (recursively), read into memory once.
    Corpus(PathBuf),
    /// Images generated in memory from the seed: each size as JPEG, PNG and WebP.
    Synthetic(Vec<Size>),
}

/// A synthetic image's size in pixels, written `WIDTHxHEIGHT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Largest side of a synthetic image (it is held in memory, in three formats).
const MAX_SYNTHETIC_SIDE: u32 = 8192;

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a size like 640x480");
        let (w, h) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
        let (width, height): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
        let side = 1..=MAX_SYNTHETIC_SIDE;
        if !side.contains(&width) || !side.contains(&height) {
            return Err(format!("{s:?}: each side must be 1..={MAX_SYNTHETIC_SIDE}"));
        }
        Ok(Size { width, height })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// Parses `640x480,1920x1080` into sizes.
pub fn parse_sizes(s: &str) -> Result<Vec<Size>, String> {
    let sizes = s.split(',').filter(|p| !p.trim().is_empty()).map(str::parse).collect::<Result<Vec<Size>, _>>()?;
    if sizes.is_empty() {
        return Err("no sizes given (expected e.g. 640x480,1920x1080)".into());
    }
    Ok(sizes)
}

/// Parses a duration: a number with a unit `ms`, `s`, `m` or `h` (`250ms`, `1.5s`, `10m`); a bare
/// number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{s:?} is not a duration like 30s, 500ms or 5m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {s:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

/// Everything a run needs. [`RunConfig::new`] fills in the defaults the command line shows.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Base URL of the API, e.g. `http://127.0.0.1:8080` (no trailing `/v1`).
    pub target: String,
    /// API key, sent as `Authorization: Bearer KEY` to the API routes (never to signed URLs).
    pub api_key: Option<String>,
    /// Images to upload.
    pub images: u64,
    /// Closed or open loop.
    pub load: Load,
    /// Direct, presigned or mixed uploads.
    pub mode: Mode,
    /// The bodies to upload.
    pub inputs: Inputs,
    /// Fraction (0..=1) of uploads replaced by hostile inputs (truncations, bytes that are no
    /// image, bits flipped in headers and tables: [`crate::inputs::InputKind::HOSTILE`]), which
    /// the pipeline must end FAILED with their kind, never lose.
    pub hostile: f64,
    /// Seed of everything random: synthetic pixels, which input each upload sends, its mode.
    pub seed: u64,
    /// Preset to ask for (the target's default when `None`).
    pub preset: Option<String>,
    /// Stop starting uploads after this long, even if fewer than `images` were sent.
    pub duration: Option<Duration>,
    /// Wait for the accepted images to reach DONE or FAILED (off: measure the upload path
    /// alone, e.g. against `imgpipe serve --ingest-only`).
    pub drain: bool,
    /// How long to wait, after the last upload, for every image to reach DONE or FAILED.
    pub drain_timeout: Duration,
    /// Pause between two polls of the listing while draining.
    pub poll_interval: Duration,
    /// Files per `POST /v1/uploads` in presigned mode.
    pub presign_batch: usize,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Write `report.json`, `report.md` and the plots here.
    pub out: Option<PathBuf>,
    /// Draw progress bars on stderr (only when it is a terminal).
    pub progress: bool,
    /// Unit prices of the cost estimate.
    pub prices: Prices,
    /// How the deployed stack is shaped, for the cost estimate.
    pub cost_model: CostModel,
    /// The processor's storage wait per image for the cost estimate, in ms, instead of the
    /// records' `store` stage (which a local target measures on its disk, not on S3).
    pub io_ms: Option<f64>,
}

impl RunConfig {
    /// The defaults: 1000 synthetic 640x480 images, 32 in flight, direct uploads.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            api_key: None,
            images: 1000,
            load: Load::Closed { concurrency: 32 },
            mode: Mode::Direct,
            inputs: Inputs::Synthetic(vec![Size { width: 640, height: 480 }]),
            hostile: 0.0,
            seed: 1,
            preset: None,
            duration: None,
            drain: true,
            drain_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_millis(500),
            presign_batch: 100,
            request_timeout: Duration::from_secs(60),
            out: None,
            progress: false,
            prices: Prices::default(),
            cost_model: CostModel::default(),
            io_ms: None,
        }
    }

    /// Checks what the types cannot: ranges and the target URL.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.target.starts_with("http://") || self.target.starts_with("https://")) {
            return Err(format!("the target {:?} must start with http:// or https://", self.target));
        }
        if self.images == 0 {
            return Err("--images must be at least 1".into());
        }
        match self.load {
            Load::Closed { concurrency: 0 } => return Err("--concurrency must be at least 1".into()),
            Load::Open { rate, max_in_flight } if !(rate > 0.0 && rate.is_finite()) || max_in_flight == 0 => {
                return Err("--rate must be a positive number, and --max-in-flight at least 1".into());
            }
            _ => {}
        }
        if !(0.0..=1.0).contains(&self.hostile) {
            return Err("--hostile must be a fraction in 0..=1".into());
        }
        if !(1..=1000).contains(&self.presign_batch) {
            return Err("--presign-batch must be 1..=1000 (the API's bulk limit)".into());
        }
        if self.poll_interval.is_zero() {
            return Err("the poll interval must not be zero".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn sizes_are_width_by_height_lists() {
        let sizes = parse_sizes("64x48, 1920X1080").unwrap();
        assert_eq!(sizes, vec![Size { width: 64, height: 48 }, Size { width: 1920, height: 1080 }]);
        assert!(parse_sizes("").is_err());
        assert!(parse_sizes("0x10").is_err());
        assert!(parse_sizes("100x100000").is_err());
        assert!(parse_sizes("big").is_err());
    }

    #[test]
    fn validation_names_the_bad_setting() {
        let mut config = RunConfig::new("http://127.0.0.1:8080");
        assert!(config.validate().is_ok());
        config.load = Load::Closed { concurrency: 0 };
        assert!(config.validate().unwrap_err().contains("--concurrency"));
        config.load = Load::Open { rate: f64::NAN, max_in_flight: 10 };
        assert!(config.validate().unwrap_err().contains("--rate"));
        let config = RunConfig { hostile: 1.5, ..RunConfig::new("http://x") };
        assert!(config.validate().unwrap_err().contains("--hostile"));
        assert!(RunConfig::new("127.0.0.1:8080").validate().unwrap_err().contains("http://"));
    }
}
