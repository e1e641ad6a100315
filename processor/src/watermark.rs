//! Watermarks: text (bundled DejaVu Sans Bold via `ab_glyph` + `imageproc`) or a PNG logo.
//!
//! The overlay is rendered once per rendition width and cached (the most recently used
//! [`MAX_OVERLAYS`] widths: portrait and odd-shaped images each bring a width of their own, so
//! an unbounded cache would grow with every new shape); stamping an image is one tight loop over
//! the pixels the overlay covers, blending premultiplied colour. The overlay depends on the width
//! alone, never on what was stamped before.

use ab_glyph::{FontRef, PxScale};
use image::{DynamicImage, Rgba, RgbaImage};
use imgpipe_core::preset::{Mark, Watermark};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// The bundled font's TrueType bytes (DejaVu Sans Bold; licence in `assets/DejaVuSans-Bold.LICENSE`).
pub const FONT_TTF: &[u8] = include_bytes!("../assets/DejaVuSans-Bold.ttf");

/// The bundled font, parsed.
static FONT: LazyLock<FontRef<'static>> =
    LazyLock::new(|| FontRef::try_from_slice(FONT_TTF).expect("the bundled font parses"));

/// Rendition widths whose overlays are kept per watermark (the largest, for a 2048-wide
/// rendition at the default scale, is about 200 KB).
pub const MAX_OVERLAYS: usize = 64;

/// A watermark ready to stamp: its spec, its source pixels or text, and the overlay cache.
pub struct Stamp {
    spec: Watermark,
    logo: Option<RgbaImage>,
    overlays: Mutex<Overlays>,
}

/// Overlays by rendition width, each with the tick it was last used at.
#[derive(Default)]
struct Overlays {
    by_width: HashMap<u32, (Arc<Overlay>, u64)>,
    tick: u64,
}

/// A rendered overlay: premultiplied RGBA with the watermark's opacity already applied.
struct Overlay {
    width: u32,
    height: u32,
    pixels: Vec<[u8; 4]>,
}

impl Stamp {
    /// Prepares `spec`; a logo watermark needs the logo's decoded pixels.
    pub fn new(spec: Watermark, logo: Option<RgbaImage>) -> Self {
        Self { spec, logo, overlays: Mutex::new(Overlays::default()) }
    }

    /// Draws the watermark onto `image` (`Rgb8` or `Rgba8`, upright).
    pub fn apply(&self, image: &mut DynamicImage) {
        let (width, height) = (image.width(), image.height());
        let overlay = self.overlay(width);
        let margin = (self.spec.margin * width as f32).round() as u32;
        let place = |room: u32, size: u32, third: u8| match third {
            0 => margin.min(room.saturating_sub(size)),
            1 => room.saturating_sub(size) / 2,
            _ => room.saturating_sub(size).saturating_sub(margin),
        };
        let (hx, hy) = self.spec.position.thirds();
        let (x0, y0) = (place(width, overlay.width, hx), place(height, overlay.height, hy));
        let (w, h) = (overlay.width.min(width - x0), overlay.height.min(height - y0));
        match image {
            DynamicImage::ImageRgb8(rgb) => blend::<3>(rgb, width, &overlay, (x0, y0), (w, h)),
            DynamicImage::ImageRgba8(rgba) => blend::<4>(rgba, width, &overlay, (x0, y0), (w, h)),
            _ => {}
        }
    }

    /// The overlay for renditions `width` wide, rendered on first use; when the cache is full,
    /// the least recently used width makes room.
    fn overlay(&self, width: u32) -> Arc<Overlay> {
        let mut cache = self.overlays.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.tick += 1;
        let tick = cache.tick;
        if let Some((overlay, used)) = cache.by_width.get_mut(&width) {
            *used = tick;
            return overlay.clone();
        }
        if cache.by_width.len() >= MAX_OVERLAYS {
            let oldest = cache.by_width.iter().min_by_key(|(_, (_, used))| *used).map(|(&width, _)| width);
            oldest.map(|width| cache.by_width.remove(&width));
        }
        let overlay = Arc::new(self.render(width));
        cache.by_width.insert(width, (overlay.clone(), tick));
        overlay
    }

    fn render(&self, width: u32) -> Overlay {
        let target = ((self.spec.scale * width as f32).round() as u32).max(1);
        let straight = match (&self.spec.mark, &self.logo) {
            (Mark::Text { text, color }, _) => render_text(text, color.0, target),
            (Mark::Logo { .. }, Some(logo)) => render_logo(logo, target),
            (Mark::Logo { .. }, None) => RgbaImage::new(1, 1),
        };
        let opacity = self.spec.opacity;
        let pixels = straight
            .pixels()
            .map(|p| {
                let a = f32::from(p[3]) * opacity / 255.0;
                let c = |v: u8| (f32::from(v) * a).round() as u8;
                [c(p[0]), c(p[1]), c(p[2]), (a * 255.0).round() as u8]
            })
            .collect();
        Overlay { width: straight.width(), height: straight.height(), pixels }
    }
}

/// Text `target` pixels wide, with a soft dark shadow so it reads on light and dark photos.
fn render_text(text: &str, color: [u8; 3], target: u32) -> RgbaImage {
    const PROBE: f32 = 100.0;
    let (probe_width, _) = imageproc::drawing::text_size(PxScale::from(PROBE), &*FONT, text);
    let scale = PxScale::from((PROBE * target as f32 / probe_width.max(1) as f32).max(1.0));
    let (w, h) = imageproc::drawing::text_size(scale, &*FONT, text);
    let shadow = ((scale.y / 24.0).round() as i32).max(1);
    let mut canvas = RgbaImage::new(w + shadow as u32, h + shadow as u32);
    imageproc::drawing::draw_text_mut(&mut canvas, Rgba([0, 0, 0, 160]), shadow, shadow, scale, &*FONT, text);
    imageproc::drawing::draw_text_mut(
        &mut canvas,
        Rgba([color[0], color[1], color[2], 255]),
        0,
        0,
        scale,
        &*FONT,
        text,
    );
    canvas
}

fn render_logo(logo: &RgbaImage, target: u32) -> RgbaImage {
    let height = ((u64::from(target) * u64::from(logo.height())) / u64::from(logo.width().max(1))).max(1) as u32;
    let src = DynamicImage::ImageRgba8(logo.clone());
    match crate::resize::resize(&src, (target, height), false) {
        Ok(resized) => resized.into_rgba8(),
        Err(_) => RgbaImage::new(1, 1),
    }
}

/// `dst = overlay + dst × (1 − overlay.alpha)` over the covered rectangle only.
fn blend<const N: usize>(dst: &mut [u8], dst_width: u32, overlay: &Overlay, (x0, y0): (u32, u32), (w, h): (u32, u32)) {
    let stride = dst_width as usize * N;
    for row in 0..h as usize {
        let start = (y0 as usize + row) * stride + x0 as usize * N;
        let dst_row = &mut dst[start..start + w as usize * N];
        let src_row = &overlay.pixels[row * overlay.width as usize..][..w as usize];
        for (d, s) in dst_row.chunks_exact_mut(N).zip(src_row) {
            let keep = 255 - u32::from(s[3]);
            if keep == 255 {
                continue;
            }
            for c in 0..3 {
                d[c] = (u32::from(s[c]) + (u32::from(d[c]) * keep + 127) / 255) as u8;
            }
            if N == 4 {
                d[3] = (u32::from(s[3]) + (u32::from(d[3]) * keep + 127) / 255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgpipe_core::preset::{Anchor, Rgb};

    fn text_stamp(position: Anchor, opacity: f32) -> Stamp {
        let mark = Mark::Text { text: "© imgpipe".into(), color: Rgb::WHITE };
        Stamp::new(Watermark { mark, position, margin: 0.02, opacity, scale: 0.25 }, None)
    }

    fn changed(image: &DynamicImage) -> Vec<(u32, u32)> {
        let rgb = image.to_rgb8();
        rgb.enumerate_pixels().filter(|(_, _, p)| p.0 != [0, 0, 0]).map(|(x, y, _)| (x, y)).collect()
    }

    #[test]
    fn text_lands_in_the_anchored_corner_at_the_requested_scale() {
        let mut image = DynamicImage::ImageRgb8(image::RgbImage::new(400, 300));
        text_stamp(Anchor::BottomRight, 1.0).apply(&mut image);
        let touched = changed(&image);
        let min_x = touched.iter().map(|p| p.0).min().unwrap();
        let max_x = touched.iter().map(|p| p.0).max().unwrap();
        let min_y = touched.iter().map(|p| p.1).min().unwrap();
        assert!(min_x > 250 && max_x < 400 - 7, "x {min_x}..{max_x}");
        assert!(min_y > 200, "y {min_y}");
        let width = max_x - min_x;
        assert!((85..=110).contains(&width), "text is {width} px wide, wanted about 100");
    }

    #[test]
    fn every_anchor_keeps_the_overlay_inside_the_image() {
        for position in [Anchor::TopLeft, Anchor::Top, Anchor::Center, Anchor::Left, Anchor::BottomLeft] {
            let mut image = DynamicImage::ImageRgb8(image::RgbImage::new(120, 40));
            text_stamp(position, 0.5).apply(&mut image);
            assert!(!changed(&image).is_empty(), "{position:?}");
        }
        // Smaller than the overlay itself: clipped, not a panic.
        let mut tiny = DynamicImage::ImageRgb8(image::RgbImage::new(1, 1));
        text_stamp(Anchor::BottomRight, 1.0).apply(&mut tiny);
    }

    #[test]
    fn opacity_scales_the_mark() {
        let peak = |opacity| {
            let mut image = DynamicImage::ImageRgb8(image::RgbImage::new(400, 100));
            text_stamp(Anchor::Center, opacity).apply(&mut image);
            image.to_rgb8().pixels().map(|p| p[0]).max().unwrap()
        };
        assert_eq!(peak(1.0), 255);
        assert!((120..=135).contains(&peak(0.5)), "{}", peak(0.5));
    }

    #[test]
    fn overlays_are_rendered_once_per_width() {
        let stamp = text_stamp(Anchor::BottomRight, 0.5);
        for _ in 0..3 {
            stamp.apply(&mut DynamicImage::ImageRgb8(image::RgbImage::new(200, 100)));
            stamp.apply(&mut DynamicImage::ImageRgb8(image::RgbImage::new(300, 100)));
        }
        assert_eq!(stamp.overlays.lock().unwrap().by_width.len(), 2);
    }

    #[test]
    fn the_overlay_cache_keeps_the_recent_widths_and_stamps_the_same_after_eviction() {
        let stamp = text_stamp(Anchor::BottomRight, 0.5);
        let stamped = |width: u32| {
            let mut image = DynamicImage::ImageRgb8(image::RgbImage::new(width, 60));
            stamp.apply(&mut image);
            image
        };
        let first = stamped(200);
        for width in 300..300 + 2 * MAX_OVERLAYS as u32 {
            stamped(width);
        }
        let cache = stamp.overlays.lock().unwrap().by_width.keys().copied().collect::<Vec<_>>();
        assert_eq!(cache.len(), MAX_OVERLAYS);
        assert!(!cache.contains(&200), "the least recently used width stays cached");
        assert!(cache.contains(&(299 + 2 * MAX_OVERLAYS as u32)), "the newest width is not cached");
        assert_eq!(stamped(200), first, "a re-rendered overlay stamps differently");
    }

    #[test]
    fn logos_keep_their_aspect() {
        let logo = RgbaImage::from_pixel(40, 20, Rgba([255, 0, 0, 255]));
        let spec = Watermark {
            mark: Mark::Logo { path: "logo.png".into() },
            position: Anchor::TopLeft,
            margin: 0.0,
            opacity: 1.0,
            scale: 0.5,
        };
        let mut image = DynamicImage::ImageRgb8(image::RgbImage::new(100, 100));
        Stamp::new(spec, Some(logo)).apply(&mut image);
        let rgb = image.to_rgb8();
        assert_eq!(rgb.get_pixel(10, 10).0, [255, 0, 0]);
        assert_eq!(rgb.get_pixel(60, 10).0, [0, 0, 0]);
        assert_eq!(rgb.get_pixel(10, 30).0, [0, 0, 0]);
    }
}
