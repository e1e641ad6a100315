//! Reads what an image claims about itself (format, size, frames, orientation) from its headers,
//! without decoding a pixel, so that limits are checked before any pixel memory is allocated.

use crate::geometry::Size;
use image::metadata::Orientation;
use imgpipe_core::{ImageError, InputFormat, Limits};

/// What the headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The sniffed format.
    pub format: InputFormat,
    /// Width in pixels, as stored (before orientation); 0 when unknown (see [`Header::size`]).
    pub width: u32,
    /// Height in pixels, as stored (before orientation); 0 when unknown (see [`Header::size`]).
    pub height: u32,
    /// Frames declared (1 for still images).
    pub frames: u32,
    /// JPEG details, for JPEGs.
    pub jpeg: Option<JpegInfo>,
}

/// What a JPEG's frame header and APP segments say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegInfo {
    /// Colour components: 1 (grey), 3 (YCbCr/RGB) or 4 (CMYK/YCCK).
    pub components: u8,
    /// EXIF orientation, if an EXIF segment carries one.
    pub orientation: Option<Orientation>,
    /// The embedded ICC profile, reassembled from its APP2 chunks, if complete.
    pub icc: Option<Vec<u8>>,
    /// Whether an APP14 "Adobe" segment is present (Adobe CMYK is stored inverted).
    pub adobe: bool,
}

impl Header {
    /// The size as stored, when the headers tell it. TIFF keeps its size in an IFD anywhere in
    /// the file, so the probe leaves it to the decoder, which reads it under the same limits.
    pub fn size(&self) -> Option<Size> {
        (self.format != InputFormat::Tiff).then_some((self.width, self.height))
    }
}

/// Sniffs the format and reads the header, checking every limit that the header alone decides.
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<Header, ImageError> {
    if bytes.len() as u64 > limits.max_input_bytes {
        return Err(ImageError::too_large(format!(
            "the file is {} bytes; the limit is {} bytes",
            bytes.len(),
            limits.max_input_bytes
        )));
    }
    if bytes.is_empty() {
        return Err(ImageError::unsupported("the file is empty"));
    }
    let format = InputFormat::sniff(bytes).ok_or_else(|| match imgpipe_core::sniff_undecodable(bytes) {
        Some(family) => ImageError::unsupported(format!(
            "{family} images are not decoded here (accepted: {}); convert it to JPEG or PNG first (README \"AVIF\")",
            accepted(limits)
        )),
        None => ImageError::unsupported(format!(
            "not a recognised image format (accepted: {}); the first bytes are {:02x?}",
            accepted(limits),
            &bytes[..bytes.len().min(8)]
        )),
    })?;
    if !limits.accepts(format) {
        return Err(ImageError::unsupported(format!(
            "{format} images are not accepted here (accepted: {})",
            accepted(limits)
        )));
    }
    let header = match format {
        InputFormat::Jpeg => jpeg(bytes)?,
        InputFormat::Png => png(bytes)?,
        InputFormat::Gif => gif(bytes, limits)?,
        InputFormat::Webp => webp(bytes)?,
        InputFormat::Bmp => bmp(bytes)?,
        // Its size is unknown here: see `Header::size`.
        InputFormat::Tiff => Header { format, width: 0, height: 0, frames: 1, jpeg: None },
    };
    if let Some((width, height)) = header.size() {
        check_size(width, height, limits)?;
    }
    if header.frames > limits.max_frames {
        return Err(ImageError::limits(format!(
            "the animation declares {} frames; the limit is {}",
            header.frames, limits.max_frames
        )));
    }
    Ok(header)
}

/// Rejects empty, over-long or over-large images by their declared size.
pub fn check_size(width: u32, height: u32, limits: &Limits) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::corrupt(format!("the header declares a {width}×{height} image")));
    }
    if width.max(height) > limits.max_side {
        return Err(ImageError::too_large(format!(
            "the image is {width}×{height}; the longest side allowed is {} pixels",
            limits.max_side
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(ImageError::too_large(format!(
            "the image is {width}×{height} ({:.1} MP); the limit is {:.1} MP",
            pixels as f64 / 1e6,
            limits.max_pixels as f64 / 1e6
        )));
    }
    Ok(())
}

fn accepted(limits: &Limits) -> String {
    limits.formats.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
}

fn truncated(what: &str) -> ImageError {
    ImageError::corrupt(format!("the file ends inside the {what}: it is truncated"))
}

fn u16_be(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u24_le(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
}

/// Walks JPEG marker segments up to the first scan: frame header, EXIF orientation.
fn jpeg(b: &[u8]) -> Result<Header, ImageError> {
    let mut pos = 2;
    let mut frame = None;
    let mut orientation = None;
    let mut icc_chunks: Vec<(u8, u8, &[u8])> = Vec::new();
    let mut adobe = false;
    loop {
        // Markers are 0xFF, optional 0xFF fill bytes, then the code; skip stray bytes as libjpeg does.
        while b.get(pos).is_some_and(|&x| x != 0xFF) {
            pos += 1;
        }
        while b.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = b.get(pos + 1) else { break };
        pos += 2;
        match marker {
            // 0xFF00 is a stuffed byte, not a marker; RSTn and TEM stand alone.
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            0xD9 => return Err(ImageError::corrupt("the JPEG ends before any image data")),
            _ => {}
        }
        // A file cut inside its headers still reports its size, so size limits decide first;
        // one that is small enough fails as truncated in the decoder.
        let Some(len) = u16_be(b, pos).map(usize::from) else { break };
        let Some(segment) = b.get(pos + 2..pos + len.max(2)) else { break };
        match marker {
            0xDA => break,
            0xE1 if segment.starts_with(b"Exif\0\0") && orientation.is_none() => {
                orientation = Orientation::from_exif_chunk(&segment[6..]);
            }
            // "ICC_PROFILE\0", sequence number, chunk count, then the chunk.
            0xE2 if segment.len() > 14 && segment.starts_with(b"ICC_PROFILE\0") => {
                icc_chunks.push((segment[12], segment[13], &segment[14..]));
            }
            0xEE if segment.starts_with(b"Adobe") => adobe = true,
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if segment.len() < 6 {
                    return Err(ImageError::corrupt("the JPEG frame header is too short"));
                }
                frame = Some((marker, segment[0], u16_be(segment, 1), u16_be(segment, 3), segment[5]));
            }
            _ => {}
        }
        pos += len;
    }
    let Some((marker, precision, Some(height), Some(width), components)) = frame else {
        return Err(ImageError::corrupt("the JPEG has no frame header before its image data"));
    };
    if matches!(marker, 0xC3 | 0xC5..=0xC7 | 0xCB | 0xCD..=0xCF) {
        return Err(ImageError::unsupported("lossless and hierarchical JPEGs are not supported"));
    }
    if matches!(marker, 0xC9 | 0xCA) {
        // Browsers cannot show them either; nearly nothing in the wild uses them.
        return Err(ImageError::unsupported("arithmetic-coded JPEGs are not supported"));
    }
    if precision != 8 {
        return Err(ImageError::unsupported(format!("{precision}-bit JPEGs are not supported (only 8-bit)")));
    }
    if !matches!(components, 1 | 3 | 4) {
        return Err(ImageError::corrupt(format!("the JPEG declares {components} colour components")));
    }
    Ok(Header {
        format: InputFormat::Jpeg,
        width: width.into(),
        height: height.into(),
        frames: 1,
        jpeg: Some(JpegInfo { components, orientation, icc: icc_profile(icc_chunks), adobe }),
    })
}

/// Reassembles an ICC profile from its APP2 chunks (numbered 1..=count, in any order); `None`
/// when there are none, or when one is missing or repeated (an incomplete profile is ignored).
fn icc_profile(mut chunks: Vec<(u8, u8, &[u8])>) -> Option<Vec<u8>> {
    let count = chunks.first()?.1;
    chunks.sort_unstable_by_key(|c| c.0);
    let complete = chunks.len() == usize::from(count)
        && chunks.iter().enumerate().all(|(i, c)| usize::from(c.0) == i + 1 && c.1 == count);
    complete.then(|| chunks.iter().flat_map(|c| c.2).copied().collect())
}

/// Reads IHDR and, for APNG, the frame count: acTL's declaration must match the fcTL chunks.
fn png(b: &[u8]) -> Result<Header, ImageError> {
    if b.get(12..16) != Some(b"IHDR") {
        return Err(ImageError::corrupt("the PNG does not start with an IHDR chunk"));
    }
    let width = u32_be(b, 16).ok_or_else(|| truncated("PNG header"))?;
    let height = u32_be(b, 20).ok_or_else(|| truncated("PNG header"))?;
    let (mut declared, mut controls) = (None, 0u32);
    let mut pos = 8;
    while let (Some(len), Some(kind)) = (u32_be(b, pos), b.get(pos + 4..pos + 8)) {
        match kind {
            b"acTL" => declared = Some(u32_be(b, pos + 8).ok_or_else(|| truncated("APNG animation header"))?),
            b"fcTL" => controls += 1,
            b"IEND" => break,
            _ => {}
        }
        pos = pos.saturating_add(12).saturating_add(len as usize);
    }
    let frames = match declared {
        Some(0) => return Err(ImageError::corrupt("the APNG declares zero frames")),
        // acTL with no frame control at all: an ordinary PNG with a stray chunk.
        Some(_) if controls == 0 => 1,
        Some(n) if n != controls => {
            return Err(ImageError::corrupt(format!("the APNG declares {n} frames but holds {controls}")));
        }
        Some(n) => n,
        None => 1,
    };
    Ok(Header { format: InputFormat::Png, width, height, frames, jpeg: None })
}

/// Walks GIF blocks without decompressing them: the canvas, and every frame's extent.
fn gif(b: &[u8], limits: &Limits) -> Result<Header, ImageError> {
    let width = u16_le(b, 6).ok_or_else(|| truncated("GIF header"))?;
    let height = u16_le(b, 8).ok_or_else(|| truncated("GIF header"))?;
    let flags = *b.get(10).ok_or_else(|| truncated("GIF header"))?;
    let table = |flags: u8| if flags & 0x80 != 0 { 3usize << ((flags & 7) + 1) } else { 0 };
    let mut pos = 13 + table(flags);
    let mut frames = 0u32;
    let skip_sub_blocks = |mut pos: usize| -> Option<usize> {
        loop {
            let len = usize::from(*b.get(pos)?);
            pos += 1 + len;
            if len == 0 {
                return Some(pos);
            }
        }
    };
    while let Some(&block) = b.get(pos) {
        pos = match block {
            0x3B => break,
            0x21 => skip_sub_blocks(pos + 2),
            0x2C => {
                let (left, top) = (u16_le(b, pos + 1), u16_le(b, pos + 3));
                let (w, h) = (u16_le(b, pos + 5), u16_le(b, pos + 7));
                let local = b.get(pos + 9).copied();
                let (Some(left), Some(top), Some(w), Some(h), Some(local)) = (left, top, w, h, local) else { break };
                if w == 0 || h == 0 {
                    return Err(ImageError::corrupt(format!("GIF frame {} is {w}×{h}", frames + 1)));
                }
                // A frame reaching past the canvas makes players grow the canvas: bound its extent.
                check_size(u32::from(left) + u32::from(w), u32::from(top) + u32::from(h), limits)?;
                frames += 1;
                // Descriptor, local colour table, LZW code size, then the data sub-blocks.
                skip_sub_blocks(pos + 10 + table(local) + 1)
            }
            other => return Err(ImageError::corrupt(format!("unexpected GIF block 0x{other:02x} at byte {pos}"))),
        }
        .unwrap_or(b.len());
    }
    if frames == 0 {
        return Err(ImageError::corrupt("the GIF has no complete frame"));
    }
    Ok(Header { format: InputFormat::Gif, width: width.into(), height: height.into(), frames, jpeg: None })
}

/// Reads the canvas size from the first chunk (VP8X, VP8 or VP8L) and counts ANMF frames.
fn webp(b: &[u8]) -> Result<Header, ImageError> {
    let chunk = b.get(12..16).ok_or_else(|| truncated("WebP header"))?;
    let (width, height) = match chunk {
        b"VP8X" => (u24_le(b, 24).map(|w| w + 1), u24_le(b, 27).map(|h| h + 1)),
        b"VP8 " => {
            if b.get(23..26) != Some(&[0x9D, 0x01, 0x2A]) {
                return Err(ImageError::corrupt("the WebP VP8 frame has no start code"));
            }
            (u16_le(b, 26).map(|w| u32::from(w & 0x3FFF)), u16_le(b, 28).map(|h| u32::from(h & 0x3FFF)))
        }
        b"VP8L" => {
            if b.get(20) != Some(&0x2F) {
                return Err(ImageError::corrupt("the WebP lossless stream has no signature"));
            }
            let bits = u32_le(b, 21);
            (bits.map(|v| (v & 0x3FFF) + 1), bits.map(|v| ((v >> 14) & 0x3FFF) + 1))
        }
        other => {
            return Err(ImageError::corrupt(format!(
                "unexpected first WebP chunk {:?}",
                String::from_utf8_lossy(other)
            )));
        }
    };
    let (Some(width), Some(height)) = (width, height) else { return Err(truncated("WebP header")) };
    let mut frames = 0u32;
    let mut pos = 12;
    while let (Some(kind), Some(len)) = (b.get(pos..pos + 4), u32_le(b, pos + 4)) {
        frames += u32::from(kind == b"ANMF");
        pos = pos.saturating_add(8).saturating_add(len as usize + (len as usize & 1));
    }
    Ok(Header { format: InputFormat::Webp, width, height, frames: frames.max(1), jpeg: None })
}

/// Reads a BMP's info header (height is negative for top-down bitmaps).
fn bmp(b: &[u8]) -> Result<Header, ImageError> {
    let width = u32_le(b, 18).map(|w| w as i32).ok_or_else(|| truncated("BMP header"))?;
    let height = u32_le(b, 22).map(|h| h as i32).ok_or_else(|| truncated("BMP header"))?;
    if width <= 0 || height == 0 || height == i32::MIN {
        return Err(ImageError::corrupt(format!("the BMP declares a {width}×{height} image")));
    }
    Ok(Header { format: InputFormat::Bmp, width: width as u32, height: height.unsigned_abs(), frames: 1, jpeg: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgpipe_core::ErrorKind;

    fn kind(bytes: &[u8]) -> ErrorKind {
        probe(bytes, &Limits::default()).unwrap_err().kind
    }

    #[test]
    fn gif_frames_bigger_than_the_limits_are_rejected_before_decoding() {
        // 1×1 canvas, one 20000×20000 frame with a one-byte data sub-block.
        let mut gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec();
        gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 0x20, 0x4E, 0x20, 0x4E, 0, 2, 1, 0, 0, 0x3B]);
        assert_eq!(kind(&gif), ErrorKind::TooLarge);
    }

    #[test]
    fn png_headers_declaring_bombs_are_too_large() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&20_000u32.to_be_bytes());
        png.extend_from_slice(&20_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(kind(&png), ErrorKind::TooLarge);
        let limits = Limits { max_side: 30_000, ..Limits::default() };
        let err = probe(&png, &limits).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge);
        assert!(err.message.contains("400.0 MP"), "{}", err.message);
    }

    #[test]
    fn oversized_inputs_are_rejected_by_length_first() {
        let limits = Limits { max_input_bytes: 4, ..Limits::default() };
        assert_eq!(probe(b"\xFF\xD8\xFF\xE0\0", &limits).unwrap_err().kind, ErrorKind::TooLarge);
    }

    #[test]
    fn disallowed_and_unknown_formats_are_unsupported() {
        assert_eq!(kind(b"II*\0\x08\0\0\0"), ErrorKind::Unsupported);
        assert_eq!(kind(b"<svg/>"), ErrorKind::Unsupported);
        assert_eq!(kind(b""), ErrorKind::Unsupported);
    }

    #[test]
    fn jpegs_cut_inside_their_headers_are_corrupt() {
        assert_eq!(kind(b"\xFF\xD8\xFF"), ErrorKind::Corrupt);
        assert_eq!(kind(b"\xFF\xD8\xFF\xE0\x00\x10JFIF"), ErrorKind::Corrupt);
        assert_eq!(kind(b"\xFF\xD8\xFF\xD9"), ErrorKind::Corrupt);
    }
}
