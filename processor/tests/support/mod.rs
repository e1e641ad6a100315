//! Shared by the integration tests: where the shared images are, and small image helpers.

#![allow(dead_code)]

use image::DynamicImage;
use imgpipe_core::PresetCatalog;
use processor::Recipe;
use std::path::PathBuf;

/// A directory of `../shared`, from `var` or (outside CI) the checkout's sibling `shared/`.
/// Under CI a missing variable is a failure, never a skip.
pub fn shared_dir(var: &str, sub: &str) -> PathBuf {
    let dir = match std::env::var_os(var) {
        Some(dir) => PathBuf::from(dir),
        None if std::env::var_os("CI").is_some() => panic!("{var} is not set: CI must point it at ../shared/{sub}"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared").join(sub),
    };
    assert!(dir.is_dir(), "{} is not a directory (set {var} to the shared {sub} folder)", dir.display());
    dir
}

/// The reference corpus of odd and broken files.
pub fn corpus() -> PathBuf {
    shared_dir("IMGPIPE_CORPUS", "corpus")
}

/// The reference photos.
pub fn fixtures() -> PathBuf {
    shared_dir("IMGPIPE_FIXTURES", "fixtures")
}

/// Reads one fixture.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

/// A recipe from TOML presets (plus the built-in default).
pub fn recipe(toml: &str, name: &str) -> Recipe {
    let catalog = PresetCatalog::from_toml(toml).unwrap();
    Recipe::text_only(catalog.get(name).unwrap().clone()).unwrap()
}

/// The built-in `default` recipe.
pub fn default_recipe() -> Recipe {
    Recipe::text_only(PresetCatalog::builtin().get("default").unwrap().clone()).unwrap()
}

/// What an AVIF file holds, from its container and AV1 sequence headers (nothing here decodes
/// AV1): width, height, bit depth, whether it has an alpha item.
pub fn avif_info(bytes: &[u8]) -> (u32, u32, u8, bool) {
    let avif = avif_parse::read_avif(&mut std::io::Cursor::new(bytes)).expect("a valid AVIF container");
    let colour = avif.primary_item_metadata().expect("an AV1 sequence header");
    assert!(colour.still_picture, "an AVIF still image");
    if let Some(alpha) = avif.alpha_item_metadata().expect("a valid alpha item") {
        assert_eq!((alpha.max_frame_width, alpha.max_frame_height), (colour.max_frame_width, colour.max_frame_height));
    }
    (colour.max_frame_width.get(), colour.max_frame_height.get(), colour.bit_depth, avif.alpha_item.is_some())
}

/// A rendition's width and height: decoded by the `image` crate, or read from AVIF's headers.
pub fn rendition_size(bytes: &[u8]) -> (u32, u32) {
    if bytes.get(4..12) == Some(b"ftypavif") {
        let (width, height, ..) = avif_info(bytes);
        return (width, height);
    }
    let decoded = image::load_from_memory(bytes).unwrap();
    (decoded.width(), decoded.height())
}

/// Encodes `image` in `format` with the `image` crate (for generated test inputs).
pub fn encode_with_image(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A deterministic noisy photo-like image (noise defeats compression, so cuts land in pixel data).
pub fn noisy(width: u32, height: u32) -> DynamicImage {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (state & 0x3F) as u8;
        image::Rgb([(x % 256) as u8 / 2 + n, (y % 256) as u8 / 2 + n, 128u8.wrapping_add(n)])
    }))
}

/// The CRC-32 of PNG chunks (and zlib, gzip).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A small deterministic xorshift generator for reproducible damage.
pub struct Xorshift(u64);

impl Xorshift {
    /// A generator for `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
