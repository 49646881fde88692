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
        .map(|(a, b)| input_difference(a.try_into().expect("RGB"), b))
        .collect();
    let mut across = vec![0f32; w * h];
    for (d, a) in diff.chunks_exact(w).zip(across.chunks_exact_mut(w)) {
        max3_row(d, a);
    }
    let mut mask = vec![0f32; w * h];
    for (y, m) in mask.chunks_exact_mut(w).enumerate() {
        let rows = neighbour_rows(&across, w, h, y);
        for (x, m) in m.iter_mut().enumerate() {
            *m = agreement(rows[0][x].max(rows[1][x]).max(rows[2][x]));
        }
    }
    mask
}

/// Mean absolute difference over the channels of a carried input pixel and the current one.
#[inline(always)]
pub(super) fn input_difference(carried: &[f32; 3], current: &[u8]) -> f32 {
    ((carried[0] - f32::from(current[0])).abs()
        + (carried[1] - f32::from(current[1])).abs()
        + (carried[2] - f32::from(current[2])).abs())
        / 3.0
}

/// Maximum of each value and its left and right neighbours (borders clamped): the
/// horizontal half of the 3×3 maximum.
#[inline(always)]
pub(super) fn max3_row(src: &[f32], dst: &mut [f32]) {
    let n = src.len();
    if n == 0 {
        return;
    }
    if n == 1 {
        dst[0] = src[0];
        return;
    }
    dst[0] = src[0].max(src[1]);
    for (x, d) in dst.iter_mut().enumerate().take(n - 1).skip(1) {
        *d = src[x - 1].max(src[x]).max(src[x + 1]);
    }
    dst[n - 1] = src[n - 2].max(src[n - 1]);
}

/// Rows y − 1, y and y + 1 of a `w`-wide image, clamped at the borders (a repeated row does not
/// change a maximum).
#[inline(always)]
pub(super) fn neighbour_rows(img: &[f32], w: usize, h: usize, y: usize) -> [&[f32]; 3] {
    let row = |y: usize| &img[y * w..(y + 1) * w];
    [row(y.saturating_sub(1)), row(y), row((y + 1).min(h - 1))]
}

/// Agreement (0–1) from the worst input difference around a pixel.
#[inline(always)]
pub(super) fn agreement(worst: f32) -> f32 {
    ((DISAGREE - worst) / (DISAGREE - AGREE)).clamp(0.0, 1.0)
}

/// Weight of the propagated texture from the agreement `a` (0–1) of its source input with the
/// current input: full (pure propagation, no averaging) once `a` reaches `1 − stability`
/// scaled as below, a ramp under it. Averaging two stylizations is what keeps more of the
/// content in the output (its texture halves, the content does not), so the filter selects
/// rather than blends wherever it can; the ramp avoids a visible seam at the mask's edges.
#[inline(always)]
pub(super) fn propagation_weight(agreement: f32, stability: f32) -> f32 {
    if stability >= 1.0 {
        return if agreement > 0.0 { 1.0 } else { 0.0 };
    }
    (agreement * stability / (1.0 - stability)).min(1.0)
}
