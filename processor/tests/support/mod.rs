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

/// Encodes `image` in `format` with the `image` crate (for generated test inputs).
pub fn encode_with_image(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}
