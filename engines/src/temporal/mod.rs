//! Temporal stability: motion-compensated texture propagation for the stylized output.
//!
//! A per-frame style net flickers: a small change of the input (noise, a sub-pixel move) can
//! flip the texture the net paints. Plain frame blending removes flicker but leaves trails
//! behind moving edges, and averaging two different brush textures washes the style out (the
//! output drifts toward the content). This filter instead
//! 1. estimates dense motion between the previous and the current *input* on a grey image at
//!    most 320 px wide: block matching on a half-resolution pyramid for large motions, then
//!    dense Lucas–Kanade steps per pixel (a smooth window of σ ≈ 2.8 px) for an accurate field;
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
#[cfg(target_arch = "x86_64")]
mod gather;
mod grey;
mod metrics;
mod select;
mod simd;
#[cfg(test)]
mod tests;
mod warp;

pub use flow::{consistency_mask, estimate_flow, Flow};
use grey::grey_downscaled_with;
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
    pub(crate) use crate::par::BAND_ROWS;
}

use crate::par::{self, for_bands, for_bands2, join};
use detail::{restore_detail_with, DetailScratch};
use flow::{
    estimate_flow_into, round_trip_row, to_smaller, FlowImages, LkScratch, Pyramid, Template,
};
use select::{agreement, input_difference, max3_row, neighbour_rows, propagation_weight};
use simd::kernel;
use warp::{PixelPair, RowTaps};

/// Grey images for motion estimation are at most this wide (the inference size of a 16:9
/// frame at `scale` 0.25 of 720p): blocks are matched at half this width, vectors refined here.
pub(crate) const FLOW_MAX_WIDTH: usize = 320;

#[cfg(test)]
fn to_f32(img: &RgbImage) -> Vec<f32> {
    img.data.iter().map(|v| f32::from(*v)).collect()
}

/// A value of the filter's float arithmetic as the byte it is stored as (rounded half up:
/// `f32::round` is a library call on the baseline x86-64, this a vector conversion).
#[inline(always)]
fn rounded(v: f32) -> f32 {
    to_byte(v) as f32
}

#[inline(always)]
fn to_byte(v: f32) -> u8 {
    (v.clamp(0.0, 255.0) + 0.5) as u8
}

struct Previous {
    width: usize,
    height: usize,
    /// Per pixel, side by side ([`PixelPair`]): the input the output's texture was painted
    /// for (the reference), carried along the motion with it, and the output, both rounded to
    /// bytes. Propagated texture is only kept while the reference still matches the current
    /// input, so a slow change (a fade, a lighting change) refreshes it instead of freezing it.
    pairs: Vec<PixelPair>,
    grey: GreyImage,
    /// The grey image's Lucas–Kanade template: this frame's forward motion starts from it.
    template: Template,
    /// The grey image's block-matching levels, for both directions of the next motion.
    levels: Pyramid,
}

/// Buffers of [`TemporalFilter::apply`], kept across frames (a fresh multi-megabyte buffer
/// costs a page fault per 4 KiB).
#[derive(Default)]
struct Buffers {
    back: Option<Flow>,
    fwd: Option<Flow>,
    lk: [LkScratch; 2],
    /// Per pixel: the carried reference (RGB), its difference to the current input, the
    /// carried output (RGB), and 1 where the motion's round trip holds.
    carried: Vec<PixelPair>,
    /// 1 where the motion's round trip holds, per pixel of the flow.
    round_trip: Vec<f32>,
    /// The input difference's maximum over each pixel and its left and right neighbours.
    across: Vec<f32>,
    current: Vec<f32>,
    out: Vec<f32>,
    next: Vec<PixelPair>,
    detail: DetailScratch,
    /// The template buffers of the frame before the previous one, for reuse.
    spare_template: Template,
    spare_levels: Pyramid,
    template_tmp: Vec<f32>,
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
    /// Threads for the per-pixel stages (see `par`).
    threads: usize,
    buffers: Buffers,
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
            threads: par::default_threads(),
            buffers: Buffers::default(),
        }
    }

    /// Threads for the filter's per-pixel work; 0 = one per core (at most 8). The result does
    /// not depend on it.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = match threads {
            0 => par::default_threads(),
            n => n,
        };
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
        let (w, h) = (input.width, input.height);
        let factor = w.div_ceil(FLOW_MAX_WIDTH).max(1);
        let grey = grey_downscaled_with(input, factor, self.threads);
        let previous = self
            .previous
            .take()
            .filter(|p| p.width == w && p.height == h);
        let mut next = std::mem::take(&mut self.buffers.next);
        let mut template = std::mem::take(&mut self.buffers.spare_template);
        let mut levels = std::mem::take(&mut self.buffers.spare_levels);
        if self.mode == Mode::MotionCompensated {
            let b = &mut self.buffers;
            template.compute(&grey, &mut b.template_tmp, self.threads);
            levels.compute(&grey);
        }
        match (&previous, self.mode) {
            (Some(prev), Mode::MotionCompensated) => {
                let images = FlowImages {
                    cur: &grey,
                    prev: &prev.grey,
                    template: &template,
                    cur_levels: &levels,
                    prev_levels: &prev.levels,
                };
                self.motion_compensated(prev, &images, input, output, &mut next);
            }
            (Some(prev), Mode::Naive) => {
                let k = self.stability;
                for (o, p) in output.data.chunks_exact_mut(3).zip(&prev.pairs) {
                    for (o, p) in o.iter_mut().zip(&p[4..7]) {
                        *o = to_byte((1.0 - k) * f32::from(*o) + k * p);
                    }
                }
                store_pairs(&mut next, input, output);
            }
            (None, _) => store_pairs(&mut next, input, output),
        }
        if let Some(prev) = previous {
            self.buffers.next = prev.pairs;
            self.buffers.spare_template = prev.template;
            self.buffers.spare_levels = prev.levels;
        }
        self.previous = Some(Previous {
            width: w,
            height: h,
            pairs: next,
            grey,
            template,
            levels,
        });
    }

    /// The motion-compensated filter (steps 1–4 of the module's description); writes the
    /// smoothed output in place and the next frame's carried pairs into `next`.
    fn motion_compensated(
        &mut self,
        prev: &Previous,
        images: &FlowImages<'_>,
        input: &RgbImage,
        output: &mut RgbImage,
        next: &mut Vec<PixelPair>,
    ) {
        let (w, h) = (input.width, input.height);
        let threads = self.threads;
        let b = &mut self.buffers;
        // 1. Motion, both directions at once (each on half the threads).
        let inner = (threads / 2).max(1);
        let (mut back, mut fwd) = (b.back.take(), b.fwd.take());
        let [lk_back, lk_fwd] = &mut b.lk;
        let (back, fwd) = join(
            threads,
            || {
                let mut f = back.take().unwrap_or_else(|| Flow::dense(0, 0));
                estimate_flow_into(images, &mut f, lk_back, inner);
                f
            },
            || {
                let mut f = fwd.take().unwrap_or_else(|| Flow::dense(0, 0));
                let forward = FlowImages {
                    cur: images.prev,
                    prev: images.cur,
                    template: &prev.template,
                    cur_levels: images.prev_levels,
                    prev_levels: images.cur_levels,
                };
                estimate_flow_into(&forward, &mut f, lk_fwd, inner);
                f
            },
        );
        let scale = w as f32 / images.cur.width as f32;

        // 3 (first half). Where the motion's round trip holds, per pixel of the flow: the
        // frame's pixels take their nearest flow pixel's answer (a quarter of the work at
        // 640×360, and the same flicker and content measures as per frame pixel).
        b.round_trip.resize(back.cols * back.rows, 0.0);
        for_bands(&mut b.round_trip, back.cols, threads, |rows, band| {
            round_trip_rows(&back, &fwd, band, rows.start);
        });

        // 2. Carry the previous reference and output along the backward motion; the carried
        // reference's difference to this input, and the round trip, per pixel.
        b.carried.resize(w * h, [0.0; 8]);
        b.across.resize(w * h, 0.0);
        let carry = Carry {
            prev: &prev.pairs,
            input: &input.data,
            back: &back,
            round_trip: &b.round_trip,
            w,
            h,
            scale,
        };
        for_bands2(
            &mut b.carried,
            w,
            &mut b.across,
            w,
            threads,
            |rows, band, across| {
                carry_rows(&carry, band, across, rows.start);
            },
        );

        // 3.–4. Mask (worst difference over 3×3, times the round trip) and selection.
        let carried = &b.carried;
        b.current.resize(w * h * 3, 0.0);
        for_bands(&mut b.current, w * 3, threads, |rows, band| {
            to_floats(&output.data[rows.start * w * 3..rows.end * w * 3], band);
        });
        b.out.resize(w * h * 3, 0.0);
        next.resize(w * h, [0.0; 8]);
        let select = Select {
            carried,
            across: &b.across,
            current: &b.current,
            input: &input.data,
            w,
            h,
            stability: self.stability,
        };
        for_bands2(&mut b.out, w * 3, next, w, threads, |rows, out, next| {
            select_rows(&select, out, next, rows.start);
        });
        let current = &b.current;

        // 5. Detail energy of this frame's stylization.
        restore_detail_with(&mut b.out, current, w, h, &mut b.detail, threads);
        let filtered = &b.out;
        for_bands2(
            &mut output.data,
            w * 3,
            next,
            w,
            threads,
            |rows, out, next| {
                store_output(&filtered[rows.start * w * 3..rows.end * w * 3], out, next);
            },
        );
        (b.back, b.fwd) = (Some(back), Some(fwd));
    }
}

/// What the carry pass reads.
struct Carry<'a> {
    prev: &'a [PixelPair],
    input: &'a [u8],
    back: &'a Flow,
    /// 1 where the round trip holds, per flow pixel.
    round_trip: &'a [f32],
    w: usize,
    h: usize,
    /// Frame pixels per flow pixel.
    scale: f32,
}

kernel! {
    /// Rows `y0..` of the carry pass: per pixel, the previous reference and output carried
    /// along the backward motion (cubic), the carried reference's difference to this input,
    /// and whether the motion's round trip holds (see [`Buffers::carried`]); and the
    /// difference's maximum across each pixel and its neighbours in the row into `across`.
    fn carry_rows(c: &Carry<'_>, band: &mut [PixelPair], across: &mut [f32], y0: usize) {
        let (w, h, scale) = (c.w, c.h, c.scale);
        let mut cubic = RowTaps::default();
        // The flow pixel nearest to each pixel's centre, per column.
        let nearest = |i: usize, len: usize| ((to_smaller(i, scale) + 0.5).max(0.0) as usize).min(len - 1);
        let columns: Vec<usize> = (0..w).map(|x| nearest(x, c.back.cols)).collect();
        let mut taps = c.back.column_taps(w, scale);
        let (mut vx, mut vy) = (vec![0f32; w], vec![0f32; w]);
        let mut diff = vec![0f32; w];
        let rows = band.chunks_exact_mut(w).zip(across.chunks_exact_mut(w));
        for (y, (row, across)) in (y0..).zip(rows) {
            let round_trip = &c.round_trip[nearest(y, c.back.rows) * c.back.cols..][..c.back.cols];
            // The backward motion at each pixel of the row (`Flow::at_pixel`).
            c.back.row_at_pixels(y, scale, &mut taps, &mut vx, &mut vy);
            cubic.compute(y, &vx, &vy, scale, w, h);
            #[cfg(target_arch = "x86_64")]
            if simd::avx2() {
                let here = &c.input[y * w * 3..][..w * 3];
                // SAFETY: the CPU has AVX2 (checked just above).
                unsafe { cubic.carry_row_avx2(c.prev, w, h, here, round_trip, &columns, row, &mut diff) };
                max3_row(&diff, across);
                continue;
            }
            for (x, (out, &fx)) in row.iter_mut().zip(&columns).enumerate() {
                let i = y * w + x;
                *out = cubic.apply(c.prev, w, h, x);
                let here = &c.input[i * 3..][..3];
                out[3] = input_difference(&[out[0], out[1], out[2]], here);
                out[7] = round_trip[fx];
                diff[x] = out[3];
            }
            max3_row(&diff, across);
        }
    }
}

kernel! {
    /// Rows `y0..` of the round-trip check on the flow's own grid: 1 where it holds.
    fn round_trip_rows(back: &Flow, fwd: &Flow, out: &mut [f32], y0: usize) {
        let cols = back.cols;
        for (y, row) in (y0..).zip(out.chunks_exact_mut(cols)) {
            let (dx, dy) = (&back.dx[y * cols..][..cols], &back.dy[y * cols..][..cols]);
            round_trip_row(fwd, y, dx, dy, row);
        }
    }
}

/// What the selection pass reads.
struct Select<'a> {
    carried: &'a [PixelPair],
    across: &'a [f32],
    current: &'a [f32],
    input: &'a [u8],
    w: usize,
    h: usize,
    stability: f32,
}

kernel! {
    /// Rows `y0..` of the selection: the propagation weight from the mask, the output (before
    /// the detail match) into `out` and the carried reference, rounded, into `next`.
    fn select_rows(s: &Select<'_>, out: &mut [f32], next: &mut [PixelPair], y0: usize) {
        let (w, h) = (s.w, s.h);
        let mut weights = vec![0f32; w];
        let mut round_trip = vec![0f32; w];
        let rows = out.chunks_exact_mut(w * 3).zip(next.chunks_exact_mut(w));
        for (y, (out, next)) in (y0..).zip(rows) {
            let carried = &s.carried[y * w..][..w];
            for (r, c) in round_trip.iter_mut().zip(carried) {
                *r = c[7];
            }
            // The weights first, in a loop of their own that vectorises (two divisions each).
            let [above, here, below] = neighbour_rows(s.across, w, h, y);
            let around = above.iter().zip(here).zip(below).zip(&round_trip);
            for (k, (((a, b), c), r)) in weights.iter_mut().zip(around) {
                *k = propagation_weight(agreement(a.max(*b).max(*c)) * r, s.stability);
            }
            #[cfg(target_arch = "x86_64")]
            if simd::avx2() {
                let (inputs, current) = (&s.input[y * w * 3..][..w * 3], &s.current[y * w * 3..][..w * 3]);
                // SAFETY: the CPU has AVX2 (checked just above).
                unsafe { select_row_avx2(&weights, carried, inputs, current, out, next) };
                continue;
            }
            let pixels = out.chunks_exact_mut(3).zip(next.iter_mut()).zip(carried);
            let inputs = s.input[y * w * 3..][..w * 3].chunks_exact(3);
            let current = s.current[y * w * 3..][..w * 3].chunks_exact(3);
            for ((((o, n), c), k), (here, current)) in pixels.zip(&weights).zip(inputs.zip(current)) {
                for ch in 0..3 {
                    o[ch] = (1.0 - k) * current[ch] + k * c[4 + ch];
                    n[ch] = rounded((1.0 - k) * f32::from(here[ch]) + k * c[ch]);
                }
            }
        }
    }
}

/// [`to_byte`] on four lanes (clamped to 0–255, plus a half, truncated), as integers.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn to_bytes4(v: std::arch::x86_64::__m128) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    let clamped = _mm_min_ps(_mm_set1_ps(255.0), _mm_max_ps(_mm_setzero_ps(), v));
    _mm_cvttps_epi32(_mm_add_ps(clamped, _mm_set1_ps(0.5)))
}

/// One row of [`select_rows`]'s blend with AVX2, a pixel per vector: lanes 0–3 the reference
/// (`input` against the carried reference, rounded to bytes) into `next`, lanes 4–7 the output
/// (`current` against the carried output) into `out`. The same operations in the same order as
/// the scalar loop, so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn select_row_avx2(
    weights: &[f32],
    carried: &[PixelPair],
    input: &[u8],
    current: &[f32],
    out: &mut [f32],
    next: &mut [PixelPair],
) {
    use std::arch::x86_64::*;
    let n = weights.len();
    assert!(
        carried.len() >= n
            && input.len() >= n * 3
            && current.len() >= n * 3
            && out.len() >= n * 3
            && next.len() >= n
    );
    for x in 0..n {
        let k = _mm256_set1_ps(weights[x]);
        let keep = _mm256_sub_ps(_mm256_set1_ps(1.0), k);
        let here = &input[x * 3..x * 3 + 3];
        let cur = &current[x * 3..x * 3 + 3];
        let fresh = _mm256_setr_ps(
            f32::from(here[0]),
            f32::from(here[1]),
            f32::from(here[2]),
            0.0,
            cur[0],
            cur[1],
            cur[2],
            0.0,
        );
        // SAFETY: x < n ≤ the lengths of `carried` and `next` (asserted above).
        let c = unsafe { _mm256_loadu_ps(carried.as_ptr().add(x).cast()) };
        let v = _mm256_add_ps(_mm256_mul_ps(keep, fresh), _mm256_mul_ps(k, c));
        let bytes = to_bytes4(_mm256_castps256_ps128(v));
        // SAFETY: as above; lane 3 of `next` carries nothing (the carry overwrites it).
        unsafe { _mm_storeu_ps(next.as_mut_ptr().add(x).cast(), _mm_cvtepi32_ps(bytes)) };
        let blended = _mm256_extractf128_ps::<1>(v);
        let o = &mut out[x * 3..x * 3 + 3];
        o[0] = _mm_cvtss_f32(blended);
        o[1] = _mm_cvtss_f32(_mm_movehdup_ps(blended));
        o[2] = _mm_cvtss_f32(_mm_movehl_ps(blended, blended));
    }
}

kernel! {
    fn to_floats(bytes: &[u8], out: &mut [f32]) {
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = f32::from(*b);
        }
    }
}

kernel! {
    /// The filtered output as bytes, into the frame and the next frame's carried pairs.
    fn store_output(filtered: &[f32], output: &mut [u8], next: &mut [PixelPair]) {
        #[cfg(target_arch = "x86_64")]
        if simd::avx2() {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { store_output_avx2(filtered, output, next) };
        }
        let pixels = output.chunks_exact_mut(3).zip(filtered.chunks_exact(3));
        for ((o, v), n) in pixels.zip(next.iter_mut()) {
            for ch in 0..3 {
                o[ch] = to_byte(v[ch]);
                n[4 + ch] = f32::from(o[ch]);
            }
        }
    }
}

/// [`store_output`] with AVX2, a pixel per vector (the same bits: clamped, plus a half,
/// truncated).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn store_output_avx2(filtered: &[f32], output: &mut [u8], next: &mut [PixelPair]) {
    use std::arch::x86_64::*;
    let n = next.len().min(output.len() / 3);
    assert!(filtered.len() >= n * 3);
    for x in 0..n {
        let v = &filtered[x * 3..x * 3 + 3];
        let v = _mm_setr_ps(v[0], v[1], v[2], 0.0);
        let bytes = to_bytes4(v);
        // SAFETY: x < n ≤ the length of `next`; lanes 4–6 get the bytes, lane 7 carries
        // nothing (the carry overwrites it).
        unsafe {
            _mm_storeu_ps(
                next.as_mut_ptr().add(x).cast::<f32>().add(4),
                _mm_cvtepi32_ps(bytes),
            )
        };
        let packed = _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(bytes, bytes), bytes));
        output[x * 3..x * 3 + 3].copy_from_slice(&packed.to_le_bytes()[..3]);
    }
}

/// This frame's input (the reference) and output as the next frame's carried pairs.
fn store_pairs(pairs: &mut Vec<PixelPair>, input: &RgbImage, output: &RgbImage) {
    pairs.clear();
    pairs.extend(
        input
            .data
            .chunks_exact(3)
            .zip(output.data.chunks_exact(3))
            .map(|(i, o)| {
                let f = |v: u8| f32::from(v);
                [
                    f(i[0]),
                    f(i[1]),
                    f(i[2]),
                    0.0,
                    f(o[0]),
                    f(o[1]),
                    f(o[2]),
                    0.0,
                ]
            }),
    );
}
