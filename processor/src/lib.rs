//! imgpipe's image kernel: `bytes + recipe + limits -> renditions + facts`, pure and synchronous.
//!
//! - [`probe`]: sniff the format and read the headers; every size limit is checked here, before
//!   a pixel is allocated.
//! - [`decode`]: libjpeg-turbo with DCT shrink-on-load for JPEG, the `image` crate for the rest;
//!   [`colour`]: embedded ICC profiles (RGB and CMYK) converted to sRGB before anything else.
//! - [`geometry`]: output sizes per fit mode, shrink factors, which intermediate feeds which output.
//! - [`resize`]: SIMD Lanczos3 with one reusable `Resizer` per thread; [`gravity`]: where a
//!   `cover` crop sits (centre, entropy, attention); [`placeholder`]: ThumbHash and dominant colour.
//! - [`watermark`]: cached text or logo overlays, blended over the covered pixels only.
//! - [`encode`]: JPEG (libjpeg-turbo), WebP (libwebp), PNG, AVIF (rav1e), GIF; no metadata is
//!   written, but for the EXIF fields a preset keeps ([`metadata`]).
//! - [`animation`]: animated GIF, WebP and PNG kept animated, frame by frame, for renditions that
//!   ask for it.
//!
//! [`process`] runs them in three stages: a plan (`plan`: each rendition's target, largest
//! first), one decode, then `resize::resize_all` (every rendition from the smallest
//! already-made intermediate that covers it, then turned upright) and `finish` (flattened,
//! watermarked and encoded in parallel on the rayon pool). A [`Recipe`] is a preset made ready
//! to run. No I/O and no async: callers bring bytes and take bytes.
//!
//! Around the kernel, and the only async code here:
//! - [`chunk`]: the chunk service (fetch originals, run the kernel on rayon, store renditions,
//!   write final records in batches), shared by the local runner and the processor Lambda.
//! - [`lambda`] (feature `lambda`): the processor Lambda's handler and its error types.
//! - [`workflow`]: the local workflow runner, with the state machine's Map concurrency and
//!   Retry/Catch policy.

#![warn(missing_docs)]

pub mod animation;
pub mod chunk;
pub mod colour;
pub mod decode;
pub mod encode;
mod finish;
pub mod geometry;
pub mod gravity;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod metadata;
pub mod placeholder;
mod plan;
mod planar;
pub mod probe;
mod recipe;
pub mod resize;
pub mod watermark;
pub mod workflow;

pub use recipe::{Recipe, RecipeError};

use finish::Pixels;
use geometry::swaps_axes;
use image::metadata::Orientation;
use imgpipe_core::record::Placeholder;
use imgpipe_core::{ImageError, InputFormat, Limits, OutputFormat};
use plan::Plan;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

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
    /// A ThumbHash and the dominant colour.
    pub placeholder: Placeholder,
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
    let renditions = &recipe.preset().renditions;
    let header = probe::probe(bytes, limits)?;
    if animation::applies(&header, recipe, limits) {
        let resized = animation::resize_all(bytes, &header, recipe, limits)?;
        return finish(bytes, &header, recipe, resized);
    }
    if planar::applies(&header, recipe)
        && let Some(output) = planar::process(bytes, &header, recipe, limits)?
    {
        return Ok(output);
    }
    // Only JPEG shrinks on load, and a JPEG's headers give its size and orientation: that is
    // the one image whose plan is known before decoding. The rest are planned after.
    let need =
        header.jpeg.as_ref().zip(header.size()).map(|(jpeg, size)| {
            Plan::new(renditions, size, jpeg.orientation.unwrap_or(Orientation::NoTransforms)).need()
        });
    let decoded = catch_unwind(AssertUnwindSafe(|| decode::decode(bytes, &header, limits, need)))
        .unwrap_or_else(|_| Err(ImageError::corrupt("the decoder failed on malformed data")))?;
    let decode_time = started.elapsed();

    let started = Instant::now();
    // The original's size drives the targets; the decoded (maybe shrunk) image only feeds them.
    let (size, orientation) = (decoded.size, decoded.orientation);
    let plan = Plan::new(renditions, size, orientation);
    let (upright, placeholder) = resize::resize_all(decoded, &plan)?;
    let resized = Resized {
        upright: upright.into_iter().map(Pixels::Still).collect(),
        placeholder,
        size,
        orientation,
        decode: decode_time,
        resize: started.elapsed(),
    };
    finish(bytes, &header, recipe, resized)
}

/// What the resize stage hands on: every rendition's upright pixels, in preset order, and what
/// decoding and resizing learnt and took.
pub(crate) struct Resized {
    upright: Vec<Pixels>,
    placeholder: Placeholder,
    /// The original's size, as stored.
    size: geometry::Size,
    orientation: Orientation,
    decode: Duration,
    resize: Duration,
}

/// Finishes and encodes every rendition, and reports the facts.
fn finish(bytes: &[u8], header: &probe::Header, recipe: &Recipe, resized: Resized) -> Result<Output, ImageError> {
    let exif = metadata::kept(bytes, &recipe.preset().keep_metadata);
    let finished = finish::finish_all(resized.upright, recipe, exif.as_deref())?;
    let (size, orientation) = (resized.size, resized.orientation);
    let (width, height) = if swaps_axes(orientation) { (size.1, size.0) } else { size };
    Ok(Output {
        facts: Facts {
            format: header.format,
            width,
            height,
            orientation: orientation.to_exif(),
            placeholder: resized.placeholder,
            timings: Timings {
                decode: resized.decode,
                resize: resized.resize,
                watermark: finished.watermark,
                encode: finished.encode,
            },
        },
        renditions: finished.renditions,
    })
}
