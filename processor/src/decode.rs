//! Decoding under limits: JPEG through libjpeg-turbo with DCT-domain shrink-on-load, everything
//! else (and CMYK JPEG without a profile, which libjpeg-turbo will not convert) through the
//! `image` crate. An embedded ICC profile is applied here (`colour`): what leaves is sRGB.

use crate::colour;
use crate::geometry::{Size, jpeg_shrink};
use crate::probe::{Header, check_size};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};
use imgpipe_core::{ImageError, InputFormat, Limits};
use std::io::Cursor;

/// Bytes a decoder may use beyond the pixels: colour profiles, EXIF, text chunks.
const METADATA_ALLOWANCE: u64 = 16 * 1024 * 1024;

/// A decoded image: 8-bit sRGB, or sRGB with alpha when any pixel is not opaque; in stored
/// orientation.
pub struct Decoded {
    /// The pixels (`Rgb8` or `Rgba8`).
    pub image: DynamicImage,
    /// How to turn it upright.
    pub orientation: Orientation,
    /// The original's size as stored, which renditions are sized from: the headers' (the pixels
    /// may be shrunk on load), or the decoder's when the headers do not tell it.
    pub size: Size,
}

/// Decodes `bytes`; a JPEG at the smallest DCT scale that still covers `need` (stored
/// orientation), or at full size when `need` is `None`.
pub fn decode(bytes: &[u8], header: &Header, limits: &Limits, need: Option<Size>) -> Result<Decoded, ImageError> {
    let (decoded, icc) = match &header.jpeg {
        Some(jpeg) if jpeg.components == 4 && jpeg.icc.as_deref().is_some_and(colour::is_cmyk) => {
            let (cmyk, width) = decode_turbo(bytes, header, limits, need, turbojpeg::PixelFormat::CMYK)?;
            let icc = jpeg.icc.as_deref().unwrap_or_default();
            let rgb = colour::cmyk_to_srgb(cmyk, width, icc, jpeg.adobe)?;
            (jpeg_decoded(DynamicImage::ImageRgb8(rgb), header, jpeg), None)
        }
        Some(jpeg) if jpeg.components == 4 => decode_image_rs(bytes, header, limits)?,
        Some(jpeg) => {
            let (pixels, width) = decode_turbo(bytes, header, limits, need, turbojpeg::PixelFormat::RGB)?;
            let height = (pixels.len() / 3 / width as usize) as u32;
            let image = image::RgbImage::from_raw(width, height, pixels).ok_or_else(|| internal("JPEG buffer size"))?;
            (jpeg_decoded(DynamicImage::ImageRgb8(image), header, jpeg), jpeg.icc.clone())
        }
        None => decode_image_rs(bytes, header, limits)?,
    };
    let mut image = to_rgb_or_rgba(decoded.image);
    if let Some(icc) = icc {
        colour::rgb_to_srgb(&mut image, &icc)?;
    }
    Ok(Decoded { image, ..decoded })
}

fn jpeg_decoded(image: DynamicImage, header: &Header, jpeg: &crate::probe::JpegInfo) -> Decoded {
    Decoded {
        image,
        orientation: jpeg.orientation.unwrap_or(Orientation::NoTransforms),
        size: (header.width, header.height),
    }
}

/// Decodes a JPEG through libjpeg-turbo, shrunk by the largest DCT factor that still covers `need`.
///
/// Every image gets a decompressor of its own. A libjpeg handle keeps the Huffman and
/// quantisation tables of the last image it read, on purpose (abbreviated streams reuse them),
/// and after an error it can be left mid-state: with one handle per thread, a JPEG with damaged
/// tables made every later JPEG on that thread fail, and even a good one could change how the
/// next decodes. A new handle costs about 0.3 µs (`cargo bench -p benches --bench kernel --
/// handle`, median of 7 runs), against 0.12 ms or more to decode even a 160×120 JPEG.
fn decode_turbo(
    bytes: &[u8],
    header: &Header,
    limits: &Limits,
    need: Option<Size>,
    format: turbojpeg::PixelFormat,
) -> Result<(Vec<u8>, u32), ImageError> {
    let shrink = need.map_or(1, |need| jpeg_shrink(header.width, header.height, need));
    let (width, height) = (header.width.div_ceil(shrink), header.height.div_ceil(shrink));
    let channels = format.size();
    let mut pixels = vec![0u8; width as usize * height as usize * channels];
    let mut decompressor = turbojpeg::Decompressor::new().map_err(internal)?;
    decompressor.set_scaling_factor(turbojpeg::ScalingFactor::new(1, shrink as usize)).map_err(internal)?;
    decompressor.set_scan_limit(limits.max_scans).map_err(internal)?;
    let output = turbojpeg::Image {
        pixels: pixels.as_mut_slice(),
        width: width as usize,
        pitch: width as usize * channels,
        height: height as usize,
        format,
    };
    checked(decompressor.decompress(bytes, output), limits)?;
    Ok((pixels, width))
}

/// What libjpeg-turbo's answer means for the image.
pub(crate) fn checked(result: turbojpeg::Result<()>, limits: &Limits) -> Result<(), ImageError> {
    match result {
        Ok(()) => Ok(()),
        // libjpeg-turbo reports warnings as failures after writing every pixel. Stray bytes
        // between markers are common in camera files and harmless; anything else (above all
        // "Premature end of JPEG file") means missing or damaged pixels.
        Err(turbojpeg::Error::TurboJpegError(msg)) if msg.contains("extraneous bytes before marker") => Ok(()),
        Err(turbojpeg::Error::TurboJpegError(msg)) if msg.contains("has more than") && msg.contains("scans") => {
            Err(ImageError::limits(format!(
                "the progressive JPEG has more than {} scans (each one is another pass over the image)",
                limits.max_scans
            )))
        }
        Err(turbojpeg::Error::TurboJpegError(msg)) => Err(ImageError::corrupt(jpeg_message(&msg))),
        Err(other) => Err(internal(other)),
    }
}

fn jpeg_message(msg: &str) -> String {
    if msg.contains("Premature end") {
        "the JPEG is truncated: its data ends before the last pixel".to_owned()
    } else {
        format!("the JPEG data is damaged ({msg})")
    }
}

/// Decodes through the `image` crate; returns the image and its ICC profile, if any.
fn decode_image_rs(bytes: &[u8], header: &Header, limits: &Limits) -> Result<(Decoded, Option<Vec<u8>>), ImageError> {
    let format = match header.format {
        InputFormat::Jpeg => image::ImageFormat::Jpeg,
        InputFormat::Png => image::ImageFormat::Png,
        InputFormat::Gif => image::ImageFormat::Gif,
        InputFormat::Webp => image::ImageFormat::WebP,
        InputFormat::Tiff => image::ImageFormat::Tiff,
        InputFormat::Bmp => image::ImageFormat::Bmp,
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(decoder_limits(header, limits));
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    // A profile that cannot be read is ignored, as browsers ignore it.
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    Ok((Decoded { image, orientation, size: header.size().unwrap_or((width, height)) }, icc))
}

/// The `image` crate's limits for one image (or one frame) of `header`. The allocation budget is
/// fixed before the decoder exists: PNG applies it to every chunk it inflates while reading
/// headers, so a small file with a huge colour profile stops there.
fn decoder_limits(header: &Header, limits: &Limits) -> image::Limits {
    let budget = match header.size() {
        None => limits.max_alloc,
        Some((width, height)) => {
            let pixels = u64::from(width) * u64::from(height);
            limits.max_alloc.min(pixels.saturating_mul(8).saturating_add(METADATA_ALLOWANCE))
        }
    };
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    image_limits.max_alloc = Some(budget);
    image_limits
}

/// One frame of an animation: a whole canvas (the frame composed over the ones before it, as
/// the file says), 8-bit sRGB, and how long it shows in milliseconds.
pub type Frame = (DynamicImage, u32);

/// Decodes the frames of an animated GIF, WebP or PNG (APNG) one at a time, under the same
/// per-image limits as [`decode`], with an embedded profile applied to each; and the EXIF
/// orientation that turns every frame upright.
///
/// Delays of 10 ms or less come out as 100 ms: what browsers play for them.
pub fn frames<'a>(
    bytes: &'a [u8],
    header: &Header,
    limits: &Limits,
) -> Result<(impl Iterator<Item = Result<Frame, ImageError>> + 'a, Orientation), ImageError> {
    use image::AnimationDecoder;
    use image::codecs::{gif::GifDecoder, png::PngDecoder, webp::WebPDecoder};
    let image_limits = decoder_limits(header, limits);
    let cursor = Cursor::new(bytes);
    // A profile that cannot be read is ignored, as browsers ignore it.
    let upright = |decoder: &mut dyn ImageDecoder| decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let (frames, icc, orientation) = match header.format {
        InputFormat::Gif => {
            let mut decoder = GifDecoder::new(cursor).map_err(classify)?;
            decoder.set_limits(image_limits).map_err(classify)?;
            (decoder.into_frames(), None, Orientation::NoTransforms)
        }
        InputFormat::Webp => {
            let mut decoder = WebPDecoder::new(cursor).map_err(classify)?;
            decoder.set_limits(image_limits).map_err(classify)?;
            let icc = decoder.icc_profile().ok().flatten();
            let orientation = upright(&mut decoder);
            (decoder.into_frames(), icc, orientation)
        }
        InputFormat::Png => {
            let mut decoder = PngDecoder::with_limits(cursor, image_limits).map_err(classify)?;
            let icc = decoder.icc_profile().ok().flatten();
            let orientation = upright(&mut decoder);
            (decoder.apng().map_err(classify)?.into_frames(), icc, orientation)
        }
        other => return Err(internal(format!("{other} images have no frames"))),
    };
    let frames = frames.map(move |frame| {
        let frame = frame.map_err(classify)?;
        let (numer, denom) = frame.delay().numer_denom_ms();
        let delay = match numer / denom.max(1) {
            0..=10 => 100,
            ms => ms,
        };
        let mut image = to_rgb_or_rgba(DynamicImage::ImageRgba8(frame.into_buffer()));
        if let Some(icc) = &icc {
            colour::rgb_to_srgb(&mut image, icc)?;
        }
        Ok((image, delay))
    });
    Ok((frames, orientation))
}

/// Maps the `image` crate's errors onto our taxonomy.
fn classify(error: image::ImageError) -> ImageError {
    use image::error::LimitErrorKind;
    match error {
        image::ImageError::Decoding(e) => ImageError::corrupt(format!("the image data is damaged ({e})")),
        image::ImageError::Limits(e) => match e.kind() {
            LimitErrorKind::DimensionError => ImageError::too_large(format!("the image is too large ({e})")),
            _ => ImageError::limits(format!("decoding needs more memory than allowed ({e})")),
        },
        image::ImageError::Unsupported(e) => {
            ImageError::unsupported(format!("this image variant is not supported ({e})"))
        }
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageError::corrupt("the image is truncated: its data ends early")
        }
        image::ImageError::IoError(e) => ImageError::corrupt(format!("the image data is damaged ({e})")),
        image::ImageError::Parameter(e) => ImageError::corrupt(format!("the image header is invalid ({e})")),
        image::ImageError::Encoding(e) => internal(e),
    }
}

pub(crate) fn internal(error: impl std::fmt::Display) -> ImageError {
    ImageError::internal(format!("decoder failure: {error}"))
}

/// Converts to 8-bit RGB, or RGBA when the image has an alpha channel that is not fully opaque.
fn to_rgb_or_rgba(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageRgb8(_) => image,
        DynamicImage::ImageRgba8(rgba) if rgba.pixels().any(|p| p[3] != 255) => DynamicImage::ImageRgba8(rgba),
        other if other.color().has_alpha() => {
            let rgba = other.into_rgba8();
            if rgba.pixels().any(|p| p[3] != 255) {
                DynamicImage::ImageRgba8(rgba)
            } else {
                DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).into_rgb8())
            }
        }
        other => DynamicImage::ImageRgb8(other.into_rgb8()),
    }
}
