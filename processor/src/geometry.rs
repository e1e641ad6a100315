//! Pure size arithmetic: what each rendition's output measures, and how much of the image it needs.

use image::metadata::Orientation;
use imgpipe_core::preset::{Fit, Gravity};

/// A width and a height in pixels.
pub type Size = (u32, u32);

/// What one rendition needs from the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The output's size.
    pub out: Size,
    /// The size the whole image is scaled to before any crop (≥ `out` on both axes for `cover`).
    pub full: Size,
    /// For `cover`: the scaled image is cropped to `out`, keeping the part this gravity picks.
    pub crop: Option<Gravity>,
}

impl Target {
    /// The target of `fit` for an image of `width`×`height` (both in the same orientation).
    pub fn new(fit: Fit, width: u32, height: u32) -> Self {
        let (w, h) = (f64::from(width), f64::from(height));
        let scaled = |s: f64| ((w * s).round().max(1.0) as u32, (h * s).round().max(1.0) as u32);
        match fit {
            Fit::Inside { width: bw, height: bh, upscale } => {
                let sx = bw.map_or(f64::INFINITY, |bw| f64::from(bw) / w);
                let sy = bh.map_or(f64::INFINITY, |bh| f64::from(bh) / h);
                let mut s = sx.min(sy);
                if !upscale {
                    s = s.min(1.0);
                }
                let mut out = scaled(s);
                // The bounding side is exact, whatever the rounding of the other.
                if s == sx && s < f64::INFINITY {
                    out.0 = bw.unwrap_or(out.0);
                } else if s == sy {
                    out.1 = bh.unwrap_or(out.1);
                }
                Target { out, full: out, crop: None }
            }
            Fit::Cover { width: bw, height: bh, gravity } => {
                let (fw, fh) = scaled((f64::from(bw) / w).max(f64::from(bh) / h));
                Target { out: (bw, bh), full: (fw.max(bw), fh.max(bh)), crop: Some(gravity) }
            }
            Fit::Exact { width: bw, height: bh } => Target { out: (bw, bh), full: (bw, bh), crop: None },
        }
    }

    /// The same target seen in the other orientation (width and height swapped).
    pub fn transposed(self) -> Self {
        let swap = |(a, b): Size| (b, a);
        Target { out: swap(self.out), full: swap(self.full), crop: self.crop }
    }
}

/// Whether applying `orientation` swaps width and height.
pub fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    )
}

/// The JPEG DCT scale denominators tried for shrink-on-load, most shrinking first (as sharp does).
pub const JPEG_SHRINKS: [u32; 3] = [8, 4, 2];

/// The largest shrink (8, 4, 2, else 1) that keeps a `width`×`height` image at least `need` on
/// both axes, so the decoder does as little work as the biggest rendition allows.
pub fn jpeg_shrink(width: u32, height: u32, need: Size) -> u32 {
    JPEG_SHRINKS.into_iter().find(|&d| width.div_ceil(d) >= need.0 && height.div_ceil(d) >= need.1).unwrap_or(1)
}

/// Picks which of `candidates` (sizes of whole-image intermediates) a target of `full` is resized
/// from: the smallest that still covers it on both axes, else the largest.
pub fn pick_source(candidates: &[Size], full: Size) -> usize {
    let area = |(w, h): Size| u64::from(w) * u64::from(h);
    let covering = candidates.iter().enumerate().filter(|(_, c)| c.0 >= full.0 && c.1 >= full.1);
    covering
        .min_by_key(|(_, c)| area(**c))
        .or_else(|| candidates.iter().enumerate().max_by_key(|(_, c)| area(**c)))
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inside(width: Option<u32>, height: Option<u32>, upscale: bool) -> Fit {
        Fit::Inside { width, height, upscale }
    }

    #[test]
    fn inside_keeps_the_aspect_and_never_upscales_unless_asked() {
        assert_eq!(Target::new(inside(Some(1024), None, false), 2725, 2225).out, (1024, 836));
        assert_eq!(Target::new(inside(None, Some(100), false), 400, 200).out, (200, 100));
        assert_eq!(Target::new(inside(Some(100), Some(100), false), 400, 200).out, (100, 50));
        assert_eq!(Target::new(inside(Some(2048), None, false), 640, 480).out, (640, 480));
        assert_eq!(Target::new(inside(Some(2048), None, true), 640, 480).out, (2048, 1536));
    }

    #[test]
    fn cover_fills_the_box_and_crops_the_rest() {
        let cover = Fit::Cover { width: 256, height: 256, gravity: Gravity::Entropy };
        let t = Target::new(cover, 2725, 2225);
        assert_eq!(t, Target { out: (256, 256), full: (314, 256), crop: Some(Gravity::Entropy) });
        let small = Target::new(cover, 32, 16);
        assert_eq!(small.out, (256, 256));
        assert_eq!(small.full, (512, 256));
    }

    #[test]
    fn exact_is_exact() {
        let t = Target::new(Fit::Exact { width: 300, height: 10 }, 50, 5000);
        assert_eq!((t.out, t.full, t.crop), ((300, 10), (300, 10), None));
    }

    #[test]
    fn extreme_aspect_ratios_keep_at_least_one_pixel() {
        assert_eq!(Target::new(inside(Some(1024), None, false), 16_383, 1).out, (1024, 1));
        assert_eq!(Target::new(inside(Some(256), Some(256), false), 1, 16_383).out, (1, 256));
    }

    #[test]
    fn shrink_on_load_picks_the_largest_shrink_that_still_covers() {
        // sharp's benchmark: 2725×2225 → 720×588 decodes at 1/2 (1363×1113), not 1/4 (682×557).
        assert_eq!(jpeg_shrink(2725, 2225, (720, 588)), 2);
        assert_eq!(jpeg_shrink(2725, 2225, (314, 256)), 8);
        assert_eq!(jpeg_shrink(2725, 2225, (2048, 1672)), 1);
        assert_eq!(jpeg_shrink(100, 100, (13, 13)), 8);
        assert_eq!(jpeg_shrink(100, 100, (14, 14)), 4);
    }

    #[test]
    fn sources_are_the_smallest_covering_intermediate() {
        let candidates = [(2725, 2225), (2048, 1672), (1024, 836)];
        assert_eq!(pick_source(&candidates, (2048, 1672)), 1);
        assert_eq!(pick_source(&candidates, (314, 256)), 2);
        assert_eq!(pick_source(&candidates, (1500, 100)), 1);
        assert_eq!(pick_source(&candidates, (4000, 4000)), 0);
    }
}
