//! The kernel's last stage: each upright rendition flattened onto the preset's background when
//! its format has no alpha, watermarked when its preset says so, and encoded; in parallel.

use crate::decode::Frame;
use crate::{Encoded, Recipe, encode};
use image::DynamicImage;
use imgpipe_core::ImageError;
use rayon::prelude::*;
use std::time::{Duration, Instant};

/// A rendition's upright pixels: one image, or the frames of an animation it keeps.
pub enum Pixels {
    /// A still image.
    Still(DynamicImage),
    /// Every frame, in order, with its delay.
    Animation(Vec<Frame>),
}

/// Every rendition encoded, and the CPU time the stage took, summed over renditions.
pub struct Finished {
    /// One per preset rendition, in preset order.
    pub renditions: Vec<Encoded>,
    /// Flattening and watermarking.
    pub watermark: Duration,
    /// Encoding.
    pub encode: Duration,
}

/// Finishes the renditions of `recipe` from their `upright` pixels, given in preset order, with
/// `exif` (the metadata the preset keeps, if any) embedded in each.
pub fn finish_all(upright: Vec<Pixels>, recipe: &Recipe, exif: Option<&[u8]>) -> Result<Finished, ImageError> {
    let preset = recipe.preset();
    let finished: Vec<(Encoded, Duration, Duration)> = upright
        .into_par_iter()
        .zip(preset.renditions.par_iter())
        .map(|(pixels, rendition)| {
            let started = Instant::now();
            // Flattened when the format has no alpha, then watermarked: every frame alike.
            let finish = |image: DynamicImage| {
                let mut image =
                    if rendition.format.has_alpha() { image } else { encode::flatten(image, preset.background.0) };
                if let (true, Some(stamp)) = (rendition.watermark, recipe.stamp()) {
                    stamp.apply(&mut image);
                }
                image
            };
            let pixels = match pixels {
                Pixels::Still(image) => Pixels::Still(finish(image)),
                Pixels::Animation(frames) => {
                    Pixels::Animation(frames.into_iter().map(|(image, delay)| (finish(image), delay)).collect())
                }
            };
            let watermarked = started.elapsed();
            let (bytes, (width, height)) = match &pixels {
                Pixels::Still(image) => (encode::rendition(image, rendition, exif)?, (image.width(), image.height())),
                Pixels::Animation(frames) => {
                    let size = frames.first().map_or((0, 0), |(image, _)| (image.width(), image.height()));
                    (encode::animation(frames, rendition)?, size)
                }
            };
            let encoded = Encoded { name: rendition.name.clone(), format: rendition.format, width, height, bytes };
            Ok((encoded, watermarked, started.elapsed() - watermarked))
        })
        .collect::<Result<_, ImageError>>()?;
    Ok(Finished {
        watermark: finished.iter().map(|f| f.1).sum(),
        encode: finished.iter().map(|f| f.2).sum(),
        renditions: finished.into_iter().map(|f| f.0).collect(),
    })
}
