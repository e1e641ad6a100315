//! imgpipe's image kernel: `bytes + recipe + limits -> renditions + facts`, pure and synchronous.
//!
//! - [`probe`]: sniff the format and read the headers; every size limit is checked here, before
//!   a pixel is allocated.
//! - [`decode`]: libjpeg-turbo with DCT shrink-on-load for JPEG, the `image` crate for the rest.
//! - [`geometry`]: output sizes per fit mode, shrink factors, which intermediate feeds which output.
//! - [`resize`]: SIMD Lanczos3 with one reusable `Resizer` per thread.
//! - [`watermark`]: cached text or logo overlays, blended over the covered pixels only.
//! - [`encode`]: JPEG (libjpeg-turbo), WebP (libwebp), PNG; no metadata is written.
//!
//! [`process`] runs them: one decode per image, renditions resized largest first, each from the
//! smallest already-made intermediate that covers it, then oriented, watermarked and encoded in
//! parallel on the rayon pool. No I/O and no async: callers bring bytes and take bytes.
//!
//! Around the kernel, and the only async code here:
//! - [`chunk`]: the chunk service (fetch originals, run the kernel on rayon, store renditions,
//!   write final records in batches), shared by the local runner and the processor Lambda.
//! - [`lambda`] (feature `lambda`): the processor Lambda's handler and its error types.
//! - [`workflow`]: the local workflow runner, with the state machine's Map concurrency and
//!   Retry/Catch policy.

pub mod chunk;
pub mod decode;
pub mod encode;
pub mod geometry;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod probe;
pub mod resize;
pub mod watermark;
pub mod workflow;

use geometry::{Size, Target, pick_source, swaps_axes};
use image::DynamicImage;
use image::metadata::Orientation;
use imgpipe_core::preset::{Mark, Preset};
use imgpipe_core::{ImageError, InputFormat, Limits, OutputFormat};
use rayon::prelude::*;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};
use watermark::Stamp;

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
}

/// What processing one image produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// What the original turned out to be.
    pub facts: Facts,
    /// One encoded rendition per preset rendition, in preset order.
    pub renditions: Vec<Encoded>,
}

/// What the kernel learnt about the original.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// Sniffed format.
    pub format: InputFormat,
    /// Upright width (after EXIF orientation).
    pub width: u32,
    /// Upright height (after EXIF orientation).
    pub height: u32,
    /// EXIF orientation, 1..=8 (1 when absent).
    pub orientation: u8,
    /// How long each stage took.
    pub timings: Timings,
}

/// Time per kernel stage; watermark and encode are summed over renditions (CPU time).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Probe and decode.
    pub decode: Duration,
    /// All resizes, orientation included.
    pub resize: Duration,
    /// All watermarks (and alpha flattening).
    pub watermark: Duration,
    /// All encodes.
    pub encode: Duration,
}

/// One encoded rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The rendition's name in its preset.
    pub name: String,
    /// Its encoding.
    pub format: OutputFormat,
    /// Its width.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// The encoded file.
    pub bytes: Vec<u8>,
}

/// Processes one image: decode once, make every rendition of `recipe`, within `limits`.
///
/// Never panics on any input: a decoder panic ends as `corrupt`, any other as `internal`.
pub fn process(bytes: &[u8], recipe: &Recipe, limits: &Limits) -> Result<Output, ImageError> {
    catch_unwind(AssertUnwindSafe(|| run(bytes, recipe, limits)))
        .unwrap_or_else(|_| Err(ImageError::internal("the image kernel panicked; this is a bug in imgpipe")))
}

fn run(bytes: &[u8], recipe: &Recipe, limits: &Limits) -> Result<Output, ImageError> {
    let started = Instant::now();
    let header = probe::probe(bytes, limits)?;
    let orientation = header.jpeg.as_ref().and_then(|j| j.orientation).unwrap_or(Orientation::NoTransforms);
    let renditions = &recipe.preset.renditions;
    // Targets in stored orientation. For non-JPEG the true orientation is known after decoding;
    // shrink-on-load (the only use before then) is JPEG-only.
    let targets_for = |width: u32, height: u32, orientation: Orientation| -> Vec<Target> {
        let swap = swaps_axes(orientation);
        let (w, h) = if swap { (height, width) } else { (width, height) };
        renditions.iter().map(|r| Target::new(r.fit, w, h)).map(|t| if swap { t.transposed() } else { t }).collect()
    };
    let need = targets_for(header.width, header.height, orientation)
        .iter()
        .fold((1, 1), |acc: Size, t| (acc.0.max(t.full.0), acc.1.max(t.full.1)));
    let decoded = catch_unwind(AssertUnwindSafe(|| decode::decode(bytes, &header, limits, need)))
        .unwrap_or_else(|_| Err(ImageError::corrupt("the decoder failed on malformed data")))?;
    let timings_decode = started.elapsed();

    // Original dimensions drive the targets; the decoded (maybe shrunk) image only feeds them.
    let (orig_w, orig_h) = match header.format {
        InputFormat::Tiff => (decoded.image.width(), decoded.image.height()),
        _ => (header.width, header.height),
    };
    let orientation = decoded.orientation;
    let targets = targets_for(orig_w, orig_h, orientation);

    let started = Instant::now();
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(u64::from(targets[i].full.0) * u64::from(targets[i].full.1)));
    // Whole-image renditions (inside fit: not cropped, not distorted) feed the smaller ones.
    let decoded = decoded.image;
    let mut made: Vec<Option<DynamicImage>> = vec![None; targets.len()];
    let mut feeders: Vec<usize> = Vec::new();
    for i in order {
        let target = targets[i];
        let made_image = |j: usize| made[j].as_ref().expect("feeders are made");
        let sizes: Vec<Size> = std::iter::once(&decoded)
            .chain(feeders.iter().map(|&j| made_image(j)))
            .map(|image| (image.width(), image.height()))
            .collect();
        let source = match pick_source(&sizes, target.full) {
            0 => &decoded,
            k => made_image(feeders[k - 1]),
        };
        let resized = resize::resize(source, target.out, target.crop)?;
        if !target.crop && target.out == target.full && is_inside(&recipe.preset, i) {
            feeders.push(i);
        }
        made[i] = Some(resized);
    }
    drop(decoded);
    let oriented: Vec<DynamicImage> = made
        .into_par_iter()
        .map(|image| {
            let mut image = image.expect("every rendition was resized");
            image.apply_orientation(orientation);
            image
        })
        .collect();
    let timings_resize = started.elapsed();

    let finished: Vec<(Encoded, Duration, Duration)> = oriented
        .into_par_iter()
        .zip(renditions.par_iter())
        .map(|(image, rendition)| {
            let started = Instant::now();
            let mut image =
                if rendition.format.has_alpha() { image } else { encode::flatten(image, recipe.preset.background.0) };
            if let (true, Some(stamp)) = (rendition.watermark, &recipe.stamp) {
                stamp.apply(&mut image);
            }
            let watermarked = started.elapsed();
            let bytes = encode::encode(&image, rendition.format, rendition.quality)?;
            let encoded = Encoded {
                name: rendition.name.clone(),
                format: rendition.format,
                width: image.width(),
                height: image.height(),
                bytes,
            };
            Ok((encoded, watermarked, started.elapsed() - watermarked))
        })
        .collect::<Result<_, ImageError>>()?;

    let (upright_w, upright_h) = if swaps_axes(orientation) { (orig_h, orig_w) } else { (orig_w, orig_h) };
    let timings = Timings {
        decode: timings_decode,
        resize: timings_resize,
        watermark: finished.iter().map(|f| f.1).sum(),
        encode: finished.iter().map(|f| f.2).sum(),
    };
    Ok(Output {
        facts: Facts {
            format: header.format,
            width: upright_w,
            height: upright_h,
            orientation: orientation.to_exif(),
            timings,
        },
        renditions: finished.into_iter().map(|f| f.0).collect(),
    })
}

fn is_inside(preset: &Preset, index: usize) -> bool {
    matches!(preset.renditions[index].fit, imgpipe_core::preset::Fit::Inside { .. })
}
