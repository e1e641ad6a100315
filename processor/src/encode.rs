//! Encoding: JPEG through libjpeg-turbo (SIMD), WebP through libwebp, PNG through the `png` crate,
//! AVIF through rav1e (ravif), GIF through the `gif` crate (NeuQuant palettes); animations as
//! WebP (libwebp's animation encoder) or GIF. Encoders write pixels and only the EXIF fields a
//! preset keeps (`metadata`): no GPS or XMP reaches a rendition otherwise.

use crate::decode::Frame;
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
        OutputFormat::Gif => gif(&[(image, 0)]),
    }
}

/// Encodes `frames` (all of one size) as an animation in `rendition`'s format, WebP or GIF,
/// looping forever.
pub fn animation(frames: &[Frame], rendition: &Rendition) -> Result<Vec<u8>, ImageError> {
    if frames.is_empty() {
        return Err(ImageError::internal("an animation of no frames"));
    }
    match rendition.format {
        OutputFormat::Gif => gif(&frames.iter().map(|(image, delay)| (image, *delay)).collect::<Vec<_>>()),
        OutputFormat::Webp => {
            let rgba: Vec<(image::RgbaImage, u32)> =
                frames.iter().map(|(image, delay)| (image.to_rgba8(), *delay)).collect();
            webp_animation(&rgba, f32::from(rendition.quality))
        }
        other => Err(ImageError::internal(format!("{other} cannot be animated"))),
    }
}

/// Encodes RGBA frames of one size as a lossy animated WebP looping forever, through libwebp's
/// animation encoder (which stores only what changes from frame to frame).
fn webp_animation(frames: &[(image::RgbaImage, u32)], quality: f32) -> Result<Vec<u8>, ImageError> {
    use libwebp_sys as sys;
    use std::ffi::c_int;
    use std::ptr::{null, null_mut};

    /// Deletes the encoder however the encoding ends.
    struct Encoder(*mut sys::WebPAnimEncoder);
    impl Drop for Encoder {
        fn drop(&mut self) {
            // SAFETY: made by WebPAnimEncoderNewInternal, deleted once, here.
            unsafe { sys::WebPAnimEncoderDelete(self.0) }
        }
    }
    let error = |encoder: &Encoder, what: &str| {
        // SAFETY: a live encoder; the message is a NUL-terminated string it owns.
        let message = unsafe { std::ffi::CStr::from_ptr(sys::WebPAnimEncoderGetError(encoder.0)) };
        failed(format!("{what}: {}", message.to_string_lossy()))
    };
    let Some((first, _)) = frames.first() else { return Err(ImageError::internal("an animation of no frames")) };
    let (width, height) = first.dimensions();
    let (Ok(w), Ok(h)) = (c_int::try_from(width), c_int::try_from(height)) else {
        return Err(ImageError::internal("frame too large for libwebp"));
    };
    let mut config = sys::WebPConfig::new().map_err(|()| failed("libwebp refused its default config"))?;
    config.quality = quality;
    config.alpha_compression = 1;
    // SAFETY: every pointer handed to libwebp is either one it made (the encoder, the picture's
    // buffers, the assembled data, each freed once) or borrows a live Rust value for the call
    // (options, config, pixels, which are `width`×`height`×4 bytes: RgbaImage guarantees it).
    unsafe {
        let abi = sys::WebPGetMuxABIVersion();
        let mut options = std::mem::MaybeUninit::<sys::WebPAnimEncoderOptions>::uninit();
        if sys::WebPAnimEncoderOptionsInitInternal(options.as_mut_ptr(), abi) == 0 {
            return Err(failed("libwebp's animation encoder has another ABI"));
        }
        // Its defaults: loop forever, every frame lossy as the config says.
        let options = options.assume_init();
        let encoder = Encoder(sys::WebPAnimEncoderNewInternal(w, h, &options, abi));
        if encoder.0.is_null() {
            return Err(failed("libwebp could not make an animation encoder"));
        }
        let mut timestamp: c_int = 0;
        for (pixels, delay) in frames {
            let mut picture = sys::WebPPicture::new().map_err(|()| failed("libwebp refused a picture"))?;
            picture.use_argb = 1;
            picture.width = w;
            picture.height = h;
            let added = sys::WebPPictureImportRGBA(&mut picture, pixels.as_ptr(), w * 4) != 0
                && sys::WebPAnimEncoderAdd(encoder.0, &mut picture, timestamp, &config) != 0;
            sys::WebPPictureFree(&mut picture);
            if !added {
                return Err(error(&encoder, "adding a frame"));
            }
            timestamp = timestamp.saturating_add(c_int::try_from(*delay).unwrap_or(c_int::MAX));
        }
        // The end of the last frame, so that it keeps its own delay.
        if sys::WebPAnimEncoderAdd(encoder.0, null_mut(), timestamp, null()) == 0 {
            return Err(error(&encoder, "ending the animation"));
        }
        let mut data = sys::WebPData::default();
        if sys::WebPAnimEncoderAssemble(encoder.0, &mut data) == 0 {
            return Err(error(&encoder, "assembling the animation"));
        }
        let bytes = std::slice::from_raw_parts(data.bytes, data.size).to_vec();
        sys::WebPDataClear(&mut data);
        Ok(bytes)
    }
}

/// Encodes frames (each with its delay in ms) as a GIF, each with its own palette, looping
/// forever when there is more than one; pixels under half opacity become transparent.
fn gif(frames: &[(&DynamicImage, u32)]) -> Result<Vec<u8>, ImageError> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut out = Vec::new();
    {
        // Speed 10 is the `gif` crate's default: NeuQuant sampling every 10th pixel.
        let mut encoder = GifEncoder::new_with_speed(&mut out, 10);
        if frames.len() > 1 {
            encoder.set_repeat(Repeat::Infinite).map_err(failed)?;
        }
        for &(image, delay) in frames {
            let delay = image::Delay::from_numer_denom_ms(delay, 1);
            encoder.encode_frame(image::Frame::from_parts(image.to_rgba8(), 0, 0, delay)).map_err(failed)?;
        }
    }
    Ok(out)
}

/// Encodes an `Rgb8` or `Rgba8` image as an 8-bit AVIF at `quality` (1..=100) and `speed`
/// (1..=10), alpha kept (left out when every pixel is opaque), `exif` in its `Exif` item.
///
/// 8-bit rather than ravif's 10-bit default, as sharp and libavif write by default: what every
/// AVIF decoder handles.
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
        for format in [OutputFormat::Jpeg, OutputFormat::Webp, OutputFormat::Png, OutputFormat::Avif, OutputFormat::Gif]
        {
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
