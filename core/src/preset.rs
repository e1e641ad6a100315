//! Presets: named recipes of renditions and an optional watermark, loaded from TOML.
//!
//! Parse, don't validate: [`PresetCatalog::from_toml`] turns text into types that cannot hold a
//! bad value (a quality of 0, a `cover` without a height, an unknown key), and its errors name
//! the field and the line.

use crate::format::OutputFormat;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// The built-in presets: `default` (a WebP thumbnail and two watermarked JPEGs, README "Presets").
pub const BUILTIN_TOML: &str = r##"
[presets.default]
watermark = { text = "© imgpipe", position = "bottom-right", opacity = 0.5, scale = 0.25, margin = 0.02 }
renditions = [
  { name = "thumb",  width = 256,  height = 256, fit = "cover",  format = "webp" },
  { name = "medium", width = 1024, fit = "inside", format = "jpeg", quality = 82, watermark = true },
  { name = "large",  width = 2048, fit = "inside", format = "jpeg", quality = 85, watermark = true },
]
"##;

/// The name of the preset used when an upload names none.
pub const DEFAULT_PRESET: &str = "default";

/// A preset file that could not be loaded; the message names the field and the line.
#[derive(Debug, thiserror::Error)]
#[error("invalid presets: {0}")]
pub struct PresetError(String);

/// A set of named presets.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetCatalog {
    presets: BTreeMap<String, Preset>,
}

impl PresetCatalog {
    /// The built-in catalog (just `default`).
    pub fn builtin() -> Self {
        Self::parse(BUILTIN_TOML, BTreeMap::new()).expect("the built-in presets parse")
    }

    /// Parses a presets file. Presets it defines replace built-ins of the same name; the
    /// built-in `default` stays available when the file defines none.
    pub fn from_toml(text: &str) -> Result<Self, PresetError> {
        Self::parse(text, Self::builtin().presets)
    }

    fn parse(text: &str, mut presets: BTreeMap<String, Preset>) -> Result<Self, PresetError> {
        let file: PresetFile = toml::from_str(text).map_err(|e| PresetError(e.to_string()))?;
        for (name, raw) in file.presets {
            let name = Name::parse(&name).map_err(|e| PresetError(format!("presets.{name}: {e}")))?;
            let preset = raw.into_preset(name.clone()).map_err(|e| PresetError(format!("presets.{name}.{e}")))?;
            presets.insert(name.0, preset);
        }
        Ok(Self { presets })
    }

    /// The preset called `name`.
    pub fn get(&self, name: &str) -> Option<&Preset> {
        self.presets.get(name)
    }

    /// Every preset, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Preset> {
        self.presets.values()
    }
}

/// A named recipe: the renditions to make of each image, and the watermark they may carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    /// The preset's name, as uploads refer to it.
    pub name: String,
    /// What to make, in file order.
    pub renditions: Vec<Rendition>,
    /// The watermark drawn on renditions that ask for it.
    pub watermark: Option<Watermark>,
    /// What transparent pixels become in formats without alpha (JPEG).
    pub background: Rgb,
    /// The original's EXIF fields its renditions keep (none by default: everything is stripped).
    pub keep_metadata: Vec<MetadataField>,
}

/// A group of EXIF fields a preset may keep in its renditions. Orientation is never kept (the
/// pixels are turned upright), nor anything not listed here (maker notes, thumbnails, XMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetadataField {
    /// `Copyright`.
    Copyright,
    /// `Artist`.
    Artist,
    /// `ImageDescription`.
    Description,
    /// `Make`, `Model`, `LensMake`, `LensModel`.
    Camera,
    /// `DateTime`, `DateTimeOriginal`, `DateTimeDigitized` and their time-zone offsets.
    Date,
    /// Exposure time, f-number, ISO, focal length, flash.
    Exposure,
    /// The whole GPS directory: where the photo was taken. Kept only when asked for by name.
    Gps,
}

/// An AVIF rendition's encoder speed when its preset names none (rav1e's 1..=10; README "AVIF"
/// has what speeds 4, 6 and 8 cost).
pub const DEFAULT_AVIF_SPEED: u8 = 6;

/// An AVIF rendition's quality when its preset names none: about sharp's AVIF quality 45
/// (README "AVIF").
pub const DEFAULT_AVIF_QUALITY: u8 = 60;

/// One output of a preset.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendition {
    /// Name, unique in its preset; part of the object key.
    pub name: String,
    /// How the image fits the box.
    pub fit: Fit,
    /// The output encoding.
    pub format: OutputFormat,
    /// Encoder quality, 1..=100 (JPEG, WebP and AVIF).
    pub quality: u8,
    /// AVIF encoder speed, 1..=10: 1 is smallest and slowest, 10 fastest (default
    /// [`DEFAULT_AVIF_SPEED`]); other formats ignore it.
    pub speed: u8,
    /// Whether the preset's watermark is drawn on it.
    pub watermark: bool,
    /// Whether an animated original (GIF, WebP, APNG) stays animated in it (WebP and GIF only,
    /// within [`Limits::max_animation_pixels`](crate::Limits)); otherwise, as for stills, it
    /// shows the first frame.
    pub animated: bool,
}

/// How an image is fitted to a rendition's box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Keep the aspect ratio and fit inside the box; never upscale unless `upscale`.
    Inside {
        /// Largest width, if bounded.
        width: Option<u32>,
        /// Largest height, if bounded.
        height: Option<u32>,
        /// Whether smaller images are enlarged to the box.
        upscale: bool,
    },
    /// Fill the box exactly, then crop the overflow, keeping the part `gravity` picks.
    Cover {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
        /// Which part of the overflowing image the crop keeps.
        gravity: Gravity,
    },
    /// Stretch to exactly the box, ignoring the aspect ratio.
    Exact {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
    },
}

/// Which part of an image a `cover` crop keeps (libvips's meanings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gravity {
    /// The middle.
    #[default]
    Center,
    /// The part with the most detail: slices with the least entropy are cut from the edges.
    Entropy,
    /// The part most likely to draw the eye: edges, skin tones and saturated colour.
    Attention,
}

impl Gravity {
    /// The lowercase name used in presets.
    pub fn as_str(self) -> &'static str {
        match self {
            Gravity::Center => "center",
            Gravity::Entropy => "entropy",
            Gravity::Attention => "attention",
        }
    }
}

/// A watermark: what is drawn, where, and how strongly.
#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    /// Text or a logo.
    pub mark: Mark,
    /// Where it sits.
    pub position: Anchor,
    /// Gap to the nearest edges, as a fraction of the rendition's width.
    pub margin: f32,
    /// 0 (invisible) to 1 (opaque).
    pub opacity: f32,
    /// The watermark's width as a fraction of the rendition's width.
    pub scale: f32,
}

/// What a watermark draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// Text in the bundled font.
    Text {
        /// The text.
        text: String,
        /// Its colour.
        color: Rgb,
    },
    /// A PNG logo, by path (relative to the presets file).
    Logo {
        /// Where the PNG is.
        path: String,
    },
}

/// One of the nine places a watermark can sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// Top left corner.
    TopLeft,
    /// Centre of the top edge.
    #[serde(alias = "top-center")]
    Top,
    /// Top right corner.
    TopRight,
    /// Centre of the left edge.
    #[serde(alias = "center-left")]
    Left,
    /// The middle.
    Center,
    /// Centre of the right edge.
    #[serde(alias = "center-right")]
    Right,
    /// Bottom left corner.
    BottomLeft,
    /// Centre of the bottom edge.
    #[serde(alias = "bottom-center")]
    Bottom,
    /// Bottom right corner.
    BottomRight,
}

impl Anchor {
    /// Where along each axis the anchor sits: 0 = start, 1 = middle, 2 = end.
    pub fn thirds(self) -> (u8, u8) {
        match self {
            Anchor::TopLeft => (0, 0),
            Anchor::Top => (1, 0),
            Anchor::TopRight => (2, 0),
            Anchor::Left => (0, 1),
            Anchor::Center => (1, 1),
            Anchor::Right => (2, 1),
            Anchor::BottomLeft => (0, 2),
            Anchor::Bottom => (1, 2),
            Anchor::BottomRight => (2, 2),
        }
    }
}

/// An opaque sRGB colour, written `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb(pub [u8; 3]);

impl Rgb {
    /// White.
    pub const WHITE: Rgb = Rgb([255, 255, 255]);

    /// Parses `#rrggbb`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let hex = text.strip_prefix('#').filter(|h| h.len() == 6 && h.is_ascii());
        let channel = |i: usize| hex.and_then(|h| u8::from_str_radix(&h[i..i + 2], 16).ok());
        match (channel(0), channel(2), channel(4)) {
            (Some(r), Some(g), Some(b)) => Ok(Rgb([r, g, b])),
            _ => Err(format!("expected a colour like \"#ffffff\", got {text:?}")),
        }
    }
}

impl<'de> Deserialize<'de> for Rgb {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Rgb::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A preset or rendition name: 1–32 of `a-z 0-9 _ -` (it becomes part of object keys).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Name(String);

impl Name {
    fn parse(text: &str) -> Result<Self, String> {
        let ok = (1..=32).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Name(text.to_owned()))
        } else {
            Err(format!("name {text:?} must be 1-32 characters of a-z, 0-9, '_' or '-'"))
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---- the file's shape, checked field by field as serde reads it (so errors carry a line) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetFile {
    presets: BTreeMap<String, RawPreset>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreset {
    renditions: Vec<RawRendition>,
    watermark: Option<RawWatermark>,
    background: Option<Rgb>,
    #[serde(default)]
    keep_metadata: Vec<MetadataField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRendition {
    name: String,
    width: Option<Side>,
    height: Option<Side>,
    #[serde(default)]
    fit: FitMode,
    format: OutputFormat,
    quality: Option<Quality>,
    speed: Option<Speed>,
    #[serde(default)]
    watermark: bool,
    #[serde(default)]
    animated: bool,
    #[serde(default)]
    upscale: bool,
    gravity: Option<Gravity>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum FitMode {
    #[default]
    Inside,
    Cover,
    Exact,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatermark {
    text: Option<String>,
    image: Option<String>,
    color: Option<Rgb>,
    #[serde(default = "default_position")]
    position: Anchor,
    #[serde(default = "default_margin")]
    margin: Fraction,
    #[serde(default = "default_opacity")]
    opacity: Fraction,
    #[serde(default = "default_scale")]
    scale: Fraction,
}

fn default_position() -> Anchor {
    Anchor::BottomRight
}
fn default_margin() -> Fraction {
    Fraction(0.02)
}
fn default_opacity() -> Fraction {
    Fraction(0.5)
}
fn default_scale() -> Fraction {
    Fraction(0.25)
}

/// A rendition side: 1..=16383 pixels.
#[derive(Deserialize, Clone, Copy)]
#[serde(try_from = "i64")]
struct Side(u32);

impl TryFrom<i64> for Side {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(v @ 1..=16_383) => Ok(Side(v)),
            _ => Err(format!("a side must be 1..=16383 pixels, got {v}")),
        }
    }
}

/// An encoder quality: 1..=100.
#[derive(Deserialize, Clone, Copy)]
#[serde(try_from = "i64")]
struct Quality(u8);

impl TryFrom<i64> for Quality {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        in_range(v, "quality", 1..=100).map(Quality)
    }
}

/// An AVIF encoder speed: 1..=10.
#[derive(Deserialize, Clone, Copy)]
#[serde(try_from = "i64")]
struct Speed(u8);

impl TryFrom<i64> for Speed {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        in_range(v, "speed", 1..=10).map(Speed)
    }
}

/// `v` if it is in `range`, else an error naming the setting `what`.
fn in_range(v: i64, what: &str, range: std::ops::RangeInclusive<u8>) -> Result<u8, String> {
    match u8::try_from(v) {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(format!("{what} must be {}..={}, got {v}", range.start(), range.end())),
    }
}

/// A number in 0..=1.
#[derive(Deserialize, Clone, Copy)]
#[serde(try_from = "f64")]
struct Fraction(f32);

impl TryFrom<f64> for Fraction {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if (0.0..=1.0).contains(&v) { Ok(Fraction(v as f32)) } else { Err(format!("must be between 0 and 1, got {v}")) }
    }
}

impl RawPreset {
    fn into_preset(self, name: Name) -> Result<Preset, String> {
        let watermark =
            self.watermark.map(RawWatermark::into_watermark).transpose().map_err(|e| format!("watermark.{e}"))?;
        if self.renditions.is_empty() {
            return Err("renditions: a preset needs at least one rendition".into());
        }
        let mut renditions: Vec<Rendition> = Vec::with_capacity(self.renditions.len());
        for (i, raw) in self.renditions.into_iter().enumerate() {
            let at = |e: String| format!("renditions[{i}].{e}");
            let rendition = raw.into_rendition().map_err(at)?;
            if rendition.watermark && watermark.is_none() {
                return Err(at("watermark: set to true but the preset has no watermark table".into()));
            }
            if renditions.iter().any(|r| r.name == rendition.name) {
                return Err(at(format!("name: {:?} is used twice", rendition.name)));
            }
            renditions.push(rendition);
        }
        let mut keep_metadata = self.keep_metadata;
        keep_metadata.sort_unstable();
        keep_metadata.dedup();
        Ok(Preset {
            name: name.0,
            renditions,
            watermark,
            background: self.background.unwrap_or(Rgb::WHITE),
            keep_metadata,
        })
    }
}

impl RawRendition {
    fn into_rendition(self) -> Result<Rendition, String> {
        let name = Name::parse(&self.name).map_err(|e| format!("name: {e}"))?;
        let (width, height) = (self.width.map(|s| s.0), self.height.map(|s| s.0));
        let fit = match (self.fit, width, height) {
            (FitMode::Inside, None, None) => {
                return Err("width: `inside` needs a width, a height, or both".into());
            }
            (FitMode::Inside, width, height) => Fit::Inside { width, height, upscale: self.upscale },
            (FitMode::Cover | FitMode::Exact, None, _) => return Err("width: `cover` and `exact` need a width".into()),
            (FitMode::Cover | FitMode::Exact, _, None) => {
                return Err("height: `cover` and `exact` need a height".into());
            }
            (FitMode::Cover, Some(width), Some(height)) => {
                Fit::Cover { width, height, gravity: self.gravity.unwrap_or_default() }
            }
            (FitMode::Exact, Some(width), Some(height)) => Fit::Exact { width, height },
        };
        if self.upscale && !matches!(fit, Fit::Inside { .. }) {
            return Err("upscale: only applies to `inside` (cover and exact always fill the box)".into());
        }
        if self.gravity.is_some() && !matches!(fit, Fit::Cover { .. }) {
            return Err("gravity: only applies to `cover` (the other fits crop nothing)".into());
        }
        if self.speed.is_some() && self.format != OutputFormat::Avif {
            return Err("speed: only applies to `avif` (the AV1 encoder's effort)".into());
        }
        if self.animated && !self.format.can_animate() {
            return Err("animated: only `webp` and `gif` renditions can be animated".into());
        }
        let default_quality = match self.format {
            OutputFormat::Webp => 80,
            OutputFormat::Avif => DEFAULT_AVIF_QUALITY,
            OutputFormat::Jpeg | OutputFormat::Png | OutputFormat::Gif => 82,
        };
        Ok(Rendition {
            name: name.0,
            fit,
            format: self.format,
            quality: self.quality.map_or(default_quality, |q| q.0),
            speed: self.speed.map_or(DEFAULT_AVIF_SPEED, |s| s.0),
            watermark: self.watermark,
            animated: self.animated,
        })
    }
}

impl RawWatermark {
    fn into_watermark(self) -> Result<Watermark, String> {
        let mark = match (self.text, self.image) {
            (Some(_), Some(_)) => return Err("image: give `text` or `image`, not both".into()),
            (None, None) => return Err("text: a watermark needs `text` or `image`".into()),
            (Some(text), None) if text.trim().is_empty() || text.chars().count() > 200 => {
                return Err("text: must be 1-200 characters".into());
            }
            (Some(text), None) => Mark::Text { text, color: self.color.unwrap_or(Rgb::WHITE) },
            (None, Some(_)) if self.color.is_some() => return Err("color: only applies to text watermarks".into()),
            (None, Some(path)) => Mark::Logo { path },
        };
        if self.scale.0 <= 0.0 {
            return Err("scale: must be above 0".into());
        }
        if self.margin.0 > 0.5 {
            return Err("margin: must be at most 0.5".into());
        }
        Ok(Watermark {
            mark,
            position: self.position,
            margin: self.margin.0,
            opacity: self.opacity.0,
            scale: self.scale.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(toml: &str) -> String {
        PresetCatalog::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn builtin_default_matches_the_design() {
        let catalog = PresetCatalog::builtin();
        let preset = catalog.get(DEFAULT_PRESET).unwrap();
        let summary: Vec<_> =
            preset.renditions.iter().map(|r| (r.name.as_str(), r.fit, r.format, r.watermark)).collect();
        assert_eq!(
            summary,
            [
                ("thumb", Fit::Cover { width: 256, height: 256, gravity: Gravity::Center }, OutputFormat::Webp, false),
                ("medium", Fit::Inside { width: Some(1024), height: None, upscale: false }, OutputFormat::Jpeg, true),
                ("large", Fit::Inside { width: Some(2048), height: None, upscale: false }, OutputFormat::Jpeg, true),
            ]
        );
        let watermark = preset.watermark.as_ref().unwrap();
        assert_eq!(watermark.position, Anchor::BottomRight);
        assert!(matches!(&watermark.mark, Mark::Text { text, .. } if text == "© imgpipe"));
    }

    #[test]
    fn a_file_adds_presets_and_keeps_the_builtin_default() {
        let catalog = PresetCatalog::from_toml(
            r##"
            [presets.avatar]
            background = "#000000"
            renditions = [{ name = "small", width = 64, height = 64, fit = "cover", format = "png" }]
            "##,
        )
        .unwrap();
        assert!(catalog.get("default").is_some());
        let avatar = catalog.get("avatar").unwrap();
        assert_eq!(avatar.background, Rgb([0, 0, 0]));
        assert_eq!(avatar.renditions[0].format, OutputFormat::Png);
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let err =
            error_of("[presets.a]\nrenditions = [\n  { name = \"x\", width = 10, format = \"png\", qualty = 3 },\n]\n");
        assert!(err.contains("qualty"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_named_with_their_line() {
        let err = error_of(
            "[presets.a]\nrenditions = [\n  { name = \"x\", width = 10, format = \"jpeg\", quality = 0 },\n]\n",
        );
        assert!(err.contains("quality must be 1..=100, got 0"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let err = error_of(
            "[presets.a]\nwatermark = { text = \"x\", opacity = 1.5 }\nrenditions = [{ name = \"x\", width = 10, format = \"png\" }]\n",
        );
        assert!(err.contains("between 0 and 1, got 1.5") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn inconsistent_renditions_name_the_field() {
        let cases = [
            ("{ name = \"x\", format = \"png\" }", "renditions[0].width"),
            ("{ name = \"x\", width = 5, fit = \"cover\", format = \"png\" }", "renditions[0].height"),
            ("{ name = \"Bad Name\", width = 5, format = \"png\" }", "renditions[0].name"),
            ("{ name = \"x\", width = 5, format = \"png\", watermark = true }", "renditions[0].watermark"),
            ("{ name = \"x\", width = 5, format = \"bmp\" }", "format"),
            ("{ name = \"x\", width = 5, format = \"png\", animated = true }", "renditions[0].animated"),
            ("{ name = \"x\", width = 5, height = 5, fit = \"exact\", format = \"png\", upscale = true }", "upscale"),
            ("{ name = \"x\", width = 5, format = \"png\", gravity = \"entropy\" }", "gravity"),
            ("{ name = \"x\", width = 5, height = 5, fit = \"cover\", format = \"png\", gravity = \"face\" }", "face"),
            (
                "{ name = \"x\", width = 5, format = \"webp\", speed = 4 }",
                "renditions[0].speed: only applies to `avif`",
            ),
            ("{ name = \"x\", width = 5, format = \"avif\", speed = 11 }", "speed must be 1..=10, got 11"),
        ];
        for (rendition, field) in cases {
            let err = error_of(&format!("[presets.p]\nrenditions = [{rendition}]\n"));
            assert!(err.contains(field), "{rendition}: {err}");
        }
        let err = error_of(
            "[presets.p]\nrenditions = [{ name = \"a\", width = 5, format = \"png\" }, { name = \"a\", width = 6, format = \"png\" }]",
        );
        assert!(err.contains("presets.p.renditions[1].name") && err.contains("used twice"), "{err}");
    }

    #[test]
    fn watermarks_need_exactly_one_mark() {
        let both = error_of(
            "[presets.p]\nwatermark = { text = \"a\", image = \"b.png\" }\nrenditions = [{ name = \"a\", width = 5, format = \"png\" }]",
        );
        assert!(both.contains("presets.p.watermark.image"), "{both}");
        let none = error_of(
            "[presets.p]\nwatermark = { opacity = 0.3 }\nrenditions = [{ name = \"a\", width = 5, format = \"png\" }]",
        );
        assert!(none.contains("presets.p.watermark.text"), "{none}");
        let bad_anchor = error_of(
            "[presets.p]\nwatermark = { text = \"a\", position = \"middle\" }\nrenditions = [{ name = \"a\", width = 5, format = \"png\" }]",
        );
        assert!(bad_anchor.contains("middle") && bad_anchor.contains("line 2"), "{bad_anchor}");
    }

    #[test]
    fn avif_takes_a_speed_and_has_its_own_defaults() {
        let catalog = PresetCatalog::from_toml(
            "[presets.p]\nrenditions = [{ name = \"a\", width = 5, format = \"avif\" }, { name = \"b\", width = 5, format = \"avif\", quality = 70, speed = 9 }]",
        )
        .unwrap();
        let renditions = &catalog.get("p").unwrap().renditions;
        let settings: Vec<_> = renditions.iter().map(|r| (r.format, r.quality, r.speed)).collect();
        assert_eq!(
            settings,
            [(OutputFormat::Avif, DEFAULT_AVIF_QUALITY, DEFAULT_AVIF_SPEED), (OutputFormat::Avif, 70, 9)]
        );
    }

    #[test]
    fn cover_takes_a_gravity() {
        let catalog = PresetCatalog::from_toml(
            "[presets.p]\nrenditions = [{ name = \"a\", width = 5, height = 5, fit = \"cover\", format = \"png\", gravity = \"attention\" }]",
        )
        .unwrap();
        let fit = catalog.get("p").unwrap().renditions[0].fit;
        assert_eq!(fit, Fit::Cover { width: 5, height: 5, gravity: Gravity::Attention });
    }

    #[test]
    fn presets_keep_named_metadata_and_refuse_unknown_fields() {
        let catalog = PresetCatalog::from_toml(
            "[presets.p]\nkeep_metadata = [\"gps\", \"copyright\", \"gps\"]\nrenditions = [{ name = \"a\", width = 5, format = \"png\" }]",
        )
        .unwrap();
        assert_eq!(catalog.get("p").unwrap().keep_metadata, [MetadataField::Copyright, MetadataField::Gps]);
        assert!(catalog.get("default").unwrap().keep_metadata.is_empty());
        let err = error_of(
            "[presets.p]\nkeep_metadata = [\"orientation\"]\nrenditions = [{ name = \"a\", width = 5, format = \"png\" }]",
        );
        assert!(err.contains("orientation") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn colours_parse_from_hex() {
        assert_eq!(Rgb::parse("#0a0B0c"), Ok(Rgb([10, 11, 12])));
        for bad in ["0a0b0c", "#0a0b0", "#zzzzzz", "#ééé"] {
            assert!(Rgb::parse(bad).is_err(), "{bad}");
        }
    }
}
