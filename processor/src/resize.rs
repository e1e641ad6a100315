//! Resizing with `fast_image_resize` (SIMD Lanczos3), one reusable `Resizer` per thread; and
//! `resize_all`, which makes every rendition of a plan from one decode.

use crate::decode::Decoded;
use crate::geometry::{Size, Target, pick_source};
use crate::plan::Plan;
use crate::{gravity, placeholder};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;
use imgpipe_core::ImageError;
use imgpipe_core::preset::Gravity;
use imgpipe_core::record::Placeholder;
use rayon::prelude::*;
use std::cell::RefCell;

/// Scratch memory a thread's `Resizer` keeps between images. Photos need a few MiB; one huge
/// image (or a hostile one at the pixel limit) would otherwise pin hundreds of MiB per thread
/// for the rest of the process's life.
const MAX_KEPT_SCRATCH: usize = 32 * 1024 * 1024;

thread_local! {
    // A Resizer owns its scratch buffers: one per (rayon) thread, reused for every image. Its
    // output depends on the input alone: the buffers are overwritten, never read first.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Resizes `src` to `size`; with `crop`, first centre-crops it to the target's aspect ratio.
pub fn resize(src: &DynamicImage, size: Size, crop: bool) -> Result<DynamicImage, ImageError> {
    resize_with(src, size, crop, ResizeAlg::Convolution(FilterType::Lanczos3))
}

/// Scales `src` down to `size` coarsely and fast (nearest samples at 4× the size, then a box
/// filter): for pixels that are summarised, never shown (placeholders).
pub fn sample(src: &DynamicImage, size: Size) -> Result<DynamicImage, ImageError> {
    resize_with(src, size, false, ResizeAlg::SuperSampling(FilterType::Box, 4))
}

fn resize_with(src: &DynamicImage, size: Size, crop: bool, alg: ResizeAlg) -> Result<DynamicImage, ImageError> {
    if (src.width(), src.height()) == size {
        return Ok(src.clone());
    }
    let mut dst = DynamicImage::new(size.0, size.1, src.color());
    let mut options = ResizeOptions::new().resize_alg(alg);
    if crop {
        options = options.fit_into_destination(None);
    }
    with_resizer(|resizer| resizer.resize(src, &mut dst, &options))
        .map_err(|e| ImageError::internal(format!("resize to {}×{} failed: {e}", size.0, size.1)))?;
    Ok(dst)
}

/// Makes `target` from `src`: resized to its output and, for `cover`, cropped where its gravity
/// says (the centre is cropped while resizing; a smart crop looks at the scaled image first).
pub fn resize_to(src: &DynamicImage, target: &Target) -> Result<DynamicImage, ImageError> {
    match target.crop {
        None => resize(src, target.out, false),
        Some(Gravity::Center) => resize(src, target.out, true),
        Some(smart) => {
            let full = resize(src, target.full, false)?;
            let (left, top) = gravity::window(&full, target.out, smart);
            Ok(full.crop_imm(left, top, target.out.0, target.out.1))
        }
    }
}

/// Runs `resize` on this thread's `Resizer`, then drops its scratch if an image left too much.
fn with_resizer<T>(resize: impl FnOnce(&mut Resizer) -> T) -> T {
    RESIZER.with_borrow_mut(|resizer| {
        let resized = resize(resizer);
        if resizer.size_of_internal_buffers() > MAX_KEPT_SCRATCH {
            resizer.reset_internal_buffers();
        }
        resized
    })
}

/// Resizes one 8-bit plane of `src_size` to `size`, reading the window `crop` (left, top,
/// width, height, in source pixels) of it, on this thread's `Resizer`.
pub fn resize_plane(src: &[u8], src_size: Size, size: Size, crop: [f64; 4]) -> Result<Vec<u8>, ImageError> {
    use fast_image_resize::PixelType;
    use fast_image_resize::images::{Image, ImageRef};
    let failed =
        |e: &dyn std::fmt::Display| ImageError::internal(format!("plane resize to {}×{} failed: {e}", size.0, size.1));
    let src = ImageRef::new(src_size.0, src_size.1, src, PixelType::U8).map_err(|e| failed(&e))?;
    let mut dst = Image::new(size.0, size.1, PixelType::U8);
    let [left, top, width, height] = crop;
    let options =
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)).crop(left, top, width, height);
    with_resizer(|resizer| resizer.resize(&src, &mut dst, &options)).map_err(|e| failed(&e))?;
    Ok(dst.into_vec())
}

/// A rendition resized, kept until every smaller one is made in case it feeds them.
struct Made {
    /// The rendition's index in its preset.
    index: usize,
    /// Its pixels, in stored orientation.
    image: DynamicImage,
    /// Whether smaller renditions may be resized from it (see `plan::Step::feeds`).
    feeds: bool,
}

/// Makes every rendition of `plan` from `decoded`, largest first, each from the smallest image
/// made so far (the decoded one or a whole-image rendition) that covers it, then turns them all
/// upright in parallel. Returns the renditions' pixels in preset order, and the image's
/// placeholder, scaled from the smallest of those images that covers it.
pub(crate) fn resize_all(decoded: Decoded, plan: &Plan) -> Result<(Vec<DynamicImage>, Placeholder), ImageError> {
    let Decoded { image: decoded, orientation, .. } = decoded;
    let mut made: Vec<Made> = Vec::with_capacity(plan.steps().len());
    for step in plan.steps() {
        let image = resize_to(smallest_covering(&decoded, &made, step.target.full), &step.target)?;
        made.push(Made { index: step.index, image, feeds: step.feeds });
    }
    let sample = placeholder::sample_size((decoded.width(), decoded.height()));
    let placeholder = placeholder::of_image(smallest_covering(&decoded, &made, sample), orientation)?;
    // The decoded image is the largest buffer of all: free it before the renditions go on.
    drop(decoded);
    made.sort_unstable_by_key(|m| m.index);
    let upright = made
        .into_par_iter()
        .map(|Made { mut image, .. }| {
            image.apply_orientation(orientation);
            image
        })
        .collect();
    Ok((upright, placeholder))
}

/// The smallest whole image (`decoded`, or a rendition made so far that may feed others) that
/// covers `size` on both axes, else the largest.
fn smallest_covering<'a>(decoded: &'a DynamicImage, made: &'a [Made], size: Size) -> &'a DynamicImage {
    let wholes: Vec<&DynamicImage> =
        std::iter::once(decoded).chain(made.iter().filter(|m| m.feeds).map(|m| &m.image)).collect();
    let sizes: Vec<Size> = wholes.iter().map(|image| (image.width(), image.height())).collect();
    wholes[pick_source(&sizes, size)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    #[test]
    fn cover_crops_the_centre() {
        // Left third red, middle third green, right third blue: a square crop keeps the green.
        let src = RgbImage::from_fn(300, 100, |x, _| match x / 100 {
            0 => Rgb([255, 0, 0]),
            1 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        });
        let out = resize(&DynamicImage::ImageRgb8(src), (10, 10), true).unwrap().into_rgb8();
        assert_eq!(out.dimensions(), (10, 10));
        assert!(out.pixels().all(|p| p[1] > 200 && p[0] < 60 && p[2] < 60), "{:?}", out.get_pixel(0, 0));
    }

    #[test]
    fn smart_gravity_crops_around_the_subject() {
        // A grey field, a saturated red square near its right edge.
        let src = RgbImage::from_fn(800, 200, |x, y| {
            if (640..760).contains(&x) && (40..160).contains(&y) { Rgb([230, 10, 20]) } else { Rgb([128, 128, 128]) }
        });
        let src = DynamicImage::ImageRgb8(src);
        for gravity in [Gravity::Attention, Gravity::Entropy] {
            let target = Target::new(imgpipe_core::preset::Fit::Cover { width: 100, height: 100, gravity }, 800, 200);
            let out = resize_to(&src, &target).unwrap().into_rgb8();
            assert_eq!(out.dimensions(), (100, 100));
            let red = out.pixels().filter(|p| p[0] > 200 && p[1] < 60).count();
            assert!(red > 2000, "{gravity:?}: {red} red pixels");
        }
        let centre = Target::new(
            imgpipe_core::preset::Fit::Cover { width: 100, height: 100, gravity: Gravity::Center },
            800,
            200,
        );
        let out = resize_to(&src, &centre).unwrap().into_rgb8();
        assert_eq!(out.pixels().filter(|p| p[0] > 200 && p[1] < 60).count(), 0);
    }

    #[test]
    fn a_huge_resize_leaves_no_huge_scratch_behind() {
        let huge = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(4000, 3000, image::Rgba([1, 2, 3, 128])));
        resize(&huge, (1000, 750), false).unwrap();
        let kept = RESIZER.with_borrow(|resizer| resizer.size_of_internal_buffers());
        assert!(kept <= MAX_KEPT_SCRATCH, "{kept} bytes of scratch kept");
    }

    #[test]
    fn alpha_is_resized_premultiplied() {
        // Transparent red next to opaque blue: no red may bleed into the blue.
        let src = image::RgbaImage::from_fn(64, 64, |x, _| {
            if x < 32 { image::Rgba([255, 0, 0, 0]) } else { image::Rgba([0, 0, 255, 255]) }
        });
        let out = resize(&DynamicImage::ImageRgba8(src), (16, 16), false).unwrap().into_rgba8();
        let edge = out.get_pixel(8, 8);
        assert!(edge[0] < 8, "red bled into {edge:?}");
    }
}
