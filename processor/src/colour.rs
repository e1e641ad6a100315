//! Colour management: pixels that carry an ICC profile are converted to sRGB right after decoding,
//! before any resize, so every rendition is sRGB (and untagged, as the web assumes).
//!
//! - RGB profiles (Display P3, Adobe RGB, ProPhoto, camera profiles) convert through moxcms,
//!   a pure-Rust CMS (matrix-shaper profiles in SIMD fixed point, LUT profiles through its
//!   interpolators), relative colorimetric, out-of-gamut colours clipped.
//! - CMYK JPEGs with a profile are decoded to raw CMYK and converted through it; Adobe's
//!   inverted CMYK (an APP14 "Adobe" segment, what Photoshop writes) is inverted first. CMYK
//!   without a profile keeps the naive conversion (no standard press profile ships here).
//! - A profile that does not parse, or whose colour space does not match the pixels (a grey
//!   profile, a CMYK profile on RGB pixels), is ignored, as browsers ignore it.
//! - An sRGB profile (most camera JPEGs carry one) costs nothing per pixel: each profile is
//!   checked once per thread against sRGB on a grid of colours, and a profile that maps every one
//!   within one level of itself is the identity.

use image::{DynamicImage, RgbImage};
use imgpipe_core::ImageError;
use moxcms::{ColorProfile, DataColorSpace, Layout, RenderingIntent, Transform8BitExecutor, TransformOptions};
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::Arc;

/// Profiles remembered per thread (a service sees a handful: sRGB, Display P3, Adobe RGB, …).
const CACHED: usize = 16;

/// Rows converted per task: big enough to amortise a task, small enough to spread over threads.
const BAND_ROWS: usize = 64;

/// A conversion to sRGB; `None` is the identity (an sRGB profile, or one that is ignored).
type Conversion = Option<Arc<Transform8BitExecutor>>;

/// A remembered conversion: the profile's bytes and the pixel layout it was built for.
struct Cached {
    icc: Vec<u8>,
    layout: Layout,
    conversion: Conversion,
}

thread_local! {
    // Keyed by the profile's whole bytes, not a hash of them: a crafted profile whose hash
    // collided with Display P3's would otherwise hand its conversion to the next P3 image.
    static CONVERSIONS: RefCell<Vec<Cached>> = const { RefCell::new(Vec::new()) };
}

/// Whether `icc` changes RGB pixels at all (it is not sRGB and is usable on RGB).
pub fn is_wide(icc: &[u8]) -> bool {
    conversion(icc, Layout::Rgb, DataColorSpace::Rgb).is_some()
}

/// Converts `image` (`Rgb8` or `Rgba8`) from the RGB profile `icc` to sRGB, in place; alpha is
/// kept as it is.
pub fn rgb_to_srgb(image: &mut DynamicImage, icc: &[u8]) -> Result<(), ImageError> {
    let (layout, channels) = match image {
        DynamicImage::ImageRgb8(_) => (Layout::Rgb, 3),
        DynamicImage::ImageRgba8(_) => (Layout::Rgba, 4),
        _ => return Ok(()),
    };
    let Some(transform) = conversion(icc, layout, DataColorSpace::Rgb) else { return Ok(()) };
    let row = image.width() as usize * channels;
    let pixels = match image {
        DynamicImage::ImageRgb8(rgb) => rgb.as_mut(),
        DynamicImage::ImageRgba8(rgba) => rgba.as_mut(),
        _ => unreachable!("matched above"),
    };
    pixels.par_chunks_mut(row * BAND_ROWS).try_for_each(|band| {
        let source = band.to_vec();
        transform.transform(&source, band).map_err(failed)
    })
}

/// Whether `icc` is a CMYK profile that converts to sRGB.
pub fn is_cmyk(icc: &[u8]) -> bool {
    conversion(icc, Layout::Rgba, DataColorSpace::Cmyk).is_some()
}

/// Converts `cmyk` pixels (4 bytes each, `width` wide, as libjpeg-turbo decodes them) to sRGB
/// through the CMYK profile `icc` (one that [`is_cmyk`] accepts); `inverted` for Adobe's
/// inverted CMYK.
pub fn cmyk_to_srgb(mut cmyk: Vec<u8>, width: u32, icc: &[u8], inverted: bool) -> Result<RgbImage, ImageError> {
    let transform = conversion(icc, Layout::Rgba, DataColorSpace::Cmyk)
        .ok_or_else(|| ImageError::internal("cmyk_to_srgb needs a CMYK profile"))?;
    if inverted {
        cmyk.iter_mut().for_each(|v| *v = 255 - *v);
    }
    let width_px = width as usize;
    let height = (cmyk.len() / 4 / width_px.max(1)) as u32;
    let mut rgb = vec![0u8; width_px * height as usize * 3];
    rgb.par_chunks_mut(width_px * 3 * BAND_ROWS)
        .zip(cmyk.par_chunks(width_px * 4 * BAND_ROWS))
        .try_for_each(|(out, band)| transform.transform(band, out).map_err(failed))?;
    Ok(RgbImage::from_raw(width, height, rgb).expect("3 bytes per pixel"))
}

/// The conversion of `icc` to sRGB for pixels in `layout`, from this thread's cache.
fn conversion(icc: &[u8], layout: Layout, space: DataColorSpace) -> Conversion {
    CONVERSIONS.with_borrow_mut(|cache| {
        if let Some(hit) = cache.iter().find(|c| c.layout == layout && c.icc == icc) {
            return hit.conversion.clone();
        }
        let conversion = build(icc, layout, space);
        if cache.len() == CACHED {
            cache.remove(0);
        }
        cache.push(Cached { icc: icc.to_vec(), layout, conversion: conversion.clone() });
        conversion
    })
}

fn build(icc: &[u8], layout: Layout, space: DataColorSpace) -> Conversion {
    let profile = ColorProfile::new_from_slice(icc).ok().filter(|p| p.color_space == space)?;
    let options = TransformOptions { rendering_intent: RenderingIntent::RelativeColorimetric, ..Default::default() };
    let out = if layout == Layout::Rgba && space == DataColorSpace::Rgb { Layout::Rgba } else { Layout::Rgb };
    let transform = profile.create_transform_8bit(layout, &ColorProfile::new_srgb(), out, options).ok()?;
    if space == DataColorSpace::Rgb && is_identity(&profile, options) {
        return None;
    }
    Some(transform)
}

/// Whether `profile` maps a 9×9×9 grid of RGB colours within one level of themselves.
fn is_identity(profile: &ColorProfile, options: TransformOptions) -> bool {
    let Ok(transform) = profile.create_transform_8bit(Layout::Rgb, &ColorProfile::new_srgb(), Layout::Rgb, options)
    else {
        return false;
    };
    let levels = (0..=8).map(|i| (i * 255 / 8) as u8);
    let grid: Vec<u8> = levels
        .clone()
        .flat_map(|r| levels.clone().flat_map(move |g| (0..=8).flat_map(move |b| [r, g, (b * 255 / 8) as u8])))
        .collect();
    let mut out = vec![0u8; grid.len()];
    transform.transform(&grid, &mut out).is_ok() && grid.iter().zip(&out).all(|(a, b)| a.abs_diff(*b) <= 1)
}

fn failed(error: moxcms::CmsError) -> ImageError {
    ImageError::internal(format!("colour conversion failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(p: ColorProfile) -> Vec<u8> {
        p.encode().unwrap()
    }

    #[test]
    fn srgb_profiles_are_the_identity_and_wide_ones_are_not() {
        assert!(!is_wide(&profile(ColorProfile::new_srgb())));
        assert!(is_wide(&profile(ColorProfile::new_display_p3())));
        assert!(is_wide(&profile(ColorProfile::new_adobe_rgb())));
    }

    #[test]
    fn broken_and_mismatched_profiles_are_ignored() {
        let mut image = DynamicImage::ImageRgb8(RgbImage::from_pixel(3, 2, image::Rgb([10, 200, 30])));
        let before = image.clone();
        for icc in [b"not a profile".to_vec(), profile(ColorProfile::new_gray_with_gamma(2.2))] {
            rgb_to_srgb(&mut image, &icc).unwrap();
            assert_eq!(image, before);
        }
        assert!(!is_cmyk(&profile(ColorProfile::new_srgb())));
    }

    #[test]
    fn alpha_survives_the_conversion() {
        let mut image = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(70, 130, image::Rgba([0, 255, 0, 77])));
        rgb_to_srgb(&mut image, &profile(ColorProfile::new_display_p3())).unwrap();
        let pixel = image.as_rgba8().unwrap().get_pixel(69, 129).0;
        // P3's green is beyond sRGB's: it clips to sRGB's green, alpha untouched.
        assert_eq!((pixel[1], pixel[3]), (255, 77), "{pixel:?}");
        assert!(pixel[0] < 5 && pixel[2] < 5, "{pixel:?}");
    }
}
