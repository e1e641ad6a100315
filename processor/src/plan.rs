//! What to make of one image before touching its pixels: each rendition's target in stored
//! orientation, and the order to resize them in so that large renditions feed small ones.

use crate::geometry::{Size, Target, swaps_axes};
use image::metadata::Orientation;
use imgpipe_core::preset::{Fit, Rendition};
use std::cmp::Reverse;

/// One rendition's resize, as planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The rendition's index in its preset.
    pub index: usize,
    /// What it needs from the image, in stored orientation.
    pub target: Target,
    /// Whether the result is the whole image, neither cropped nor distorted (`inside`), so that
    /// smaller renditions may be resized from it instead of from the decoded image.
    pub feeds: bool,
}

/// Every rendition's step, largest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    steps: Vec<Step>,
}

impl Plan {
    /// Plans `renditions` for an image of `size` as stored, which `orientation` turns upright.
    ///
    /// Boxes in a preset are upright; the pixels are resized as stored and turned afterwards, so
    /// for orientations that swap the axes each target is computed upright and transposed.
    pub fn new(renditions: &[Rendition], size: Size, orientation: Orientation) -> Self {
        let swap = swaps_axes(orientation);
        let (width, height) = if swap { (size.1, size.0) } else { size };
        let mut steps: Vec<Step> = renditions
            .iter()
            .enumerate()
            .map(|(index, rendition)| {
                let upright = Target::new(rendition.fit, width, height);
                let target = if swap { upright.transposed() } else { upright };
                Step { index, target, feeds: matches!(rendition.fit, Fit::Inside { .. }) }
            })
            .collect();
        // Stable: renditions of equal size keep their preset order.
        steps.sort_by_key(|step| Reverse(area(step.target.full)));
        Self { steps }
    }

    /// The steps, largest first: every step's sources are made before it.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The smallest size that covers every target on both axes: what shrink-on-load must keep.
    pub fn need(&self) -> Size {
        self.steps.iter().fold((1, 1), |acc, step| (acc.0.max(step.target.full.0), acc.1.max(step.target.full.1)))
    }
}

fn area((width, height): Size) -> u64 {
    u64::from(width) * u64::from(height)
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgpipe_core::OutputFormat;
    use imgpipe_core::preset::Gravity;

    fn rendition(name: &str, fit: Fit) -> Rendition {
        Rendition {
            name: name.into(),
            fit,
            format: OutputFormat::Jpeg,
            quality: 80,
            speed: 6,
            watermark: false,
            animated: false,
        }
    }

    fn default_like() -> Vec<Rendition> {
        vec![
            rendition("thumb", Fit::Cover { width: 256, height: 256, gravity: Gravity::Center }),
            rendition("medium", Fit::Inside { width: Some(1024), height: None, upscale: false }),
            rendition("large", Fit::Inside { width: Some(2048), height: None, upscale: false }),
        ]
    }

    #[test]
    fn steps_run_largest_first_and_only_inside_fits_feed() {
        let plan = Plan::new(&default_like(), (2725, 2225), Orientation::NoTransforms);
        let order: Vec<(usize, bool)> = plan.steps().iter().map(|s| (s.index, s.feeds)).collect();
        assert_eq!(order, [(2, true), (1, true), (0, false)]);
        assert_eq!(plan.need(), (2048, 1672));
    }

    #[test]
    fn orientations_that_swap_axes_transpose_the_targets() {
        // Stored 2225×2725 (landscape on its side): the upright boxes apply to 2725×2225.
        let plan = Plan::new(&default_like(), (2225, 2725), Orientation::Rotate90);
        let large = plan.steps()[0];
        assert_eq!((large.index, large.target.out), (2, (1672, 2048)));
        assert_eq!(plan.need(), (1672, 2048));
    }
}
