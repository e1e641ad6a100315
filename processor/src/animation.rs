//! Animated renditions: for a preset with `animated = true` renditions and an animated GIF, WebP
//! or PNG within the frame and pixel budgets, every frame is decoded once, in turn, and resized
//! for each animated rendition; the other renditions are made from the first frame, as for any
//! still image.

use crate::decode::{self, Decoded, Frame};
use crate::finish::Pixels;
use crate::geometry::{Size, Target};
use crate::plan::{Plan, Step};
use crate::probe::Header;
use crate::{Recipe, Resized, gravity, resize};
use image::DynamicImage;
use image::metadata::Orientation;
use imgpipe_core::preset::Gravity;
use imgpipe_core::{ImageError, Limits};
use rayon::prelude::*;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

/// Whether `header` declares an animation that `recipe` keeps and `limits` allow: more than one
/// frame, some rendition `animated`, and frames × width × height within
/// [`Limits::max_animation_pixels`]. Otherwise the image is made as a still, from its first frame.
pub fn applies(header: &Header, recipe: &Recipe, limits: &Limits) -> bool {
    let pixels = u64::from(header.frames) * u64::from(header.width) * u64::from(header.height);
    header.frames > 1 && pixels <= limits.max_animation_pixels && recipe.preset().renditions.iter().any(|r| r.animated)
}

/// Decodes every frame and resizes it for each animated rendition; the still renditions and the
/// placeholder come from the first frame.
///
/// A frame that does not decode ends the animation there, with the frames before it (as
/// browsers play it); only a first frame that does not decode fails the image.
pub(crate) fn resize_all(
    bytes: &[u8],
    header: &Header,
    recipe: &Recipe,
    limits: &Limits,
) -> Result<Resized, ImageError> {
    let started = Instant::now();
    let renditions = &recipe.preset().renditions;
    let (mut frames, orientation) = decode::frames(bytes, header, limits)?;
    let mut next = move || {
        catch_unwind(AssertUnwindSafe(|| frames.next()))
            .unwrap_or_else(|_| Some(Err(ImageError::corrupt("the decoder failed on malformed data"))))
    };
    let (first, delay) = next().ok_or_else(|| ImageError::corrupt("the animation has no frame"))??;
    let mut decode_time = started.elapsed();

    let started = Instant::now();
    let size = (first.width(), first.height());
    let plan = Plan::new(renditions, size, orientation);
    let mut tracks: Vec<Track> = plan
        .steps()
        .iter()
        .filter(|step| renditions[step.index].animated)
        .map(|step| Track::new(&first, delay, step, orientation))
        .collect::<Result<_, _>>()?;
    let (stills, placeholder) = resize::resize_all(Decoded { image: first, orientation, size }, &plan)?;
    let mut resize_time = started.elapsed();

    loop {
        let started = Instant::now();
        let Some(Ok((image, delay))) = next() else { break };
        decode_time += started.elapsed();
        let started = Instant::now();
        tracks.par_iter_mut().try_for_each(|track| track.push(&image, delay))?;
        resize_time += started.elapsed();
    }

    let upright = stills
        .into_iter()
        .enumerate()
        .map(|(index, still)| match tracks.iter().position(|track| track.index == index) {
            Some(at) => Pixels::Animation(tracks.swap_remove(at).frames),
            None => Pixels::Still(still),
        })
        .collect();
    Ok(Resized { upright, placeholder, size, orientation, decode: decode_time, resize: resize_time })
}

/// One animated rendition's frames, made so far, upright. Its crop window is fixed by the first
/// frame, so that a smart crop does not wander from frame to frame.
struct Track {
    index: usize,
    target: Target,
    window: Option<Size>,
    orientation: Orientation,
    frames: Vec<Frame>,
}

impl Track {
    fn new(first: &DynamicImage, delay: u32, step: &Step, orientation: Orientation) -> Result<Self, ImageError> {
        let target = step.target;
        let window = match target.crop {
            Some(smart) if smart != Gravity::Center => {
                Some(gravity::window(&resize::resize(first, target.full, false)?, target.out, smart))
            }
            _ => None,
        };
        let mut track = Track { index: step.index, target, window, orientation, frames: Vec::new() };
        track.push(first, delay)?;
        Ok(track)
    }

    fn push(&mut self, image: &DynamicImage, delay: u32) -> Result<(), ImageError> {
        let (target, out) = (&self.target, self.target.out);
        let mut frame = match self.window {
            Some((left, top)) => resize::resize(image, target.full, false)?.crop_imm(left, top, out.0, out.1),
            None => resize::resize_to(image, target)?,
        };
        frame.apply_orientation(self.orientation);
        self.frames.push((frame, delay));
        Ok(())
    }
}
