//! Bounds on what one image may cost, checked before the memory they protect is allocated.

use crate::format::InputFormat;
use serde::{Deserialize, Serialize};

/// What one image may cost. Every field has a safe default; deployments tighten or relax them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted upload, in bytes.
    pub max_input_bytes: u64,
    /// Largest decoded image, in pixels (width × height of one frame): stops decompression bombs.
    pub max_pixels: u64,
    /// Longest accepted side, in pixels.
    pub max_side: u32,
    /// Most frames an animated image may declare.
    pub max_frames: u32,
    /// Most pixels, summed over its frames, of an animation kept animated (frames × width ×
    /// height, from the headers): over it, `animated` renditions get the first frame alone.
    pub max_animation_pixels: u64,
    /// Most bytes a decoder may allocate for one image (pixels, colour profiles, metadata).
    pub max_alloc: u64,
    /// Most scans a progressive JPEG may have: each one is another pass over every coefficient,
    /// so a small file with thousands of scans would hold a core for minutes.
    pub max_scans: u32,
    /// Input formats this deployment accepts; others fail as `unsupported`.
    pub formats: Vec<InputFormat>,
}

impl Limits {
    /// The web formats accepted by default. TIFF and BMP decode too, when a deployment opts in.
    pub const DEFAULT_FORMATS: [InputFormat; 4] =
        [InputFormat::Jpeg, InputFormat::Png, InputFormat::Gif, InputFormat::Webp];

    /// Whether `format` is accepted.
    pub fn accepts(&self, format: InputFormat) -> bool {
        self.formats.contains(&format)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_bytes: 50 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_side: 16_383,
            max_frames: 100,
            // A 1000×1000 animation of 100 frames: at about 5 ms per 480×270 frame measured,
            // seconds of CPU, never minutes (README "Animation").
            max_animation_pixels: 100_000_000,
            // 50 MP of 16-bit RGBA is 400 MB; anything above that is not a picture anyone uploads.
            max_alloc: 448 * 1024 * 1024,
            // Encoders write about 10 scans; libjpeg-turbo suggests a limit of 500 for untrusted data.
            max_scans: 500,
            formats: Self::DEFAULT_FORMATS.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_accept_the_web_formats_only() {
        let limits = Limits::default();
        assert!(limits.accepts(InputFormat::Jpeg));
        assert!(limits.accepts(InputFormat::Webp));
        assert!(!limits.accepts(InputFormat::Tiff));
        assert!(!limits.accepts(InputFormat::Bmp));
    }

    #[test]
    fn partial_json_keeps_the_other_defaults() {
        let limits: Limits = serde_json::from_str(r#"{"max_pixels": 1000}"#).unwrap();
        assert_eq!(limits.max_pixels, 1000);
        assert_eq!(limits.max_side, Limits::default().max_side);
    }
}
