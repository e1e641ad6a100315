//! The metadata a preset keeps (`keep_metadata`): the original's EXIF cut down to the preset's
//! fields, and written into each rendition (JPEG APP1, PNG eXIf, WebP EXIF chunk).
//!
//! By default a preset keeps nothing and none of this runs. Orientation is never kept (the pixels
//! are already upright), nor maker notes, thumbnails or XMP; GPS only when `gps` is listed.
//! Metadata that does not parse is dropped, never a reason to fail an image.

use exif::{Context, Field, In, Tag};
use imgpipe_core::OutputFormat;
use imgpipe_core::preset::MetadataField;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The original's EXIF, reduced to the fields `keep` names, as a TIFF structure ready to embed;
/// `None` when nothing is kept (no EXIF, nothing that matches, or EXIF that does not parse).
pub fn kept(original: &[u8], keep: &[MetadataField]) -> Option<Vec<u8>> {
    if keep.is_empty() {
        return None;
    }
    // A parser of untrusted bytes: a panic in it costs the metadata, not the image.
    catch_unwind(AssertUnwindSafe(|| {
        let exif = exif::Reader::new().read_from_container(&mut Cursor::new(original)).ok()?;
        let fields: Vec<Field> = exif
            .fields()
            .filter(|field| field.ifd_num == In::PRIMARY && keep.iter().any(|&group| belongs(field.tag, group)))
            .cloned()
            .collect();
        if fields.is_empty() {
            return None;
        }
        let mut writer = exif::experimental::Writer::new();
        fields.iter().for_each(|field| writer.push_field(field));
        let mut tiff = Cursor::new(Vec::new());
        writer.write(&mut tiff, true).ok()?;
        Some(tiff.into_inner())
    }))
    .ok()
    .flatten()
}

/// Whether `tag` is one of the fields `group` keeps.
fn belongs(tag: Tag, group: MetadataField) -> bool {
    match group {
        MetadataField::Copyright => tag == Tag::Copyright,
        MetadataField::Artist => tag == Tag::Artist,
        MetadataField::Description => tag == Tag::ImageDescription,
        MetadataField::Camera => [Tag::Make, Tag::Model, Tag::LensMake, Tag::LensModel].contains(&tag),
        MetadataField::Date => [
            Tag::DateTime,
            Tag::DateTimeOriginal,
            Tag::DateTimeDigitized,
            Tag::OffsetTime,
            Tag::OffsetTimeOriginal,
            Tag::OffsetTimeDigitized,
        ]
        .contains(&tag),
        MetadataField::Exposure => {
            [Tag::ExposureTime, Tag::FNumber, Tag::PhotographicSensitivity, Tag::FocalLength, Tag::Flash].contains(&tag)
        }
        // Every GPS field but the directory's own version tag makes sense alone; keep them all.
        MetadataField::Gps => tag.context() == Context::Gps,
    }
}

/// `encoded` (a rendition in `format`) with `tiff` (from [`kept`]) embedded as its EXIF.
///
/// AVIF is returned as it is: its EXIF is an item of the container the encoder writes, so
/// [`encode::avif`](crate::encode::avif) takes it. GIF has no place for EXIF.
pub fn embed(encoded: Vec<u8>, format: OutputFormat, tiff: &[u8]) -> Vec<u8> {
    match format {
        OutputFormat::Jpeg => embed_jpeg(encoded, tiff),
        OutputFormat::Png => embed_png(encoded, tiff),
        OutputFormat::Webp => embed_webp(encoded, tiff),
        OutputFormat::Avif | OutputFormat::Gif => encoded,
    }
}

/// An APP1 "Exif" segment right after SOI and any APP0 (JFIF) segment.
fn embed_jpeg(jpeg: Vec<u8>, tiff: &[u8]) -> Vec<u8> {
    let Ok(len) = u16::try_from(2 + 6 + tiff.len()) else { return jpeg };
    let mut at = 2;
    if jpeg.get(2..4) == Some(&[0xFF, 0xE0]) {
        at += 2 + jpeg.get(4..6).map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])));
    }
    let mut out = Vec::with_capacity(jpeg.len() + 10 + tiff.len());
    out.extend_from_slice(&jpeg[..at]);
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(tiff);
    out.extend_from_slice(&jpeg[at..]);
    out
}

/// An eXIf chunk right after IHDR (it must precede IDAT).
fn embed_png(png: Vec<u8>, tiff: &[u8]) -> Vec<u8> {
    // Signature (8) + IHDR (4 length, 4 type, 13 data, 4 CRC).
    let at = 8 + 25;
    let mut chunk = Vec::with_capacity(12 + tiff.len());
    chunk.extend_from_slice(&(tiff.len() as u32).to_be_bytes());
    chunk.extend_from_slice(b"eXIf");
    chunk.extend_from_slice(tiff);
    chunk.extend_from_slice(&crc32fast::hash(&chunk[4..]).to_be_bytes());
    let mut out = png;
    out.splice(at..at, chunk);
    out
}

/// The extended (VP8X) layout with the EXIF flag and an EXIF chunk at the end, as the WebP
/// container specification orders it.
fn embed_webp(webp: Vec<u8>, tiff: &[u8]) -> Vec<u8> {
    const EXIF_FLAG: u8 = 0x08;
    const ALPHA_FLAG: u8 = 0x10;
    let Some(first) = webp.get(12..16) else { return webp };
    let mut body = Vec::with_capacity(webp.len() + 18 + tiff.len());
    if first == b"VP8X" {
        body.extend_from_slice(&webp[12..]);
        body[8] |= EXIF_FLAG;
    } else {
        // A simple file: its one chunk gives the canvas size and whether there is alpha.
        let (width, height, alpha) = match first {
            b"VP8L" if webp.len() >= 25 => {
                let bits = u32::from_le_bytes([webp[21], webp[22], webp[23], webp[24]]);
                ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bits >> 28 & 1 == 1)
            }
            b"VP8 " if webp.len() >= 30 => {
                let side = |at: usize| u32::from(u16::from_le_bytes([webp[at], webp[at + 1]]) & 0x3FFF);
                (side(26), side(28), false)
            }
            _ => return webp,
        };
        body.extend_from_slice(b"VP8X");
        body.extend_from_slice(&10u32.to_le_bytes());
        body.extend_from_slice(&[EXIF_FLAG | if alpha { ALPHA_FLAG } else { 0 }, 0, 0, 0]);
        body.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
        body.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
        body.extend_from_slice(&webp[12..]);
    }
    body.extend_from_slice(b"EXIF");
    body.extend_from_slice(&(tiff.len() as u32).to_le_bytes());
    body.extend_from_slice(tiff);
    if tiff.len() % 2 == 1 {
        body.push(0);
    }
    let mut out = Vec::with_capacity(12 + body.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(4 + body.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&body);
    out
}
