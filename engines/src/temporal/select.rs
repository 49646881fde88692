//! Where the carried texture is kept: agreement of the carried input with the current one,
//! and the weight that selects rather than averages.

use crate::frame::RgbImage;

/// Mean absolute RGB difference (0–255) of warped previous vs current input at which the
/// previous output stops counting: full weight below `AGREE`, none above `DISAGREE`.
pub(crate) const AGREE: f32 = 6.0;
pub(crate) const DISAGREE: f32 = 18.0;

/// Weight of the warped previous frame per pixel, 0–1: 1 where the warped previous input
/// matches the current input, 0 where it does not (occlusion, uncovered area, wrong motion).
/// The difference is taken as the maximum over a 3×3 neighbourhood, so a moving edge is
/// masked on both sides and a trail cannot start one pixel beside it.
pub fn agreement_mask(warped_prev_in: &[f32], cur_in: &RgbImage) -> Vec<f32> {
    let (w, h) = (cur_in.width, cur_in.height);
    let diff: Vec<f32> = warped_prev_in
        .chunks_exact(3)
        .zip(cur_in.data.chunks_exact(3))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(a, b)| (a - f32::from(*b)).abs())
                .sum::<f32>()
                / 3.0
        })
        .collect();
    let mut mask = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut worst = 0f32;
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    worst = worst.max(diff[yy * w + xx]);
                }
            }
            mask[y * w + x] = ((DISAGREE - worst) / (DISAGREE - AGREE)).clamp(0.0, 1.0);
        }
    }
    mask
}

/// Weight of the propagated texture from the agreement `a` (0–1) of its source input with the
/// current input: full (pure propagation, no averaging) once `a` reaches `1 − stability`
/// scaled as below, a ramp under it. Averaging two stylizations is what keeps more of the
/// content in the output (its texture halves, the content does not), so the filter selects
/// rather than blends wherever it can; the ramp avoids a visible seam at the mask's edges.
pub(super) fn propagation_weight(agreement: f32, stability: f32) -> f32 {
    if stability >= 1.0 {
        return if agreement > 0.0 { 1.0 } else { 0.0 };
    }
    (agreement * stability / (1.0 - stability)).min(1.0)
}
