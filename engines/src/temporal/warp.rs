//! Carrying an RGB image along a flow (bilinear or cubic resampling).

use super::flow::Flow;
use crate::frame::RgbImage;

/// Sample an RGB image along a flow: pixel p of the result is `img` at p + flow(p)·scale, where
/// the flow was estimated on an image `scale` times smaller. Bilinear (as OpenCV's
/// `INTER_LINEAR`, what the metrics use); returns float RGB.
pub fn warp_rgb(img: &RgbImage, flow: &Flow, scale: f32) -> Vec<f32> {
    let (w, h) = (img.width, img.height);
    let mut out = vec![0f32; w * h * 3];
    // Clamped to the image, so truncation is the floor.
    let taps = |pos: f32| {
        let base = (pos as isize) as f32;
        let t = pos - base;
        (base as isize, [1.0 - t, t])
    };
    let clamp = |v: isize, len: usize| v.clamp(0, len as isize - 1) as usize;
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = flow.at_pixel(x, y, scale);
            let sx = (x as f32 + dx * scale).clamp(0.0, (w - 1) as f32);
            let sy = (y as f32 + dy * scale).clamp(0.0, (h - 1) as f32);
            let ((x0, wx), (y0, wy)) = (taps(sx), taps(sy));
            let mut acc = [0f32; 3];
            for (j, ky) in wy.iter().enumerate() {
                let row = clamp(y0 + j as isize, h) * w;
                for (i, kx) in wx.iter().enumerate() {
                    let t = (row + clamp(x0 + i as isize, w)) * 3;
                    let k = ky * kx;
                    for (a, v) in acc.iter_mut().zip(&img.data[t..t + 3]) {
                        *a += k * f32::from(*v);
                    }
                }
            }
            let o = &mut out[(y * w + x) * 3..][..3];
            for (o, a) in o.iter_mut().zip(acc) {
                *o = a.clamp(0.0, 255.0);
            }
        }
    }
    out
}

/// One pixel of two images side by side, as floats: `[a R, a G, a B, 0, b R, b G, b B, 0]`.
/// The filter carries the previous reference and output together: one cubic tap of both is
/// one multiply-add of 8 lanes, and the flow and taps are worked out once for the two.
pub(super) type PixelPair = [f32; 8];

/// Keys cubic weights (a = −0.75, OpenCV's `INTER_CUBIC`) of the four taps around a sample at
/// fraction `t` past its pixel. The filter re-warps the same texture frame after frame;
/// bilinear taps are a low-pass filter at sub-pixel offsets, and that blur compounds until the
/// brush texture is gone. The cubic's slight overshoot keeps repeated warps close to neutral.
#[inline(always)]
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |d: f32| ((A + 2.0) * d - (A + 3.0)) * d * d + 1.0;
    let far = |d: f32| ((A * d - 5.0 * A) * d + 8.0 * A) * d - 4.0 * A;
    [far(1.0 + t), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Where the cubic samples of one row of the carry read, and with which weights, per pixel:
/// worked out for the whole row first (eight pixels at a time with AVX2), then applied.
#[derive(Default)]
pub(super) struct RowTaps {
    /// First column and row of the 4×4 taps (before clamping).
    x0: Vec<i32>,
    y0: Vec<i32>,
    wx: [Vec<f32>; 4],
    wy: [Vec<f32>; 4],
    /// The sample sits on a pixel centre: the pixel itself (still areas).
    on_pixel: Vec<bool>,
}

impl RowTaps {
    /// Taps for pixel x of row `y` at (x, y) + (`vx`[x], `vy`[x])·`scale`, clamped to the
    /// `w`×`h` image.
    #[inline(always)]
    pub(super) fn compute(
        &mut self,
        y: usize,
        vx: &[f32],
        vy: &[f32],
        scale: f32,
        w: usize,
        h: usize,
    ) {
        let n = vx.len();
        self.x0.resize(n, 0);
        self.y0.resize(n, 0);
        self.on_pixel.resize(n, false);
        for v in self.wx.iter_mut().chain(self.wy.iter_mut()) {
            v.resize(n, 0.0);
        }
        let mut first = 0;
        #[cfg(target_arch = "x86_64")]
        if super::simd::avx2() {
            // SAFETY: the CPU has AVX2 (checked just above).
            first = unsafe { self.compute_avx2(y, vx, vy, scale, w, h) };
        }
        let (max_x, max_y) = ((w - 1) as f32, (h - 1) as f32);
        for x in first..n {
            let sx = (x as f32 + vx[x] * scale).clamp(0.0, max_x);
            let sy = (y as f32 + vy[x] * scale).clamp(0.0, max_y);
            // Clamped, so truncation is the floor (a NaN goes to 0, as the AVX2 path does).
            let (bx, by) = (sx as usize, sy as usize);
            let (base_x, base_y) = (bx as f32, by as f32);
            self.on_pixel[x] = base_x == sx && base_y == sy;
            self.x0[x] = bx as i32 - 1;
            self.y0[x] = by as i32 - 1;
            let (wx, wy) = (cubic_weights(sx - base_x), cubic_weights(sy - base_y));
            for k in 0..4 {
                self.wx[k][x] = wx[k];
                self.wy[k][x] = wy[k];
            }
        }
    }

    /// The whole vectors of [`RowTaps::compute`]; returns where it stopped.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn compute_avx2(
        &mut self,
        y: usize,
        vx: &[f32],
        vy: &[f32],
        scale: f32,
        w: usize,
        h: usize,
    ) -> usize {
        use super::gather::{columns8, load8, store8};
        use std::arch::x86_64::*;
        const A: f32 = -0.75;
        let splat = _mm256_set1_ps;
        let (sub, mul, add) = (_mm256_sub_ps, _mm256_mul_ps, _mm256_add_ps);
        // `cubic_weights` on eight lanes, the same operations in the same order.
        let near = |d: __m256| {
            add(
                mul(mul(sub(mul(splat(A + 2.0), d), splat(A + 3.0)), d), d),
                splat(1.0),
            )
        };
        let far = |d: __m256| {
            sub(
                mul(
                    add(
                        mul(sub(mul(splat(A), d), splat(5.0 * A)), d),
                        splat(8.0 * A),
                    ),
                    d,
                ),
                splat(4.0 * A),
            )
        };
        // `f32::clamp(v, 0, max)` and `as usize` (NaN to 0) as in `gather::axis_taps8`.
        let clamp =
            |v: __m256, max: f32| _mm256_min_ps(splat(max), _mm256_max_ps(_mm256_setzero_ps(), v));
        let floor =
            |v: __m256| _mm256_cvttps_epi32(_mm256_and_ps(v, _mm256_cmp_ps::<_CMP_ORD_Q>(v, v)));
        let (max_x, max_y) = ((w - 1) as f32, (h - 1) as f32);
        let (scale, row) = (splat(scale), splat(y as f32));
        let one = _mm256_set1_epi32(1);
        let whole = vx.len() / 8 * 8;
        for x in (0..whole).step_by(8) {
            let sx = clamp(add(columns8(x), mul(load8(vx, x), scale)), max_x);
            let sy = clamp(add(row, mul(load8(vy, x), scale)), max_y);
            let (bx, by) = (floor(sx), floor(sy));
            let (base_x, base_y) = (_mm256_cvtepi32_ps(bx), _mm256_cvtepi32_ps(by));
            let on = _mm256_and_ps(
                _mm256_cmp_ps::<_CMP_EQ_OQ>(base_x, sx),
                _mm256_cmp_ps::<_CMP_EQ_OQ>(base_y, sy),
            );
            let on = _mm256_movemask_ps(on);
            for (i, o) in self.on_pixel[x..x + 8].iter_mut().enumerate() {
                *o = on & (1 << i) != 0;
            }
            // SAFETY: x + 8 ≤ the row's length, the length of `x0` and `y0`.
            unsafe {
                _mm256_storeu_si256(
                    self.x0[x..x + 8].as_mut_ptr().cast(),
                    _mm256_sub_epi32(bx, one),
                );
                _mm256_storeu_si256(
                    self.y0[x..x + 8].as_mut_ptr().cast(),
                    _mm256_sub_epi32(by, one),
                );
            }
            for (base, pos, weights) in [(base_x, sx, &mut self.wx), (base_y, sy, &mut self.wy)] {
                let t = sub(pos, base);
                let ws = [
                    far(add(splat(1.0), t)),
                    near(t),
                    near(sub(splat(1.0), t)),
                    far(sub(splat(2.0), t)),
                ];
                for (dst, v) in weights.iter_mut().zip(ws) {
                    store8(dst, x, v);
                }
            }
        }
        whole
    }

    /// The carry of one row with AVX2 (one pixel's eight lanes per vector): per pixel x,
    /// [`RowTaps::apply`], then lane 3 set to the carried reference's difference to `input`
    /// (packed RGB of the row, [`super::select::input_difference`]) and lane 7 to
    /// `round_trip[columns[x]]`; the difference also into `diff`. The same operations in the
    /// same order as the scalar code, so the same bits; the taps of a pixel whose 4×4 window
    /// lies inside the image are read through one pointer, without clamping each.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn carry_row_avx2(
        &self,
        pairs: &[PixelPair],
        w: usize,
        h: usize,
        input: &[u8],
        round_trip: &[f32],
        columns: &[usize],
        row: &mut [PixelPair],
        diff: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let n = row.len();
        assert!(
            pairs.len() >= w * h
                && self.x0.len() >= n
                && input.len() >= n * 3
                && columns.len() >= n
                && diff.len() >= n
        );
        let (zero, top) = (_mm256_setzero_ps(), _mm256_set1_ps(255.0));
        let base = pairs.as_ptr();
        // SAFETY (`load`): every index below is a pixel of the w×h image (taps clamped into
        // it, or a window checked to lie inside), and `pairs` holds w·h pixels (asserted).
        let load = |i: usize| unsafe { _mm256_loadu_ps(base.add(i).cast()) };
        let abs = _mm_castsi128_ps(_mm_set1_epi32(0x7fff_ffff));
        for x in 0..n {
            let (x0, y0) = (self.x0[x], self.y0[x]);
            let v = if self.on_pixel[x] {
                // Clamped, so x0 + 1 and y0 + 1 are inside (as `apply`).
                load((y0 + 1) as usize * w + (x0 + 1) as usize)
            } else {
                let wx = [0, 1, 2, 3].map(|i| _mm256_set1_ps(self.wx[i][x]));
                let inside = x0 >= 0 && y0 >= 0 && x0 as usize + 3 < w && y0 as usize + 3 < h;
                let clamp = |v: i32, len: usize| v.clamp(0, len as i32 - 1) as usize;
                let cols = if inside {
                    let c = x0 as usize;
                    [c, c + 1, c + 2, c + 3]
                } else {
                    [0, 1, 2, 3].map(|i| clamp(x0 + i, w))
                };
                let mut acc = zero;
                for j in 0..4 {
                    let ky = _mm256_set1_ps(self.wy[j][x]);
                    let r = if inside {
                        (y0 + j as i32) as usize * w
                    } else {
                        clamp(y0 + j as i32, h) * w
                    };
                    let mut across = zero;
                    for i in 0..4 {
                        across = _mm256_add_ps(across, _mm256_mul_ps(wx[i], load(r + cols[i])));
                    }
                    acc = _mm256_add_ps(acc, _mm256_mul_ps(ky, across));
                }
                // `f32::clamp(0, 255)`, a NaN kept (as `apply`).
                _mm256_min_ps(top, _mm256_max_ps(zero, acc))
            };
            // The difference of lanes 0–2 to the input: ((|d0| + |d1|) + |d2|) / 3.
            let here = &input[x * 3..x * 3 + 3];
            let current = _mm_setr_ps(
                f32::from(here[0]),
                f32::from(here[1]),
                f32::from(here[2]),
                0.0,
            );
            let d = _mm_and_ps(_mm_sub_ps(_mm256_castps256_ps128(v), current), abs);
            let sum = _mm_add_ss(_mm_add_ss(d, _mm_movehdup_ps(d)), _mm_movehl_ps(d, d));
            let difference = _mm_div_ss(sum, _mm_set_ss(3.0));
            let lo = _mm_blend_ps::<0b1000>(
                _mm256_castps256_ps128(v),
                _mm_shuffle_ps::<0>(difference, difference),
            );
            let hi = _mm_blend_ps::<0b1000>(
                _mm256_extractf128_ps::<1>(v),
                _mm_set1_ps(round_trip[columns[x]]),
            );
            // SAFETY: x < n, the row's length.
            unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(x).cast(), _mm256_set_m128(hi, lo)) };
            diff[x] = _mm_cvtss_f32(difference);
        }
    }

    /// Both images of `pairs` (`w`×`h`) with pixel x's taps; values clamped to 0–255.
    /// Separable: each of the four rows is combined across first, then the rows (fixed-size
    /// loops that compile to whole 8-lane vectors).
    #[inline(always)]
    pub(super) fn apply(&self, pairs: &[PixelPair], w: usize, h: usize, x: usize) -> PixelPair {
        assert!(pairs.len() >= w * h && x < self.x0.len());
        let (x0, y0) = (self.x0[x], self.y0[x]);
        // Every index below is clamped into the w×h image: no bounds checks on the 16 taps.
        // SAFETY (both `at`): (col, row) < (w, h) and `pairs` holds w·h pixels (asserted).
        let at = |col: usize, row: usize| unsafe { pairs.get_unchecked(row * w + col) };
        if self.on_pixel[x] {
            // On a pixel centre (still areas: the flow is exactly zero there) the cubic's taps
            // are 0, 1, 0, 0: the pixel itself. Clamped, so x0 + 1 and y0 + 1 are inside.
            return *at((x0 + 1) as usize, (y0 + 1) as usize);
        }
        let clamp = |v: i32, len: usize| v.clamp(0, len as i32 - 1) as usize;
        let cols = [0, 1, 2, 3].map(|i| clamp(x0 + i, w));
        let wx = [0, 1, 2, 3].map(|i| self.wx[i][x]);
        let mut acc = [0f32; 8];
        for j in 0..4 {
            let ky = self.wy[j][x];
            let row = clamp(y0 + j as i32, h);
            let mut across = [0f32; 8];
            for i in 0..4 {
                let v = at(cols[i], row);
                for l in 0..8 {
                    across[l] += wx[i] * v[l];
                }
            }
            for l in 0..8 {
                acc[l] += ky * across[l];
            }
        }
        acc.map(|a| a.clamp(0.0, 255.0))
    }
}
