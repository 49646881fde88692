//! Bilinear samples eight at a time with AVX2 gathers.
//!
//! The motion estimate samples grey images and flows at scattered sub-pixel points (the
//! Lucas–Kanade warps, the blocks' sub-pixel refinement, the round-trip check). As scalar
//! code each sample is four dependent index computations and loads; the compiler does not turn
//! them into gathers on its own. These versions do the same arithmetic as
//! [`super::grey::BilinearTaps`] in the same order on eight lanes (no fused multiply-add, the
//! same clamps and truncation), so they give the same bits; the callers fall back to the
//! scalar code on CPUs without AVX2 and for the last few points of a row.

use std::arch::x86_64::*;

/// [`super::grey::axis_taps`] on eight lanes: the two neighbours and the weight of the second.
#[inline]
#[target_feature(enable = "avx2")]
fn axis_taps8(x: __m256, len: usize) -> (__m256i, __m256i, __m256) {
    // `f32::clamp(x, 0, max)`: `x < 0 → 0`, then `x > max → max`; a NaN stays NaN.
    let max = _mm256_set1_ps((len - 1) as f32);
    let x = _mm256_min_ps(max, _mm256_max_ps(_mm256_setzero_ps(), x));
    // `x as usize` truncates (x ≥ 0) and takes a NaN to 0: zero the NaN lanes first so the
    // index stays in the image; the weight keeps the NaN, as the scalar code's does.
    let ordered = _mm256_cmp_ps::<_CMP_ORD_Q>(x, x);
    let x0 = _mm256_cvttps_epi32(_mm256_and_ps(x, ordered));
    let last = _mm256_set1_epi32(len as i32 - 1);
    let x1 = _mm256_min_epi32(_mm256_add_epi32(x0, _mm256_set1_epi32(1)), last);
    (x0, x1, _mm256_sub_ps(x, _mm256_cvtepi32_ps(x0)))
}

/// Where and with which weights eight bilinear samples read a `w`×`h` grid
/// ([`super::grey::BilinearTaps`] for eight points).
pub(super) struct Taps8 {
    at: [__m256i; 4],
    fx: __m256,
    fy: __m256,
    len: usize,
}

impl Taps8 {
    /// Taps at (x, y), coordinates clamped to the grid.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn new(x: __m256, y: __m256, w: usize, h: usize) -> Self {
        assert!(
            w * h <= i32::MAX as usize,
            "grid too large for 32-bit gather indices"
        );
        let (x0, x1, fx) = axis_taps8(x, w);
        let (y0, y1, fy) = axis_taps8(y, h);
        let width = _mm256_set1_epi32(w as i32);
        let (r0, r1) = (_mm256_mullo_epi32(y0, width), _mm256_mullo_epi32(y1, width));
        Self {
            at: [
                _mm256_add_epi32(r0, x0),
                _mm256_add_epi32(r0, x1),
                _mm256_add_epi32(r1, x0),
                _mm256_add_epi32(r1, x1),
            ],
            fx,
            fy,
            len: w * h,
        }
    }

    /// The eight samples of `grid` (`w`×`h` values, row by row).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn apply(&self, grid: &[f32]) -> __m256 {
        assert!(grid.len() >= self.len, "a grid smaller than its taps");
        // SAFETY: every index is below w·h (the coordinates were clamped to the grid, NaN
        // lanes sent to 0), and `grid` holds at least w·h values.
        let at = |i: __m256i| unsafe { _mm256_i32gather_ps::<4>(grid.as_ptr(), i) };
        let one = _mm256_set1_ps(1.0);
        let (fx, fy) = (self.fx, self.fy);
        let (gx, gy) = (_mm256_sub_ps(one, fx), _mm256_sub_ps(one, fy));
        let top = _mm256_add_ps(
            _mm256_mul_ps(at(self.at[0]), gx),
            _mm256_mul_ps(at(self.at[1]), fx),
        );
        let bottom = _mm256_add_ps(
            _mm256_mul_ps(at(self.at[2]), gx),
            _mm256_mul_ps(at(self.at[3]), fx),
        );
        _mm256_add_ps(_mm256_mul_ps(top, gy), _mm256_mul_ps(bottom, fy))
    }
}

/// Eight consecutive values of `v` from `i` on.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn load8(v: &[f32], i: usize) -> __m256 {
    let v = &v[i..i + 8];
    // SAFETY: `v` holds the eight values read.
    unsafe { _mm256_loadu_ps(v.as_ptr()) }
}

/// Store eight values into `v` from `i` on.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn store8(v: &mut [f32], i: usize, x: __m256) {
    let v = &mut v[i..i + 8];
    // SAFETY: `v` has room for the eight values written.
    unsafe { _mm256_storeu_ps(v.as_mut_ptr(), x) }
}

/// x, x + 1, …, x + 7 as floats (exact for any image coordinate).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn columns8(x: usize) -> __m256 {
    let x = _mm256_add_epi32(
        _mm256_set1_epi32(x as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    );
    _mm256_cvtepi32_ps(x)
}

/// An 8×8 block of floats transposed: lane j of result i is lane i of `r[j]`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    // 0x44: lanes 0, 1 of each pair; 0xEE: lanes 2, 3.
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

/// Eight rows of `rows` (each `len` values, one after the other) as columns: value k of row
/// j goes to `out[k·8 + j]`. `len` a multiple of 8.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn rows_to_lanes(rows: &[f32], len: usize, out: &mut [f32]) {
    assert!(len.is_multiple_of(8) && rows.len() >= 8 * len && out.len() >= 8 * len);
    let (src, dst) = (rows.as_ptr(), out.as_mut_ptr());
    for k in (0..len).step_by(8) {
        // SAFETY: k + 8 ≤ len, so every read is inside the eight rows and every write inside
        // the first 8·len values of `out` (both checked above).
        unsafe {
            let block = transpose8(std::array::from_fn(|j| {
                _mm256_loadu_ps(src.add(j * len + k))
            }));
            for (i, v) in block.into_iter().enumerate() {
                _mm256_storeu_ps(dst.add((k + i) * 8), v);
            }
        }
    }
}

/// The inverse of [`rows_to_lanes`].
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn lanes_to_rows(lanes: &[f32], len: usize, rows: &mut [f32]) {
    assert!(len.is_multiple_of(8) && lanes.len() >= 8 * len && rows.len() >= 8 * len);
    let (src, dst) = (lanes.as_ptr(), rows.as_mut_ptr());
    for k in (0..len).step_by(8) {
        // SAFETY: k + 8 ≤ len: reads inside the first 8·len values of `lanes`, writes inside
        // the eight rows (both checked above).
        unsafe {
            let block = transpose8(std::array::from_fn(|i| {
                _mm256_loadu_ps(src.add((k + i) * 8))
            }));
            for (j, v) in block.into_iter().enumerate() {
                _mm256_storeu_ps(dst.add(j * len + k), v);
            }
        }
    }
}
