//! Encoding: JPEG through libjpeg-turbo (SIMD), WebP through libwebp, PNG through the `png` crate,
//! AVIF through rav1e (ravif). Encoders write pixels and only the EXIF fields a preset keeps
//! (`metadata`): no GPS or XMP reaches a rendition otherwise.

use crate::metadata;
use image::{DynamicImage, ExtendedColorType, ImageEncoder};
use imgpipe_core::preset::Rendition;
use imgpipe_core::{ImageError, OutputFormat};
use rgb::FromSlice;
use std::cell::RefCell;

thread_local! {
    // One compressor per (rayon) thread is safe to keep, unlike a decompressor: it only ever
    // reads pixels the kernel made, every setting it uses is set again before each image, and
    // libjpeg keeps no tables across compressions that the next would read
    // (tests/isolation.rs encodes good images after every hostile one on the same thread).
    static COMPRESSOR: RefCell<Option<turbojpeg::Compressor>> = const { RefCell::new(None) };
}

/// Encodes an `Rgb8` or `Rgba8` image as `rendition` says, with `exif` (the TIFF directory of
/// the fields its preset keeps, if any) embedded.
pub fn rendition(image: &DynamicImage, rendition: &Rendition, exif: Option<&[u8]>) -> Result<Vec<u8>, ImageError> {
    if rendition.format == OutputFormat::Avif {
        return avif(image, rendition.quality, rendition.speed, exif);
    }
    let bytes = encode(image, rendition.format, rendition.quality)?;
    Ok(match exif {
        Some(tiff) => metadata::embed(bytes, rendition.format, tiff),
        None => bytes,
    })
}

/// Encodes an `Rgb8` or `Rgba8` image (JPEG takes `Rgb8` only: flatten first); AVIF at
/// [`DEFAULT_AVIF_SPEED`](imgpipe_core::preset::DEFAULT_AVIF_SPEED).
pub fn encode(image: &DynamicImage, format: OutputFormat, quality: u8) -> Result<Vec<u8>, ImageError> {
    let (width, height) = (image.width(), image.height());
    let (layout, channels) = match image {
        DynamicImage::ImageRgb8(_) => (ExtendedColorType::Rgb8, 3),
        DynamicImage::ImageRgba8(_) => (ExtendedColorType::Rgba8, 4),
        other => return Err(ImageError::internal(format!("cannot encode {:?} pixels", other.color()))),
    };
    let pixels = image.as_bytes();
    match format {
        OutputFormat::Jpeg if channels == 3 => with_compressor(quality, |compressor| {
            let image = turbojpeg::Image {
                pixels,
                width: width as usize,
                pitch: width as usize * 3,
                height: height as usize,
                format: turbojpeg::PixelFormat::RGB,
            };
            compressor.compress_to_vec(image)
        }),
        OutputFormat::Jpeg => Err(ImageError::internal("JPEG needs opaque RGB: flatten alpha first")),
        OutputFormat::Webp => {
            let layout = if channels == 4 { webp::PixelLayout::Rgba } else { webp::PixelLayout::Rgb };
            let encoded = webp::Encoder::new(pixels, layout, width, height)
                .encode_simple(false, f32::from(quality))
                .map_err(|e| failed(format!("{e:?}")))?;
            Ok(encoded.to_vec())
        }
        OutputFormat::Png => {
            let mut out = Vec::new();
            image::codecs::png::PngEncoder::new_with_quality(
                &mut out,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            )
            .write_image(pixels, width, height, layout)
            .map_err(failed)?;
            Ok(out)
        }
        OutputFormat::Avif => avif(image, quality, imgpipe_core::preset::DEFAULT_AVIF_SPEED, None),
    }
}

/// Encodes an `Rgb8` or `Rgba8` image as an 8-bit AVIF at `quality` (1..=100) and `speed`
/// (1..=10), alpha kept (left out when every pixel is opaque), `exif` in its `Exif` item.
///
/// 8-bit rather than ravif's 10-bit default: the same bytes at the same quality here, in less
/// time, and what every decoder handles (README "AVIF").
pub fn avif(image: &DynamicImage, quality: u8, speed: u8, exif: Option<&[u8]>) -> Result<Vec<u8>, ImageError> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let mut encoder = ravif::Encoder::new()
        .with_quality(f32::from(quality.clamp(1, 100)))
        .with_alpha_quality(f32::from(quality.clamp(1, 100)))
        .with_speed(speed.clamp(1, 10))
        .with_bit_depth(ravif::BitDepth::Eight)
        // Transparent pixels' colour is not kept: it costs bytes and nothing shows it.
        .with_alpha_color_mode(ravif::AlphaColorMode::UnassociatedClean);
    if let Some(tiff) = exif {
        encoder = encoder.with_exif(tiff);
    }
    let encoded = match image {
        DynamicImage::ImageRgb8(rgb) => encoder.encode_rgb(ravif::Img::new(rgb.as_raw().as_rgb(), width, height)),
        DynamicImage::ImageRgba8(rgba) => encoder.encode_rgba(ravif::Img::new(rgba.as_raw().as_rgba(), width, height)),
        other => return Err(ImageError::internal(format!("cannot encode {:?} pixels", other.color()))),
    };
    Ok(encoded.map_err(failed)?.avif_file)
}

/// Encodes 4:2:0 YCbCr planes (Y `width`×`height`, Cb and Cr each half that, rounded up, one
/// after the other in `planes`) as a JPEG, as [`encode`] encodes RGB.
pub fn encode_yuv420(planes: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, ImageError> {
    with_compressor(quality, |compressor| {
        let image = turbojpeg::YuvImage {
            pixels: planes,
            width: width as usize,
            align: 1,
            height: height as usize,
            subsamp: turbojpeg::Subsamp::Sub2x2,
        };
        compressor.compress_yuv_to_vec(image)
    })
}

/// Runs `compress` on this thread's compressor, set to `quality`, 4:2:0 and optimised Huffman
/// tables.
fn with_compressor(
    quality: u8,
    compress: impl FnOnce(&mut turbojpeg::Compressor) -> turbojpeg::Result<Vec<u8>>,
) -> Result<Vec<u8>, ImageError> {
    COMPRESSOR.with_borrow_mut(|slot| {
        let compressor = match slot {
            Some(c) => c,
            None => slot.insert(turbojpeg::Compressor::new().map_err(failed)?),
        };
        compressor.set_quality(i32::from(quality)).map_err(failed)?;
        compressor.set_subsamp(turbojpeg::Subsamp::Sub2x2).map_err(failed)?;
        compressor.set_optimize(true).map_err(failed)?;
        compress(compressor).map_err(failed)
    })
}

fn failed(error: impl std::fmt::Display) -> ImageError {
    ImageError::internal(format!("encoder failure: {error}"))
}

/// Composites an `Rgba8` image over an opaque `background`; `Rgb8` passes through.
pub fn flatten(image: DynamicImage, background: [u8; 3]) -> DynamicImage {
    let DynamicImage::ImageRgba8(rgba) = image else { return image };
    let (width, height) = rgba.dimensions();
    let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
    for p in rgba.pixels() {
        let a = u32::from(p[3]);
        for c in 0..3 {
            rgb.push(((u32::from(p[c]) * a + u32::from(background[c]) * (255 - a) + 127) / 255) as u8);
        }
    }
    DynamicImage::ImageRgb8(image::RgbImage::from_raw(width, height, rgb).expect("3 bytes per pixel"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_blends_on_the_background() {
        let rgba = image::RgbaImage::from_pixel(2, 1, image::Rgba([0, 0, 0, 0]));
        let flat = flatten(DynamicImage::ImageRgba8(rgba), [10, 20, 30]).into_rgb8();
        assert_eq!(flat.get_pixel(1, 0).0, [10, 20, 30]);
        let half = image::RgbaImage::from_pixel(1, 1, image::Rgba([255, 255, 255, 128]));
        let flat = flatten(DynamicImage::ImageRgba8(half), [0, 0, 0]).into_rgb8();
        assert_eq!(flat.get_pixel(0, 0).0, [128, 128, 128]);
    }

    #[test]
    fn every_format_round_trips_its_size() {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(33, 17, image::Rgb([200, 10, 10])));
        for format in [OutputFormat::Jpeg, OutputFormat::Webp, OutputFormat::Png, OutputFormat::Avif] {
            let bytes = encode(&image, format, 80).unwrap();
            let size = if format == OutputFormat::Avif {
                let avif = avif_parse::read_avif(&mut std::io::Cursor::new(&bytes)).unwrap();
                let meta = avif.primary_item_metadata().unwrap();
                (meta.max_frame_width.get(), meta.max_frame_height.get())
            } else {
                let back = image::load_from_memory(&bytes).unwrap();
                (back.width(), back.height())
            };
            assert_eq!(size, (33, 17), "{format}");
        }
    }
}
