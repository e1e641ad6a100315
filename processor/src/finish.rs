//! The kernel's last stage: each upright rendition flattened onto the preset's background when
//! its format has no alpha, watermarked when its preset says so, and encoded; in parallel.

use crate::{Encoded, Recipe, encode};
use image::DynamicImage;
use imgpipe_core::ImageError;
use rayon::prelude::*;
use std::time::{Duration, Instant};

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
pub fn finish_all(upright: Vec<DynamicImage>, recipe: &Recipe, exif: Option<&[u8]>) -> Result<Finished, ImageError> {
    let finished: Vec<(Encoded, Duration, Duration)> = upright
        .into_par_iter()
        .zip(recipe.preset().renditions.par_iter())
        .map(|(image, rendition)| {
            let started = Instant::now();
            let mut image =
                if rendition.format.has_alpha() { image } else { encode::flatten(image, recipe.preset().background.0) };
            if let (true, Some(stamp)) = (rendition.watermark, recipe.stamp()) {
                stamp.apply(&mut image);
            }
            let watermarked = started.elapsed();
            let bytes = encode::rendition(&image, rendition, exif)?;
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
    Ok(Finished {
        watermark: finished.iter().map(|f| f.1).sum(),
        encode: finished.iter().map(|f| f.2).sum(),
        renditions: finished.into_iter().map(|f| f.0).collect(),
    })
}
