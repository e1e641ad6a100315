//! Presets made ready to run: a logo is read and decoded once, and watermark overlays are cached
//! across every image the recipe processes.

use crate::watermark::Stamp;
use imgpipe_core::preset::{Mark, Preset};

/// A preset made ready to run: its watermark's logo decoded, its overlays cached across images.
pub struct Recipe {
    preset: Preset,
    stamp: Option<Stamp>,
}

/// A recipe that could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The logo file could not be read.
    #[error("cannot read watermark logo {path:?}: {source}")]
    ReadLogo {
        /// The path from the preset.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The logo is not a PNG we can decode.
    #[error("watermark logo {path:?} is not a readable PNG: {source}")]
    DecodeLogo {
        /// The path from the preset.
        path: String,
        /// Why.
        #[source]
        source: image::ImageError,
    },
}

impl Recipe {
    /// Prepares `preset`; `read` fetches a logo's bytes by the path the preset gives.
    pub fn new(preset: Preset, read: impl FnOnce(&str) -> std::io::Result<Vec<u8>>) -> Result<Self, RecipeError> {
        let stamp = match &preset.watermark {
            None => None,
            Some(spec) => {
                let logo = match &spec.mark {
                    Mark::Text { .. } => None,
                    Mark::Logo { path } => {
                        let bytes =
                            read(path).map_err(|source| RecipeError::ReadLogo { path: path.clone(), source })?;
                        let logo = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
                            .map_err(|source| RecipeError::DecodeLogo { path: path.clone(), source })?;
                        Some(logo.into_rgba8())
                    }
                };
                Some(Stamp::new(spec.clone(), logo))
            }
        };
        Ok(Self { preset, stamp })
    }

    /// A recipe for a preset whose watermark, if any, is text (needs no file).
    pub fn text_only(preset: Preset) -> Result<Self, RecipeError> {
        Self::new(preset, |path| {
            Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("no file access for {path}")))
        })
    }

    /// The preset this recipe runs.
    pub fn preset(&self) -> &Preset {
        &self.preset
    }

    /// The preset's watermark, ready to apply, if it has one.
    pub(crate) fn stamp(&self) -> Option<&Stamp> {
        self.stamp.as_ref()
    }
}
