//! The YCbCr path: a 4:2:0 JPEG made into JPEG renditions without ever becoming RGB.
//!
//! A JPEG stores luma at full resolution and the two chroma planes at half. The RGB path decodes
//! (upsampling chroma and converting to RGB), resizes three full-resolution channels, then
//! converts back to YCbCr and subsamples chroma to encode. When every rendition is a JPEG with no
//! watermark and the original needs no turning, none of that is needed: libjpeg-turbo decodes
//! straight to the planes (still shrinking in the DCT domain), each plane is resized on its own
//! (luma at full size, chroma at a quarter of the pixels) and the planes are encoded as they are.
//! Resizing is linear, so resizing YCbCr planes is resizing RGB and converting, but for rounding;
//! the chroma planes are resized at the resolution they are stored and encoded at, instead of
//! being upsampled, resized and subsampled again.

use crate::decode::{checked, internal};
use crate::geometry::{Size, Target, jpeg_shrink};
use crate::plan::Plan;
use crate::probe::Header;
use crate::{Encoded, Facts, Output, Recipe, Timings, encode, placeholder, resize};
use image::metadata::Orientation;
use imgpipe_core::preset::{Fit, Gravity};
use imgpipe_core::record::Placeholder;
use imgpipe_core::{ImageError, InputFormat, Limits, OutputFormat};
use rayon::prelude::*;
use std::time::{Duration, Instant};

/// Whether the headers and the recipe allow the YCbCr path: a 3-component sRGB JPEG (no profile,
/// or one that is sRGB) stored upright,
/// every rendition a JPEG without a watermark, every crop centred. The subsampling is checked
/// when decoding.
pub(crate) fn applies(header: &Header, recipe: &Recipe) -> bool {
    let upright = |jpeg: &crate::probe::JpegInfo| {
        matches!(jpeg.orientation, None | Some(Orientation::NoTransforms))
            && jpeg.components == 3
            && !jpeg.icc.as_deref().is_some_and(crate::colour::is_wide)
    };
    header.jpeg.as_ref().is_some_and(upright)
        && recipe.preset().renditions.iter().all(|r| {
            let centred = !matches!(r.fit, Fit::Cover { gravity, .. } if gravity != Gravity::Center);
            r.format == OutputFormat::Jpeg && !(r.watermark && recipe.stamp().is_some()) && centred
        })
}

/// Makes every rendition of `recipe` from a JPEG that [`applies`] allows; `None` when the JPEG
/// is not 4:2:0 YCbCr after all (the RGB path takes it then).
pub(crate) fn process(
    bytes: &[u8],
    header: &Header,
    recipe: &Recipe,
    limits: &Limits,
) -> Result<Option<Output>, ImageError> {
    let Some(size) = header.size() else { return Ok(None) };
    let started = Instant::now();
    let mut decompressor = turbojpeg::Decompressor::new().map_err(internal)?;
    let Ok(jpeg) = decompressor.read_header(bytes) else { return Ok(None) };
    if jpeg.subsamp != turbojpeg::Subsamp::Sub2x2
        || jpeg.colorspace != turbojpeg::Colorspace::YCbCr
        || jpeg.is_lossless
        || (jpeg.width, jpeg.height) != (size.0 as usize, size.1 as usize)
    {
        return Ok(None);
    }
    let renditions = &recipe.preset().renditions;
    let plan = Plan::new(renditions, size, Orientation::NoTransforms);
    let shrink = jpeg_shrink(size.0, size.1, plan.need());
    let decoded = (size.0.div_ceil(shrink), size.1.div_ceil(shrink));
    let mut planes = vec![0u8; planes_len(decoded)];
    decompressor.set_scaling_factor(turbojpeg::ScalingFactor::new(1, shrink as usize)).map_err(internal)?;
    decompressor.set_scan_limit(limits.max_scans).map_err(internal)?;
    let output = turbojpeg::YuvImage {
        pixels: planes.as_mut_slice(),
        width: decoded.0 as usize,
        align: 1,
        height: decoded.1 as usize,
        subsamp: turbojpeg::Subsamp::Sub2x2,
    };
    checked(decompressor.decompress_to_yuv(bytes, output), limits)?;
    let decode = started.elapsed();
    let exif = crate::metadata::kept(bytes, &recipe.preset().keep_metadata);

    let made = plan
        .steps()
        .par_iter()
        .map(|step| {
            let started = Instant::now();
            let out = step.target.out;
            let resized = resize_planes(&planes, decoded, &step.target)?;
            let resize = started.elapsed();
            let rendition = &renditions[step.index];
            let mut bytes = encode::encode_yuv420(&resized, out.0, out.1, rendition.quality)?;
            if let Some(tiff) = &exif {
                bytes = crate::metadata::embed(bytes, OutputFormat::Jpeg, tiff);
            }
            let encoded = Encoded {
                name: rendition.name.clone(),
                format: OutputFormat::Jpeg,
                width: out.0,
                height: out.1,
                bytes,
            };
            Ok((step.index, encoded, resize, started.elapsed() - resize))
        })
        .collect::<Result<Vec<_>, ImageError>>()?;
    let placeholder = placeholder_of(&planes, decoded)?;
    let sum = |pick: fn(&(usize, Encoded, Duration, Duration)) -> Duration| made.iter().map(pick).sum();
    let timings = Timings { decode, resize: sum(|m| m.2), watermark: Duration::ZERO, encode: sum(|m| m.3) };
    let mut made: Vec<_> = made.into_iter().map(|(index, encoded, ..)| (index, encoded)).collect();
    made.sort_unstable_by_key(|(index, _)| *index);
    Ok(Some(Output {
        facts: Facts { format: InputFormat::Jpeg, width: size.0, height: size.1, orientation: 1, placeholder, timings },
        renditions: made.into_iter().map(|(_, encoded)| encoded).collect(),
    }))
}

/// Bytes of 4:2:0 planes for an image of `size`, one after the other, as libjpeg-turbo lays
/// them out: luma padded to even width and height, rows unpadded otherwise.
fn planes_len(size: Size) -> usize {
    let (luma, chroma) = (luma_size(size), chroma_size(size));
    luma.0 as usize * luma.1 as usize + 2 * chroma.0 as usize * chroma.1 as usize
}

/// The size of the luma plane for an image of `size`: even on both axes.
fn luma_size(size: Size) -> Size {
    (size.0.next_multiple_of(2), size.1.next_multiple_of(2))
}

/// The size of a 4:2:0 chroma plane for luma of `size`.
fn chroma_size(size: Size) -> Size {
    (size.0.div_ceil(2), size.1.div_ceil(2))
}

/// Resizes 4:2:0 `planes` of luma size `src` to `target`: the window of the source that the
/// target keeps (all of it, or the centre for `cover`), luma and chroma alike.
fn resize_planes(planes: &[u8], src: Size, target: &Target) -> Result<Vec<u8>, ImageError> {
    let (out, full) = (target.out, target.full);
    let (sw, sh) = (f64::from(src.0), f64::from(src.1));
    let window = if target.crop.is_some() {
        let (w, h) = (f64::from(out.0) * sw / f64::from(full.0), f64::from(out.1) * sh / f64::from(full.1));
        [(sw - w) / 2.0, (sh - h) / 2.0, w, h]
    } else {
        [0.0, 0.0, sw, sh]
    };
    let (src_luma, src_chroma, out_chroma) = (luma_size(src), chroma_size(src), chroma_size(out));
    let [luma, cb, cr] = split_planes(planes, src);
    let mut resized = pad_to_even(resize::resize_plane(luma, src_luma, out, window)?, out);
    for plane in [cb, cr] {
        resized.extend(resize::resize_plane(plane, src_chroma, out_chroma, window.map(|v| v / 2.0))?);
    }
    Ok(resized)
}

/// The Y, Cb and Cr planes of 4:2:0 `planes` of luma size `src`, as [`planes_len`] lays them out.
fn split_planes(planes: &[u8], src: Size) -> [&[u8]; 3] {
    let (luma, chroma) = (luma_size(src), chroma_size(src));
    let (y, rest) = planes.split_at(luma.0 as usize * luma.1 as usize);
    let (cb, cr) = rest.split_at(chroma.0 as usize * chroma.1 as usize);
    [y, cb, cr]
}

/// The placeholder of 4:2:0 `planes` of luma size `src`: each plane scaled to the sample size,
/// then converted to RGB (JFIF's full-range BT.601).
fn placeholder_of(planes: &[u8], src: Size) -> Result<Placeholder, ImageError> {
    let sample = placeholder::sample_size(src);
    let (src_luma, src_chroma) = (luma_size(src), chroma_size(src));
    let [luma, cb, cr] = split_planes(planes, src);
    let (w, h) = (f64::from(src.0), f64::from(src.1));
    let y = resize::resize_plane(luma, src_luma, sample, [0.0, 0.0, w, h])?;
    let cb = resize::resize_plane(cb, src_chroma, sample, [0.0, 0.0, w / 2.0, h / 2.0])?;
    let cr = resize::resize_plane(cr, src_chroma, sample, [0.0, 0.0, w / 2.0, h / 2.0])?;
    let rgba: Vec<u8> = (0..y.len())
        .flat_map(|i| {
            let (y, cb, cr) = (f32::from(y[i]), f32::from(cb[i]) - 128.0, f32::from(cr[i]) - 128.0);
            let channel = |v: f32| v.round().clamp(0.0, 255.0) as u8;
            [channel(y + 1.402 * cr), channel(y - 0.344_136 * cb - 0.714_136 * cr), channel(y + 1.772 * cb), 255]
        })
        .collect();
    Ok(placeholder::of_rgba(sample.0, sample.1, &rgba))
}

/// `plane` (`size`) with its last column and row repeated where `size` is odd, as
/// libjpeg-turbo pads a 4:2:0 luma plane.
fn pad_to_even(plane: Vec<u8>, size: Size) -> Vec<u8> {
    let (width, height) = (size.0 as usize, size.1 as usize);
    let padded = luma_size(size);
    if padded == size {
        return plane;
    }
    let stride = padded.0 as usize;
    let mut out = Vec::with_capacity(stride * padded.1 as usize);
    for row in plane.chunks_exact(width) {
        out.extend_from_slice(row);
        if stride > width {
            out.push(row[width - 1]);
        }
    }
    if padded.1 as usize > height {
        out.extend_from_within(out.len() - stride..);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgpipe_core::PresetCatalog;

    /// A photo-like 4:2:0 (or `subsamp`) JPEG: smooth colour gradients with fine texture.
    fn jpeg(width: u32, height: u32, subsamp: turbojpeg::Subsamp) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            let texture = ((x * 7 + y * 13) % 17) as u8;
            image::Rgb([(x * 255 / width) as u8 ^ texture, (y * 255 / height) as u8, 128u8.wrapping_add(texture * 3)])
        });
        let mut compressor = turbojpeg::Compressor::new().unwrap();
        compressor.set_quality(92).unwrap();
        compressor.set_subsamp(subsamp).unwrap();
        compressor
            .compress_to_vec(turbojpeg::Image {
                pixels: image.as_raw().as_slice(),
                width: width as usize,
                pitch: width as usize * 3,
                height: height as usize,
                format: turbojpeg::PixelFormat::RGB,
            })
            .unwrap()
    }

    fn recipe(renditions: &str) -> Recipe {
        let catalog = PresetCatalog::from_toml(&format!("[presets.p]\nrenditions = [{renditions}]\n")).unwrap();
        Recipe::text_only(catalog.get("p").unwrap().clone()).unwrap()
    }

    const JPEGS: &str = r#"{ name = "cover", width = 101, height = 77, fit = "cover", format = "jpeg" },
        { name = "inside", width = 333, fit = "inside", format = "jpeg", quality = 90 }"#;

    fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
        assert_eq!(a.dimensions(), b.dimensions());
        let sum: f64 = a.as_raw().iter().zip(b.as_raw()).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum();
        10.0 * (255.0f64.powi(2) / (sum / a.as_raw().len() as f64)).log10()
    }

    #[test]
    fn odd_sizes_make_the_same_renditions_as_the_rgb_path() {
        // Odd on both axes, shrunk on load by 2 for the 333-wide rendition.
        let bytes = jpeg(1001, 751, turbojpeg::Subsamp::Sub2x2);
        let limits = Limits::default();
        let header = crate::probe::probe(&bytes, &limits).unwrap();
        let planar_recipe = recipe(JPEGS);
        assert!(applies(&header, &planar_recipe));
        let planar = process(&bytes, &header, &planar_recipe, &limits).unwrap().expect("4:2:0 takes this path");
        // The same renditions through the RGB path: a PNG rendition keeps the preset off it.
        let rgb_recipe = recipe(&format!("{JPEGS}, {{ name = \"png\", width = 8, format = \"png\" }}"));
        assert!(!applies(&header, &rgb_recipe));
        let smart =
            recipe(r#"{ name = "c", width = 9, height = 9, fit = "cover", format = "jpeg", gravity = "entropy" }"#);
        assert!(!applies(&header, &smart), "smart crops look at RGB pixels");
        let rgb = crate::process(&bytes, &rgb_recipe, &limits).unwrap();
        assert_eq!((planar.facts.width, planar.facts.height, planar.facts.orientation), (1001, 751, 1));
        // The placeholders agree too: their average colours within 5% (the test image's fine
        // texture is sampled at other points from planes shrunk otherwise: 3% apart in red).
        let average = |p: &Placeholder| {
            use base64::Engine;
            let hash = base64::engine::general_purpose::STANDARD.decode(&p.thumbhash).unwrap();
            thumbhash::thumb_hash_to_average_rgba(&hash).unwrap()
        };
        let (a, b) = (average(&planar.facts.placeholder), average(&rgb.facts.placeholder));
        for (x, y) in [(a.0, b.0), (a.1, b.1), (a.2, b.2)] {
            assert!((x - y).abs() < 0.05, "{a:?} against {b:?}");
        }
        for (a, b) in planar.renditions.iter().zip(&rgb.renditions) {
            assert_eq!((&a.name, a.width, a.height), (&b.name, b.width, b.height));
            let decode = |bytes: &[u8]| image::load_from_memory(bytes).unwrap().into_rgb8();
            let (a_pixels, b_pixels) = (decode(&a.bytes), decode(&b.bytes));
            assert_eq!(a_pixels.dimensions(), (a.width, a.height));
            let db = psnr(&a_pixels, &b_pixels);
            assert!(db > 35.0, "{}: {db:.1} dB against the RGB path", a.name);
        }
        assert_eq!((planar.renditions[0].width, planar.renditions[0].height), (101, 77));
        assert_eq!((planar.renditions[1].width, planar.renditions[1].height), (333, 250));
    }

    #[test]
    fn tiny_and_thin_jpegs_get_renditions_and_placeholders() {
        let limits = Limits::default();
        let recipe = recipe(r#"{ name = "j", width = 64, fit = "inside", format = "jpeg", upscale = true }"#);
        for (width, height) in [(1, 1), (2, 3), (3, 1), (1, 200), (333, 1)] {
            let bytes = jpeg(width, height, turbojpeg::Subsamp::Sub2x2);
            let header = crate::probe::probe(&bytes, &limits).unwrap();
            let out = process(&bytes, &header, &recipe, &limits).unwrap().expect("4:2:0 takes this path");
            assert_eq!(out.renditions.len(), 1, "{width}×{height}");
            assert!(out.facts.placeholder.dominant_color.starts_with('#'), "{width}×{height}");
        }
    }

    #[test]
    fn other_subsamplings_take_the_rgb_path() {
        let limits = Limits::default();
        for subsamp in [turbojpeg::Subsamp::None, turbojpeg::Subsamp::Sub2x1, turbojpeg::Subsamp::Gray] {
            let bytes = jpeg(64, 48, subsamp);
            let header = crate::probe::probe(&bytes, &limits).unwrap();
            let recipe = recipe(JPEGS);
            if applies(&header, &recipe) {
                assert!(process(&bytes, &header, &recipe, &limits).unwrap().is_none(), "{subsamp:?}");
            }
            assert_eq!(crate::process(&bytes, &recipe, &limits).unwrap().renditions.len(), 2, "{subsamp:?}");
        }
    }

    #[test]
    fn a_watermark_keeps_the_preset_on_the_rgb_path() {
        let bytes = jpeg(64, 48, turbojpeg::Subsamp::Sub2x2);
        let header = crate::probe::probe(&bytes, &Limits::default()).unwrap();
        let catalog = PresetCatalog::from_toml(
            "[presets.p]\nwatermark = { text = \"x\" }\nrenditions = [{ name = \"a\", width = 32, format = \"jpeg\", watermark = true }]\n",
        )
        .unwrap();
        let marked = Recipe::text_only(catalog.get("p").unwrap().clone()).unwrap();
        assert!(!applies(&header, &marked));
    }

    #[test]
    fn a_truncated_jpeg_fails_as_corrupt() {
        let bytes = jpeg(640, 480, turbojpeg::Subsamp::Sub2x2);
        let cut = &bytes[..bytes.len() / 2];
        let limits = Limits::default();
        let header = crate::probe::probe(cut, &limits).unwrap();
        let err = process(cut, &header, &recipe(JPEGS), &limits).expect_err("a truncated JPEG fails");
        assert_eq!(err.kind, imgpipe_core::ErrorKind::Corrupt, "{err}");
    }
}
