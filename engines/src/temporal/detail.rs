//! Fine-detail energy matching: propagated texture keeps the current frame's stroke energy.

use super::blur::gaussian_blur_into;
use super::flow::to_smaller;
use super::grey::axis_taps;
use super::simd::kernel;
use crate::par::{for_bands, join};

/// Fine detail is what a σ = 1.5 px blur removes; its energy is matched to the current frame's
/// over a σ = 8 px window, with a gain of at most 1.5 (or at least 1/1.5).
pub(crate) const DETAIL_SIGMA: f32 = 1.5;
pub(crate) const ENERGY_SIGMA: f32 = 8.0;
pub(crate) const MAX_DETAIL_GAIN: f32 = 1.5;

/// Buffers of [`restore_detail_with`], kept from one frame to the next: for this frame's
/// stylization and for the propagated output.
#[derive(Default)]
pub(super) struct DetailScratch {
    current: Detail,
    propagated: Detail,
}

/// An image's σ `DETAIL_SIGMA` blur (`base`) and fine-detail energy, with their buffers.
#[derive(Default)]
struct Detail {
    base: Vec<f32>,
    power: Vec<f32>,
    energy: Vec<f32>,
    tmp: Vec<f32>,
    /// The power at half resolution, and its blur there.
    half: Vec<f32>,
    half_energy: Vec<f32>,
}

/// Fine detail (the image minus its σ = `DETAIL_SIGMA` blur) and its local energy (mean over
/// channels of detail², averaged over a σ = `ENERGY_SIGMA` window).
#[cfg(test)]
pub(super) fn detail_and_energy(img: &[f32], w: usize, h: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut d = Detail::default();
    base_and_energy(img, &mut d, w, h, 1);
    let detail = img.iter().zip(&d.base).map(|(v, b)| v - b).collect();
    (d.base, detail, d.energy)
}

/// The σ `DETAIL_SIGMA` blur of `img` into `d.base`, and the local energy of its fine detail
/// into `d.energy`.
fn base_and_energy(img: &[f32], d: &mut Detail, w: usize, h: usize, threads: usize) {
    gaussian_blur_into(img, &mut d.base, &mut d.tmp, w, h, 3, DETAIL_SIGMA, threads);
    d.power.resize(w * h, 0.0);
    let base = &d.base;
    for_bands(&mut d.power, w, threads, |rows, band| {
        let px = rows.start * w * 3..rows.end * w * 3;
        detail_power(&img[px.clone()], &base[px], band);
    });
    energy_into(d, w, h, threads);
}

/// The local mean of `d.power` over a σ `ENERGY_SIGMA` window, into `d.energy`. The window is
/// wide and the result smooth, so it is taken at half resolution (2×2 means, σ halved) and
/// interpolated back: a quarter of the work, and the same flicker and content measures
/// (docs/performance.md).
fn energy_into(d: &mut Detail, w: usize, h: usize, threads: usize) {
    let Detail {
        power,
        energy,
        tmp,
        half,
        half_energy,
        ..
    } = d;
    if w < 4 || h < 4 {
        gaussian_blur_into(power, energy, tmp, w, h, 1, ENERGY_SIGMA, threads);
        return;
    }
    let (hw, hh) = (w.div_ceil(2), h.div_ceil(2));
    half.resize(hw * hh, 0.0);
    let full = &*power;
    for_bands(half, hw, threads, |rows, band| {
        half_means(full, w, h, band, rows.start);
    });
    let sigma = ENERGY_SIGMA / 2.0;
    gaussian_blur_into(half, half_energy, tmp, hw, hh, 1, sigma, threads);
    energy.resize(w * h, 0.0);
    let small = &*half_energy;
    let columns: Vec<(usize, usize, f32)> =
        (0..w).map(|x| axis_taps(to_smaller(x, 2.0), hw)).collect();
    for_bands(energy, w, threads, |rows, band| {
        upsample_rows(small, hw, hh, &columns, band, rows.start);
    });
}

kernel! {
    /// Rows `y0..` of the 2×2 means of a `w`×`h` image (the last row and column repeated when
    /// the size is odd).
    fn half_means(img: &[f32], w: usize, h: usize, out: &mut [f32], y0: usize) {
        let hw = w.div_ceil(2);
        for (y, row) in (y0..).zip(out.chunks_exact_mut(hw)) {
            let (top, bottom) = (&img[2 * y * w..][..w], &img[(2 * y + 1).min(h - 1) * w..][..w]);
            for (x, o) in row.iter_mut().enumerate() {
                let (a, b) = (2 * x, (2 * x + 1).min(w - 1));
                *o = 0.25 * (top[a] + top[b] + bottom[a] + bottom[b]);
            }
        }
    }
}

kernel! {
    /// Rows `y0..` of an image twice the size of `small` (`hw`×`hh`), bilinear with pixel
    /// centres aligned; `columns` are the taps along x.
    fn upsample_rows(
        small: &[f32],
        hw: usize,
        hh: usize,
        columns: &[(usize, usize, f32)],
        out: &mut [f32],
        y0: usize,
    ) {
        let w = columns.len();
        let rows = out.len() / w;
        if rows == 0 {
            return;
        }
        // Each small row the band reads, sampled along x once (two to four output rows read
        // it): the same values as sampling it per output row.
        let first = axis_taps(to_smaller(y0, 2.0), hh).0;
        let last = axis_taps(to_smaller(y0 + rows - 1, 2.0), hh).1;
        let mut across = vec![0f32; (last - first + 1) * w];
        for (r, line) in (first..).zip(across.chunks_exact_mut(w)) {
            let src = &small[r * hw..][..hw];
            for (o, &(c0, c1, fx)) in line.iter_mut().zip(columns) {
                *o = src[c0] * (1.0 - fx) + src[c1] * fx;
            }
        }
        for (y, row) in (y0..).zip(out.chunks_exact_mut(w)) {
            let (r0, r1, fy) = axis_taps(to_smaller(y, 2.0), hh);
            let (top, bottom) = (&across[(r0 - first) * w..][..w], &across[(r1 - first) * w..][..w]);
            for ((o, t), b) in row.iter_mut().zip(top).zip(bottom) {
                *o = t * (1.0 - fy) + b * fy;
            }
        }
    }
}

/// Give `propagated` the fine-detail energy of `current` (this frame's own stylization),
/// locally. Texture carried along motion is resampled every frame, and resampling at
/// sub-pixel offsets changes its finest detail (bilinear blurs it, cubic slightly sharpens
/// it); over many frames that drift would wash the brush strokes out, or sharpen them, and
/// change how the output relates to the content. Matching the energy to the frame the net
/// painted now keeps the texture's statistics those of a single stylized frame. The gain is
/// bounded both ways so a wrong estimate cannot add or remove much.
#[cfg(test)]
pub(super) fn restore_detail(propagated: &mut [f32], current: &[f32], w: usize, h: usize) {
    restore_detail_with(propagated, current, w, h, &mut DetailScratch::default(), 1);
}

/// [`restore_detail`] with kept buffers, on up to `threads` threads.
pub(super) fn restore_detail_with(
    propagated: &mut [f32],
    current: &[f32],
    w: usize,
    h: usize,
    s: &mut DetailScratch,
    threads: usize,
) {
    // The two images at once, each on half the threads: one hand-over between threads
    // instead of one per pass.
    let inner = (threads / 2).max(1);
    let (cur, prop) = (&mut s.current, &mut s.propagated);
    join(
        threads,
        || base_and_energy(current, cur, w, h, inner),
        || base_and_energy(propagated, prop, w, h, inner),
    );
    let (target, energy, base) = (&s.current.energy, &s.propagated.energy, &s.propagated.base);
    for_bands(propagated, w * 3, threads, |rows, band| {
        let (px, rgb) = (
            rows.start * w..rows.end * w,
            rows.start * w * 3..rows.end * w * 3,
        );
        scale_detail(band, &base[rgb], &target[px.clone()], &energy[px]);
    });
}

kernel! {
    /// Per pixel, the mean over channels of the fine detail's square (`img` − `base`)².
    fn detail_power(img: &[f32], base: &[f32], power: &mut [f32]) {
        for ((p, v), b) in power.iter_mut().zip(img.chunks_exact(3)).zip(base.chunks_exact(3)) {
            let d = [v[0] - b[0], v[1] - b[1], v[2] - b[2]];
            *p = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]) / 3.0;
        }
    }
}

kernel! {
    /// Scale the fine detail of `img` (around `base`) so its energy goes from `energy` to
    /// `target`, within the bounds.
    fn scale_detail(img: &mut [f32], base: &[f32], target: &[f32], energy: &[f32]) {
        let pixels = img.chunks_exact_mut(3).zip(base.chunks_exact(3));
        for ((px, b), (t, e)) in pixels.zip(target.iter().zip(energy)) {
            let gain = ((t + 1.0) / (e + 1.0))
                .sqrt()
                .clamp(1.0 / MAX_DETAIL_GAIN, MAX_DETAIL_GAIN);
            for (v, b) in px.iter_mut().zip(b) {
                *v = b + gain * (*v - b);
            }
        }
    }
}
