//! Image formats: what we read (sniffed from magic bytes) and what we write.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An input format, recognised from the file's first bytes, never from its name.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// JPEG (JFIF/EXIF), baseline or progressive.
    Jpeg,
    /// PNG, including APNG (first frame).
    Png,
    /// GIF (first frame).
    Gif,
    /// WebP, lossy or lossless (first frame).
    Webp,
    /// TIFF (off by default: a large attack surface for little web use).
    Tiff,
    /// Windows bitmap (off by default).
    Bmp,
}

impl InputFormat {
    /// Every input format the kernel can decode.
    pub const ALL: [InputFormat; 6] =
        [InputFormat::Jpeg, InputFormat::Png, InputFormat::Gif, InputFormat::Webp, InputFormat::Tiff, InputFormat::Bmp];

    /// Recognises a format from magic bytes; `None` for anything else.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            b if b.starts_with(PNG) => Some(Self::Png),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            [b'I', b'I', 42, 0, ..] | [b'M', b'M', 0, 42, ..] => Some(Self::Tiff),
            [b'B', b'M', ..] if bytes.len() >= 26 => Some(Self::Bmp),
            _ => None,
        }
    }

    /// The lowercase name used in JSON and presets.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::Webp => "webp",
            Self::Tiff => "tiff",
            Self::Bmp => "bmp",
        }
    }

    /// The conventional file extension for originals of this format.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Tiff => "tif",
            other => other.as_str(),
        }
    }

    /// The MIME type of originals in this format (what a record's `source.content_type` says).
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
            Self::Tiff => "image/tiff",
            Self::Bmp => "image/bmp",
        }
    }

    /// The format a MIME type names (case and parameters ignored, common aliases accepted).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match essence.as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(Self::Jpeg),
            "image/png" | "image/apng" => Some(Self::Png),
            "image/gif" => Some(Self::Gif),
            "image/webp" => Some(Self::Webp),
            "image/tiff" => Some(Self::Tiff),
            "image/bmp" | "image/x-ms-bmp" => Some(Self::Bmp),
            _ => None,
        }
    }

    /// The MIME type of `bytes` as sniffed: the format's, or [`UNKNOWN_CONTENT_TYPE`].
    pub fn sniff_content_type(bytes: &[u8]) -> &'static str {
        Self::sniff(bytes).map_or(UNKNOWN_CONTENT_TYPE, Self::content_type)
    }
}

/// Names an image family that is recognised but not decoded here, from its first bytes: the
/// ISOBMFF containers of phones and modern encoders (`"HEIC/HEIF"`, `"AVIF"`).
pub fn sniff_undecodable(bytes: &[u8]) -> Option<&'static str> {
    if bytes.get(4..8) != Some(b"ftyp") {
        return None;
    }
    let size = u32::from_be_bytes(bytes[..4].try_into().ok()?) as usize;
    // The major brand, then the compatible brands, in the `ftyp` box as far as the file holds it.
    let end = size.clamp(16, 64).min(bytes.len());
    let brands: Vec<&[u8]> = std::iter::once(bytes.get(8..12)?).chain(bytes.get(16..end)?.chunks_exact(4)).collect();
    let any = |names: &[&[u8; 4]]| brands.iter().any(|b| names.iter().any(|n| *b == &n[..]));
    if any(&[b"avif", b"avis"]) {
        Some("AVIF")
    } else if any(&[b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"]) {
        Some("HEIC/HEIF")
    } else {
        None
    }
}

/// The content type recorded for bytes that are no known image format.
pub const UNKNOWN_CONTENT_TYPE: &str = "application/octet-stream";

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rendition's encoding.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// JPEG, 4:2:0, with a quality; alpha is flattened on the preset's background.
    Jpeg,
    /// PNG, lossless, keeps alpha.
    Png,
    /// WebP, lossy with a quality, keeps alpha.
    Webp,
    /// AVIF (AV1 still image through rav1e), lossy with a quality and an encoder speed, keeps
    /// alpha; 8-bit 4:4:4 YCbCr.
    Avif,
    /// GIF, 256 colours per frame, transparent or opaque pixels; the one format every client
    /// animates. Quality does not apply.
    Gif,
}

impl OutputFormat {
    /// The lowercase name used in JSON and presets.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Avif => "avif",
            Self::Gif => "gif",
        }
    }

    /// The file extension of renditions in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            other => other.as_str(),
        }
    }

    /// The MIME type served for renditions in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Avif => "image/avif",
            Self::Gif => "image/gif",
        }
    }

    /// Whether the format can carry an animation.
    pub fn can_animate(self) -> bool {
        matches!(self, Self::Webp | Self::Gif)
    }

    /// Whether the format can carry an alpha channel.
    pub fn has_alpha(self) -> bool {
        !matches!(self, Self::Jpeg)
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_format_from_its_magic() {
        let cases: [(&[u8], Option<InputFormat>); 10] = [
            (b"\xFF\xD8\xFF\xE0rest", Some(InputFormat::Jpeg)),
            (b"\x89PNG\r\n\x1a\n\0\0", Some(InputFormat::Png)),
            (b"GIF89a....", Some(InputFormat::Gif)),
            (b"GIF87a....", Some(InputFormat::Gif)),
            (b"RIFF\0\0\0\0WEBPVP8 ", Some(InputFormat::Webp)),
            (b"II*\0rest", Some(InputFormat::Tiff)),
            (b"MM\0*rest", Some(InputFormat::Tiff)),
            (b"BM000000000000000000000000", Some(InputFormat::Bmp)),
            (b"\x89PNG\r\n\x1a", None),
            (b"<svg xmlns=", None),
        ];
        for (bytes, expected) in cases {
            assert_eq!(InputFormat::sniff(bytes), expected, "{bytes:?}");
        }
    }

    #[test]
    fn content_types_round_trip_and_sniff() {
        for format in InputFormat::ALL {
            assert_eq!(InputFormat::from_content_type(format.content_type()), Some(format));
        }
        assert_eq!(InputFormat::from_content_type("Image/JPEG; q=1"), Some(InputFormat::Jpeg));
        assert_eq!(InputFormat::from_content_type("application/x-www-form-urlencoded"), None);
        assert_eq!(InputFormat::sniff_content_type(b"\x89PNG\r\n\x1a\n\0\0"), "image/png");
        assert_eq!(InputFormat::sniff_content_type(b"<svg"), UNKNOWN_CONTENT_TYPE);
    }

    #[test]
    fn heic_and_avif_are_named_though_not_decoded() {
        let ftyp = |major: &[u8; 4], compatible: &[u8]| {
            let mut b = vec![0, 0, 0, (16 + compatible.len()) as u8];
            b.extend_from_slice(b"ftyp");
            b.extend_from_slice(major);
            b.extend_from_slice(&[0; 4]);
            b.extend_from_slice(compatible);
            b.extend_from_slice(b"\0\0\0\x08meta");
            b
        };
        assert_eq!(sniff_undecodable(&ftyp(b"heic", b"mif1heic")), Some("HEIC/HEIF"));
        assert_eq!(sniff_undecodable(&ftyp(b"mif1", b"mif1miafMA1B")), Some("HEIC/HEIF"));
        assert_eq!(sniff_undecodable(&ftyp(b"avif", b"avifmif1miaf")), Some("AVIF"));
        assert_eq!(sniff_undecodable(&ftyp(b"mif1", b"avifmif1")), Some("AVIF"));
        assert_eq!(sniff_undecodable(&ftyp(b"isom", b"isomavc1")), None, "an MP4 video");
        assert_eq!(sniff_undecodable(b"\0\0\0\x18ftyphe"), None);
        assert_eq!(InputFormat::sniff(&ftyp(b"heic", b"mif1")), None);
    }

    #[test]
    fn empty_and_short_inputs_sniff_as_nothing() {
        assert_eq!(InputFormat::sniff(b""), None);
        assert_eq!(InputFormat::sniff(b"\xFF\xD8"), None);
        assert_eq!(InputFormat::sniff(b"BM"), None);
    }
}
