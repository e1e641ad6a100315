//! Where a `cover` crop sits: the window of the scaled image that `entropy` or `attention` keeps,
//! with libvips's meanings (`vips_smartcrop`).
//!
//! - `entropy` cuts slices from the edges, each time from the side whose slice holds less detail
//!   (the Shannon entropy of its luma histogram), until the window fits.
//! - `attention` scores every pixel for what draws the eye (luma edges, skin tones, saturated
//!   colour), blurs the scores, and centres the window on the highest.
//!
//! Both work on pixels the kernel already holds (the image scaled to the crop's full size), and
//! `attention` samples at most 64 pixels along the longer side, so a crop costs well under
//! a millisecond beside the resize that precedes it.

use crate::geometry::Size;
use image::DynamicImage;
use imgpipe_core::preset::Gravity;

/// The top-left corner of the `out`-sized window of `image` that `gravity` keeps.
///
/// `image` is `Rgb8` or `Rgba8`, at least `out` on both axes (a smaller axis is not cropped).
pub fn window(image: &DynamicImage, out: Size, gravity: Gravity) -> (u32, u32) {
    let pixels = Pixels::of(image);
    let (width, height) = (image.width(), image.height());
    let (out_w, out_h) = (out.0.min(width), out.1.min(height));
    match gravity {
        Gravity::Center => ((width - out_w) / 2, (height - out_h) / 2),
        Gravity::Entropy => {
            let left = trim(width, out_w, |x, w| pixels.entropy(x, 0, w, height));
            let top = trim(height, out_h, |y, h| pixels.entropy(left, y, out_w, h));
            (left, top)
        }
        Gravity::Attention => {
            let (x, y) = pixels.most_salient();
            let place = |centre: u32, out: u32, side: u32| centre.saturating_sub(out / 2).min(side - out);
            (place(x, out_w, width), place(y, out_h, height))
        }
    }
}

/// Trims a span of `side` down to `out` by cutting slices from either end, each time from the end
/// whose slice scores lower; returns where the kept span starts. `score(start, len)` rates the
/// slice `start..start + len`.
fn trim(side: u32, out: u32, score: impl Fn(u32, u32) -> f64) -> u32 {
    // libvips cuts slices of an eighth of the side at most: coarse enough to be quick, fine enough
    // not to cut through a subject.
    let max_slice = (side / 8).max(1);
    let (mut start, mut len) = (0, side);
    while len > out {
        let slice = (len - out).min(max_slice);
        if score(start, slice) < score(start + len - slice, slice) {
            start += slice;
        }
        len -= slice;
    }
    start
}

/// 8-bit RGB pixels, with or without alpha.
struct Pixels<'a> {
    bytes: &'a [u8],
    width: u32,
    height: u32,
    channels: usize,
}

impl<'a> Pixels<'a> {
    fn of(image: &'a DynamicImage) -> Self {
        Self {
            bytes: image.as_bytes(),
            width: image.width(),
            height: image.height(),
            channels: usize::from(image.color().channel_count()),
        }
    }

    fn rgb(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * self.channels;
        [self.bytes[i], self.bytes[i + 1], self.bytes[i + 2]]
    }

    /// The Shannon entropy (bits) of the luma histogram of a rectangle.
    fn entropy(&self, left: u32, top: u32, width: u32, height: u32) -> f64 {
        let mut histogram = [0u32; 256];
        for y in top..top + height {
            for x in left..left + width {
                histogram[usize::from(luma(self.rgb(x, y)))] += 1;
            }
        }
        let total = f64::from(width * height);
        histogram.iter().filter(|&&n| n > 0).map(|&n| f64::from(n) / total).map(|p| -p * p.log2()).sum()
    }

    /// The centre of the most eye-catching region, in pixels.
    fn most_salient(&self) -> (u32, u32) {
        // A grid of at most 64 cells along the longer side, one sample each: a window's place
        // needs no finer answer, and the scores cost microseconds.
        let step = self.width.max(self.height).div_ceil(64).max(1);
        let (gw, gh) = (self.width.div_ceil(step) as usize, self.height.div_ceil(step) as usize);
        let cells = || (0..gh).flat_map(move |gy| (0..gw).map(move |gx| (gx, gy)));
        let rgbs: Vec<[u8; 3]> = cells().map(|(gx, gy)| self.rgb(gx as u32 * step, gy as u32 * step)).collect();
        let lumas: Vec<f32> = rgbs.iter().map(|&rgb| f32::from(luma(rgb))).collect();
        let l = |gx: usize, gy: usize, dx: isize, dy: isize| {
            let x = (gx as isize + dx).clamp(0, gw as isize - 1) as usize;
            let y = (gy as isize + dy).clamp(0, gh as isize - 1) as usize;
            lumas[y * gw + x]
        };
        let scores: Vec<f32> = cells()
            .map(|(gx, gy)| {
                let l = |dx, dy| l(gx, gy, dx, dy);
                // Sobel on luma: detail, text, outlines.
                let sx = (l(1, -1) + 2.0 * l(1, 0) + l(1, 1)) - (l(-1, -1) + 2.0 * l(-1, 0) + l(-1, 1));
                let sy = (l(-1, 1) + 2.0 * l(0, 1) + l(1, 1)) - (l(-1, -1) + 2.0 * l(0, -1) + l(1, -1));
                let rgb = rgbs[gy * gw + gx];
                (sx.abs() + sy.abs()) / 8.0 + 255.0 * (skin(rgb) + saturation(rgb))
            })
            .collect();
        // Blur, so a region wins rather than one pixel, then take the peak.
        let radius = (gw.max(gh) / 16).max(1);
        let blurred = box_blur(&box_blur(&scores, gw, gh, radius), gw, gh, radius);
        let peak = blurred.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
        let (gx, gy) = ((peak % gw) as u32, (peak / gw) as u32);
        ((gx * step + step / 2).min(self.width - 1), (gy * step + step / 2).min(self.height - 1))
    }
}

/// Rec. 601 luma.
fn luma([r, g, b]: [u8; 3]) -> u8 {
    ((u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114 + 500) / 1000) as u8
}

/// 1 for a skin tone (Kovač, Peer and Solina's RGB rule for daylight), else 0.
fn skin([r, g, b]: [u8; 3]) -> f32 {
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    let is_skin = r > 95 && g > 40 && b > 20 && max - min > 15 && r.abs_diff(g) > 15 && r > g && r > b;
    if is_skin { 1.0 } else { 0.0 }
}

/// HSV saturation above 0.4 in a pixel that is not dark, scaled 0..=1; else 0.
fn saturation([r, g, b]: [u8; 3]) -> f32 {
    let (max, min) = (f32::from(r.max(g).max(b)), f32::from(r.min(g).min(b)));
    if max < 51.0 {
        return 0.0;
    }
    let s = (max - min) / max;
    if s > 0.4 { s } else { 0.0 }
}

/// A separable box blur of radius `radius` over a `width`×`height` grid, edges clamped (each
/// line through a running sum).
fn box_blur(grid: &[f32], width: usize, height: usize, radius: usize) -> Vec<f32> {
    let pass = |grid: &[f32], along_rows: bool| {
        let (len, lines) = if along_rows { (width, height) } else { (height, width) };
        let at = |line: usize, i: usize| if along_rows { line * width + i } else { i * width + line };
        let mut out = vec![0f32; grid.len()];
        let mut prefix = vec![0f32; len + 1];
        for line in 0..lines {
            for i in 0..len {
                prefix[i + 1] = prefix[i] + grid[at(line, i)];
            }
            for i in 0..len {
                let (from, to) = (i.saturating_sub(radius), (i + radius).min(len - 1));
                out[at(line, i)] = (prefix[to + 1] - prefix[from]) / (to - from + 1) as f32;
            }
        }
        out
    };
    pass(&pass(grid, true), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    /// A flat grey 400×100 field with `subject` painted over the columns `x0..x0 + 60`.
    fn field(x0: u32, subject: impl Fn(u32, u32) -> Rgb<u8>) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(400, 100, |x, y| {
            if (x0..x0 + 60).contains(&x) && (20..80).contains(&y) { subject(x, y) } else { Rgb([120, 120, 120]) }
        }))
    }

    fn stripes(x: u32, y: u32) -> Rgb<u8> {
        let v = ((x * 37 + y * 91) % 7 * 36) as u8;
        Rgb([v, v, v])
    }

    #[test]
    fn centre_is_the_middle() {
        assert_eq!(window(&field(0, stripes), (100, 100), Gravity::Center), (150, 0));
    }

    #[test]
    fn entropy_keeps_the_detailed_part_off_centre() {
        for x0 in [10, 320] {
            let (left, top) = window(&field(x0, stripes), (100, 100), Gravity::Entropy);
            assert!(left <= x0 && x0 + 60 <= left + 100, "subject at {x0}, window at {left}");
            assert_eq!(top, 0);
        }
    }

    #[test]
    fn attention_finds_skin_and_saturated_colour() {
        let skin = |_, _| Rgb([224u8, 172, 140]);
        let red = |_, _| Rgb([220u8, 20, 30]);
        for (x0, subject) in [(330, &skin as &dyn Fn(u32, u32) -> Rgb<u8>), (15, &red)] {
            let (left, _) = window(&field(x0, subject), (100, 100), Gravity::Attention);
            assert!(left <= x0 && x0 + 60 <= left + 100, "subject at {x0}, window at {left}");
        }
        // Vertically too: a tall image with the subject near the bottom.
        let tall = DynamicImage::ImageRgb8(RgbImage::from_fn(100, 400, |_, y| {
            if (300..360).contains(&y) { Rgb([220, 20, 30]) } else { Rgb([120, 120, 120]) }
        }));
        let (_, top) = window(&tall, (100, 100), Gravity::Attention);
        assert!(top <= 300 && 360 <= top + 100, "window at {top}");
    }

    #[test]
    fn windows_stay_inside_the_image_whatever_its_content() {
        let flat = DynamicImage::ImageRgb8(RgbImage::from_pixel(37, 1000, Rgb([0, 0, 0])));
        let noisy = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(1000, 3, |x, y| {
            image::Rgba([(x * 7 + y) as u8, (x * 13) as u8, (x ^ y) as u8, 255])
        }));
        for gravity in [Gravity::Center, Gravity::Entropy, Gravity::Attention] {
            for (image, out) in [(&flat, (37, 1)), (&flat, (30, 999)), (&noisy, (1, 3)), (&noisy, (999, 3))] {
                let (left, top) = window(image, out, gravity);
                assert!(left + out.0 <= image.width() && top + out.1 <= image.height(), "{gravity:?} {out:?}");
            }
        }
    }
}
