//! Fine-detail energy matching: propagated texture keeps the current frame's stroke energy.

use super::blur::gaussian_blur;

/// Fine detail is what a σ = 1.5 px blur removes; its energy is matched to the current frame's
/// over a σ = 8 px window, with a gain of at most 1.5 (or at least 1/1.5).
pub(crate) const DETAIL_SIGMA: f32 = 1.5;
pub(crate) const ENERGY_SIGMA: f32 = 8.0;
pub(crate) const MAX_DETAIL_GAIN: f32 = 1.5;

/// Fine detail (the image minus its σ = `DETAIL_SIGMA` blur) and its local energy (mean over
/// channels of detail², averaged over a σ = `ENERGY_SIGMA` window).
pub(super) fn detail_and_energy(img: &[f32], w: usize, h: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let base = gaussian_blur(img, w, h, 3, DETAIL_SIGMA);
    let detail: Vec<f32> = img.iter().zip(&base).map(|(v, b)| v - b).collect();
    let power: Vec<f32> = detail
        .chunks_exact(3)
        .map(|d| d.iter().map(|v| v * v).sum::<f32>() / 3.0)
        .collect();
    let energy = gaussian_blur(&power, w, h, 1, ENERGY_SIGMA);
    (base, detail, energy)
}

/// Give `propagated` the fine-detail energy of `current` (this frame's own stylization),
/// locally. Texture carried along motion is resampled every frame, and resampling at
/// sub-pixel offsets changes its finest detail (bilinear blurs it, cubic slightly sharpens
/// it); over many frames that drift would wash the brush strokes out, or sharpen them, and
/// change how the output relates to the content. Matching the energy to the frame the net
/// painted now keeps the texture's statistics those of a single stylized frame. The gain is
/// bounded both ways so a wrong estimate cannot add or remove much.
pub(super) fn restore_detail(propagated: &mut [f32], current: &[f32], w: usize, h: usize) {
    let (_, _, target) = detail_and_energy(current, w, h);
    let (base, detail, energy) = detail_and_energy(propagated, w, h);
    for (i, px) in propagated.chunks_exact_mut(3).enumerate() {
        let gain = ((target[i] + 1.0) / (energy[i] + 1.0))
            .sqrt()
            .clamp(1.0 / MAX_DETAIL_GAIN, MAX_DETAIL_GAIN);
        for (c, v) in px.iter_mut().enumerate() {
            *v = base[i * 3 + c] + gain * detail[i * 3 + c];
        }
    }
}
