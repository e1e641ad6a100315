//! Placeholders for a front end to show while renditions load: a ThumbHash and the dominant
//! colour, computed from at most 32×32 pixels sampled from an image the kernel already holds.
//!
//! ThumbHash keeps at most 7 cosine terms per axis, so 32 samples a side give the hash of 100
//! (its limit) within 2% per channel on a textured image, at a tenth of the cost: the whole placeholder, sampling included,
//! takes about 0.14 ms from a 1024-wide rendition (`cargo bench -p benches --bench kernel -- extras`).

use crate::geometry::{Size, Target};
use base64::Engine;
use image::DynamicImage;
use image::metadata::Orientation;
use imgpipe_core::ImageError;
use imgpipe_core::preset::Fit;
use imgpipe_core::record::Placeholder;

/// The longest side sampled (ThumbHash takes at most 100).
const SIDE: u32 = 32;

/// The size, within 32×32, of the pixels a placeholder is computed from, for an image of `size`.
pub fn sample_size(size: Size) -> Size {
    Target::new(Fit::Inside { width: Some(SIDE), height: Some(SIDE), upscale: false }, size.0, size.1).out
}

/// The placeholder of `image` (stored orientation, `Rgb8` or `Rgba8`), which `orientation` turns
/// upright.
pub fn of_image(image: &DynamicImage, orientation: Orientation) -> Result<Placeholder, ImageError> {
    let mut small = crate::resize::sample(image, sample_size((image.width(), image.height())))?;
    small.apply_orientation(orientation);
    let rgba = small.into_rgba8();
    Ok(of_rgba(rgba.width(), rgba.height(), rgba.as_raw()))
}

/// The placeholder of upright RGBA pixels (`width`×`height`, each at most 100).
pub fn of_rgba(width: u32, height: u32, rgba: &[u8]) -> Placeholder {
    let hash = thumbhash::rgba_to_thumb_hash(width as usize, height as usize, rgba);
    let [r, g, b] = dominant(rgba);
    Placeholder {
        thumbhash: base64::engine::general_purpose::STANDARD.encode(hash),
        dominant_color: format!("#{r:02x}{g:02x}{b:02x}"),
    }
}

/// The most common colour: the fullest bin of a 16×16×16 RGB histogram (sharp's `dominant`),
/// reported as the mean of the pixels in it. Pixels less than half opaque count only when every
/// pixel is.
fn dominant(rgba: &[u8]) -> [u8; 3] {
    let visible = rgba.chunks_exact(4).any(|p| p[3] >= 128);
    let mut bins = vec![[0u32; 4]; 16 * 16 * 16];
    for p in rgba.chunks_exact(4).filter(|p| !visible || p[3] >= 128) {
        let bin = &mut bins[(usize::from(p[0] >> 4) << 8) | (usize::from(p[1] >> 4) << 4) | usize::from(p[2] >> 4)];
        for c in 0..3 {
            bin[c] += u32::from(p[c]);
        }
        bin[3] += 1;
    }
    // Ties go to the first bin, so the answer does not depend on the iteration order.
    let fullest = bins.iter().fold(&[0u32; 4], |best, bin| if bin[3] > best[3] { bin } else { best });
    let count = fullest[3].max(1);
    [0, 1, 2].map(|c| ((fullest[c] + count / 2) / count) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    #[test]
    fn the_dominant_colour_is_the_most_common_one_not_the_mean() {
        // Two thirds blue, one third red: the mean would be purple.
        let image = RgbImage::from_fn(90, 30, |x, _| if x < 30 { Rgb([200, 0, 0]) } else { Rgb([10, 40, 200]) });
        let placeholder = of_image(&DynamicImage::ImageRgb8(image), Orientation::NoTransforms).unwrap();
        assert_eq!(placeholder.dominant_color, "#0a28c8");
    }

    #[test]
    fn the_thumbhash_keeps_aspect_ratio_and_orientation() {
        // Stored 40×160 with the top red and the bottom blue; Rotate90 shows it 160×40, red right.
        let image = RgbImage::from_fn(40, 160, |_, y| if y < 80 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
        let placeholder = of_image(&DynamicImage::ImageRgb8(image), Orientation::Rotate90).unwrap();
        let hash = base64::engine::general_purpose::STANDARD.decode(&placeholder.thumbhash).unwrap();
        assert!((20..=40).contains(&placeholder.thumbhash.len()), "{}", placeholder.thumbhash);
        let ratio = thumbhash::thumb_hash_to_approximate_aspect_ratio(&hash).unwrap();
        assert!((3.5..=4.5).contains(&ratio), "aspect {ratio}");
        let (w, h, rgba) = thumbhash::thumb_hash_to_rgba(&hash).unwrap();
        let at = |x: usize| &rgba[(h / 2 * w + x) * 4..][..3];
        assert!(at(w - 2)[0] > at(w - 2)[2] && at(1)[2] > at(1)[0], "left {:?}, right {:?}", at(1), at(w - 2));
    }

    #[test]
    fn thirty_two_samples_hash_as_a_hundred_do() {
        let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(600, 400, |x, y| {
            Rgb([(x * 255 / 600) as u8, ((x + y) % 97 * 2) as u8, (y * 255 / 400) as u8])
        }));
        let hash = |side: u32| {
            let rgba = crate::resize::sample(&photo, (side, side * 2 / 3)).unwrap().into_rgba8();
            thumbhash::rgba_to_thumb_hash(rgba.width() as usize, rgba.height() as usize, rgba.as_raw())
        };
        let (a, b) =
            (thumbhash::thumb_hash_to_rgba(&hash(32)).unwrap(), thumbhash::thumb_hash_to_rgba(&hash(99)).unwrap());
        assert_eq!((a.0, a.1), (b.0, b.1));
        let diff = a.2.iter().zip(&b.2).map(|(&x, &y)| f64::from(x.abs_diff(y))).sum::<f64>() / a.2.len() as f64;
        // Sampling a fine texture at other points moves the preview by 1.5% (3.8 of 255).
        assert!(diff < 6.0, "the previews differ by {diff:.2} per channel on average");
    }

    #[test]
    fn transparent_pixels_do_not_pick_the_colour() {
        let mut rgba = vec![0u8; 10 * 10 * 4];
        rgba[..4].copy_from_slice(&[0, 200, 0, 255]);
        assert_eq!(of_rgba(10, 10, &rgba).dominant_color, "#00c800");
        assert_eq!(of_rgba(10, 10, &[0u8; 400]).dominant_color, "#000000");
    }

    #[test]
    fn samples_fit_in_32_by_32() {
        assert_eq!(sample_size((2725, 2225)), (32, 26));
        assert_eq!(sample_size((1, 16_383)), (1, 32));
        assert_eq!(sample_size((20, 10)), (20, 10));
    }
}
