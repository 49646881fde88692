//! Temporal stability: motion-compensated texture propagation for the stylized output.
//!
//! A per-frame style net flickers: a small change of the input (noise, a sub-pixel move) can
//! flip the texture the net paints. Plain frame blending removes flicker but leaves trails
//! behind moving edges, and averaging two different brush textures washes the style out (the
//! output drifts toward the content). This filter instead
//! 1. estimates dense motion between the previous and the current *input* on a grey image at
//!    most 320 px wide: block matching on a half-resolution pyramid for large motions, then
//!    dense Lucas–Kanade steps per pixel (Gaussian window) for an accurate, smooth field;
//! 2. carries the previous *output* and the input its texture was painted for (the
//!    reference) along that motion, with a cubic kernel (repeated bilinear warps blur);
//! 3. keeps the carried texture only where the carried reference still matches the current
//!    input and the forward and backward motion agree: occlusions, uncovered background, a
//!    cut or a lighting change take this frame's stylization, so moving edges leave no trail;
//! 4. *selects* rather than averages: where the match holds the carried texture is used as
//!    is, with a short ramp at the mask's edge; then the fine-detail energy is matched to this
//!    frame's stylization locally, so resampling does not slowly blur or sharpen the strokes.
//!
//! Recursive: the stored output and reference are the propagated ones. Everything runs at the
//! inference size, before the upscale. docs/stability.md has the measurements.

use crate::frame::RgbImage;

/// Default `stability` of the element and the CLI: the lowest value that cuts the warping error
/// by 30 % or more on the three reference clips (docs/stability.md).
pub const DEFAULT_STABILITY: f64 = 0.7;

mod blur;
mod detail;
mod flow;
mod grey;
mod metrics;
mod select;
#[cfg(test)]
mod tests;
mod warp;

pub use flow::{consistency_mask, estimate_flow, Flow};
pub use grey::{grey_downscaled, GreyImage};
pub use metrics::*;
pub use select::agreement_mask;
pub use warp::warp_rgb;

/// The filter's parameters, for its device port (`backend::smoothing`), which passes them to
/// the kernels rather than restating them.
pub(crate) mod params {
    pub(crate) use super::blur::{boxes_for_gauss, gaussian_taps, BOX_SIGMA};
    pub(crate) use super::detail::{DETAIL_SIGMA, ENERGY_SIGMA, MAX_DETAIL_GAIN};
    pub(crate) use super::flow::CONSISTENCY_SLACK;
    pub(crate) use super::select::{AGREE, DISAGREE};
    pub(crate) use super::FLOW_MAX_WIDTH;
}

use detail::restore_detail;
use select::propagation_weight;
use warp::{warp_many, Kernel};

/// Grey images for motion estimation are at most this wide (the inference size of a 16:9
/// frame at `scale` 0.25 of 720p): blocks are matched at half this width, vectors refined here.
pub(crate) const FLOW_MAX_WIDTH: usize = 320;

fn to_u8(dst: &mut RgbImage, src: &[f32]) {
    for (o, v) in dst.data.iter_mut().zip(src) {
        *o = v.round().clamp(0.0, 255.0) as u8;
    }
}

fn to_f32(img: &RgbImage) -> Vec<f32> {
    img.data.iter().map(|v| f32::from(*v)).collect()
}

struct Previous {
    /// The input that `output`'s texture was painted for, carried along the motion with it:
    /// propagated texture is only kept while this still matches the current input, so a
    /// slow change (a fade, a lighting change) refreshes it instead of freezing it.
    reference: RgbImage,
    grey: GreyImage,
    output: RgbImage,
}

/// How the previous output is brought to the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Motion-compensated and masked (the element's filter).
    MotionCompensated,
    /// Plain blend with the previous output, no motion, no mask: the peers' "temporal
    /// smoothing", kept as the reference that ghosting is measured against.
    Naive,
}

/// The recursive, motion-compensated output filter. One per stream; `reset` on a
/// discontinuity (seek, flush, caps change).
pub struct TemporalFilter {
    stability: f32,
    mode: Mode,
    previous: Option<Previous>,
}

impl TemporalFilter {
    /// Smooth a whole sequence of stylized frames (`outputs`) against their `inputs`.
    pub fn smooth_sequence(&mut self, inputs: &[RgbImage], outputs: &[RgbImage]) -> Vec<RgbImage> {
        inputs
            .iter()
            .zip(outputs)
            .map(|(i, o)| {
                let mut o = o.clone();
                self.apply(i, &mut o);
                o
            })
            .collect()
    }

    /// `stability` 0 (off) to 1 (previous frame only where motion is reliable); clamped.
    pub fn new(stability: f64) -> Self {
        Self {
            stability: stability.clamp(0.0, 1.0) as f32,
            mode: Mode::MotionCompensated,
            previous: None,
        }
    }

    /// Plain frame blending without motion or mask, for comparisons only.
    pub fn naive(stability: f64) -> Self {
        Self {
            mode: Mode::Naive,
            ..Self::new(stability)
        }
    }

    pub fn stability(&self) -> f64 {
        f64::from(self.stability)
    }

    pub fn set_stability(&mut self, stability: f64) {
        self.stability = stability.clamp(0.0, 1.0) as f32;
        if self.stability == 0.0 {
            self.previous = None;
        }
    }

    pub fn enabled(&self) -> bool {
        self.stability > 0.0
    }

    /// Forget the previous frame: the next frame passes unchanged.
    pub fn reset(&mut self) {
        self.previous = None;
    }

    /// Smooth `output` (the stylized `input`, same size) in place against the previous frame.
    pub fn apply(&mut self, input: &RgbImage, output: &mut RgbImage) {
        if !self.enabled() || input.width != output.width || input.height != output.height {
            self.previous = None;
            return;
        }
        let factor = input.width.div_ceil(FLOW_MAX_WIDTH).max(1);
        let grey = grey_downscaled(input, factor);
        let mut reference = input.clone();
        if let Some(prev) = self
            .previous
            .as_ref()
            .filter(|p| p.output.width == input.width && p.output.height == input.height)
        {
            let (w, h) = (input.width, input.height);
            let current = to_f32(output);
            match self.mode {
                Mode::MotionCompensated => {
                    let back = estimate_flow(&grey, &prev.grey);
                    let fwd = estimate_flow(&prev.grey, &grey);
                    let scale = w as f32 / grey.width as f32;
                    let mut warped = warp_many(
                        &[&prev.reference, &prev.output],
                        &back,
                        scale,
                        Kernel::Cubic,
                    );
                    let warped_out = warped.pop().expect("two warped");
                    let warped_ref = warped.pop().expect("two warped");
                    let agreement = agreement_mask(&warped_ref, input);
                    let consistent = consistency_mask(&back, &fwd, w, h, scale);
                    let mut out = current.clone();
                    let mut refr = to_f32(input);
                    for (i, (a, c)) in agreement.iter().zip(&consistent).enumerate() {
                        let k = propagation_weight(a * c, self.stability);
                        for ch in i * 3..i * 3 + 3 {
                            out[ch] = (1.0 - k) * out[ch] + k * warped_out[ch];
                            refr[ch] = (1.0 - k) * refr[ch] + k * warped_ref[ch];
                        }
                    }
                    restore_detail(&mut out, &current, w, h);
                    to_u8(output, &out);
                    to_u8(&mut reference, &refr);
                }
                Mode::Naive => {
                    let k = self.stability;
                    let out: Vec<f32> = current
                        .iter()
                        .zip(&prev.output.data)
                        .map(|(c, p)| (1.0 - k) * c + k * f32::from(*p))
                        .collect();
                    to_u8(output, &out);
                }
            }
        }
        self.previous = Some(Previous {
            reference,
            grey,
            output: output.clone(),
        });
    }
}
